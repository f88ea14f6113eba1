//! The endpoint: one per process, over all its torrents, sans-IO. It owns
//! the connection policy, as quinn-proto's `Endpoint` sits over its
//! `Connection`s: each [`crate::TorrentCore`] decides its own protocol, the
//! endpoint decides which connections exist.
//!
//! It keeps, by info-hash, the torrents and their *candidates* (addresses
//! from the peer sources: [`PeerSource`]), and by [`PeerKey`] every
//! connection, from the dial or accept to the close. It decides:
//! - whom to dial and when: a candidate is dialled when its back-off has
//!   passed and the caps allow (one whose turn comes while its torrent is
//!   full is parked until a connection of that torrent closes, and each
//!   close brings one parked candidate back, `full_retry_delay` later); a
//!   failed dial doubles its back-off (with jitter from the seeded RNG)
//!   up to `dial_backoff_max`, and after `dial_failures_max` failures the
//!   candidate is dropped (`--peer` and magnet `x.pe` ones excepted: the
//!   user named them);
//! - the caps: connections in all, per torrent, per IP address; dials in
//!   flight; incoming connections still in their handshake, each with a
//!   deadline (`handshake_timeout`; when they are all taken, a newcomer
//!   replaces the oldest);
//! - room for peers that connect to us: a torrent's own dials take at most
//!   `torrent_outgoing_percent` of its connection cap (see [`EndpointConfig`]);
//! - seeds: when the torrent seeds (every wanted piece is have:
//!   [`Endpoint::set_seeding`]) a connection to a peer that has every piece
//!   ([`Endpoint::handle_peer_seed`]) is of no use to either side: it is
//!   closed ([`Refusal::BothSeeds`]), and a dialled address that turned out
//!   to be a seed is not dialled again while we seed (libtorrent's
//!   `close_redundant_connections`, Transmission's "not if we're both seeds");
//! - the accept decision: an incoming connection is refused when a cap is
//!   reached or its address is banned, and its handshake when the
//!   info-hash is unknown or stopped, the peer id is ours, or the torrent
//!   is full;
//! - duplicates: two connections of one torrent to one peer id keep the one
//!   dialled by the side with the smaller peer id (both sides agree without
//!   talking); two in the same direction keep the older;
//! - bans: a banned IP's connections are closed and its candidates dropped;
//! - eviction: when an incoming handshake finds its torrent (or the
//!   process) full, the *idle* established connection with the oldest
//!   progress is closed ([`Refusal::Idle`]) to make room, so addresses
//!   that hold connections and do nothing, or reconnect after each drop,
//!   cannot keep a real peer out; with none idle, a newcomer whose BEP 40
//!   priority ([`priority`]) beats the torrent's lowest-priority connection
//!   takes its place ([`Refusal::LowerPriority`]; once our own address is
//!   known, [`Endpoint::set_our_addr`]), as libtorrent does, so the peers
//!   that come last to a swarm of full peers still get in.
//!
//! # Idle, defined
//! The driver reports *progress* with [`Endpoint::handle_progress`]`(now,
//! conn)`: call it when a payload block moved on the connection (either
//! way), and on each housekeeping tick for every connection where either
//! side is interested (we want its pieces or it wants ours: a choked but
//! interested leecher waiting for its turn is not idle). A connection is
//! idle when its last progress (or, if none, its handshake) is at least
//! `idle_timeout` old. Only idle connections are evicted, and only for a
//! newcomer's handshake: a full torrent with busy peers refuses newcomers
//! as before.
//!
//! # Driving it
//! Inputs take `now`: [`Endpoint::handle_peers`], [`Endpoint::handle_accept`],
//! [`Endpoint::handle_handshake`], [`Endpoint::handle_closed`],
//! [`Endpoint::ban`], [`Endpoint::handle_timeout`]; torrents come and go with
//! [`Endpoint::add_torrent`], [`Endpoint::stop_torrent`],
//! [`Endpoint::remove_torrent`]. After each, drain [`Endpoint::poll_action`]
//! (dial, close, announce) and call `handle_timeout` at
//! [`Endpoint::poll_timeout`]. Time and randomness are inputs: the same seed
//! and the same inputs give the same actions.
//!
//! # Invariants (checked by [`Endpoint::check_invariants`])
//! - Every connection belongs to at most one torrent, and is in that
//!   torrent's set iff it names the torrent; an incoming connection names
//!   none until its handshake is accepted.
//! - The counters (dials in flight, incoming handshakes, per-IP counts)
//!   equal what the connection table says; no cap is exceeded.
//! - A candidate with no connection is in the retry queue, or parked (its
//!   turn came while its torrent was full), not both; one with a
//!   connection is in neither; at most one connection per candidate
//!   address.
//! - One accepted connection per (torrent, peer id).
//!
//! # Memory
//! Bounded by the config: `torrents_max` torrents, `candidates_max` per
//! torrent (~100 bytes each with its queue or parked entry),
//! `connections_max` plus `handshakes_max` connections (~160 bytes each),
//! `bans_max` banned IPs.
//! An address list of any length is cut to the candidate bound as it is read.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::ids::{InfoHash, PeerId, PeerKey};
use crate::rng::Rng;
use crate::time::{Duration, Instant};

/// Where a candidate address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerSource {
    /// A tracker's announce response.
    Tracker,
    /// The user's `--peer`.
    Cli,
    /// It connected to us (its listen address is unknown: never dialled).
    Incoming,
    /// A DHT `get_peers` lookup (BEP 5).
    Dht,
    /// Peer exchange (BEP 11).
    Pex,
    /// A magnet link's `x.pe` (BEP 9).
    Magnet,
}

impl PeerSource {
    /// The user named these: they are retried for ever (capped back-off),
    /// never dropped for failing.
    fn is_pinned(self) -> bool {
        matches!(self, PeerSource::Cli | PeerSource::Magnet)
    }
}

