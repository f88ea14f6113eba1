//! Super-seeding (BEP 16): an initial seed that hides what it has and
//! offers each peer a piece or two at a time, so that its upload is one
//! copy of the torrent before it is any piece twice.
//!
//! Why: a seed whose upload equals a leecher's is the swarm's bottleneck
//! (the P2P bound is F/u_s), and every piece it sends twice before the
//! swarm holds one copy costs the whole swarm that time. With an honest
//! bitfield the leechers choose, by rarest first over *their own*
//! neighbours: a piece the seed gave to someone out of view still looks
//! unique, and pieces in flight at once look unique to all. Measured in
//! the simulator (100 leechers, 200 pieces, u = u_s, 50 neighbours): the
//! seed uploaded 1.27 copies before the swarm had one, and the last
//! leecher finished at 1.28× the bound. The seed knows exactly what it
//! has given; so it chooses.
//!
//! Policy (libtorrent's non-strict super-seeding, with the seed's own
//! count first):
//! - A peer gets `HaveNone` (or no bitfield) at connect, then `Have` for
//!   the pieces it should take: [`SUPER_SEED_OFFERS`] *fresh* pieces while
//!   we unchoke it (two, so its pipeline never waits a round trip for the
//!   next), none while we choke it.
//! - A fresh piece is, among those the peer lacks and holds no offer of:
//!   the one given least often, then the least available among our peers,
//!   ties at random. Every piece is thus given once before any twice. A
//!   piece is *given* when offered fresh, or when a peer asks for a piece
//!   it was offered and that was not counted (below).
//! - An offer ends when the peer says it has the piece (from us or from
//!   anyone); a new one replaces it. When we choke a peer, the fresh
//!   offers it has not asked for are given back (no longer counted):
//!   another peer may take them now rather than wait for this one's turn.
//!   When we unchoke it again, those still given to nobody count again.
//! - Whom we unchoke: a super-seed's peers see only their offers, so their
//!   `interested` tells only whether they want those; for the choker a
//!   peer *wants* us while it lacks a piece (it would be interested in our
//!   bitfield). So a choked peer waits for its round-robin turn with no
//!   offer, and a peer that took all its offers keeps its slot (its
//!   `not interested` crosses our next offers) instead of handing it on
//!   after every piece or two. (Earlier versions gave a choked peer one
//!   *bait* to make it interested: measured in the simulator, 100 leechers
//!   × 200 pieces, the baits took a quarter of the pieces out of the fresh
//!   ranking and were then asked for after those pieces had been given
//!   elsewhere, and each unchoke lasted two pieces: the seed uploaded 1.31
//!   copies before the swarm held one.) Left out: a peer that does not
//!   want some pieces (a selective download) is unchoked for its turn
//!   even if it wants none of its offers.
//! - Requests for pieces we did not offer are still served (we have them).
//!
//! Only a core that starts as a seed super-seeds (`TorrentConfig::super_seeding`);
//! its peers never see a bitfield from it. Cost: 4 bytes a piece, and at
//! most [`SUPER_SEED_OFFERS_HELD_MAX`] offers a peer; an offer scans the pieces once.

use swarm_wire::peer::Message;

use super::{PeerKey, TorrentCore};

/// Pieces counted as given to a peer we unchoke at once.
pub const SUPER_SEED_OFFERS: usize = 2;
/// Offers a peer holds at most, given back ones included (the oldest
/// given-back one is forgotten beyond this).
pub const SUPER_SEED_OFFERS_HELD_MAX: usize = 2 * SUPER_SEED_OFFERS;

/// A super-seeding core's memory of what it gave away.
#[derive(Clone, Debug)]
pub(crate) struct SuperSeed {
    /// Times each piece was given: offered fresh to a peer we unchoke, or
    /// asked for while not counted.
    given: Vec<u32>,
}

impl SuperSeed {
    pub fn new(num_pieces: u32) -> Self {
        SuperSeed {
            given: vec![0; num_pieces as usize],
        }
    }
}

/// A piece offered to a peer (we sent it `Have`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Offer {
    pub piece: u32,
    /// Counted in `given`: offered fresh to it unchoked, or asked for.
    pub counted: bool,
    /// It asked us for a block of it.
    pub requested: bool,
}

impl TorrentCore {
    /// Whether this core super-seeds (it started as a seed with
    /// `super_seeding` on).
    pub fn is_super_seeding(&self) -> bool {
        self.super_seed.is_some()
    }

    /// `key` has more pieces: if that made it complete while we unchoke
    /// it, its slot goes to a peer that wants one (see the module docs:
    /// the choker sees a super-seed's peer as wanting while it lacks a
    /// piece).
    pub(super) fn super_seed_progress(&mut self, key: PeerKey) {
        if self.super_seed.is_some()
            && self
                .peers
                .get(&key)
                .is_some_and(|p| !p.am_choking && p.pieces.is_all_set())
        {
            self.rechoke(false);
        }
    }

