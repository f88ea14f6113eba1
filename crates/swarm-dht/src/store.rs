//! What a node stores for others: peers announced for info-hashes (BEP 5)
//! and BEP 44 items, and the write tokens that guard both.
//!
//! Bounded: at most [`StoreLimits::torrents_max`] info-hashes with at most
//! [`StoreLimits::peers_per_torrent_max`] peers each (about 48 bytes a peer:
//! at the defaults, 1,000 × 100 peers is about 5 MB), and at most
//! [`StoreLimits::items_max`] items (≤ about 1.2 KB each: about 1.2 MB).
//! A full torrent replaces its oldest announcement; a full item store
//! evicts the item stored longest ago; a new torrent past the cap is
//! refused. Peers expire [`PEER_TTL`] after their announce, items
//! [`ITEM_TTL`] after their last put.
//!
//! Tokens (BEP 5): SHA-1 of a secret and the asker's IP, 8 bytes. The secret
//! is replaced every [`TOKEN_ROTATION`]; tokens from the previous secret are
//! still accepted, so a token lives 5 to 10 minutes, and only from the IP it
//! was given to.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use sha1::{Digest, Sha1};
use swarm_wire::InfoHash;
use swarm_wire::krpc::{NodeId, code};

use crate::item::Item;
use crate::time::{Duration, Instant, Rng};

/// How long an announced peer is kept.
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);
/// How long an item is kept after its last put (BEP 44: 2 hours).
pub const ITEM_TTL: Duration = Duration::from_secs(2 * 60 * 60);
/// How often the token secret changes.
pub const TOKEN_ROTATION: Duration = Duration::from_secs(5 * 60);
/// Bytes of a token.
pub const TOKEN_LEN: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    pub torrents_max: usize,
    pub peers_per_torrent_max: usize,
    pub items_max: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            torrents_max: 1000,
            peers_per_torrent_max: 100,
            items_max: 1000,
        }
    }
}

#[derive(Clone, Debug)]
struct Stored {
    item: Item,
    stored_at: Instant,
}

/// Why a put was refused (a BEP 44 error code and text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutRefused {
    pub code: i64,
    pub message: &'static str,
}

#[derive(Clone, Debug)]
pub struct Store {
    limits: StoreLimits,
    peers: BTreeMap<InfoHash, BTreeMap<SocketAddr, Instant>>,
    items: BTreeMap<NodeId, Stored>,
}

impl Store {
    pub fn new(limits: StoreLimits) -> Self {
        Store {
            limits,
            peers: BTreeMap::new(),
            items: BTreeMap::new(),
        }
    }

