use super::*;
use crate::rng::Rng;
use proptest::prelude::*;

const K: u32 = BLOCK;
const BLOCK: u32 = swarm_wire::peer::BLOCK_LEN;

fn lengths(pieces: u32, blocks_per_piece: u32) -> Lengths {
    Lengths::new(
        u64::from(pieces * blocks_per_piece * K),
        blocks_per_piece * K,
    )
    .unwrap()
}

fn bf(n: u32, ones: impl IntoIterator<Item = u32>) -> Bitfield {
    let mut b = Bitfield::empty(n);
    for i in ones {
        b.set(i);
    }
    b
}

fn vp(l: &Lengths, i: u32) -> ValidPieceIndex {
    l.validate_piece_index(i).unwrap()
}

/// A picker with `initial_random` = 0 and the given peer bitfields announced.
fn picker_with(l: Lengths, random_first: u32, peers: &[&Bitfield], rng: &mut Rng) -> PiecePicker {
    let mut p = PiecePicker::new(l, Bitfield::empty(l.num_pieces()), random_first, true);
    for b in peers {
        for i in b.iter_ones() {
            p.peer_has(vp(&l, i), rng);
        }
    }
    p.check_invariants();
    p
}

#[test]
fn rarest_first_with_random_tie_break() {
    let l = lengths(8, 1);
    let all = Bitfield::full(8);
    let half = bf(8, 0..4);
    let quarter = bf(8, 0..2);
    // Availability: pieces 0,1 → 3; 2,3 → 2; 4..8 → 1.
    let mut first_picks = BTreeSet::new();
    for seed in 0..64 {
        let mut rng = Rng::new(seed);
        let mut p = picker_with(l, 0, &[&all, &half, &quarter], &mut rng);
        let order: Vec<u32> = (0..8)
            .map(|_| {
                p.pick(PeerKey(1), &all, false, &mut rng)
                    .unwrap()
                    .piece
                    .get()
            })
            .collect();
        p.check_invariants();
        let mut rarest: Vec<u32> = order[..4].to_vec();
        rarest.sort();
        assert_eq!(rarest, vec![4, 5, 6, 7], "seed {seed}: {order:?}");
        let mut mid: Vec<u32> = order[4..6].to_vec();
        mid.sort();
        assert_eq!(mid, vec![2, 3], "seed {seed}: {order:?}");
        first_picks.insert(order[0]);
        // Same seed, same choices.
        let mut rng2 = Rng::new(seed);
        let mut p2 = picker_with(l, 0, &[&all, &half, &quarter], &mut rng2);
        assert_eq!(
            p2.pick(PeerKey(1), &all, false, &mut rng2)
                .unwrap()
                .piece
                .get(),
            order[0]
        );
    }
    // Ties are broken at random: every rarest piece comes first for some seed.
    assert_eq!(first_picks, BTreeSet::from([4, 5, 6, 7]));
}

#[test]
fn rarest_first_only_among_the_peers_pieces() {
    let l = lengths(6, 1);
    let mut rng = Rng::new(3);
    let a = bf(6, [0, 1, 2]);
    let b = bf(6, [2, 3, 4, 5]);
    let mut p = picker_with(l, 0, &[&a, &b], &mut rng);
    // Peer A lacks the rare 3,4,5: it gets its own rarest, 0 or 1, not 2.
    let got = p.pick(PeerKey(1), &a, false, &mut rng).unwrap().piece.get();
    assert!(got == 0 || got == 1, "{got}");
}

#[test]
fn first_pieces_are_random_then_rarest() {
    let l = lengths(20, 1);
    let all = Bitfield::full(20);
    let common = bf(20, 0..19);
    // Piece 19 is the only rare one (availability 1; the others 2).
    let mut picked_rare_first = 0;
    for seed in 0..200 {
        let mut rng = Rng::new(seed);
        let mut p = picker_with(l, 4, &[&all, &common], &mut rng);
        let first = p.pick(PeerKey(1), &all, false, &mut rng).unwrap().piece;
        if first.get() == 19 {
            picked_rare_first += 1;
        }
    }
    // Random: piece 19 is picked first about 1 time in 20, not always.
    assert!(picked_rare_first < 40, "{picked_rare_first}");

    // After 4 pieces are have, rarest first rules.
    let mut rng = Rng::new(9);
    let mut have = Bitfield::empty(20);
    for i in 0..4 {
        have.set(i);
    }
    let mut p = PiecePicker::new(l, have, 4, true);
    for b in [&all, &common] {
        for i in b.iter_ones() {
            p.peer_has(vp(&l, i), &mut rng);
        }
    }
    assert_eq!(
        p.pick(PeerKey(1), &all, false, &mut rng)
            .unwrap()
            .piece
            .get(),
        19
    );
    p.check_invariants();
}

