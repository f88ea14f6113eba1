//! Interop, several torrents in one swarm process on one port (the endpoint
//! routes each handshake to its torrent): one `swarm seed` serves three
//! torrents to three libtorrent leechers at once; one `swarm download`
//! fetches two torrents from two libtorrent seeders at once. Every file is
//! compared with the original, and every `--json` line names its torrent.
//!
//! Needs /usr/bin/python3 with libtorrent: under CI=true a missing one fails
//! the test, otherwise it skips.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use swarm_testkit::peers::{
    self, lt_leech, lt_seed, require_swarm_subcommand, swarm_download, swarm_seed,
};
use swarm_testkit::{data, *};

/// Generous: these transfers take seconds; the bound only stops a hung test.
const DEADLINE: Duration = Duration::from_secs(120);

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn ready(sub: &str) -> bool {
    require_python_libtorrent() && require_swarm_subcommand(&swarm_bin(), sub)
}

/// Every JSON status line names its torrent; returns the info-hashes seen.
fn torrents_in_json(peer: &Peer) -> HashSet<String> {
    let lines = peer.proc.json_lines();
    assert!(
        !lines.is_empty(),
        "{} printed status lines",
        peer.proc.name()
    );
    lines
        .iter()
        .map(|v| {
            let (hash, name) = (v["info_hash"].as_str(), v["name"].as_str());
            assert!(
                hash.is_some_and(|h| h.len() == 40) && name.is_some_and(|n| !n.is_empty()),
                "a status line without its torrent: {v}"
            );
            hash.unwrap_or_default().to_string()
        })
        .collect()
}

#[test]
fn one_swarm_seeder_serves_three_torrents_on_one_port_to_three_libtorrents() {
    if !ready("seed") {
        return;
    }
    let t = TestDir::new("multi-seed");
    let seed_dir = t.sub("seed");
    let contents = [
        data::single_file(&seed_dir, "first.bin", 1_500_007, 41),
        data::tree(&seed_dir, "second-tree", data::ODD_TREE, 42),
        data::single_file(&seed_dir, "third.bin", 3_000_017, 43),
    ];
    let pieces = [PIECE_16_KIB, PIECE_16_KIB, PIECE_256_KIB];
    let torrents: Vec<TorrentFile> = contents
        .iter()
        .zip(pieces)
        .enumerate()
        .map(|(i, (c, piece))| make_torrent(c, &t.path().join(format!("t{i}.torrent")), piece, &[]))
        .collect();
    let opts = SwarmOpts {
        extra: torrents[1..]
            .iter()
            .map(|t| t.path.display().to_string())
            .collect(),
        ..SwarmOpts::default()
    };
    let mut seeder = swarm_seed(
        &swarm_bin(),
        &t.logs(),
        "swarm-seed",
        &torrents[0],
        &seed_dir,
        free_port(),
        &opts,
    );
    assert!(
        proc::wait_listening(seeder.listen, Duration::from_secs(30)),
        "swarm seed listens"
    );
    let mut leeches: Vec<Peer> = torrents
        .iter()
        .enumerate()
        .map(|(i, torrent)| {
            lt_leech(
                &t.logs(),
                &format!("lt-leech-{i}"),
                torrent,
                &t.sub(&format!("lt-out-{i}")),
                free_port(),
                &[seeder.listen],
            )
        })
        .collect();
    let mut refs: Vec<&mut Peer> = leeches.iter_mut().collect();
    wait_all_complete(&mut refs, DEADLINE);
    peers::assert_alive(&mut seeder);
    for ((leech, torrent), content) in leeches.iter().zip(&torrents).zip(&contents) {
        assert_same_tree(content, &leech.content(torrent));
    }
    let seen = torrents_in_json(&seeder);
    for torrent in &torrents {
        assert!(
            seen.contains(&torrent.info_hash_hex),
            "a status line for {}: {seen:?}",
            torrent.name
        );
    }
}

#[test]
fn one_swarm_download_fetches_two_torrents_from_two_libtorrent_seeders() {
    if !ready("download") {
        return;
    }
    let t = TestDir::new("multi-dl");
    let contents = [
        data::single_file(&t.sub("seed-a"), "alpha.bin", 2_000_003, 51),
        data::tree(&t.sub("seed-b"), "beta-tree", data::ODD_TREE, 52),
    ];
    let torrents = [
        make_torrent(
            &contents[0],
            &t.path().join("a.torrent"),
            PIECE_256_KIB,
            &[],
        ),
        make_torrent(&contents[1], &t.path().join("b.torrent"), PIECE_16_KIB, &[]),
    ];
    let mut seeders = [
        lt_seed(
            &t.logs(),
            "lt-seed-a",
            &torrents[0],
            &t.sub("seed-a"),
            free_port(),
            &[],
        ),
        lt_seed(
            &t.logs(),
            "lt-seed-b",
            &torrents[1],
            &t.sub("seed-b"),
            free_port(),
            &[],
        ),
    ];
    for s in &seeders {
        assert!(
            proc::wait_listening(s.listen, Duration::from_secs(30)),
            "libtorrent seeder listens"
        );
    }
    // Both seeders for both torrents: each refuses the torrent it does not
    // have, and the endpoint backs off from it.
    let out = t.sub("swarm-out");
    let opts = SwarmOpts {
        peers: seeders.iter().map(|s| s.listen).collect(),
        extra: vec![torrents[1].path.display().to_string()],
        ..SwarmOpts::default()
    };
    let mut leech = swarm_download(
        &swarm_bin(),
        &t.logs(),
        "swarm",
        &torrents[0],
        &out,
        free_port(),
        &opts,
    );
    let status = leech.proc.wait_exit(DEADLINE);
    assert!(
        status.is_some_and(|s| s.success()),
        "swarm download exits 0 once both are complete: {status:?}\n{}",
        leech.proc.log_tail()
    );
    for s in &mut seeders {
        peers::assert_alive(s);
    }
    for (torrent, content) in torrents.iter().zip(&contents) {
        assert_same_tree(content, &out.join(&torrent.name));
    }
    let finals: Vec<serde_json::Value> = leech
        .proc
        .json_lines()
        .into_iter()
        .filter(|v| v["final"] == true)
        .collect();
    assert_eq!(finals.len(), 2, "one final line per torrent: {finals:?}");
    assert!(
        finals.iter().all(|v| v["state"] == "completed"),
        "{finals:?}"
    );
    let seen = torrents_in_json(&leech);
    assert!(torrents.iter().all(|t| seen.contains(&t.info_hash_hex)));
}
