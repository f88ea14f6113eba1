//! The harness checked against real clients only (no swarm): if these fail,
//! an interop failure is the harness's, not swarm's.

use std::time::Duration;

use swarm_testkit::peers::{aria2_leech, aria2_seed, lt_leech, lt_seed, transmission};
use swarm_testkit::{data, *};

const DEADLINE: Duration = Duration::from_secs(120);

fn have_all(programs: &[&str]) -> bool {
    require_python_libtorrent() && programs.iter().all(|p| require_program(p))
}

#[test]
fn libtorrent_to_transmission_and_aria2_by_dialling_them() {
    if !have_all(&["transmission-cli", "aria2c"]) {
        return;
    }
    let t = TestDir::new("h-lt-out");
    let data_dir = t.sub("seed");
    let content = data::tree(&data_dir, "tree", data::ODD_TREE, 11);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_16_KIB, &[]);
    let (tp, ap) = (free_port(), free_port());
    let mut tr = transmission(&t.logs(), "transmission", &torrent, &t.sub("tr"), tp, false);
    let mut ar = aria2_leech(&t.logs(), "aria2", &torrent, &t.sub("ar"), ap);
    assert!(proc::wait_listening(tr.listen, Duration::from_secs(20)));
    assert!(proc::wait_listening(ar.listen, Duration::from_secs(20)));
    let mut seed = lt_seed(
        &t.logs(),
        "lt-seed",
        &torrent,
        &data_dir,
        free_port(),
        &[tr.listen, ar.listen],
    );
    wait_all_complete(&mut [&mut tr, &mut ar], DEADLINE);
    peers::assert_alive(&mut seed);
    assert_same_tree(&content, &tr.content(&torrent));
    assert_same_tree(&content, &ar.content(&torrent));
}

#[test]
fn transmission_and_aria2_seed_to_libtorrent() {
    if !have_all(&["transmission-cli", "aria2c"]) {
        return;
    }
    let t = TestDir::new("h-lt-in");
    let data_dir = t.sub("seed");
    let content = data::single_file(&data_dir, "odd.bin", 1_234_567, 12);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_256_KIB, &[]);
    let mut tr = transmission(
        &t.logs(),
        "transmission",
        &torrent,
        &data_dir,
        free_port(),
        true,
    );
    let mut ar = aria2_seed(&t.logs(), "aria2", &torrent, &data_dir, free_port());
    let mut l1 = lt_leech(
        &t.logs(),
        "lt-from-tr",
        &torrent,
        &t.sub("l1"),
        free_port(),
        &[tr.listen],
    );
    let mut l2 = lt_leech(
        &t.logs(),
        "lt-from-ar",
        &torrent,
        &t.sub("l2"),
        free_port(),
        &[ar.listen],
    );
    wait_all_complete(&mut [&mut l1, &mut l2], DEADLINE);
    peers::assert_alive(&mut tr);
    peers::assert_alive(&mut ar);
    assert_same_tree(&content, &l1.content(&torrent));
    assert_same_tree(&content, &l2.content(&torrent));
}

#[test]
fn opentracker_swarm_of_libtorrent_and_transmission() {
    if !have_all(&["transmission-cli", "opentracker"]) {
        return;
    }
    let t = TestDir::new("h-tracker");
    let data_dir = t.sub("seed");
    let content = data::tree(&data_dir, "tree", data::BIG_PIECE_TREE, 13);
    let tport = free_port();
    let torrent = make_torrent(
        &content,
        &t.path().join("t.torrent"),
        PIECE_4_MIB,
        &[tracker::http_announce(tport)],
    );
    let tracker = Opentracker::start(&t.sub("tracker"), tport, &[&torrent.info_hash_hex]);
    // Transmission first: it learns nobody usable from the tracker (127.x is
    // ignored) but everyone announcing after it dials it.
    let mut tr = transmission(
        &t.logs(),
        "transmission",
        &torrent,
        &t.sub("tr"),
        free_port(),
        false,
    );
    assert!(proc::wait_listening(tr.listen, Duration::from_secs(20)));
    assert_eq!(tracker.scrape(&torrent.info_hash_hex), Some((0, 0)));
    assert!(
        tracker.wait_peers(&torrent.info_hash_hex, 1, Duration::from_secs(30)),
        "transmission announced"
    );
    let _seed = lt_seed(&t.logs(), "lt-seed", &torrent, &data_dir, free_port(), &[]);
    let mut l1 = lt_leech(
        &t.logs(),
        "lt-leech",
        &torrent,
        &t.sub("l1"),
        free_port(),
        &[],
    );
    wait_all_complete(&mut [&mut tr, &mut l1], DEADLINE);
    assert_same_tree(&content, &tr.content(&torrent));
    assert_same_tree(&content, &l1.content(&torrent));
}
