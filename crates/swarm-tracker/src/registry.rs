//! The swarm registry, sans-IO: who is in which swarm, and whom to hand out.
//!
//! Per info-hash a [`Swarm`] holds its peers, IPv4 and IPv6 apart (a peer is
//! handed peers of its own address family, as BEP 15 and opentracker do),
//! and within a family seeders and leechers apart, each in a dense `Vec`. A
//! `hashbrown::HashTable<u32>` indexes them by address (IP and port), as
//! opentracker and aquatic do: a peer is who answers at that address, so
//! nobody can stop or move another peer by copying its id (the IP is
//! authenticated by the TCP handshake or the UDP connection id), and a
//! client restarted with a new peer id replaces its old entry. Removal is `swap_remove` plus one index fix-up.
//!
//! Time (`now`) and randomness (a seed at construction) are inputs; the hash
//! tables use a hasher keyed from that seed (hash flooding needs the key),
//! so a run replays exactly from its seed.
//!
//! Invariants (also checked by [`Registry::check_invariants`]):
//! - every peer is in exactly one of its family's `seeders` / `leechers`,
//!   and the index maps its (IP, port) to exactly that position;
//! - no swarm is empty (the last peer leaving removes it, so `swarms_max`
//!   counts live swarms);
//! - `peers_len() <= peers_max`, `swarms_len() <= swarms_max`, every swarm
//!   family holds at most `swarm_peers_max` peers;
//! - the running totals equal the sums over the swarms.
//!
//! **Memory.** An IPv4 peer costs a 32-byte entry plus a 4-byte index slot
//! and its control byte (hash table at most 7/8 full), an IPv6 peer a 44-byte
//! entry: ~40 bytes at best, ~80 with `Vec` and table growth slack
//! (measured: see ARCHITECTURE.md). A swarm costs ~128 bytes plus its map
//! slot; its IPv6 set is boxed and allocated only for its first IPv6 peer.
//! At the limits ([`RegistryConfig::memory_bound_bytes`]) the registry holds
//! at most `swarms_max * SWARM_BYTES_MAX + peers_max * PEER_BYTES_MAX`.
//!
//! **Floods.** An announce that would add a peer or a swarm past a limit is
//! *refused* with a failure reason ([`Refusal`]); existing peers keep being
//! served and updated. Refusing, not evicting: eviction would let a flood of
//! random info-hashes or peer ids push out the real swarms; refusal only
//! delays newcomers until the flood's entries expire (`peer_timeout_s`).

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use foldhash::quality::FixedState;
use hashbrown::{HashMap, HashTable};
use swarm_engine::Instant;
use swarm_engine::rng::Rng;
use swarm_wire::metainfo::InfoHash;
use swarm_wire::tracker::Event;

/// Peers handed out when the client does not say (`numwant` absent).
pub const NUMWANT_DEFAULT: u32 = 50;
/// Most peers handed out in one response, whatever `numwant` says.
pub const NUMWANT_MAX: u32 = 200;
/// Default re-announce interval, seconds.
pub const INTERVAL_DEFAULT_S: u32 = 1800;
/// Most peers held in total by one registry, by default.
pub const PEERS_MAX_DEFAULT: usize = 4_000_000;
/// Most swarms (info-hashes) held by one registry, by default.
pub const SWARMS_MAX_DEFAULT: usize = 1_000_000;
/// Most peers of one address family in one swarm, by default.
pub const SWARM_PEERS_MAX_DEFAULT: usize = 1_000_000;
/// Upper bound of the bytes one peer costs (entry, index slot, growth slack),
/// for the stated memory bound. An IPv6 entry is 44 bytes, an index slot 5;
/// `Vec` and table growth at most double both.
pub const PEER_BYTES_MAX: usize = 2 * (44 + 5 * 8 / 7 + 1);
/// Upper bound of the bytes one swarm costs without its peers: its struct,
/// its boxed IPv6 set, its map slot (key, value, control byte, growth slack).
pub const SWARM_BYTES_MAX: usize = 2 * (20 + 104 + 1) + 104;

