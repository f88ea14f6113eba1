//! Metadata exchange (BEP 9): fetching a torrent's info dictionary from peers
//! for a magnet link, and serving ours to peers that ask.
//!
//! [`MetadataFetcher`] is sans-IO like the other engines: peers that
//! advertise `ut_metadata` with a `metadata_size` come in with
//! [`MetadataFetcher::add_peer`], their `ut_metadata` messages with
//! [`MetadataFetcher::handle_message`], time with
//! [`MetadataFetcher::handle_timeout`]; requests to send are drained with
//! [`MetadataFetcher::poll_transmit`], results with
//! [`MetadataFetcher::poll_event`].
//!
//! # Policy
//! - Size: an *attempt* fetches `size` bytes in [`METADATA_PIECE_LEN`]
//!   pieces, `size` being the one most peers announce (ties: the lowest
//!   peer key's). A peer announcing more than [`METADATA_SIZE_MAX`] (or 0)
//!   is dropped before anything is allocated; a data message whose
//!   `total_size` differs from the peer's announced size, or whose piece has
//!   the wrong length, drops the peer.
//! - Requests: at most [`METADATA_REQUESTS_PER_PEER_MAX`] per peer, spread
//!   over the peers that announced the attempt's size, the least recently
//!   asked first (round robin: peers never asked before those asked, so
//!   silent peers taking turns cannot keep an honest one waiting); a request
//!   unanswered after [`METADATA_REQUEST_TIMEOUT`], or rejected, goes to
//!   another peer and the peer is not asked again for
//!   [`METADATA_PEER_BACKOFF`].
//! - Checking: the assembled bytes are used only if their SHA-1 is the
//!   info-hash. When the check fails, the pieces are discarded. If one peer
//!   sent them all, it is banned. Otherwise every sender becomes a *suspect*
//!   and the fetcher switches to single-source attempts (all pieces from one
//!   peer), so the next failure names its culprit. Sources take turns: the
//!   peer that has been the source fewest times first, non-suspects before
//!   suspects among equals. A turn ends by completing, by banning its liar,
//!   or by a reject or time-out; so within one round of turns every peer is
//!   asked, and the fetch completes while an honest peer remains.
//!
//! # Invariants ([`MetadataFetcher::check_invariants`])
//! - A piece is requested from peer P iff it is in P's in-flight set; no
//!   peer has more than [`METADATA_REQUESTS_PER_PEER_MAX`] in flight.
//! - In single-source mode every requested or received piece is the
//!   source's.
//! - Once complete, nothing is in flight and no attempt is kept.
//!
//! # Memory
//! One attempt: at most [`METADATA_SIZE_MAX`] bytes of received pieces
//! (they share the receive buffers' allocations) plus 32 bytes a piece
//! slot; [`METADATA_PEERS_MAX`] peers of about 100 bytes each plus their
//! in-flight entries.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Bytes, BytesMut};
use swarm_wire::peer::{METADATA_PIECE_LEN, MetadataMessage};

use crate::ids::{InfoHash, PeerKey};
use crate::time::{Duration, Instant};

/// Largest info dictionary we fetch: 16 MiB, a torrent of about 800,000
/// pieces (the largest real torrents have info dictionaries of a few MB).
/// A peer announcing more is dropped (libtorrent's own cap is 30 MiB).
pub const METADATA_SIZE_MAX: u64 = 16 * 1024 * 1024;
/// Requests in flight to one peer.
pub const METADATA_REQUESTS_PER_PEER_MAX: usize = 4;
/// A request unanswered for this long goes to another peer.
pub const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer that rejected or timed out a request is not asked for this long.
pub const METADATA_PEER_BACKOFF: Duration = Duration::from_secs(20);
/// Peers tracked as metadata sources; more are ignored (the connection cap
/// of a torrent is lower anyway).
pub const METADATA_PEERS_MAX: usize = 256;

/// What the fetcher tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataEvent {
    /// The info dictionary: its SHA-1 is the info-hash. Emitted once.
    Complete(Bytes),
    /// Close this connection (and with `ban`, refuse the address from now
    /// on); the fetcher has already forgotten the peer.
    Disconnect {
        peer: PeerKey,
        reason: String,
        ban: bool,
    },
}

struct Source {
    /// Its `metadata_size`.
    size: u64,
    /// Piece → when we asked.
    in_flight: BTreeMap<u32, Instant>,
    /// Not asked before this (after a reject or a timeout).
    idle_until: Instant,
    /// It sent pieces to an attempt that failed its hash.
    suspect: bool,
    /// When we last asked it, as a count of requests sent (0: never), so
    /// requests go round robin.
    last_asked: u64,
    /// Single-source attempts it was the source of, so sources take turns.
    turns: u32,
}