/// The endpoint's caps and timings. `Default` gives values for a desktop
/// client (libtorrent's defaults are of the same order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Torrents at most (`add_torrent` refuses more).
    pub torrents_max: usize,
    /// Connections (dialling or established) in all.
    pub connections_max: usize,
    /// Connections per torrent (dialling or established).
    pub torrent_connections_max: usize,
    /// Connections (of any state, both directions) from one IP address.
    pub ip_connections_max: usize,
    /// Outgoing dials not yet handshaken.
    pub dials_max: usize,
    /// Incoming connections not yet handshaken: a separate cap, so a flood
    /// of silent sockets cannot take the slots of real peers.
    pub handshakes_max: usize,
    /// A connection (either direction) must finish its handshake within this.
    pub handshake_timeout: Duration,
    /// Candidate addresses kept per torrent.
    pub candidates_max: usize,
    /// Back-off after the first failed dial; doubles per failure.
    pub dial_backoff_base: Duration,
    pub dial_backoff_max: Duration,
    /// After this many failed dials in a row a candidate is dropped.
    pub dial_failures_max: u32,
    /// After an established connection closes, wait this long before
    /// dialling the address again.
    pub reconnect_delay: Duration,
    /// When a candidate's IP address has its connections
    /// (`ip_connections_max`), the candidate is looked at again after this;
    /// when its torrent is full, it waits for a connection of the torrent
    /// to close, then this long.
    pub full_retry_delay: Duration,
    /// Banned IP addresses remembered (the oldest ban is forgotten first).
    pub bans_max: usize,
    /// An established connection with no progress for this long is idle:
    /// evicted when a newcomer's handshake finds no room (see the module docs).
    pub idle_timeout: Duration,
    /// A torrent's own dials (dialling, or established outgoing) take at
    /// most this percentage of its connection cap, rounded up; the rest of
    /// the cap is kept for peers that connect to us. Without it, when a
    /// swarm's peers arrive together each fills its slots with its own
    /// dials, and the last to arrive find every other peer full. The
    /// mainline client dialled up to 30 peers and accepted up to 55;
    /// libtorrent lets an incoming peer replace its lowest-ranked (BEP 40)
    /// connection instead; 100 turns the share off. Too big a share has
    /// the opposite cost: the last to arrive are known to nobody yet (the
    /// tracker gave them to no one), so nobody dials them, and their own
    /// dials stop at the share (see [`TORRENT_OUTGOING_PERCENT`]).
    pub torrent_outgoing_percent: u32,
}

/// The default `torrent_outgoing_percent`: 43 of the default 50 slots are
/// for our dials, 7 for peers that dial us. Simulated flash crowd (1,000
/// leechers and a super-seed arriving at once, 1,600 pieces of 64 KiB,
/// `bench/sim-flash-crowd.sh`, seeds 1-5): with 70% (35 + 15) the last
/// tenth to arrive had ~36 connections 10 s in against 50 for the first
/// (their 35 dials and hardly any incoming), got fewer optimistic
/// unchokes, fell behind and finished last, at up to 1.148x the P2P
/// bound; with 85% their 43 dials (BEP 40 lets them into full peers) give
/// them ~40, and the last completion is at 1.089-1.098x (1.084-1.094x
/// with the parking of candidates of a full torrent). 50% was far
/// worse (1.416x at 800 pieces: the last half to arrive had ~25).
pub const TORRENT_OUTGOING_PERCENT: u32 = 85;

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            torrents_max: 10_000,
            connections_max: 500,
            torrent_connections_max: 50,
            ip_connections_max: 4,
            dials_max: 32,
            handshakes_max: 64,
            handshake_timeout: Duration::from_secs(10),
            candidates_max: 1_000,
            dial_backoff_base: Duration::from_secs(5),
            dial_backoff_max: Duration::from_secs(600),
            dial_failures_max: 6,
            reconnect_delay: Duration::from_secs(30),
            full_retry_delay: Duration::from_secs(1),
            bans_max: 10_000,
            idle_timeout: Duration::from_secs(20),
            torrent_outgoing_percent: TORRENT_OUTGOING_PERCENT,
        }
    }
}

/// Tracker announce events the endpoint asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnounceEvent {
    Started,
    Stopped,
}

/// What the driver does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Connect to `addr` for `torrent`, then handshake; report with
    /// `handle_handshake` or `handle_closed(conn)`.
    Dial {
        conn: PeerKey,
        torrent: InfoHash,
        addr: SocketAddr,
    },
    /// Close this connection; the endpoint has already forgotten it.
    Close { conn: PeerKey, reason: Refusal },
    /// Tell the torrent's trackers.
    Announce {
        torrent: InfoHash,
        event: AnnounceEvent,
    },
}

/// Why a connection is refused or closed. A decision, not a bool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    UnknownTorrent,
    TorrentStopped,
    SelfConnection,
    /// Another connection to this peer id is kept.
    Duplicate,
    TorrentFull,
    ConnectionsFull,
    IpFull,
    HandshakesFull,
    HandshakeTimeout,
    Banned,
    /// The handshake named another torrent than the one dialled.
    WrongTorrent,
    /// The endpoint does not know this connection.
    UnknownConnection,
    /// Idle (no progress for `idle_timeout`), closed to make room for a
    /// newcomer.
    Idle,
    /// We seed and so does the peer: neither has anything for the other.
    BothSeeds,
    /// The torrent was full and a newcomer's BEP 40 priority was higher.
    LowerPriority,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::UnknownTorrent => "unknown info-hash",
            Refusal::TorrentStopped => "torrent stopped",
            Refusal::SelfConnection => "connection to ourselves",
            Refusal::Duplicate => "duplicate connection",
            Refusal::TorrentFull => "torrent has its connections",
            Refusal::ConnectionsFull => "connection limit",
            Refusal::IpFull => "too many connections from this IP",
            Refusal::HandshakesFull => "too many handshakes in progress",
            Refusal::HandshakeTimeout => "handshake timed out",
            Refusal::Banned => "banned address",
            Refusal::WrongTorrent => "handshake for another torrent",
            Refusal::UnknownConnection => "unknown connection",
            Refusal::Idle => "idle, closed to make room for a new peer",
            Refusal::BothSeeds => "both seeds, nothing to exchange",
            Refusal::LowerPriority => "lowest BEP 40 priority, closed for a new peer",
        })
    }
}

