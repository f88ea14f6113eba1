//! `swarm-sim`: a discrete-event swarm simulator over swarm's own engines.
//!
//! Every peer is a real [`swarm_engine::TorrentCore`] (its picker, its
//! choker, its request pipeline, its timers), driven in virtual time: the
//! simulator only moves messages and answers storage jobs, so every figure
//! it draws is a figure of the code that runs on the network. Runs are
//! deterministic: the same [`Scenario`] and seed give the same [`Outcome`]
//! bit for bit (one event queue ordered by time then insertion, seeded
//! RNGs, no hash-map iteration).
//!
//! # The network model, and why
//! A *fluid-flow model at block granularity*, in two processor-sharing
//! stages ([`link::SharedLink`]):
//! - every peer has an uplink of `u` and a downlink of `d` bytes/s, and a
//!   one-way latency; the core of the network has no bottleneck (access
//!   links are the bottleneck of a swarm of home peers);
//! - a block (16 KiB, as on the wire) first crosses its sender's uplink,
//!   shared equally by the blocks it is sending at that moment (one per
//!   connection: a connection sends in order, like TCP), then travels the
//!   latency, then crosses its receiver's downlink, shared the same way;
//! - control messages (have, request, choke, …) take only the latency, but
//!   never overtake a block sent before them on the same connection.
//!
//! Why: equal sharing of a bottleneck among its flows is what TCP converges
//! to, and it is exact where BitTorrent's figures come from (upload
//! capacity used or wasted, who gets the bytes); it costs O(active flows)
//! per block instead of packet-level events. Store-and-forward of a block
//! through the two stages adds at most one block time of delay per hop
//! (16 ms at 1 MiB/s), far below the choker's 10 s rounds.
//!
//! What it leaves out: TCP dynamics (slow start, loss, the sawtooth),
//! protocol overhead (headers, control messages cost no bandwidth), a
//! shared core network, NATs and unreachable peers, heterogeneous
//! latencies, disk reads (instant; hashing and writing a piece may cost
//! time, [`Scenario::hash_rate`]), and corrupted data (every piece passes
//! its hash).
//!
//! # Discovery
//! Behind the [`discovery::Registry`] seam; see [`discovery`] for the
//! stand-ins used until the tracker's registry and the endpoint land.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bounds;
pub mod discovery;
pub mod link;
pub mod outcome;
pub mod queue;
pub mod scenario;
mod sim;

pub use outcome::{Outcome, PeerOutcome, Sample, quantile};
pub use scenario::{Arrival, Departure, Scenario, SeedDeparture};
pub use sim::Simulation;

/// Runs a scenario to its outcome, with no progress report.
pub fn run(sc: Scenario) -> Outcome {
    Simulation::new(sc).run(|_| {})
}
