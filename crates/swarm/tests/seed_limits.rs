//! Leave or stay: `--seed-ratio` and `--seed-time` decide when a complete
//! peer leaves, and leaving it announces `stopped` (opentracker forgets it).

use std::path::PathBuf;
use std::time::Duration;

use swarm_testkit::peers::{require_swarm_subcommand, swarm_download, swarm_seed};
use swarm_testkit::{data, tracker, *};

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn u64_of(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("`{key}` in {v}"))
}

/// A seeder told to upload the torrent's size once leaves by itself after a
/// swarm leecher took the whole file from it, and not before: its last status
/// shows at least the file's size uploaded.
#[test]
fn seed_ratio_one_leaves_after_one_full_upload() {
    if !require_swarm_subcommand(&swarm_bin(), "seed") {
        return;
    }
    let t = TestDir::new("seed-ratio");
    let size = 3 * 1024 * 1024 + 17;
    let content = data::single_file(&t.sub("seed"), "ratio.bin", size, 81);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_256_KIB, &[]);
    let opts = SwarmOpts {
        extra: vec!["--seed-ratio".into(), "1".into()],
        ..SwarmOpts::default()
    };
    let mut seeder = swarm_seed(
        &swarm_bin(),
        &t.logs(),
        "seeder",
        &torrent,
        &t.sub("seed"),
        free_addr(),
        &opts,
    );
    assert!(
        proc::wait_listening(seeder.listen, Duration::from_secs(30)),
        "seeder listens"
    );
    // The seeder keeps running while nobody downloads: the ratio is 0.
    assert!(
        seeder.proc.try_exit().is_none(),
        "{}",
        seeder.proc.log_tail()
    );

    let leech_opts = SwarmOpts {
        peers: vec![seeder.listen],
        ..SwarmOpts::default()
    };
    let mut leech = swarm_download(
        &swarm_bin(),
        &t.logs(),
        "leech",
        &torrent,
        &t.sub("out"),
        free_addr(),
        &leech_opts,
    );
    wait_all_complete(&mut [&mut leech], Duration::from_secs(60));
    assert_same_tree(&content, &leech.content(&torrent));

    let status = seeder.proc.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "the seeder leaves with exit 0 once the ratio is reached\n{}",
        seeder.proc.log_tail()
    );
    let last = seeder.proc.json_lines().pop().expect("a final status line");
    assert!(
        u64_of(&last, "uploaded") >= size,
        "uploaded the size once: {last}"
    );
}

/// `--seed-time 2s` after a download: the leecher completes, seeds about two
/// seconds, leaves with exit 0 and announces `stopped` to the tracker, which
/// then lists no peer for the torrent.
#[test]
fn seed_time_leaves_and_announces_stopped() {
    if !(require_program("opentracker") && require_swarm_subcommand(&swarm_bin(), "download")) {
        return;
    }
    let t = TestDir::new("seed-time");
    let content = data::single_file(&t.sub("seed"), "time.bin", 1024 * 1024 + 3, 82);
    let tport = free_port();
    let torrent = make_torrent(
        &content,
        &t.path().join("t.torrent"),
        PIECE_16_KIB,
        &[tracker::http_announce(tport)],
    );
    let tracker = Opentracker::start(&t.sub("tracker"), tport, &[&torrent.info_hash_hex]);

    // The data is already there: "download" checks it, is complete at once,
    // then seeds for --seed-time.
    let opts = SwarmOpts {
        extra: vec!["--seed-time".into(), "2s".into()],
        ..SwarmOpts::default()
    };
    let mut peer = swarm_download(
        &swarm_bin(),
        &t.logs(),
        "seeding-leech",
        &torrent,
        &t.sub("seed"),
        free_addr(),
        &opts,
    );
    let ih = torrent.info_hash_hex.clone();
    assert!(
        tracker.wait_peers(&ih, 1, Duration::from_secs(30)),
        "it announced\n{}",
        peer.proc.log_tail()
    );
    let status = peer.proc.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "it leaves by itself with exit 0\n{}",
        peer.proc.log_tail()
    );
    let lines = peer.proc.json_lines();
    let last = lines.last().expect("status lines");
    assert!(
        last["elapsed_s"].as_f64().unwrap_or(0.0) >= 2.0,
        "seeded 2 s: {last}"
    );
    assert!(
        proc::wait_until(Duration::from_secs(10), || tracker.scrape(&ih)
            == Some((0, 0))),
        "`stopped` made the tracker forget it: scrape {:?}",
        tracker.scrape(&ih)
    );
}
