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
//! A *fluid-flow model at block granularity* ([`link::Link`]):
//! - every peer has an uplink of `u` and a downlink of `d` bytes/s, and a
//!   one-way latency; the core of the network has no bottleneck (access
//!   links are the bottleneck of a swarm of home peers);
//! - a block (16 KiB, as on the wire) first crosses its sender's uplink,
//!   then travels the latency, then crosses its receiver's downlink. Each
//!   link serves its blocks one at a time, in the order they came, at full
//!   rate; a connection puts its next block on the uplink only when the
//!   last one is through (in order, like TCP), so an uplink serves its
//!   connections round robin, a block each: processor sharing at block
//!   granularity;
//! - control messages (have, request, choke, …) take only the latency, but
//!   never overtake a block sent before them on the same connection;
//!   those sent at one instant on one connection travel as one event;
//! - as swarm-net's writer does, the messages that
//!   [`swarm_wire::peer::Message::rides_ahead`] (requests, cancels,
//!   interest) are sent before what is queued ahead of them and not yet
//!   on the uplink, up to a message that opens the connection (the block
//!   on the uplink is in the socket: they follow it).
//!
//! Why: equal sharing of a bottleneck among its flows is what TCP converges
//! to, and it is exact where BitTorrent's figures come from (upload
//! capacity used or wasted, who gets the bytes). Round robin by block
//! differs from exact processor sharing only within one block time (16 ms
//! at 1 MiB/s), far below the choker's 10 s rounds, and a block's time on
//! a link is known when it enters it: one event per block per link, none
//! rescheduled, which is what makes a thousand peers affordable.
//!
//! What it leaves out: TCP dynamics (slow start, loss, the sawtooth),
//! protocol overhead (headers, control messages cost no bandwidth), a
//! shared core network, NATs and unreachable peers, heterogeneous
//! latencies, disk reads (instant; hashing and writing a piece may cost
//! time, [`Scenario::hash_rate`]), and corrupted data (every piece passes
//! its hash). A block already on a link when its connection closes still
//! takes its time there (it was in the socket's buffer).
//!
//! # Discovery and connections
//! The tracker's own sans-IO registry (`swarm-tracker`) hands out peers,
//! and each peer's own `swarm_engine::Endpoint` decides whom it dials,
//! accepts and closes; see [`discovery`]. Its idle eviction hears of
//! progress as from swarm-net's session: once a core tick, the connections
//! that moved a block since the last one or where either side is
//! interested (and at once when a core sends `interested`).
//!
//! # Also here
//! [`dht`]: lookups in simulated Mainline DHTs of real `swarm_dht`
//! engines (`swarm sim dht`). [`harness`]: the engine tests' in-memory
//! harness (random interleavings, no timing model), used by `tests/engine_*`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bounds;
pub mod chart;
pub mod dht;
pub mod discovery;
pub mod experiments;
pub mod harness;
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
