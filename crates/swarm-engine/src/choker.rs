//! Tit-for-tat choking (BEP 3; Cohen, "Incentives Build Robustness in
//! BitTorrent", 2003), with an explanation for every decision.
//!
//! # Policy
//! - **Regular slots** (`unchoke_slots`, 4): while leeching, the interested
//!   peers that gave us the best download rate over the last 20 s (the
//!   core's [`crate::rate::RateEstimator`]). Ties go to peers we already
//!   unchoke, then to the lower [`PeerKey`], so equal rates do not churn.
//! - **Rounds**: the core calls with `round: true` every `rechoke_interval`
//!   (10 s); only then are slots re-ranked. Between rounds (a peer left, lost
//!   or gained interest) incumbents keep their slots and only free slots are
//!   filled, best-ranked first.
//! - **Optimistic unchoke** (one slot): a random choked, interested peer,
//!   re-drawn when `optimistic_interval` (30 s) has passed *since it was
//!   picked*, so extra calls between rounds do not speed the rotation up. A
//!   *new* peer, connected less than one `optimistic_interval` ago, weighs
//!   `new_peer_weight` (3) in the draw, the others 1. "New" is a
//!   connection-age test rather than "never optimistically unchoked" because
//!   the boost exists for peers that have nothing to trade yet (Cohen): with
//!   draws every 30 s each newcomer gets about one boosted draw, and the test
//!   needs no history, whereas "never picked" would mark most peers of a big
//!   swarm as new for hours and flatten the weighting. At a round the
//!   optimistic peer is ranked with everyone else: if its rate beats a
//!   regular peer's, it takes that regular slot, and the optimistic slot is
//!   re-drawn at once (an idle slot for up to 30 s would waste upload).
//! - **Anti-snubbing**: a peer that unchokes us, that we are interested in,
//!   and that sent no block for `snub_timeout` (60 s, counted from the
//!   latest of: it unchoked us, we became interested, its last block) is
//!   *snubbed*: it loses its regular slot and is not ranked for one until it
//!   sends a block. Unlike Cohen's client it is not drawn as the optimistic
//!   unchoke either: that slot exists to discover partners, and this one was
//!   tried for a minute; a snubbed peer is thus always choked, which keeps
//!   the explanation honest. (The core's own 20 s request timeout is a
//!   different, pipeline-level "snub" that only moves our requests elsewhere.)
//! - **Preemptive unchoke** (libtorrent's): regular slots that no
//!   interested peer holds go to *new* peers (connected less than
//!   `optimistic_interval` ago) that have not said they are interested yet,
//!   incumbents first, then the newest. The core rechokes when a peer
//!   connects and when a leecher completes its first piece (before it, it
//!   has nothing to give and unchokes nobody early), so such a peer is
//!   unchoked at once, before it asks. Unchoking
//!   costs nothing (an uninterested peer requests nothing), and a peer that
//!   is already unchoked when it becomes interested sends its first requests
//!   with its `interested` instead of a round trip (and, for Transmission,
//!   a one-second request pulse) later: Transmission ramps its request queue
//!   from its measured rate, so that second shows in the whole transfer
//!   (measured: see ARCHITECTURE.md). An interested peer always takes such a
//!   slot back, between rounds too; `preemptive_unchoke: false` turns it off.
//! - **Seeding: round robin** (libtorrent's `round_robin`, not
//!   `fastest_upload`). With `fastest_upload` a seed's regular slots are
//!   sticky: a choked peer's rate to it decays to zero within the 20 s
//!   window, so it can never outrank an incumbent and only the optimistic
//!   slot rotates; with many leechers most of them starve. A seed gains
//!   nothing from tit-for-tat (it needs no data), and the swarm gains most
//!   when its pieces spread over many leechers who re-upload them. So each
//!   regular slot is a *turn* of at least `seed_turn` (30 s): at each round,
//!   peers still within their turn keep it (fastest first), then peers wait
//!   in line, longest-waiting first, then peers whose turn is over (fastest
//!   first) keep their slot only if nobody waits. Every interested leecher
//!   is thus unchoked within about `ceil(waiting / slots)` turns.
//!
//! # Invariants (asserted after every rechoke)
//! - One decision per candidate, in the candidates' order.
//! - At most `unchoke_slots` peers are `Unchoked` and at most one is
//!   `Optimistic`; every unchoked peer is interested, except `Preemptive`
//!   ones, which are new and hold only slots no interested peer holds.
//! - A snubbing peer is neither `Unchoked` nor `Optimistic`.
//!
//! Sans-IO: time and randomness come in; iteration is over `Vec`s.

