//! Peer discovery and connection policy: the seam where the tracker's swarm
//! registry and the endpoint's connection policy plug into the simulator.
//!
//! Until `swarm-tracker`'s sans-IO registry and `swarm-engine`'s `Endpoint`
//! are on main, [`StandInRegistry`] and [`StandInPolicy`] stand in for them,
//! doing what the real ones are specified to do: the registry hands an
//! announcing peer a uniformly random subset of the others (`numwant`, 50
//! by default, as BEP 3 trackers do), and the policy dials the addresses it
//! is given while below `dial_max` connections (30), never twice to one
//! peer, and accepts incoming connections up to `peers_max` (50, the
//! session's cap). Dialling less than the cap leaves room for newcomers: in
//! a flash crowd where everyone dials up to the cap, the first half of the
//! peers fill each other's slots and the rest find every door closed.

use swarm_engine::rng::Rng;

/// The tracker's registry as the simulator uses it: peers are indices.
pub trait Registry {
    /// `peer` announces (on arrival and every re-announce); returns up to
    /// `numwant` other registered peers.
    fn announce(&mut self, peer: usize, numwant: usize, rng: &mut Rng) -> Vec<usize>;
    /// `peer` left the swarm (announced `stopped`, or vanished).
    fn leave(&mut self, peer: usize);
}

/// A stand-in for the tracker's registry: every announcing peer is
/// registered; the answer is a uniform random subset of the others.
#[derive(Default)]
pub struct StandInRegistry {
    present: Vec<usize>,
    /// Position of each peer in `present`, or `usize::MAX`.
    index: Vec<usize>,
    /// `Some(seeds)`: client-server mode, only these peers are handed out.
    only: Option<Vec<usize>>,
}

impl StandInRegistry {
    /// A registry that hands out only `servers` (client-server mode: peers
    /// never learn of each other).
    pub fn servers_only(servers: Vec<usize>) -> Self {
        StandInRegistry {
            only: Some(servers),
            ..Self::default()
        }
    }
}

impl Registry for StandInRegistry {
    fn announce(&mut self, peer: usize, numwant: usize, rng: &mut Rng) -> Vec<usize> {
        if self.index.len() <= peer {
            self.index.resize(peer + 1, usize::MAX);
        }
        if self.index[peer] == usize::MAX {
            self.index[peer] = self.present.len();
            self.present.push(peer);
        }
        if let Some(only) = &self.only {
            return only
                .iter()
                .copied()
                .filter(|&p| p != peer && self.index.get(p).is_some_and(|&i| i != usize::MAX))
                .take(numwant)
                .collect();
        }
        let others = self.present.len() - 1;
        if others <= numwant {
            return self
                .present
                .iter()
                .copied()
                .filter(|&p| p != peer)
                .collect();
        }
        // A partial Fisher-Yates draw over positions, without touching `present`.
        let mut picked: Vec<usize> = Vec::with_capacity(numwant);
        while picked.len() < numwant {
            let p = self.present[rng.below(self.present.len())];
            if p != peer && !picked.contains(&p) {
                picked.push(p);
            }
        }
        picked
    }

    fn leave(&mut self, peer: usize) {
        let Some(&i) = self.index.get(peer) else {
            return;
        };
        if i == usize::MAX {
            return;
        }
        self.present.swap_remove(i);
        if let Some(&moved) = self.present.get(i) {
            self.index[moved] = i;
        }
        self.index[peer] = usize::MAX;
    }
}

/// A stand-in for the endpoint's connection policy.
#[derive(Clone, Copy, Debug)]
pub struct StandInPolicy {
    /// Connections per peer, dialled and accepted, at most.
    pub peers_max: usize,
    /// A peer dials only while it has fewer connections than this.
    pub dial_max: usize,
}

impl StandInPolicy {
    /// Whether a peer with `open` connections (pending dials included) dials
    /// another address.
    pub fn may_dial(&self, open: usize) -> bool {
        open < self.dial_max.min(self.peers_max)
    }

    /// Whether a peer with `open` connections accepts one more.
    pub fn may_accept(&self, open: usize) -> bool {
        open < self.peers_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hands_out_others_and_forgets_leavers() {
        let mut r = StandInRegistry::default();
        let mut rng = Rng::new(1);
        for p in 0..10 {
            let got = r.announce(p, 50, &mut rng);
            assert_eq!(got.len(), p);
            assert!(!got.contains(&p));
        }
        let got = r.announce(3, 4, &mut rng);
        assert_eq!(got.len(), 4);
        r.leave(5);
        for _ in 0..20 {
            assert!(!r.announce(0, 8, &mut rng).contains(&5));
        }
        let mut cs = StandInRegistry::servers_only(vec![0]);
        cs.announce(0, 50, &mut rng);
        assert_eq!(cs.announce(7, 50, &mut rng), vec![0]);
    }
}