    /// Tops up `key`'s offers: drops those it now has, then, if we unchoke
    /// it, counts again the given-back ones nobody else was given and
    /// offers fresh pieces up to [`SUPER_SEED_OFFERS`] counted ones. A
    /// no-op unless super-seeding.
    pub(super) fn super_seed_offer(&mut self, key: PeerKey) {
        let Some(ss) = self.super_seed.as_mut() else {
            return;
        };
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.offered.retain(|o| {
            let keep = !p.pieces.get(o.piece);
            if !keep && o.counted && !o.requested {
                // It got the piece from someone else: not given by us.
                ss.given[o.piece as usize] -= 1;
            }
            keep
        });
        if p.am_choking {
            return;
        }
        let mut counted = p.offered.iter().filter(|o| o.counted).count();
        for o in p.offered.iter_mut().filter(|o| !o.counted) {
            if counted < SUPER_SEED_OFFERS && ss.given[o.piece as usize] == 0 {
                o.counted = true;
                ss.given[o.piece as usize] += 1;
                counted += 1;
            }
        }
        let mut sent = Vec::new();
        while p.offered.iter().filter(|o| o.counted).count() < SUPER_SEED_OFFERS {
            // The least given piece it lacks, then the least available;
            // ties at random (reservoir sampling).
            let mut best: Option<((u32, u32), u32)> = None;
            let mut ties = 0u32;
            for i in 0..self.lengths.num_pieces() {
                if p.pieces.get(i) || p.offered.iter().any(|o| o.piece == i) {
                    continue;
                }
                let Some(vp) = self.lengths.validate_piece_index(i) else {
                    continue;
                };
                let rank = (ss.given[i as usize], self.picker.availability(vp));
                match best {
                    Some((r, _)) if r < rank => {}
                    Some((r, _)) if r == rank => {
                        ties += 1;
                        if self.rng.below(ties as usize) == 0 {
                            best = Some((rank, i));
                        }
                    }
                    _ => {
                        ties = 1;
                        best = Some((rank, i));
                    }
                }
            }
            let Some((_, piece)) = best else {
                break;
            };
            ss.given[piece as usize] += 1;
            if p.offered.len() >= SUPER_SEED_OFFERS_HELD_MAX
                && let Some(i) = p.offered.iter().position(|o| !o.counted)
            {
                p.offered.remove(i);
            }
            p.offered.push(Offer {
                piece,
                counted: true,
                requested: false,
            });
            sent.push(piece);
        }
        for piece in sent {
            self.send(key, Message::Have { piece });
        }
    }

    /// `key` asked us for a block of `piece`: an offer it takes counts as
    /// given (if it was given back meanwhile).
    pub(super) fn super_seed_requested(&mut self, key: PeerKey, piece: u32) {
        let (Some(ss), Some(p)) = (self.super_seed.as_mut(), self.peers.get_mut(&key)) else {
            return;
        };
        if let Some(o) = p.offered.iter_mut().find(|o| o.piece == piece) {
            o.requested = true;
            if !o.counted {
                o.counted = true;
                ss.given[piece as usize] += 1;
            }
        }
    }

    /// We choked `key`: fresh offers it has not started are given back
    /// (no longer counted), so that another peer may take them now rather
    /// than when this one gets its next turn.
    pub(super) fn super_seed_choked(&mut self, key: PeerKey) {
        let (Some(ss), Some(p)) = (self.super_seed.as_mut(), self.peers.get_mut(&key)) else {
            return;
        };
        for o in p.offered.iter_mut().filter(|o| o.counted && !o.requested) {
            o.counted = false;
            ss.given[o.piece as usize] -= 1;
        }
    }

    /// A peer left with these offers: those it never asked for were not given.
    pub(super) fn super_seed_forget(&mut self, offered: &[Offer]) {
        if let Some(ss) = self.super_seed.as_mut() {
            for o in offered.iter().filter(|o| o.counted && !o.requested) {
                ss.given[o.piece as usize] -= 1;
            }
        }
    }

    pub(super) fn check_super_seed(&self) {
        let Some(ss) = &self.super_seed else {
            return;
        };
        assert!(
            self.picker.have().is_all_set(),
            "super-seeding without all pieces"
        );
        let mut current = vec![0u32; ss.given.len()];
        for (k, p) in &self.peers {
            assert!(
                p.offered.len() <= SUPER_SEED_OFFERS_HELD_MAX,
                "{k:?} offers"
            );
            for (n, o) in p.offered.iter().enumerate() {
                let i = o.piece;
                assert!(
                    !p.offered[..n].iter().any(|x| x.piece == i),
                    "{k:?} offered {i} twice"
                );
                assert!(!p.pieces.get(i), "{k:?} offered {i}, which it has");
                assert!(
                    o.counted || !o.requested,
                    "{k:?}: {i} asked for, not counted"
                );
                if o.counted {
                    current[i as usize] += 1;
                }
            }
        }
        for (i, (&now, &ever)) in current.iter().zip(&ss.given).enumerate() {
            assert!(now <= ever, "piece {i} offered to more peers than counted");
        }
    }
}