use std::cmp::Reverse;

use crate::ids::PeerKey;
use crate::rng::Rng;
use crate::time::{Duration, Instant};
use crate::unchoke::{
    ChokeDecision, ChokeReason, ChokeState, RechokeContext, UnchokeCandidate, Unchoker,
};

/// Peers unchoked optimistically at once.
pub const OPTIMISTIC_SLOTS: usize = 1;

/// Tunables of the choker; `Default` gives BitTorrent's classic values.
#[derive(Clone, Debug, PartialEq)]
pub struct ChokerConfig {
    /// Regular unchoke slots (4).
    pub unchoke_slots: usize,
    /// How often the core runs a rechoke round (10 s).
    pub rechoke_interval: Duration,
    /// How long an optimistic unchoke lasts before it is re-drawn (30 s).
    pub optimistic_interval: Duration,
    /// Silence after which a peer that unchokes us is snubbed (60 s).
    pub snub_timeout: Duration,
    /// Weight of a new peer (connected less than `optimistic_interval` ago)
    /// in the optimistic draw; other peers weigh 1 (3; at least 1).
    pub new_peer_weight: u32,
    /// Seeding: a regular slot is held at least this long before it goes to
    /// a waiting peer (30 s, three rounds).
    pub seed_turn: Duration,
    /// Free regular slots go to new peers before they are interested (on).
    pub preemptive_unchoke: bool,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            unchoke_slots: 4,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            snub_timeout: Duration::from_secs(60),
            new_peer_weight: 3,
            seed_turn: Duration::from_secs(30),
            preemptive_unchoke: true,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Optimistic {
    peer: PeerKey,
    /// When it was (re-)drawn: the rotation clock.
    picked_at: Instant,
}

/// What the choker remembers of a peer between rechokes.
#[derive(Clone, Copy, Debug)]
struct Memo {
    state: ChokeState,
    reason: ChokeReason,
    since: Instant,
    /// When it last took a regular slot: a seeding turn counts from here.
    turn_start: Instant,
    /// When it was last choked after being unchoked (or connected): seeding
    /// turns go to the longest-waiting peer first.
    waiting_since: Instant,
}

/// The tit-for-tat choker. See the module docs.
#[derive(Clone, Debug)]
pub struct Choker {
    config: ChokerConfig,
    optimistic: Option<Optimistic>,
    /// By peer, sorted by key (binary search: a rechoke of 50 peers runs
    /// for many interest changes, and a map's node allocations dominated it).
    memo: Vec<(PeerKey, Memo)>,
}

impl Choker {
    pub fn new(config: ChokerConfig) -> Self {
        assert!(config.new_peer_weight >= 1, "new_peer_weight must be >= 1");
        Choker {
            config,
            optimistic: None,
            memo: Vec::new(),
        }
    }

    pub fn config(&self) -> &ChokerConfig {
        &self.config
    }

    /// The current optimistic unchoke, if any.
    pub fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic.map(|o| o.peer)
    }

    /// Whether `c` counts as new in the optimistic draw.
    pub fn is_new(&self, now: Instant, c: &UnchokeCandidate) -> bool {
        now.saturating_since(c.connected_at) < self.config.optimistic_interval
    }

    /// `Some(silence)` if `c` snubs us (see the module docs).
    pub fn snubbed_for(&self, now: Instant, c: &UnchokeCandidate) -> Option<Duration> {
        let unchoked = c.unchokes_us_since?;
        let interested = c.am_interested_since?;
        let origin = unchoked
            .max(interested)
            .max(c.last_block_at.unwrap_or(Instant::ZERO));
        let silent = now.saturating_since(origin);
        (silent >= self.config.snub_timeout).then_some(silent)
    }

