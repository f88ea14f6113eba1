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

use bytes::Bytes;
use swarm_wire::lengths::{BlockInfo, Lengths, ValidPieceIndex};
use swarm_wire::peer::Message;

use crate::bitfield::Bitfield;
use crate::time::{Duration, Instant};

/// Identifies a peer connection; assigned by the driver, never reused within a torrent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey(pub u64);

/// What the handshake told us about a peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// Both sides set the BEP 6 fast-extension reserved bit.
    pub fast_ext: bool,
    /// We dialled it (false: it connected to us).
    pub outgoing: bool,
}

/// What the BEP 10 extension handshake told us about a peer (the driver decodes it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtensionInfo {
    /// `reqq`: how many outstanding requests the peer accepts from us.
    pub reqq: Option<u32>,
}

/// Requests from one peer we queue at most (more are ignored, or rejected for
/// BEP 6 peers). Also the `reqq` a driver should advertise.
pub const PEER_REQUESTS_MAX: usize = 500;
/// Disk reads we ask for at once on behalf of one peer; the rest wait in its queue.
pub const PEER_READS_IN_FLIGHT_MAX: usize = 32;
/// Hash failures a peer may cause as the sole contributor of a piece before
/// we ban it.
pub const HASH_FAILURES_BAN: u32 = 3;

/// Tunables of one torrent. `Default` gives the classic values.
#[derive(Clone, Debug, PartialEq)]
pub struct TorrentConfig {
    /// Peers we unchoke at once (BEP 3's classic 4).
    pub unchoke_slots: usize,
    /// How often the unchoke set is recomputed.
    pub rechoke_interval: Duration,
    /// A peer with requests outstanding that sends no block for this long is
    /// snubbed: its requests go to other peers.
    pub request_timeout: Duration,
    /// Bounds on our requests in flight to one peer, in blocks.
    pub queue_min: usize,
    pub queue_max: usize,
    /// The pipeline holds about this much time of a peer's download rate.
    pub queue_time: Duration,
    /// Pieces picked at random (not rarest first) until this many are complete.
    pub initial_random_pieces: u32,
    /// Request still-missing blocks from several peers at the very end.
    pub endgame: bool,
    /// Send a keep-alive when we sent nothing else to a peer for this long.
    pub keepalive_interval: Duration,
    /// Drop a peer that sent nothing at all (not even a keep-alive) for this long.
    pub peer_idle_timeout: Duration,
    /// How often `handle_timeout` does its housekeeping.
    pub tick_interval: Duration,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        TorrentConfig {
            unchoke_slots: 4,
            rechoke_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(20),
            queue_min: 4,
            queue_max: 500,
            queue_time: Duration::from_millis(500),
            initial_random_pieces: 4,
            endgame: true,
            keepalive_interval: Duration::from_secs(90),
            peer_idle_timeout: Duration::from_secs(300),
            tick_interval: Duration::from_secs(1),
        }
    }
}

/// A disk or hash job the driver finished (requested by a [`TorrentEvent`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageDone {
    /// Answer to `VerifyPiece`: `ok` means the hash matched AND the piece was written.
    PieceVerified { piece: ValidPieceIndex, ok: bool },
    /// Answer to `VerifyPiece`: the hash matched but the write failed (disk
    /// full, folder unwritable). The torrent stops with `Fatal`.
    WriteFailed {
        piece: ValidPieceIndex,
        error: String,
    },
    /// Answer to `ReadBlock`.
    BlockRead {
        peer: PeerKey,
        block: BlockInfo,
        data: Bytes,
    },
    /// Answer to `ReadBlock` when the read failed. The torrent stops with `Fatal`.
    ReadFailed {
        peer: PeerKey,
        block: BlockInfo,
        error: String,
    },
}