/// Why `add_torrent` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddError {
    AlreadyAdded,
    TooManyTorrents,
}

/// A torrent's connection figures, for status displays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TorrentConnections {
    pub connected: usize,
    pub dialling: usize,
    pub candidates: usize,
    pub running: bool,
}

struct Candidate {
    source: PeerSource,
    failures: u32,
    /// When it may be dialled; meaningless while `conn` is set.
    next_attempt: Instant,
    conn: Option<PeerKey>,
    /// A connection to it showed every piece: not dialled while we seed.
    seed: bool,
}

struct TorrentEntry {
    running: bool,
    candidates: BTreeMap<SocketAddr, Candidate>,
    /// Connections of this torrent (dialling or accepted).
    conns: BTreeSet<PeerKey>,
    /// Accepted connections by peer id (the duplicate rule).
    peer_ids: BTreeMap<PeerId, PeerKey>,
    /// Its own cap on connections (none: `torrent_connections_max`).
    connections_max: Option<usize>,
    /// Its connections that we dialled (dialling or established).
    outgoing: usize,
    /// Candidates whose turn came while the torrent was full: out of the
    /// queue, each closed connection of the torrent brings one back (see
    /// [`Endpoint::park`]).
    parked: BTreeSet<SocketAddr>,
    /// Every wanted piece is have ([`Endpoint::set_seeding`]).
    seeding: bool,
}

impl TorrentEntry {
    /// Whether a candidate without a connection waits in the dial queue.
    fn dials(&self, c: &Candidate) -> bool {
        self.running && !(self.seeding && c.seed)
    }
}

/// A torrent's cap on connections: its own, or the endpoint's.
fn cap_of(t: &TorrentEntry, config: &EndpointConfig) -> usize {
    t.connections_max.unwrap_or(config.torrent_connections_max)
}

/// A torrent's cap on its own dials: `torrent_outgoing_percent` of its
/// cap, rounded up (so a cap of 1 still dials).
fn outgoing_cap_of(t: &TorrentEntry, config: &EndpointConfig) -> usize {
    let pct = config.torrent_outgoing_percent.min(100) as usize;
    (cap_of(t, config) * pct).div_ceil(100)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Ours, connecting or handshaking.
    Dialling,
    /// Theirs, handshake not yet read.
    Handshaking,
    Established(PeerId),
}

struct Conn {
    addr: SocketAddr,
    torrent: Option<InfoHash>,
    outgoing: bool,
    phase: Phase,
    deadline: Option<Instant>,
    /// Established: its last progress (or its handshake), for eviction.
    progress: Instant,
    /// The peer has every piece ([`Endpoint::handle_peer_seed`]).
    peer_seed: bool,
}

/// The connection policy of one process. See the module docs.
pub struct Endpoint {
    config: EndpointConfig,
    our_id: PeerId,
    /// Our address as peers see it (for BEP 40 priorities), if known.
    our_addr: Option<SocketAddr>,
    rng: Rng,
    torrents: BTreeMap<InfoHash, TorrentEntry>,
    conns: BTreeMap<PeerKey, Conn>,
    next_key: u64,
    /// Candidates without a connection, by when they may be dialled.
    queue: BTreeSet<(Instant, InfoHash, SocketAddr)>,
    /// Handshake deadlines.
    deadlines: BTreeSet<(Instant, PeerKey)>,
    per_ip: BTreeMap<IpAddr, usize>,
    dialling: usize,
    handshaking: usize,
    /// Banned IPs with the order of their ban (to forget the oldest).
    bans: BTreeMap<IpAddr, u64>,
    ban_order: BTreeMap<u64, IpAddr>,
    ban_seq: u64,
    actions: VecDeque<Action>,
}

