//! The ids the engines key things by, in a leaf module that every engine
//! imports and that imports nothing of the crate: [`PeerKey`] (one
//! connection), and the wire's [`InfoHash`] (one torrent) and [`PeerId`]
//! (one client), re-exported so engine users need not reach into
//! `swarm-wire` for them.

pub use swarm_wire::{InfoHash, PeerId};

/// Identifies a peer connection; assigned by the driver (or the endpoint),
/// never reused within a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey(pub u64);