#[derive(Clone, Debug)]
enum Slot {
    Missing,
    Requested(PeerKey),
    Received { data: Bytes, from: PeerKey },
}

struct Attempt {
    size: u64,
    slots: Vec<Slot>,
    /// Single-source mode: every piece from this peer.
    source: Option<PeerKey>,
}

/// Fetches one torrent's metadata. See the module docs.
pub struct MetadataFetcher {
    info_hash: InfoHash,
    peers: BTreeMap<PeerKey, Source>,
    attempt: Option<Attempt>,
    single_source: bool,
    complete: bool,
    hash_failures: u32,
    /// Requests sent so far: the clock of [`Source::last_asked`].
    asked: u64,
    /// Latest time seen in any input.
    now: Instant,
    transmit: VecDeque<(PeerKey, MetadataMessage)>,
    events: VecDeque<MetadataEvent>,
}

/// Pieces of a `size`-byte info dictionary.
pub fn metadata_pieces(size: u64) -> u32 {
    u32::try_from(size.div_ceil(METADATA_PIECE_LEN as u64)).unwrap_or(u32::MAX)
}

/// Our answer to a peer's request for piece `piece` of our info dictionary
/// `info`: the piece, or a reject when it is out of range.
pub fn serve_metadata(info: &Bytes, piece: u32) -> MetadataMessage {
    let start = piece as usize * METADATA_PIECE_LEN;
    if start >= info.len() {
        return MetadataMessage::Reject { piece };
    }
    let end = (start + METADATA_PIECE_LEN).min(info.len());
    MetadataMessage::Data {
        piece,
        total_size: info.len() as u64,
        data: info.slice(start..end),
    }
}

