//! The choker against hand-made candidates, with a fake clock and fixed seeds.

use super::*;

fn s(secs: u64) -> Instant {
    Instant(secs * 1_000_000)
}

fn cand(k: u64, download_rate: f64) -> UnchokeCandidate {
    UnchokeCandidate {
        peer: PeerKey(k),
        interested: true,
        unchoked: false,
        unchokes_us_since: None,
        am_interested_since: None,
        download_rate,
        upload_rate: 0.0,
        connected_at: Instant::ZERO,
        last_block_at: None,
    }
}

const LEECH_ROUND: RechokeContext = RechokeContext {
    seeding: false,
    round: true,
    have_pieces: true,
};
const LEECH_BETWEEN: RechokeContext = RechokeContext {
    seeding: false,
    round: false,
    have_pieces: true,
};
const SEED_ROUND: RechokeContext = RechokeContext {
    seeding: true,
    round: true,
    have_pieces: true,
};

/// A choker and its peers, with decisions fed back into `unchoked` as the
/// core does.
struct Harness {
    choker: Choker,
    rng: Rng,
    peers: Vec<UnchokeCandidate>,
}

impl Harness {
    fn new(config: ChokerConfig, peers: Vec<UnchokeCandidate>) -> Self {
        Harness {
            choker: Choker::new(config),
            rng: Rng::new(7),
            peers,
        }
    }

    fn rechoke(&mut self, now: Instant, ctx: RechokeContext) -> Vec<ChokeDecision> {
        let out = self.choker.rechoke(now, ctx, &self.peers, &mut self.rng);
        for (c, d) in self.peers.iter_mut().zip(&out) {
            c.unchoked = d.state.is_unchoked();
        }
        out
    }

    fn peer(&mut self, k: u64) -> &mut UnchokeCandidate {
        self.peers
            .iter_mut()
            .find(|c| c.peer == PeerKey(k))
            .expect("test peer")
    }
}

fn in_state(out: &[ChokeDecision], state: ChokeState) -> Vec<u64> {
    out.iter()
        .filter(|d| d.state == state)
        .map(|d| d.peer.0)
        .collect()
}

fn decision(out: &[ChokeDecision], k: u64) -> &ChokeDecision {
    out.iter().find(|d| d.peer == PeerKey(k)).expect("decision")
}

#[test]
fn rechoke_every_10s_picks_the_top_4_by_download_rate() {
    // Eight interested peers; peer k gave us 100·k bytes/s.
    let peers = (1..=8).map(|k| cand(k, 100.0 * k as f64)).collect();
    let mut h = Harness::new(ChokerConfig::default(), peers);
    let out = h.rechoke(s(10), LEECH_ROUND);
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![5, 6, 7, 8]);
    assert_eq!(
        decision(&out, 8).reason,
        ChokeReason::TopDownload { rank: 1, slots: 4 }
    );
    assert_eq!(
        decision(&out, 8).reason.to_string(),
        "top-4 by download rate (#1)"
    );
    assert_eq!(decision(&out, 8).download_rate, 800.0);
    assert_eq!(in_state(&out, ChokeState::Optimistic).len(), 1);

    // The rates turn around; between rounds the incumbents keep their slots.
    for k in 1..=8 {
        h.peer(k).download_rate = 100.0 * (9 - k) as f64;
    }
    let out = h.rechoke(s(15), LEECH_BETWEEN);
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![5, 6, 7, 8]);
    // At the next round the new top four take over.
    let out = h.rechoke(s(20), LEECH_ROUND);
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![1, 2, 3, 4]);
    // The others are choked with their rank, except the one drawn as the new
    // optimistic (the old one, among 1–4, won a regular slot).
    assert_eq!(in_state(&out, ChokeState::Choked).len(), 3);
    assert_eq!(in_state(&out, ChokeState::Optimistic).len(), 1);
    for k in 5..=8u64 {
        let d = decision(&out, k);
        if d.state == ChokeState::Choked {
            let rank = k as usize;
            assert_eq!(d.reason, ChokeReason::Outranked { rank, slots: 4 });
            assert_eq!(
                d.reason.to_string(),
                format!("#{rank} by download rate, 4 slots")
            );
        }
    }
    // Peers that are not interested never get a slot.
    h.peer(1).interested = false;
    let out = h.rechoke(s(30), LEECH_ROUND);
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![2, 3, 4, 5]);
    assert_eq!(decision(&out, 1).reason, ChokeReason::NotInterested);
}

