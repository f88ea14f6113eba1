//! Interop, upload direction: libtorrent, Transmission and aria2 each download
//! from a swarm seeder on loopback; their bytes are compared with the original.
//!
//! Transmission and aria2 take no peer address on their command line, and
//! Transmission ignores 127.x peers from a tracker: the swarm seeder dials
//! them with `--peer`. libtorrent dials the swarm seeder.

use std::path::PathBuf;
use std::time::Duration;

use swarm_testkit::peers::{
    self, aria2_leech, lt_leech, require_swarm_subcommand, swarm_seed, transmission,
};
use swarm_testkit::{data, *};

const DEADLINE: Duration = Duration::from_secs(120);

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn ready(programs: &[&str]) -> bool {
    require_python_libtorrent()
        && programs.iter().all(|p| require_program(p))
        && require_swarm_subcommand(&swarm_bin(), "seed")
}

#[test]
fn libtorrent_downloads_multi_file_16k_pieces_from_swarm() {
    if !ready(&[]) {
        return;
    }
    let t = TestDir::new("seed-lt");
    let seed_dir = t.sub("seed");
    let content = data::tree(&seed_dir, "odd-tree", data::ODD_TREE, 31);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_16_KIB, &[]);
    let opts = SwarmOpts::default();
    let mut seeder = swarm_seed(
        &swarm_bin(),
        &t.logs(),
        "swarm-seed",
        &torrent,
        &seed_dir,
        free_addr(),
        &opts,
    );
    assert!(
        proc::wait_listening(seeder.listen, Duration::from_secs(30)),
        "swarm seed listens"
    );
    let mut leech = lt_leech(
        &t.logs(),
        "lt-leech",
        &torrent,
        &t.sub("lt-out"),
        free_addr(),
        &[seeder.listen],
    );
    wait_all_complete(&mut [&mut leech], DEADLINE);
    peers::assert_alive(&mut seeder);
    assert_same_tree(&content, &leech.content(&torrent));
}

#[test]
fn transmission_downloads_single_file_4m_pieces_from_swarm() {
    if !ready(&["transmission-cli"]) {
        return;
    }
    let t = TestDir::new("seed-tr");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "four-mib-pieces.bin", 5_000_011, 32);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_4_MIB, &[]);
    let mut leech = transmission(
        &t.logs(),
        "transmission",
        &torrent,
        &t.sub("tr-out"),
        free_port(),
        false,
    );
    assert!(
        proc::wait_listening(leech.listen, Duration::from_secs(20)),
        "transmission listens"
    );
    let opts = SwarmOpts {
        peers: vec![leech.listen],
        ..SwarmOpts::default()
    };
    let mut seeder = swarm_seed(
        &swarm_bin(),
        &t.logs(),
        "swarm-seed",
        &torrent,
        &seed_dir,
        free_addr(),
        &opts,
    );
    wait_all_complete(&mut [&mut leech], DEADLINE);
    peers::assert_alive(&mut seeder);
    assert_same_tree(&content, &leech.content(&torrent));
}

#[test]
fn aria2_downloads_single_file_256k_pieces_from_swarm() {
    if !ready(&["aria2c"]) {
        return;
    }
    let t = TestDir::new("seed-aria2");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "quarter-mib-pieces.bin", 2_345_679, 33);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_256_KIB, &[]);
    let mut leech = aria2_leech(
        &t.logs(),
        "aria2",
        &torrent,
        &t.sub("aria2-out"),
        free_port(),
    );
    assert!(
        proc::wait_listening(leech.listen, Duration::from_secs(20)),
        "aria2 listens"
    );
    let opts = SwarmOpts {
        peers: vec![leech.listen],
        ..SwarmOpts::default()
    };
    let mut seeder = swarm_seed(
        &swarm_bin(),
        &t.logs(),
        "swarm-seed",
        &torrent,
        &seed_dir,
        free_addr(),
        &opts,
    );
    wait_all_complete(&mut [&mut leech], DEADLINE);
    peers::assert_alive(&mut seeder);
    assert_same_tree(&content, &leech.content(&torrent));
}
