//! One connected peer as the torrent core sees it (BEP 3 state, BEP 6 extras).
//!
//! Four booleans of BEP 3 (`am_choking`, `am_interested`, `peer_choking`,
//! `peer_interested`), the pieces it has, our requests in flight to it and its
//! requests to us, and the rates both ways. All collections are bounded:
//! our requests by `queue_max`, its requests by [`PEER_REQUESTS_MAX`],
//! recently cancelled requests by [`RECENTLY_CANCELLED_MAX`].

use std::collections::{BTreeSet, VecDeque};

use swarm_wire::lengths::BlockInfo;

use crate::bitfield::Bitfield;
use crate::config::{PEER_READS_IN_FLIGHT_MAX, PEER_REQUESTS_MAX, TorrentConfig};
use crate::event::PeerInfo;
use crate::ids::PeerKey;
use crate::rate::RateEstimator;
use crate::time::{Duration, Instant};

/// Requests we withdrew (cancel, choke, timeout) whose block may still arrive:
/// a late block is not a protocol violation. Kept for the last this many.
pub const RECENTLY_CANCELLED_MAX: usize = 1024;

/// How long the pipeline grows by one block per block received (TCP-style
/// slow start) before the 20 s rate estimate alone sizes it.
pub const SLOW_START: Duration = Duration::from_secs(3);

/// Laid out for the cache (`repr(C)`, fields in this order, each peer on
/// its own cache lines): what a rechoke, a have and a tick read of every
/// peer comes first (the flags and clocks in the first 64 bytes, then the
/// pieces and the download rate's running sums, then the upload rate's),
/// so scanning 50 peers touches ~4 lines each, not the whole ~1 KiB. At a
/// thousand simulated peers nearly every such line is a miss to memory
/// (issue 12's scale profile); the order changes no behaviour.
#[repr(C, align(64))]
pub(crate) struct Peer {
    /// When `peer_choking` last became false (anti-snubbing's clock).
    pub peer_unchoked_at: Instant,
    /// When `am_interested` last became true (anti-snubbing's clock).
    pub am_interested_at: Instant,
    pub connected_at: Instant,
    pub last_received: Instant,
    pub last_sent: Instant,
    /// Last time it made progress on our requests (a block arrived, or the
    /// pipeline went from empty to non-empty): the request timeout's origin.
    pub last_progress: Instant,
    /// Pieces it has that we do not: we are interested iff this is > 0.
    pub interesting: u32,
    pub info: PeerInfo,
    /// A message that carries or implies piece state (have, bitfield,
    /// request, piece…) arrived: a bitfield now would be a protocol error.
    pub seen_piece_state: bool,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    /// It let a request time out: it gets one request at a time until it sends a block.
    pub snubbed: bool,

    pub last_block_at: Option<Instant>,
    pub pieces: Bitfield,
    pub first_block_at: Option<Instant>,
    pub download: RateEstimator,
    pub upload: RateEstimator,

    // Our requests to it.
    pub in_flight: BlockSet,
    cancelled_order: VecDeque<BlockInfo>,
    cancelled: BTreeSet<BlockInfo>,
    /// Its BEP 10 `reqq`, if it sent one.
    pub reqq: Option<u32>,
    /// Slow-start pipeline size, in blocks.
    pub slow_start_target: usize,
    /// Implicated in a hash failure: it only gets pieces it downloads alone.
    pub parole: bool,
    /// Hash failures of pieces it sent alone.
    pub hash_strikes: u32,
    /// Super-seeding: the pieces we offered it (`Have`) that it lacks, at
    /// most `SUPER_SEED_OFFERS_HELD_MAX`.
    pub offered: Vec<crate::torrent::superseed::Offer>,
    /// Super-seeding: pieces counted for it since we last unchoked it (at
    /// most `SUPER_SEED_TURN_PIECES`).
    pub turn_pieces: u32,

    // Its requests to us.
    pub requests: VecDeque<BlockInfo>,
    /// Requests being read whose data we will send (a cancel removes one).
    pub reading: BlockSet,
    /// `ReadBlock` events not answered yet, cancelled ones included: what
    /// the driver holds in memory for this peer.
    pub reads_outstanding: usize,
    /// The driver reported its send buffer full: no new reads until it drains.
    pub send_buffer_full: bool,
}

impl Peer {
    pub fn new(now: Instant, info: PeerInfo, num_pieces: u32, config: &TorrentConfig) -> Self {
        Peer {
            info,
            connected_at: now,
            pieces: Bitfield::empty(num_pieces),
            seen_piece_state: false,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            peer_unchoked_at: now,
            am_interested_at: now,
            interesting: 0,
            in_flight: BlockSet::default(),
            cancelled_order: VecDeque::new(),
            cancelled: BTreeSet::new(),
            reqq: None,
            slow_start_target: config.queue_min,
            first_block_at: None,
            last_block_at: None,
            last_progress: now,
            snubbed: false,
            parole: false,
            hash_strikes: 0,
            offered: Vec::new(),
            turn_pieces: 0,
            requests: VecDeque::new(),
            reading: BlockSet::default(),
            reads_outstanding: 0,
            send_buffer_full: false,
            download: RateEstimator::new(),
            upload: RateEstimator::new(),
            last_sent: now,
            last_received: now,
        }
    }