#[test]
fn optimistic_rotates_every_30s_and_can_win_a_regular_slot() {
    // Peers 1–4 are fast regulars; 5–8 give nothing yet.
    let peers = (1..=8)
        .map(|k| cand(k, if k <= 4 { 1000.0 * k as f64 } else { 0.0 }))
        .collect();
    let mut h = Harness::new(ChokerConfig::default(), peers);
    let out = h.rechoke(s(10), LEECH_ROUND);
    let first = in_state(&out, ChokeState::Optimistic);
    assert_eq!(first.len(), 1);
    assert!(first[0] >= 5);
    // It holds for 30 s however often the core rechokes in between.
    for t in 11..40 {
        let ctx = if t % 10 == 0 {
            LEECH_ROUND
        } else {
            LEECH_BETWEEN
        };
        let out = h.rechoke(s(t), ctx);
        assert_eq!(in_state(&out, ChokeState::Optimistic), first, "t = {t} s");
    }
    let out = h.rechoke(s(39), LEECH_ROUND);
    assert_eq!(
        decision(&out, first[0]).reason.to_string(),
        "optimistic since 29 s"
    );
    // 30 s after the draw: another choked peer gets the slot.
    let out = h.rechoke(s(40), LEECH_ROUND);
    let second = in_state(&out, ChokeState::Optimistic);
    assert_eq!(second.len(), 1);
    assert_ne!(second, first);
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![1, 2, 3, 4]);
    assert_eq!(
        decision(&out, second[0]).reason,
        ChokeReason::Optimistic {
            held: Duration::ZERO
        }
    );

    // The optimistic peer reciprocates, faster than regular peer 1: at the
    // next round it takes peer 1's regular slot, and the optimistic slot is
    // drawn again at once, among the other choked peers.
    h.peer(second[0]).download_rate = 1500.0;
    let out = h.rechoke(s(50), LEECH_ROUND);
    assert_eq!(decision(&out, second[0]).state, ChokeState::Unchoked);
    assert_eq!(
        decision(&out, second[0]).reason,
        ChokeReason::TopDownload { rank: 4, slots: 4 }
    );
    assert_eq!(decision(&out, 1).state, ChokeState::Choked);
    assert_eq!(
        decision(&out, 1).reason,
        ChokeReason::Outranked { rank: 5, slots: 4 }
    );
    let third = in_state(&out, ChokeState::Optimistic);
    assert_eq!(third.len(), 1);
    assert_ne!(third, second);
}

#[test]
fn new_peers_are_three_times_as_likely_to_be_the_optimistic_unchoke() {
    // Four fast regulars take the regular slots; the optimistic slot is drawn
    // among three old peers (connected at 0) and one new one (connected 5 s
    // before the draw), each trial with a fresh choker and one seeded RNG.
    // Expected share of the new peer: 3 / (3 + 1 + 1 + 1) = 0.5; of each old
    // one 1/6. Over 10 000 draws the standard deviation of a share is at most
    // sqrt(0.25 / 10 000) = 0.005, so ±0.02 is 4 sigma; it also rejects the
    // neighbouring weights (2 → 0.4, 4 → 0.57) and a uniform draw (0.25).
    const TRIALS: usize = 10_000;
    let now = s(100);
    let mut peers: Vec<UnchokeCandidate> = (1..=4).map(|k| cand(k, 1e6)).collect();
    for k in 5..=7 {
        peers.push(cand(k, 0.0));
    }
    let mut new = cand(8, 0.0);
    new.connected_at = s(95);
    peers.push(new);
    let mut rng = Rng::new(2026);
    let mut wins = [0usize; 9];
    for _ in 0..TRIALS {
        let mut choker = Choker::new(ChokerConfig::default());
        let out = choker.rechoke(now, LEECH_ROUND, &peers, &mut rng);
        let opt = in_state(&out, ChokeState::Optimistic);
        assert_eq!(opt.len(), 1);
        wins[opt[0] as usize] += 1;
    }
    let share = |k: usize| wins[k] as f64 / TRIALS as f64;
    assert!((share(8) - 0.5).abs() <= 0.02, "new peer: {wins:?}");
    for k in 5..=7 {
        // sd sqrt(1/6 · 5/6 / 10 000) ≈ 0.0037; ±0.015 is 4 sigma.
        assert!(
            (share(k) - 1.0 / 6.0).abs() <= 0.015,
            "old peer {k}: {wins:?}"
        );
    }
    assert_eq!(wins[1..=4], [0, 0, 0, 0], "regulars are not drawn");
}