    /// Each candidate's memo, by position: a merge of two key-sorted
    /// lists (the core passes its peers in key order), or a binary search
    /// per candidate if they come unsorted. A rechoke reads a peer's memo
    /// several times; a search each time was most of its cost.
    fn memos_of(&self, peers: &[UnchokeCandidate]) -> Vec<Option<Memo>> {
        let sorted = peers.is_sorted_by_key(|c| c.peer);
        let mut j = 0;
        peers
            .iter()
            .map(|c| {
                if sorted {
                    while j < self.memo.len() && self.memo[j].0 < c.peer {
                        j += 1;
                    }
                    self.memo.get(j).filter(|m| m.0 == c.peer).map(|m| m.1)
                } else {
                    self.memo
                        .binary_search_by_key(&c.peer, |&(k, _)| k)
                        .ok()
                        .map(|i| self.memo[i].1)
                }
            })
            .collect()
    }

    /// Orders the candidates (by position in `peers`) eligible for a
    /// regular slot, best first. `was_regular[i]`: candidate `i` held a
    /// regular slot and is still unchoked.
    fn rank(
        &self,
        now: Instant,
        seeding: bool,
        peers: &[UnchokeCandidate],
        prev: &[Option<Memo>],
        was_regular: &[bool],
        eligible: &mut [usize],
    ) {
        if seeding {
            let turn_over = |i: usize| {
                prev[i].is_some_and(|m| now.saturating_since(m.turn_start) >= self.config.seed_turn)
            };
            let class = |i: usize| match (was_regular[i], turn_over(i)) {
                (true, false) => 0,
                (false, _) => 1,
                (true, true) => 2,
            };
            let waiting_since =
                |i: usize| prev[i].map_or(peers[i].connected_at, |m| m.waiting_since);
            // The keys once per peer, not per comparison.
            let mut keyed: Vec<(u8, Instant, usize)> = eligible
                .iter()
                .map(|&i| (class(i), waiting_since(i), i))
                .collect();
            // Every order here ends with the peer key: a total order, so an
            // unstable sort gives the one result (without a stable sort's
            // buffer).
            keyed.sort_unstable_by(|&(ca, wa, a), &(cb, wb, b)| {
                let (a, b) = (&peers[a], &peers[b]);
                ca.cmp(&cb)
                    .then_with(|| {
                        if ca == 1 {
                            wa.cmp(&wb)
                        } else {
                            b.upload_rate.total_cmp(&a.upload_rate)
                        }
                    })
                    .then(a.peer.cmp(&b.peer))
            });
            for (slot, (_, _, i)) in eligible.iter_mut().zip(keyed) {
                *slot = i;
            }
        } else {
            // Sorted by a key built once per peer (rate descending in
            // `total_cmp`'s order, incumbents first, then the key), not by
            // a comparison that reads two candidates each time: the same
            // total order.
            let mut keyed: Vec<(Reverse<i64>, Reverse<bool>, PeerKey, usize)> = eligible
                .iter()
                .map(|&i| {
                    let c = &peers[i];
                    (
                        Reverse(total_order_key(c.download_rate)),
                        Reverse(c.unchoked),
                        c.peer,
                        i,
                    )
                })
                .collect();
            keyed.sort_unstable();
            for (slot, (_, _, _, i)) in eligible.iter_mut().zip(keyed) {
                *slot = i;
            }
        }
    }

    /// A weighted draw: new peers weigh `new_peer_weight`, others 1.
    fn draw(&self, now: Instant, pool: &[&UnchokeCandidate], rng: &mut Rng) -> Option<PeerKey> {
        let weight = |c: &UnchokeCandidate| {
            if self.is_new(now, c) {
                u64::from(self.config.new_peer_weight)
            } else {
                1
            }
        };
        let total: u64 = pool.iter().map(|c| weight(c)).sum();
        if total == 0 {
            return None;
        }
        let mut r = rng.below(usize::try_from(total).unwrap_or(usize::MAX)) as u64;
        for c in pool {
            let w = weight(c);
            if r < w {
                return Some(c.peer);
            }
            r -= w;
        }
        None
    }

