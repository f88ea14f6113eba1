//! Lookups in a simulated Mainline DHT: thousands of real `swarm_dht::Dht`
//! engines (routing tables, iterative lookups, the store, housekeeping)
//! exchanging their real bencoded datagrams in virtual time.
//!
//! # The model
//! - **Nodes**: N engines with random ids (from the seed), at private
//!   addresses 10.x.y.z:6881 (BEP 42 exempts them, so any id is admitted).
//! - **Latency**: each node has an access latency drawn uniformly from
//!   [`DhtScenario::latency_ms`]; a datagram from a to b takes
//!   latency(a) + latency(b) (one-way, so a round trip is twice that).
//!   Optional independent loss ([`DhtScenario::loss`]). Queries time out
//!   after the engine's 2 s.
//! - **Tables at the start**: the network is taken as already running.
//!   Each node pings up to k = 8 random nodes from every one of its
//!   buckets' id ranges (the nodes whose ids share the first b bits with its
//!   own and differ in bit b), through its real `add_nodes`; those that
//!   answer join its table as good, and the pinged nodes learn of it as
//!   any queried node does. These pings are delivered at once, at time 0
//!   (the cost of building the tables, not a figure).
//! - **Lookups**: in each phase, `lookups` puts of distinct immutable items
//!   (BEP 44) from random nodes, 0.25 s apart, each read back 30 s later by a
//!   `get` from another random node, and as many `find_node` lookups of
//!   random targets. The figures are the engine's own `LookupStats`:
//!   queries sent (messages) and sequential round trips.
//! - **Churn** (second phase): nodes leave as a Poisson process, each
//!   replaced at once by a new node with a new id and address that
//!   bootstraps from a random live node through its real `bootstrap`
//!   (so N stays constant). A leaving node goes silent: queries to it
//!   time out, and the engines find out as they do on the network (failed
//!   queries, the 15-minute liveness pings and bucket refreshes). Lookups
//!   start after a warm-up, so tables hold the dead entries a network
//!   with that churn holds.
//!
//! What it leaves out: bandwidth (datagrams are small), NATs and firewalls
//! (every node is reachable), correlated or asymmetric latency, IPv6,
//! malicious or misbehaving nodes, clients other than swarm's engine, and
//! the ramp-up of a network from nothing (tables start filled). Items are
//! not re-put during the run (the runs are shorter than an hour).
//!
//! Deterministic for a seed: one event queue ordered by time then
//! insertion, seeded generators, no hash-map iteration.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use swarm_dht::{
    Dht, DhtConfig, DhtEvent, Duration, Instant, LookupId, LookupOutcome, NodeId, Rng,
};

use crate::chart::{Chart, Series};
use crate::experiments::{Progress, Report};
use crate::queue::EventQueue;

/// One simulated DHT and what to run in it.
#[derive(Clone, Debug)]
pub struct DhtScenario {
    pub seed: u64,
    pub nodes: usize,
    /// Puts (each read back by a get) and find_node lookups per phase.
    pub lookups: usize,
    /// Range of a node's one-way access latency, milliseconds.
    pub latency_ms: (u64, u64),
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Mean session time of a node under churn; `None`: no churn phase.
    pub session: Option<Duration>,
    /// Churn before the churn phase's lookups start.
    pub warmup: Duration,
}

impl Default for DhtScenario {
    fn default() -> Self {
        DhtScenario {
            seed: 1,
            nodes: 1000,
            lookups: 100,
            latency_ms: (10, 100),
            loss: 0.0,
            session: Some(Duration::from_secs(3600)),
            warmup: Duration::from_secs(10 * 60),
        }
    }
}

/// What a lookup was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Put,
    Get,
    FindNode,
}

/// One finished lookup.
#[derive(Clone, Copy, Debug)]
pub struct LookupRecord {
    pub kind: Kind,
    /// Started in the churn phase.
    pub churn: bool,
    /// Put: stored on at least one node; get: the item read back;
    /// find_node: some nodes found.
    pub ok: bool,
    pub messages: u32,
    pub round_trips: u32,
    /// Virtual time from start to end, microseconds.
    pub duration_us: u64,
}

