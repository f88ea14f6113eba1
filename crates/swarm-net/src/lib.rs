//! `swarm-net`: tokio drivers around the sans-IO engines.
pub mod tracker;
