//! `swarm-engine`: the sans-IO engines of a BitTorrent peer.
//!
//! Architecture invariant: nothing in this crate does IO, reads a clock,
//! spawns a task or uses a global RNG. Time comes in as [`Instant`], randomness
//! as a seed; outputs are values the caller drains. The tokio drivers in
//! `swarm-net` and the simulator run the same code.
//!
//! - [`ids`]: [`PeerKey`], and the wire's [`InfoHash`] and [`PeerId`] (a leaf module).
//! - [`event`]: what the core and its driver exchange besides wire messages (a leaf module).
//! - [`endpoint`]: [`Endpoint`], the connection policy over all torrents (one per process).
//! - [`extensions`]: [`Extensions`], one torrent's BEP 10 extensions: [`metadata`]
//!   exchange (BEP 9, magnet links), peer exchange ([`pex`], BEP 11), the DHT `port` (BEP 5).
//! - [`torrent`]: [`TorrentCore`], one torrent against its peers (BEP 3, BEP 6).
//! - [`bitfield`]: [`Bitfield`], validated from the wire.
//! - [`rate`]: rolling rate estimators.
//! - [`choker`]: the tit-for-tat [`choker::Choker`] (BEP 3), with explained decisions.
//! - [`unchoke`]: the seam where a choker decides whom we unchoke.
//! - [`rng`]: the seeded PRNG the engines draw from.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bitfield;
pub mod choker;
pub mod config;
pub mod endpoint;
pub mod event;
pub mod extensions;
pub mod ids;
pub mod metadata;
mod peer;
pub mod pex;
pub mod picker;
pub mod rate;
pub mod rng;
pub mod time;
pub mod torrent;
pub mod unchoke;

pub use bitfield::{Bitfield, BitfieldError};
pub use choker::{Choker, ChokerConfig};
pub use config::{
    Choking, HASH_FAILURES_BAN, PEER_READS_IN_FLIGHT_MAX, PEER_REQUESTS_MAX,
    TORRENT_READS_IN_FLIGHT_MAX, TorrentConfig,
};
pub use endpoint::{Action, Endpoint, EndpointConfig, PeerSource, Refusal};
pub use event::{ExtensionInfo, PeerInfo, StorageDone, TorrentEvent};
pub use extensions::{ExtensionEvent, Extensions, ExtensionsConfig, PeerHello};
pub use ids::{InfoHash, PeerId, PeerKey};
pub use metadata::{METADATA_SIZE_MAX, MetadataEvent, MetadataFetcher};
pub use pex::Pex;
pub use picker::{PickStrategy, Priority};
pub use time::{Duration, Instant};
pub use torrent::{PeerStats, TorrentCore, TorrentStats};
pub use unchoke::{ChokeDecision, ChokeReason, ChokeState, UnchokeAll};