    fn check_decisions(&self, now: Instant, peers: &[UnchokeCandidate], out: &[ChokeDecision]) {
        assert_eq!(peers.len(), out.len(), "one decision per candidate");
        let mut regular = 0;
        let mut optimistic = 0;
        for (c, d) in peers.iter().zip(out) {
            assert_eq!(c.peer, d.peer, "decisions in candidate order");
            match d.state {
                ChokeState::Unchoked => regular += 1,
                ChokeState::Optimistic => optimistic += 1,
                ChokeState::Choked | ChokeState::Snubbed => {}
            }
            if d.reason == ChokeReason::Preemptive {
                assert!(
                    !c.interested && self.is_new(now, c) && d.state == ChokeState::Unchoked,
                    "{:?} preemptive but interested or not new",
                    c.peer
                );
            } else if d.state.is_unchoked() {
                assert!(c.interested, "{:?} unchoked but not interested", c.peer);
            }
            if d.state.is_unchoked() {
                assert!(
                    self.snubbed_for(now, c).is_none(),
                    "{:?} unchoked while snubbing us",
                    c.peer
                );
            }
        }
        assert!(regular <= self.config.unchoke_slots, "{regular} regular");
        assert!(optimistic <= OPTIMISTIC_SLOTS, "{optimistic} optimistic");
    }
}

