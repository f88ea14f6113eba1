//! How much CPU the cores spend per block: a seeder core and a leecher core
//! shuttle a 1 GiB torrent (256 KiB pieces) with no IO at all. Storage is
//! answered instantly with zero-copy slices; hashing is skipped.
//!
//! Ignored by default (it measures, it does not check behaviour):
//! `cargo test --release -p swarm-engine --test throughput -- --ignored --nocapture`

use bytes::Bytes;
use swarm_engine::{
    Bitfield, Instant, PeerInfo, PeerKey, StorageDone, TorrentConfig, TorrentCore, TorrentEvent,
};
use swarm_wire::Lengths;

#[test]
#[ignore]
fn core_overhead_per_block() {
    const PIECE: u32 = 256 * 1024;
    const TOTAL: u64 = 1 << 30;
    let lengths = Lengths::new(TOTAL, PIECE).unwrap();
    let n = lengths.num_pieces();
    let zeros = Bytes::from(vec![0u8; PIECE as usize]);
    let mut seeder = TorrentCore::new(
        TorrentConfig::default(),
        lengths,
        Bitfield::full(n),
        1,
        Instant::ZERO,
    );
    let mut leecher = TorrentCore::new(
        TorrentConfig::default(),
        lengths,
        Bitfield::empty(n),
        2,
        Instant::ZERO,
    );
    let info = PeerInfo {
        fast_ext: true,
        outgoing: true,
    };
    seeder.peer_connected(Instant::ZERO, PeerKey(1), info);
    leecher.peer_connected(Instant::ZERO, PeerKey(1), info);
    // A measurement harness, not engine code: it may read the wall clock.
    #[allow(clippy::disallowed_methods)]
    let start = std::time::Instant::now();
    let mut now = Instant::ZERO;
    let mut rounds = 0u64;
    let mut messages = 0u64;
    while !leecher.is_complete() {
        rounds += 1;
        assert!(rounds < 10_000_000, "stuck");
        // Virtual time: 1 GiB/s, i.e. 16 µs per block handled.
        now = Instant(now.0 + 16);
        let mut progress = false;
        while let Some(ev) = seeder.poll_event() {
            if let TorrentEvent::ReadBlock { peer, block } = ev {
                let data =
                    zeros.slice(block.offset as usize..(block.offset + block.length) as usize);
                seeder.handle_storage(now, StorageDone::BlockRead { peer, block, data });
                progress = true;
            }
        }
        while let Some((k, m)) = seeder.poll_transmit() {
            leecher.handle_message(now, k, m);
            messages += 1;
            progress = true;
        }
        while let Some(ev) = leecher.poll_event() {
            if let TorrentEvent::VerifyPiece { piece, .. } = ev {
                leecher.handle_storage(now, StorageDone::PieceVerified { piece, ok: true });
                progress = true;
            }
        }
        while let Some((k, m)) = leecher.poll_transmit() {
            seeder.handle_message(now, k, m);
            messages += 1;
            progress = true;
        }
        if !progress || leecher.poll_timeout().is_some_and(|t| t <= now) {
            leecher.handle_timeout(now);
            seeder.handle_timeout(now);
        }
    }
    let el = start.elapsed();
    let blocks = TOTAL / 16384;
    println!(
        "1 GiB through two cores: {:.1} ms CPU, {:.0} ns per block, {} messages, {:.0} MiB/s equivalent",
        el.as_secs_f64() * 1e3,
        el.as_nanos() as f64 / blocks as f64,
        messages,
        1024.0 / el.as_secs_f64()
    );
    leecher.check_invariants();
    seeder.check_invariants();
}
