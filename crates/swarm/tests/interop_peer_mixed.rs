//! Interop, a mixed swarm through opentracker (HTTP): 1 libtorrent seed,
//! 2 swarm leechers, 1 libtorrent leecher and 1 Transmission leecher. Every
//! member must complete with the original bytes.
//!
//! Order matters on loopback: Transmission ignores 127.x peers a tracker hands
//! it, so it starts first and everyone announcing after it dials it. The
//! leechers announce before the seed, so the seed's answer lists them all.

use std::path::PathBuf;
use std::time::Duration;

use swarm_testkit::peers::{
    assert_alive, lt_leech, lt_seed, require_swarm_subcommand, swarm_download, transmission,
};
use swarm_testkit::{data, tracker, *};

const DEADLINE: Duration = Duration::from_secs(180);

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

#[test]
fn mixed_swarm_via_opentracker_every_member_completes() {
    if !(require_python_libtorrent()
        && require_program("transmission-cli")
        && require_program("opentracker")
        && require_swarm_subcommand(&swarm_bin(), "download"))
    {
        return;
    }
    let t = TestDir::new("mixed");
    let seed_dir = t.sub("seed");
    let content = data::tree(&seed_dir, "mixed-tree", data::ODD_TREE, 41);
    let tport = free_port();
    let announce = [tracker::http_announce(tport)];
    let torrent = make_torrent(
        &content,
        &t.path().join("t.torrent"),
        PIECE_256_KIB,
        &announce,
    );
    let tracker = Opentracker::start(&t.sub("tracker"), tport, &[&torrent.info_hash_hex]);
    let ih = torrent.info_hash_hex.clone();
    let announced = |n: u64| {
        let ok = tracker.wait_peers(&ih, n, Duration::from_secs(30));
        assert!(ok, "{n} peers announced to opentracker");
    };

    let mut tr = transmission(
        &t.logs(),
        "transmission",
        &torrent,
        &t.sub("tr"),
        free_port(),
        false,
    );
    announced(1);
    // Swarm leechers keep seeding once complete (`--seed`): each member is a
    // source for the others, which is what a swarm is.
    let opts = SwarmOpts {
        seed_after: true,
        ..SwarmOpts::default()
    };
    let mut s1 = swarm_download(
        &swarm_bin(),
        &t.logs(),
        "swarm-1",
        &torrent,
        &t.sub("s1"),
        free_addr(),
        &opts,
    );
    announced(2);
    let mut l1 = lt_leech(
        &t.logs(),
        "lt-leech",
        &torrent,
        &t.sub("lt"),
        free_addr(),
        &[],
    );
    announced(3);
    let mut s2 = swarm_download(
        &swarm_bin(),
        &t.logs(),
        "swarm-2",
        &torrent,
        &t.sub("s2"),
        free_addr(),
        &opts,
    );
    announced(4);
    let mut seed = lt_seed(&t.logs(), "lt-seed", &torrent, &seed_dir, free_addr(), &[]);

    wait_all_complete(&mut [&mut tr, &mut s1, &mut s2, &mut l1], DEADLINE);
    assert_alive(&mut seed);
    for p in [&tr, &s1, &s2, &l1] {
        if let Err(e) = compare_tree(&content, &p.content(&torrent)) {
            panic!("{}: {e}", p.proc.name());
        }
    }
}
