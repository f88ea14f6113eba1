//! A virtual network for engine tests: nodes on 10.x.y.z:6881, datagrams
//! delivered after a fixed latency, time advanced event by event. No
//! sockets, no clock: a run replays from its seed.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use swarm_dht::{Dht, DhtConfig, DhtEvent, Duration, Instant, LookupId, LookupOutcome};

pub const LATENCY: Duration = Duration::from_millis(20);

pub struct Net {
    pub now: Instant,
    pub nodes: Vec<Dht>,
    pub addrs: Vec<SocketAddr>,
    by_addr: BTreeMap<SocketAddr, usize>,
    /// (delivery time, sequence) → (from, to, bytes)
    in_flight: BTreeMap<(Instant, u64), (SocketAddr, SocketAddr, Vec<u8>)>,
    seq: u64,
    /// Nodes that drop everything (dead).
    pub dead: BTreeSet<usize>,
    pub events: Vec<(usize, DhtEvent)>,
    pub delivered: u64,
}

pub fn addr(i: usize) -> SocketAddr {
    let i = i + 1;
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881))
}

impl Net {
    pub fn new(n: usize, seed: u64, config: DhtConfig) -> Net {
        let now = Instant(1_000_000);
        let mut net = Net {
            now,
            nodes: Vec::new(),
            addrs: Vec::new(),
            by_addr: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            dead: BTreeSet::new(),
            events: Vec::new(),
            delivered: 0,
        };
        for i in 0..n {
            net.add(
                seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
                config.clone(),
            );
        }
        net
    }

    pub fn add(&mut self, seed: u64, config: DhtConfig) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Dht::new(config, None, seed, self.now));
        self.addrs.push(addr(i));
        self.by_addr.insert(addr(i), i);
        i
    }

    /// Moves outputs of node `i` into the network.
    fn drain(&mut self, i: usize) {
        while let Some((to, bytes)) = self.nodes[i].poll_transmit() {
            self.seq += 1;
            self.in_flight
                .insert((self.now + LATENCY, self.seq), (self.addrs[i], to, bytes));
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.events.push((i, e));
        }
    }

    pub fn drain_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.drain(i);
        }
    }

    /// Runs until `until` (virtual time).
    pub fn run_until(&mut self, until: Instant) {
        self.drain_all();
        loop {
            let next_msg = self.in_flight.keys().next().map(|k| k.0);
            let (timer_at, timer_node) = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.poll_timeout().map(|t| (t, i)))
                .min()
                .unwrap_or((Instant(u64::MAX), 0));
            let at = next_msg.map_or(timer_at, |m| m.min(timer_at));
            if at > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(at);
            if next_msg == Some(at) {
                let (key, (from, to, bytes)) = self.in_flight.pop_first().unwrap();
                let _ = key;
                if let Some(&j) = self.by_addr.get(&to)
                    && !self.dead.contains(&j)
                {
                    self.delivered += 1;
                    self.nodes[j].handle_datagram(self.now, from, &bytes);
                    self.drain(j);
                }
            } else {
                self.nodes[timer_node].handle_timeout(self.now);
                self.drain(timer_node);
            }
        }
    }

    /// Runs until node `i` reports lookup `id` done (at most `limit`).
    pub fn wait(&mut self, i: usize, id: LookupId, limit: Duration) -> LookupOutcome {
        let end = self.now + limit;
        loop {
            if let Some(pos) = self
                .events
                .iter()
                .position(|(n, DhtEvent::LookupDone { id: l, .. })| *n == i && *l == id)
            {
                let (_, DhtEvent::LookupDone { outcome, .. }) = self.events.remove(pos);
                return outcome;
            }
            assert!(self.now < end, "lookup {id:?} of node {i} not done in time");
            let step = self.now + Duration::from_millis(10);
            self.run_until(step.min(end));
        }
    }

    /// The same as [`Net::wait`], with the lookup's counts.
    pub fn wait_stats(
        &mut self,
        i: usize,
        id: LookupId,
        limit: Duration,
    ) -> (LookupOutcome, swarm_dht::LookupStats) {
        let end = self.now + limit;
        loop {
            if let Some(pos) = self
                .events
                .iter()
                .position(|(n, DhtEvent::LookupDone { id: l, .. })| *n == i && *l == id)
            {
                let (_, DhtEvent::LookupDone { outcome, stats, .. }) = self.events.remove(pos);
                return (outcome, stats);
            }
            assert!(self.now < end, "lookup {id:?} of node {i} not done in time");
            let step = self.now + Duration::from_millis(10);
            self.run_until(step.min(end));
        }
    }

    /// Every node bootstraps from node 0, one after another.
    pub fn bootstrap_all(&mut self) {
        let first = self.addrs[0];
        for i in 1..self.nodes.len() {
            let now = self.now;
            let id = self.nodes[i].bootstrap(now, &[first]);
            self.drain(i);
            self.wait(i, id, Duration::from_secs(60));
        }
        // Node 0 learns its neighbourhood too.
        let now = self.now;
        let id = self.nodes[0].bootstrap(now, &[]);
        self.drain(0);
        self.wait(0, id, Duration::from_secs(60));
    }

    pub fn check_invariants(&self) {
        for n in &self.nodes {
            n.check_invariants();
        }
    }
}
