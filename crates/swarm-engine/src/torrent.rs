//! The torrent core: one torrent's protocol state against all its peers (BEP 3, BEP 6).
//!
//! Sans-IO, in the shape of `quinn-proto`: inputs are `peer_connected`,
//! `handle_message`, `handle_storage`, `handle_timeout` (time passed in);
//! outputs are drained by `poll_event`, `poll_transmit` and `poll_timeout`.
//!
//! # Driving it
//! After every `peer_*`/`handle_*` call the driver drains, in this order:
//! 1. [`TorrentCore::poll_event`] until `None` (storage work, disconnects,
//!    progress). A `Disconnect` means the core has already forgotten the peer:
//!    close the socket; calling `peer_disconnected` for it afterwards is a no-op.
//! 2. [`TorrentCore::poll_transmit`] until `None`: messages to write, in order per peer.
//! 3. [`TorrentCore::poll_timeout`]: call `handle_timeout` when that instant is reached.
//!
//! Draining events before transmits is not needed for correctness (no message
//! is ever queued for a peer after its `Disconnect`), but it lets the driver
//! start disk work before it writes to sockets.
//!
//! # Invariants (checked by [`TorrentCore::check_invariants`])
//! - Each piece is in exactly one of: *have* (verified and written), *verifying*
//!   (all blocks handed to the driver in `VerifyPiece`), *in progress* (some
//!   blocks requested or received), *not started*.
//! - Each block of an in-progress piece is exactly one of missing, requested
//!   (from one peer, several in endgame) or received; a block is requested
//!   from peer P iff it is in P's in-flight set.
//! - A piece becomes *have* only on `PieceVerified { ok: true }`, which the
//!   driver sends after the hash passed and the bytes are on disk.
//! - We unchoke a peer iff the last rechoke's [`ChokeDecision`] for it says
//!   so (a peer connected since has none and is choked), and never more
//!   peers than the unchoker's regular plus optimistic slots.
//!
//! # Policies
//! - Piece choice: [`crate::picker`] (strict priority, random first pieces,
//!   rarest first, endgame).
//! - Pipeline: per peer, about `queue_time` of its download rate in blocks,
//!   clamped to `queue_min..=queue_max` and its BEP 10 `reqq`; slow start
//!   while the rate estimate is young. A peer that delivers nothing for
//!   `request_timeout` is *snubbed*: its requests are cancelled and go to
//!   others, and it keeps one request until it delivers again.
//! - Bad data: a piece that fails its hash starts over; its senders go on
//!   *parole* (they download pieces alone, so the next failure is theirs);
//!   the sole sender of [`HASH_FAILURES_BAN`] failed pieces is banned.
//! - Protocol violations (requests outside the torrent, unrequested data, a
//!   malformed bitfield, out-of-range have, BEP 6 messages without
//!   BEP 6) drop the peer with a reason; the others carry on.
//! - Uploads: only to peers we unchoke (the tit-for-tat [`crate::choker`]
//!   decides every `rechoke_interval`, and fills slots freed in between);
//!   requests from choked peers are ignored (rejected for BEP 6 peers), at
//!   most [`PEER_REQUESTS_MAX`] are queued, [`PEER_READS_IN_FLIGHT_MAX`] read at
//!   once per peer and [`TORRENT_READS_IN_FLIGHT_MAX`] over all peers, and none
//!   while the driver reports the peer's send buffer full
//!   ([`TorrentCore::send_buffer_full`] until [`TorrentCore::send_buffer_drained`]):
//!   a deep queue costs 12 bytes a request, not its data.

use std::collections::VecDeque;

use swarm_wire::lengths::Lengths;
use swarm_wire::peer::{BLOCK_LEN, Message};

use crate::bitfield::Bitfield;
use crate::choker::Choker;
use crate::peer::{Peer, PeerMap};
use crate::picker::{PiecePicker, Received};
use crate::rate::RateEstimator;
use crate::rng::Rng;
use crate::time::Instant;
use crate::unchoke::{ChokeDecision, UnchokeAll, UnchokeCandidate, Unchoker};

