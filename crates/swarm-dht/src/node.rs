//! The DHT node: routing tables, the queries it answers, the lookups it runs.
//!
//! Outputs are drained in this order by a driver after each input:
//! [`Dht::poll_transmit`] (datagrams), [`Dht::poll_event`] (finished
//! lookups), then [`Dht::poll_timeout`] (when to call
//! [`Dht::handle_timeout`] next).
//!
//! Bounded: at most [`DhtConfig::pending_max`] queries in flight,
//! [`DhtConfig::lookups_max`] lookups, [`DhtConfig::transmit_max`] queued
//! datagrams (more are dropped and counted), the rate limiter's map at
//! [`DhtConfig::rate_ips_max`] addresses, the store at its
//! [`StoreLimits`], the tables at 160 buckets of k nodes and k replacements.
//!
//! Invariants (`check_invariants`): every in-flight query has exactly one
//! deadline; every lookup in its search phase has no more than α queries in
//! flight; every query in flight that belongs to a lookup names a live
//! lookup or is ignored when it returns; the tables' and the store's own.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use ed25519_dalek::SigningKey;
use swarm_wire::InfoHash;
use swarm_wire::krpc::{
    Body, DecodeError, Message, MutablePut, NodeId, NodeInfo, Put, Query, QueryKind, Response,
    SALT_LEN_MAX, ShortBytes, Tid, VALUE_LEN_MAX, Want, code,
};

use crate::bep42;
use crate::item::{Item, Signed, immutable_target, mutable_target};
use crate::lookup::{Lookup, Next};
use crate::store::{PutRefused, Store, StoreLimits, Tokens};
use crate::table::{Admission, Contact, K, RoutingTable};
use crate::time::{Duration, Instant, Rng};

/// How often the node rotates tokens, expires stored data and checks for
/// stale buckets.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(10);
/// Peers put in one `get_peers` answer (50 IPv4 peers are 400 bytes).
pub const PEERS_PER_REPLY: usize = 50;
/// Peers one `get_peers` lookup collects.
pub const PEERS_FOUND_MAX: usize = 1000;
/// Nodes pinged from a saved table at start.
pub const LOAD_NODES_MAX: usize = 256;
/// A kept item is put again this often (BEP 44: items expire two hours
/// after their last put, so a re-put each hour survives one lost round).
pub const ITEM_REPUT_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// Items a node keeps alive at most ([`Dht::keep`]).
pub const KEPT_ITEMS_MAX: usize = 64;

#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// Nodes per bucket, and how many closest nodes a lookup converges on.
    pub k: usize,
    /// Queries in flight per lookup.
    pub alpha: usize,
    /// A query not answered in this time has failed.
    pub query_timeout: Duration,
    /// BEP 42: admit to the table only nodes whose id fits their IP (local
    /// addresses are exempt anyway).
    pub enforce_node_id: bool,
    /// BEP 43: answer no queries and ask others not to add us.
    pub read_only: bool,
    /// Address families this node can reach (its driver has a socket for).
    pub ipv4: bool,
    pub ipv6: bool,
    pub store: StoreLimits,
    /// Incoming queries per second per IP, sustained, and the burst allowed.
    pub rate_per_ip: u32,
    pub rate_burst: u32,
    pub rate_ips_max: usize,
    pub pending_max: usize,
    pub lookups_max: usize,
    pub transmit_max: usize,
    pub events_max: usize,
    /// Our client version (`v`): 2 letters, 2 bytes.
    pub version: [u8; 4],
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            k: K,
            alpha: 3,
            query_timeout: Duration::from_secs(2),
            enforce_node_id: true,
            read_only: false,
            ipv4: true,
            ipv6: false,
            store: StoreLimits::default(),
            rate_per_ip: 50,
            rate_burst: 100,
            rate_ips_max: 4096,
            pending_max: 2048,
            lookups_max: 128,
            transmit_max: 4096,
            events_max: 1024,
            version: *b"SW\x00\x01",
        }
    }
}

/// A lookup's handle, given when it starts and named by its [`DhtEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LookupId(pub u64);

/// What a finished lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupOutcome {
    /// `find_node` (bootstrap, refresh): the k closest nodes that answered.
    Nodes(Vec<NodeInfo>),
    /// `get_peers` (and `announce_peer` to the nodes with tokens).
    Peers {
        peers: Vec<SocketAddr>,
        announced: usize,
    },
    /// `get`: the item found (the highest sequence number for a mutable
    /// one), verified.
    Item(Option<Item>),
    /// `put`: the item's target and how many nodes acknowledged it.
    Put {
        target: NodeId,
        seq: Option<i64>,
        stored: usize,
        refused: usize,
    },
}

/// Counts of one lookup, for the scale figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Queries sent (search and write phases).
    pub messages: u32,
    pub responses: u32,
    /// Sequential round trips (search depth, plus one for a write phase).
    pub round_trips: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DhtEvent {
    LookupDone {
        id: LookupId,
        outcome: LookupOutcome,
        stats: LookupStats,
    },
}