impl Endpoint {
    pub fn new(config: EndpointConfig, our_id: PeerId, rng_seed: u64) -> Self {
        assert!(config.dials_max >= 1 && config.connections_max >= 1);
        Endpoint {
            config,
            our_id,
            our_addr: None,
            rng: Rng::new(rng_seed),
            torrents: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_key: 0,
            queue: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            per_ip: BTreeMap::new(),
            dialling: 0,
            handshaking: 0,
            bans: BTreeMap::new(),
            ban_order: BTreeMap::new(),
            ban_seq: 0,
            actions: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Our address as peers see it (a listen address that is not
    /// unspecified, or what peers or trackers report): from then on a full
    /// torrent lets in a newcomer whose BEP 40 priority is higher than its
    /// lowest connection's. Unknown, a full torrent refuses newcomers (bar
    /// idle eviction).
    pub fn set_our_addr(&mut self, addr: SocketAddr) {
        self.our_addr = Some(addr);
    }

    /// Starts serving `torrent`: it accepts handshakes from now on and asks
    /// for a `Started` announce.
    pub fn add_torrent(&mut self, _now: Instant, torrent: InfoHash) -> Result<(), AddError> {
        if self.torrents.contains_key(&torrent) {
            return Err(AddError::AlreadyAdded);
        }
        if self.torrents.len() >= self.config.torrents_max {
            return Err(AddError::TooManyTorrents);
        }
        self.torrents.insert(
            torrent,
            TorrentEntry {
                running: true,
                candidates: BTreeMap::new(),
                conns: BTreeSet::new(),
                peer_ids: BTreeMap::new(),
                connections_max: None,
                outgoing: 0,
                parked: BTreeSet::new(),
                seeding: false,
            },
        );
        self.actions.push_back(Action::Announce {
            torrent,
            event: AnnounceEvent::Started,
        });
        Ok(())
    }

    /// Stops `torrent`: its connections close, new ones are refused
    /// ([`Refusal::TorrentStopped`]), its candidates are kept for a restart.
    pub fn stop_torrent(&mut self, now: Instant, torrent: InfoHash) {
        let Some(t) = self.torrents.get_mut(&torrent) else {
            return;
        };
        if !t.running {
            return;
        }
        t.running = false;
        t.parked.clear();
        let conns: Vec<PeerKey> = t.conns.iter().copied().collect();
        for conn in conns {
            self.close(now, conn, Refusal::TorrentStopped);
        }
        let queued: Vec<_> = self
            .queue
            .iter()
            .filter(|e| e.1 == torrent)
            .copied()
            .collect();
        for e in queued {
            self.queue.remove(&e);
        }
        self.actions.push_back(Action::Announce {
            torrent,
            event: AnnounceEvent::Stopped,
        });
    }

    /// Starts a stopped torrent again (its candidates are dialled anew).
    pub fn resume_torrent(&mut self, now: Instant, torrent: InfoHash) {
        let Some(t) = self.torrents.get_mut(&torrent) else {
            return;
        };
        if t.running {
            return;
        }
        t.running = true;
        let seeding = t.seeding;
        for (addr, c) in &mut t.candidates {
            c.next_attempt = now;
            if !(seeding && c.seed) {
                self.queue.insert((now, torrent, *addr));
            }
        }
        self.actions.push_back(Action::Announce {
            torrent,
            event: AnnounceEvent::Started,
        });
        self.dial_ready(now);
    }

    /// Stops `torrent` (if running) and forgets it.
    pub fn remove_torrent(&mut self, now: Instant, torrent: InfoHash) {
        self.stop_torrent(now, torrent);
        self.torrents.remove(&torrent);
    }

    pub fn torrent_connections(&self, torrent: &InfoHash) -> Option<TorrentConnections> {
        let t = self.torrents.get(torrent)?;
        let dialling = t
            .conns
            .iter()
            .filter(|k| {
                self.conns
                    .get(k)
                    .is_some_and(|c| c.phase == Phase::Dialling)
            })
            .count();
        Some(TorrentConnections {
            connected: t.conns.len() - dialling,
            dialling,
            candidates: t.candidates.len(),
            running: t.running,
        })
    }

    /// Connections in all (dialling, handshaking, established).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Addresses for `torrent` from `source`. Banned, duplicate and
    /// unspecified addresses are skipped; past `candidates_max` the rest
    /// are dropped (after evicting candidates that have failed, if any).
    /// Incoming addresses are not candidates (their port is ephemeral).
    pub fn handle_peers(
        &mut self,
        now: Instant,
        torrent: InfoHash,
        source: PeerSource,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) {
        if source == PeerSource::Incoming {
            return;
        }
        let Some(t) = self.torrents.get_mut(&torrent) else {
            return;
        };
        for addr in addrs {
            if addr.port() == 0 || addr.ip().is_unspecified() || self.bans.contains_key(&addr.ip())
            {
                continue;
            }
            if let Some(c) = t.candidates.get_mut(&addr) {
                // The user naming an address it already had pins it.
                if source.is_pinned() {
                    c.source = source;
                }
                continue;
            }
            if t.candidates.len() >= self.config.candidates_max
                && !evict_failed_candidate(t, &mut self.queue, torrent)
            {
                // Full of candidates that have not failed: the list is cut here.
                break;
            }
            t.candidates.insert(
                addr,
                Candidate {
                    source,
                    failures: 0,
                    next_attempt: now,
                    conn: None,
                    seed: false,
                },
            );
            if t.running {
                self.queue.insert((now, torrent, addr));
            }
        }
        self.dial_ready(now);
    }

    /// A TCP connection was accepted from `addr`. `Ok(conn)`: read its
    /// handshake and report it with `handle_handshake`, within
    /// `handshake_timeout`; `Err`: close the socket now.
    ///
    /// With `handshakes_max` incoming handshakes pending, the oldest one
    /// makes room (closed: [`Refusal::HandshakesFull`]): a real peer sends
    /// its handshake within a round trip, so under a flood of silent or
    /// slow sockets it is the newest that deserves the slot, and the flood
    /// cannot hold the door shut for a whole `handshake_timeout`.
    pub fn handle_accept(&mut self, now: Instant, addr: SocketAddr) -> Result<PeerKey, Refusal> {
        if self.bans.contains_key(&addr.ip()) {
            return Err(Refusal::Banned);
        }
        if self.ip_count(addr.ip()) >= self.config.ip_connections_max {
            return Err(Refusal::IpFull);
        }
        if self.handshaking >= self.config.handshakes_max {
            match self.oldest_handshake() {
                Some(old) => self.close(now, old, Refusal::HandshakesFull),
                None => return Err(Refusal::HandshakesFull),
            }
        }
        if self.established_and_dialling() >= self.config.connections_max
            && self.idle_victim(now, None).is_none()
        {
            return Err(Refusal::ConnectionsFull);
        }
        let conn = self.new_key();
        let deadline = now + self.config.handshake_timeout;
        self.conns.insert(
            conn,
            Conn {
                addr,
                torrent: None,
                outgoing: false,
                phase: Phase::Handshaking,
                deadline: Some(deadline),
                progress: now,
                peer_seed: false,
            },
        );
        self.deadlines.insert((deadline, conn));
        self.handshaking += 1;
        *self.per_ip.entry(addr.ip()).or_insert(0) += 1;
        Ok(conn)
    }

    /// The handshake of `conn` arrived (theirs, for either direction).
    /// `Ok`: hand the connection to the torrent's core; `Err`: close it
    /// (the endpoint has forgotten it). May also queue a `Close` for an
    /// older duplicate.
    pub fn handle_handshake(
        &mut self,
        now: Instant,
        conn: PeerKey,
        info_hash: InfoHash,
        peer_id: PeerId,
    ) -> Result<(), Refusal> {
        let Some(c) = self.conns.get(&conn) else {
            return Err(Refusal::UnknownConnection);
        };
        let (outgoing, phase, named) = (c.outgoing, c.phase, c.torrent);
        if !matches!(phase, Phase::Dialling | Phase::Handshaking) {
            return Err(Refusal::UnknownConnection);
        }
        let addr = c.addr;
        let verdict = self.judge_handshake(now, (outgoing, addr), named, info_hash, peer_id);
        match verdict {
            Err(refusal) => {
                let addr = self.conns.get(&conn).map(|c| c.addr);
                self.forget(now, conn, false);
                // We dialled ourselves (a tracker lists us): never again.
                if refusal == Refusal::SelfConnection
                    && outgoing
                    && let (Some(addr), Some(t)) =
                        (addr, named.and_then(|h| self.torrents.get_mut(&h)))
                    && let Some(c) = t.candidates.remove(&addr)
                {
                    unqueue(
                        &mut self.queue,
                        &mut t.parked,
                        c.next_attempt,
                        info_hash,
                        addr,
                    );
                }
                Err(refusal)
            }
            Ok(old) => {
                if let Some((old, why)) = old {
                    self.close(now, old, why);
                }
                let Some(c) = self.conns.get_mut(&conn) else {
                    return Err(Refusal::UnknownConnection);
                };
                if let Some(d) = c.deadline.take() {
                    self.deadlines.remove(&(d, conn));
                }
                if c.phase == Phase::Dialling {
                    self.dialling -= 1;
                } else {
                    self.handshaking -= 1;
                }
                c.phase = Phase::Established(peer_id);
                c.torrent = Some(info_hash);
                c.progress = now;
                if let Some(t) = self.torrents.get_mut(&info_hash) {
                    t.conns.insert(conn);
                    t.peer_ids.insert(peer_id, conn);
                    if let Some(cand) = t.candidates.get_mut(&c.addr) {
                        cand.failures = 0;
                    }
                }
                self.dial_ready(now);
                Ok(())
            }
        }
    }

    /// `Ok(Some((old, why)))`: accept, closing `old` (a duplicate that
    /// loses, or an idle connection evicted to make room).
    fn judge_handshake(
        &self,
        now: Instant,
        (outgoing, addr): (bool, SocketAddr),
        named: Option<InfoHash>,
        info_hash: InfoHash,
        peer_id: PeerId,
    ) -> Result<Option<(PeerKey, Refusal)>, Refusal> {
        if named.is_some_and(|n| n != info_hash) {
            return Err(Refusal::WrongTorrent);
        }
        let Some(t) = self.torrents.get(&info_hash) else {
            return Err(Refusal::UnknownTorrent);
        };
        if !t.running {
            return Err(Refusal::TorrentStopped);
        }
        if peer_id == self.our_id {
            return Err(Refusal::SelfConnection);
        }
        let mut old_loses = None;
        if let Some(&old) = t.peer_ids.get(&peer_id) {
            let old_outgoing = self.conns.get(&old).is_some_and(|c| c.outgoing);
            // Both sides keep the connection dialled by the smaller id.
            let keeper = |out: bool| (self.our_id < peer_id) == out;
            if keeper(old_outgoing) || !keeper(outgoing) {
                return Err(Refusal::Duplicate);
            }
            old_loses = Some((old, Refusal::Duplicate));
        }
        // Our own dials already hold their torrent slot; incoming ones need
        // one, from an idle connection if there is no free one.
        if !outgoing && old_loses.is_none() {
            if t.conns.len() >= cap_of(t, &self.config) {
                if let Some(v) = self.idle_victim(now, Some(info_hash)) {
                    return Ok(Some((v, Refusal::Idle)));
                }
                return self
                    .priority_victim(t, addr)
                    .map(|v| Some((v, Refusal::LowerPriority)))
                    .ok_or(Refusal::TorrentFull);
            }
            if self.established_and_dialling() >= self.config.connections_max {
                let victim = self.idle_victim(now, None);
                return victim
                    .map(|v| Some((v, Refusal::Idle)))
                    .ok_or(Refusal::ConnectionsFull);
            }
        }
        Ok(old_loses)
    }

    /// The established connection of `t` with the lowest BEP 40 priority,
    /// if a newcomer from `addr` has a higher one (our address known).
    /// Ties: the oldest key.
    fn priority_victim(&self, t: &TorrentEntry, addr: SocketAddr) -> Option<PeerKey> {
        let ours = self.our_addr?;
        let newcomer = priority::priority(ours, addr)?;
        t.conns
            .iter()
            .filter_map(|k| {
                let c = self.conns.get(k)?;
                matches!(c.phase, Phase::Established(_)).then_some(())?;
                Some((priority::priority(ours, c.addr)?, *k))
            })
            .min()
            .filter(|&(p, _)| p < newcomer)
            .map(|(_, k)| k)
    }

    /// The incoming connection whose handshake has waited longest.
    fn oldest_handshake(&self) -> Option<PeerKey> {
        self.deadlines.iter().map(|&(_, k)| k).find(|k| {
            self.conns
                .get(k)
                .is_some_and(|c| c.phase == Phase::Handshaking)
        })
    }

    /// The driver saw `conn` make progress (a payload block moved, or
    /// either side is interested: see the module docs). Unknown or
    /// not-yet-established connections are ignored.
    pub fn handle_progress(&mut self, now: Instant, conn: PeerKey) {
        if let Some(c) = self.conns.get_mut(&conn)
            && matches!(c.phase, Phase::Established(_))
        {
            c.progress = c.progress.max(now);
        }
    }

    /// Whether `torrent` seeds: every piece it wants is have (a seed, or a
    /// partial seed that skipped files). Seeding, its connections to seeds
    /// close ([`Refusal::BothSeeds`]) and the addresses known as seeds are
    /// not dialled; no longer seeding (more files wanted), they are dialled
    /// again. The driver calls it when the torrent completes, and whenever
    /// that changes; unknown torrents are ignored.
    pub fn set_seeding(&mut self, now: Instant, torrent: InfoHash, seeding: bool) {
        let Some(t) = self.torrents.get_mut(&torrent) else {
            return;
        };
        if t.seeding == seeding {
            return;
        }
        t.seeding = seeding;
        let running = t.running;
        for (addr, c) in &mut t.candidates {
            if c.seed && c.conn.is_none() && running {
                if seeding {
                    unqueue(
                        &mut self.queue,
                        &mut t.parked,
                        c.next_attempt,
                        torrent,
                        *addr,
                    );
                } else {
                    c.next_attempt = c.next_attempt.max(now);
                    self.queue.insert((c.next_attempt, torrent, *addr));
                }
            }
        }
        if seeding {
            let seeds: Vec<PeerKey> = t
                .conns
                .iter()
                .copied()
                .filter(|k| self.conns.get(k).is_some_and(|c| c.peer_seed))
                .collect();
            for conn in seeds {
                self.close(now, conn, Refusal::BothSeeds);
            }
        }
        self.dial_ready(now);
    }

    /// Whether `torrent` seeds (see [`Endpoint::set_seeding`]).
    pub fn is_seeding(&self, torrent: &InfoHash) -> bool {
        self.torrents.get(torrent).is_some_and(|t| t.seeding)
    }

    /// The peer on `conn` has every piece (its bitfield, have-all, or its
    /// last have: the core's [`crate::TorrentEvent::PeerSeed`]). If we
    /// seed too the connection closes ([`Refusal::BothSeeds`]); an address
    /// we dialled is remembered as a seed, not dialled while we seed.
    /// Unknown or not-yet-established connections are ignored.
    pub fn handle_peer_seed(&mut self, now: Instant, conn: PeerKey) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let (Phase::Established(_), Some(hash)) = (c.phase, c.torrent) else {
            return;
        };
        c.peer_seed = true;
        let (outgoing, addr) = (c.outgoing, c.addr);
        let Some(t) = self.torrents.get_mut(&hash) else {
            return;
        };
        if outgoing
            && let Some(cand) = t.candidates.get_mut(&addr)
            && cand.conn == Some(conn)
        {
            cand.seed = true;
        }
        if t.seeding {
            self.close(now, conn, Refusal::BothSeeds);
            self.dial_ready(now);
        }
    }

    /// The established connection (of `torrent`, or of any) idle longest,
    /// if any is idle (no progress for `idle_timeout`). Ties: the oldest key.
    fn idle_victim(&self, now: Instant, torrent: Option<InfoHash>) -> Option<PeerKey> {
        let idle = |c: &Conn| {
            matches!(c.phase, Phase::Established(_))
                && now.saturating_since(c.progress) >= self.config.idle_timeout
        };
        let best = |keys: &mut dyn Iterator<Item = PeerKey>| {
            keys.filter_map(|k| {
                self.conns
                    .get(&k)
                    .filter(|c| idle(c))
                    .map(|c| (c.progress, k))
            })
            .min()
            .map(|(_, k)| k)
        };
        match torrent {
            Some(h) => best(&mut self.torrents.get(&h)?.conns.iter().copied()),
            None => best(&mut self.conns.keys().copied()),
        }
    }

    /// The driver closed `conn` (dial failed, socket error, the core
    /// dropped the peer) or has executed a `Close`. Unknown keys are ignored.
    pub fn handle_closed(&mut self, now: Instant, conn: PeerKey) {
        self.forget(now, conn, true);
        self.dial_ready(now);
    }

    /// A new cap on connections in all (at least 1): over it, the
    /// connections that made progress longest ago close first (dials and
    /// established alike; `ConnectionsFull`), so the cap holds at once.
    pub fn set_connections_max(&mut self, now: Instant, n: usize) {
        self.config.connections_max = n.max(1);
        while self.established_and_dialling() > self.config.connections_max {
            let Some(conn) = self
                .conns
                .iter()
                .filter(|(_, c)| !matches!(c.phase, Phase::Handshaking))
                .min_by_key(|(k, c)| (c.progress, **k))
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.close(now, conn, Refusal::ConnectionsFull);
        }
        self.dial_ready(now);
    }

    /// The cap on connections in all.
    pub fn connections_max(&self) -> usize {
        self.config.connections_max
    }

    /// `torrent`'s own cap on connections (at least 1; `None`: the
    /// endpoint's `torrent_connections_max`): over it, its connections
    /// that made progress longest ago close first (`TorrentFull`), so the
    /// cap holds at once. Unknown torrents are ignored.
    pub fn set_torrent_connections_max(
        &mut self,
        now: Instant,
        torrent: InfoHash,
        n: Option<usize>,
    ) {
        let Some(t) = self.torrents.get_mut(&torrent) else {
            return;
        };
        t.connections_max = n.map(|n| n.max(1));
        let cap = cap_of(t, &self.config);
        while let Some(t) = self.torrents.get(&torrent)
            && t.conns.len() > cap
        {
            let Some(conn) = t
                .conns
                .iter()
                .filter_map(|k| Some((self.conns.get(k)?.progress, *k)))
                .min()
                .map(|(_, k)| k)
            else {
                break;
            };
            self.close(now, conn, Refusal::TorrentFull);
        }
        // A higher cap may have room: every parked candidate takes its turn.
        if let Some(t) = self.torrents.get_mut(&torrent) {
            for addr in std::mem::take(&mut t.parked) {
                unpark(&mut self.queue, t, torrent, addr, now);
            }
        }
        self.dial_ready(now);
    }

    /// The cap on `torrent`'s connections in force (none: not known).
    pub fn torrent_connections_max(&self, torrent: InfoHash) -> Option<usize> {
        self.torrents.get(&torrent).map(|t| cap_of(t, &self.config))
    }

    /// Refuses `ip` from now on: its connections close, its candidates go.
    pub fn ban(&mut self, now: Instant, ip: IpAddr) {
        if !self.bans.contains_key(&ip) {
            if self.bans.len() >= self.config.bans_max
                && let Some((_, oldest)) = self.ban_order.pop_first()
            {
                self.bans.remove(&oldest);
            }
            self.ban_seq += 1;
            self.bans.insert(ip, self.ban_seq);
            self.ban_order.insert(self.ban_seq, ip);
        }
        let conns: Vec<PeerKey> = self
            .conns
            .iter()
            .filter(|(_, c)| c.addr.ip() == ip)
            .map(|(k, _)| *k)
            .collect();
        for conn in conns {
            self.close(now, conn, Refusal::Banned);
        }
        for (hash, t) in &mut self.torrents {
            let gone: Vec<SocketAddr> = t
                .candidates
                .keys()
                .filter(|a| a.ip() == ip)
                .copied()
                .collect();
            for addr in gone {
                if let Some(c) = t.candidates.remove(&addr) {
                    unqueue(&mut self.queue, &mut t.parked, c.next_attempt, *hash, addr);
                }
            }
        }
        self.dial_ready(now);
    }

    /// Banned IP addresses remembered.
    pub fn bans(&self) -> usize {
        self.bans.len()
    }

    /// Failed dials in a row of `torrent`'s candidate `addr` (for the
    /// driver's log), `None` if it is not a candidate.
    pub fn candidate_failures(&self, torrent: &InfoHash, addr: SocketAddr) -> Option<u32> {
        Some(self.torrents.get(torrent)?.candidates.get(&addr)?.failures)
    }

    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.bans.contains_key(&ip)
    }

    /// Handshake deadlines and dial back-offs.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, conn)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(c) = self.conns.get_mut(&conn) {
                c.deadline = None;
            }
            self.close(now, conn, Refusal::HandshakeTimeout);
        }
        self.dial_ready(now);
    }

    /// When `handle_timeout` has work: the next handshake deadline, or the
    /// next candidate's back-off if a dial could start.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.deadlines.first().map(|e| e.0);
        let dial = if self.can_dial() {
            self.queue.first().map(|e| e.0)
        } else {
            None
        };
        match (deadline, dial) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn new_key(&mut self) -> PeerKey {
        self.next_key += 1;
        PeerKey(self.next_key)
    }

    fn ip_count(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    fn established_and_dialling(&self) -> usize {
        self.conns.len() - self.handshaking
    }

    fn can_dial(&self) -> bool {
        self.dialling < self.config.dials_max
            && self.established_and_dialling() < self.config.connections_max
    }

    /// Dials ready candidates while the caps allow.
    fn dial_ready(&mut self, now: Instant) {
        while self.can_dial() {
            let Some(&(at, torrent, addr)) = self.queue.first() else {
                return;
            };
            if at > now {
                return;
            }
            self.queue.pop_first();
            let Some(t) = self.torrents.get(&torrent) else {
                continue;
            };
            if !t.running || !t.candidates.contains_key(&addr) {
                continue;
            }
            let full = t.conns.len() >= cap_of(t, &self.config)
                || t.outgoing >= outgoing_cap_of(t, &self.config);
            if full {
                self.park(torrent, addr);
                continue;
            }
            if self.ip_count(addr.ip()) >= self.config.ip_connections_max {
                let later = now + self.config.full_retry_delay;
                if let Some(c) = self
                    .torrents
                    .get_mut(&torrent)
                    .and_then(|t| t.candidates.get_mut(&addr))
                {
                    c.next_attempt = later;
                }
                self.queue.insert((later, torrent, addr));
                continue;
            }
            let conn = self.new_key();
            let deadline = now + self.config.handshake_timeout;
            if let Some(t) = self.torrents.get_mut(&torrent) {
                t.conns.insert(conn);
                t.outgoing += 1;
                if let Some(c) = t.candidates.get_mut(&addr) {
                    c.conn = Some(conn);
                }
            }
            self.conns.insert(
                conn,
                Conn {
                    addr,
                    torrent: Some(torrent),
                    outgoing: true,
                    phase: Phase::Dialling,
                    deadline: Some(deadline),
                    progress: now,
                    peer_seed: false,
                },
            );
            self.deadlines.insert((deadline, conn));
            self.dialling += 1;
            *self.per_ip.entry(addr.ip()).or_insert(0) += 1;
            self.actions.push_back(Action::Dial {
                conn,
                torrent,
                addr,
            });
        }
    }

    /// `torrent` is full (its cap, or its dial share) when `addr`'s turn
    /// comes: the candidate leaves the queue until a connection of the
    /// torrent closes (`forget` brings back one per close, for
    /// `full_retry_delay` later). Looking at every candidate of a full
    /// torrent again every `full_retry_delay` instead cost a queue removal
    /// and insertion per candidate per second: with a few hundred
    /// candidates from re-announces, the simulator's largest endpoint cost
    /// (see ARCHITECTURE.md).
    fn park(&mut self, torrent: InfoHash, addr: SocketAddr) {
        if let Some(t) = self.torrents.get_mut(&torrent) {
            t.parked.insert(addr);
        }
    }

    /// Forgets `conn` and tells the driver to close it.
    fn close(&mut self, now: Instant, conn: PeerKey, reason: Refusal) {
        if self.conns.contains_key(&conn) {
            self.forget(now, conn, reason == Refusal::HandshakeTimeout);
            self.actions.push_back(Action::Close { conn, reason });
        }
    }

    /// Removes `conn` from every table. `failed_dial_counts`: a dial that
    /// ends before its handshake counts as a failure of the candidate.
    fn forget(&mut self, now: Instant, conn: PeerKey, failed_dial_counts: bool) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(d) = c.deadline {
            self.deadlines.remove(&(d, conn));
        }
        match c.phase {
            Phase::Dialling => self.dialling -= 1,
            Phase::Handshaking => self.handshaking -= 1,
            Phase::Established(_) => {}
        }
        if let Some(n) = self.per_ip.get_mut(&c.addr.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&c.addr.ip());
            }
        }
        let Some(hash) = c.torrent else {
            return;
        };
        let Some(t) = self.torrents.get_mut(&hash) else {
            return;
        };
        t.conns.remove(&conn);
        // A slot is free: the first parked candidate takes its turn after
        // `full_retry_delay`, as when every candidate was looked at again
        // that often (at once, dials refused by full peers cycled through
        // the candidates: a flash crowd of 1,000 ended 1.117x the bound
        // instead of 1.098x).
        if let Some(addr) = t.parked.pop_first() {
            unpark(
                &mut self.queue,
                t,
                hash,
                addr,
                now + self.config.full_retry_delay,
            );
        }
        if let Phase::Established(id) = c.phase
            && t.peer_ids.get(&id) == Some(&conn)
        {
            t.peer_ids.remove(&id);
        }
        if !c.outgoing {
            return;
        }
        t.outgoing -= 1;
        let Some(cand) = t.candidates.get_mut(&c.addr) else {
            return;
        };
        if cand.conn != Some(conn) {
            return;
        }
        cand.conn = None;
        let delay = if c.phase == Phase::Dialling && failed_dial_counts {
            cand.failures += 1;
            if cand.failures >= self.config.dial_failures_max && !cand.source.is_pinned() {
                t.candidates.remove(&c.addr);
                return;
            }
            let exp = cand.failures.saturating_sub(1).min(20);
            let base = self.config.dial_backoff_base.0.saturating_mul(1u64 << exp);
            let capped = base.min(self.config.dial_backoff_max.0);
            // Up to +25% jitter, so candidates that failed together spread out.
            Duration(capped + (self.rng.next_u64() % (capped / 4 + 1)))
        } else {
            self.config.reconnect_delay
        };
        cand.next_attempt = now + delay;
        if t.running && !(t.seeding && cand.seed) {
            self.queue.insert((cand.next_attempt, hash, c.addr));
        }
    }

    /// Asserts the invariants of the module docs.
    pub fn check_invariants(&self) {
        let (mut dialling, mut handshaking) = (0, 0);
        let mut per_ip: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for (k, c) in &self.conns {
            *per_ip.entry(c.addr.ip()).or_insert(0) += 1;
            match c.phase {
                Phase::Dialling => {
                    dialling += 1;
                    assert!(c.outgoing && c.torrent.is_some());
                }
                Phase::Handshaking => {
                    handshaking += 1;
                    assert!(!c.outgoing && c.torrent.is_none());
                }
                Phase::Established(id) => {
                    let t = &self.torrents[&c.torrent.expect("established has a torrent")];
                    assert_eq!(t.peer_ids.get(&id), Some(k), "one connection per peer id");
                }
            }
            if let Some(d) = c.deadline {
                assert!(self.deadlines.contains(&(d, *k)));
            }
            if let Some(h) = c.torrent {
                assert!(self.torrents[&h].conns.contains(k));
            }
        }
        assert_eq!(
            self.deadlines.len(),
            self.conns.values().filter(|c| c.deadline.is_some()).count()
        );
        assert_eq!(dialling, self.dialling);
        assert_eq!(handshaking, self.handshaking);
        assert_eq!(per_ip, self.per_ip);
        assert!(self.dialling <= self.config.dials_max);
        assert!(self.handshaking <= self.config.handshakes_max);
        assert!(self.conns.len() - self.handshaking <= self.config.connections_max);
        assert!(
            per_ip
                .values()
                .all(|&n| n <= self.config.ip_connections_max)
        );
        assert!(self.torrents.len() <= self.config.torrents_max);
        let mut queued = 0;
        for (hash, t) in &self.torrents {
            assert!(t.candidates.len() <= self.config.candidates_max);
            assert!(t.conns.len() <= cap_of(t, &self.config) || !t.running);
            for k in &t.conns {
                assert_eq!(self.conns[k].torrent, Some(*hash));
            }
            let outgoing = t.conns.iter().filter(|k| self.conns[k].outgoing).count();
            assert_eq!(outgoing, t.outgoing, "outgoing count");
            for addr in &t.parked {
                assert!(t.candidates.contains_key(addr), "parked: {addr}");
            }
            for (addr, c) in &t.candidates {
                let in_queue = self.queue.contains(&(c.next_attempt, *hash, *addr));
                let parked = t.parked.contains(addr);
                assert!(!(in_queue && parked), "queued and parked: {addr}");
                assert_eq!(
                    in_queue || parked,
                    c.conn.is_none() && t.dials(c),
                    "queued or parked iff idle (and not a seed while we seed): {addr}"
                );
                queued += usize::from(in_queue);
                if let Some(k) = c.conn {
                    assert_eq!(self.conns[&k].addr, *addr);
                }
            }
        }
        assert_eq!(queued, self.queue.len());
        assert_eq!(self.bans.len(), self.ban_order.len());
        assert!(self.bans.len() <= self.config.bans_max);
    }
}