/// Work for the driver, and things worth telling the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TorrentEvent {
    /// All blocks of `piece`, in order: hash them, and if the hash matches
    /// write them; then answer with `StorageDone::PieceVerified` (or `WriteFailed`).
    /// One job per piece, not per block: batching is what makes disk and
    /// hashing fast (DESIGN.md).
    VerifyPiece {
        piece: ValidPieceIndex,
        blocks: Vec<Bytes>,
    },
    /// Read `block` from disk for `peer`; answer with `StorageDone::BlockRead`.
    ReadBlock { peer: PeerKey, block: BlockInfo },
    /// Close this connection; the core has already forgotten the peer.
    /// `ban`: refuse the peer's address from now on.
    Disconnect {
        peer: PeerKey,
        reason: String,
        ban: bool,
    },
    /// A piece passed its hash and is on disk.
    PieceCompleted(ValidPieceIndex),
    /// Every piece is on disk.
    Completed,
    /// The torrent cannot go on (disk error); the driver should stop it.
    Fatal(String),
}

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
    pub peer_interested: bool,
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
}

/// One torrent's sans-IO protocol engine. See the module docs for how to drive it.
pub struct TorrentCore {
    _private: (),
}

impl TorrentCore {
    /// `have`: the pieces already verified on disk (from resume or a check);
    /// its length must be `lengths.num_pieces()`.
    pub fn new(
        config: TorrentConfig,
        lengths: Lengths,
        have: Bitfield,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        let _ = (config, lengths, have, rng_seed, now);
        todo!()
    }

    /// A handshake completed. Queues our bitfield (or `HaveAll`/`HaveNone`
    /// for BEP 6 peers) as the first message to this peer; the driver sends
    /// its BEP 10 extension handshake after it.
    pub fn peer_connected(&mut self, now: Instant, peer: PeerKey, info: PeerInfo) {
        let _ = (now, peer, info);
        todo!()
    }

    /// The connection closed. Its in-flight requests go back to the picker.
    /// A no-op for unknown peers.
    pub fn peer_disconnected(&mut self, now: Instant, peer: PeerKey) {
        let _ = (now, peer);
        todo!()
    }

    /// The peer's BEP 10 extension handshake arrived (decoded by the driver).
    pub fn peer_extension_handshake(&mut self, now: Instant, peer: PeerKey, ext: ExtensionInfo) {
        let _ = (now, peer, ext);
        todo!()
    }

    /// A message from a peer. A protocol violation yields `Disconnect`.
    /// `Extended` and `Port` messages are ignored (the driver handles them).
    pub fn handle_message(&mut self, now: Instant, peer: PeerKey, msg: Message) {
        let _ = (now, peer, msg);
        todo!()
    }

    /// A disk or hash job finished.
    pub fn handle_storage(&mut self, now: Instant, done: StorageDone) {
        let _ = (now, done);
        todo!()
    }

    /// Housekeeping: request timeouts, rechoke, keep-alives, idle peers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// When `handle_timeout` wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// The next message to send, in order per peer.
    pub fn poll_transmit(&mut self) -> Option<(PeerKey, Message)> {
        todo!()
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<TorrentEvent> {
        todo!()
    }

    /// Asserts the invariants of the module docs. Costs O(blocks + peers):
    /// tests and the simulator call it after every step.
    pub fn check_invariants(&self) {
        todo!()
    }

    /// Pieces verified and written.
    pub fn have(&self) -> &Bitfield {
        todo!()
    }

    pub fn is_complete(&self) -> bool {
        todo!()
    }

    pub fn lengths(&self) -> &Lengths {
        todo!()
    }

    pub fn config(&self) -> &TorrentConfig {
        todo!()
    }

    /// The error that stopped the torrent, if any.
    pub fn error(&self) -> Option<&str> {
        todo!()
    }

    pub fn stats(&self, now: Instant) -> TorrentStats {
        let _ = now;
        todo!()
    }

    /// All connected peers, in `PeerKey` order.
    pub fn peer_stats(&self, now: Instant) -> Vec<PeerStats> {
        let _ = now;
        todo!()
    }

    pub fn peer(&self, now: Instant, peer: PeerKey) -> Option<PeerStats> {
        let _ = (now, peer);
        todo!()
    }

    pub fn num_peers(&self) -> usize {
        todo!()
    }
}