impl MetadataFetcher {
    pub fn new(info_hash: InfoHash) -> Self {
        MetadataFetcher {
            info_hash,
            peers: BTreeMap::new(),
            attempt: None,
            single_source: false,
            complete: false,
            hash_failures: 0,
            asked: 0,
            now: Instant::ZERO,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Attempts whose bytes failed the info-hash check.
    pub fn hash_failures(&self) -> u32 {
        self.hash_failures
    }

    /// Pieces received of the current attempt, and its piece count (0, 0
    /// before an attempt starts).
    pub fn progress(&self) -> (u32, u32) {
        self.attempt.as_ref().map_or((0, 0), |a| {
            let got = a
                .slots
                .iter()
                .filter(|s| matches!(s, Slot::Received { .. }))
                .count();
            (got as u32, a.slots.len() as u32)
        })
    }

    /// Peers usable as sources.
    pub fn sources(&self) -> usize {
        self.peers.len()
    }

    /// A peer's extension handshake named `ut_metadata` with this
    /// `metadata_size`. Without a size (or with 0) the peer has no metadata
    /// to give; above [`METADATA_SIZE_MAX`] it is dropped.
    pub fn add_peer(&mut self, now: Instant, peer: PeerKey, metadata_size: Option<u64>) {
        if self.complete || self.peers.len() >= METADATA_PEERS_MAX {
            return;
        }
        let Some(size) = metadata_size.filter(|&s| s > 0) else {
            return;
        };
        if size > METADATA_SIZE_MAX {
            self.events.push_back(MetadataEvent::Disconnect {
                peer,
                reason: format!(
                    "ut_metadata: announced metadata of {size} bytes (at most {METADATA_SIZE_MAX})"
                ),
                ban: false,
            });
            return;
        }
        self.remove_peer(now, peer);
        self.peers.insert(
            peer,
            Source {
                size,
                in_flight: BTreeMap::new(),
                idle_until: now,
                suspect: false,
                last_asked: 0,
                turns: 0,
            },
        );
        self.fill(now);
    }

    /// The peer is gone: its requests go to others.
    pub fn remove_peer(&mut self, now: Instant, peer: PeerKey) {
        if self.peers.remove(&peer).is_none() {
            return;
        }
        if let Some(a) = &mut self.attempt {
            if a.source == Some(peer) {
                self.attempt = None;
            } else {
                for s in &mut a.slots {
                    if matches!(s, Slot::Requested(p) if *p == peer) {
                        *s = Slot::Missing;
                    }
                }
            }
        }
        self.transmit.retain(|(p, _)| *p != peer);
        self.fill(now);
    }

    /// A `ut_metadata` message from `peer`. Requests are not the fetcher's
    /// (the caller serves or rejects them) and are ignored here.
    pub fn handle_message(&mut self, now: Instant, peer: PeerKey, msg: MetadataMessage) {
        if self.complete {
            return;
        }
        match msg {
            MetadataMessage::Request { .. } => {}
            MetadataMessage::Reject { piece } => {
                if self.take_in_flight(peer, piece) {
                    self.idle(now, peer);
                }
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => {
                // Unrequested or late (timed out) pieces are ignored.
                if !self.take_in_flight(peer, piece) {
                    return self.fill(now);
                }
                let Some(src) = self.peers.get(&peer) else {
                    return;
                };
                let want = piece_len(src.size, piece);
                if total_size != src.size || data.len() != want {
                    let reason = format!(
                        "ut_metadata: piece {piece} of {} bytes, total_size {total_size} \
                         (its metadata_size is {}, so {want} bytes expected)",
                        data.len(),
                        src.size
                    );
                    self.drop_peer(now, peer, reason, false);
                    return;
                }
                if let Some(slot) = self
                    .attempt
                    .as_mut()
                    .and_then(|a| a.slots.get_mut(piece as usize))
                {
                    *slot = Slot::Received { data, from: peer };
                }
                self.verify_if_done(now);
            }
        }
        self.fill(now);
    }

    /// Time-outs of requests.
    pub fn handle_timeout(&mut self, now: Instant) {
        let late: Vec<(PeerKey, u32)> = self
            .peers
            .iter()
            .flat_map(|(&p, s)| {
                s.in_flight
                    .iter()
                    .filter(move |&(_, &at)| at + METADATA_REQUEST_TIMEOUT <= now)
                    .map(move |(&piece, _)| (p, piece))
            })
            .collect();
        for (peer, piece) in late {
            if self.take_in_flight(peer, piece) {
                self.idle(now, peer);
            }
        }
        self.fill(now);
    }

    /// When [`Self::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.complete {
            return None;
        }
        let deadlines = self.peers.values().flat_map(|s| {
            s.in_flight
                .values()
                .map(|&at| at + METADATA_REQUEST_TIMEOUT)
        });
        // A resting peer matters when it wakes up, if pieces are missing.
        let missing = self
            .attempt
            .as_ref()
            .is_none_or(|a| a.slots.iter().any(|s| matches!(s, Slot::Missing)));
        let wakeups = self
            .peers
            .values()
            .filter(|s| missing && s.idle_until > self.now)
            .map(|s| s.idle_until);
        deadlines.chain(wakeups).min()
    }

    pub fn poll_transmit(&mut self) -> Option<(PeerKey, MetadataMessage)> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MetadataEvent> {
        self.events.pop_front()
    }

    /// Removes `piece` from `peer`'s in-flight set and the attempt's slot;
    /// false if it was not requested from `peer`.
    fn take_in_flight(&mut self, peer: PeerKey, piece: u32) -> bool {
        let Some(src) = self.peers.get_mut(&peer) else {
            return false;
        };
        if src.in_flight.remove(&piece).is_none() {
            return false;
        }
        if let Some(a) = &mut self.attempt
            && let Some(s) = a.slots.get_mut(piece as usize)
            && matches!(s, Slot::Requested(p) if *p == peer)
        {
            *s = Slot::Missing;
        }
        true
    }

    /// The peer rejected or timed out: rest it; in single-source mode the
    /// attempt moves to another source.
    fn idle(&mut self, now: Instant, peer: PeerKey) {
        if let Some(src) = self.peers.get_mut(&peer) {
            src.idle_until = now + METADATA_PEER_BACKOFF;
        }
        if self
            .attempt
            .as_ref()
            .is_some_and(|a| a.source == Some(peer))
            && self.peers.len() > 1
        {
            self.discard_attempt();
        }
    }

    fn drop_peer(&mut self, now: Instant, peer: PeerKey, reason: String, ban: bool) {
        self.remove_peer(now, peer);
        self.events
            .push_back(MetadataEvent::Disconnect { peer, reason, ban });
    }

    fn discard_attempt(&mut self) {
        if let Some(a) = self.attempt.take() {
            for s in a.slots {
                if let Slot::Requested(p) = s
                    && let Some(src) = self.peers.get_mut(&p)
                {
                    src.in_flight.clear();
                }
            }
        }
    }

    fn verify_if_done(&mut self, now: Instant) {
        let Some(a) = &self.attempt else { return };
        if !a.slots.iter().all(|s| matches!(s, Slot::Received { .. })) {
            return;
        }
        let mut info = BytesMut::with_capacity(a.size as usize);
        let mut senders = BTreeSet::new();
        for s in &a.slots {
            if let Slot::Received { data, from } = s {
                info.extend_from_slice(data);
                senders.insert(*from);
            }
        }
        let info = info.freeze();
        self.attempt = None;
        if InfoHash::of_info(&info) == self.info_hash {
            self.complete = true;
            self.peers.clear();
            self.transmit.clear();
            self.events.push_back(MetadataEvent::Complete(info));
            return;
        }
        self.hash_failures += 1;
        if senders.len() == 1 {
            for peer in senders {
                self.drop_peer(
                    now,
                    peer,
                    "ut_metadata: its metadata does not hash to the info-hash".into(),
                    true,
                );
            }
        } else {
            for p in &senders {
                if let Some(src) = self.peers.get_mut(p) {
                    src.suspect = true;
                }
            }
            self.single_source = true;
        }
    }

    /// Starts an attempt if none runs, then hands out requests.
    fn fill(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.complete {
            return;
        }
        if self
            .attempt
            .as_ref()
            .is_some_and(|a| !self.peers.values().any(|s| s.size == a.size))
        {
            // Nobody left who could finish it.
            self.discard_attempt();
        }
        if self.attempt.is_none() {
            self.attempt = self.new_attempt(now);
        }
        let Some(a) = &mut self.attempt else { return };
        for (i, slot) in a.slots.iter_mut().enumerate() {
            if !matches!(slot, Slot::Missing) {
                continue;
            }
            // The eligible source with the fewest requests in flight, then
            // the least recently asked, then the lowest key.
            let pick = self
                .peers
                .iter()
                .filter(|&(p, s)| {
                    a.source.is_none_or(|src| src == *p)
                        && s.size == a.size
                        && s.idle_until <= now
                        && s.in_flight.len() < METADATA_REQUESTS_PER_PEER_MAX
                })
                .min_by_key(|(p, s)| (s.in_flight.len(), s.last_asked, **p))
                .map(|(p, _)| *p);
            let Some(peer) = pick else { break };
            let piece = i as u32;
            self.asked += 1;
            if let Some(src) = self.peers.get_mut(&peer) {
                src.in_flight.insert(piece, now);
                src.last_asked = self.asked;
            }
            *slot = Slot::Requested(peer);
            self.transmit
                .push_back((peer, MetadataMessage::Request { piece }));
        }
    }

    fn new_attempt(&mut self, now: Instant) -> Option<Attempt> {
        let (size, source) = if self.single_source {
            // Fewest turns first, then non-suspects, then by key.
            let (&p, s) = self
                .peers
                .iter_mut()
                .filter(|(_, s)| s.idle_until <= now)
                .min_by_key(|(p, s)| (s.turns, s.suspect, **p))?;
            s.turns += 1;
            (s.size, Some(p))
        } else {
            let mut votes: BTreeMap<u64, (usize, PeerKey)> = BTreeMap::new();
            for (&p, s) in &self.peers {
                let v = votes.entry(s.size).or_insert((0, p));
                v.0 += 1;
            }
            let (&size, _) = votes
                .iter()
                .max_by_key(|&(_, &(n, first))| (n, std::cmp::Reverse(first)))?;
            (size, None)
        };
        Some(Attempt {
            size,
            slots: vec![Slot::Missing; metadata_pieces(size) as usize],
            source,
        })
    }

    /// Panics if an invariant of the module docs does not hold.
    pub fn check_invariants(&self) {
        let mut requested: BTreeSet<(PeerKey, u32)> = BTreeSet::new();
        if let Some(a) = &self.attempt {
            assert!(!self.complete, "an attempt after completion");
            assert!(a.size > 0 && a.size <= METADATA_SIZE_MAX);
            assert_eq!(a.slots.len() as u32, metadata_pieces(a.size));
            for (i, s) in a.slots.iter().enumerate() {
                match s {
                    Slot::Missing => {}
                    Slot::Requested(p) => {
                        requested.insert((*p, i as u32));
                        if let Some(src) = a.source {
                            assert_eq!(*p, src, "single source");
                        }
                    }
                    Slot::Received { from, data } => {
                        assert_eq!(data.len(), piece_len(a.size, i as u32));
                        if let Some(src) = a.source {
                            assert_eq!(*from, src, "single source");
                        }
                    }
                }
            }
        }
        let in_flight: BTreeSet<(PeerKey, u32)> = self
            .peers
            .iter()
            .flat_map(|(&p, s)| {
                assert!(s.in_flight.len() <= METADATA_REQUESTS_PER_PEER_MAX);
                s.in_flight.keys().map(move |&i| (p, i))
            })
            .collect();
        assert_eq!(requested, in_flight, "requested slots = in-flight sets");
        assert!(self.peers.len() <= METADATA_PEERS_MAX);
        if self.complete {
            assert!(self.attempt.is_none() && self.peers.is_empty());
        }
    }
}

/// Bytes of piece `piece` of a `size`-byte dictionary (0 past the end).
fn piece_len(size: u64, piece: u32) -> usize {
    let start = u64::from(piece) * METADATA_PIECE_LEN as u64;
    size.saturating_sub(start).min(METADATA_PIECE_LEN as u64) as usize
}
