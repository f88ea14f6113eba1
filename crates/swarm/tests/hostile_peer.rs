//! A hostile peer sends corrupted blocks: swarm must fail those pieces' hashes,
//! fetch them again from an honest seeder (libtorrent), finish with the right
//! bytes, and ban the hostile peer.
//!
//! The hostile peer (`swarm_testkit::hostile`) is raw TCP (BEP 3 handshake,
//! bitfield, unchoke, piece answers), independent of swarm's own wire code,
//! and serves every block with one byte flipped.
//!
//! Phases: first swarm knows only the hostile peer (`--peer`), so every piece
//! it completes comes from it and fails its check. Then an honest libtorrent
//! seeder dials swarm. swarm keeps running after completion (`--seed`), so a
//! closed hostile connection afterwards is swarm's decision, not its exit.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use swarm_testkit::hostile::{HostilePeer, hex20};
use swarm_testkit::peers::{assert_alive, lt_seed, require_swarm_subcommand, swarm_download};
use swarm_testkit::{data, *};

const DEADLINE: Duration = Duration::from_secs(120);

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

/// Whether swarm's output reports a ban: a JSON status field `banned` > 0, or
/// a log line mentioning a ban.
fn reports_ban(p: &Peer) -> bool {
    let json = p.proc.json_lines().iter().any(|v| {
        v["banned"].as_u64().is_some_and(|n| n > 0)
            || v["banned"].as_array().is_some_and(|a| !a.is_empty())
    });
    let log = format!("{}\n{}", p.proc.stdout(), p.proc.stderr()).to_lowercase();
    json || log.lines().any(|l| l.contains("ban"))
}

#[test]
fn corrupt_blocks_are_refetched_and_the_hostile_peer_is_banned() {
    if !(require_python_libtorrent() && require_swarm_subcommand(&swarm_bin(), "download")) {
        return;
    }
    let t = TestDir::new("hostile");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "target.bin", 3 * 1024 * 1024 + 5, 51);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_256_KIB, &[]);
    let bytes = Arc::new(std::fs::read(&content).expect("read content"));
    let piece_len = u64::from(torrent.piece_size);
    let hostile = HostilePeer::start(hex20(&torrent.info_hash_hex), bytes.clone(), piece_len);

    // Phase 1: the hostile peer is swarm's only source.
    let opts = SwarmOpts {
        peers: vec![hostile.addr],
        seed_after: true,
        ..SwarmOpts::default()
    };
    let out = t.sub("swarm-out");
    let mut leech = swarm_download(
        &swarm_bin(),
        &t.logs(),
        "swarm",
        &torrent,
        &out,
        free_addr(),
        &opts,
    );
    // Until swarm hangs up on it (the ban after repeated hash failures), or
    // it served every block twice over.
    let blocks_total = torrent.total_size.div_ceil(16 * 1024) as usize;
    wait_until(Duration::from_secs(30), || {
        hostile.seen.closed_by_peer.load(Ordering::SeqCst) > 0
            || hostile.seen.blocks_sent.load(Ordering::SeqCst) >= 2 * blocks_total
    });
    assert_alive(&mut leech);
    assert!(
        hostile.pieces_fully_served(piece_len, torrent.total_size) >= 1,
        "swarm took at least one whole corrupt piece from the hostile peer (blocks sent: {})\n{}",
        hostile.seen.blocks_sent.load(Ordering::SeqCst),
        leech.proc.log_tail()
    );
    assert!(!leech.is_complete(), "nothing honest was available yet");

    // Phase 2: an honest seeder dials swarm.
    let mut seeder = lt_seed(
        &t.logs(),
        "lt-seed",
        &torrent,
        &seed_dir,
        free_addr(),
        &[leech.listen],
    );
    wait_all_complete(&mut [&mut leech], DEADLINE);
    assert_alive(&mut seeder);
    assert_same_tree(&content, &leech.content(&torrent));

    // The ban: swarm (still running, seeding) holds no connection to the
    // hostile peer, and says so.
    let banned = wait_until(Duration::from_secs(30), || {
        hostile.seen.open.load(Ordering::SeqCst) == 0 && reports_ban(&leech)
    });
    assert!(
        banned,
        "hostile peer not banned: open connections {}, closed by swarm {}, total connections {}, \
         ban reported in output: {}\n{}",
        hostile.seen.open.load(Ordering::SeqCst),
        hostile.seen.closed_by_peer.load(Ordering::SeqCst),
        hostile.seen.connections.load(Ordering::SeqCst),
        reports_ban(&leech),
        leech.proc.log_tail()
    );
    assert_alive(&mut leech);
    let violations = hostile.seen.violations.lock().expect("lock").clone();
    assert!(
        violations.is_empty(),
        "swarm broke the protocol: {violations:?}"
    );
    eprintln!(
        "hostile peer: {} connections, {} closed by swarm, {} corrupt blocks sent",
        hostile.seen.connections.load(Ordering::SeqCst),
        hostile.seen.closed_by_peer.load(Ordering::SeqCst),
        hostile.seen.blocks_sent.load(Ordering::SeqCst)
    );
}
