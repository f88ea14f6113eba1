//! `swarm-net`: tokio drivers around the sans-IO engines.
//!
//! Architecture invariant: no protocol or policy decision is made here. The
//! drivers translate bytes and time into engine events and execute the
//! engines' actions: the torrent cores' (which piece, whom to unchoke, whom
//! to drop) and the endpoint's (whom to dial, which connections to accept,
//! keep or close, whom to ban). Each `TorrentCore` has exactly one owner task
//! ([`session`]), the `Endpoint` one too ([`client`]'s driver); no
//! `Arc<Mutex<_>>` around engine state.
//!
//! - [`client`]: [`Client`], the library's front door: one per process, one
//!   listener, the endpoint driver, many torrents (add, stop, remove, status).
//! - [`status`]: [`TorrentStatus`], what a torrent shows (serde-serializable).
//! - [`spec`]: [`TorrentSpec`], the torrent as the drivers need it.
//! - [`storage`]: files on disk, piece ↔ file spans, SHA-1 checks.
//! - [`conn`]: peer connections: handshake, reader and writer tasks.
//! - [`session`]: the owner task of one torrent.
//! - [`listener`]: the accept loop that pauses on `EMFILE` instead of spinning.
//! - [`resume`]: the crash-safe resume record (verified pieces, file stamps).
//! - [`ratelimit`]: token buckets for `--max-upload-rate`/`--max-download-rate`.
//! - [`tracker`]: the tracker client (HTTP and UDP).
//! - [`dht`]: the DHT node's UDP driver, and a torrent's DHT peer lookups.
//! - [`magnet`]: fetching a magnet link's metadata from peers (BEP 9).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod blocks;
pub mod client;
pub mod conn;
pub mod dht;
pub mod listener;
pub mod magnet;
pub mod ratelimit;
pub mod resume;
pub mod session;
pub mod spec;
pub mod status;
mod stop;
pub mod storage;
pub mod tracker;

use std::net::SocketAddr;
use std::path::PathBuf;

use swarm_engine::PeerId;

pub use client::{AddOptions, Client, ClientConfig, PeerFeed, TorrentHandle};
pub use spec::{FileSpec, TorrentSpec};
pub use status::{NeighbourStatus, PieceMap, TorrentState, TorrentStatus, TrackerStatus};
pub use storage::{OpenMode, Storage};

/// What went wrong in a driver, phrased for the user.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A file or folder of the torrent could not be created, read or written.
    /// (`error` is not a `#[source]`: the message already holds it, and a
    /// chain printed by anyhow would say it twice.)
    #[error("{}: {error}", path.display())]
    Storage {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A data file the torrent names is not there (seeding).
    #[error("{} is missing", path.display())]
    MissingFile { path: PathBuf },
    /// A data file is longer than the torrent says: seeding never changes
    /// the user's data, so it refuses.
    #[error("{} is {found} bytes long, the torrent says {expected}: it is not this torrent's data (seeding never truncates your files)", path.display())]
    LongerFile {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    /// A path the file system would refuse (a name or a whole path too
    /// long), found before anything is created.
    #[error("{}: {why}", path.display())]
    PathRefused { path: PathBuf, why: String },
    /// The torrent's parts do not agree (a bug in whoever built the spec, or
    /// a hostile file that slipped through).
    #[error("bad torrent: {0}")]
    BadTorrent(String),
    /// No listening socket could be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Seeding data of which no piece checks out.
    #[error("the data in {} does not match the torrent: no piece checks out", dir.display())]
    DataMismatch { dir: PathBuf },
    /// The client runs this torrent already (info-hash, hex).
    #[error("torrent {0} is already added")]
    AlreadyAdded(String),
    /// The torrent stopped: a disk error while downloading or seeding.
    #[error("{0}")]
    Fatal(String),
}

/// Our peer id: `-SW0001-` (Azureus style: client SW, version 0.0.0.1) and
/// 12 random alphanumerics.
pub fn new_peer_id() -> PeerId {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(b"-SW0001-");
    for b in &mut id[8..] {
        *b = ALPHABET[(rand::random::<u32>() as usize) % ALPHABET.len()];
    }
    PeerId(id)
}