#[test]
fn a_snubbing_peer_loses_its_slot_at_60s() {
    // Peer 1 unchokes us from t = 0 and we want its pieces, but it never
    // sends a block; its (stale) rate still ranks it first, so only
    // anti-snubbing can take its slot. Peer 2 does not unchoke us: never snubbed.
    let mut peers: Vec<UnchokeCandidate> = (1..=5).map(|k| cand(k, 0.0)).collect();
    peers[0].download_rate = 5000.0;
    peers[0].unchokes_us_since = Some(Instant::ZERO);
    peers[0].am_interested_since = Some(Instant::ZERO);
    peers[1].download_rate = 4000.0;
    peers[1].am_interested_since = Some(Instant::ZERO);
    let mut h = Harness::new(ChokerConfig::default(), peers);
    for t in (10..60).step_by(10) {
        let out = h.rechoke(s(t), LEECH_ROUND);
        assert_eq!(decision(&out, 1).state, ChokeState::Unchoked, "t = {t} s");
    }
    // 59.999 s of silence is not yet a snub, even between rounds.
    let out = h.rechoke(Instant(60_000_000 - 1), LEECH_BETWEEN);
    assert_eq!(decision(&out, 1).state, ChokeState::Unchoked);
    let out = h.rechoke(s(60), LEECH_ROUND);
    let d = decision(&out, 1);
    assert_eq!(d.state, ChokeState::Snubbed);
    assert_eq!(d.reason.to_string(), "snubbed: nothing for 60 s");
    assert_eq!(d.since, s(60));
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![2, 3, 4, 5]);
    assert!(in_state(&out, ChokeState::Optimistic).is_empty());
    // A block arrives: at the next round it ranks first again.
    h.peer(1).last_block_at = Some(s(65));
    let out = h.rechoke(s(70), LEECH_ROUND);
    assert_eq!(
        decision(&out, 1).reason,
        ChokeReason::TopDownload { rank: 1, slots: 4 }
    );
    // It re-unchoked us at 90 s (a fresh choke/unchoke cycle) and is silent
    // again: snubbed 60 s after the later of that and its last block.
    h.peer(1).unchokes_us_since = Some(s(90));
    let out = h.rechoke(s(140), LEECH_ROUND);
    assert_eq!(decision(&out, 1).state, ChokeState::Unchoked);
    let out = h.rechoke(s(150), LEECH_ROUND);
    assert_eq!(decision(&out, 1).state, ChokeState::Snubbed);
}

#[test]
fn seeding_round_robin_gives_every_leecher_a_turn() {
    // Eight interested leechers, four slots, 30 s turns: peers waiting
    // longest come first, and a turn is never cut short by a faster peer.
    let peers: Vec<UnchokeCandidate> = (1..=8).map(|k| cand(k, 0.0)).collect();
    let mut h = Harness::new(ChokerConfig::default(), peers);
    let mut turns = [0u32; 9];
    let mut held_since = [None::<Instant>; 9];
    for t in (0..=120).step_by(10) {
        // Unchoked peers show upload rates, lower keys faster: a fast peer
        // must still yield its slot when its turn is over.
        for (i, c) in h.peers.iter_mut().enumerate() {
            c.upload_rate = if c.unchoked {
                1000.0 * (9 - i) as f64
            } else {
                0.0
            };
        }
        let out = h.rechoke(s(t), SEED_ROUND);
        let regular = in_state(&out, ChokeState::Unchoked);
        assert_eq!(regular.len(), 4, "t = {t} s");
        for k in 1..=8usize {
            let d = decision(&out, k as u64);
            if d.state == ChokeState::Unchoked {
                let since = *held_since[k].get_or_insert(s(t));
                assert!(
                    s(t).saturating_since(since) < ChokerConfig::default().seed_turn,
                    "peer {k} kept a slot past its turn while others wait"
                );
                assert!(matches!(d.reason, ChokeReason::SeedTurn { .. }));
                if since == s(t) {
                    turns[k] += 1;
                }
            } else {
                held_since[k] = None;
            }
        }
    }
    // 13 rounds, 4 slots, 30 s turns: two full turns each, and then some.
    for k in 1..=8 {
        assert!(turns[k] >= 2, "peer {k} starved: {turns:?}");
    }
    // Nobody waiting: the turn goes on.
    let solo = vec![cand(1, 0.0)];
    let mut h = Harness::new(ChokerConfig::default(), solo);
    for t in (0..=100).step_by(10) {
        let out = h.rechoke(s(t), SEED_ROUND);
        assert_eq!(decision(&out, 1).state, ChokeState::Unchoked);
    }
    let out = h.rechoke(s(110), SEED_ROUND);
    assert_eq!(
        decision(&out, 1).reason.to_string(),
        "seeding turn for 110 s"
    );
}

