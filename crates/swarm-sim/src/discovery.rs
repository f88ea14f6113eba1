//! Peer discovery and connection policy: the seam where the tracker's swarm
//! registry and the endpoint's connection policy plug into the simulator.
//!
//! Discovery is `swarm-tracker`'s own sans-IO [`swarm_tracker::Registry`]
//! ([`TrackerRegistry`]): every simulated peer has an IPv4 address
//! (`10.x.y.z:6881`, from its index) and announces to it (`started` on
//! arrival, re-announces, `completed`, `stopped` on leaving); the answer's
//! compact records map back to peer indices. The registry hands out a
//! random subset of `numwant` peers (50 by default), as it does on the
//! network.
//!
//! The connection policy is `swarm-engine`'s own [`swarm_engine::Endpoint`],
//! one per simulated peer: the simulator hands it the tracker's addresses
//! and carries out its dials and closes; it decides whom to dial and
//! accept, under its caps (50 connections per torrent), with its back-offs
//! and its eviction of idle connections when a newcomer finds it full.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use swarm_engine::Instant;
use swarm_tracker::{Announce, AnnouncePeers, Registry, RegistryConfig};
use swarm_wire::tracker::Event;
use swarm_wire::{InfoHash, PeerId};

/// The one torrent every simulated peer shares.
pub const INFO_HASH: InfoHash = InfoHash([0x5a; 20]);

/// A simulated peer's id: a client prefix and its index.
pub fn peer_id(peer: usize) -> PeerId {
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(b"-SM0001-");
    id[12..20].copy_from_slice(&(peer as u64).to_be_bytes());
    PeerId(id)
}

/// The port every simulated peer listens on.
const PORT: u16 = 6881;

/// A simulated peer's address: `10.x.y.z`, its index in the low 24 bits.
pub fn addr_of(peer: usize) -> SocketAddr {
    assert!(peer < 1 << 24, "at most 2^24 simulated peers");
    let [_, x, y, z] = (peer as u32).to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, x, y, z)), PORT)
}

/// The index of the simulated peer at `addr`.
pub fn peer_of(addr: SocketAddr) -> Option<usize> {
    match addr.ip() {
        IpAddr::V4(v4) => {
            let [a, x, y, z] = v4.octets();
            (a == 10 && addr.port() == PORT).then(|| u32::from_be_bytes([0, x, y, z]) as usize)
        }
        IpAddr::V6(_) => None,
    }
}

/// The tracker's registry, one swarm, peers as indices.
pub struct TrackerRegistry {
    registry: Registry,
    info_hash: InfoHash,
    out: AnnouncePeers,
}

impl TrackerRegistry {
    /// `interval_s`: the re-announce interval the registry tells peers (it
    /// expires peers silent for two of them).
    pub fn new(seed: u64, interval_s: u32) -> Self {
        TrackerRegistry {
            registry: Registry::new(RegistryConfig::with_interval(interval_s), seed),
            info_hash: INFO_HASH,
            out: AnnouncePeers::new(false),
        }
    }

    /// `peer` announces with `left` bytes to go; the peers handed out (at
    /// most `numwant`), as indices.
    pub fn announce(
        &mut self,
        now: Instant,
        peer: usize,
        left: u64,
        event: Event,
        numwant: usize,
    ) -> Vec<usize> {
        let request = Announce {
            info_hash: self.info_hash,
            peer_id: peer_id(peer),
            addr: addr_of(peer),
            left,
            event,
            numwant: Some(u32::try_from(numwant).unwrap_or(u32::MAX)),
        };
        match self.registry.announce(now, &request, &mut self.out) {
            Ok(_) => self.out.addrs().filter_map(peer_of).collect(),
            // The limits are far above any simulated swarm.
            Err(refusal) => panic!("the tracker registry refused peer {peer}: {refusal}"),
        }
    }

    /// `peer` leaves (announces `stopped`).
    pub fn leave(&mut self, now: Instant, peer: usize, left: u64) {
        let _ = self.announce(now, peer, left, Event::Stopped, 0);
    }

    pub fn check_invariants(&self) {
        self.registry.check_invariants();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_back_to_peers() {
        for p in [0, 1, 255, 256, 70_000, (1 << 24) - 1] {
            assert_eq!(peer_of(addr_of(p)), Some(p));
        }
        assert_eq!(peer_of("10.0.0.1:80".parse().expect("addr")), None);
    }

    #[test]
    fn registry_hands_out_others_and_forgets_leavers() {
        let mut r = TrackerRegistry::new(1, 60);
        let t = Instant::ZERO;
        for p in 0..10 {
            let got = r.announce(t, p, 100, Event::Started, 50);
            assert_eq!(got.len(), p, "peer {p} gets all the others");
            assert!(!got.contains(&p));
        }
        let got = r.announce(t, 3, 100, Event::None, 4);
        assert_eq!(got.len(), 4);
        r.leave(t, 5, 100);
        for _ in 0..20 {
            assert!(!r.announce(t, 0, 100, Event::None, 8).contains(&5));
        }
        r.check_invariants();
    }
}
