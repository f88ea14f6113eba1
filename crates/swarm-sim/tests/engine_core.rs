//! TorrentCore against hand-driven peers, with a fake clock and fixed seeds.

use bytes::Bytes;
use swarm_engine::{
    Bitfield, ChokeState, Duration, HASH_FAILURES_BAN, Instant, PeerInfo, PeerKey, StorageDone,
    TorrentConfig, TorrentCore, TorrentEvent,
};
use swarm_sim::harness::*;
use swarm_wire::Lengths;
use swarm_wire::peer::Message;

const SLOW: PeerInfo = PeerInfo {
    fast_ext: false,
    outgoing: true,
};
const FAST: PeerInfo = PeerInfo {
    fast_ext: true,
    outgoing: true,
};

fn leecher(pieces: u32, piece_len: u32) -> TorrentCore {
    leecher_with(TorrentConfig::default(), pieces, piece_len)
}

fn leecher_with(config: TorrentConfig, pieces: u32, piece_len: u32) -> TorrentCore {
    let l = Lengths::new(u64::from(pieces) * u64::from(piece_len), piece_len).unwrap();
    TorrentCore::new(config, l, Bitfield::empty(pieces), 42, Instant::ZERO)
}

fn seeder(pieces: u32, piece_len: u32) -> TorrentCore {
    seeder_with(TorrentConfig::default(), pieces, piece_len)
}

fn seeder_with(config: TorrentConfig, pieces: u32, piece_len: u32) -> TorrentCore {
    let l = Lengths::new(u64::from(pieces) * u64::from(piece_len), piece_len).unwrap();
    TorrentCore::new(config, l, Bitfield::full(pieces), 42, Instant::ZERO)
}

/// A seeder that unchokes only interested peers (no preemptive unchoke), for
/// the tests of what choking means.
fn strict_seeder(pieces: u32, piece_len: u32) -> TorrentCore {
    let mut config = TorrentConfig::default();
    config.choker.preemptive_unchoke = false;
    seeder_with(config, pieces, piece_len)
}

fn requests(tx: &[(PeerKey, Message)], to: PeerKey) -> Vec<(u32, u32, u32)> {
    tx.iter()
        .filter(|(k, _)| *k == to)
        .filter_map(|(_, m)| match m {
            Message::Request {
                piece,
                offset,
                length,
            } => Some((*piece, *offset, *length)),
            _ => None,
        })
        .collect()
}

fn disconnected(ev: &[TorrentEvent]) -> Vec<(PeerKey, bool)> {
    ev.iter()
        .filter_map(|e| match e {
            TorrentEvent::Disconnect { peer, ban, .. } => Some((*peer, *ban)),
            _ => None,
        })
        .collect()
}

/// A leecher whose peer `key` has every piece and unchokes us.
fn unchoked_by_seed(
    core: &mut TorrentCore,
    key: PeerKey,
    info: PeerInfo,
) -> Vec<(PeerKey, Message)> {
    core.peer_connected(Instant::ZERO, key, info);
    let n = core.lengths().num_pieces();
    core.handle_message(
        Instant::ZERO,
        key,
        Message::Bitfield(Bitfield::full(n).to_wire()),
    );
    core.handle_message(Instant::ZERO, key, Message::Unchoke);
    core.check_invariants();
    drain(core).0
}

#[test]
fn first_message_is_our_piece_state() {
    let mut s = seeder(3, K);
    s.peer_connected(Instant::ZERO, PeerKey(1), SLOW);
    s.peer_connected(Instant::ZERO, PeerKey(2), FAST);
    let (tx, _) = drain(&mut s);
    let first = |k| tx.iter().find(|(p, _)| *p == PeerKey(k)).unwrap().1.clone();
    assert_eq!(
        first(1),
        Message::Bitfield(Bytes::from_static(&[0b1110_0000]))
    );
    assert_eq!(first(2), Message::HaveAll);
    let mut l = leecher(3, K);
    l.peer_connected(Instant::ZERO, PeerKey(1), SLOW);
    l.peer_connected(Instant::ZERO, PeerKey(2), FAST);
    let (tx, _) = drain(&mut l);
    assert_eq!(tx, vec![(PeerKey(2), Message::HaveNone)]);
}

#[test]
fn interest_follows_availability() {
    let mut c = leecher(4, K);
    c.peer_connected(Instant::ZERO, PeerKey(1), SLOW);
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Have { piece: 2 });
    let (tx, _) = drain(&mut c);
    assert_eq!(tx, vec![(PeerKey(1), Message::Interested)]);
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Unchoke);
    let (tx, _) = drain(&mut c);
    assert_eq!(requests(&tx, PeerKey(1)), vec![(2, 0, K)]);
    let data = Bytes::from(vec![7; K as usize]);
    c.handle_message(
        Instant::ZERO,
        PeerKey(1),
        Message::Piece {
            piece: 2,
            offset: 0,
            data: data.clone(),
        },
    );
    let (_, ev) = drain(&mut c);
    let piece = c.lengths().validate_piece_index(2).unwrap();
    assert_eq!(
        ev,
        vec![TorrentEvent::VerifyPiece {
            piece,
            blocks: vec![data]
        }]
    );
    // Not have until verified and written.
    assert!(!c.have().get(2));
    c.check_invariants();
    c.handle_storage(
        Instant::ZERO,
        StorageDone::PieceVerified { piece, ok: true },
    );
    let (tx, ev) = drain(&mut c);
    assert!(c.have().get(2));
    assert_eq!(ev, vec![TorrentEvent::PieceCompleted(piece)]);
    // The peer has it already: nothing left to want from it, and it hears
    // of our new piece all the same (redundant have, as libtorrent sends).
    // Our first piece: a free slot unchokes the new peer (preemptive).
    assert_eq!(
        tx,
        vec![
            (PeerKey(1), Message::NotInterested),
            (PeerKey(1), Message::Have { piece: 2 }),
            (PeerKey(1), Message::Unchoke)
        ]
    );
    c.check_invariants();
}