    /// Records that `peer` has the torrent. False if refused (caps).
    pub fn announce(&mut self, now: Instant, info_hash: InfoHash, peer: SocketAddr) -> bool {
        if !self.peers.contains_key(&info_hash) && self.peers.len() >= self.limits.torrents_max {
            return false;
        }
        let peers = self.peers.entry(info_hash).or_default();
        if !peers.contains_key(&peer)
            && peers.len() >= self.limits.peers_per_torrent_max
            && let Some(oldest) = peers.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a)
        {
            peers.remove(&oldest);
        }
        peers.insert(peer, now);
        true
    }

    /// Up to `max` peers of the torrent of the family of `v6`, a random
    /// selection when there are more.
    pub fn peers(
        &self,
        info_hash: &InfoHash,
        v6: bool,
        max: usize,
        rng: &mut Rng,
    ) -> Vec<SocketAddr> {
        let Some(peers) = self.peers.get(info_hash) else {
            return Vec::new();
        };
        let mut all: Vec<SocketAddr> = peers
            .keys()
            .filter(|a| a.is_ipv6() == v6)
            .copied()
            .collect();
        // Partial Fisher-Yates: the first `max` are a uniform sample.
        let n = all.len().min(max);
        for i in 0..n {
            let j = i + rng.below((all.len() - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(n);
        all
    }

    /// Stores a verified item (signature and size already checked), with
    /// BEP 44's sequence-number rules for mutable ones.
    pub fn put(&mut self, now: Instant, item: Item, cas: Option<i64>) -> Result<(), PutRefused> {
        let target = item.target();
        if let Some(old) = self.items.get_mut(&target) {
            if let (Some(new), Some(prev)) = (&item.signed, &old.item.signed) {
                if let Some(cas) = cas
                    && cas != prev.seq
                {
                    return Err(PutRefused {
                        code: code::CAS_MISMATCH,
                        message: "CAS mismatch",
                    });
                }
                if new.seq < prev.seq {
                    return Err(PutRefused {
                        code: code::SEQ_TOO_LOW,
                        message: "sequence number less than current",
                    });
                }
                if new.seq == prev.seq && item.value != old.item.value {
                    return Err(PutRefused {
                        code: code::SEQ_TOO_LOW,
                        message: "sequence number not newer",
                    });
                }
            }
            old.item = item;
            old.stored_at = now;
            return Ok(());
        }
        if self.items.len() >= self.limits.items_max
            && let Some(oldest) = self
                .items
                .iter()
                .min_by_key(|(_, s)| s.stored_at)
                .map(|(t, _)| *t)
        {
            self.items.remove(&oldest);
        }
        self.items.insert(
            target,
            Stored {
                item,
                stored_at: now,
            },
        );
        Ok(())
    }

    pub fn item(&self, target: &NodeId) -> Option<&Item> {
        self.items.get(target).map(|s| &s.item)
    }

    /// Drops expired peers, torrents left empty, and expired items.
    pub fn expire(&mut self, now: Instant) {
        for peers in self.peers.values_mut() {
            peers.retain(|_, t| now.since(*t) < PEER_TTL);
        }
        self.peers.retain(|_, p| !p.is_empty());
        self.items.retain(|_, s| now.since(s.stored_at) < ITEM_TTL);
    }

    pub fn torrents(&self) -> usize {
        self.peers.len()
    }

    pub fn peer_count(&self) -> usize {
        self.peers.values().map(BTreeMap::len).sum()
    }

    pub fn items(&self) -> usize {
        self.items.len()
    }

    pub fn check_invariants(&self) {
        assert!(self.peers.len() <= self.limits.torrents_max);
        assert!(self.items.len() <= self.limits.items_max);
        for p in self.peers.values() {
            assert!(!p.is_empty() && p.len() <= self.limits.peers_per_torrent_max);
        }
        for (t, s) in &self.items {
            assert_eq!(*t, s.item.target(), "item under the wrong key");
        }
    }
}

/// Write tokens bound to the asker's IP.
#[derive(Clone, Debug)]
pub struct Tokens {
    secret: [u8; 16],
    previous: [u8; 16],
    rotated_at: Instant,
}

impl Tokens {
    pub fn new(now: Instant, rng: &mut Rng) -> Self {
        let secret = rng.bytes();
        Tokens {
            secret,
            previous: secret,
            rotated_at: now,
        }
    }

    fn make(secret: &[u8; 16], ip: IpAddr) -> [u8; TOKEN_LEN] {
        let mut h = Sha1::new();
        h.update(secret);
        match ip {
            IpAddr::V4(v4) => h.update(v4.octets()),
            IpAddr::V6(v6) => h.update(v6.octets()),
        }
        let d = h.finalize();
        let mut out = [0u8; TOKEN_LEN];
        out.copy_from_slice(&d[..TOKEN_LEN]);
        out
    }

    pub fn token(&self, ip: IpAddr) -> Vec<u8> {
        Self::make(&self.secret, ip).to_vec()
    }

    /// Valid if made for `ip` with the current or the previous secret.
    pub fn valid(&self, ip: IpAddr, token: &[u8]) -> bool {
        token == Self::make(&self.secret, ip) || token == Self::make(&self.previous, ip)
    }

    /// Rotates the secret if [`TOKEN_ROTATION`] has passed.
    pub fn rotate(&mut self, now: Instant, rng: &mut Rng) {
        if now.since(self.rotated_at) >= TOKEN_ROTATION {
            self.previous = self.secret;
            self.secret = rng.bytes();
            self.rotated_at = now;
        }
    }

    pub fn next_rotation(&self) -> Instant {
        self.rotated_at + TOKEN_ROTATION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rotation() {
        let mut rng = Rng::new(3);
        let mut t = Tokens::new(Instant(0), &mut rng);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let tok = t.token(ip);
        assert!(t.valid(ip, &tok));
        assert!(!t.valid(other, &tok), "bound to the IP");
        t.rotate(Instant(0) + TOKEN_ROTATION, &mut rng);
        assert!(t.valid(ip, &tok), "previous secret accepted");
        t.rotate(Instant(0) + TOKEN_ROTATION + TOKEN_ROTATION, &mut rng);
        assert!(!t.valid(ip, &tok), "two rotations later: refused");
        assert!(t.valid(ip, &t.token(ip)));
    }

    #[test]
    fn items_expire_and_obey_seq() {
        let mut s = Store::new(StoreLimits {
            items_max: 2,
            ..StoreLimits::default()
        });
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let v2 = Item::sign(&key, b"", 2, b"1:b".to_vec()).unwrap();
        let v1 = Item::sign(&key, b"", 1, b"1:a".to_vec()).unwrap();
        s.put(Instant(0), v2.clone(), None).unwrap();
        assert_eq!(
            s.put(Instant(0), v1, None).unwrap_err().code,
            code::SEQ_TOO_LOW
        );
        let v3 = Item::sign(&key, b"", 3, b"1:c".to_vec()).unwrap();
        assert_eq!(
            s.put(Instant(0), v3.clone(), Some(1)).unwrap_err().code,
            code::CAS_MISMATCH
        );
        s.put(Instant(0), v3.clone(), Some(2)).unwrap();
        assert_eq!(s.item(&v3.target()), Some(&v3));
        // Expiry two hours after the last put; a re-put extends it.
        let imm = Item::immutable(b"1:x".to_vec()).unwrap();
        s.put(Instant(0), imm.clone(), None).unwrap();
        s.put(Instant(0) + Duration::from_secs(3600), imm.clone(), None)
            .unwrap();
        s.expire(Instant(0) + ITEM_TTL);
        assert!(s.item(&v3.target()).is_none(), "expired");
        assert!(s.item(&imm.target()).is_some(), "re-put: still there");
        s.expire(Instant(0) + Duration::from_secs(3600) + ITEM_TTL);
        assert_eq!(s.items(), 0);
        // Bounded: a third item evicts the oldest.
        for (i, v) in [b"1:p", b"1:q", b"1:r"].iter().enumerate() {
            s.put(
                Instant(i as u64),
                Item::immutable(v.to_vec()).unwrap(),
                None,
            )
            .unwrap();
        }
        assert_eq!(s.items(), 2);
        assert!(
            s.item(&Item::immutable(b"1:p".to_vec()).unwrap().target())
                .is_none()
        );
        s.check_invariants();
    }

    #[test]
    fn peers_are_bounded() {
        let mut s = Store::new(StoreLimits {
            torrents_max: 1,
            peers_per_torrent_max: 3,
            items_max: 1,
        });
        let h = InfoHash([1; 20]);
        for p in 0..5u16 {
            assert!(s.announce(Instant(u64::from(p)), h, ([10, 0, 0, 1], p).into()));
        }
        assert_eq!(s.peer_count(), 3);
        assert!(!s.announce(Instant(9), InfoHash([2; 20]), ([10, 0, 0, 1], 1).into()));
        let mut rng = Rng::new(1);
        let got = s.peers(&h, false, 2, &mut rng);
        assert_eq!(got.len(), 2);
        s.expire(Instant(4) + PEER_TTL);
        assert_eq!(s.torrents(), 0);
        s.check_invariants();
    }
}
