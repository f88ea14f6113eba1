//! The daemon is killed with SIGKILL while three torrents download (from
//! three libtorrent seeders, the daemon's download rate capped so the kill
//! falls inside the transfer), restarted on the same state folder, and all
//! three complete, identical to the originals, without fetching a verified
//! piece again.
//!
//! "Verified" is exact: both runs log, at trace level, each piece verified
//! and written (`piece completed piece=N torrent=NAME`; stderr is
//! unbuffered, so the killed run's log is complete up to the kill). No
//! piece the first run completed may complete again in the second run.
//!
//! Heavy (a daemon, three seeders, a restart): in the serial test group.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use swarm_testkit::daemon::{self, DaemonOpts, list_row, start_daemon};
use swarm_testkit::peers::{lt_seed, require_swarm_subcommand};
use swarm_testkit::{data, *};

const DEADLINE: Duration = Duration::from_secs(180);
const SIZE: u64 = 12 * 1024 * 1024 + 12_345;
/// Over all three torrents: 36 MiB take ~6 s.
const RATE: &str = "6M";

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

/// torrent name -> pieces completed, from a run's trace log.
fn completed(stderr: &str) -> BTreeMap<String, BTreeSet<u64>> {
    let mut out: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for line in stderr.lines().filter(|l| l.contains("piece completed")) {
        let piece = line
            .split(" piece=")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|d| d.parse().ok());
        let torrent = line
            .split(" torrent=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next());
        if let (Some(p), Some(t)) = (piece, torrent) {
            out.entry(t.to_string()).or_default().insert(p);
        }
    }
    out
}

/// The `Done` column of torrent `id` in `-l` (`57%`), as a number.
fn percent(list: &str, id: u32) -> Option<u32> {
    let row = list_row(list, id)?;
    row.split_whitespace()
        .nth(1)?
        .trim_end_matches('%')
        .parse()
        .ok()
}

#[test]
fn heavy_daemon_sigkilled_mid_download_resumes_three_torrents_without_refetching() {
    if !(require_program(daemon::TRANSMISSION_REMOTE)
        && require_python_libtorrent()
        && require_swarm_subcommand(&swarm_bin(), "daemon"))
    {
        return;
    }
    let t = TestDir::new("daemon-crash");
    let names = ["one.bin", "two.bin", "three.bin"];
    let contents: Vec<PathBuf> = names
        .iter()
        .enumerate()
        .map(|(i, n)| data::single_file(&t.sub(&format!("seed{i}")), n, SIZE, 80 + i as u64))
        .collect();
    let torrents: Vec<TorrentFile> = contents
        .iter()
        .enumerate()
        .map(|(i, c)| {
            make_torrent(
                c,
                &t.path().join(format!("t{i}.torrent")),
                PIECE_256_KIB,
                &[],
            )
        })
        .collect();
    let listen = free_addr();
    let opts = DaemonOpts {
        listen,
        state: &t.sub("state"),
        download_dir: &t.sub("downloads"),
        extra: vec!["--max-download-rate".into(), RATE.into()],
        rust_log: Some("info,swarm_net::session=trace"),
    };
    let mut d = start_daemon(&swarm_bin(), &t.logs(), "daemon-1", &opts);
    // Each seeder dials the daemon's address every 2 s: the restarted
    // daemon listens on the same one.
    let _seeders: Vec<Peer> = torrents
        .iter()
        .enumerate()
        .map(|(i, tf)| {
            lt_seed(
                &t.logs(),
                &format!("lt-seed-{i}"),
                tf,
                &t.sub(&format!("seed{i}")),
                free_addr(),
                &[listen],
            )
        })
        .collect();
    for tf in &torrents {
        let r = d.remote(&["-a", &tf.path.display().to_string()]);
        assert!(r.ok && r.text().contains("success"), "-a: {r:?}");
    }
    // Kill once every torrent has some pieces and none is complete.
    let mut last = String::new();
    let midway = wait_until(DEADLINE, || {
        last = d.remote(&["-l"]).text();
        (1..=3).all(|id| percent(&last, id).is_some_and(|p| p >= 10))
    });
    assert!(
        midway,
        "all three downloading:\n{last}\n{}",
        d.proc.log_tail()
    );
    d.proc.kill();
    let first = completed(&d.proc.stderr());
    for tf in &torrents {
        let n = first.get(&tf.name).map_or(0, BTreeSet::len);
        assert!(
            n > 0 && (n as u32) < tf.num_pieces,
            "{}: the killed run completed {n} of {} pieces (some, not all)",
            tf.name,
            tf.num_pieces
        );
    }

    let d2 = start_daemon(&swarm_bin(), &t.logs(), "daemon-2", &opts);
    let done = wait_until(DEADLINE, || {
        last = d2.remote(&["-l"]).text();
        (1..=3).all(|id| percent(&last, id) == Some(100))
    });
    assert!(
        done,
        "all three complete after the restart:\n{last}\n{}",
        d2.proc.log_tail()
    );
    for (c, n) in contents.iter().zip(names) {
        assert_same_tree(c, &opts.download_dir.join(n));
    }
    let second = completed(&d2.proc.stderr());
    for tf in &torrents {
        let (a, b) = (
            first.get(&tf.name).cloned().unwrap_or_default(),
            second.get(&tf.name).cloned().unwrap_or_default(),
        );
        let again: Vec<&u64> = a.intersection(&b).collect();
        assert!(
            again.is_empty(),
            "{}: pieces verified before the kill were fetched again: {again:?}",
            tf.name
        );
        assert_eq!(
            a.len() + b.len(),
            tf.num_pieces as usize,
            "{}: every piece verified exactly once over both runs",
            tf.name
        );
    }
}
