//! Interop with libtorrent's DHT on loopback: one swarm DHT node and three
//! libtorrent sessions (`tests/dht/lt_dht.py`) form a DHT. BEP 44 items go
//! both ways (immutable and mutable: put by one implementation, read by the
//! other through a fresh `swarm dht get`/`put` node that did not store
//! them), and `swarm dht peers` finds a libtorrent peer that announced a
//! torrent. Nothing resolves the public routers: every command bootstraps
//! from a loopback node.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use swarm_testkit::proc::{Proc, free_port, require_python_libtorrent, wait_until};
use swarm_testkit::{PYTHON, TestDir};

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

/// The libtorrent sessions, driven by JSON lines.
struct LtDht {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    ports: Vec<u16>,
}

impl LtDht {
    fn start(logs: &Path, ports: Vec<u16>, boot: &[u16]) -> LtDht {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dht/lt_dht.py");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script);
        cmd.args(ports.iter().map(u16::to_string));
        cmd.arg("--");
        cmd.args(boot.iter().map(u16::to_string));
        let err = std::fs::File::create(logs.join("lt_dht.err")).unwrap();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("start lt_dht.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lt = LtDht {
            child,
            stdin,
            lines,
            ports,
        };
        let ready = lt.read(Duration::from_secs(30));
        assert!(ready.get("ready").is_some(), "{ready}");
        lt
    }

    fn read(&mut self, timeout: Duration) -> Value {
        let line = self
            .lines
            .recv_timeout(timeout)
            .expect("an answer from lt_dht.py in time (see lt_dht.err)");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// One command; its answer (the script bounds each wait at 30 s).
    fn call(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        self.read(Duration::from_secs(60))
    }

    fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }
}

impl Drop for LtDht {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn swarm(dir: &Path, args: &[&str]) -> Output {
    swarm_testkit::cli::run(&swarm_bin(), dir, args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(o)
}

#[test]
fn swarm_and_libtorrent_share_items_and_peers() {
    if !require_python_libtorrent() {
        return;
    }
    let t = TestDir::new("dht-lt");
    let logs = t.logs();
    let lt_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();

    // The swarm node first (its bootstrap target comes up just after).
    let mut node_cmd = Command::new(swarm_bin());
    node_cmd.args([
        "dht",
        "node",
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &format!("127.0.0.1:{}", lt_ports[0]),
        "--state",
        t.path().join("node.state").to_str().unwrap(),
        "--log-interval",
        "2",
    ]);
    let mut node = Proc::spawn("swarm-dht-node", node_cmd, &logs);
    assert!(
        wait_until(Duration::from_secs(20), || !node.stdout().trim().is_empty()),
        "the node prints its address"
    );
    let node_addr = node.stdout().trim().to_string();
    let node_port: u16 = node_addr.rsplit(':').next().unwrap().parse().unwrap();

    let mut lt = LtDht::start(&logs, lt_ports, &[node_port]);
    // Every session knows the two others and the swarm node.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let n = lt.call(json!({"op": "nodes"}));
            n["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x.as_i64() >= Some(3))
        }),
        "libtorrent sessions see 3 nodes each (the swarm node among them)"
    );
    let dir = t.path();

    // 1. Immutable, libtorrent → swarm: a fresh swarm node reads it.
    let r = lt.call(json!({"op": "put_imm", "s": 0, "value": "put by libtorrent"}));
    assert!(r["ok"].as_i64() >= Some(1), "{r}");
    let target = r["target"].as_str().unwrap().to_string();
    let got = swarm(dir, &["dht", "get", "--bootstrap", &lt.addr(1), &target]);
    assert_eq!(ok(&got, "swarm dht get"), "put by libtorrent");

    // 2. Immutable, swarm → libtorrent.
    let put = swarm(
        dir,
        &["dht", "put", "--bootstrap", &lt.addr(0), "put by swarm"],
    );
    let key = ok(&put, "swarm dht put");
    assert_eq!(key.len(), 40, "{key}");
    let r = lt.call(json!({"op": "get_imm", "s": 2, "target": key}));
    assert_eq!(r["value"], "put by swarm", "{r}");

    // 3. Mutable, libtorrent → swarm, with a key made by `swarm dht keygen`.
    let keyfile = dir.join("me.key");
    let pubkey = ok(
        &swarm(dir, &["dht", "keygen", keyfile.to_str().unwrap()]),
        "keygen",
    );
    let seed = std::fs::read_to_string(&keyfile)
        .unwrap()
        .trim()
        .to_string();
    let r = lt.call(json!({"op": "put_mut", "s": 0, "seed": seed, "pub": pubkey,
                           "salt": "status", "value": "mutable by libtorrent"}));
    assert!(r["ok"].as_i64() >= Some(1), "{r}");
    let got = swarm(
        dir,
        &[
            "dht",
            "get",
            "--bootstrap",
            &lt.addr(2),
            "--pubkey",
            &pubkey,
            "--salt",
            "status",
        ],
    );
    assert_eq!(ok(&got, "swarm dht get --pubkey"), "mutable by libtorrent");
    assert!(String::from_utf8_lossy(&got.stderr).contains("seq 1"));

    // 4. Mutable, swarm → libtorrent: the next sequence number (2).
    let put = swarm(
        dir,
        &[
            "dht",
            "put",
            "--bootstrap",
            &lt.addr(1),
            "--key",
            keyfile.to_str().unwrap(),
            "--salt",
            "status",
            "mutable by swarm",
        ],
    );
    ok(&put, "swarm dht put --key");
    assert!(
        String::from_utf8_lossy(&put.stderr).contains("seq 2"),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let r = lt.call(json!({"op": "get_mut", "s": 1, "pub": pubkey, "salt": "status"}));
    assert_eq!(r["value"], "mutable by swarm", "{r}");
    assert_eq!(r["seq"], 2, "{r}");

    // 5. Peers: a libtorrent session announces a torrent; swarm finds it.
    let ih = "0123456789abcdef0123456789abcdef01234567";
    let lt_dir = t.sub("lt-data");
    lt.call(json!({"op": "announce", "s": 2, "ih": ih, "dir": lt_dir.to_str().unwrap()}));
    let want = lt.addr(2);
    let mut last = String::new();
    let found = wait_until(Duration::from_secs(60), || {
        let o = swarm(
            dir,
            &[
                "dht",
                "peers",
                "--bootstrap",
                &lt.addr(0),
                "--timeout",
                "10",
                ih,
            ],
        );
        last = format!("{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
        o.status.success() && stdout(&o).lines().any(|l| l == want)
    });
    assert!(found, "swarm dht peers did not find {want}: {last}");

    // The swarm node took part: it stored items, and it is still up.
    assert!(node.try_exit().is_none(), "the swarm node died");
    assert!(
        wait_until(Duration::from_secs(10), || node.stderr().contains("stored")),
        "the node logs its status"
    );
}
