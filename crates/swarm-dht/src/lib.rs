//! `swarm-dht`: a Mainline DHT node (BEP 5) with the BEP 44 key-value store,
//! sans-IO.
//!
//! [`Dht`] is a synchronous state machine in the shape of `quinn-proto`:
//! datagrams come in with [`Dht::handle_datagram`], time passes with
//! [`Dht::handle_timeout`], commands (bootstrap, lookups, announces, puts)
//! are method calls, and the outputs are drained: datagrams to send with
//! [`Dht::poll_transmit`], finished commands with [`Dht::poll_event`], the
//! next deadline with [`Dht::poll_timeout`]. It never reads a clock, never
//! touches a socket and draws randomness only from the seed it was given, so
//! a run replays bit for bit: the UDP driver (`swarm-net`) and the simulator
//! run the same code.
//!
//! - [`table`]: the routing table (k-buckets, k = 8, the bucket holding our
//!   id splits), node states good / questionable / bad (BEP 5).
//! - [`lookup`]: iterative lookups, α = 3 queries in flight, per-query
//!   timeouts, convergence on the k closest nodes that answered.
//! - [`store`]: what this node stores for others: announced peers and BEP 44
//!   items, bounded, with expiry; write tokens.
//! - [`item`]: BEP 44 items: immutable (key = SHA-1 of the value) and
//!   mutable (ed25519 key, salt, sequence number, signature).
//! - [`bep42`]: the node-id rules that tie an id to its IP.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bep42;
pub mod item;
pub mod lookup;
mod node;
pub mod store;
pub mod table;
mod time;

pub use node::{
    Dht, DhtConfig, DhtEvent, DhtStats, ITEM_REPUT_INTERVAL, KEPT_ITEMS_MAX, LookupId,
    LookupOutcome, LookupStats,
};
pub use swarm_wire::krpc::{NodeId, NodeInfo};
pub use time::{Duration, Instant, Rng};