    /// Remembers that we withdrew `block`, so a late copy is accepted.
    pub fn note_cancelled(&mut self, block: BlockInfo) {
        if self.cancelled.insert(block) {
            self.cancelled_order.push_back(block);
            if self.cancelled_order.len() > RECENTLY_CANCELLED_MAX
                && let Some(old) = self.cancelled_order.pop_front()
            {
                self.cancelled.remove(&old);
            }
        }
    }

    /// Whether `block` was withdrawn recently (and forgets it: one late copy only).
    pub fn take_cancelled(&mut self, block: BlockInfo) -> bool {
        if self.cancelled.remove(&block) {
            self.cancelled_order.retain(|b| *b != block);
            true
        } else {
            false
        }
    }

    /// How many requests we keep in flight to this peer, in blocks: about
    /// `queue_time` of its download rate, at least `queue_min` and at most
    /// `queue_max` (and its `reqq`). While young, slow start grows it by one
    /// per block received, doubling it every round trip, because the 20 s rate
    /// estimate lags a fast link.
    pub fn queue_target(&self, now: Instant, config: &TorrentConfig) -> usize {
        if self.snubbed {
            return 1;
        }
        let rate = self.download.rate(now);
        let by_rate = (rate * config.queue_time.as_secs_f64()
            / f64::from(swarm_wire::peer::BLOCK_LEN)) as usize;
        let young = self
            .first_block_at
            .is_none_or(|t| now.saturating_since(t) < SLOW_START);
        let mut target = if young {
            by_rate.max(self.slow_start_target)
        } else {
            by_rate
        };
        target = target.clamp(config.queue_min, config.queue_max);
        if let Some(reqq) = self.reqq {
            target = target.min((reqq as usize).max(1));
        }
        target
    }

    /// We may send it requests: it unchokes us and we are interested.
    pub fn may_request(&self) -> bool {
        !self.peer_choking && self.am_interested
    }

    /// Requests from it that we hold (queued or being read).
    pub fn requests_held(&self) -> usize {
        self.requests.len() + self.reading.len()
    }

    pub fn check_invariants(&self, config: &TorrentConfig) {
        assert!(self.requests_held() <= PEER_REQUESTS_MAX);
        assert!(self.reads_outstanding <= PEER_READS_IN_FLIGHT_MAX);
        assert!(self.reading.len() <= self.reads_outstanding);
        assert!(self.in_flight.len() <= config.queue_max.max(1) + 1);
        assert_eq!(self.cancelled.len(), self.cancelled_order.len());
        assert!(self.cancelled.len() <= RECENTLY_CANCELLED_MAX);
        if self.am_choking {
            assert!(self.requests.is_empty() && self.reading.is_empty());
        }
    }
}

/// A set of blocks in order (piece, offset): a sorted `Vec`. Our requests
/// in flight to a peer and its requests being read are a few dozen blocks,
/// inserted and removed for every block: a `BTreeSet` allocated and freed
/// nodes for them (~5% of the simulator's instructions); a search and a
/// short move in one buffer is cheaper. Iterates in the same order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BlockSet(Vec<BlockInfo>);