pub use crate::config::{
    Choking, HASH_FAILURES_BAN, PEER_READS_IN_FLIGHT_MAX, PEER_REQUESTS_MAX,
    TORRENT_READS_IN_FLIGHT_MAX, TorrentConfig,
};
pub use crate::event::{ExtensionInfo, PeerInfo, StorageDone, TorrentEvent};
pub use crate::ids::PeerKey;

/// Whole-torrent counters for the status display.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TorrentStats {
    /// Payload bytes received in blocks we used.
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Payload bytes received but thrown away (duplicates, failed hashes).
    pub wasted: u64,
    pub pieces_have: u32,
    pub pieces_total: u32,
    pub hash_failures: u32,
    pub peers: usize,
    pub download_rate: f64,
    pub upload_rate: f64,
    pub endgame: bool,
}

/// One peer's state for the status display (and the choker).
#[derive(Clone, Debug, PartialEq)]
pub struct PeerStats {
    pub peer: PeerKey,
    pub info: PeerInfo,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    /// It wants data from us: its `interested`, or, for a super-seed, it
    /// lacks a piece and is not done with its turn (it sees only its
    /// offers; see `superseed`). What the choker and idle eviction see.
    pub peer_interested: bool,
    /// Our requests to it timed out (`request_timeout`): it gets one request
    /// at a time. The choker's 60 s anti-snubbing shows in `choke` instead.
    pub snubbed: bool,
    /// Bytes/s over the last 20 s.
    pub download_rate: f64,
    pub upload_rate: f64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub pieces: u32,
    pub requests_in_flight: usize,
    /// Our pipeline target for this peer, in blocks.
    pub queue_target: usize,
    pub requests_from_peer: usize,
    pub connected_at: Instant,
    /// The last rechoke's verdict on this peer (state, reason, the rates it
    /// saw, since when); `None` until a rechoke has seen the peer.
    pub choke: Option<ChokeDecision>,
}

/// One torrent's sans-IO protocol engine. See the module docs for how to drive it.
pub struct TorrentCore {
    config: TorrentConfig,
    lengths: Lengths,
    picker: PiecePicker,
    rng: Rng,
    peers: PeerMap,
    unchoker: Box<dyn Unchoker + Send>,
    /// The last rechoke's decisions, sorted by peer (the candidates' order;
    /// gone peers are skipped when read). A `Vec`, not a map: a rechoke
    /// between rounds runs on interest changes, many a second.
    choke_decisions: Vec<ChokeDecision>,
    last_rechoke: Option<Instant>,
    /// An unchoked peer lost interest since the last rechoke: its slot is
    /// filled at the next tick, or at once if a peer becomes interested
    /// first (see `on_interest`).
    rechoke_pending: bool,
    /// Peers we unchoke (`am_choking` false): whether a slot is free is
    /// asked for every `interested`, and a scan read a line of every peer.
    unchoked: usize,
    transmit: VecDeque<(PeerKey, Message)>,
    events: VecDeque<TorrentEvent>,
    /// Latest time seen in any input.
    now: Instant,
    next_tick: Instant,
    next_rechoke: Instant,
    downloaded: u64,
    uploaded: u64,
    wasted: u64,
    hash_failures: u32,
    download_rate: RateEstimator,
    upload_rate: RateEstimator,
    error: Option<String>,
    /// `ReadBlock` events not answered yet, over all peers (gone ones too).
    reads_outstanding: usize,
    /// A peer found every torrent read slot taken: when one frees, every peer
    /// gets a turn.
    reads_waiting: bool,
    /// Super-seeding's state, if this core super-seeds.
    super_seed: Option<SuperSeed>,
}

/// A protocol violation: the peer is dropped with this reason.
type Violation = String;