/// Counters and sizes, for logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DhtStats {
    pub nodes_v4: usize,
    pub nodes_v6: usize,
    pub good: usize,
    pub buckets: usize,
    pub pending: usize,
    pub lookups: usize,
    pub torrents: usize,
    pub peers: usize,
    pub items: usize,
    pub queries_in: u64,
    pub responses_in: u64,
    pub errors_in: u64,
    pub queries_out: u64,
    pub malformed_in: u64,
    pub rate_limited: u64,
    pub dropped_out: u64,
    /// Our address as others see it (BEP 42 `ip`), last reported.
    pub external: Option<SocketAddr>,
}

#[derive(Clone, Debug)]
enum Purpose {
    /// A lookup's search query (`node`: `None` for a seed address).
    Search {
        lookup: LookupId,
        node: Option<NodeInfo>,
    },
    /// A lookup's write (announce_peer, put).
    Write { lookup: LookupId },
    /// A liveness or first-contact ping.
    Ping { node: Option<NodeInfo> },
}

#[derive(Clone, Debug)]
struct Pending {
    to: SocketAddr,
    deadline: Instant,
    purpose: Purpose,
}

#[derive(Clone, Debug)]
enum Task {
    /// `then_refresh`: a bootstrap, after which sparse buckets are filled.
    FindNode { then_refresh: bool },
    GetPeers {
        info_hash: InfoHash,
        announce: Option<(u16, bool)>,
        found: BTreeSet<SocketAddr>,
    },
    Get {
        mutable: Option<([u8; 32], Vec<u8>)>,
        best: Option<Item>,
    },
    Put {
        plan: PutPlan,
        /// Highest sequence number seen for a mutable target.
        seen: Option<i64>,
    },
}

#[derive(Clone, Debug)]
enum PutPlan {
    Immutable(Item),
    /// An item already signed (or immutable) put again as it is: a kept
    /// item's re-put.
    Again(Item),
    Mutable {
        key: Box<SigningKey>,
        salt: Vec<u8>,
        value: Vec<u8>,
        seq: Option<i64>,
        cas: Option<i64>,
    },
}

#[derive(Clone, Debug)]
enum Phase {
    Search,
    Write {
        outstanding: usize,
        acked: usize,
        refused: usize,
        sent: usize,
        seq: Option<i64>,
    },
}

#[derive(Clone, Debug)]
struct LookupState {
    lookup: Lookup,
    task: Task,
    phase: Phase,
    /// Internal lookups (bucket refresh) emit no event.
    internal: bool,
}

/// Per-IP allowance, in millionths of a query.
#[derive(Clone, Copy, Debug)]
struct Allowance {
    micro: u64,
    at: Instant,
}

/// A Mainline DHT node (see the crate docs).
pub struct Dht {
    config: DhtConfig,
    id: NodeId,
    rng: Rng,
    /// IPv4 and IPv6 tables side by side (BEP 32).
    table4: RoutingTable,
    table6: RoutingTable,
    store: Store,
    tokens: Tokens,
    pending: BTreeMap<u32, Pending>,
    deadlines: BTreeSet<(Instant, u32)>,
    next_tid: u32,
    lookups: BTreeMap<LookupId, LookupState>,
    next_lookup: u64,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<DhtEvent>,
    rate: BTreeMap<IpAddr, Allowance>,
    next_housekeeping: Instant,
    stats: DhtStats,
    /// Items put again every [`ITEM_REPUT_INTERVAL`] (target → item, next
    /// re-put); at most [`KEPT_ITEMS_MAX`].
    kept: BTreeMap<NodeId, (Item, Instant)>,
}