/// What a run produced.
#[derive(Clone, Debug, Default)]
pub struct DhtOutcome {
    pub records: Vec<LookupRecord>,
    /// Events handled (datagrams delivered or dropped, timers, actions).
    pub events: u64,
    pub datagrams: u64,
    /// Datagrams addressed to nodes that had left.
    pub to_dead: u64,
    pub departures: u64,
    /// Lookups lost because the node running them left.
    pub abandoned: u64,
    /// Virtual time at the end, microseconds.
    pub end_us: u64,
}

impl DhtOutcome {
    /// (messages, round trips) of the lookups of `kind` in a phase.
    pub fn of(&self, kind: Kind, churn: bool) -> Vec<&LookupRecord> {
        self.records
            .iter()
            .filter(|r| r.kind == kind && r.churn == churn)
            .collect()
    }
}

/// A node's address: index i is 10.x.y.z with x.y.z = i + 1.
fn addr(i: u32) -> SocketAddr {
    let n = i + 1;
    SocketAddr::from((
        Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8),
        6881,
    ))
}

fn index(a: &SocketAddr) -> Option<u32> {
    match a {
        SocketAddr::V4(v4) => {
            let o = v4.ip().octets();
            let n = (u32::from(o[1]) << 16) | (u32::from(o[2]) << 8) | u32::from(o[3]);
            n.checked_sub(1)
        }
        SocketAddr::V6(_) => None,
    }
}

enum Ev {
    Deliver { from: u32, to: u32, bytes: Vec<u8> },
    Timer { node: u32 },
    Put { p: u32, churn: bool },
    Get { p: u32, churn: bool },
    Find { churn: bool },
    Depart,
}

struct Pending {
    kind: Kind,
    churn: bool,
    started: Instant,
    /// Put/get: the item's index.
    item: u32,
}

/// Bounds (inclusive) of the ids sharing the first `b` bits with `x`,
/// with bit `b` taken from `x` (`flip` false) or flipped.
fn prefix_range(x: &[u8; 20], b: usize, flip: bool) -> ([u8; 20], [u8; 20]) {
    let mut lo = *x;
    let (byte, bit) = (b / 8, 7 - (b % 8));
    if flip {
        lo[byte] ^= 1 << bit;
    }
    // Clear every bit after b.
    let keep: u8 = if bit == 0 { 0xff } else { !((1u8 << bit) - 1) };
    lo[byte] &= keep;
    let mut hi = lo;
    hi[byte] |= !keep;
    for i in byte + 1..20 {
        lo[i] = 0;
        hi[i] = 0xff;
    }
    (lo, hi)
}

/// The simulation of one DHT.
pub struct DhtSim {
    sc: DhtScenario,
    now: Instant,
    rng: Rng,
    nodes: Vec<Option<Dht>>,
    latency_us: Vec<u32>,
    timer_at: Vec<u64>,
    /// Live nodes, and each node's place in it.
    live: Vec<u32>,
    live_pos: Vec<u32>,
    queue: EventQueue<Ev>,
    lookups: BTreeMap<(u32, LookupId), Pending>,
    /// Items put: (target, value) by index.
    items: Vec<Option<(NodeId, Vec<u8>)>>,
    writers: Vec<u32>,
    /// Deliver at once (building the tables).
    instant: bool,
    out: DhtOutcome,
}

fn engine_instant(t: Instant) -> swarm_engine::Instant {
    swarm_engine::Instant(t.0)
}

impl DhtSim {
    pub fn new(sc: DhtScenario) -> Self {
        let mut rng = Rng::new(sc.seed ^ 0xd47_5eed);
        let n = sc.nodes;
        let mut sim = DhtSim {
            now: Instant(0),
            nodes: Vec::with_capacity(n),
            latency_us: Vec::with_capacity(n),
            timer_at: Vec::with_capacity(n),
            live: Vec::with_capacity(n),
            live_pos: Vec::with_capacity(n),
            queue: EventQueue::default(),
            lookups: BTreeMap::new(),
            items: Vec::new(),
            writers: Vec::new(),
            instant: true,
            out: DhtOutcome::default(),
            rng: Rng::new(rng.next_u64()),
            sc,
        };
        for _ in 0..n {
            sim.spawn();
        }
        sim
    }