#[test]
fn gone_peers_are_forgotten_and_slots_refilled_between_rounds() {
    let peers: Vec<UnchokeCandidate> = (1..=6).map(|k| cand(k, 100.0 * k as f64)).collect();
    let mut h = Harness::new(ChokerConfig::default(), peers);
    let out = h.rechoke(s(10), LEECH_ROUND);
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![3, 4, 5, 6]);
    let opt = in_state(&out, ChokeState::Optimistic)[0];
    // A regular leaves: between rounds the best choked peer fills its slot
    // (here the optimistic one if it ranks first among the rest).
    h.peers.retain(|c| c.peer != PeerKey(6));
    let out = h.rechoke(s(12), LEECH_BETWEEN);
    assert_eq!(out.len(), 5);
    assert_eq!(in_state(&out, ChokeState::Unchoked).len(), 4);
    assert!(in_state(&out, ChokeState::Unchoked).contains(&2));
    // Peer 2 (200 B/s) outranks peer 1 (100 B/s) for the slot. If peer 2
    // was the optimistic it was promoted and peer 1 is drawn in its place;
    // if peer 1 was, it keeps the optimistic slot.
    assert!(opt == 1 || opt == 2);
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![2, 3, 4, 5]);
    assert_eq!(in_state(&out, ChokeState::Optimistic), vec![1]);
    assert_eq!(h.choker.memo.len(), 5);
}

#[test]
fn free_regular_slots_go_to_new_uninterested_peers_until_an_interested_one_wants_them() {
    // Slots 2. Peer 1 interested; 2 and 3 new and not interested yet; 4 old
    // and not interested (connected long before).
    let mut peers: Vec<UnchokeCandidate> = (1..=4).map(|k| cand(k, 0.0)).collect();
    for c in &mut peers[1..] {
        c.interested = false;
        c.connected_at = s(100);
    }
    peers[3].connected_at = Instant::ZERO;
    let config = ChokerConfig {
        unchoke_slots: 2,
        ..ChokerConfig::default()
    };
    let mut h = Harness::new(config, peers);
    let out = h.rechoke(s(101), SEED_ROUND);
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![1, 2]);
    assert_eq!(decision(&out, 2).reason, ChokeReason::Preemptive);
    assert_eq!(
        decision(&out, 2).reason.to_string(),
        "free slot, before it asked"
    );
    assert_eq!(decision(&out, 3).reason, ChokeReason::NotInterested);
    assert_eq!(decision(&out, 4).reason, ChokeReason::NotInterested);
    // Peer 3 becomes interested between rounds: it takes peer 2's slot.
    h.peer(3).interested = true;
    let between = RechokeContext {
        round: false,
        ..SEED_ROUND
    };
    let out = h.rechoke(s(102), between);
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![1, 3]);
    assert_eq!(decision(&out, 2).state, ChokeState::Choked);
    // Peer 3 loses interest again: the free slot goes back to a new peer;
    // the incumbent preemptive peer (none now) would have kept it first.
    h.peer(3).interested = false;
    let out = h.rechoke(s(103), between);
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![1, 3]);
    assert_eq!(
        decision(&out, 3).reason,
        ChokeReason::Preemptive,
        "incumbent first"
    );
    // Once no longer new (30 s), nobody uninterested holds a slot.
    let out = h.rechoke(s(140), SEED_ROUND);
    assert_eq!(in_state(&out, ChokeState::Unchoked), vec![1]);
    // Without pieces to give, or with the switch off, no early unchoke.
    let mut fresh: Vec<UnchokeCandidate> = (1..=2).map(|k| cand(k, 0.0)).collect();
    fresh[1].interested = false;
    let mut h = Harness::new(ChokerConfig::default(), fresh.clone());
    let nothing = RechokeContext {
        have_pieces: false,
        ..LEECH_ROUND
    };
    let out = h.rechoke(s(1), nothing);
    assert_eq!(decision(&out, 2).state, ChokeState::Choked);
    let off = ChokerConfig {
        preemptive_unchoke: false,
        ..ChokerConfig::default()
    };
    let mut h = Harness::new(off, fresh);
    let out = h.rechoke(s(1), LEECH_ROUND);
    assert_eq!(decision(&out, 2).state, ChokeState::Choked);
}

#[test]
fn total_order_key_orders_as_total_cmp() {
    let xs = [
        f64::NEG_INFINITY,
        -1e300,
        -1.5,
        -0.0,
        0.0,
        f64::MIN_POSITIVE,
        1.0,
        1.5,
        65536.0,
        1e300,
        f64::INFINITY,
        f64::NAN,
        -f64::NAN,
    ];
    for a in xs {
        for b in xs {
            assert_eq!(
                super::total_order_key(a).cmp(&super::total_order_key(b)),
                a.total_cmp(&b),
                "{a} vs {b}"
            );
        }
    }
}
