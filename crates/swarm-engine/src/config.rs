//! Tunables and limits of the torrent core.
//!
//! Limits are named constants with their unit in the doc; configuration has
//! BitTorrent's classic values as defaults.

use crate::choker::ChokerConfig;
use crate::picker::PickStrategy;
use crate::time::Duration;

/// Requests from one peer we queue at most (more are ignored, or rejected for
/// BEP 6 peers). Also the `reqq` a driver should advertise: libtorrent's
/// 2000. Transmission keeps no more requests outstanding than the uploader's
/// `reqq`, so this bounds its download rate (500 gave 8 MB/s on loopback).
/// A queued request costs 12 bytes (24 KiB per peer when full); its data is
/// read only when it is its turn, at most [`PEER_READS_IN_FLIGHT_MAX`] at once.
pub const PEER_REQUESTS_MAX: usize = 2000;
/// Disk reads we ask for at once on behalf of one peer (16 KiB each, 512 KiB
/// per peer); the rest wait in its queue. Counted from the `ReadBlock` event
/// to its answer, cancelled or not.
pub const PEER_READS_IN_FLIGHT_MAX: usize = 32;
/// Disk reads we ask for at once over all the torrent's peers (16 KiB each,
/// 4 MiB); a peer whose turn comes when they are all taken waits for one to
/// finish.
pub const TORRENT_READS_IN_FLIGHT_MAX: usize = 256;
/// Hash failures a peer may cause as the sole contributor of a piece before
/// we ban it.
pub const HASH_FAILURES_BAN: u32 = 3;

/// Tunables of one torrent. `Default` gives the classic values.
#[derive(Clone, Debug, PartialEq)]
pub struct TorrentConfig {
    /// Whom we unchoke: slots, rechoke and optimistic intervals, anti-snubbing.
    pub choker: ChokerConfig,
    /// A peer with requests outstanding that sends no block for this long is
    /// snubbed: its requests go to other peers.
    pub request_timeout: Duration,
    /// Bounds on our requests in flight to one peer, in blocks.
    pub queue_min: usize,
    pub queue_max: usize,
    /// The pipeline holds about this much time of a peer's download rate.
    /// It must exceed the round trip (including the peer's own queueing),
    /// or a pipeline-bound link would measure a lower rate and shrink its
    /// pipeline further; 1 s covers that and still stays below libtorrent's 3 s.
    pub queue_time: Duration,
    /// How new pieces are chosen (rarest first; the others are for comparisons).
    pub picking: PickStrategy,
    /// Whether we choke at all: `Off` unchokes every interested peer (as
    /// rqbit does), for comparisons.
    pub choking: Choking,
    /// Pieces picked at random (not rarest first) until this many are complete.
    pub initial_random_pieces: u32,
    /// Request still-missing blocks from several peers at the very end.
    pub endgame: bool,
    /// Super-seed (BEP 16) when the torrent starts complete: peers are
    /// offered a piece or two at a time instead of our bitfield, so the
    /// first copy we upload has no piece twice
    /// (see `torrent::superseed`). Off by default, as in libtorrent.
    pub super_seeding: bool,
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
            choker: ChokerConfig::default(),
            request_timeout: Duration::from_secs(20),
            queue_min: 4,
            queue_max: 500,
            queue_time: Duration::from_secs(1),
            picking: PickStrategy::RarestFirst,
            choking: Choking::TitForTat,
            initial_random_pieces: 4,
            endgame: true,
            super_seeding: false,
            keepalive_interval: Duration::from_secs(90),
            peer_idle_timeout: Duration::from_secs(300),
            tick_interval: Duration::from_secs(1),
        }
    }
}

/// Whom we unchoke: the tit-for-tat choker, or every interested peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choking {
    /// [`crate::choker::Choker`] with `TorrentConfig::choker`.
    #[default]
    TitForTat,
    /// [`crate::unchoke::UnchokeAll`]: no choking, as rqbit.
    Off,
}