#[test]
fn protocol_violations_disconnect_only_the_offender() {
    let cases: Vec<(&str, Message)> = vec![
        (
            "bitfield too long",
            Message::Bitfield(Bytes::from_static(&[0xff, 0])),
        ),
        (
            "spare bits",
            Message::Bitfield(Bytes::from_static(&[0b1111_1110])),
        ),
        ("have out of range", Message::Have { piece: 6 }),
        (
            "request outside",
            Message::Request {
                piece: 0,
                offset: K,
                length: K,
            },
        ),
        (
            "request too long",
            Message::Request {
                piece: 0,
                offset: 0,
                length: K + 1,
            },
        ),
        (
            "unrequested piece",
            Message::Piece {
                piece: 1,
                offset: 0,
                data: Bytes::from(vec![0; K as usize]),
            },
        ),
        ("have-all without fast", Message::HaveAll),
        (
            "reject without fast",
            Message::RejectRequest {
                piece: 0,
                offset: 0,
                length: K,
            },
        ),
    ];
    for (what, msg) in cases {
        let mut c = strict_seeder(6, K);
        c.peer_connected(Instant::ZERO, PeerKey(1), SLOW);
        c.peer_connected(Instant::ZERO, PeerKey(2), SLOW);
        drain(&mut c);
        c.handle_message(Instant::ZERO, PeerKey(1), msg);
        let (_, ev) = drain(&mut c);
        assert_eq!(disconnected(&ev), vec![(PeerKey(1), false)], "{what}");
        assert_eq!(c.num_peers(), 1, "{what}");
        // Later input from the dropped peer is ignored; the other goes on.
        c.handle_message(Instant::ZERO, PeerKey(1), Message::Interested);
        c.handle_message(Instant::ZERO, PeerKey(2), Message::Interested);
        let (tx, _) = drain(&mut c);
        assert_eq!(tx, vec![(PeerKey(2), Message::Unchoke)], "{what}");
        c.check_invariants();
    }
}

#[test]
fn a_late_bitfield_is_merged_not_a_violation() {
    // aria2 1.36 sends have-none, requests, then a bitfield.
    let mut c = leecher(8, K);
    c.peer_connected(Instant::ZERO, PeerKey(1), SLOW);
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Have { piece: 1 });
    c.handle_message(
        Instant::ZERO,
        PeerKey(1),
        Message::Bitfield(Bytes::from_static(&[0x0f])),
    );
    let (_, ev) = drain(&mut c);
    assert!(disconnected(&ev).is_empty());
    assert_eq!(c.peer(Instant::ZERO, PeerKey(1)).map(|p| p.pieces), Some(5));
    c.check_invariants();
}

/// libtorrent's preemptive unchoke: while regular slots are free, a new peer
/// is unchoked at once, before it is interested, so its first requests go
/// out with its `interested` (Transmission otherwise waits a request pulse);
/// an interested peer takes such a slot back; a leecher with nothing to give
/// unchokes nobody early.
#[test]
fn free_slots_unchoke_new_peers_before_they_ask() {
    let mut c = seeder(8, K);
    for k in 1..=5 {
        c.peer_connected(Instant::ZERO, PeerKey(k), FAST);
    }
    let (tx, _) = drain(&mut c);
    let unchoked: Vec<u64> = tx
        .iter()
        .filter(|(_, m)| *m == Message::Unchoke)
        .map(|(k, _)| k.0)
        .collect();
    // Four regular slots; the optimistic one is for interested peers only.
    assert_eq!(unchoked, vec![1, 2, 3, 4]);
    assert_eq!(tx[0], (PeerKey(1), Message::HaveAll), "piece state first");
    assert_eq!(tx[1], (PeerKey(1), Message::Unchoke));
    // An unchoked peer's requests are served at once.
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Interested);
    c.handle_message(
        Instant::ZERO,
        PeerKey(1),
        Message::Request {
            piece: 0,
            offset: 0,
            length: K,
        },
    );
    let (_, ev) = drain(&mut c);
    assert_eq!(reads(&ev).len(), 1, "{ev:?}");
    // Peer 5 becomes interested: it takes a slot from a peer that is not.
    c.handle_message(Instant::ZERO, PeerKey(5), Message::Interested);
    let (tx, _) = drain(&mut c);
    assert!(tx.contains(&(PeerKey(5), Message::Unchoke)), "{tx:?}");
    assert_eq!(
        tx.iter().filter(|(_, m)| *m == Message::Choke).count(),
        1,
        "one preemptive peer gives its slot back: {tx:?}"
    );
    c.check_invariants();
    // Peers that stay uninterested lose the early unchoke once they are no
    // longer new (30 s), at a rechoke round.
    let later = Instant::ZERO + Duration::from_secs(40);
    c.handle_timeout(later);
    let (tx, _) = drain(&mut c);
    let choked: Vec<u64> = tx
        .iter()
        .filter(|(_, m)| *m == Message::Choke)
        .map(|(k, _)| k.0)
        .collect();
    assert_eq!(choked.len(), 2, "{tx:?}");
    assert!(!choked.contains(&1) && !choked.contains(&5), "{tx:?}");
    c.check_invariants();
    // A leecher with no piece has nothing to give: no early unchoke.
    let mut l = leecher(8, K);
    l.peer_connected(Instant::ZERO, PeerKey(1), FAST);
    let (tx, _) = drain(&mut l);
    assert_eq!(tx, vec![(PeerKey(1), Message::HaveNone)]);
    // Its first piece gives it something: the free slots go to its new
    // peers at once, right after the `have` (a peer that wants the piece
    // then sends its requests with its `interested`).
    l.peer_connected(Instant::ZERO, PeerKey(2), FAST);
    l.handle_message(Instant::ZERO, PeerKey(2), Message::HaveAll);
    l.handle_message(Instant::ZERO, PeerKey(2), Message::Unchoke);
    let (tx, _) = drain(&mut l);
    let (piece, offset, _) = requests(&tx, PeerKey(2))[0];
    l.handle_message(
        Instant::ZERO,
        PeerKey(2),
        Message::Piece {
            piece,
            offset,
            data: Bytes::from(vec![0; K as usize]),
        },
    );
    let (tx, _) = drain(&mut l);
    assert!(!tx.contains(&(PeerKey(1), Message::Unchoke)), "{tx:?}");
    let vp = l.lengths().validate_piece_index(piece).unwrap();
    l.handle_storage(
        Instant::ZERO,
        StorageDone::PieceVerified {
            piece: vp,
            ok: true,
        },
    );
    let (tx, _) = drain(&mut l);
    let at = |m: Message| tx.iter().position(|x| *x == (PeerKey(1), m.clone()));
    let (have, unchoke) = (at(Message::Have { piece }), at(Message::Unchoke));
    assert!(
        have.is_some() && unchoke.is_some() && have < unchoke,
        "{tx:?}"
    );
    l.check_invariants();
}

