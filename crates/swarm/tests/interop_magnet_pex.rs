//! Trackerless torrents, magnet links and peer exchange against libtorrent
//! on loopback (`tests/magnet/lt_swarm.py` runs the libtorrent sessions):
//! - swarm downloads a torrent with no tracker from a libtorrent seeder it
//!   finds only through the DHT (libtorrent nodes, bootstrap named by the
//!   test);
//! - swarm downloads a magnet link whose metadata comes from libtorrent by
//!   BEP 9, saves it as a `.torrent`, and a restart does not fetch it again;
//! - libtorrent downloads a magnet link from a swarm seeder (metadata served
//!   by swarm);
//! - PEX: a swarm peer told of one libtorrent peer learns a second one's
//!   address from the first (BEP 11) and connects to it.
//!
//! Nothing contacts the public DHT routers. Under CI=true a missing
//! libtorrent fails the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use swarm_testkit::peers::{require_swarm_subcommand, swarm_seed};
use swarm_testkit::proc::{free_port, loopback, wait_listening};
use swarm_testkit::{
    PIECE_16_KIB, PYTHON, Proc, SwarmOpts, TestDir, assert_same_tree, data, make_torrent,
    require_python_libtorrent, wait_until,
};

const DEADLINE: Duration = Duration::from_secs(120);

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn ready() -> bool {
    require_python_libtorrent() && require_swarm_subcommand(&swarm_bin(), "download")
}

fn lt_swarm(logs: &Path, name: &str, args: &[String]) -> Proc {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/magnet/lt_swarm.py");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(script).args(args);
    let p = Proc::spawn(name, cmd, logs);
    assert!(
        wait_until(Duration::from_secs(30), || p
            .json_lines()
            .iter()
            .any(|v| v["ready"] == true)),
        "{name} ready\n{}",
        p.log_tail()
    );
    p
}

fn swarm(logs: &Path, name: &str, args: &[String]) -> Proc {
    let mut cmd = Command::new(swarm_bin());
    cmd.args(args)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env("SWARM_DHT_BOOTSTRAP", "");
    Proc::spawn(name, cmd, logs)
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

/// Waits for a swarm download to exit successfully.
fn wait_success(p: &mut Proc, timeout: Duration) {
    let status = p.wait_exit(timeout);
    assert!(
        status.is_some_and(|s| s.success()),
        "{} ended with {status:?}\n{}",
        p.name(),
        p.log_tail()
    );
}

#[test]
fn swarm_downloads_a_trackerless_torrent_found_through_the_dht() {
    if !ready() {
        return;
    }
    let t = TestDir::new("dht-only");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "dht-only.bin", 700_001, 41);
    // No tracker at all.
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_16_KIB, &[]);
    let (h1, h2, seeder) = (free_port(), free_port(), free_port());
    let _lt = lt_swarm(
        &t.logs(),
        "lt",
        &[
            s("--dht"),
            s("--helper"),
            s(h1),
            s("--helper"),
            s(h2),
            s("--seed"),
            s(seeder),
            s("--torrent"),
            s(torrent.path.display()),
            s("--dir"),
            s(seed_dir.display()),
        ],
    );
    let out = t.sub("out");
    let mut leech = swarm(
        &t.logs(),
        "swarm",
        &[
            s("download"),
            s(torrent.path.display()),
            s("-o"),
            s(out.display()),
            s("--listen"),
            s(loopback(free_port())),
            s("--json"),
            s("--dht-bootstrap"),
            s(loopback(h1)),
        ],
    );
    wait_success(&mut leech, DEADLINE);
    assert_same_tree(&content, &out.join(&torrent.name));
    assert!(
        leech.stderr().contains("dht: get_peers done"),
        "peers came from the DHT\n{}",
        leech.log_tail()
    );
}