impl TorrentCore {
    /// `have`: the pieces already verified on disk (from resume or a check);
    /// its length must be `lengths.num_pieces()` (asserted).
    pub fn new(
        config: TorrentConfig,
        lengths: Lengths,
        have: Bitfield,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        assert!(config.queue_min >= 1 && config.queue_min <= config.queue_max);
        let super_seed = (config.super_seeding && have.is_all_set())
            .then(|| SuperSeed::new(lengths.num_pieces()));
        let mut picker =
            PiecePicker::new(lengths, have, config.initial_random_pieces, config.endgame);
        picker.set_strategy(config.picking);
        let unchoker: Box<dyn Unchoker + Send> = match config.choking {
            Choking::TitForTat => Box::new(Choker::new(config.choker.clone())),
            Choking::Off => Box::new(UnchokeAll),
        };
        TorrentCore {
            unchoker,
            choke_decisions: Vec::new(),
            last_rechoke: None,
            rechoke_pending: false,
            unchoked: 0,
            next_tick: now + config.tick_interval,
            next_rechoke: now + config.choker.rechoke_interval,
            config,
            lengths,
            picker,
            rng: Rng::new(rng_seed),
            peers: PeerMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            now,
            downloaded: 0,
            uploaded: 0,
            wasted: 0,
            hash_failures: 0,
            download_rate: RateEstimator::new(),
            upload_rate: RateEstimator::new(),
            error: None,
            reads_outstanding: 0,
            reads_waiting: false,
            super_seed,
        }
    }

    /// Replaces the tit-for-tat [`Choker`] with another policy (the simulator
    /// compares policies).
    pub fn set_unchoker(&mut self, unchoker: Box<dyn Unchoker + Send>) {
        self.unchoker = unchoker;
    }

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn send(&mut self, key: PeerKey, msg: Message) {
        if let Some(p) = self.peers.get_mut(&key) {
            p.last_sent = self.now;
            self.transmit.push_back((key, msg));
        }
    }

    /// A handshake completed. Queues our bitfield (or `HaveAll`/`HaveNone`
    /// for BEP 6 peers) as the first message to this peer; the driver sends
    /// its BEP 10 extension handshake after it.
    pub fn peer_connected(&mut self, now: Instant, peer: PeerKey, info: PeerInfo) {
        self.advance(now);
        debug_assert!(!self.peers.contains_key(&peer), "{peer:?} connected twice");
        if self.peers.contains_key(&peer) {
            return;
        }
        let n = self.lengths.num_pieces();
        self.peers
            .insert(peer, Peer::new(self.now, info, n, &self.config));
        let have = self.picker.have();
        let have_any = !have.is_none_set();
        let first = if self.super_seed.is_some() {
            // Super-seeding: nothing yet; the offers follow.
            info.fast_ext.then_some(Message::HaveNone)
        } else if info.fast_ext && have.is_all_set() {
            Some(Message::HaveAll)
        } else if info.fast_ext && have.is_none_set() {
            Some(Message::HaveNone)
        } else if have_any {
            Some(Message::Bitfield(have.to_wire()))
        } else {
            // BEP 3: a peer with no piece may skip the bitfield.
            None
        };
        if let Some(msg) = first {
            self.send(peer, msg);
        }
        // A free slot may unchoke it before it asks (the choker's
        // preemptive unchoke); with nothing to give there is no point.
        if have_any && self.has_free_unchoke_slot() {
            self.rechoke(false);
        }
        // Super-seeding: its first offers (fresh if that unchoked it).
        self.super_seed_offer(peer);
    }

    /// The connection closed. Its in-flight requests go back to the picker.
    /// A no-op for unknown peers.
    pub fn peer_disconnected(&mut self, now: Instant, peer: PeerKey) {
        self.advance(now);
        let was_unchoked = self.peers.get(&peer).is_some_and(|p| !p.am_choking);
        if self.remove_peer(peer) {
            self.refill_all();
            if was_unchoked {
                self.rechoke(false);
            }
        }
    }

    fn remove_peer(&mut self, key: PeerKey) -> bool {
        let Some(p) = self.peers.remove(&key) else {
            return false;
        };
        if !p.am_choking {
            self.unchoked -= 1;
        }
        self.super_seed_forget(&p.offered);
        for i in p.pieces.iter_ones() {
            if let Some(vp) = self.lengths.validate_piece_index(i) {
                self.picker.peer_lost(vp, &mut self.rng);
            }
        }
        for b in p.in_flight {
            self.picker.cancel_request(b, key);
        }
        self.picker.release_exclusive(key);
        self.transmit.retain(|(k, _)| *k != key);
        true
    }