#[test]
fn strict_priority_finishes_started_pieces() {
    let l = lengths(4, 4);
    let mut rng = Rng::new(5);
    let all = Bitfield::full(4);
    let mut p = picker_with(l, 0, &[&all, &all], &mut rng);
    let a = p.pick(PeerKey(1), &all, false, &mut rng).unwrap();
    // Affinity: another peer opens a piece of its own while there is one...
    let b = p.pick(PeerKey(2), &all, false, &mut rng).unwrap();
    assert_ne!(a.piece, b.piece);
    let c = p.pick(PeerKey(2), &all, false, &mut rng).unwrap();
    assert_eq!((c.piece, c.offset), (b.piece, K));
    // ...and helps with a started one when it has nothing new for us.
    let only_a = bf(4, [a.piece.get()]);
    let h = p.pick(PeerKey(3), &only_a, false, &mut rng).unwrap();
    assert_eq!((h.piece, h.offset), (a.piece, K));
    let d = p.pick(PeerKey(1), &all, false, &mut rng).unwrap();
    assert_eq!((d.piece, d.offset), (a.piece, 2 * K));
    let d = p.pick(PeerKey(1), &all, false, &mut rng).unwrap();
    assert_eq!((d.piece, d.offset), (a.piece, 3 * K));
    // Only once every block of it is requested does a new piece open.
    let e = p.pick(PeerKey(1), &all, false, &mut rng).unwrap();
    assert_ne!(e.piece, a.piece);
    // A block given back is the first one its piece's opener gets again.
    p.cancel_request(b, PeerKey(2));
    assert_eq!(p.pick(PeerKey(2), &all, false, &mut rng), Some(b));
    p.check_invariants();
}

#[test]
fn a_departed_openers_pieces_come_first_for_the_others() {
    // Peer 1 opens a piece and leaves with most of it unrequested: the piece
    // must not wait for endgame (its blocks buffered, its bytes in limbo)
    // while peer 2 opens new ones.
    let l = lengths(4, 4);
    let mut rng = Rng::new(7);
    let all = Bitfield::full(4);
    let mut p = picker_with(l, 0, &[&all, &all], &mut rng);
    let a = p.pick(PeerKey(1), &all, false, &mut rng).unwrap();
    p.cancel_request(a, PeerKey(1));
    p.release_exclusive(PeerKey(1));
    let b = p.pick(PeerKey(2), &all, false, &mut rng).unwrap();
    assert_eq!(b.piece, a.piece, "the orphaned piece is finished first");
    p.check_invariants();
}

#[test]
fn endgame_duplicates_then_cancels() {
    let l = lengths(1, 2);
    let mut rng = Rng::new(1);
    let all = Bitfield::full(1);
    let mut p = picker_with(l, 0, &[&all, &all], &mut rng);
    let b0 = p.pick(PeerKey(1), &all, false, &mut rng).unwrap();
    let b1 = p.pick(PeerKey(1), &all, false, &mut rng).unwrap();
    assert!(p.in_endgame());
    // Peer 2 gets duplicates of both in-flight blocks; no third copy for it.
    let d0 = p.pick(PeerKey(2), &all, false, &mut rng).unwrap();
    let d1 = p.pick(PeerKey(2), &all, false, &mut rng).unwrap();
    assert_eq!(BTreeSet::from([d0, d1]), BTreeSet::from([b0, b1]));
    assert_eq!(p.pick(PeerKey(2), &all, false, &mut rng), None);
    assert_eq!(p.requested_from(b0), &[PeerKey(1), PeerKey(2)]);
    p.check_invariants();
    // The first copy wins; the other requester must be cancelled.
    let r = p.received(b0, PeerKey(2), Bytes::from(vec![0; K as usize]));
    assert_eq!(
        r,
        Received::Stored {
            cancel: vec![PeerKey(1)],
            complete: None
        }
    );
    // The late duplicate is waste.
    assert_eq!(
        p.received(b0, PeerKey(1), Bytes::from(vec![0; K as usize])),
        Received::NotNeeded
    );
    let r = p.received(b1, PeerKey(1), Bytes::from(vec![1; K as usize]));
    let Received::Stored { cancel, complete } = r else {
        panic!("{r:?}")
    };
    assert_eq!(cancel, vec![PeerKey(2)]);
    assert_eq!(complete.map(|c| c.len()), Some(2));
    assert!(p.is_verifying(b0.piece));
    p.check_invariants();
    assert_eq!(
        p.verified(b0.piece, true),
        Some(vec![PeerKey(2), PeerKey(1)])
    );
    assert!(p.have().is_all_set());
    p.check_invariants();
}

