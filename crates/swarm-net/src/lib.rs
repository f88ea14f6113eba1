//! `swarm-net`: tokio drivers around the sans-IO engines.
pub mod resume;
pub mod tracker;
