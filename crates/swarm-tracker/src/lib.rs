//! `swarm-tracker`: swarm's BitTorrent tracker.
//!
//! - [`registry`]: the swarm registry, sans-IO (time and a seed are inputs):
//!   who is in which swarm, expiry, which peers to hand out, the limits.
//!
//! Architecture invariant: the registry does no IO, reads no clock and
//! draws from no global RNG; the simulator drives it in virtual time.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod registry;

pub use registry::{
    Announce, AnnouncePeers, AnnounceReply, PeerId, Refusal, Registry, RegistryConfig, SwarmCounts,
};