/// `x`'s place in [`f64::total_cmp`]'s order, as an integer (the
/// standard library's own mapping): `a.total_cmp(&b)` is
/// `key(a).cmp(&key(b))`.
fn total_order_key(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

impl Unchoker for Choker {
    fn max_unchoked(&self) -> usize {
        self.config.unchoke_slots + OPTIMISTIC_SLOTS
    }

    fn rechoke(
        &mut self,
        now: Instant,
        ctx: RechokeContext,
        peers: &[UnchokeCandidate],
        rng: &mut Rng,
    ) -> Vec<ChokeDecision> {
        let slots = self.config.unchoke_slots;
        let n = peers.len();
        // Per candidate, by position in `peers`: the memo, snubbing
        // silence, rank and role (indices, not keys: no search per peer).
        let prev = self.memos_of(peers);
        let was_regular: Vec<bool> = peers
            .iter()
            .zip(&prev)
            .map(|(c, m)| c.unchoked && m.is_some_and(|m| m.state == ChokeState::Unchoked))
            .collect();
        let mut snubbed: Vec<Option<Duration>> = vec![None; n];
        let mut eligible: Vec<usize> = Vec::new();
        for (i, c) in peers.iter().enumerate().filter(|(_, c)| c.interested) {
            match self.snubbed_for(now, c) {
                Some(silent) => snubbed[i] = Some(silent),
                None => eligible.push(i),
            }
        }
        self.rank(now, ctx.seeding, peers, &prev, &was_regular, &mut eligible);
        let mut rank_of = vec![0usize; n];
        for (r, &i) in eligible.iter().enumerate() {
            rank_of[i] = r + 1;
        }

        // Regular slots: the best `slots` at a round; between rounds the
        // incumbents stay and free slots go to the best of the others.
        let mut is_regular = vec![false; n];
        let mut regular = 0;
        if !ctx.round {
            for &i in eligible.iter().filter(|&&i| was_regular[i]).take(slots) {
                is_regular[i] = true;
                regular += 1;
            }
        }
        for &i in &eligible {
            if regular >= slots {
                break;
            }
            if !is_regular[i] {
                is_regular[i] = true;
                regular += 1;
            }
        }

        // Preemptive unchoke: the regular slots left go to new peers that
        // are not interested yet, incumbents first, then the newest.
        let mut is_preemptive = vec![false; n];
        if self.config.preemptive_unchoke && ctx.have_pieces && regular < slots {
            let mut fresh: Vec<usize> = (0..n)
                .filter(|&i| {
                    let c = &peers[i];
                    !c.interested && self.is_new(now, c) && self.snubbed_for(now, c).is_none()
                })
                .collect();
            fresh.sort_unstable_by(|&a, &b| {
                let (a, b) = (&peers[a], &peers[b]);
                b.unchoked
                    .cmp(&a.unchoked)
                    .then(b.connected_at.cmp(&a.connected_at))
                    .then(a.peer.cmp(&b.peer))
            });
            let free = slots - regular;
            for i in fresh.into_iter().take(free) {
                is_preemptive[i] = true;
            }
        }

        // The optimistic slot: kept for `optimistic_interval` after the draw
        // unless its peer left, lost interest or won a regular slot.
        let drawable =
            |i: usize, c: &UnchokeCandidate| c.interested && !is_regular[i] && snubbed[i].is_none();
        let current = self.optimistic.filter(|o| {
            peers
                .iter()
                .enumerate()
                .any(|(i, c)| c.peer == o.peer && drawable(i, c))
        });
        let expired = current
            .is_some_and(|o| now.saturating_since(o.picked_at) >= self.config.optimistic_interval);
        self.optimistic = match current {
            Some(o) if !expired => Some(o),
            _ => {
                let pool: Vec<&UnchokeCandidate> = peers
                    .iter()
                    .enumerate()
                    .filter(|&(i, c)| drawable(i, c) && Some(c.peer) != current.map(|o| o.peer))
                    .map(|(_, c)| c)
                    .collect();
                match self.draw(now, &pool, rng) {
                    Some(peer) => Some(Optimistic {
                        peer,
                        picked_at: now,
                    }),
                    // Nobody else to try: the incumbent stays another interval.
                    None => current.map(|o| Optimistic {
                        peer: o.peer,
                        picked_at: now,
                    }),
                }
            }
        };
        let optimistic = self.optimistic.map(|o| o.peer);

        let mut memo = Vec::with_capacity(peers.len());
        let mut out = Vec::with_capacity(peers.len());
        for (i, c) in peers.iter().enumerate() {
            let prev = prev[i];
            let prev_state = prev.map(|m| m.state);
            let since_if = |state: ChokeState| match prev {
                Some(m) if m.state == state => m.since,
                _ => now,
            };
            let rank = rank_of[i];
            let (state, reason) = if is_regular[i] {
                let reason = if ctx.seeding {
                    let start = match prev {
                        Some(m) if m.state == ChokeState::Unchoked => m.turn_start,
                        _ => now,
                    };
                    ChokeReason::SeedTurn {
                        held: now.saturating_since(start),
                    }
                } else {
                    match prev {
                        // Kept between rounds: the round's reason still holds.
                        Some(
                            m @ Memo {
                                state: ChokeState::Unchoked,
                                reason: ChokeReason::TopDownload { .. },
                                ..
                            },
                        ) if !ctx.round => m.reason,
                        _ => ChokeReason::TopDownload { rank, slots },
                    }
                };
                (ChokeState::Unchoked, reason)
            } else if Some(c.peer) == optimistic {
                let held = now.saturating_since(since_if(ChokeState::Optimistic));
                (ChokeState::Optimistic, ChokeReason::Optimistic { held })
            } else if is_preemptive[i] {
                (ChokeState::Unchoked, ChokeReason::Preemptive)
            } else if !c.interested {
                (ChokeState::Choked, ChokeReason::NotInterested)
            } else if let Some(silent) = snubbed[i] {
                (ChokeState::Snubbed, ChokeReason::Snubbed { silent })
            } else if ctx.seeding {
                let waited = prev.map_or(c.connected_at, |m| {
                    if m.state.is_unchoked() {
                        now
                    } else {
                        m.waiting_since
                    }
                });
                (
                    ChokeState::Choked,
                    ChokeReason::SeedWaiting {
                        waited: now.saturating_since(waited),
                    },
                )
            } else {
                (ChokeState::Choked, ChokeReason::Outranked { rank, slots })
            };
            let since = since_if(state);
            let turn_start = match prev {
                Some(m) if prev_state == Some(ChokeState::Unchoked) => m.turn_start,
                _ => now,
            };
            let waiting_since = match prev {
                None => c.connected_at,
                Some(m) if m.state.is_unchoked() && !state.is_unchoked() => now,
                Some(m) => m.waiting_since,
            };
            memo.push((
                c.peer,
                Memo {
                    state,
                    reason,
                    since,
                    turn_start,
                    waiting_since,
                },
            ));
            out.push(ChokeDecision {
                peer: c.peer,
                state,
                reason,
                download_rate: c.download_rate,
                upload_rate: c.upload_rate,
                since,
            });
        }
        // Candidates come sorted by key from the core: then this is a check.
        if !memo.is_sorted_by_key(|&(k, _)| k) {
            memo.sort_by_key(|&(k, _)| k);
        }
        self.memo = memo;
        self.check_decisions(now, peers, &out);
        out
    }
}

#[cfg(test)]
mod tests;
