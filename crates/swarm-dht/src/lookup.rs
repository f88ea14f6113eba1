//! Iterative lookups (Kademlia, BEP 5): ask the closest known nodes for
//! nodes closer to a target, α at a time, until the k closest nodes that
//! are not known to have failed have all answered.
//!
//! The lookup only decides whom to ask next; the node sends the queries,
//! times them out, and feeds answers and failures back. Candidates are kept
//! sorted by distance (a `BTreeMap` keyed by the XOR distance, so iteration
//! is deterministic) and bounded by [`CANDIDATES_MAX`]: the farthest
//! candidates not in flight are dropped first.
//!
//! `depth` counts round trips: a node learned from a node at depth d is at
//! depth d + 1 (seeds from the table are at depth 1). The deepest node that
//! answered is the number of sequential round trips the lookup took.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use swarm_wire::krpc::{NodeId, NodeInfo};

/// Most candidates one lookup remembers.
pub const CANDIDATES_MAX: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CandidateState {
    Fresh,
    InFlight,
    Responded,
    Failed,
}

#[derive(Clone, Debug)]
pub struct Candidate {
    pub info: NodeInfo,
    pub state: CandidateState,
    pub depth: u32,
    /// The write token it gave (get_peers, get).
    pub token: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
pub struct Lookup {
    pub target: NodeId,
    /// By distance to the target.
    candidates: BTreeMap<NodeId, Candidate>,
    /// Addresses with unknown ids to ask first (bootstrap routers).
    seeds: Vec<SocketAddr>,
    in_flight: usize,
    /// Queries sent.
    pub queries: u32,
    /// Answers received.
    pub responses: u32,
}

/// Whom to ask next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// A candidate (marked in flight).
    Node(NodeInfo),
    /// A seed address with an unknown id.
    Seed(SocketAddr),
    /// Nothing now: wait for answers in flight.
    Wait,
    /// Converged (or exhausted): the k closest live nodes have answered.
    Done,
}

impl Lookup {
    pub fn new(target: NodeId, start: &[NodeInfo], seeds: Vec<SocketAddr>) -> Self {
        let mut l = Lookup {
            target,
            candidates: BTreeMap::new(),
            seeds,
            in_flight: 0,
            queries: 0,
            responses: 0,
        };
        for n in start {
            l.add(*n, 1);
        }
        l
    }

    fn add(&mut self, info: NodeInfo, depth: u32) {
        let d = info.id.distance(&self.target);
        self.candidates.entry(d).or_insert(Candidate {
            info,
            state: CandidateState::Fresh,
            depth,
            token: None,
        });
        while self.candidates.len() > CANDIDATES_MAX {
            let Some(far) = self
                .candidates
                .iter()
                .rev()
                .find(|(_, c)| c.state != CandidateState::InFlight)
                .map(|(d, _)| *d)
            else {
                break;
            };
            self.candidates.remove(&far);
        }
    }

    /// The next query to send, if fewer than `alpha` are in flight.
    pub fn next(&mut self, k: usize, alpha: usize) -> Next {
        if self.in_flight >= alpha {
            return Next::Wait;
        }
        if let Some(seed) = self.seeds.pop() {
            self.in_flight += 1;
            self.queries += 1;
            return Next::Seed(seed);
        }
        let mut live = 0;
        for c in self.candidates.values_mut() {
            match c.state {
                CandidateState::Failed => continue,
                CandidateState::Fresh => {
                    c.state = CandidateState::InFlight;
                    self.in_flight += 1;
                    self.queries += 1;
                    return Next::Node(c.info);
                }
                CandidateState::InFlight | CandidateState::Responded => {}
            }
            live += 1;
            if live >= k {
                break;
            }
        }
        if self.in_flight > 0 {
            Next::Wait
        } else {
            Next::Done
        }
    }

    /// `from` answered, telling of `nodes` (and giving `token`). A seed
    /// (unknown id until now) becomes a candidate that answered.
    pub fn responded(
        &mut self,
        from: NodeInfo,
        seed: bool,
        nodes: &[NodeInfo],
        token: Option<Vec<u8>>,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.responses += 1;
        let d = from.id.distance(&self.target);
        let depth = match self.candidates.get_mut(&d) {
            Some(c) if c.info.addr == from.addr => {
                c.state = CandidateState::Responded;
                c.token = token;
                c.depth
            }
            Some(_) => 1,
            None => {
                // A seed, or a node that answered with another id than the
                // one we were told: it answered, so it is a live candidate.
                let depth = if seed { 1 } else { 2 };
                self.candidates.insert(
                    d,
                    Candidate {
                        info: from,
                        state: CandidateState::Responded,
                        depth,
                        token,
                    },
                );
                depth
            }
        };
        for n in nodes {
            self.add(*n, depth + 1);
        }
    }

    /// A query to `to` (`None`: a seed) timed out or was refused.
    pub fn failed(&mut self, to: Option<&NodeInfo>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(to) = to {
            let d = to.id.distance(&self.target);
            if let Some(c) = self.candidates.get_mut(&d)
                && c.info.addr == to.addr
                && c.state == CandidateState::InFlight
            {
                c.state = CandidateState::Failed;
            }
        }
    }

    /// The k closest candidates that answered, closest first.
    pub fn closest_responded(&self, k: usize) -> Vec<&Candidate> {
        self.candidates
            .values()
            .filter(|c| c.state == CandidateState::Responded)
            .take(k)
            .collect()
    }

    /// Sequential round trips: the deepest candidate that answered.
    pub fn round_trips(&self) -> u32 {
        self.candidates
            .values()
            .filter(|c| c.state == CandidateState::Responded)
            .map(|c| c.depth)
            .max()
            .unwrap_or(0)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn check_invariants(&self) {
        assert!(self.candidates.len() <= CANDIDATES_MAX);
        let flying = self
            .candidates
            .values()
            .filter(|c| c.state == CandidateState::InFlight)
            .count();
        assert!(
            flying <= self.in_flight,
            "in-flight count below candidates in flight"
        );
        for (d, c) in &self.candidates {
            assert_eq!(*d, c.info.id.distance(&self.target));
        }
    }
}
