//! Interop, download direction: swarm leeches from libtorrent, Transmission and
//! aria2 seeders on loopback, and the bytes it wrote are compared with the
//! original. Tracker-less cases pass the seeder with `--peer`; one case finds
//! the seeder through opentracker (UDP, BEP 15).
//!
//! Needs /usr/bin/python3 with libtorrent, transmission-cli, aria2c and
//! opentracker: under CI=true a missing one fails the test, otherwise it skips.

use std::path::{Path, PathBuf};
use std::time::Duration;

use swarm_testkit::peers::{
    self, aria2_seed, lt_seed, require_swarm_subcommand, swarm_download, transmission,
};
use swarm_testkit::{data, tracker, *};

/// Generous: these transfers take seconds; the bound only stops a hung test.
const DEADLINE: Duration = Duration::from_secs(120);

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn ready(programs: &[&str]) -> bool {
    require_python_libtorrent()
        && programs.iter().all(|p| require_program(p))
        && require_swarm_subcommand(&swarm_bin(), "download")
}

/// swarm downloads `torrent` from `seeder` (given with `--peer`) and must end
/// with the bytes of `content`.
fn swarm_leech_from(t: &TestDir, torrent: &TorrentFile, content: &Path, seeder: &mut Peer) {
    let out = t.sub("swarm-out");
    let opts = SwarmOpts {
        peers: vec![seeder.listen],
        ..SwarmOpts::default()
    };
    let mut leech = swarm_download(
        &swarm_bin(),
        &t.logs(),
        "swarm",
        torrent,
        &out,
        free_addr(),
        &opts,
    );
    wait_all_complete(&mut [&mut leech], DEADLINE);
    peers::assert_alive(seeder);
    assert_same_tree(content, &leech.content(torrent));
}

#[test]
fn swarm_downloads_single_file_16k_pieces_from_libtorrent() {
    if !ready(&[]) {
        return;
    }
    let t = TestDir::new("dl-lt-single");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "odd-size.bin", 1_000_003, 21);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_16_KIB, &[]);
    let mut seeder = lt_seed(&t.logs(), "lt-seed", &torrent, &seed_dir, free_addr(), &[]);
    assert!(
        proc::wait_listening(seeder.listen, Duration::from_secs(20)),
        "libtorrent listens"
    );
    swarm_leech_from(&t, &torrent, &content, &mut seeder);
}

#[test]
fn swarm_downloads_multi_file_256k_pieces_from_libtorrent_via_udp_opentracker() {
    if !ready(&["opentracker"]) {
        return;
    }
    let t = TestDir::new("dl-lt-tracker");
    let seed_dir = t.sub("seed");
    let mut files = data::ODD_TREE.to_vec();
    files.push(("empty/zero-length", 0)); // swarm must create empty files too
    let content = data::tree(&seed_dir, "odd-tree", &files, 22);
    let tport = free_port();
    let announce = [tracker::udp_announce(tport)];
    let torrent = make_torrent(
        &content,
        &t.path().join("t.torrent"),
        PIECE_256_KIB,
        &announce,
    );
    let tracker = Opentracker::start(&t.sub("tracker"), tport, &[&torrent.info_hash_hex]);
    let mut seeder = lt_seed(&t.logs(), "lt-seed", &torrent, &seed_dir, free_addr(), &[]);
    let announced = tracker.wait_peers(&torrent.info_hash_hex, 1, Duration::from_secs(30));
    assert!(announced, "libtorrent announced to opentracker");
    // No --peer: swarm finds the seeder through the tracker.
    let out = t.sub("swarm-out");
    let opts = SwarmOpts::default();
    let mut leech = swarm_download(
        &swarm_bin(),
        &t.logs(),
        "swarm",
        &torrent,
        &out,
        free_addr(),
        &opts,
    );
    wait_all_complete(&mut [&mut leech], DEADLINE);
    peers::assert_alive(&mut seeder);
    assert_same_tree(&content, &leech.content(&torrent));
}

#[test]
fn swarm_downloads_multi_file_4m_pieces_from_transmission() {
    if !ready(&["transmission-cli"]) {
        return;
    }
    let t = TestDir::new("dl-tr");
    let seed_dir = t.sub("seed");
    let content = data::tree(&seed_dir, "big-pieces", data::BIG_PIECE_TREE, 23);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_4_MIB, &[]);
    let mut seeder = transmission(
        &t.logs(),
        "transmission-seed",
        &torrent,
        &seed_dir,
        free_port(),
        true,
    );
    assert!(
        proc::wait_listening(seeder.listen, Duration::from_secs(20)),
        "transmission listens"
    );
    swarm_leech_from(&t, &torrent, &content, &mut seeder);
}

#[test]
fn swarm_downloads_multi_file_16k_pieces_from_aria2() {
    if !ready(&["aria2c"]) {
        return;
    }
    let t = TestDir::new("dl-aria2");
    let seed_dir = t.sub("seed");
    let content = data::tree(&seed_dir, "odd-tree", data::ODD_TREE, 24);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_16_KIB, &[]);
    let mut seeder = aria2_seed(&t.logs(), "aria2-seed", &torrent, &seed_dir, free_port());
    assert!(
        proc::wait_listening(seeder.listen, Duration::from_secs(20)),
        "aria2 listens"
    );
    swarm_leech_from(&t, &torrent, &content, &mut seeder);
}
