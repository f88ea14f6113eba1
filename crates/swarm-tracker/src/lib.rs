//! `swarm-tracker`: swarm's BitTorrent tracker.
//!
//! - [`registry`]: the swarm registry, sans-IO (time and a seed are inputs):
//!   who is in which swarm, expiry, which peers to hand out, the limits.
//! - [`server`]: the HTTP and UDP servers around it, one registry shard per
//!   worker thread, no lock.
//!
//! Architecture invariant: the registry does no IO, reads no clock and
//! draws from no global RNG; the simulator drives it in virtual time. Only
//! `server` knows tokio and the clock.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod registry;
pub mod server;

pub use registry::{
    Announce, AnnouncePeers, AnnounceReply, PeerId, Refusal, Registry, RegistryConfig, SwarmCounts,
};
pub use server::{Tracker, TrackerConfig};