#[test]
fn choked_peers_get_no_data_fast_peers_get_rejects() {
    let mut c = strict_seeder(4, K);
    c.peer_connected(Instant::ZERO, PeerKey(1), SLOW);
    c.peer_connected(Instant::ZERO, PeerKey(2), FAST);
    drain(&mut c);
    // Neither is interested, so both are choked: requests get no data.
    c.handle_message(
        Instant::ZERO,
        PeerKey(1),
        Message::Request {
            piece: 0,
            offset: 0,
            length: K,
        },
    );
    c.handle_message(
        Instant::ZERO,
        PeerKey(2),
        Message::Request {
            piece: 1,
            offset: 0,
            length: K,
        },
    );
    let (tx, ev) = drain(&mut c);
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(
        tx,
        vec![(
            PeerKey(2),
            Message::RejectRequest {
                piece: 1,
                offset: 0,
                length: K
            }
        )]
    );
    // Once unchoked, a request is read from disk and answered.
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Interested);
    c.handle_message(
        Instant::ZERO,
        PeerKey(1),
        Message::Request {
            piece: 3,
            offset: 0,
            length: 100,
        },
    );
    let (tx, ev) = drain(&mut c);
    assert_eq!(tx, vec![(PeerKey(1), Message::Unchoke)]);
    let block = c.lengths().validate_block(3, 0, 100).unwrap();
    assert_eq!(
        ev,
        vec![TorrentEvent::ReadBlock {
            peer: PeerKey(1),
            block
        }]
    );
    let data = Bytes::from(vec![3; 100]);
    c.handle_storage(
        Instant::ZERO,
        StorageDone::BlockRead {
            peer: PeerKey(1),
            block,
            data: data.clone(),
        },
    );
    let (tx, _) = drain(&mut c);
    assert_eq!(
        tx,
        vec![(
            PeerKey(1),
            Message::Piece {
                piece: 3,
                offset: 0,
                data
            }
        )]
    );
    assert_eq!(c.stats(Instant::ZERO).uploaded, 100);
    c.check_invariants();
}

#[test]
fn cancel_is_respected_and_choke_drops_queued_requests() {
    let mut c = strict_seeder(4, K);
    c.peer_connected(Instant::ZERO, PeerKey(1), FAST);
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Interested);
    drain(&mut c);
    c.handle_message(
        Instant::ZERO,
        PeerKey(1),
        Message::Request {
            piece: 0,
            offset: 0,
            length: K,
        },
    );
    c.handle_message(
        Instant::ZERO,
        PeerKey(1),
        Message::Cancel {
            piece: 0,
            offset: 0,
            length: K,
        },
    );
    let (_, ev) = drain(&mut c);
    let block = c.lengths().validate_block(0, 0, K).unwrap();
    assert_eq!(
        ev,
        vec![TorrentEvent::ReadBlock {
            peer: PeerKey(1),
            block
        }]
    );
    // The read was already under way; its result is dropped.
    c.handle_storage(
        Instant::ZERO,
        StorageDone::BlockRead {
            peer: PeerKey(1),
            block,
            data: Bytes::from(vec![0; K as usize]),
        },
    );
    let (tx, _) = drain(&mut c);
    assert!(tx.is_empty(), "{tx:?}");
    // Losing interest frees the slot at the next tick: the peer is choked
    // and its pending request is rejected (BEP 6).
    c.handle_message(
        Instant::ZERO,
        PeerKey(1),
        Message::Request {
            piece: 1,
            offset: 0,
            length: K,
        },
    );
    c.handle_message(Instant::ZERO, PeerKey(1), Message::NotInterested);
    let (tx, _) = drain(&mut c);
    assert!(tx.is_empty(), "choked before the tick: {tx:?}");
    c.handle_timeout(Instant(1_000_000));
    let (tx, _) = drain(&mut c);
    assert_eq!(
        tx,
        vec![
            (PeerKey(1), Message::Choke),
            (
                PeerKey(1),
                Message::RejectRequest {
                    piece: 1,
                    offset: 0,
                    length: K
                }
            )
        ]
    );
    c.check_invariants();
}

/// Between rechoke rounds, interested peers fill free slots at once: four
/// regular slots (ties by key while no rate is known), then the optimistic one.
#[test]
fn free_slots_are_filled_between_rounds() {
    let mut c = strict_seeder(4, K);
    for k in 1..=6 {
        c.peer_connected(Instant::ZERO, PeerKey(k), SLOW);
    }
    drain(&mut c);
    for k in 1..=6 {
        c.handle_message(Instant::ZERO, PeerKey(k), Message::Interested);
    }
    let (tx, _) = drain(&mut c);
    let unchoked: Vec<PeerKey> = tx
        .iter()
        .filter(|(_, m)| *m == Message::Unchoke)
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(unchoked, (1..=5).map(PeerKey).collect::<Vec<_>>());
    let states: Vec<ChokeState> = c
        .peer_stats(Instant::ZERO)
        .iter()
        .map(|p| p.choke.as_ref().unwrap().state)
        .collect();
    use ChokeState::*;
    assert_eq!(
        states,
        [Unchoked, Unchoked, Unchoked, Unchoked, Optimistic, Choked]
    );
    // A regular peer leaves: the optimistic one (first in line, as an
    // incumbent) takes its regular slot and the last one becomes optimistic.
    c.peer_disconnected(Instant::ZERO, PeerKey(2));
    let (tx, _) = drain(&mut c);
    assert_eq!(tx, vec![(PeerKey(6), Message::Unchoke)]);
    let p5 = c.peer(Instant::ZERO, PeerKey(5)).unwrap().choke.unwrap();
    assert_eq!(p5.state, Unchoked);
    c.check_invariants();
}