/// A peer's 20-byte id (BEP 3): the wire's own type.
pub use swarm_wire::PeerId;

/// The registry's limits and timings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Seconds a client should wait between regular announces.
    pub interval_s: u32,
    /// Seconds a client must wait at least between announces (HTTP `min interval`).
    pub min_interval_s: u32,
    /// A peer silent this long is expired (about 2 × interval).
    pub peer_timeout_s: u32,
    /// Peers handed out when the request does not say.
    pub numwant_default: u32,
    /// Most peers handed out in one response.
    pub numwant_max: u32,
    /// Most peers in the registry.
    pub peers_max: usize,
    /// Most swarms in the registry.
    pub swarms_max: usize,
    /// Most peers of one address family in one swarm.
    pub swarm_peers_max: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self::with_interval(INTERVAL_DEFAULT_S)
    }
}

impl RegistryConfig {
    /// Defaults for a given interval: `min interval` half of it, peers
    /// expire after two intervals.
    pub fn with_interval(interval_s: u32) -> Self {
        let interval_s = interval_s.max(1);
        RegistryConfig {
            interval_s,
            min_interval_s: (interval_s / 2).max(1),
            peer_timeout_s: interval_s.saturating_mul(2),
            numwant_default: NUMWANT_DEFAULT,
            numwant_max: NUMWANT_MAX,
            peers_max: PEERS_MAX_DEFAULT,
            swarms_max: SWARMS_MAX_DEFAULT,
            swarm_peers_max: SWARM_PEERS_MAX_DEFAULT,
        }
    }

    /// The most bytes a registry with these limits can hold (see the module docs).
    pub fn memory_bound_bytes(&self) -> usize {
        self.swarms_max
            .saturating_mul(SWARM_BYTES_MAX)
            .saturating_add(self.peers_max.saturating_mul(PEER_BYTES_MAX))
    }

    /// The same config for one of `shards` registries that split the load:
    /// the totals divided (rounded up), the per-swarm cap kept (a swarm
    /// lives in one shard).
    pub fn for_shard(&self, shards: usize) -> Self {
        let shards = shards.max(1);
        RegistryConfig {
            peers_max: self.peers_max.div_ceil(shards),
            swarms_max: self.swarms_max.div_ceil(shards),
            ..self.clone()
        }
    }
}

/// One announce, as the front end understood it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// The peer's address: the IP the tracker saw (or the trusted proxy
    /// header's) and the port the client gave.
    pub addr: SocketAddr,
    /// Bytes the peer still needs: 0 makes it a seeder.
    pub left: u64,
    pub event: Event,
    /// Peers wanted; `None` for the default.
    pub numwant: Option<u32>,
}

/// The numbers of an announce response (the peers go to [`AnnouncePeers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AnnounceReply {
    pub interval_s: u32,
    pub min_interval_s: u32,
    /// Seeders in the swarm (both families), after this announce.
    pub complete: u32,
    /// Leechers in the swarm (both families), after this announce.
    pub incomplete: u32,
    /// `completed` events seen (each peer counted once).
    pub downloaded: u32,
}

/// Why an announce was refused; its `Display` is the failure reason sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Port 0 cannot be connected to.
    #[error("invalid port 0")]
    PortZero,
    /// A new swarm would pass `swarms_max`: try again later.
    #[error("tracker full: too many torrents, try again later")]
    SwarmsFull,
    /// A new peer would pass `peers_max`: try again later.
    #[error("tracker full: too many peers, try again later")]
    PeersFull,
    /// A new peer would pass `swarm_peers_max` in its swarm.
    #[error("tracker full: this torrent has too many peers, try again later")]
    SwarmFull,
}

/// One torrent's counts, for scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SwarmCounts {
    pub complete: u32,
    pub incomplete: u32,
    pub downloaded: u32,
}