    /// A new node (not yet in anyone's table).
    fn spawn(&mut self) -> u32 {
        let i = self.nodes.len() as u32;
        let seed = self.rng.next_u64();
        self.nodes
            .push(Some(Dht::new(DhtConfig::default(), None, seed, self.now)));
        let (lo, hi) = self.sc.latency_ms;
        let lat = lo * 1000 + self.rng.below((hi.saturating_sub(lo)) * 1000 + 1);
        self.latency_us.push(lat as u32);
        self.timer_at.push(u64::MAX);
        self.live_pos.push(self.live.len() as u32);
        self.live.push(i);
        self.schedule_timer(i);
        i
    }

    fn kill(&mut self, i: u32) {
        self.nodes[i as usize] = None;
        let pos = self.live_pos[i as usize] as usize;
        self.live.swap_remove(pos);
        if let Some(&moved) = self.live.get(pos) {
            self.live_pos[moved as usize] = pos as u32;
        }
        self.timer_at[i as usize] = u64::MAX;
        let gone: Vec<(u32, LookupId)> = self
            .lookups
            .range((i, LookupId(0))..=(i, LookupId(u64::MAX)))
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            self.lookups.remove(&k);
            self.out.abandoned += 1;
        }
    }

    fn random_live(&mut self) -> u32 {
        self.live[self.rng.below(self.live.len() as u64) as usize]
    }

    fn schedule_timer(&mut self, i: u32) {
        let Some(Some(n)) = self.nodes.get(i as usize) else {
            return;
        };
        if let Some(t) = n.poll_timeout()
            && t.0 < self.timer_at[i as usize]
        {
            self.timer_at[i as usize] = t.0;
            self.queue.push(engine_instant(t), Ev::Timer { node: i });
        }
    }

    /// Moves node `i`'s datagrams into the network and its finished
    /// lookups into the records.
    fn drain(&mut self, i: u32) {
        let Some(Some(node)) = self.nodes.get_mut(i as usize) else {
            return;
        };
        // No Vec per call: the fields used below are not `nodes`.
        while let Some((to, bytes)) = node.poll_transmit() {
            self.out.datagrams += 1;
            let Some(j) = index(&to) else { continue };
            if self.sc.loss > 0.0 && !self.instant {
                let r = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                if r < self.sc.loss {
                    continue;
                }
            }
            let delay = if self.instant {
                0
            } else {
                u64::from(self.latency_us[i as usize])
                    + self.latency_us.get(j as usize).map_or(0, |&l| u64::from(l))
            };
            self.queue.push(
                engine_instant(self.now + Duration(delay)),
                Ev::Deliver {
                    from: i,
                    to: j,
                    bytes,
                },
            );
        }
        let mut events = Vec::new();
        while let Some(e) = node.poll_event() {
            events.push(e);
        }
        for DhtEvent::LookupDone { id, outcome, stats } in events {
            let Some(p) = self.lookups.remove(&(i, id)) else {
                continue;
            };
            let ok = match (&outcome, p.kind) {
                (LookupOutcome::Put { stored, .. }, Kind::Put) => *stored > 0,
                (LookupOutcome::Item(Some(item)), Kind::Get) => self
                    .items
                    .get(p.item as usize)
                    .and_then(|x| x.as_ref())
                    .is_some_and(|(_, v)| *v == item.value),
                (LookupOutcome::Nodes(n), Kind::FindNode) => !n.is_empty(),
                _ => false,
            };
            self.out.records.push(LookupRecord {
                kind: p.kind,
                churn: p.churn,
                ok,
                messages: stats.messages,
                round_trips: stats.round_trips,
                duration_us: self.now.since(p.started).0,
            });
        }
        self.schedule_timer(i);
    }

    /// Handles events up to `until`.
    fn run_until(&mut self, until: Instant, progress: &mut dyn FnMut(f64)) {
        let end = until.0.max(1) as f64;
        while let Some(t) = self.queue.peek_time() {
            if t.0 > until.0 {
                break;
            }
            let Some((at, ev)) = self.queue.pop() else {
                break;
            };
            self.now = Instant(at.0);
            self.out.events += 1;
            if self.out.events.is_multiple_of(1 << 16) {
                progress(self.now.0 as f64 / end);
            }
            self.handle(ev);
        }
        self.now = self.now.max(until);
    }

    fn handle(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Deliver { from, to, bytes } => {
                match self.nodes.get_mut(to as usize) {
                    Some(Some(n)) => n.handle_datagram(now, addr(from), &bytes),
                    _ => {
                        self.out.to_dead += 1;
                        return;
                    }
                }
                self.drain(to);
            }
            Ev::Timer { node } => {
                if self.timer_at[node as usize] != now.0 {
                    return;
                }
                self.timer_at[node as usize] = u64::MAX;
                if let Some(Some(n)) = self.nodes.get_mut(node as usize) {
                    n.handle_timeout(now);
                }
                self.drain(node);
            }
            Ev::Put { p, churn } => {
                let w = self.random_live();
                let text = format!("item {p} of node {w}");
                let value = format!("{}:{text}", text.len()).into_bytes();
                let Some(Some(n)) = self.nodes.get_mut(w as usize) else {
                    return;
                };
                let Ok((id, target)) = n.put_immutable(now, value.clone()) else {
                    return;
                };
                if self.items.len() <= p as usize {
                    self.items.resize(p as usize + 1, None);
                    self.writers.resize(p as usize + 1, u32::MAX);
                }
                self.items[p as usize] = Some((target, value));
                self.writers[p as usize] = w;
                self.lookups.insert(
                    (w, id),
                    Pending {
                        kind: Kind::Put,
                        churn,
                        started: now,
                        item: p,
                    },
                );
                self.drain(w);
            }
            Ev::Get { p, churn } => {
                let Some(Some((target, _))) = self.items.get(p as usize).cloned() else {
                    return;
                };
                let mut r = self.random_live();
                if r == self.writers[p as usize] && self.live.len() > 1 {
                    while r == self.writers[p as usize] {
                        r = self.random_live();
                    }
                }
                let Some(Some(n)) = self.nodes.get_mut(r as usize) else {
                    return;
                };
                let id = n.get_immutable(now, target);
                self.lookups.insert(
                    (r, id),
                    Pending {
                        kind: Kind::Get,
                        churn,
                        started: now,
                        item: p,
                    },
                );
                self.drain(r);
            }
            Ev::Find { churn } => {
                let r = self.random_live();
                let target = NodeId(self.rng.bytes());
                let Some(Some(n)) = self.nodes.get_mut(r as usize) else {
                    return;
                };
                let id = n.find_node(now, target);
                self.lookups.insert(
                    (r, id),
                    Pending {
                        kind: Kind::FindNode,
                        churn,
                        started: now,
                        item: u32::MAX,
                    },
                );
                self.drain(r);
            }
            Ev::Depart => {
                let Some(session) = self.sc.session else {
                    return;
                };
                let leaving = self.random_live();
                self.kill(leaving);
                self.out.departures += 1;
                let via = self.random_live();
                let j = self.spawn();
                if let Some(Some(n)) = self.nodes.get_mut(j as usize) {
                    n.bootstrap(now, &[addr(via)]);
                }
                self.drain(j);
                // Poisson departures at rate N / session.
                let rate = self.live.len() as f64 / (session.0 as f64 / 1e6);
                let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let gap = -(1.0 - u).ln() / rate;
                self.queue.push(
                    engine_instant(now + Duration((gap * 1e6) as u64)),
                    Ev::Depart,
                );
            }
        }
    }

    /// Fills every node's table (see the module docs), at time 0.
    fn build_tables(&mut self, progress: &mut dyn FnMut(f64)) {
        let mut ids: Vec<([u8; 20], u32)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (n.id().0, i as u32)))
            .collect();
        ids.sort_unstable();
        let count = |lo: &[u8; 20], hi: &[u8; 20]| {
            let a = ids.partition_point(|(x, _)| x < lo);
            let b = ids.partition_point(|(x, _)| x <= hi);
            (a, b)
        };
        let total = ids.len();
        for (done, &(own, i)) in ids.iter().enumerate() {
            let mut contacts = Vec::new();
            for b in 0..160 {
                let (slo, shi) = prefix_range(&own, b, false);
                let (sa, sb) = count(&slo, &shi);
                let (lo, hi) = prefix_range(&own, b, true);
                let (a, z) = count(&lo, &hi);
                let m = z - a;
                if m <= swarm_dht::table::K {
                    contacts.extend(a..z);
                } else {
                    let mut picked: Vec<usize> = Vec::new();
                    while picked.len() < swarm_dht::table::K {
                        let x = a + self.rng.below(m as u64) as usize;
                        if !picked.contains(&x) {
                            picked.push(x);
                        }
                    }
                    contacts.extend(picked);
                }
                if sb - sa <= 1 {
                    break;
                }
            }
            let infos: Vec<swarm_dht::NodeInfo> = contacts
                .into_iter()
                .map(|x| swarm_dht::NodeInfo {
                    id: NodeId(ids[x].0),
                    addr: addr(ids[x].1),
                })
                .collect();
            if let Some(Some(n)) = self.nodes.get_mut(i as usize) {
                n.add_nodes(self.now, &infos);
            }
            self.drain(i);
            let now = self.now;
            self.run_until(now, &mut |_| {});
            if done % 1024 == 0 {
                progress(done as f64 / total as f64);
            }
        }
    }

    /// Runs the scenario: tables, the lookups without churn, then (with a
    /// session time) churn, a warm-up and the lookups under churn.
    pub fn run(mut self, mut progress: impl FnMut(f64)) -> DhtOutcome {
        let churn_phase = self.sc.session.is_some();
        let share = if churn_phase { 0.25 } else { 0.5 };
        self.build_tables(&mut |f| progress(f * share));
        self.instant = false;
        let l = self.sc.lookups as u32;
        let spacing = Duration::from_millis(250);
        let read_after = Duration::from_secs(30);
        let phase_len = Duration(spacing.0 * u64::from(l) + read_after.0 + 60_000_000);
        let start = Instant(1_000_000);
        self.schedule_phase(start, 0, false);
        let end_a = start + phase_len;
        self.run_until(end_a, &mut |f| progress(share + f * share));
        if churn_phase {
            self.queue.push(engine_instant(self.now), Ev::Depart);
            let start_b = self.now + self.sc.warmup;
            self.schedule_phase(start_b, l, true);
            let end_b = start_b + phase_len;
            let from = self.now.0 as f64;
            let span = (end_b.0 as f64 - from).max(1.0);
            self.run_until(end_b, &mut |f| {
                let t = f * end_b.0 as f64;
                progress(0.5 + 0.5 * ((t - from) / span).clamp(0.0, 1.0))
            });
        }
        self.out.end_us = self.now.0;
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        self.out
    }

    fn schedule_phase(&mut self, start: Instant, first: u32, churn: bool) {
        let spacing = Duration::from_millis(250);
        let read_after = Duration::from_secs(30);
        for k in 0..self.sc.lookups as u32 {
            let at = start + Duration(spacing.0 * u64::from(k));
            let p = first + k;
            self.queue.push(engine_instant(at), Ev::Put { p, churn });
            self.queue.push(
                engine_instant(at + Duration(spacing.0 / 2)),
                Ev::Find { churn },
            );
            self.queue
                .push(engine_instant(at + read_after), Ev::Get { p, churn });
        }
    }

    /// Checks every live engine's invariants.
    pub fn check_invariants(&self) {
        for n in self.nodes.iter().flatten() {
            n.check_invariants();
        }
    }
}

