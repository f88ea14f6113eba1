//! Who we unchoke (BEP 3 choking): the seam between the torrent core and a choker.
//!
//! The core gathers one [`UnchokeCandidate`] per connected peer and asks an
//! [`Unchoker`] which of them to unchoke; it then sends `choke`/`unchoke` for
//! the differences. The placeholder here is a fixed-slot unchoke: the first
//! `slots` interested peers, keeping those already unchoked so the set does
//! not churn. The tit-for-tat choker (`choker.rs`, issue 4) replaces
//! [`FixedSlots`] behind the same call.

use crate::rng::Rng;
use crate::time::Instant;
use crate::torrent::PeerKey;

/// What the choker may look at for one connected peer.
#[derive(Clone, Debug, PartialEq)]
pub struct UnchokeCandidate {
    pub peer: PeerKey,
    /// The peer wants data from us.
    pub interested: bool,
    /// We currently unchoke it.
    pub unchoked: bool,
    /// The peer currently unchokes us.
    pub unchokes_us: bool,
    /// Bytes/s we received from it over the last 20 s.
    pub download_rate: f64,
    /// Bytes/s we sent to it over the last 20 s.
    pub upload_rate: f64,
    pub connected_at: Instant,
    /// When it last sent us a block (`None`: never).
    pub last_block_at: Option<Instant>,
}

/// Decides the set of unchoked peers. `seeding` is true once we have every
/// piece; `rng` is the core's seeded generator (for optimistic unchokes).
/// Called every `rechoke_interval`, and also when an interested peer could
/// take a free slot or an unchoked peer left or lost interest.
pub trait Unchoker {
    fn rechoke(
        &mut self,
        now: Instant,
        seeding: bool,
        peers: &[UnchokeCandidate],
        rng: &mut Rng,
    ) -> Vec<PeerKey>;
}

/// Fixed-slot unchoke: up to `slots` interested peers, incumbents first, then
/// in the order given (connection order), no rotation.
#[derive(Clone, Debug)]
pub struct FixedSlots {
    pub slots: usize,
}

impl Unchoker for FixedSlots {
    fn rechoke(
        &mut self,
        _now: Instant,
        _seeding: bool,
        peers: &[UnchokeCandidate],
        _rng: &mut Rng,
    ) -> Vec<PeerKey> {
        let incumbents = peers.iter().filter(|p| p.interested && p.unchoked);
        let newcomers = peers.iter().filter(|p| p.interested && !p.unchoked);
        incumbents
            .chain(newcomers)
            .take(self.slots)
            .map(|p| p.peer)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(k: u64, interested: bool, unchoked: bool) -> UnchokeCandidate {
        UnchokeCandidate {
            peer: PeerKey(k),
            interested,
            unchoked,
            unchokes_us: false,
            download_rate: 0.0,
            upload_rate: 0.0,
            connected_at: Instant::ZERO,
            last_block_at: None,
        }
    }

    #[test]
    fn first_interested_incumbents_kept() {
        let mut u = FixedSlots { slots: 2 };
        let peers = [
            cand(1, true, false),
            cand(2, false, false),
            cand(3, true, true),
            cand(4, true, false),
        ];
        assert_eq!(
            u.rechoke(Instant::ZERO, false, &peers, &mut Rng::new(0)),
            vec![PeerKey(3), PeerKey(1)]
        );
    }
}