    /// Forgets a peer and tells the driver to close it.
    fn drop_peer(&mut self, key: PeerKey, reason: String, ban: bool) {
        let was_unchoked = self.peers.get(&key).is_some_and(|p| !p.am_choking);
        if self.remove_peer(key) {
            self.events.push_back(TorrentEvent::Disconnect {
                peer: key,
                reason,
                ban,
            });
            self.refill_all();
            if was_unchoked {
                self.rechoke(false);
            }
        }
    }

    /// The peer's BEP 10 extension handshake arrived (decoded by the driver).
    pub fn peer_extension_handshake(&mut self, now: Instant, peer: PeerKey, ext: ExtensionInfo) {
        self.advance(now);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.reqq = ext.reqq.map(|r| r.max(1));
        }
    }

    /// A message from a peer. A protocol violation yields `Disconnect`.
    /// `Extended` and `Port` messages are ignored (the driver handles them).
    pub fn handle_message(&mut self, now: Instant, peer: PeerKey, msg: Message) {
        self.advance(now);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.last_received = self.now;
        if let Err(reason) = self.dispatch(peer, msg) {
            self.drop_peer(peer, reason, false);
        }
    }

    fn dispatch(&mut self, key: PeerKey, msg: Message) -> Result<(), Violation> {
        match msg {
            Message::KeepAlive | Message::Port(_) | Message::Extended { .. } => Ok(()),
            Message::Choke => {
                self.on_choke(key);
                Ok(())
            }
            Message::Unchoke => {
                if let Some(p) = self.peers.get_mut(&key)
                    && p.peer_choking
                {
                    p.peer_choking = false;
                    p.peer_unchoked_at = self.now;
                }
                self.fill_requests(key);
                Ok(())
            }
            Message::Interested => {
                self.on_interest(key, true);
                Ok(())
            }
            Message::NotInterested => {
                self.on_interest(key, false);
                Ok(())
            }
            Message::Have { piece } => self.on_have(key, piece),
            Message::Bitfield(bytes) => {
                let n = self.lengths.num_pieces();
                let bf = Bitfield::from_wire(&bytes, n).map_err(|e| e.to_string())?;
                self.on_first_pieces(key, bf)
            }
            Message::HaveAll | Message::HaveNone => {
                let all = msg == Message::HaveAll;
                let name = if all { "have-all" } else { "have-none" };
                if !self.peers.get(&key).is_some_and(|p| p.info.fast_ext) {
                    return Err(format!("{name} without the fast extension"));
                }
                let n = self.lengths.num_pieces();
                let bf = if all {
                    Bitfield::full(n)
                } else {
                    Bitfield::empty(n)
                };
                self.on_first_pieces(key, bf)
            }
            Message::Request {
                piece,
                offset,
                length,
            } => self.on_request(key, piece, offset, length),
            Message::Piece {
                piece,
                offset,
                data,
            } => self.on_piece(key, piece, offset, data),
            Message::Cancel {
                piece,
                offset,
                length,
            } => {
                self.on_cancel(key, piece, offset, length);
                Ok(())
            }
            Message::RejectRequest {
                piece,
                offset,
                length,
            } => self.on_reject(key, piece, offset, length),
            // Optional hints (BEP 6); we neither need nor trust them.
            Message::SuggestPiece { .. } | Message::AllowedFast { .. } => {
                if !self.peers.get(&key).is_some_and(|p| p.info.fast_ext) {
                    return Err("fast-extension message without the fast extension".into());
                }
                Ok(())
            }
        }
    }

    fn on_choke(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.peer_choking = true;
        // BEP 3: a choke discards our requests. BEP 6: a fast peer rejects
        // them one by one instead, so they stay in flight until then.
        if !p.info.fast_ext {
            let blocks = std::mem::take(&mut p.in_flight);
            for b in blocks {
                p.note_cancelled(b);
                self.picker.cancel_request(b, key);
            }
            self.refill_all();
        }
    }

    /// Fewer peers unchoked than the choker may unchoke: a rechoke between
    /// rounds could fill a slot.
    fn has_free_unchoke_slot(&self) -> bool {
        self.unchoked < self.unchoker.max_unchoked()
    }

    /// A choked peer wants data from us (as the choker sees it): a freed
    /// slot has a taker.
    fn someone_waits(&self) -> bool {
        self.peers
            .values()
            .any(|p| p.am_choking && (p.peer_interested || self.super_seed_wants(p)))
    }

    fn on_interest(&mut self, key: PeerKey, interested: bool) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.peer_interested = interested;
        // A peer that becomes interested takes a free slot at once (a slot
        // an uninterested peer still holds counts as free). A peer that
        // loses interest frees its slot at once if a choked peer wants it;
        // if nobody waits, it keeps its unchoke (it asks for nothing) until
        // the next tick or the next interest, whichever comes first, whose
        // one rechoke frees every such slot. Rechoking at once cost a full
        // rechoke per lost interest, mostly to choke one idle peer: with
        // the one at the interest, two per piece a peer takes from us, the
        // simulator's largest cost.
        if interested {
            if self.rechoke_pending || self.has_free_unchoke_slot() {
                self.rechoke(false);
            }
        } else if self.peers.get(&key).is_some_and(|p| !p.am_choking) {
            if self.someone_waits() {
                self.rechoke(false);
            } else {
                self.rechoke_pending = true;
            }
        }
    }

    fn on_have(&mut self, key: PeerKey, piece: u32) -> Result<(), Violation> {
        let vp = self
            .lengths
            .validate_piece_index(piece)
            .ok_or_else(|| format!("have for piece {piece} outside the torrent"))?;
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        p.seen_piece_state = true;
        if p.pieces.set(piece) {
            self.picker.peer_has(vp, &mut self.rng);
            if !self.picker.have().get(piece) && self.picker.is_wanted(piece) {
                p.interesting += 1;
            }
            if p.pieces.is_all_set() {
                self.events.push_back(TorrentEvent::PeerSeed(key));
            }
            self.super_seed_offer(key);
            self.super_seed_progress(key);
        }
        self.update_interest(key);
        self.fill_requests(key);
        Ok(())
    }

    /// A bitfield, have-all or have-none. BEP 3 and BEP 6 want it first, but
    /// a late one is merged, not a violation: aria2 1.36 sends have-none,
    /// then requests, then a bitfield, and libtorrent and Transmission accept
    /// that. A peer never loses pieces, so merging only adds (a late
    /// have-none changes nothing).
    fn on_first_pieces(&mut self, key: PeerKey, bf: Bitfield) -> Result<(), Violation> {
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        p.seen_piece_state = true;
        let mut became_seed = false;
        for i in bf.iter_ones() {
            if p.pieces.set(i) {
                if let Some(vp) = self.lengths.validate_piece_index(i) {
                    self.picker.peer_has(vp, &mut self.rng);
                }
                if !self.picker.have().get(i) && self.picker.is_wanted(i) {
                    p.interesting += 1;
                }
                became_seed = p.pieces.is_all_set();
            }
        }
        if became_seed {
            self.events.push_back(TorrentEvent::PeerSeed(key));
        }
        self.super_seed_offer(key);
        self.super_seed_progress(key);
        self.update_interest(key);
        self.fill_requests(key);
        Ok(())
    }

    fn on_request(
        &mut self,
        key: PeerKey,
        piece: u32,
        offset: u32,
        length: u32,
    ) -> Result<(), Violation> {
        let block = self
            .lengths
            .validate_block(piece, offset, length)
            .ok_or_else(|| format!("request outside the torrent: {piece}/{offset}/{length}"))?;
        let we_have = self.picker.have().get(piece);
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        p.seen_piece_state = true;
        if p.requests.contains(&block) || p.reading.contains(&block) {
            return Ok(());
        }
        if p.am_choking || !we_have || p.requests_held() >= PEER_REQUESTS_MAX {
            if p.info.fast_ext {
                self.send(
                    key,
                    Message::RejectRequest {
                        piece,
                        offset,
                        length,
                    },
                );
            }
            return Ok(());
        }
        p.requests.push_back(block);
        self.super_seed_requested(key, piece);
        self.pump_reads(key);
        Ok(())
    }

    fn on_cancel(&mut self, key: PeerKey, piece: u32, offset: u32, length: u32) {
        let Some(block) = self.lengths.validate_block(piece, offset, length) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&key) {
            p.requests.retain(|b| *b != block);
            // A read in flight is dropped when it completes.
            p.reading.remove(&block);
        }
        self.pump_reads(key);
    }

    fn on_reject(
        &mut self,
        key: PeerKey,
        piece: u32,
        offset: u32,
        length: u32,
    ) -> Result<(), Violation> {
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        if !p.info.fast_ext {
            return Err("reject-request without the fast extension".into());
        }
        let Some(block) = self.lengths.validate_block(piece, offset, length) else {
            return Ok(());
        };
        if p.in_flight.remove(&block) {
            self.picker.cancel_request(block, key);
            // Others first, so the rejecting peer is not asked again at once.
            // Only those `fill_requests` would act on (a fill never changes
            // whether another peer chokes us or interests us): a choke from
            // a BEP 6 peer rejects a whole pipeline, one message a block.
            let others: Vec<PeerKey> = self
                .peers
                .iter()
                .filter(|&(&k, p)| k != key && p.may_request())
                .map(|(&k, _)| k)
                .collect();
            for k in others {
                self.fill_requests(k);
            }
            self.fill_requests(key);
        }
        Ok(())
    }

    fn on_piece(
        &mut self,
        key: PeerKey,
        piece: u32,
        offset: u32,
        data: bytes::Bytes,
    ) -> Result<(), Violation> {
        let now = self.now;
        let len = u32::try_from(data.len()).map_err(|_| "oversized piece message".to_string())?;
        let block = self
            .lengths
            .validate_piece_index(piece)
            .filter(|_| offset.is_multiple_of(BLOCK_LEN))
            .and_then(|vp| self.lengths.block(vp, offset / BLOCK_LEN))
            .filter(|b| b.length == len)
            .ok_or_else(|| format!("piece data we did not request: {piece}/{offset}/{len}"))?;
        let Some(p) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        p.seen_piece_state = true;
        if !p.in_flight.remove(&block) && !p.take_cancelled(block) {
            return Err(format!(
                "piece data we did not request: {piece}/{offset}/{len}"
            ));
        }
        p.download.record(now, u64::from(len));
        self.download_rate.record(now, u64::from(len));
        p.first_block_at.get_or_insert(now);
        p.last_block_at = Some(now);
        p.last_progress = now;
        p.snubbed = false;
        if p.slow_start_target < self.config.queue_max {
            p.slow_start_target += 1;
        }
        match self.picker.received(block, key, data) {
            Received::Stored { cancel, complete } => {
                self.downloaded += u64::from(len);
                for q in cancel {
                    if let Some(qp) = self.peers.get_mut(&q)
                        && qp.in_flight.remove(&block)
                    {
                        qp.note_cancelled(block);
                        self.send(
                            q,
                            Message::Cancel {
                                piece,
                                offset,
                                length: len,
                            },
                        );
                    }
                }
                if let Some(blocks) = complete {
                    self.events.push_back(TorrentEvent::VerifyPiece {
                        piece: block.piece,
                        blocks,
                    });
                }
            }
            Received::NotNeeded => self.wasted += u64::from(len),
        }
        self.fill_requests(key);
        Ok(())
    }

    /// Sets every piece's priority (from the files' priorities; one a piece,
    /// asserted): skipped pieces are no longer requested (those in progress
    /// finish), interest in each peer is counted again, pipelines refill.
    /// When every wanted piece is already have, `Completed` is emitted.
    pub fn set_priorities(&mut self, now: Instant, priorities: &[crate::picker::Priority]) {
        self.advance(now);
        let was_done = self.picker.is_done();
        self.picker.set_priorities(priorities, &mut self.rng);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in &keys {
            let picker = &self.picker;
            if let Some(p) = self.peers.get_mut(k) {
                p.interesting = p
                    .pieces
                    .iter_ones()
                    .filter(|&i| !picker.have().get(i) && picker.is_wanted(i))
                    .count() as u32;
            }
            self.update_interest(*k);
        }
        self.refill_all();
        if self.picker.is_done() && !was_done {
            self.events.push_back(TorrentEvent::Completed);
        }
    }

    /// Sends Interested/NotInterested when our interest in the peer changed.
    fn update_interest(&mut self, key: PeerKey) {
        let complete = self.picker.is_done();
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let want = p.interesting > 0 && !complete && self.error.is_none();
        if want != p.am_interested {
            p.am_interested = want;
            if want {
                p.am_interested_at = self.now;
            }
            let msg = if want {
                Message::Interested
            } else {
                Message::NotInterested
            };
            self.send(key, msg);
        }
    }

    /// Tops up our request pipeline to `key`.
    fn fill_requests(&mut self, key: PeerKey) {
        if self.error.is_some() {
            return;
        }
        let now = self.now;
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if !p.may_request() {
            return;
        }
        let target = p.queue_target(now, &self.config);
        let mut out = Vec::new();
        while p.in_flight.len() < target {
            let Some(b) = self.picker.pick(key, &p.pieces, p.parole, &mut self.rng) else {
                break;
            };
            if p.in_flight.is_empty() {
                p.last_progress = now;
            }
            p.in_flight.insert(b);
            out.push(b);
        }
        for b in out {
            self.send(
                key,
                Message::Request {
                    piece: b.piece.get(),
                    offset: b.offset,
                    length: b.length,
                },
            );
        }
    }

    /// Tops up every pipeline; snubbed peers last, so freed blocks go to
    /// peers that deliver.
    fn refill_all(&mut self) {
        // Only the peers `fill_requests` acts on (see `on_reject`).
        let mut keys: Vec<(bool, PeerKey)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.may_request())
            .map(|(&k, p)| (p.snubbed, k))
            .collect();
        keys.sort();
        for (_, k) in keys {
            self.fill_requests(k);
        }
    }

    /// Asks storage for the next blocks `key` requested, a few at a time.
    fn pump_reads(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.send_buffer_full {
            return;
        }
        while p.reads_outstanding < PEER_READS_IN_FLIGHT_MAX && !p.requests.is_empty() {
            if self.reads_outstanding >= TORRENT_READS_IN_FLIGHT_MAX {
                self.reads_waiting = true;
                return;
            }
            let Some(block) = p.requests.pop_front() else {
                break;
            };
            p.reading.insert(block);
            p.reads_outstanding += 1;
            self.reads_outstanding += 1;
            self.events
                .push_back(TorrentEvent::ReadBlock { peer: key, block });
        }
    }

    /// A read was answered (data or failure): frees its slots, and gives the
    /// peer (and, if some waited for a torrent slot, every peer) a turn.
    fn read_answered(&mut self, key: PeerKey) {
        self.reads_outstanding = self.reads_outstanding.saturating_sub(1);
        if let Some(p) = self.peers.get_mut(&key) {
            p.reads_outstanding = p.reads_outstanding.saturating_sub(1);
        }
        self.pump_reads(key);
        if self.reads_waiting {
            self.reads_waiting = false;
            let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
            for k in keys {
                self.pump_reads(k);
            }
        }
    }

    /// The driver holds too much unsent data for `peer` (its send buffer is
    /// past the driver's high mark): no more reads for it until
    /// [`Self::send_buffer_drained`]. Its requests stay queued.
    pub fn send_buffer_full(&mut self, now: Instant, peer: PeerKey) {
        self.advance(now);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.send_buffer_full = true;
        }
    }

    /// The peer's send buffer fell below the driver's low mark: reads resume.
    pub fn send_buffer_drained(&mut self, now: Instant, peer: PeerKey) {
        self.advance(now);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.send_buffer_full = false;
        }
        self.pump_reads(peer);
    }

    /// The next message to send, in order per peer.
    pub fn poll_transmit(&mut self) -> Option<(PeerKey, Message)> {
        self.transmit.pop_front()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<TorrentEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_tick.min(self.next_rechoke))
    }
}

mod status;
pub(crate) mod superseed;
mod upkeep;

pub use superseed::SUPER_SEED_OFFERS;
use superseed::SuperSeed;
