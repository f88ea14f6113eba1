//! `swarm-engine`: the sans-IO engines of a BitTorrent peer.
//!
//! Architecture invariant: nothing in this crate does IO, reads a clock,
//! spawns a task or uses a global RNG. Time comes in as [`Instant`], randomness
//! as a seed; outputs are values the caller drains. The tokio drivers in
//! `swarm-net` and the simulator run the same code.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod time;
pub use time::{Duration, Instant};