#[test]
fn no_endgame_while_an_available_piece_is_unstarted() {
    let l = lengths(2, 1);
    let mut rng = Rng::new(1);
    let a = bf(2, [0]);
    let b = bf(2, [0, 1]);
    let mut p = picker_with(l, 0, &[&a, &b], &mut rng);
    assert!(p.pick(PeerKey(1), &a, false, &mut rng).is_some());
    assert!(!p.in_endgame());
    assert_eq!(p.pick(PeerKey(1), &a, false, &mut rng), None);
}

#[test]
fn failed_piece_restarts_and_parole_peers_work_alone() {
    let l = lengths(3, 2);
    let mut rng = Rng::new(2);
    let all = Bitfield::full(3);
    let mut p = picker_with(l, 0, &[&all, &all], &mut rng);
    let a = p.pick(PeerKey(1), &all, true, &mut rng).unwrap();
    // A non-parole peer does not join a piece reserved for a parole peer.
    let b = p.pick(PeerKey(2), &all, false, &mut rng).unwrap();
    assert_ne!(a.piece, b.piece);
    let a2 = p.pick(PeerKey(1), &all, true, &mut rng).unwrap();
    assert_eq!(a2.piece, a.piece);
    for blk in [a, a2] {
        p.received(blk, PeerKey(1), Bytes::from(vec![0; K as usize]));
    }
    assert_eq!(
        p.verified(a.piece, false),
        Some(vec![PeerKey(1), PeerKey(1)])
    );
    p.check_invariants();
    // The failed piece is started again, with priority, by another peer.
    let c = p.pick(PeerKey(2), &all, false, &mut rng).unwrap();
    assert_eq!(c.piece, b.piece, "finish the piece in progress first");
    let c = p.pick(PeerKey(2), &all, false, &mut rng).unwrap();
    assert_eq!(c.piece, a.piece);
    assert!(!p.have().get(a.piece.get()));
    p.check_invariants();
}

#[test]
fn bucket_insert_and_remove_keep_order() {
    let l = lengths(10, 1);
    let mut rng = Rng::new(11);
    let mut p = PiecePicker::new(l, Bitfield::empty(10), 0, true);
    for i in 0..10 {
        for _ in 0..(i % 4) {
            p.peer_has(vp(&l, i), &mut rng);
        }
    }
    p.check_invariants();
    let before: BTreeSet<u32> = p.order.iter().copied().collect();
    p.remove_from_order(5);
    p.remove_from_order(0);
    assert_eq!(p.order.len(), 8);
    assert!(!p.order.contains(&5) && !p.order.contains(&0));
    p.insert_into_order(5, &mut rng);
    p.insert_into_order(0, &mut rng);
    assert_eq!(p.order.iter().copied().collect::<BTreeSet<u32>>(), before);
    p.check_invariants();
}

proptest! {
    /// Random availability changes keep the bucketed order consistent, and
    /// picks always take a least-available piece the peer has.
    #[test]
    fn availability_ops_keep_invariants(
        seed in any::<u64>(),
        ops in proptest::collection::vec((0u32..16, any::<bool>()), 0..200),
    ) {
        let l = lengths(16, 1);
        let mut rng = Rng::new(seed);
        let mut p = PiecePicker::new(l, Bitfield::empty(16), 0, true);
        let mut avail = [0u32; 16];
        for (i, up) in ops {
            if up || avail[i as usize] == 0 {
                p.peer_has(vp(&l, i), &mut rng);
                avail[i as usize] += 1;
            } else {
                p.peer_lost(vp(&l, i), &mut rng);
                avail[i as usize] -= 1;
            }
            p.check_invariants();
        }
        let all = Bitfield::full(16);
        if let Some(b) = p.pick(PeerKey(1), &all, false, &mut rng) {
            let min = avail.iter().copied().filter(|&a| a > 0).min().unwrap();
            prop_assert_eq!(avail[b.piece.as_usize()], min);
        } else {
            prop_assert!(avail.iter().all(|&a| a == 0));
        }
        p.check_invariants();
    }
}

