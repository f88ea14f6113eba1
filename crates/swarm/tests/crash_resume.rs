//! Crash safety: swarm downloads 256 MiB from a libtorrent seeder and is killed
//! with SIGKILL at 10 moments drawn from a fixed seed, then restarted each time.
//! The final file must be correct; no restart may start with fewer pieces than
//! the killed run had reported verified (a verified, written piece is never
//! lost), and the payload downloaded over all runs, summed from each run's
//! last `--json` status line, must stay within one piece per restart of the
//! file size (nothing verified is fetched twice). A killed run's last line is
//! up to a second old, so the sum can miss what arrived in that second; the
//! per-restart check on `pieces_have` is the one that catches a lost piece.
//!
//! The download is rate-limited (`--max-download-rate`) so that the kills fall
//! inside the transfer rather than after it; the limit changes when the kills
//! land, not what is checked.
//!
//! Because a status line is up to a second old at a kill (16 MiB at this
//! rate), the status-line sum above undercounts by up to 16 MiB per kill and
//! cannot see one piece fetched twice. So the runs also log, at trace level,
//! every block the session hands the core and every piece verified and
//! written; stderr is unbuffered, so that log is exact up to the kill. From
//! it the test checks the same bound on the bytes really received, and that
//! each restart starts with at least every piece verified before it.

use std::path::PathBuf;
use std::time::Duration;

use swarm_testkit::peers::{lt_seed, require_swarm_subcommand, swarm_download};
use swarm_testkit::{data, *};

const SIZE: u64 = 256 * 1024 * 1024;
const PIECE: u64 = PIECE_256_KIB as u64;
const KILLS: usize = 10;
const SEED: u64 = 0x5eed_c4a5;
/// 256 MiB at 16 MiB/s: ~16 s of transfer for 10 kills.
const RATE: &str = "16M";

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

/// splitmix64: kill delays in milliseconds, reproducible from `SEED`.
fn delays_ms() -> Vec<u64> {
    let mut state = SEED;
    (0..KILLS)
        .map(|_| 300 + data::splitmix64(&mut state) % 1700)
        .collect()
}

/// From a run's trace log: payload bytes the session received (`recv piece
/// ... len=N`) and pieces verified and written (`piece completed piece=N`).
fn received_and_completed(stderr: &str) -> (u64, std::collections::BTreeSet<u64>) {
    let field = |line: &str, key: &str| -> Option<u64> {
        let at = line.find(key)? + key.len();
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let (mut received, mut completed) = (0u64, std::collections::BTreeSet::new());
    for line in stderr.lines() {
        if line.contains("recv piece") {
            received += field(line, " len=").unwrap_or(0);
        } else if line.contains("piece completed") {
            completed.extend(field(line, " piece="));
        }
    }
    (received, completed)
}

fn u64_of(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("status line has an integer `{key}`: {v}"))
}

#[test]
fn sigkill_at_ten_moments_loses_no_verified_piece() {
    if !(require_python_libtorrent() && require_swarm_subcommand(&swarm_bin(), "download")) {
        return;
    }
    let t = TestDir::new("crash");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "big.bin", SIZE, 71);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_256_KIB, &[]);
    let seeder = lt_seed(&t.logs(), "lt-seed", &torrent, &seed_dir, free_addr(), &[]);
    assert!(
        proc::wait_listening(seeder.listen, Duration::from_secs(60)),
        "libtorrent listens"
    );

    let out = t.sub("out");
    let opts = SwarmOpts {
        peers: vec![seeder.listen],
        extra: vec!["--max-download-rate".into(), RATE.into()],
        env: vec![("RUST_LOG".into(), "info,swarm_net::session=trace".into())],
        ..SwarmOpts::default()
    };
    let mut downloaded_total = 0u64;
    let mut have_before_kill = 0u64;
    let mut restarts = 0u64;
    let mut completed = false;
    // From the trace logs: bytes received over all runs, and every piece
    // verified and written so far.
    let mut received_total = 0u64;
    let mut verified_so_far = std::collections::BTreeSet::new();
    for (run, delay) in delays_ms().into_iter().map(Some).chain([None]).enumerate() {
        let mut leech = swarm_download(
            &swarm_bin(),
            &t.logs(),
            &format!("swarm-{run}"),
            &torrent,
            &out,
            free_addr(),
            &opts,
        );
        match delay {
            Some(ms) => {
                // Let it get going (at least one status line), then kill it
                // `ms` later wherever it is.
                let started = proc::wait_until(Duration::from_secs(60), || {
                    !leech.proc.json_lines().is_empty() || leech.proc.try_exit().is_some()
                });
                assert!(
                    started,
                    "run {run} reports status\n{}",
                    leech.proc.log_tail()
                );
                std::thread::sleep(Duration::from_millis(ms));
                leech.proc.kill();
            }
            None => {
                let exited = leech.proc.wait_exit(Duration::from_secs(180));
                assert!(
                    exited.is_some_and(|s| s.success()),
                    "the last run completes and exits 0\n{}",
                    leech.proc.log_tail()
                );
            }
        }
        let (received, verified) = received_and_completed(&leech.proc.stderr());
        received_total += received;
        // Lines printed while the existing data is still being checked do not
        // count yet: `pieces_have` is only final once the check is done.
        let lines: Vec<serde_json::Value> = leech
            .proc
            .json_lines()
            .into_iter()
            .filter(|v| v["state"] != "checking")
            .collect();
        let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
            assert!(delay.is_some(), "the last run printed status");
            continue;
        };
        let have_at_start = u64_of(first, "pieces_have");
        assert!(
            have_at_start >= have_before_kill,
            "run {run} starts with {have_at_start} pieces, but the run killed before it had \
             reported {have_before_kill} verified"
        );
        assert!(
            have_at_start >= verified_so_far.len() as u64,
            "run {run} starts with {have_at_start} pieces, but {} had been verified and \
             written before it",
            verified_so_far.len()
        );
        verified_so_far.extend(verified);
        downloaded_total += u64_of(last, "downloaded");
        have_before_kill = u64_of(last, "pieces_have");
        if delay.is_some() {
            restarts += 1;
        }
        if swarm_testkit::peers::swarm_status_is_complete(last) {
            completed = true;
        }
    }
    assert!(completed, "the download completed");
    assert_same_tree(&content, &out.join("big.bin"));
    let bound = SIZE + restarts * PIECE;
    eprintln!(
        "over {restarts} restarts: status lines count {downloaded_total} bytes downloaded, \
         the trace log {received_total} received (file {SIZE}, bound {bound})"
    );
    assert!(
        downloaded_total <= bound,
        "downloaded {downloaded_total} bytes over {restarts} restarts; at most {bound} \
         (file size + one piece per restart)"
    );
    assert!(
        received_total <= bound,
        "received {received_total} bytes over {restarts} restarts (trace log); at most \
         {bound} (file size + one piece per restart)"
    );
    drop(seeder);
}