impl Dht {
    /// A node with id `id` (random from the seed if `None`).
    pub fn new(config: DhtConfig, id: Option<NodeId>, seed: u64, now: Instant) -> Self {
        let mut rng = Rng::new(seed);
        let id = id.unwrap_or_else(|| NodeId(rng.bytes()));
        let tokens = Tokens::new(now, &mut rng);
        let next_tid = rng.next_u64() as u32;
        Dht {
            store: Store::new(config.store),
            table4: RoutingTable::new(id, now),
            table6: RoutingTable::new(id, now),
            config,
            id,
            rng,
            tokens,
            pending: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            next_tid,
            lookups: BTreeMap::new(),
            next_lookup: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rate: BTreeMap::new(),
            next_housekeeping: now + HOUSEKEEPING_INTERVAL,
            stats: DhtStats::default(),
            kept: BTreeMap::new(),
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn config(&self) -> &DhtConfig {
        &self.config
    }

    pub fn table(&self, v6: bool) -> &RoutingTable {
        if v6 { &self.table6 } else { &self.table4 }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn stats(&self, now: Instant) -> DhtStats {
        let mut s = self.stats;
        s.nodes_v4 = self.table4.len();
        s.nodes_v6 = self.table6.len();
        s.good = self.table4.states(now)[0] + self.table6.states(now)[0];
        s.buckets = self.table4.buckets().len() + self.table6.buckets().len();
        s.pending = self.pending.len();
        s.lookups = self.lookups.len();
        s.torrents = self.store.torrents();
        s.peers = self.store.peer_count();
        s.items = self.store.items();
        s
    }

    /// The table's nodes, both families (to save at exit).
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.table4
            .nodes()
            .chain(self.table6.nodes())
            .map(|n| n.info)
            .collect()
    }

    // ---- commands ------------------------------------------------------

    /// Pings nodes (a saved table); those that answer join the table.
    pub fn add_nodes(&mut self, now: Instant, nodes: &[NodeInfo]) {
        for n in nodes.iter().take(LOAD_NODES_MAX) {
            if self.family_ok(&n.addr) {
                self.send_query(
                    now,
                    n.addr,
                    QueryKind::Ping,
                    Purpose::Ping { node: Some(*n) },
                );
            }
        }
    }

    /// Pings `addr`, whose id we do not know (BEP 5: the `port` message of a
    /// connected peer names its DHT node); if it answers it joins the table
    /// as any responding node does. Dropped if too many queries are in
    /// flight (`pending_max`).
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) {
        if self.family_ok(&addr) {
            self.send_query(now, addr, QueryKind::Ping, Purpose::Ping { node: None });
        }
    }

    /// Joins the DHT: a lookup for our own id, starting from `seeds`
    /// (addresses whose ids we do not know, such as routers) and the table.
    pub fn bootstrap(&mut self, now: Instant, seeds: &[SocketAddr]) -> LookupId {
        let seeds = seeds
            .iter()
            .copied()
            .filter(|a| self.family_ok(a))
            .collect();
        self.start(
            now,
            self.id,
            Task::FindNode { then_refresh: true },
            seeds,
            false,
        )
    }

    /// A `find_node` lookup for `target`.
    pub fn find_node(&mut self, now: Instant, target: NodeId) -> LookupId {
        self.start(
            now,
            target,
            Task::FindNode {
                then_refresh: false,
            },
            Vec::new(),
            false,
        )
    }

    /// A `get_peers` lookup; with `announce`, then `announce_peer` with our
    /// port (`None`: the implied port, the UDP source port) to the k
    /// closest nodes that gave tokens.
    pub fn get_peers(
        &mut self,
        now: Instant,
        info_hash: InfoHash,
        announce: Option<Option<u16>>,
    ) -> LookupId {
        let task = Task::GetPeers {
            info_hash,
            announce: announce.map(|p| (p.unwrap_or(0), p.is_none())),
            found: BTreeSet::new(),
        };
        self.start(now, info_hash.into(), task, Vec::new(), false)
    }

    /// A BEP 44 `get` of an immutable item.
    pub fn get_immutable(&mut self, now: Instant, target: NodeId) -> LookupId {
        let task = Task::Get {
            mutable: None,
            best: None,
        };
        self.start(now, target, task, Vec::new(), false)
    }

    /// A BEP 44 `get` of a mutable item.
    pub fn get_mutable(&mut self, now: Instant, key: [u8; 32], salt: &[u8]) -> LookupId {
        let target = mutable_target(&key, salt);
        let task = Task::Get {
            mutable: Some((key, salt.to_vec())),
            best: None,
        };
        self.start(now, target, task, Vec::new(), false)
    }

    /// A BEP 44 `put` of an immutable item (`value` bencoded); returns the
    /// lookup and the item's key.
    pub fn put_immutable(
        &mut self,
        now: Instant,
        value: Vec<u8>,
    ) -> Result<(LookupId, NodeId), crate::item::ItemError> {
        let item = Item::immutable(value)?;
        let target = item.target();
        let task = Task::Put {
            plan: PutPlan::Immutable(item),
            seen: None,
        };
        Ok((self.start(now, target, task, Vec::new(), false), target))
    }

    /// A BEP 44 `put` of a mutable item: a `get` first (for tokens and the
    /// current sequence number), then the item signed with `seq`, or the
    /// highest sequence number seen plus one (1 if none), put to the k
    /// closest nodes.
    pub fn put_mutable(
        &mut self,
        now: Instant,
        key: &SigningKey,
        salt: &[u8],
        value: Vec<u8>,
        seq: Option<i64>,
        cas: Option<i64>,
    ) -> Result<(LookupId, NodeId), crate::item::ItemError> {
        // Check size and salt now: the signing happens later.
        Item::sign(key, salt, seq.unwrap_or(1), value.clone())?;
        let target = mutable_target(&key.verifying_key().to_bytes(), salt);
        let task = Task::Put {
            plan: PutPlan::Mutable {
                key: Box::new(key.clone()),
                salt: salt.to_vec(),
                value,
                seq,
                cas,
            },
            seen: None,
        };
        Ok((self.start(now, target, task, Vec::new(), false), target))
    }

    /// Keeps `item` (one this node put: immutable, or mutable as signed)
    /// alive: it is put again, as it is, every [`ITEM_REPUT_INTERVAL`] from
    /// `now` until [`Dht::forget`]. False (nothing kept) when
    /// [`KEPT_ITEMS_MAX`] other items are kept already. A newer item of the
    /// same target replaces the one kept.
    pub fn keep(&mut self, now: Instant, item: Item) -> bool {
        let target = item.target();
        if !self.kept.contains_key(&target) && self.kept.len() >= KEPT_ITEMS_MAX {
            return false;
        }
        self.kept.insert(target, (item, now + ITEM_REPUT_INTERVAL));
        true
    }

    /// Stops re-putting the item of `target`.
    pub fn forget(&mut self, target: &NodeId) {
        self.kept.remove(target);
    }

    /// The targets of the items kept alive.
    pub fn kept(&self) -> impl Iterator<Item = &NodeId> {
        self.kept.keys()
    }

    /// Starts the re-puts that are due (internal lookups: no event).
    fn reput_due(&mut self, now: Instant) {
        let due: Vec<NodeId> = self
            .kept
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(t, _)| *t)
            .collect();
        for target in due {
            let Some((item, at)) = self.kept.get_mut(&target) else {
                continue;
            };
            *at = now + ITEM_REPUT_INTERVAL;
            let task = Task::Put {
                plan: PutPlan::Again(item.clone()),
                seen: None,
            };
            self.start(now, target, task, Vec::new(), true);
        }
    }