/// Runs one DHT scenario.
pub fn run(sc: DhtScenario, progress: impl FnMut(f64)) -> DhtOutcome {
    DhtSim::new(sc).run(progress)
}

/// The value at quantile `q` of `v` (sorted here).
pub fn percentile(v: &mut [u32], q: f64) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v.get(i).copied()
}

/// The DHT sizes: 1,000, 3,000, 10,000, … up to `max` (and `min`).
pub fn dht_sizes(min: usize, max: usize) -> Vec<usize> {
    let mut v: Vec<usize> = [1000, 3000, 10_000, 30_000, 100_000, 300_000, 1_000_000]
        .into_iter()
        .filter(|&n| n > min && n < max)
        .collect();
    v.insert(0, min.max(2));
    if max > min {
        v.push(max);
    }
    v
}

/// `swarm sim dht`: lookups against N, without churn and under churn.
pub fn experiment(base: &DhtScenario, sizes: &[usize], progress: Progress<'_>) -> Report {
    let mut csv = String::from(
        "nodes,churn,lookup,count,ok,messages_median,messages_p95,round_trips_median,round_trips_p95,time_median_ms,departures\n",
    );
    let mut msg_series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut rtt_series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let runs = sizes.len();
    for (r, &n) in sizes.iter().enumerate() {
        let sc = DhtScenario {
            nodes: n,
            ..base.clone()
        };
        let out = run(sc, |f| progress(r, runs, f));
        progress(r + 1, runs, 0.0);
        let phases: &[bool] = if base.session.is_some() {
            &[false, true]
        } else {
            &[false]
        };
        for &churn in phases {
            for (kind, name) in [(Kind::Get, "get"), (Kind::FindNode, "find_node")] {
                let recs = out.of(kind, churn);
                let ok = recs.iter().filter(|r| r.ok).count();
                let mut m: Vec<u32> = recs.iter().map(|r| r.messages).collect();
                let mut t: Vec<u32> = recs.iter().map(|r| r.round_trips).collect();
                let mut ms: Vec<u32> = recs.iter().map(|r| (r.duration_us / 1000) as u32).collect();
                let (m50, m95) = (percentile(&mut m, 0.5), percentile(&mut m, 0.95));
                let (t50, t95) = (percentile(&mut t, 0.5), percentile(&mut t, 0.95));
                let f = |x: Option<u32>| x.map_or(String::new(), |v| v.to_string());
                let _ = writeln!(
                    csv,
                    "{n},{},{name},{},{ok},{},{},{},{},{},{}",
                    u8::from(churn),
                    recs.len(),
                    f(m50),
                    f(m95),
                    f(t50),
                    f(t95),
                    f(percentile(&mut ms, 0.5)),
                    if churn { out.departures } else { 0 }
                );
                let label = format!("{name}{}", if churn { ", churn" } else { "" });
                for (q, v) in [("median", m50), ("p95", m95)] {
                    if let Some(v) = v {
                        msg_series
                            .entry(format!("{label}, {q}"))
                            .or_default()
                            .push((n as f64, f64::from(v)));
                    }
                }
                for (q, v) in [("median", t50), ("p95", t95)] {
                    if let Some(v) = v {
                        rtt_series
                            .entry(format!("{label}, {q}"))
                            .or_default()
                            .push((n as f64, f64::from(v)));
                    }
                }
            }
        }
    }
    let churn_text = base.session.map_or("no churn".to_string(), |s| {
        format!("and churn (mean session {} min)", s.0 / 60_000_000)
    });
    let series = |m: BTreeMap<String, Vec<(f64, f64)>>| {
        m.into_iter()
            .map(|(name, points)| Series {
                bound: name.contains("p95"),
                name,
                points,
            })
            .collect()
    };
    let messages = Chart {
        title: format!("DHT lookup cost against N, without {churn_text}"),
        x_label: "DHT nodes N (log scale)".into(),
        y_label: "queries sent per lookup (messages)".into(),
        log_x: true,
        log_y: false,
        series: series(msg_series),
    };
    let rtts = Chart {
        title: format!("DHT lookup round trips against N, without {churn_text}"),
        x_label: "DHT nodes N (log scale)".into(),
        y_label: "sequential round trips per lookup".into(),
        log_x: true,
        log_y: false,
        series: series(rtt_series),
    };
    Report {
        summary: csv.clone(),
        tables: vec![(String::new(), csv)],
        charts: vec![
            ("-messages".into(), messages),
            ("-round-trips".into(), rtts),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_back_to_indices() {
        for i in [0u32, 1, 255, 256, 70_000, 1_000_000] {
            assert_eq!(index(&addr(i)), Some(i));
        }
    }

    #[test]
    fn prefix_ranges() {
        let x = [0b1010_0000u8; 20];
        let (lo, hi) = prefix_range(&x, 0, true);
        assert_eq!(lo, [0; 20]);
        assert_eq!(hi[0], 0x7f);
        assert!(hi[1..].iter().all(|&b| b == 0xff));
        let (lo, hi) = prefix_range(&x, 2, false);
        assert_eq!(lo[0], 0b1010_0000);
        assert_eq!(hi[0], 0b1011_1111);
        let (lo, hi) = prefix_range(&x, 7, true);
        assert_eq!(lo[0], 0b1010_0001);
        assert_eq!(hi[0], 0b1010_0001);
        assert_eq!(lo[1], 0);
    }
}
