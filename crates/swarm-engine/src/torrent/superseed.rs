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
//!   pieces it should take. While we choke it: one *bait*, the piece it
//!   lacks that most of our peers have (then the least given or baited),
//!   only so that it is interested and
//!   waits for a turn (a rare piece offered to a peer that waits 30 s or
//!   more would be held hostage; a common one it will likely get
//!   elsewhere first). While we unchoke it: [`SUPER_SEED_OFFERS`] *fresh*
//!   pieces (two, so its pipeline never waits a round trip for the next).
//! - A fresh piece is, among those the peer lacks and was not offered:
//!   the one given or baited least often, then the least available among our peers,
//!   ties at random. Every piece is thus given once before any twice. A
//!   piece is *given* when offered fresh, or when a peer asks for its bait.
//! - An offer ends when the peer says it has the piece (from us or from
//!   anyone); a new one replaces it. When we choke a peer, the fresh
//!   offers it has not asked for are given back (they count as baits):
//!   another peer may take them now rather than wait for this one's turn.
//! - Requests for pieces we did not offer are still served (we have them).
//!
//! Only a core that starts as a seed super-seeds (`TorrentConfig::super_seeding`);
//! its peers never see a bitfield from it. Cost: 4 bytes a piece, and
//! [`SUPER_SEED_OFFERS`] pieces a peer; an offer scans the pieces once.

use swarm_wire::peer::Message;

use super::{PeerKey, TorrentCore};

/// Pieces offered at once to a peer we unchoke (one while choked).
pub const SUPER_SEED_OFFERS: usize = 2;

/// A super-seeding core's memory of what it gave away.
#[derive(Clone, Debug)]
pub(crate) struct SuperSeed {
    /// Times each piece was given: offered fresh to a peer we unchoke, or
    /// taken as a bait.
    given: Vec<u32>,
    /// Peers each piece is offered to as a bait now.
    baited: Vec<u32>,
}

impl SuperSeed {
    pub fn new(num_pieces: u32) -> Self {
        SuperSeed {
            given: vec![0; num_pieces as usize],
            baited: vec![0; num_pieces as usize],
        }
    }
}

/// A piece offered to a peer (we sent it `Have`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Offer {
    pub piece: u32,
    /// Counted in `given`: offered fresh, or a bait it asked us for.
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

    /// Tops up `key`'s offers: drops those it now has, then offers a bait
    /// if it is choked and has none, or fresh pieces up to
    /// [`SUPER_SEED_OFFERS`] if we unchoke it. A no-op unless super-seeding.
    pub(super) fn super_seed_offer(&mut self, key: PeerKey) {
        let Some(ss) = self.super_seed.as_mut() else {
            return;
        };
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.offered.retain(|o| {
            let keep = !p.pieces.get(o.piece);
            if !keep && !o.counted {
                ss.baited[o.piece as usize] -= 1;
            }
            keep
        });
        let mut sent = Vec::new();
        loop {
            let fresh = p.offered.iter().filter(|o| o.counted).count();
            let bait = p.am_choking && p.offered.is_empty();
            if !bait && (p.am_choking || fresh >= SUPER_SEED_OFFERS) {
                break;
            }
            // Fresh: the least given or baited piece it lacks, then the
            // least available. Bait: the most available, then the least
            // given or baited. Ties at random (reservoir sampling).
            let mut best: Option<((u32, u32), u32)> = None;
            let mut ties = 0u32;
            for i in 0..self.lengths.num_pieces() {
                if p.pieces.get(i) || p.offered.iter().any(|o| o.piece == i) {
                    continue;
                }
                let Some(vp) = self.lengths.validate_piece_index(i) else {
                    continue;
                };
                let taken = ss.given[i as usize] + ss.baited[i as usize];
                let a = self.picker.availability(vp);
                let rank = if bait {
                    (u32::MAX - a, taken)
                } else {
                    (taken, a)
                };
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
            if bait {
                ss.baited[piece as usize] += 1;
            } else {
                ss.given[piece as usize] += 1;
            }
            p.offered.push(Offer {
                piece,
                counted: !bait,
                requested: false,
            });
            sent.push(piece);
        }
        for piece in sent {
            self.send(key, Message::Have { piece });
        }
    }

    /// `key` asked us for a block of `piece`: a bait it takes from us
    /// counts as given.
    pub(super) fn super_seed_requested(&mut self, key: PeerKey, piece: u32) {
        let (Some(ss), Some(p)) = (self.super_seed.as_mut(), self.peers.get_mut(&key)) else {
            return;
        };
        if let Some(o) = p.offered.iter_mut().find(|o| o.piece == piece) {
            o.requested = true;
            if !o.counted {
                o.counted = true;
                ss.given[piece as usize] += 1;
                ss.baited[piece as usize] -= 1;
            }
        }
    }

    /// We choked `key`: fresh offers it has not started are given back
    /// (they become baits), so that another peer may take them now rather
    /// than when this one gets its next turn.
    pub(super) fn super_seed_choked(&mut self, key: PeerKey) {
        let (Some(ss), Some(p)) = (self.super_seed.as_mut(), self.peers.get_mut(&key)) else {
            return;
        };
        for o in p.offered.iter_mut().filter(|o| o.counted && !o.requested) {
            o.counted = false;
            ss.given[o.piece as usize] -= 1;
            ss.baited[o.piece as usize] += 1;
        }
    }

    /// A peer left with these offers: its baits are free again.
    pub(super) fn super_seed_forget(&mut self, offered: &[Offer]) {
        if let Some(ss) = self.super_seed.as_mut() {
            for o in offered.iter().filter(|o| !o.counted) {
                ss.baited[o.piece as usize] -= 1;
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
        let mut baits = vec![0u32; ss.given.len()];
        for (k, p) in &self.peers {
            assert!(p.offered.len() <= SUPER_SEED_OFFERS + 1, "{k:?} offers");
            for (n, o) in p.offered.iter().enumerate() {
                let i = o.piece;
                assert!(
                    !p.offered[..n].iter().any(|x| x.piece == i),
                    "{k:?} offered {i} twice"
                );
                assert!(!p.pieces.get(i), "{k:?} offered {i}, which it has");
                if o.counted {
                    current[i as usize] += 1;
                } else {
                    baits[i as usize] += 1;
                }
            }
        }
        for (i, (&now, &ever)) in current.iter().zip(&ss.given).enumerate() {
            assert!(now <= ever, "piece {i} offered to more peers than counted");
        }
        assert_eq!(baits, ss.baited, "baits counted");
    }
}