/// A peer that loses interest while nobody waits keeps its slot until the
/// next tick, unless a peer becomes interested first: that one takes the
/// slot at once. If a choked peer waits, the slot goes to it at once.
#[test]
fn a_slot_freed_by_lost_interest_goes_at_once_to_a_new_interest() {
    let mut c = strict_seeder(4, K);
    for k in 1..=6 {
        c.peer_connected(Instant::ZERO, PeerKey(k), SLOW);
    }
    drain(&mut c);
    // All five slots taken (4 regular, 1 optimistic).
    for k in 1..=5 {
        c.handle_message(Instant::ZERO, PeerKey(k), Message::Interested);
    }
    drain(&mut c);
    c.handle_message(Instant::ZERO, PeerKey(2), Message::NotInterested);
    let (tx, _) = drain(&mut c);
    assert!(tx.is_empty(), "nothing before the tick: {tx:?}");
    // Peer 6 asks: one rechoke chokes 2 and unchokes 6 (as optimistic:
    // the optimistic peer 5 moves up to 2's regular slot).
    c.handle_message(Instant::ZERO, PeerKey(6), Message::Interested);
    let (tx, _) = drain(&mut c);
    assert_eq!(
        tx,
        vec![(PeerKey(2), Message::Choke), (PeerKey(6), Message::Unchoke)]
    );
    // Nothing left for the tick to do.
    c.handle_timeout(Instant(1_000_000));
    let (tx, _) = drain(&mut c);
    assert!(
        tx.iter()
            .all(|(_, m)| !matches!(m, Message::Choke | Message::Unchoke)),
        "{tx:?}"
    );
    // Peer 2 asks again and waits (no slot free); when peer 3 loses
    // interest, its slot goes to peer 2 at once.
    c.handle_message(Instant(1_000_000), PeerKey(2), Message::Interested);
    let (tx, _) = drain(&mut c);
    assert!(tx.is_empty(), "{tx:?}");
    c.handle_message(Instant(1_000_000), PeerKey(3), Message::NotInterested);
    let (tx, _) = drain(&mut c);
    assert_eq!(
        tx,
        vec![(PeerKey(2), Message::Unchoke), (PeerKey(3), Message::Choke)]
    );
    c.check_invariants();
}

#[test]
fn request_timeout_moves_blocks_to_another_peer() {
    // No endgame here: it would ask peer 2 for duplicates at once.
    let config = TorrentConfig {
        endgame: false,
        ..TorrentConfig::default()
    };
    let mut c = leecher_with(config, 2, 2 * K);
    let tx = unchoked_by_seed(&mut c, PeerKey(1), SLOW);
    let asked = requests(&tx, PeerKey(1));
    assert_eq!(asked.len(), 4, "all blocks (queue_min = 4)");
    // A second seed arrives; peer 1 never answers.
    c.peer_connected(Instant::ZERO, PeerKey(2), SLOW);
    c.handle_message(
        Instant::ZERO,
        PeerKey(2),
        Message::Bitfield(Bitfield::full(2).to_wire()),
    );
    c.handle_message(Instant::ZERO, PeerKey(2), Message::Unchoke);
    let (tx, _) = drain(&mut c);
    assert!(
        requests(&tx, PeerKey(2)).is_empty(),
        "nothing left to ask before endgame? {tx:?}"
    );
    let mut now = Instant::ZERO;
    let mut cancels = 0;
    let mut moved = Vec::new();
    for _ in 0..30 {
        now = now + Duration::from_secs(1);
        c.handle_timeout(now);
        let (tx, _) = drain(&mut c);
        cancels += tx
            .iter()
            .filter(|(k, m)| *k == PeerKey(1) && matches!(m, Message::Cancel { .. }))
            .count();
        moved.extend(requests(&tx, PeerKey(2)));
        c.check_invariants();
    }
    assert_eq!(cancels, 4);
    moved.sort();
    let mut asked = asked;
    asked.sort();
    assert_eq!(moved, asked);
    let p1 = c.peer(now, PeerKey(1)).unwrap();
    assert!(p1.snubbed);
    // A late block from the timed-out peer is accepted, not a violation.
    c.handle_message(
        now,
        PeerKey(1),
        Message::Piece {
            piece: 0,
            offset: 0,
            data: Bytes::from(vec![0; K as usize]),
        },
    );
    let (tx, ev) = drain(&mut c);
    assert!(disconnected(&ev).is_empty());
    // …and peer 2's copy of it is cancelled.
    assert!(
        tx.contains(&(
            PeerKey(2),
            Message::Cancel {
                piece: 0,
                offset: 0,
                length: K
            }
        )),
        "{tx:?}"
    );
    c.check_invariants();
}

#[test]
fn endgame_requests_everywhere_and_cancels_on_arrival() {
    let mut c = leecher(1, 2 * K);
    let tx1 = unchoked_by_seed(&mut c, PeerKey(1), SLOW);
    assert_eq!(requests(&tx1, PeerKey(1)), vec![(0, 0, K), (0, K, K)]);
    assert!(c.in_endgame());
    let tx2 = unchoked_by_seed(&mut c, PeerKey(2), SLOW);
    let mut dup = requests(&tx2, PeerKey(2));
    dup.sort();
    assert_eq!(dup, vec![(0, 0, K), (0, K, K)]);
    c.handle_message(
        Instant::ZERO,
        PeerKey(2),
        Message::Piece {
            piece: 0,
            offset: K,
            data: Bytes::from(vec![1; K as usize]),
        },
    );
    let (tx, _) = drain(&mut c);
    assert_eq!(
        tx,
        vec![(
            PeerKey(1),
            Message::Cancel {
                piece: 0,
                offset: K,
                length: K
            }
        )]
    );
    c.handle_message(
        Instant::ZERO,
        PeerKey(1),
        Message::Piece {
            piece: 0,
            offset: 0,
            data: Bytes::from(vec![0; K as usize]),
        },
    );
    let (tx, ev) = drain(&mut c);
    assert_eq!(
        tx,
        vec![(
            PeerKey(2),
            Message::Cancel {
                piece: 0,
                offset: 0,
                length: K
            }
        )]
    );
    assert!(matches!(ev[..], [TorrentEvent::VerifyPiece { .. }]));
    // The cancelled copy may still arrive: wasted, not a violation.
    c.handle_message(
        Instant::ZERO,
        PeerKey(2),
        Message::Piece {
            piece: 0,
            offset: 0,
            data: Bytes::from(vec![0; K as usize]),
        },
    );
    let (_, ev) = drain(&mut c);
    assert!(ev.is_empty());
    assert_eq!(c.stats(Instant::ZERO).wasted, u64::from(K));
    c.check_invariants();
}