/// The peers an announce hands out, in compact form (BEP 23 / BEP 7 records:
/// 6 bytes for IPv4, 18 for IPv6, the asking peer's family), plus their peer
/// ids when asked for (HTTP's dictionary model). A buffer the caller reuses.
#[derive(Clone, Debug, Default)]
pub struct AnnouncePeers {
    v6: bool,
    compact: Vec<u8>,
    with_peer_ids: bool,
    peer_ids: Vec<PeerId>,
}

impl AnnouncePeers {
    /// A buffer; `with_peer_ids` also collects each peer's id.
    pub fn new(with_peer_ids: bool) -> Self {
        AnnouncePeers {
            with_peer_ids,
            ..Self::default()
        }
    }

    pub fn set_with_peer_ids(&mut self, with: bool) {
        self.with_peer_ids = with;
    }

    fn clear(&mut self, v6: bool) {
        self.v6 = v6;
        self.compact.clear();
        self.peer_ids.clear();
    }

    /// Whether the records are IPv6 (18 bytes) rather than IPv4 (6 bytes).
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// The compact records, back to back.
    pub fn compact(&self) -> &[u8] {
        &self.compact
    }

    /// Peer ids, one per record, if the buffer collects them.
    pub fn peer_ids(&self) -> &[PeerId] {
        &self.peer_ids
    }

    fn record_len(&self) -> usize {
        if self.v6 { 18 } else { 6 }
    }

    pub fn len(&self) -> usize {
        self.compact.len() / self.record_len()
    }

    pub fn is_empty(&self) -> bool {
        self.compact.is_empty()
    }

    /// The peers as socket addresses.
    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let v6 = self.v6;
        self.compact.chunks_exact(self.record_len()).map(move |r| {
            if v6 {
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&r[..16]);
                SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::from(ip)),
                    u16::from_be_bytes([r[16], r[17]]),
                )
            } else {
                SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(r[0], r[1], r[2], r[3])),
                    u16::from_be_bytes([r[4], r[5]]),
                )
            }
        })
    }
}

/// Counters since the registry started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryTotals {
    pub announces: u64,
    pub refused: u64,
    pub scrapes: u64,
    pub expired: u64,
}

/// Sizes, for logs, `/stats` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistrySizes {
    pub swarms: usize,
    pub seeders: usize,
    pub leechers: usize,
    pub peers_v6: usize,
}

/// The swarm registry of one tracker (or of one shard of it).
pub struct Registry {
    config: RegistryConfig,
    swarms: HashMap<InfoHash, Swarm, FixedState>,
    hasher: FixedState,
    rng: Rng,
    seeders: usize,
    leechers: usize,
    peers_v6: usize,
    totals: RegistryTotals,
}

