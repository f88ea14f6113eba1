//! Trackerless torrents, magnet links and peer exchange against libtorrent
//! on loopback
//! (`tests/magnet/lt_swarm.py` runs the libtorrent sessions), each peer on a
//! loopback IP of its own (`free_addr`):
//! - swarm downloads a torrent with no tracker from a libtorrent seeder it
//!   finds only through the DHT (libtorrent nodes, bootstrap named by the
//!   test);
//! - swarm downloads a magnet link whose metadata comes from libtorrent by
//!   BEP 9 (with a .torrent on the same command line), saves it as a
//!   `.torrent`, and a restart does not fetch it again;
//! - libtorrent downloads a magnet link from a swarm seeder (metadata served
//!   by swarm);
//! - peer exchange (BEP 11) both ways: a swarm peer told of one libtorrent
//!   peer learns a third peer's address from it and connects to it; a
//!   libtorrent peer learns another's address from a swarm seeder's PEX.
//!   (libtorrent sends its first PEX message on its first once-a-second
//!   tick after the extension handshake at which it has two peers or more;
//!   it closes connections between two seeds, so the third peer here is a
//!   slowed-down leech, with PEX off so that only the peer under test
//!   learns addresses.)
//!
//! Nothing contacts the public DHT routers. Under CI=true a missing
//! libtorrent fails the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use swarm_testkit::peers::{require_swarm_subcommand, swarm_seed};
use swarm_testkit::proc::wait_listening;
use swarm_testkit::{
    PIECE_16_KIB, PYTHON, Proc, SwarmOpts, TestDir, assert_same_tree, data, free_addr,
    make_torrent, require_python_libtorrent, wait_until,
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
    let (h1, h2, seeder) = (free_addr(), free_addr(), free_addr());
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
            s(free_addr()),
            s("--json"),
            s("--dht-bootstrap"),
            s(h1),
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
    // A second torrent, given as a .torrent on the same command line.
    let other = data::single_file(&seed_dir, "beside.bin", 200_001, 45);
    let other_torrent = make_torrent(&other, &t.path().join("o.torrent"), PIECE_16_KIB, &[]);
    let seeder = free_addr();
    let mut lt = lt_swarm(
        &t.logs(),
        "lt",
        &[
            s("--seed"),
            s(seeder),
            s("--torrent"),
            s(torrent.path.display()),
            s("--torrent"),
            s(other_torrent.path.display()),
            s("--dir"),
            s(seed_dir.display()),
        ],
    );
    assert!(wait_listening(seeder, Duration::from_secs(20)));
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn=magnet-tree&x.pe={seeder}",
        torrent.info_hash_hex
    );
    let out = t.sub("out");
    let mut first = vec![
        s("download"),
        magnet.clone(),
        s(other_torrent.path.display()),
        s("--peer"),
        s(seeder),
    ];
    let rest = |listen: std::net::SocketAddr| {
        vec![
            s("-o"),
            s(out.display()),
            s("--listen"),
            s(listen),
            s("--json"),
            s("--no-dht"),
        ]
    };
    first.extend(rest(free_addr()));
    let mut leech = swarm(&t.logs(), "swarm", &first);
    wait_success(&mut leech, DEADLINE);
    assert_same_tree(&content, &out.join(&torrent.name));
    assert_same_tree(&other, &out.join(&other_torrent.name));
    assert!(
        leech
            .stderr()
            .contains("metadata fetched and checked against the info-hash"),
        "{}",
        leech.log_tail()
    );
    let saved = out
        .join(".swarm")
        .join(format!("{}.torrent", torrent.info_hash_hex));
    let saved_bytes = std::fs::read(&saved).expect("the metadata saved as a .torrent");
    assert!(!saved_bytes.is_empty());
    // A restart with no peer at all: the metadata comes from the saved
    // .torrent and the data from the resume record; nothing is fetched.
    lt.kill();
    let mut again_args = vec![s("download"), magnet.clone()];
    again_args.extend(rest(free_addr()));
    let mut again = swarm(&t.logs(), "swarm-again", &again_args);
    wait_success(&mut again, Duration::from_secs(60));
    assert!(
        again.stderr().contains("metadata from the saved .torrent"),
        "{}",
        again.log_tail()
    );
    assert!(
        !again
            .json_lines()
            .iter()
            .any(|v| v["state"] == "metadata" && v["metadata_pieces"][1] != 0),
        "nothing fetched again\n{}",
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
    let sport = free_addr();
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
    assert!(wait_listening(sport, Duration::from_secs(20)));
    let out = t.sub("lt-out");
    let magnet = format!("magnet:?xt=urn:btih:{}", torrent.info_hash_hex);
    let lt = lt_swarm(
        &t.logs(),
        "lt",
        &[
            s("--magnet-leech"),
            s(free_addr()),
            s("--magnet"),
            magnet,
            s("--out"),
            s(out.display()),
            s("--peer"),
            s(sport),
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
fn swarm_learns_a_peer_by_pex_and_connects_to_it() {
    if !ready() {
        return;
    }
    let t = TestDir::new("pex-in");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "pex.bin", 2_000_003, 44);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_16_KIB, &[]);
    let (l1, l2) = (free_addr(), free_addr());
    // l1 seeds and dials l2, a leech that learns nobody's address.
    let _lt = lt_swarm(
        &t.logs(),
        "lt",
        &[
            s("--seed"),
            s(l1),
            s("--quiet-leech"),
            s(l2),
            s("--seeds-dial-leeches"),
            s("--torrent"),
            s(torrent.path.display()),
            s("--dir"),
            s(seed_dir.display()),
            s("--out"),
            s(t.sub("lt-out").display()),
        ],
    );
    assert!(wait_listening(l1, Duration::from_secs(20)));
    // swarm knows only l1 (no tracker, no DHT), and downloads slowly enough
    // (2 MB at 100 KiB/s) to be connected when libtorrent's PEX comes.
    let out = t.sub("out");
    let leech = swarm(
        &t.logs(),
        "swarm",
        &[
            s("download"),
            s(torrent.path.display()),
            s("-o"),
            s(out.display()),
            s("--listen"),
            s(free_addr()),
            s("--json"),
            s("--no-dht"),
            s("--peer"),
            s(l1),
            s("--max-download-rate"),
            s("100K"),
        ],
    );
    let dialled_l2 = format!("peer connected peer={l2} outgoing=true");
    let connected = wait_until(Duration::from_secs(60), || {
        leech.stderr().contains(&dialled_l2)
    });
    assert!(
        connected,
        "swarm connected to the peer it was not told of ({l2})\n{}",
        leech.log_tail()
    );
    assert!(
        leech.stderr().contains("addresses from peer exchange"),
        "{}",
        leech.log_tail()
    );
}

#[test]
fn libtorrent_learns_a_peer_from_a_swarm_seeders_pex() {
    if !ready() {
        return;
    }
    let t = TestDir::new("pex-out");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "pex-out.bin", 2_000_003, 46);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_16_KIB, &[]);
    let sport = free_addr();
    let seeder = swarm_seed(
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
    assert!(wait_listening(sport, Duration::from_secs(20)));
    // Two slow leeches that know only the swarm seeder; `b` learns nothing
    // itself, so if `a` reaches `b` it learnt its address from swarm.
    let (a, b) = (free_addr(), free_addr());
    let lt = lt_swarm(
        &t.logs(),
        "lt",
        &[
            s("--leech"),
            s(a),
            s("--quiet-leech"),
            s(b),
            s("--peer"),
            s(sport),
            s("--torrent"),
            s(torrent.path.display()),
            s("--out"),
            s(t.sub("lt-out").display()),
        ],
    );
    let (a_addr, b_addr) = (a.to_string(), b.to_string());
    let learnt = wait_until(Duration::from_secs(60), || {
        lt.json_lines().iter().any(|v| {
            v["leeches"].as_array().is_some_and(|ls| {
                ls.iter().any(|l| {
                    l["addr"].as_str() == Some(&a_addr)
                        && l["peers"].as_array().is_some_and(|ps| {
                            ps.iter()
                                .any(|p| p["addr"].as_str() == Some(&b_addr) && p["pex"] == true)
                        })
                })
            })
        })
    });
    assert!(
        learnt,
        "libtorrent {a} connected to {b}, learnt by PEX from swarm\n{}\n{}",
        lt.log_tail(),
        seeder.proc.log_tail()
    );
}