#[test]
fn swarm_downloads_a_magnet_link_with_metadata_from_libtorrent() {
    if !ready() {
        return;
    }
    let t = TestDir::new("magnet-from-lt");
    let seed_dir = t.sub("seed");
    let content = data::tree(
        &seed_dir,
        "magnet-tree",
        &[("a.bin", 300_000), ("sub/b.bin", 123_457), ("c", 1)],
        42,
    );
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_16_KIB, &[]);
    let seeder = free_port();
    let mut lt = lt_swarm(
        &t.logs(),
        "lt",
        &[
            s("--seed"),
            s(seeder),
            s("--torrent"),
            s(torrent.path.display()),
            s("--dir"),
            s(seed_dir.display()),
        ],
    );
    assert!(wait_listening(loopback(seeder), Duration::from_secs(20)));
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn=magnet-tree&x.pe=127.0.0.1:{seeder}",
        torrent.info_hash_hex
    );
    let out = t.sub("out");
    let args = |port: u16| {
        vec![
            s("download"),
            magnet.clone(),
            s("-o"),
            s(out.display()),
            s("--listen"),
            s(loopback(port)),
            s("--json"),
            s("--no-dht"),
        ]
    };
    let mut leech = swarm(&t.logs(), "swarm", &args(free_port()));
    wait_success(&mut leech, DEADLINE);
    assert_same_tree(&content, &out.join(&torrent.name));
    let saved = out
        .join(".swarm")
        .join(format!("{}.torrent", torrent.info_hash_hex));
    let saved_bytes = std::fs::read(&saved).expect("the metadata saved as a .torrent");
    assert!(!saved_bytes.is_empty());
    // A restart with no peer at all: the metadata comes from the saved
    // .torrent and the data from the resume record; nothing is fetched.
    lt.kill();
    let mut again = swarm(&t.logs(), "swarm-again", &args(free_port()));
    wait_success(&mut again, Duration::from_secs(60));
    assert!(
        again.stderr().contains("metadata from the saved .torrent"),
        "{}",
        again.log_tail()
    );
}

#[test]
fn libtorrent_downloads_a_magnet_link_from_a_swarm_seeder() {
    if !ready() {
        return;
    }
    let t = TestDir::new("magnet-to-lt");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "for-lt.bin", 2_000_003, 43);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_16_KIB, &[]);
    let sport = free_port();
    let mut seeder = swarm_seed(
        &swarm_bin(),
        &t.logs(),
        "swarm-seed",
        &torrent,
        &seed_dir,
        sport,
        &SwarmOpts {
            extra: vec![s("--no-dht")],
            ..SwarmOpts::default()
        },
    );
    assert!(wait_listening(loopback(sport), Duration::from_secs(20)));
    let out = t.sub("lt-out");
    let magnet = format!("magnet:?xt=urn:btih:{}", torrent.info_hash_hex);
    let lt = lt_swarm(
        &t.logs(),
        "lt",
        &[
            s("--magnet-leech"),
            s(free_port()),
            s("--magnet"),
            magnet,
            s("--out"),
            s(out.display()),
            s("--peer"),
            s(loopback(sport)),
        ],
    );
    let done = wait_until(DEADLINE, || {
        lt.json_lines()
            .iter()
            .any(|v| v["leech"]["complete"] == true)
    });
    assert!(
        done,
        "libtorrent completes\n{}\n{}",
        lt.log_tail(),
        seeder.proc.log_tail()
    );
    assert!(seeder.check_alive().is_ok());
    assert_same_tree(&content, &out.join(&torrent.name));
}

#[test]
fn heavy_swarm_learns_a_peer_by_pex_and_connects_to_it() {
    if !ready() {
        return;
    }
    let t = TestDir::new("pex");
    let seed_dir = t.sub("seed");
    // Large enough that the download is still running when PEX arrives.
    let content = data::single_file(&seed_dir, "pex.bin", 8_000_000, 44);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_16_KIB, &[]);
    let (l1, l2) = (free_port(), free_port());
    let _lt = lt_swarm(
        &t.logs(),
        "lt",
        &[
            s("--seed"),
            s(l1),
            s("--seed"),
            s(l2),
            s("--connect-seeds"),
            s("--torrent"),
            s(torrent.path.display()),
            s("--dir"),
            s(seed_dir.display()),
        ],
    );
    assert!(wait_listening(loopback(l1), Duration::from_secs(20)));
    let out = t.sub("out");
    // Slow enough that the transfer outlasts libtorrent's first PEX round
    // (it sends one a minute): 8 MB at 100 KiB/s take 80 s.
    let mut leech = swarm(
        &t.logs(),
        "swarm",
        &[
            s("download"),
            s(torrent.path.display()),
            s("-o"),
            s(out.display()),
            s("--listen"),
            s(loopback(free_port())),
            s("--json"),
            s("--no-dht"),
            s("--peer"),
            s(loopback(l1)),
            s("--max-download-rate"),
            s("100K"),
        ],
    );
    let l2_addr = loopback(l2).to_string();
    let connected = wait_until(Duration::from_secs(150), || {
        leech.json_lines().iter().any(|v| {
            v["neighbours"]
                .as_array()
                .is_some_and(|n| n.iter().any(|p| p["addr"].as_str() == Some(&l2_addr)))
        })
    });
    assert!(
        connected,
        "swarm connected to the peer it was not told of\n{}",
        leech.log_tail()
    );
    assert!(leech.stderr().contains("addresses from peer exchange"));
    wait_success(&mut leech, Duration::from_secs(150));
    assert_same_tree(&content, &out.join(&torrent.name));
}