#[test]
fn keepalive_after_quiet_period() {
    let mut c = leecher(2, K);
    c.peer_connected(Instant::ZERO, PeerKey(1), SLOW);
    drain(&mut c);
    let mut now = Instant::ZERO;
    let mut keepalives = Vec::new();
    while now < secs(200) {
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
        // The peer keeps talking so it is not dropped as idle.
        c.handle_message(now, PeerKey(1), Message::KeepAlive);
        let (tx, _) = drain(&mut c);
        if tx.contains(&(PeerKey(1), Message::KeepAlive)) {
            keepalives.push(now);
        }
    }
    assert_eq!(keepalives, vec![secs(90), secs(180)]);
}

#[test]
fn idle_peer_is_dropped() {
    let mut c = leecher(2, K);
    c.peer_connected(Instant::ZERO, PeerKey(1), SLOW);
    drain(&mut c);
    c.handle_timeout(secs(299));
    assert!(disconnected(&drain(&mut c).1).is_empty());
    c.handle_timeout(secs(301));
    assert_eq!(disconnected(&drain(&mut c).1), vec![(PeerKey(1), false)]);
}

/// A peer that alone sends pieces failing their hash is banned at the
/// third; every failed piece is fetched again.
#[test]
fn repeated_hash_failures_ban_the_sender() {
    let mut failures = 0;
    let mut banned = false;
    let now = Instant::ZERO;
    // Drive explicitly: answer every request with corrupt data.
    let mut c = leecher(8, K);
    let mut pending = requests(&unchoked_by_seed(&mut c, PeerKey(1), SLOW), PeerKey(1));
    while let Some((piece, offset, length)) = pending.pop() {
        c.handle_message(
            now,
            PeerKey(1),
            Message::Piece {
                piece,
                offset,
                data: Bytes::from(vec![0xEE; length as usize]),
            },
        );
        let (tx, ev) = drain(&mut c);
        pending.extend(requests(&tx, PeerKey(1)));
        for e in ev {
            match e {
                TorrentEvent::VerifyPiece { piece, .. } => {
                    failures += 1;
                    c.handle_storage(now, StorageDone::PieceVerified { piece, ok: false });
                    let (tx, ev) = drain(&mut c);
                    pending.extend(requests(&tx, PeerKey(1)));
                    if disconnected(&ev) == vec![(PeerKey(1), true)] {
                        banned = true;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        c.check_invariants();
        if banned {
            break;
        }
    }
    assert!(banned);
    assert_eq!(failures, HASH_FAILURES_BAN);
    assert_eq!(c.num_peers(), 0);
    assert_eq!(c.have().count_ones(), 0);
    assert_eq!(c.stats(now).hash_failures, HASH_FAILURES_BAN);
    c.check_invariants();
}

#[test]
fn write_failure_is_fatal_and_the_piece_is_not_have() {
    let mut c = leecher(2, K);
    let tx = unchoked_by_seed(&mut c, PeerKey(1), SLOW);
    let (piece, offset, length) = requests(&tx, PeerKey(1))[0];
    c.handle_message(
        Instant::ZERO,
        PeerKey(1),
        Message::Piece {
            piece,
            offset,
            data: Bytes::from(vec![1; length as usize]),
        },
    );
    let (_, ev) = drain(&mut c);
    let TorrentEvent::VerifyPiece { piece, .. } = ev[0] else {
        panic!("{ev:?}")
    };
    c.handle_storage(
        Instant::ZERO,
        StorageDone::WriteFailed {
            piece,
            error: "No space left on device".into(),
        },
    );
    let (_, ev) = drain(&mut c);
    assert!(
        matches!(&ev[..], [TorrentEvent::Fatal(e)] if e.contains("No space left")),
        "{ev:?}"
    );
    assert_eq!(c.have().count_ones(), 0);
    assert!(c.error().is_some());
    c.check_invariants();
}

#[test]
fn reqq_caps_the_pipeline_and_fast_choke_keeps_requests_until_rejected() {
    let mut c = leecher(8, 4 * K);
    c.peer_connected(Instant::ZERO, PeerKey(1), FAST);
    c.peer_extension_handshake(
        Instant::ZERO,
        PeerKey(1),
        swarm_engine::ExtensionInfo { reqq: Some(2) },
    );
    c.handle_message(Instant::ZERO, PeerKey(1), Message::HaveAll);
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Unchoke);
    let (tx, _) = drain(&mut c);
    let asked = requests(&tx, PeerKey(1));
    assert_eq!(asked.len(), 2);
    // BEP 6: a choke does not cancel; the requests stay until rejected.
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Choke);
    assert_eq!(
        c.peer(Instant::ZERO, PeerKey(1))
            .unwrap()
            .requests_in_flight,
        2
    );
    let (piece, offset, length) = asked[0];
    c.handle_message(
        Instant::ZERO,
        PeerKey(1),
        Message::RejectRequest {
            piece,
            offset,
            length,
        },
    );
    assert_eq!(
        c.peer(Instant::ZERO, PeerKey(1))
            .unwrap()
            .requests_in_flight,
        1
    );
    // No new request while choked.
    let (tx, _) = drain(&mut c);
    assert!(requests(&tx, PeerKey(1)).is_empty());
    c.check_invariants();
}

/// Sends `n` requests for distinct blocks (in piece order) from `peer`.
fn request_blocks(c: &mut TorrentCore, peer: PeerKey, n: u32, blocks_per_piece: u32) {
    for i in 0..n {
        c.handle_message(
            Instant::ZERO,
            peer,
            Message::Request {
                piece: i / blocks_per_piece,
                offset: (i % blocks_per_piece) * K,
                length: K,
            },
        );
    }
}

fn reads(ev: &[TorrentEvent]) -> Vec<(PeerKey, swarm_wire::lengths::BlockInfo)> {
    ev.iter()
        .filter_map(|e| match e {
            TorrentEvent::ReadBlock { peer, block } => Some((*peer, *block)),
            _ => None,
        })
        .collect()
}

fn answer(c: &mut TorrentCore, peer: PeerKey, block: swarm_wire::lengths::BlockInfo) {
    c.handle_storage(
        Instant::ZERO,
        StorageDone::BlockRead {
            peer,
            block,
            data: Bytes::from(vec![0; block.length as usize]),
        },
    );
}

#[test]
fn a_deep_queue_is_held_as_requests_and_read_a_few_blocks_at_a_time() {
    use swarm_engine::{PEER_READS_IN_FLIGHT_MAX, PEER_REQUESTS_MAX};
    assert_eq!(PEER_REQUESTS_MAX, 2000, "libtorrent's reqq");
    // 2,048 blocks of 16 KiB: room for a full queue and one more.
    let mut c = seeder(128, 16 * K);
    c.peer_connected(Instant::ZERO, PeerKey(1), FAST);
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Interested);
    drain(&mut c);
    request_blocks(&mut c, PeerKey(1), PEER_REQUESTS_MAX as u32 + 1, 16);
    let (tx, ev) = drain(&mut c);
    // The whole queue is accepted, one more is rejected, and only
    // PEER_READS_IN_FLIGHT_MAX blocks are read at once.
    let rejected: Vec<_> = tx
        .iter()
        .filter(|(_, m)| matches!(m, Message::RejectRequest { .. }))
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let first = reads(&ev);
    assert_eq!(first.len(), PEER_READS_IN_FLIGHT_MAX);
    assert_eq!(c.peer_stats(Instant::ZERO)[0].requests_from_peer, 2000);
    c.check_invariants();

    // The driver's send buffer is full: answers go out, no new reads start.
    c.send_buffer_full(Instant::ZERO, PeerKey(1));
    for &(p, b) in &first {
        answer(&mut c, p, b);
    }
    let (tx, ev) = drain(&mut c);
    assert_eq!(
        tx.len(),
        PEER_READS_IN_FLIGHT_MAX,
        "the blocks read are sent"
    );
    assert!(
        reads(&ev).is_empty(),
        "no read while the buffer is full: {ev:?}"
    );
    c.check_invariants();

    // Drained: the next blocks are read, in the order asked.
    c.send_buffer_drained(Instant::ZERO, PeerKey(1));
    let (_, ev) = drain(&mut c);
    let next = reads(&ev);
    assert_eq!(next.len(), PEER_READS_IN_FLIGHT_MAX);
    assert_eq!(next[0].1.piece.get(), 2, "blocks 32.. are next");
    c.check_invariants();
}

#[test]
fn cancelled_reads_still_count_until_answered() {
    use swarm_engine::PEER_READS_IN_FLIGHT_MAX;
    // A peer that requests and cancels the same block over and over cannot
    // pile up reads: a cancelled read holds its slot until the disk answers.
    let mut c = seeder(4, 16 * K);
    c.peer_connected(Instant::ZERO, PeerKey(1), FAST);
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Interested);
    drain(&mut c);
    let block = Message::Request {
        piece: 0,
        offset: 0,
        length: K,
    };
    let cancel = Message::Cancel {
        piece: 0,
        offset: 0,
        length: K,
    };
    for _ in 0..1000 {
        c.handle_message(Instant::ZERO, PeerKey(1), block.clone());
        c.handle_message(Instant::ZERO, PeerKey(1), cancel.clone());
    }
    let (_, ev) = drain(&mut c);
    assert_eq!(reads(&ev).len(), PEER_READS_IN_FLIGHT_MAX);
    c.check_invariants();
}