/// Drops the candidate with the most failures (that is not connected or
/// pinned) to make room; false if none has failed.
fn evict_failed_candidate(
    t: &mut TorrentEntry,
    queue: &mut BTreeSet<(Instant, InfoHash, SocketAddr)>,
    hash: InfoHash,
) -> bool {
    let worst = t
        .candidates
        .iter()
        .filter(|(_, c)| c.failures > 0 && c.conn.is_none() && !c.source.is_pinned())
        .max_by_key(|(addr, c)| (c.failures, std::cmp::Reverse(**addr)))
        .map(|(addr, c)| (*addr, c.next_attempt));
    let Some((addr, at)) = worst else {
        return false;
    };
    t.candidates.remove(&addr);
    unqueue(queue, &mut t.parked, at, hash, addr);
    true
}

/// Takes candidate `addr` (due at `at`) out of the retry queue and out of
/// its torrent's parked candidates: it is in one of them at most.
fn unqueue(
    queue: &mut BTreeSet<(Instant, InfoHash, SocketAddr)>,
    parked: &mut BTreeSet<SocketAddr>,
    at: Instant,
    hash: InfoHash,
    addr: SocketAddr,
) {
    queue.remove(&(at, hash, addr));
    parked.remove(&addr);
}

/// Puts parked candidate `addr` of `t` back in the retry queue, due at `at`
/// (the caller took it out of `t.parked`).
fn unpark(
    queue: &mut BTreeSet<(Instant, InfoHash, SocketAddr)>,
    t: &mut TorrentEntry,
    hash: InfoHash,
    addr: SocketAddr,
    at: Instant,
) {
    if let Some(c) = t.candidates.get_mut(&addr) {
        c.next_attempt = at;
        queue.insert((at, hash, addr));
    }
}

pub mod priority;

#[cfg(test)]
mod tests;
