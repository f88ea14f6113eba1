//! Who we unchoke (BEP 3 choking): the seam between the torrent core and a choker.
//!
//! The core gathers one [`UnchokeCandidate`] per connected peer and asks an
//! [`Unchoker`] for one [`ChokeDecision`] per candidate; it then sends
//! `choke`/`unchoke` for the differences and keeps the decisions so the
//! status display can say why each peer is (un)choked. The policy is the
//! tit-for-tat [`crate::choker::Choker`]; the trait stays so the simulator can
//! compare policies.

use std::fmt;

use crate::ids::PeerKey;
use crate::rng::Rng;
use crate::time::{Duration, Instant};

/// What the choker may look at for one connected peer.
#[derive(Clone, Debug, PartialEq)]
pub struct UnchokeCandidate {
    pub peer: PeerKey,
    /// The peer wants data from us.
    pub interested: bool,
    /// We currently unchoke it (regular or optimistic).
    pub unchoked: bool,
    /// `Some(t)`: the peer unchokes us, and has since `t`.
    pub unchokes_us_since: Option<Instant>,
    /// `Some(t)`: we are interested in the peer, and have been since `t`.
    pub am_interested_since: Option<Instant>,
    /// Bytes/s we received from it over the last 20 s.
    pub download_rate: f64,
    /// Bytes/s we sent to it over the last 20 s.
    pub upload_rate: f64,
    pub connected_at: Instant,
    /// When it last sent us a block (`None`: never).
    pub last_block_at: Option<Instant>,
}

/// Why the core asks for a rechoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RechokeContext {
    /// We have every piece: rank by what we give, not by what we get.
    pub seeding: bool,
    /// A scheduled round (every `rechoke_interval`): slots are re-ranked.
    /// Otherwise a slot changed between rounds (a peer left or lost or gained
    /// interest): incumbents keep their slots and only free slots are filled.
    pub round: bool,
    /// We hold at least one piece (without one, an early unchoke gives
    /// nothing: no preemptive unchoke).
    pub have_pieces: bool,
}

/// A peer's choke state after a rechoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChokeState {
    /// Holds a regular slot.
    Unchoked,
    /// Holds the optimistic slot.
    Optimistic,
    /// Choked.
    Choked,
    /// Choked because it snubs us (anti-snubbing): no slot of any kind.
    Snubbed,
}

impl ChokeState {
    /// Whether we unchoke a peer in this state.
    pub fn is_unchoked(self) -> bool {
        matches!(self, ChokeState::Unchoked | ChokeState::Optimistic)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChokeState::Unchoked => "unchoked",
            ChokeState::Optimistic => "optimistic",
            ChokeState::Choked => "choked",
            ChokeState::Snubbed => "snubbed",
        }
    }
}

impl fmt::Display for ChokeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a peer got its state. `Display` gives the human explanation the
/// status table and `--json` print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChokeReason {
    /// Leeching: among the `slots` best download rates (1-based `rank`).
    TopDownload { rank: usize, slots: usize },
    /// Leeching: interested, but ranked below the regular slots.
    Outranked { rank: usize, slots: usize },
    /// Seeding: holds a round-robin turn, for `held` so far.
    SeedTurn { held: Duration },
    /// Seeding: interested, waiting for a turn, for `waited` so far.
    SeedWaiting { waited: Duration },
    /// The optimistic unchoke, held for `held` so far.
    Optimistic { held: Duration },
    /// We are interested, it unchokes us, and it sent nothing for `silent`.
    Snubbed { silent: Duration },
    /// New and not interested yet: unchoked into a regular slot that no
    /// interested peer holds, so its first requests need no round trip.
    Preemptive,
    /// It does not want anything from us.
    NotInterested,
    /// Choking is off: every interested peer is unchoked.
    ChokingOff,
}

impl ChokeReason {
    /// The same reason `by` later: the durations it carries grow, so a
    /// display between rechokes says "optimistic since 17 s", not the 12 s
    /// the decision saw.
    pub fn aged(self, by: Duration) -> ChokeReason {
        match self {
            ChokeReason::SeedTurn { held } => ChokeReason::SeedTurn { held: held + by },
            ChokeReason::SeedWaiting { waited } => ChokeReason::SeedWaiting {
                waited: waited + by,
            },
            ChokeReason::Optimistic { held } => ChokeReason::Optimistic { held: held + by },
            ChokeReason::Snubbed { silent } => ChokeReason::Snubbed {
                silent: silent + by,
            },
            other => other,
        }
    }
}

