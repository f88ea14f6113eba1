//! `swarm dht` on loopback, swarm nodes only: the routing table survives a
//! restart (saved at exit, pinged at start), bad input exits 2, and a get of
//! a key nobody stored fails cleanly. Nothing resolves the public routers.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use swarm_testkit::TestDir;
use swarm_testkit::proc::{Proc, wait_until};

fn bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn node(t: &TestDir, name: &str, bootstrap: &str, state: &str) -> (Proc, String) {
    let mut cmd = Command::new(bin());
    cmd.args([
        "dht",
        "node",
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        bootstrap,
        "--state",
        t.path().join(state).to_str().unwrap(),
        "--log-interval",
        "1",
    ]);
    let p = Proc::spawn(name, cmd, &t.logs());
    assert!(
        wait_until(Duration::from_secs(20), || !p.stdout().trim().is_empty()),
        "{name} prints its address"
    );
    let addr = p.stdout().trim().to_string();
    (p, addr)
}

/// SIGTERM, and wait for the exit (the node saves its table then).
fn stop(p: &mut Proc) {
    let _ = Command::new("kill").arg(p.pid().to_string()).status();
    assert!(
        p.wait_exit(Duration::from_secs(10)).is_some(),
        "node stops on SIGTERM"
    );
}

#[test]
fn routing_table_survives_a_restart() {
    let t = TestDir::new("dht-state");
    // Port 9 (discard): nothing answers there.
    let (mut a, a_addr) = node(&t, "a", "127.0.0.1:9", "a.nodes");
    let (mut b, _) = node(&t, "b", &a_addr, "b.nodes");
    assert!(
        wait_until(Duration::from_secs(20), || b
            .stderr()
            .contains("table 1 nodes (1 good")),
        "b joins a: {}",
        b.stderr()
    );
    stop(&mut b);
    let saved = std::fs::read_to_string(t.path().join("b.nodes")).unwrap();
    assert!(saved.contains(&a_addr), "b saved a: {saved}");
    // Restarted with a dead bootstrap, b finds a again from its state.
    let (mut b2, _) = node(&t, "b2", "127.0.0.1:9", "b.nodes");
    assert!(
        wait_until(Duration::from_secs(20), || b2
            .stderr()
            .contains("table 1 nodes (1 good")),
        "b reloads a: {}",
        b2.stderr()
    );
    stop(&mut b2);
    stop(&mut a);
}

#[test]
fn bad_input_exits_2_and_missing_items_fail() {
    let t = TestDir::new("dht-bad");
    let run = |args: &[&str]| swarm_testkit::cli::run(&bin(), t.path(), args);
    let mixed = format!("a{}b", "é".repeat(19));
    for args in [
        &["dht", "get", "--bootstrap", "127.0.0.1:9", "xyz"][..],
        &["dht", "get", "--bootstrap", "127.0.0.1:9", "--pubkey", "00"][..],
        &["dht", "peers", "--bootstrap", "127.0.0.1:9", "12"][..],
        // 40 bytes, but not 40 hex digits: a multi-byte character straddles
        // a digit pair (this panicked, slicing the text mid-character).
        &["dht", "get", "--bootstrap", "127.0.0.1:9", &mixed][..],
        &["dht", "peers", "--bootstrap", "127.0.0.1:9", &mixed][..],
    ] {
        let o = run(args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            swarm_testkit::cli::stderr(&o)
        );
    }
    let long = "x".repeat(1000);
    let o = run(&["dht", "put", "--bootstrap", "127.0.0.1:9", &long]);
    assert_eq!(o.status.code(), Some(2));
    assert!(swarm_testkit::cli::stderr(&o).contains("at most 1000"));
    // A key file that is not one.
    std::fs::write(t.path().join("bad.key"), "nope").unwrap();
    let o = run(&[
        "dht",
        "put",
        "--bootstrap",
        "127.0.0.1:9",
        "--key",
        "bad.key",
        "v",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        swarm_testkit::cli::stderr(&o)
    );
    // keygen refuses to overwrite.
    assert!(run(&["dht", "keygen", "k"]).status.success());
    assert_eq!(run(&["dht", "keygen", "k"]).status.code(), Some(2));

    // A node, and a get of a key nobody stored: exit 1, "not found".
    let (mut a, a_addr) = node(&t, "a", "127.0.0.1:9", "a.nodes");
    let o = run(&["dht", "get", "--bootstrap", &a_addr, &"ab".repeat(20)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(swarm_testkit::cli::stderr(&o).contains("not found"));
    // Nobody answering at all: exit 1 with a clear line, in bounded time.
    let o = run(&[
        "dht",
        "get",
        "--bootstrap",
        "127.0.0.1:9",
        "--timeout",
        "5",
        &"ab".repeat(20),
    ]);
    assert_eq!(o.status.code(), Some(1));
    stop(&mut a);
}

/// `put --keep` prints the key, says it keeps the item, stays running (its
/// node re-puts hourly: the engine's `kept_items_are_put_again_before_they_expire`
/// shows that in virtual time) and the item is readable meanwhile; SIGTERM
/// ends it cleanly.
#[test]
fn put_keep_stays_and_the_item_is_read_meanwhile() {
    let t = TestDir::new("dht-keep");
    let (mut a, a_addr) = node(&t, "a", "127.0.0.1:9", "a.nodes");
    let mut cmd = Command::new(bin());
    cmd.args(["dht", "put", "--keep", "--bootstrap", &a_addr, "kept value"]);
    let mut keeper = Proc::spawn("keeper", cmd, &t.logs());
    assert!(
        wait_until(Duration::from_secs(30), || keeper
            .stderr()
            .contains("keeping it: put again every 60 minutes")),
        "{}",
        keeper.log_tail()
    );
    let key = keeper.stdout().trim().to_string();
    assert_eq!(key.len(), 40, "{key}");
    assert!(keeper.try_exit().is_none(), "--keep stays running");
    let got = swarm_testkit::cli::run(
        &bin(),
        t.path(),
        &["dht", "get", "--bootstrap", &a_addr, &key],
    );
    assert!(got.status.success(), "{got:?}");
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "kept value");
    let _ = Command::new("kill").arg(keeper.pid().to_string()).status();
    let status = keeper.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    stop(&mut a);
}