impl Registry {
    /// An empty registry; `seed` drives every random choice and keys the hash tables.
    pub fn new(config: RegistryConfig, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let swarm_hasher = FixedState::with_seed(rng.next_u64());
        let hasher = FixedState::with_seed(rng.next_u64());
        Registry {
            config,
            swarms: HashMap::with_hasher(swarm_hasher),
            hasher,
            rng,
            seeders: 0,
            leechers: 0,
            peers_v6: 0,
            totals: RegistryTotals::default(),
        }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    pub fn peers_len(&self) -> usize {
        self.seeders + self.leechers
    }

    pub fn swarms_len(&self) -> usize {
        self.swarms.len()
    }

    pub fn sizes(&self) -> RegistrySizes {
        RegistrySizes {
            swarms: self.swarms.len(),
            seeders: self.seeders,
            leechers: self.leechers,
            peers_v6: self.peers_v6,
        }
    }

    pub fn totals(&self) -> RegistryTotals {
        self.totals
    }

    /// Registers an announce and writes the peers to hand out into `out`
    /// (cleared first). A `stopped` peer is removed at once and gets no
    /// peers. On a refusal the registry is unchanged.
    pub fn announce(
        &mut self,
        now: Instant,
        request: &Announce,
        out: &mut AnnouncePeers,
    ) -> Result<AnnounceReply, Refusal> {
        let now_s = seconds(now);
        let ip = request.addr.ip().to_canonical();
        out.clear(ip.is_ipv6());
        self.totals.announces += 1;
        if request.addr.port() == 0 {
            self.totals.refused += 1;
            return Err(Refusal::PortZero);
        }
        let stopped = request.event == Event::Stopped;
        let is_new_swarm = !self.swarms.contains_key(&request.info_hash);
        if is_new_swarm {
            if stopped {
                return Ok(self.reply(SwarmCounts::default()));
            }
            if self.swarms.len() >= self.config.swarms_max {
                self.totals.refused += 1;
                return Err(Refusal::SwarmsFull);
            }
            if self.peers_len() >= self.config.peers_max {
                self.totals.refused += 1;
                return Err(Refusal::PeersFull);
            }
        }
        let numwant = request
            .numwant
            .unwrap_or(self.config.numwant_default)
            .min(self.config.numwant_max) as usize;
        let limits = Limits {
            peers_full: self.peers_len() >= self.config.peers_max,
            swarm_peers_max: self.config.swarm_peers_max,
        };
        let peer = PeerInput {
            peer_id: request.peer_id,
            port: request.addr.port(),
            seeder: request.left == 0,
            event: request.event,
            now_s,
            numwant,
        };
        let swarm = self.swarms.entry(request.info_hash).or_default();
        let outcome = match ip {
            IpAddr::V4(v4) => {
                swarm
                    .v4
                    .announce(&self.hasher, &mut self.rng, v4.octets(), &peer, limits, out)
            }
            IpAddr::V6(v6) => swarm.v6.get_or_insert_with(Box::default).announce(
                &self.hasher,
                &mut self.rng,
                v6.octets(),
                &peer,
                limits,
                out,
            ),
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(refusal) => {
                if is_new_swarm {
                    self.swarms.remove(&request.info_hash);
                }
                self.totals.refused += 1;
                return Err(refusal);
            }
        };
        if outcome.completed {
            swarm.downloaded = swarm.downloaded.saturating_add(1);
        }
        self.seeders =
            (self.seeders + outcome.seeders_added).saturating_sub(outcome.seeders_removed);
        self.leechers =
            (self.leechers + outcome.leechers_added).saturating_sub(outcome.leechers_removed);
        if ip.is_ipv6() {
            self.peers_v6 = (self.peers_v6 + outcome.seeders_added + outcome.leechers_added)
                .saturating_sub(outcome.seeders_removed + outcome.leechers_removed);
        }
        let counts = swarm.counts();
        if swarm.is_empty() {
            self.swarms.remove(&request.info_hash);
        }
        Ok(self.reply(counts))
    }

    fn reply(&self, counts: SwarmCounts) -> AnnounceReply {
        AnnounceReply {
            interval_s: self.config.interval_s,
            min_interval_s: self.config.min_interval_s,
            complete: counts.complete,
            incomplete: counts.incomplete,
            downloaded: counts.downloaded,
        }
    }

    /// One torrent's counts (zeros for a torrent the registry does not know).
    pub fn scrape(&mut self, info_hash: &InfoHash) -> SwarmCounts {
        self.totals.scrapes += 1;
        self.swarms
            .get(info_hash)
            .map(Swarm::counts)
            .unwrap_or_default()
    }

    /// Removes every peer silent for more than `peer_timeout_s`, and the
    /// swarms left empty. Returns how many peers went. O(peers): the driver
    /// calls it every few tens of seconds, not per announce.
    pub fn expire(&mut self, now: Instant) -> usize {
        let deadline = seconds(now).saturating_sub(self.config.peer_timeout_s);
        let hasher = &self.hasher;
        let mut removed = Removed::default();
        self.swarms.retain(|_, swarm| {
            swarm.v4.expire(hasher, deadline, &mut removed, false);
            if let Some(v6) = swarm.v6.as_mut() {
                v6.expire(hasher, deadline, &mut removed, true);
                if v6.is_empty() {
                    swarm.v6 = None;
                }
            }
            !swarm.is_empty()
        });
        self.seeders -= removed.seeders;
        self.leechers -= removed.leechers;
        self.peers_v6 -= removed.v6;
        let gone = removed.seeders + removed.leechers;
        self.totals.expired += gone as u64;
        gone
    }

    /// An estimate of the bytes the registry holds (capacities, not lengths).
    pub fn memory_bytes(&self) -> usize {
        let map = self.swarms.capacity() * (size_of::<(InfoHash, Swarm)>() + 1);
        let sets: usize = self
            .swarms
            .values()
            .map(|s| {
                s.v4.memory_bytes()
                    + s.v6
                        .as_ref()
                        .map_or(0, |v6| v6.memory_bytes() + size_of::<PeerSet<V6>>())
            })
            .sum();
        map + sets
    }

    /// Checks every invariant of the module docs; panics on a violation.
    /// O(peers): for tests and the simulator.
    pub fn check_invariants(&self) {
        let (mut seeders, mut leechers, mut v6) = (0, 0, 0);
        assert!(
            self.swarms.len() <= self.config.swarms_max,
            "swarms over swarms_max"
        );
        for (hash, swarm) in &self.swarms {
            assert!(!swarm.is_empty(), "empty swarm {hash} kept");
            swarm.v4.check(&self.hasher, self.config.swarm_peers_max);
            seeders += swarm.v4.seeders.len();
            leechers += swarm.v4.leechers.len();
            if let Some(set) = &swarm.v6 {
                assert!(!set.is_empty(), "empty IPv6 set kept");
                set.check(&self.hasher, self.config.swarm_peers_max);
                seeders += set.seeders.len();
                leechers += set.leechers.len();
                v6 += set.len();
            }
        }
        assert_eq!(seeders, self.seeders, "seeder total");
        assert_eq!(leechers, self.leechers, "leecher total");
        assert_eq!(v6, self.peers_v6, "IPv6 total");
        assert!(
            self.peers_len() <= self.config.peers_max,
            "peers over peers_max"
        );
    }
}

/// The registry's clock: whole seconds since the driver's epoch (entries
/// store `u32` seconds: 136 years).
fn seconds(now: Instant) -> u32 {
    u32::try_from(now.0 / 1_000_000).unwrap_or(u32::MAX)
}

#[derive(Default)]
struct Swarm {
    v4: PeerSet<V4>,
    /// Boxed: most swarms never see an IPv6 peer.
    v6: Option<Box<PeerSet<V6>>>,
    downloaded: u32,
}

impl Swarm {
    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.as_ref().is_none_or(|s| s.is_empty())
    }