/// Sequential opens the lowest-numbered piece the peer has, whatever its
/// availability; random opens every piece with some seed.
#[test]
fn sequential_and_random_strategies() {
    let l = lengths(8, 1);
    let all = Bitfield::full(8);
    let late = bf(8, 3..8);
    let mut rng = Rng::new(1);
    // Pieces 3..8 are the most common: rarest first would open 0..3 first.
    let mut p = picker_with(l, 0, &[&all, &late, &late], &mut rng);
    p.set_strategy(PickStrategy::Sequential);
    let order: Vec<u32> = (0..8)
        .map(|_| {
            p.pick(PeerKey(1), &all, false, &mut rng)
                .unwrap()
                .piece
                .get()
        })
        .collect();
    p.check_invariants();
    assert_eq!(order, (0..8).collect::<Vec<_>>());
    let order: Vec<u32> = {
        let mut p = picker_with(l, 0, &[&all, &late], &mut rng);
        p.set_strategy(PickStrategy::Sequential);
        (0..5)
            .map(|_| {
                p.pick(PeerKey(2), &late, false, &mut rng)
                    .unwrap()
                    .piece
                    .get()
            })
            .collect()
    };
    assert_eq!(order, vec![3, 4, 5, 6, 7], "only pieces the peer has");

    let mut firsts = BTreeSet::new();
    for seed in 0..64 {
        let mut rng = Rng::new(seed);
        let mut p = picker_with(l, 0, &[&all, &late, &late], &mut rng);
        p.set_strategy(PickStrategy::Random);
        firsts.insert(
            p.pick(PeerKey(1), &all, false, &mut rng)
                .unwrap()
                .piece
                .get(),
        );
        p.check_invariants();
    }
    // Rarest first would only ever open 0, 1 or 2.
    assert!(firsts.iter().any(|&f| f >= 3), "random opened {firsts:?}");
}

/// Every block the picker hands out to one peer that has everything, until
/// it has nothing more to give; the pieces in pick order, each once.
fn drain_pieces(p: &mut PiecePicker, l: &Lengths, rng: &mut Rng) -> Vec<u32> {
    let all = Bitfield::full(l.num_pieces());
    let mut out = Vec::new();
    while let Some(b) = p.pick(PeerKey(1), &all, false, rng) {
        if out.last() != Some(&b.piece.get()) {
            out.push(b.piece.get());
        }
        p.check_invariants();
        if out.len() > 4 * l.num_pieces() as usize {
            break;
        }
    }
    out
}

#[test]
fn skipped_pieces_are_never_requested_and_done_counts_wanted_pieces_only() {
    let l = lengths(8, 2);
    let mut rng = Rng::new(7);
    let all = Bitfield::full(8);
    let mut p = picker_with(l, 0, &[&all], &mut rng);
    let mut prio = vec![Priority::Normal; 8];
    for i in [1, 2, 5] {
        prio[i] = Priority::Skip;
    }
    p.set_priorities(&prio, &mut rng);
    p.check_invariants();
    assert_eq!(p.wanted_left(), 5);
    let mut got = drain_pieces(&mut p, &l, &mut rng);
    got.sort_unstable();
    assert_eq!(got, vec![0, 3, 4, 6, 7], "skipped pieces are never picked");
    assert!(!p.in_endgame() || p.wanted_left() > 0);
    // Every wanted piece arrives: done, though three pieces are missing.
    for i in [0, 3, 4, 6, 7] {
        for k in 0..2 {
            let b = l.block(vp(&l, i), k).unwrap();
            let _ = p.received(b, PeerKey(1), Bytes::from(vec![0u8; b.length as usize]));
        }
        p.verified(vp(&l, i), true);
        p.check_invariants();
    }
    assert_eq!(p.wanted_left(), 0);
    assert!(p.is_done() && !p.have().is_all_set());
    // Wanting piece 2 again: not done, and it is the one picked.
    prio[2] = Priority::Normal;
    p.set_priorities(&prio, &mut rng);
    p.check_invariants();
    assert!(!p.is_done());
    assert_eq!(drain_pieces(&mut p, &l, &mut rng), vec![2]);
}

#[test]
fn higher_priority_pieces_open_first_whatever_their_availability() {
    let l = lengths(6, 1);
    for seed in 0..16 {
        let mut rng = Rng::new(seed);
        let all = Bitfield::full(6);
        let common = bf(6, [0, 1, 2]);
        // Pieces 0..3 held by two peers, 3..6 by one (the rarest).
        let mut p = picker_with(l, 0, &[&all, &common], &mut rng);
        let prio = [
            Priority::High,
            Priority::Normal,
            Priority::Low,
            Priority::Low,
            Priority::Normal,
            Priority::High,
        ];
        p.set_priorities(&prio, &mut rng);
        p.check_invariants();
        let order = drain_pieces(&mut p, &l, &mut rng);
        // High first (5, the rarer, before 0), then normal (4 before 1),
        // then low (3 before 2).
        assert_eq!(order, vec![5, 0, 4, 1, 3, 2], "seed {seed}");
    }
}

#[test]
fn a_peer_with_only_low_priority_pieces_still_gets_them() {
    let l = lengths(4, 1);
    let mut rng = Rng::new(3);
    let only_low = bf(4, [3]);
    let mut p = picker_with(l, 0, &[&only_low], &mut rng);
    p.set_priorities(
        &[
            Priority::High,
            Priority::High,
            Priority::Normal,
            Priority::Low,
        ],
        &mut rng,
    );
    let b = p.pick(PeerKey(2), &only_low, false, &mut rng).unwrap();
    assert_eq!(b.piece.get(), 3);
    p.check_invariants();
}