#[test]
fn reads_over_all_peers_are_bounded_per_torrent() {
    use swarm_engine::{ChokerConfig, PEER_READS_IN_FLIGHT_MAX, TORRENT_READS_IN_FLIGHT_MAX};
    let peers = (TORRENT_READS_IN_FLIGHT_MAX / PEER_READS_IN_FLIGHT_MAX + 2) as u64;
    let config = TorrentConfig {
        choker: ChokerConfig {
            unchoke_slots: peers as usize,
            ..ChokerConfig::default()
        },
        ..TorrentConfig::default()
    };
    let l = Lengths::new(64 * 16 * u64::from(K), 16 * K).unwrap();
    let mut c = TorrentCore::new(config, l, Bitfield::full(64), 42, Instant::ZERO);
    for k in 1..=peers {
        c.peer_connected(Instant::ZERO, PeerKey(k), FAST);
        c.handle_message(Instant::ZERO, PeerKey(k), Message::Interested);
    }
    drain(&mut c);
    for k in 1..=peers {
        request_blocks(&mut c, PeerKey(k), 64, 16);
    }
    let (_, ev) = drain(&mut c);
    let mut pending = reads(&ev);
    assert_eq!(pending.len(), TORRENT_READS_IN_FLIGHT_MAX);
    c.check_invariants();
    // Every answer frees one slot, taken at once; the peers that found none
    // get their turn (all served in the end, never more in flight).
    let mut served = std::collections::BTreeSet::new();
    let mut answered = 0;
    while let Some((p, b)) = pending.pop() {
        answer(&mut c, p, b);
        answered += 1;
        served.insert(p);
        let (_, ev) = drain(&mut c);
        pending.extend(reads(&ev));
        assert!(pending.len() <= TORRENT_READS_IN_FLIGHT_MAX);
        c.check_invariants();
    }
    assert_eq!(answered, peers * 64);
    assert_eq!(served.len() as u64, peers);
}

