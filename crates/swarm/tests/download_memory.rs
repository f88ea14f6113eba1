//! The download's memory bound, measured: `swarm download` of a 256 MiB file
//! from one libtorrent seeder on loopback (the network outruns the hashing,
//! so every queue between the socket and the disk fills) must peak, in RSS
//! as the kernel counts it (GNU time's `%M`), within
//! `DOWNLOAD_MEMORY_ONE_PEER_MAX_BYTES` of the same command left idle (no
//! peer to reach). Memory, not time: nothing here is timed.
//!
//! Needs /usr/bin/python3 with libtorrent and GNU time: under CI=true a
//! missing one fails the test, otherwise it skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use swarm_net::session::DOWNLOAD_MEMORY_ONE_PEER_MAX_BYTES;
use swarm_testkit::peers::lt_seed;
use swarm_testkit::{data, *};

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

/// Runs `prefix... swarm ARGS` in `dir` under `/usr/bin/time`: its output
/// and the peak RSS of the process tree, in bytes.
fn peak_rss(dir: &Path, prefix: &[&str], args: &[&str]) -> (Output, u64) {
    let rss_file = dir.join("rss");
    let o = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .args(prefix)
        .arg(swarm_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run /usr/bin/time");
    let text = std::fs::read_to_string(&rss_file).expect("time's output");
    let kib: u64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("peak RSS from {text:?}"));
    (o, kib * 1024)
}

#[test]
fn a_large_download_stays_within_its_memory_bound() {
    if !(require_python_libtorrent()
        && require_program("/usr/bin/time")
        && require_program("timeout"))
    {
        return;
    }
    let t = TestDir::new("dl-memory");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "big.bin", 256 << 20, 5);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_256_KIB, &[]);
    let torrent_path = torrent.path.to_str().unwrap().to_owned();

    // Idle: the same download with nobody to download from, for 2 s.
    let idle_at = free_addr().to_string();
    let (o, idle) = peak_rss(
        t.path(),
        &["timeout", "-s", "INT", "2"],
        &[
            "download",
            &torrent_path,
            "-o",
            "idle",
            "--peer",
            "127.0.0.1:9",
            "--listen",
            &idle_at,
        ],
    );
    assert!(o.status.code().is_some(), "idle run ended: {o:?}");

    let seeder = lt_seed(&t.logs(), "lt-seed", &torrent, &seed_dir, free_addr(), &[]);
    assert!(
        proc::wait_listening(seeder.listen, Duration::from_secs(30)),
        "libtorrent listens"
    );
    let (peer, listen) = (seeder.listen.to_string(), free_addr().to_string());
    let (o, peak) = peak_rss(
        t.path(),
        &["timeout", "120"],
        &[
            "download",
            &torrent_path,
            "-o",
            "out",
            "--peer",
            &peer,
            "--listen",
            &listen,
        ],
    );
    assert!(o.status.success(), "the download completes: {o:?}");
    assert_same_tree(&content, &t.path().join("out").join("big.bin"));
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "peak RSS {:.1} MiB, idle {:.1} MiB: the download took {:.1} MiB (bound {:.1} MiB)",
        mib(peak),
        mib(idle),
        mib(peak.saturating_sub(idle)),
        mib(DOWNLOAD_MEMORY_ONE_PEER_MAX_BYTES as u64)
    );
    assert!(
        peak.saturating_sub(idle) <= DOWNLOAD_MEMORY_ONE_PEER_MAX_BYTES as u64,
        "peak RSS {:.1} MiB is more than idle {:.1} MiB + the bound {:.1} MiB",
        mib(peak),
        mib(idle),
        mib(DOWNLOAD_MEMORY_ONE_PEER_MAX_BYTES as u64)
    );
}