/// Whole seconds, rounded down: the display unit of reasons.
fn secs(d: Duration) -> u64 {
    d.as_micros() / 1_000_000
}

impl fmt::Display for ChokeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChokeReason::TopDownload { rank, slots } => {
                write!(f, "top-{slots} by download rate (#{rank})")
            }
            ChokeReason::Outranked { rank, slots } => {
                write!(f, "#{rank} by download rate, {slots} slots")
            }
            ChokeReason::SeedTurn { held } => write!(f, "seeding turn for {} s", secs(held)),
            ChokeReason::SeedWaiting { waited } => {
                write!(f, "waiting for a seeding turn for {} s", secs(waited))
            }
            ChokeReason::Optimistic { held } => write!(f, "optimistic since {} s", secs(held)),
            ChokeReason::Snubbed { silent } => write!(f, "snubbed: nothing for {} s", secs(silent)),
            ChokeReason::Preemptive => f.write_str("free slot, before it asked"),
            ChokeReason::NotInterested => f.write_str("not interested"),
            ChokeReason::ChokingOff => f.write_str("choking off"),
        }
    }
}

/// The choker's verdict on one peer, kept by the core until the next rechoke.
#[derive(Clone, Debug, PartialEq)]
pub struct ChokeDecision {
    pub peer: PeerKey,
    pub state: ChokeState,
    pub reason: ChokeReason,
    /// The rates the decision saw, bytes/s over 20 s.
    pub download_rate: f64,
    pub upload_rate: f64,
    /// Since when the peer has been in `state`.
    pub since: Instant,
}

/// Decides, for every connected peer, whether we unchoke it and why.
/// Called every `rechoke_interval` (`round: true`), and between rounds when
/// an interested peer could take a free slot or an unchoked peer left or lost
/// interest (`round: false`; lost interest at once only if a choked peer
/// wants the slot, else at the next tick or interest).
pub trait Unchoker {
    /// The most peers unchoked at once (regular and optimistic slots): the
    /// core asks for a rechoke between rounds only while fewer are.
    fn max_unchoked(&self) -> usize;

    /// One decision per candidate, in the candidates' order. `rng` is the
    /// core's seeded generator (for optimistic unchokes).
    fn rechoke(
        &mut self,
        now: Instant,
        ctx: RechokeContext,
        peers: &[UnchokeCandidate],
        rng: &mut Rng,
    ) -> Vec<ChokeDecision>;
}

/// No choking: every interested peer is unchoked, whatever it gives (as
/// rqbit does). For comparisons with tit-for-tat (`Choking::Off`).
#[derive(Clone, Copy, Debug, Default)]
pub struct UnchokeAll;

impl Unchoker for UnchokeAll {
    fn max_unchoked(&self) -> usize {
        usize::MAX
    }

    fn rechoke(
        &mut self,
        now: Instant,
        _ctx: RechokeContext,
        peers: &[UnchokeCandidate],
        _rng: &mut Rng,
    ) -> Vec<ChokeDecision> {
        peers
            .iter()
            .map(|c| ChokeDecision {
                peer: c.peer,
                state: if c.interested {
                    ChokeState::Unchoked
                } else {
                    ChokeState::Choked
                },
                reason: if c.interested {
                    ChokeReason::ChokingOff
                } else {
                    ChokeReason::NotInterested
                },
                download_rate: c.download_rate,
                upload_rate: c.upload_rate,
                since: now,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aged_reasons_count_on() {
        let d = |s| Duration::from_secs(s);
        let r = ChokeReason::Optimistic { held: d(12) }.aged(d(5));
        assert_eq!(r.to_string(), "optimistic since 17 s");
        let r = ChokeReason::TopDownload { rank: 2, slots: 4 }.aged(d(5));
        assert_eq!(r, ChokeReason::TopDownload { rank: 2, slots: 4 });
    }

    #[test]
    fn reasons_read_as_the_issue_says() {
        let s = Duration::from_secs;
        assert_eq!(
            ChokeReason::TopDownload { rank: 2, slots: 4 }.to_string(),
            "top-4 by download rate (#2)"
        );
        assert_eq!(
            ChokeReason::Optimistic {
                held: Duration::from_millis(12_900)
            }
            .to_string(),
            "optimistic since 12 s"
        );
        assert_eq!(
            ChokeReason::Snubbed { silent: s(60) }.to_string(),
            "snubbed: nothing for 60 s"
        );
        assert_eq!(ChokeState::Optimistic.to_string(), "optimistic");
    }
}