/// `Choking::Off` unchokes every interested peer at once (tit-for-tat
/// stops at 4 + 1, `free_slots_are_filled_between_rounds`), and chokes a
/// peer that loses interest (at the next tick).
#[test]
fn choking_off_unchokes_every_interested_peer() {
    let l = Lengths::new(4 * u64::from(K), K).unwrap();
    let config = TorrentConfig {
        choking: swarm_engine::Choking::Off,
        ..TorrentConfig::default()
    };
    let mut c = TorrentCore::new(config, l, Bitfield::full(4), 42, Instant::ZERO);
    for k in 1..=8 {
        c.peer_connected(Instant::ZERO, PeerKey(k), SLOW);
        c.handle_message(Instant::ZERO, PeerKey(k), Message::Interested);
    }
    let (tx, _) = drain(&mut c);
    let unchoked: Vec<PeerKey> = tx
        .iter()
        .filter(|(_, m)| *m == Message::Unchoke)
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(unchoked, (1..=8).map(PeerKey).collect::<Vec<_>>());
    c.handle_message(Instant::ZERO, PeerKey(3), Message::NotInterested);
    let (tx, _) = drain(&mut c);
    assert!(tx.is_empty(), "choked before the tick: {tx:?}");
    c.handle_timeout(Instant(1_000_000));
    let (tx, _) = drain(&mut c);
    assert_eq!(tx, vec![(PeerKey(3), Message::Choke)]);
    c.handle_timeout(Instant(11_000_000));
    let (tx, _) = drain(&mut c);
    assert!(tx.iter().all(|(_, m)| *m != Message::Choke), "{tx:?}");
    c.check_invariants();
}

fn haves(tx: &[(PeerKey, Message)], to: PeerKey) -> Vec<u32> {
    tx.iter()
        .filter(|(k, _)| *k == to)
        .filter_map(|(_, m)| match m {
            Message::Have { piece } => Some(*piece),
            _ => None,
        })
        .collect()
}

/// BEP 16: a super-seed hides its bitfield and offers pieces one or two at
/// a time; no piece is offered fresh twice before every piece was once.
#[test]
fn super_seeding_offers_each_piece_once_before_any_twice() {
    let config = TorrentConfig {
        super_seeding: true,
        ..TorrentConfig::default()
    };
    let pieces = 12;
    let mut s = seeder_with(config.clone(), pieces, K);
    assert!(s.is_super_seeding());
    // A leecher with the option on does not super-seed when it completes.
    assert!(!leecher_with(config, pieces, K).is_super_seeding());
    s.peer_connected(Instant::ZERO, PeerKey(1), FAST);
    s.peer_connected(Instant::ZERO, PeerKey(2), SLOW);
    let (tx, _) = drain(&mut s);
    s.check_invariants();
    // No bitfield, no have-all: have-none for a BEP 6 peer, then offers.
    assert_eq!(tx[0], (PeerKey(1), Message::HaveNone), "{tx:?}");
    assert!(
        !tx.iter()
            .any(|(_, m)| matches!(m, Message::Bitfield(_) | Message::HaveAll)),
        "{tx:?}"
    );
    // Both lack pieces, so the choker sees them as wanting data and
    // unchokes them (free slots): two fresh offers each, all different.
    let mut seen: Vec<u32> = Vec::new();
    for k in [1, 2] {
        let h = haves(&tx, PeerKey(k));
        assert_eq!(h.len(), 2, "peer {k}: {tx:?}");
        seen.extend(h);
    }
    // Peers take their pieces and say so: a have brings a new offer, never
    // a piece offered before, until all twelve were offered once. After
    // SUPER_SEED_TURN_PIECES pieces a peer's turn ends; with nobody
    // waiting it gets the next turn at once (choke, unchoke, two offers).
    let mut offers: Vec<Vec<u32>> =
        vec![Vec::new(), haves(&tx, PeerKey(1)), haves(&tx, PeerKey(2))];
    let mut rounds = 0;
    while seen.len() < pieces as usize {
        rounds += 1;
        assert!(rounds <= pieces, "offers stopped: {seen:?}");
        for k in [1usize, 2] {
            let piece = offers[k].remove(0);
            s.handle_message(Instant::ZERO, PeerKey(k as u64), Message::Have { piece });
            let (tx, _) = drain(&mut s);
            let new = haves(&tx, PeerKey(k as u64));
            assert!(new.len() <= 2, "{tx:?}");
            assert!(
                !offers[k].is_empty() || !new.is_empty(),
                "a peer with no offer left gets new ones: {tx:?}"
            );
            for &n in &new {
                if seen.len() < pieces as usize {
                    assert!(!seen.contains(&n), "{n} offered twice: {seen:?}");
                }
                seen.push(n);
            }
            offers[k].extend(new);
            s.check_invariants();
        }
    }
    let mut all = seen[..pieces as usize].to_vec();
    all.sort_unstable();
    assert_eq!(all, (0..pieces).collect::<Vec<_>>());
    // A peer that got its offered piece from someone else gets a new one
    // too, and no offer is a piece it has.
    let piece = *offers[1].last().unwrap();
    s.handle_message(Instant::ZERO, PeerKey(1), Message::Have { piece });
    let (tx, _) = drain(&mut s);
    let new = haves(&tx, PeerKey(1));
    assert!(new.len() <= 2, "{tx:?}");
    assert!(!new.contains(&piece));
    s.check_invariants();
}