impl BlockSet {
    /// Adds `b`; false if it was there.
    pub fn insert(&mut self, b: BlockInfo) -> bool {
        match self.0.binary_search(&b) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, b);
                true
            }
        }
    }

    /// Removes `b`; false if it was not there.
    pub fn remove(&mut self, b: &BlockInfo) -> bool {
        match self.0.binary_search(b) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    pub fn contains(&self, b: &BlockInfo) -> bool {
        self.0.binary_search(b).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for BlockSet {
    type Item = BlockInfo;
    type IntoIter = std::vec::IntoIter<BlockInfo>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a BlockSet {
    type Item = &'a BlockInfo;
    type IntoIter = std::slice::Iter<'a, BlockInfo>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The connected peers by key, in key order: sorted keys and their peers in
/// two parallel `Vec`s. A lookup is a binary search over a few dozen keys in
/// one cache line or two, where a `BTreeMap`'s walked nodes of ~1 KiB
/// peers (the core looks a peer up several times for every message: the
/// simulator's profile had those lookups at ~10%). Connecting and leaving
/// move the peers after the slot, a rare cost; keys come in increasing
/// order from the drivers, so a connect appends.
///
/// The index of the last key found is remembered: handling one message
/// looks its peer up several times (the message, then interest, requests
/// and every send), and a compare replaces a binary search's
/// unpredictable branches and the lines of `keys` it reads.
#[derive(Default)]
pub(crate) struct PeerMap {
    keys: Vec<PeerKey>,
    peers: Vec<Peer>,
    /// Where the last lookup found its key (checked before use: inserts
    /// and removes move keys).
    last: std::cell::Cell<usize>,
}

impl PeerMap {
    pub fn new() -> Self {
        PeerMap::default()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The index of `key`, if present.
    fn find(&self, key: &PeerKey) -> Option<usize> {
        let last = self.last.get();
        if self.keys.get(last) == Some(key) {
            return Some(last);
        }
        let i = self.keys.binary_search(key).ok()?;
        self.last.set(i);
        Some(i)
    }

    pub fn contains_key(&self, key: &PeerKey) -> bool {
        self.find(key).is_some()
    }

    pub fn get(&self, key: &PeerKey) -> Option<&Peer> {
        let i = self.find(key)?;
        self.peers.get(i)
    }

    pub fn get_mut(&mut self, key: &PeerKey) -> Option<&mut Peer> {
        let i = self.find(key)?;
        self.peers.get_mut(i)
    }

    /// Inserts or replaces; returns the peer replaced.
    pub fn insert(&mut self, key: PeerKey, peer: Peer) -> Option<Peer> {
        match self.keys.binary_search(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.peers[i], peer)),
            Err(i) => {
                self.keys.insert(i, key);
                self.peers.insert(i, peer);
                None
            }
        }
    }

    pub fn remove(&mut self, key: &PeerKey) -> Option<Peer> {
        let i = self.keys.binary_search(key).ok()?;
        self.keys.remove(i);
        Some(self.peers.remove(i))
    }

    pub fn keys(&self) -> std::slice::Iter<'_, PeerKey> {
        self.keys.iter()
    }

    pub fn values(&self) -> std::slice::Iter<'_, Peer> {
        self.peers.iter()
    }

    pub fn iter(
        &self,
    ) -> std::iter::Zip<std::slice::Iter<'_, PeerKey>, std::slice::Iter<'_, Peer>> {
        self.keys.iter().zip(self.peers.iter())
    }
}

impl<'a> IntoIterator for &'a PeerMap {
    type Item = (&'a PeerKey, &'a Peer);
    type IntoIter = std::iter::Zip<std::slice::Iter<'a, PeerKey>, std::slice::Iter<'a, Peer>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_map_keeps_key_order_through_inserts_and_removes() {
        let config = TorrentConfig::default();
        let info = PeerInfo {
            fast_ext: true,
            outgoing: false,
        };
        let peer = |t: u64| Peer::new(Instant(t), info, 8, &config);
        let mut m = PeerMap::new();
        for k in [5, 1, 9, 3] {
            assert!(m.insert(PeerKey(k), peer(k)).is_none());
        }
        assert!(m.insert(PeerKey(3), peer(33)).is_some());
        assert_eq!(m.len(), 4);
        let keys: Vec<u64> = m.keys().map(|k| k.0).collect();
        assert_eq!(keys, vec![1, 3, 5, 9]);
        assert_eq!(
            m.get(&PeerKey(3)).map(|p| p.connected_at),
            Some(Instant(33))
        );
        assert!(m.remove(&PeerKey(5)).is_some());
        assert!(m.remove(&PeerKey(5)).is_none());
        assert!(!m.contains_key(&PeerKey(5)) && m.contains_key(&PeerKey(9)));
        if let Some(p) = m.get_mut(&PeerKey(9)) {
            p.snubbed = true;
        }
        let pairs: Vec<(u64, u64, bool)> = (&m)
            .into_iter()
            .map(|(k, p)| (k.0, p.connected_at.0, p.snubbed))
            .collect();
        assert_eq!(pairs, vec![(1, 1, false), (3, 33, false), (9, 9, true)]);
        assert_eq!(m.values().count(), 3);
    }

    #[test]
    fn block_set_is_a_sorted_set() {
        let lengths = swarm_wire::Lengths::new(4 * 32768, 32768).expect("lengths");
        let block = |piece: u32, k: u32| {
            let vp = lengths.validate_piece_index(piece).expect("piece");
            lengths.block(vp, k).expect("block")
        };
        let mut s = BlockSet::default();
        assert!(s.is_empty());
        for (p, k) in [(2, 1), (0, 1), (2, 0), (1, 0)] {
            assert!(s.insert(block(p, k)));
        }
        assert!(!s.insert(block(0, 1)));
        assert_eq!(s.len(), 4);
        assert!(s.contains(&block(2, 0)) && !s.contains(&block(3, 0)));
        assert!(s.remove(&block(2, 0)) && !s.remove(&block(2, 0)));
        let order: Vec<(u32, u32)> = (&s)
            .into_iter()
            .map(|b| (b.piece.get(), b.offset))
            .collect();
        assert_eq!(order, vec![(0, 16384), (1, 0), (2, 16384)]);
        let owned: Vec<BlockInfo> = s.clone().into_iter().collect();
        assert_eq!(owned, (&s).into_iter().copied().collect::<Vec<_>>());
    }
}