    fn counts(&self) -> SwarmCounts {
        let (s6, l6) = self
            .v6
            .as_ref()
            .map_or((0, 0), |s| (s.seeders.len(), s.leechers.len()));
        SwarmCounts {
            complete: count(self.v4.seeders.len() + s6),
            incomplete: count(self.v4.leechers.len() + l6),
            downloaded: self.downloaded,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An address family: its IP bytes and compact record.
trait Family {
    type Ip: Copy + Eq + std::hash::Hash + std::fmt::Debug;
    fn write_compact(ip: &Self::Ip, port: u16, out: &mut Vec<u8>);
}

#[derive(Default)]
struct V4;
#[derive(Default)]
struct V6;

impl Family for V4 {
    type Ip = [u8; 4];
    fn write_compact(ip: &[u8; 4], port: u16, out: &mut Vec<u8>) {
        out.extend_from_slice(ip);
        out.extend_from_slice(&port.to_be_bytes());
    }
}

impl Family for V6 {
    type Ip = [u8; 16];
    fn write_compact(ip: &[u8; 16], port: u16, out: &mut Vec<u8>) {
        out.extend_from_slice(ip);
        out.extend_from_slice(&port.to_be_bytes());
    }
}

/// One peer: 32 bytes for IPv4, 44 for IPv6.
struct Entry<F: Family> {
    peer_id: PeerId,
    ip: F::Ip,
    port: u16,
    /// A `completed` event was counted for this peer.
    completed: bool,
    last_seen_s: u32,
}

impl<F: Family> Entry<F> {
    /// Records a fresh announce; true if it is the peer's first `completed`.
    fn touch(&mut self, peer: &PeerInput) -> bool {
        // A client restarted on the same address may come with a new id.
        self.peer_id = peer.peer_id;
        self.last_seen_s = peer.now_s;
        let first_completion = peer.event == Event::Completed && !self.completed;
        self.completed |= first_completion;
        first_completion
    }
}

/// A slot in the index: position in `seeders` (low bit 1) or `leechers` (0).
type Slot = u32;
const SEEDER_BIT: Slot = 1;

fn slot(index: usize, seeder: bool) -> Slot {
    // Positions stay below 2^31: swarm_peers_max is far below it.
    ((index as Slot) << 1) | Slot::from(seeder)
}

fn slot_parts(slot: Slot) -> (usize, bool) {
    ((slot >> 1) as usize, slot & SEEDER_BIT != 0)
}

struct PeerSet<F: Family> {
    seeders: Vec<Entry<F>>,
    leechers: Vec<Entry<F>>,
    index: HashTable<Slot>,
}

impl<F: Family> Default for PeerSet<F> {
    fn default() -> Self {
        PeerSet {
            seeders: Vec::new(),
            leechers: Vec::new(),
            index: HashTable::new(),
        }
    }
}

/// What the registry knows of the announcing peer.
struct PeerInput {
    peer_id: PeerId,
    port: u16,
    seeder: bool,
    event: Event,
    now_s: u32,
    numwant: usize,
}

#[derive(Clone, Copy)]
struct Limits {
    peers_full: bool,
    swarm_peers_max: usize,
}

#[derive(Default)]
struct Outcome {
    seeders_added: usize,
    seeders_removed: usize,
    leechers_added: usize,
    leechers_removed: usize,
    /// Count one more download in the swarm.
    completed: bool,
}

#[derive(Default)]
struct Removed {
    seeders: usize,
    leechers: usize,
    v6: usize,
}

fn key_hash<I: std::hash::Hash>(hasher: &FixedState, ip: &I, port: u16) -> u64 {
    hasher.hash_one((ip, port))
}

impl<F: Family> PeerSet<F> {
    fn len(&self) -> usize {
        self.seeders.len() + self.leechers.len()
    }

    fn is_empty(&self) -> bool {
        self.seeders.is_empty() && self.leechers.is_empty()
    }

    fn memory_bytes(&self) -> usize {
        (self.seeders.capacity() + self.leechers.capacity()) * size_of::<Entry<F>>()
            + self.index.capacity() * (size_of::<Slot>() + 1)
    }

    fn entry(&self, slot: Slot) -> &Entry<F> {
        let (i, seeder) = slot_parts(slot);
        if seeder {
            &self.seeders[i]
        } else {
            &self.leechers[i]
        }
    }

    fn find(&self, hash: u64, ip: &F::Ip, port: u16) -> Option<Slot> {
        let (seeders, leechers) = (&self.seeders, &self.leechers);
        self.index
            .find(hash, |&s| {
                let (i, seeder) = slot_parts(s);
                let e = if seeder { &seeders[i] } else { &leechers[i] };
                e.ip == *ip && e.port == port
            })
            .copied()
    }

    /// Pushes `entry` to its list and indexes it; returns its slot.
    fn insert(&mut self, hasher: &FixedState, hash: u64, entry: Entry<F>, seeder: bool) -> Slot {
        let list = if seeder {
            &mut self.seeders
        } else {
            &mut self.leechers
        };
        let s = slot(list.len(), seeder);
        list.push(entry);
        let (seeders, leechers) = (&self.seeders, &self.leechers);
        self.index.insert_unique(hash, s, |&s| {
            let (i, seeder) = slot_parts(s);
            let e = if seeder { &seeders[i] } else { &leechers[i] };
            key_hash(hasher, &e.ip, e.port)
        });
        s
    }

    /// Removes the peer at `s` (its index entry and list position; the
    /// list's last peer moves into the gap and is re-indexed).
    fn remove(&mut self, hasher: &FixedState, s: Slot) -> Entry<F> {
        let (i, seeder) = slot_parts(s);
        let hash = {
            let e = self.entry(s);
            key_hash(hasher, &e.ip, e.port)
        };
        if let Ok(found) = self.index.find_entry(hash, |&v| v == s) {
            found.remove();
        }
        let list = if seeder {
            &mut self.seeders
        } else {
            &mut self.leechers
        };
        let entry = list.swap_remove(i);
        if i < list.len() {
            let moved = &list[i];
            let moved_hash = key_hash(hasher, &moved.ip, moved.port);
            let old = slot(list.len(), seeder);
            if let Some(v) = self.index.find_mut(moved_hash, |&v| v == old) {
                *v = s;
            }
        }
        entry
    }

    fn announce(
        &mut self,
        hasher: &FixedState,
        rng: &mut Rng,
        ip: F::Ip,
        peer: &PeerInput,
        limits: Limits,
        out: &mut AnnouncePeers,
    ) -> Result<Outcome, Refusal> {
        let hash = key_hash(hasher, &ip, peer.port);
        let found = self.find(hash, &ip, peer.port);
        let mut outcome = Outcome::default();
        let completed_event = peer.event == Event::Completed;
        let me = match (found, peer.event) {
            (Some(s), Event::Stopped) => {
                self.remove(hasher, s);
                if slot_parts(s).1 {
                    outcome.seeders_removed = 1;
                } else {
                    outcome.leechers_removed = 1;
                }
                return Ok(outcome);
            }
            (None, Event::Stopped) => return Ok(outcome),
            (Some(s), _) => {
                let (i, was_seeder) = slot_parts(s);
                if was_seeder == peer.seeder {
                    let list = if was_seeder {
                        &mut self.seeders
                    } else {
                        &mut self.leechers
                    };
                    outcome.completed = list[i].touch(peer);
                    s
                } else {
                    // Became a seeder (or, rarely, a leecher again): move lists.
                    let mut entry = self.remove(hasher, s);
                    outcome.completed = entry.touch(peer);
                    if was_seeder {
                        outcome.seeders_removed = 1;
                        outcome.leechers_added = 1;
                    } else {
                        outcome.leechers_removed = 1;
                        outcome.seeders_added = 1;
                    }
                    self.insert(hasher, hash, entry, peer.seeder)
                }
            }
            (None, _) => {
                if limits.peers_full {
                    return Err(Refusal::PeersFull);
                }
                if self.len() >= limits.swarm_peers_max {
                    return Err(Refusal::SwarmFull);
                }
                let entry = Entry {
                    peer_id: peer.peer_id,
                    ip,
                    port: peer.port,
                    completed: completed_event,
                    last_seen_s: peer.now_s,
                };
                outcome.completed = completed_event;
                if peer.seeder {
                    outcome.seeders_added = 1;
                } else {
                    outcome.leechers_added = 1;
                }
                self.insert(hasher, hash, entry, peer.seeder)
            }
        };
        self.select(rng, me, peer.numwant, out);
        Ok(outcome)
    }

    /// Writes up to `numwant` peers other than `me` into `out`. A seeder
    /// gets leechers first (seeders only fill what is left); a leecher gets
    /// a random subset of everyone.
    fn select(&self, rng: &mut Rng, me: Slot, numwant: usize, out: &mut AnnouncePeers) {
        let (my_index, i_seed) = slot_parts(me);
        let (n_l, n_s) = (self.leechers.len(), self.seeders.len());
        let mut emit = |e: &Entry<F>| {
            F::write_compact(&e.ip, e.port, &mut out.compact);
            if out.with_peer_ids {
                out.peer_ids.push(e.peer_id);
            }
        };
        if i_seed {
            let from_leechers = numwant.min(n_l);
            sample(rng, n_l, from_leechers, None, |i| emit(&self.leechers[i]));
            let rest = numwant - from_leechers;
            sample(rng, n_s, rest, Some(my_index), |i| emit(&self.seeders[i]));
        } else {
            // Leechers at 0..n_l, seeders after them.
            sample(rng, n_l + n_s, numwant, Some(my_index), |i| {
                if i < n_l {
                    emit(&self.leechers[i]);
                } else {
                    emit(&self.seeders[i - n_l]);
                }
            });
        }
    }

    fn expire(&mut self, hasher: &FixedState, deadline_s: u32, removed: &mut Removed, v6: bool) {
        for seeder in [true, false] {
            let mut i = 0;
            loop {
                let list = if seeder {
                    &self.seeders
                } else {
                    &self.leechers
                };
                let Some(e) = list.get(i) else { break };
                if e.last_seen_s < deadline_s {
                    self.remove(hasher, slot(i, seeder));
                    if seeder {
                        removed.seeders += 1;
                    } else {
                        removed.leechers += 1;
                    }
                    if v6 {
                        removed.v6 += 1;
                    }
                } else {
                    i += 1;
                }
            }
        }
    }

    fn check(&self, hasher: &FixedState, swarm_peers_max: usize) {
        assert!(self.len() <= swarm_peers_max, "swarm over swarm_peers_max");
        assert_eq!(self.index.len(), self.len(), "index size != peers");
        for (seeder, list) in [(true, &self.seeders), (false, &self.leechers)] {
            for (i, e) in list.iter().enumerate() {
                let hash = key_hash(hasher, &e.ip, e.port);
                assert_eq!(
                    self.find(hash, &e.ip, e.port),
                    Some(slot(i, seeder)),
                    "index does not point at the peer"
                );
                assert_ne!(e.port, 0, "port 0 stored");
            }
        }
    }
}

/// Calls `emit` with `k` distinct indices of `0..n`, never `exclude`.
///
/// Fewer than all: the indices `start, start + step, start + 2·step, …`
/// (mod n) with a random start and a random step coprime to `n`, which visits
/// every index once in `n` steps. Each index is equally likely to be picked,
/// so over many announces every peer of a swarm is handed out; it costs O(k)
/// and no allocation, unlike a shuffle.
fn sample(rng: &mut Rng, n: usize, k: usize, exclude: Option<usize>, mut emit: impl FnMut(usize)) {
    let available = n - usize::from(exclude.is_some_and(|x| x < n));
    let k = k.min(available);
    if k == 0 {
        return;
    }
    let start = rng.below(n);
    let step = if k == available || n < 3 {
        1
    } else {
        coprime_step(rng, n)
    };
    let mut i = start;
    let mut emitted = 0;
    for _ in 0..n {
        if Some(i) != exclude {
            emit(i);
            emitted += 1;
            if emitted == k {
                return;
            }
        }
        i += step;
        if i >= n {
            i -= n;
        }
    }
}

/// A random step in `1..n` coprime to `n` (so stepping visits all of `0..n`);
/// 1 if 16 draws find none (never for real `n`: φ(n)/n > 1/16 up to huge n).
fn coprime_step(rng: &mut Rng, n: usize) -> usize {
    for _ in 0..16 {
        let s = 1 + rng.below(n - 1);
        if gcd(s, n) == 1 {
            return s;
        }
    }
    1
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_distinct_and_excludes() {
        let mut rng = Rng::new(1);
        for n in 0..40 {
            for k in 0..45 {
                for exclude in [None, Some(0), Some(n / 2)] {
                    let mut got = Vec::new();
                    sample(&mut rng, n, k, exclude, |i| got.push(i));
                    let available = n - usize::from(exclude.is_some_and(|x| x < n));
                    assert_eq!(got.len(), k.min(available), "n={n} k={k}");
                    let mut sorted = got.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    assert_eq!(sorted.len(), got.len(), "duplicates n={n} k={k}");
                    assert!(got.iter().all(|&i| i < n && Some(i) != exclude));
                }
            }
        }
    }

    #[test]
    fn entry_sizes_are_as_documented() {
        assert_eq!(size_of::<Entry<V4>>(), 32);
        assert_eq!(size_of::<Entry<V6>>(), 44);
        assert!(size_of::<Swarm>() <= 104, "{}", size_of::<Swarm>());
        assert!(size_of::<PeerSet<V6>>() <= 104);
    }
}