/// A super-seed's peers see only their offers: a peer that took them and
/// says it is not interested keeps its slot (its next offers are on the
/// way), a choked peer gets no offer and still waits for a turn, and a
/// peer that completed gives its slot up.
#[test]
fn super_seeding_unchokes_peers_that_lack_pieces() {
    let config = TorrentConfig {
        super_seeding: true,
        ..TorrentConfig::default()
    };
    let pieces = 40;
    let mut s = seeder_with(config, pieces, K);
    // Six peers: four regular slots and the optimistic one.
    for k in 1..=6 {
        s.peer_connected(Instant::ZERO, PeerKey(k), FAST);
        s.handle_message(Instant::ZERO, PeerKey(k), Message::HaveNone);
    }
    let (tx, _) = drain(&mut s);
    s.check_invariants();
    let unchoked: Vec<u64> = (1..=6)
        .filter(|&k| tx.contains(&(PeerKey(k), Message::Unchoke)))
        .collect();
    assert_eq!(unchoked.len(), 5, "{tx:?}");
    let choked = (1..=6).find(|k| !unchoked.contains(k)).unwrap();
    assert!(
        haves(&tx, PeerKey(choked)).is_empty(),
        "no offer while choked"
    );
    for &k in &unchoked {
        assert_eq!(haves(&tx, PeerKey(k)).len(), 2, "{tx:?}");
    }
    // A peer takes both offers and, having nothing else to want, says so
    // before its haves reach us: it keeps its slot and gets new offers.
    let k = unchoked[0];
    let offers = haves(&tx, PeerKey(k));
    s.handle_message(Instant::ZERO, PeerKey(k), Message::NotInterested);
    for piece in offers {
        s.handle_message(Instant::ZERO, PeerKey(k), Message::Have { piece });
    }
    let (tx, _) = drain(&mut s);
    assert!(!tx.contains(&(PeerKey(k), Message::Choke)), "{tx:?}");
    assert_eq!(haves(&tx, PeerKey(k)).len(), 2, "{tx:?}");
    s.check_invariants();
    // A peer that completes gives its slot to the one that waited.
    s.handle_message(Instant::ZERO, PeerKey(k), Message::HaveAll);
    let (tx, _) = drain(&mut s);
    assert!(tx.contains(&(PeerKey(k), Message::Choke)), "{tx:?}");
    assert!(tx.contains(&(PeerKey(choked), Message::Unchoke)), "{tx:?}");
    assert_eq!(haves(&tx, PeerKey(choked)).len(), 2, "{tx:?}");
    s.check_invariants();
}

/// A leecher that skips pieces completes with only the wanted ones (the
/// `Completed` event, not interested any more, never a request for a
/// skipped piece), seeds what it has, and fetches the rest once they are
/// wanted again. Invariants checked after every step.
#[test]
fn skipped_pieces_are_not_fetched_and_done_means_every_wanted_piece() {
    use swarm_engine::Priority;
    let piece_len = 2 * 16 * 1024;
    let truth = content(12 * u64::from(piece_len), 9);
    let seed = Node::new(TorrentConfig::default(), &truth, piece_len, true, 1);
    let mut leech = Node::new(TorrentConfig::default(), &truth, piece_len, false, 2);
    let mut prio = vec![Priority::Normal; 12];
    for i in [0, 5, 6, 11] {
        prio[i] = Priority::Skip;
    }
    prio[3] = Priority::High;
    leech.core.set_priorities(Instant::ZERO, &prio);
    let mut sim = Sim::new(vec![seed, leech], 5, true);
    sim.connect(0, 1);
    for _ in 0..20_000 {
        if sim.nodes[1].completed {
            break;
        }
        sim.step();
        sim.check();
    }
    let l = &sim.nodes[1];
    assert!(l.completed, "the wanted pieces arrived");
    assert!(l.core.is_complete() && !l.core.is_seed());
    let have: Vec<u32> = l.core.have().iter_ones().collect();
    assert_eq!(
        have,
        vec![1, 2, 3, 4, 7, 8, 9, 10],
        "exactly the wanted pieces"
    );
    let stats = l.core.peer_stats(sim.now);
    assert!(
        stats.iter().all(|p| !p.am_interested),
        "done: not interested"
    );
    // Wanted again: fetched.
    sim.nodes[1].completed = false;
    let all = vec![Priority::Normal; 12];
    let now = sim.now;
    sim.nodes[1].core.set_priorities(now, &all);
    sim.pump(1);
    for _ in 0..20_000 {
        if sim.nodes[1].completed {
            break;
        }
        sim.step();
        sim.check();
    }
    assert!(sim.nodes[1].core.is_seed(), "every piece after un-skipping");
    let n = &sim.nodes[1];
    assert_eq!(n.disk, n.truth);
}

fn peer_seeds(ev: &[TorrentEvent]) -> Vec<PeerKey> {
    ev.iter()
        .filter_map(|e| match e {
            TorrentEvent::PeerSeed(k) => Some(*k),
            _ => None,
        })
        .collect()
}

/// A peer that has every piece is told once (for the endpoint's seed
/// rule): by its bitfield, its have-all, or the have that completes it;
/// never for a peer that lacks a piece, and not again.
#[test]
fn a_peer_with_every_piece_is_told_once() {
    let mut c = leecher(3, K);
    c.peer_connected(Instant::ZERO, PeerKey(1), SLOW);
    c.peer_connected(Instant::ZERO, PeerKey(2), FAST);
    c.peer_connected(Instant::ZERO, PeerKey(3), SLOW);
    let full = Message::Bitfield(Bitfield::full(3).to_wire());
    c.handle_message(Instant::ZERO, PeerKey(1), full.clone());
    c.handle_message(Instant::ZERO, PeerKey(2), Message::HaveAll);
    c.handle_message(Instant::ZERO, PeerKey(3), Message::Have { piece: 0 });
    c.handle_message(Instant::ZERO, PeerKey(3), Message::Have { piece: 2 });
    let (_, ev) = drain(&mut c);
    assert_eq!(peer_seeds(&ev), vec![PeerKey(1), PeerKey(2)]);
    c.handle_message(Instant::ZERO, PeerKey(3), Message::Have { piece: 1 });
    // Late or repeated news of pieces it has: nothing more.
    c.handle_message(Instant::ZERO, PeerKey(1), full);
    c.handle_message(Instant::ZERO, PeerKey(3), Message::Have { piece: 1 });
    let (_, ev) = drain(&mut c);
    assert_eq!(peer_seeds(&ev), vec![PeerKey(3)]);
    c.check_invariants();
}