    /// Starts a refresh lookup (a `find_node` that refreshes no further) for
    /// each target: stale buckets' random ids, or sparse ones after bootstrap.
    fn refresh(&mut self, now: Instant, targets: Vec<NodeId>) {
        for target in targets {
            self.start(
                now,
                target,
                Task::FindNode {
                    then_refresh: false,
                },
                Vec::new(),
                true,
            );
        }
    }

    fn start(
        &mut self,
        now: Instant,
        target: NodeId,
        task: Task,
        seeds: Vec<SocketAddr>,
        internal: bool,
    ) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let k = self.config.k;
        let mut start = Vec::new();
        if self.config.ipv4 {
            start.extend(self.table4.closest(now, &target, k));
        }
        if self.config.ipv6 {
            start.extend(self.table6.closest(now, &target, k));
        }
        if self.lookups.len() >= self.config.lookups_max {
            // Refused: finish at once with nothing.
            let state = LookupState {
                lookup: Lookup::new(target, &[], Vec::new()),
                task,
                phase: Phase::Search,
                internal,
            };
            self.finish(id, state);
            return id;
        }
        self.lookups.insert(
            id,
            LookupState {
                lookup: Lookup::new(target, &start, seeds),
                task,
                phase: Phase::Search,
                internal,
            },
        );
        self.pump(now, id);
        id
    }

    // ---- inputs --------------------------------------------------------

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(DecodeError { query_tid, .. }) => {
                self.stats.malformed_in += 1;
                if let Some(tid) = query_tid
                    && !self.config.read_only
                    && self.allow(now, from.ip())
                {
                    self.reply(from, Message::error(tid, code::PROTOCOL, "Protocol Error"));
                }
                return;
            }
        };
        match msg.body {
            Body::Query(q) => {
                self.stats.queries_in += 1;
                if self.config.read_only || !self.allow(now, from.ip()) {
                    if !self.config.read_only {
                        self.stats.rate_limited += 1;
                    }
                    return;
                }
                if !msg.read_only {
                    self.heard_from(
                        now,
                        NodeInfo {
                            id: q.id,
                            addr: from,
                        },
                        Contact::Query,
                    );
                }
                self.answer(now, from, msg.tid, q);
            }
            Body::Response(r) => {
                self.stats.responses_in += 1;
                let Some(p) = self.take_pending(&msg.tid, from) else {
                    return;
                };
                if let Some(ip) = msg.ip {
                    self.stats.external = Some(ip);
                }
                let info = NodeInfo {
                    id: r.id,
                    addr: from,
                };
                if !msg.read_only {
                    self.heard_from(now, info, Contact::Response);
                }
                self.on_response(now, p.purpose, info, r);
            }
            Body::Error(_) => {
                self.stats.errors_in += 1;
                let Some(p) = self.take_pending(&msg.tid, from) else {
                    return;
                };
                // The node is alive but refused: a failure for the lookup,
                // not for the table.
                self.on_failure(now, p.purpose, false);
            }
        }
    }

    /// Time passed: queries time out, housekeeping runs.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, tid)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(p) = self.pending.remove(&tid) {
                self.on_failure(now, p.purpose, true);
            }
        }
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING_INTERVAL;
            self.tokens.rotate(now, &mut self.rng);
            self.store.expire(now);
            self.reput_due(now);
            // Forget idle rate entries (full allowance again).
            let full = u64::from(self.config.rate_burst) * 1_000_000;
            let per_us = u64::from(self.config.rate_per_ip);
            self.rate
                .retain(|_, a| a.micro + now.since(a.at).0.saturating_mul(per_us) < full);
            for v6 in [false, true] {
                if (if v6 {
                    self.config.ipv6
                } else {
                    self.config.ipv4
                }) && let Some(n) = (if v6 {
                    &mut self.table6
                } else {
                    &mut self.table4
                })
                .stalest_questionable(now)
                {
                    self.send_query(
                        now,
                        n.addr,
                        QueryKind::Ping,
                        Purpose::Ping { node: Some(n) },
                    );
                }
            }
            let mut stale = Vec::new();
            if self.config.ipv4 && !self.table4.is_empty() {
                stale.extend(self.table4.take_stale(now, &mut self.rng));
            }
            if self.config.ipv6 && !self.table6.is_empty() {
                stale.extend(self.table6.take_stale(now, &mut self.rng));
            }
            self.refresh(now, stale);
        }
    }

    // ---- outputs -------------------------------------------------------

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<DhtEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let q = self.deadlines.first().map(|d| d.0);
        Some(q.map_or(self.next_housekeeping, |q| q.min(self.next_housekeeping)))
    }

    // ---- internals -----------------------------------------------------

    fn family_ok(&self, addr: &SocketAddr) -> bool {
        if addr.is_ipv4() {
            self.config.ipv4
        } else {
            self.config.ipv6
        }
    }

    fn table_mut(&mut self, addr: &SocketAddr) -> &mut RoutingTable {
        if addr.is_ipv4() {
            &mut self.table4
        } else {
            &mut self.table6
        }
    }

    fn heard_from(&mut self, now: Instant, info: NodeInfo, contact: Contact) {
        if !self.family_ok(&info.addr) || info.addr.port() == 0 {
            return;
        }
        if self.config.enforce_node_id && !bep42::id_matches_ip(&info.id, info.addr.ip()) {
            return;
        }
        if let Admission::Waiting { ping: Some(stale) } =
            self.table_mut(&info.addr).heard_from(now, info, contact)
        {
            self.send_query(
                now,
                stale.addr,
                QueryKind::Ping,
                Purpose::Ping { node: Some(stale) },
            );
        }
    }

    /// Token-bucket admission of one query from `ip`.
    fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        let full = u64::from(self.config.rate_burst) * 1_000_000;
        if !self.rate.contains_key(&ip) && self.rate.len() >= self.config.rate_ips_max {
            // Evict one entry: deterministic, bounded.
            if let Some(k) = self.rate.keys().next().copied() {
                self.rate.remove(&k);
            }
        }
        let a = self.rate.entry(ip).or_insert(Allowance {
            micro: full,
            at: now,
        });
        let refill = now
            .since(a.at)
            .0
            .saturating_mul(u64::from(self.config.rate_per_ip));
        a.micro = (a.micro + refill).min(full);
        a.at = now;
        if a.micro >= 1_000_000 {
            a.micro -= 1_000_000;
            true
        } else {
            false
        }
    }

    fn push_transmit(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        if self.transmits.len() >= self.config.transmit_max {
            self.stats.dropped_out += 1;
            return;
        }
        self.transmits.push_back((to, bytes));
    }

    fn reply(&mut self, to: SocketAddr, mut msg: Message) {
        msg.version = ShortBytes::new(&self.config.version);
        if let Body::Response(_) = msg.body {
            msg.ip = Some(to);
        }
        let bytes = msg.encode();
        self.push_transmit(to, bytes);
    }

    fn want(&self) -> Want {
        if self.config.ipv4 && self.config.ipv6 {
            Want { v4: true, v6: true }
        } else {
            Want::default()
        }
    }

    /// Sends a query; false if too many are in flight (nothing sent).
    fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        kind: QueryKind,
        purpose: Purpose,
    ) -> bool {
        if self.pending.len() >= self.config.pending_max {
            self.stats.dropped_out += 1;
            return false;
        }
        let mut tid = self.next_tid;
        while self.pending.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        let Some(t) = ShortBytes::new(&tid.to_be_bytes()) else {
            return false;
        };
        let msg = Message {
            tid: t,
            version: ShortBytes::new(&self.config.version),
            ip: None,
            read_only: self.config.read_only,
            body: Body::Query(Query {
                id: self.id,
                kind,
                want: self.want(),
            }),
        };
        let deadline = now + self.config.query_timeout;
        self.pending.insert(
            tid,
            Pending {
                to,
                deadline,
                purpose,
            },
        );
        self.deadlines.insert((deadline, tid));
        self.stats.queries_out += 1;
        self.push_transmit(to, msg.encode());
        true
    }

    fn take_pending(&mut self, tid: &Tid, from: SocketAddr) -> Option<Pending> {
        let t: [u8; 4] = tid.as_slice().try_into().ok()?;
        let t = u32::from_be_bytes(t);
        let p = self.pending.get(&t)?;
        // Only the address we asked may answer (no spoofed answers from
        // elsewhere completing our queries).
        if p.to != from {
            return None;
        }
        let p = self.pending.remove(&t)?;
        self.deadlines.remove(&(p.deadline, t));
        Some(p)
    }

    fn closest_for(
        &self,
        now: Instant,
        target: &NodeId,
        want: Want,
        from: &SocketAddr,
    ) -> Vec<NodeInfo> {
        let (v4, v6) = if want.given() {
            (want.v4, want.v6)
        } else {
            (from.is_ipv4(), from.is_ipv6())
        };
        let mut out = Vec::new();
        if v4 {
            out.extend(self.table4.closest(now, target, self.config.k));
        }
        if v6 {
            out.extend(self.table6.closest(now, target, self.config.k));
        }
        out
    }

    fn answer(&mut self, now: Instant, from: SocketAddr, tid: Tid, q: Query) {
        let mut r = Response::new(self.id);
        match q.kind {
            QueryKind::Ping => {}
            QueryKind::FindNode { target } => {
                r.nodes = self.closest_for(now, &target, q.want, &from);
            }
            QueryKind::GetPeers { info_hash } => {
                r.token = Some(self.tokens.token(from.ip()));
                r.values =
                    self.store
                        .peers(&info_hash, from.is_ipv6(), PEERS_PER_REPLY, &mut self.rng);
                r.nodes = self.closest_for(now, &info_hash.into(), q.want, &from);
            }
            QueryKind::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => {
                if !self.tokens.valid(from.ip(), &token) {
                    self.reply(from, Message::error(tid, code::PROTOCOL, "bad token"));
                    return;
                }
                let port = if implied_port { from.port() } else { port };
                self.store
                    .announce(now, info_hash, SocketAddr::new(from.ip(), port));
            }
            QueryKind::Get { target, seq } => {
                r.token = Some(self.tokens.token(from.ip()));
                r.nodes = self.closest_for(now, &target, q.want, &from);
                if let Some(item) = self.store.item(&target) {
                    match &item.signed {
                        None => r.value = Some(item.value.clone()),
                        Some(s) => {
                            r.key = Some(s.key);
                            r.seq = Some(s.seq);
                            if seq.is_none_or(|want| s.seq > want) {
                                r.value = Some(item.value.clone());
                                r.sig = Some(s.sig);
                            }
                        }
                    }
                }
            }
            QueryKind::Put(put) => {
                if let Err(refused) = self.accept_put(now, from, put) {
                    self.reply(from, Message::error(tid, refused.code, refused.message));
                    return;
                }
            }
            QueryKind::Unknown { .. } => {
                self.reply(
                    from,
                    Message::error(tid, code::METHOD_UNKNOWN, "Method Unknown"),
                );
                return;
            }
        }
        self.reply(from, Message::response(tid, r));
    }

    fn accept_put(&mut self, now: Instant, from: SocketAddr, put: Put) -> Result<(), PutRefused> {
        let refused = |code, message| Err(PutRefused { code, message });
        if !self.tokens.valid(from.ip(), &put.token) {
            return refused(code::PROTOCOL, "bad token");
        }
        if put.value.len() > VALUE_LEN_MAX {
            return refused(code::MESSAGE_TOO_BIG, "message (v field) too big");
        }
        let (item, cas) = match put.mutable {
            None => (
                Item {
                    value: put.value,
                    signed: None,
                },
                None,
            ),
            Some(MutablePut {
                key,
                sig,
                salt,
                seq,
                cas,
            }) => {
                if salt.len() > SALT_LEN_MAX {
                    return refused(code::SALT_TOO_BIG, "salt (salt field) too big");
                }
                (
                    Item {
                        value: put.value,
                        signed: Some(Signed {
                            key,
                            sig,
                            salt,
                            seq,
                        }),
                    },
                    cas,
                )
            }
        };
        if item.verify().is_err() {
            return refused(code::INVALID_SIGNATURE, "invalid signature");
        }
        self.store.put(now, item, cas)
    }

    fn on_response(&mut self, now: Instant, purpose: Purpose, from: NodeInfo, r: Response) {
        match purpose {
            Purpose::Ping { .. } => {}
            Purpose::Search { lookup, node } => {
                let Some(st) = self.lookups.get_mut(&lookup) else {
                    return;
                };
                let target = st.lookup.target;
                let mut done = false;
                match &mut st.task {
                    Task::FindNode { .. } => {}
                    Task::GetPeers { found, .. } => {
                        for p in &r.values {
                            if found.len() < PEERS_FOUND_MAX && p.port() != 0 {
                                found.insert(*p);
                            }
                        }
                    }
                    Task::Get { mutable, best } => {
                        if let Some(item) = item_from(&r, &target, mutable.as_ref()) {
                            let newer = match (&best, &item.signed) {
                                (None, _) => true,
                                (Some(b), Some(s)) => {
                                    b.signed.as_ref().is_some_and(|bs| s.seq > bs.seq)
                                }
                                _ => false,
                            };
                            if newer {
                                *best = Some(item);
                            }
                            // An immutable item is the item: done.
                            done = mutable.is_none();
                        }
                    }
                    Task::Put { plan, seen } => {
                        if let PutPlan::Mutable { key, salt, .. } = plan {
                            let k = key.verifying_key().to_bytes();
                            let want = (k, salt.clone());
                            if let Some(item) = item_from(&r, &target, Some(&want))
                                && let Some(s) = item.signed
                            {
                                *seen = Some(seen.map_or(s.seq, |x: i64| x.max(s.seq)));
                            }
                        }
                    }
                }
                let nodes: Vec<NodeInfo> = r
                    .nodes
                    .iter()
                    .filter(|n| {
                        self_family_ok(&self.config, &n.addr)
                            && n.id != self.id
                            && n.addr.port() != 0
                    })
                    .copied()
                    .collect();
                let Some(st) = self.lookups.get_mut(&lookup) else {
                    return;
                };
                st.lookup.responded(from, node.is_none(), &nodes, r.token);
                if done {
                    if let Some(st) = self.lookups.remove(&lookup) {
                        self.finish(lookup, st);
                    }
                } else {
                    self.pump(now, lookup);
                }
            }
            Purpose::Write { lookup } => self.write_done(lookup, true),
        }
    }

    fn on_failure(&mut self, now: Instant, purpose: Purpose, timeout: bool) {
        match purpose {
            Purpose::Ping { node } => {
                if timeout && let Some(n) = node {
                    self.table_mut(&n.addr).failed(now, &n);
                }
            }
            Purpose::Search { lookup, node } => {
                if timeout && let Some(n) = node {
                    self.table_mut(&n.addr).failed(now, &n);
                }
                if let Some(st) = self.lookups.get_mut(&lookup) {
                    st.lookup.failed(node.as_ref());
                    self.pump(now, lookup);
                }
            }
            Purpose::Write { lookup } => self.write_done(lookup, false),
        }
    }

    fn write_done(&mut self, lookup: LookupId, ok: bool) {
        let Some(st) = self.lookups.get_mut(&lookup) else {
            return;
        };
        if let Phase::Write {
            outstanding,
            acked,
            refused,
            ..
        } = &mut st.phase
        {
            *outstanding -= 1;
            if ok {
                *acked += 1;
            } else {
                *refused += 1;
            }
            if *outstanding == 0
                && let Some(st) = self.lookups.remove(&lookup)
            {
                self.finish(lookup, st);
            }
        }
    }

    /// Sends a lookup's next queries; at convergence, moves on to its write
    /// phase or finishes it.
    fn pump(&mut self, now: Instant, id: LookupId) {
        let (k, alpha) = (self.config.k, self.config.alpha);
        loop {
            let Some(st) = self.lookups.get_mut(&id) else {
                return;
            };
            if !matches!(st.phase, Phase::Search) {
                return;
            }
            let target = st.lookup.target;
            let kind = match &st.task {
                Task::FindNode { .. } => QueryKind::FindNode { target },
                Task::GetPeers { info_hash, .. } => QueryKind::GetPeers {
                    info_hash: *info_hash,
                },
                Task::Get { .. } | Task::Put { .. } => QueryKind::Get { target, seq: None },
            };
            match st.lookup.next(k, alpha) {
                Next::Node(info) => {
                    if !self.send_query(
                        now,
                        info.addr,
                        kind,
                        Purpose::Search {
                            lookup: id,
                            node: Some(info),
                        },
                    ) && let Some(st) = self.lookups.get_mut(&id)
                    {
                        st.lookup.failed(Some(&info));
                    }
                }
                Next::Seed(addr) => {
                    if !self.send_query(
                        now,
                        addr,
                        kind,
                        Purpose::Search {
                            lookup: id,
                            node: None,
                        },
                    ) && let Some(st) = self.lookups.get_mut(&id)
                    {
                        st.lookup.failed(None);
                    }
                }
                Next::Wait => return,
                Next::Done => {
                    self.converged(now, id);
                    return;
                }
            }
        }
    }

    fn converged(&mut self, now: Instant, id: LookupId) {
        let Some(mut st) = self.lookups.remove(&id) else {
            return;
        };
        let k = self.config.k;
        let targets: Vec<(NodeInfo, Vec<u8>)> = st
            .lookup
            .closest_responded(k)
            .into_iter()
            .filter_map(|c| c.token.clone().map(|t| (c.info, t)))
            .collect();
        let mut writes: Vec<(SocketAddr, QueryKind)> = Vec::new();
        let mut seq_out = None;
        match &st.task {
            Task::GetPeers {
                info_hash,
                announce: Some((port, implied)),
                ..
            } => {
                for (n, token) in &targets {
                    writes.push((
                        n.addr,
                        QueryKind::AnnouncePeer {
                            info_hash: *info_hash,
                            port: *port,
                            implied_port: *implied,
                            token: token.clone(),
                        },
                    ));
                }
            }
            Task::Put { plan, seen } => {
                let item = match plan {
                    PutPlan::Immutable(item) | PutPlan::Again(item) => Some((item.clone(), None)),
                    PutPlan::Mutable {
                        key,
                        salt,
                        value,
                        seq,
                        cas,
                    } => {
                        let seq = seq.unwrap_or_else(|| seen.map_or(1, |s| s.saturating_add(1)));
                        seq_out = Some(seq);
                        Item::sign(key, salt, seq, value.clone())
                            .ok()
                            .map(|i| (i, *cas))
                    }
                };
                if let Some((item, cas)) = item {
                    for (n, token) in &targets {
                        writes.push((
                            n.addr,
                            QueryKind::Put(Put {
                                token: token.clone(),
                                value: item.value.clone(),
                                mutable: item.signed.as_ref().map(|s| MutablePut {
                                    key: s.key,
                                    sig: s.sig,
                                    salt: s.salt.clone(),
                                    seq: s.seq,
                                    cas,
                                }),
                            }),
                        ));
                    }
                }
            }
            _ => {}
        }
        if writes.is_empty() {
            if let Task::Put { .. } = st.task {
                st.phase = Phase::Write {
                    outstanding: 0,
                    acked: 0,
                    refused: 0,
                    sent: 0,
                    seq: seq_out,
                };
            }
            if let Task::FindNode { then_refresh: true } = st.task {
                let mut sparse = Vec::new();
                if self.config.ipv4 {
                    sparse.extend(self.table4.sparse(&mut self.rng));
                }
                if self.config.ipv6 {
                    sparse.extend(self.table6.sparse(&mut self.rng));
                }
                self.refresh(now, sparse);
            }
            self.finish(id, st);
            return;
        }
        let mut sent = 0;
        for (to, kind) in writes {
            if self.send_query(now, to, kind, Purpose::Write { lookup: id }) {
                sent += 1;
            }
        }
        st.phase = Phase::Write {
            outstanding: sent,
            acked: 0,
            refused: 0,
            sent,
            seq: seq_out,
        };
        if sent == 0 {
            self.finish(id, st);
        } else {
            self.lookups.insert(id, st);
        }
    }

    fn finish(&mut self, id: LookupId, st: LookupState) {
        if st.internal {
            return;
        }
        let (writes, acked, refused, seq) = match st.phase {
            Phase::Search => (0, 0, 0, None),
            Phase::Write {
                sent,
                acked,
                refused,
                seq,
                ..
            } => (sent, acked, refused, seq),
        };
        let stats = LookupStats {
            messages: st.lookup.queries + writes as u32,
            responses: st.lookup.responses + acked as u32,
            round_trips: st.lookup.round_trips() + u32::from(writes > 0),
        };
        let outcome = match st.task {
            Task::FindNode { .. } => LookupOutcome::Nodes(
                st.lookup
                    .closest_responded(self.config.k)
                    .into_iter()
                    .map(|c| c.info)
                    .collect(),
            ),
            Task::GetPeers { found, .. } => LookupOutcome::Peers {
                peers: found.into_iter().collect(),
                announced: acked,
            },
            Task::Get { best, .. } => LookupOutcome::Item(best),
            Task::Put { .. } => LookupOutcome::Put {
                target: st.lookup.target,
                seq,
                stored: acked,
                refused,
            },
        };
        if self.events.len() >= self.config.events_max {
            self.events.pop_front();
        }
        self.events
            .push_back(DhtEvent::LookupDone { id, outcome, stats });
    }

    pub fn check_invariants(&self) {
        assert!(self.kept.len() <= KEPT_ITEMS_MAX);
        self.table4.check_invariants();
        self.table6.check_invariants();
        self.store.check_invariants();
        assert_eq!(
            self.pending.len(),
            self.deadlines.len(),
            "a deadline per query"
        );
        for (d, t) in &self.deadlines {
            assert_eq!(self.pending.get(t).map(|p| p.deadline), Some(*d));
        }
        assert!(self.pending.len() <= self.config.pending_max);
        assert!(self.lookups.len() <= self.config.lookups_max);
        assert!(self.transmits.len() <= self.config.transmit_max);
        assert!(self.rate.len() <= self.config.rate_ips_max);
        for (id, st) in &self.lookups {
            st.lookup.check_invariants();
            if matches!(st.phase, Phase::Search) {
                assert!(
                    st.lookup.in_flight() <= self.config.alpha,
                    "lookup {id:?} over alpha"
                );
            }
        }
    }
}

fn self_family_ok(config: &DhtConfig, addr: &SocketAddr) -> bool {
    if addr.is_ipv4() {
        config.ipv4
    } else {
        config.ipv6
    }
}

/// The verified item in a `get` response, if it carries one for `target`.
fn item_from(r: &Response, target: &NodeId, mutable: Option<&([u8; 32], Vec<u8>)>) -> Option<Item> {
    let value = r.value.clone()?;
    let item = match mutable {
        None => {
            if immutable_target(&value) != *target {
                return None;
            }
            Item {
                value,
                signed: None,
            }
        }
        Some((key, salt)) => {
            if r.key.as_ref() != Some(key) {
                return None;
            }
            Item {
                value,
                signed: Some(Signed {
                    key: *key,
                    sig: r.sig?,
                    salt: salt.clone(),
                    seq: r.seq?,
                }),
            }
        }
    };
    (item.target() == *target && item.verify().is_ok()).then_some(item)
}
