//! The discrete-event loop: swarm's `TorrentCore`s joined by modelled links
//! in virtual time. See the crate docs for the model.

use std::collections::VecDeque;

use bytes::Bytes;
use swarm_engine::rng::Rng;
use swarm_engine::{
    Action, Bitfield, Duration, Endpoint, ExtensionInfo, Instant, PEER_REQUESTS_MAX, PeerInfo,
    PeerKey, PeerSource, StorageDone, TorrentCore, TorrentEvent,
};
use swarm_wire::Lengths;
use swarm_wire::lengths::ValidPieceIndex;
use swarm_wire::peer::{Message, take_rider};

use crate::discovery::{INFO_HASH, TrackerRegistry, addr_of, peer_id, peer_of};
use crate::link::Link;
use crate::outcome::{Outcome, PeerOutcome, Sample};
use crate::queue::EventQueue;
use crate::scenario::{Arrival, Departure, Scenario, SeedDeparture};
use swarm_wire::tracker::Event;

mod msg;
use msg::{BLOCK, SimMessage};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ev {
    Join(usize),
    /// A dial reaches the peer dialled: its endpoint accepts or refuses.
    Connect(u32, u32),
    /// Both handshakes of this connection arrived.
    Dialled(u32, u32),
    /// The endpoint's timer (dial back-offs, handshake deadlines).
    EndpointTimer(usize),
    /// Control messages of this connection and direction reach their
    /// receiver (all those due by now).
    Arrive(u32, u32, u8),
    /// The block this direction had on its sender's uplink is through.
    UpDone(u32, u32, u8),
    /// The oldest block of this direction crossing its receiver's downlink
    /// is through: it is delivered.
    DownDone(u32, u32, u8),
    Timer(usize),
    Verified(usize, ValidPieceIndex),
    Leave(usize),
    Announce(usize),
    Sample,
}

/// One direction of a connection: what the sender still has to send (TCP
/// order: a block holds back what was sent after it, but riders go before
/// what is still queued here, see `flush`), what is on the way,
/// and what reached the receiver out of order (a block still crossing its
/// downlink holds back the control messages behind it). Messages are
/// numbered in send order and delivered in that order.
///
/// `repr(C)`, in the order an event reads them: a control message's
/// arrival reads `wire`, `deliver_seq` and `arrived` (the first line),
/// sending reads `next_seq` and `wire_event_at`, a block `up` and `down`.
#[derive(Default)]
#[repr(C)]
struct Dir {
    /// Control messages on the way, with their arrival times (in order:
    /// they all take the same delay).
    wire: VecDeque<(Instant, u64, SimMessage)>,
    deliver_seq: u64,
    arrived: VecDeque<Option<SimMessage>>,
    next_seq: u64,
    /// The arrival time of the last `Arrive` event scheduled: messages sent
    /// at the same instant share one event.
    wire_event_at: Option<Instant>,
    /// The block crossing the sender's uplink (one at a time).
    up: Option<(u64, SimMessage)>,
    /// Blocks crossing the receiver's downlink, oldest first.
    down: VecDeque<(u64, SimMessage)>,
    out: VecDeque<SimMessage>,
}

impl Dir {
    /// Puts a control message on the wire, numbered in send order, to
    /// arrive at `at`; true if an `Arrive` event at `at` must be scheduled
    /// (messages sent at one instant share one).
    fn send_control(&mut self, at: Instant, msg: SimMessage) -> bool {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.wire.push_back((at, seq, msg));
        let new_event = self.wire_event_at != Some(at);
        self.wire_event_at = Some(at);
        new_event
    }
}

/// `repr(C)`, each on its own cache lines, what every event reads first
/// (open, ends, keys: one line), then the two directions: at a thousand
/// peers nearly every event's first touch of its connection is a miss to
/// memory, and the default layout put `open` on the last line.
#[repr(C, align(64))]
struct Conn {
    open: bool,
    /// Both cores know of it (the handshake completed).
    established: bool,
    /// Whether a block moved on it, sent or received by each end, since
    /// that end's endpoint last heard of it (see `report_progress`).
    moved: [bool; 2],
    /// Which use of this slot it is: a closed connection's slot goes to
    /// the next dial, and its events still queued, which name the slot
    /// and this number, find a newer one and are dropped.
    generation: u32,
    ends: [usize; 2],
    /// Each end's key for it (its endpoint's); `None` until it has one.
    keys: [Option<PeerKey>; 2],
    dirs: [Dir; 2],
}

/// A peer's endpoint keys to its connections. An endpoint numbers its
/// connections 1, 2, 3, … (`Endpoint` hands out increasing keys), so a key
/// indexes a `Vec`: a lookup (several for every message a core sends) reads
/// one slot, where a `BTreeMap` walked nodes scattered in memory (a cache
/// miss each at a thousand peers). One `u32` per key its endpoint ever
/// handed out: bounded by the connections the peer ever had (dials and
/// accepts over the run), [`KEYS_PER_PEER_MAX`] asserted.
#[derive(Default)]
struct KeyTable(Vec<u32>);

/// Keys one peer's endpoint may hand out in a run (4 bytes each in its
/// [`KeyTable`]: 4 MiB at most): far above what a run dials and accepts.
const KEYS_PER_PEER_MAX: u64 = 1 << 20;

impl KeyTable {
    const NONE: u32 = u32::MAX;

    fn get(&self, key: PeerKey) -> Option<u32> {
        usize::try_from(key.0)
            .ok()
            .and_then(|i| self.0.get(i))
            .copied()
            .filter(|&c| c != Self::NONE)
    }

    fn insert(&mut self, key: PeerKey, conn: u32) {
        assert!(key.0 < KEYS_PER_PEER_MAX, "{key:?}: too many keys");
        let i = key.0 as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, Self::NONE);
        }
        self.0[i] = conn;
    }

    fn remove(&mut self, key: PeerKey) {
        if let Some(slot) = usize::try_from(key.0).ok().and_then(|i| self.0.get_mut(i)) {
            *slot = Self::NONE;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Presence {
    NotYet,
    Present,
    Gone,
}

struct SimPeer {
    core: Option<TorrentCore>,
    /// Its connection policy: whom to dial, whom to accept, what to close.
    endpoint: Option<Endpoint>,
    /// Its endpoint's keys, to connections.
    keys: KeyTable,
    endpoint_timer: Option<Instant>,
    up: Link,
    down: Link,
    presence: Presence,
    /// Connections, pending dials included.
    conns: Vec<u32>,
    /// Connections whose `moved` flag for this peer is set: each at most
    /// once, so never more than the connections it ever had.
    moved: Vec<u32>,
    neighbours: Vec<usize>,
    timer: Option<Instant>,
    hash_busy_until: Instant,
    leave_scheduled: bool,
    /// An initial seed that uploaded its copies: it sends no more blocks,
    /// and leaves when the last one it sent is delivered.
    done_uploading: bool,
    /// When the last block it sent is through its receiver's downlink.
    last_delivery: Instant,
    out: PeerOutcome,
}

/// A simulation of one [`Scenario`]. `run` it to an [`Outcome`].
pub struct Simulation {
    sc: Scenario,
    lengths: Lengths,
    now: Instant,
    q: EventQueue<Ev>,
    peers: Vec<SimPeer>,
    /// Slots of closed connections, for the next dials: the connections
    /// open at once are a few dozen a peer, those of a run hundreds (BEP
    /// 40 replacements, refused dials), and a slot is ~0.5 KiB.
    conns: Vec<Conn>,
    free_conns: Vec<u32>,
    registry: TrackerRegistry,
    /// Copies of each piece among present peers.
    copies: Vec<u32>,
    /// Whether some leecher ever completed each piece, and how many such.
    out_of_seeds: Vec<bool>,
    out_of_seeds_count: u32,
    first_copy_at: Option<Instant>,
    /// Blocks of each piece the initial seeds uploaded.
    seed_blocks: Vec<u32>,
    leechers_done: usize,
    last_completion: Option<Instant>,
    uploaded: u64,
    /// Sum of the present peers' upload rates, and its integral so far.
    cap_rate: f64,
    cap_integral: f64,
    cap_since: Instant,
    samples: Vec<Sample>,
    /// When a sample last saw the upload count move.
    progress_at: Instant,
    since_check: u64,
    /// `pump`'s scratch list of the connection directions it wrote to.
    touched: Vec<(u32, u8)>,
}

/// The seed a peer's core draws from: the run's seed and its index, mixed.
fn core_seed(run: u64, peer: usize) -> u64 {
    let mut z = run ^ (peer as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Simulation {
    pub fn new(sc: Scenario) -> Self {
        let lengths = Lengths::new(sc.file_bytes(), sc.piece_len).expect("valid torrent lengths");
        let mut rng = Rng::new(sc.seed);
        let n = sc.seeds + sc.leechers;
        let registry = TrackerRegistry::new(
            sc.seed,
            u32::try_from(sc.announce_interval.as_micros() / 1_000_000).unwrap_or(u32::MAX),
        );
        // Free riders: a fixed count, drawn at random among the leechers.
        let riders = sc.free_rider_count();
        let mut is_rider = vec![false; n];
        let mut order: Vec<usize> = (sc.seeds..n).collect();
        for i in 0..riders.min(order.len()) {
            let j = i + rng.below(order.len() - i);
            order.swap(i, j);
            is_rider[order[i]] = true;
        }
        let mut q = EventQueue::default();
        let mut t = Instant::ZERO;
        let mut peers = Vec::with_capacity(n);
        for (i, &rider) in is_rider.iter().enumerate() {
            let seed = i < sc.seeds;
            let (up, down) = if seed {
                (sc.seed_up, sc.seed_down)
            } else if rider {
                (0.0, sc.peer_down)
            } else {
                (sc.peer_up, sc.peer_down)
            };
            let joined = if seed {
                Instant::ZERO
            } else {
                match sc.arrival {
                    Arrival::AllAtOnce => Instant::ZERO,
                    Arrival::Poisson { per_sec } => {
                        // Exponential gaps; 1 - unit() is in (0, 1].
                        let gap = -(1.0 - rng.unit()).ln() / per_sec;
                        t = t + Duration::from_micros((gap * 1e6) as u64);
                        t
                    }
                }
            };
            q.push(joined, Ev::Join(i));
            peers.push(SimPeer {
                core: None,
                endpoint: None,
                keys: KeyTable::default(),
                endpoint_timer: None,
                up: Link::new(up),
                down: Link::new(down),
                presence: Presence::NotYet,
                conns: Vec::new(),
                moved: Vec::new(),
                neighbours: Vec::new(),
                timer: None,
                hash_busy_until: Instant::ZERO,
                leave_scheduled: false,
                done_uploading: false,
                last_delivery: Instant::ZERO,
                out: PeerOutcome {
                    index: i,
                    initial_seed: seed,
                    free_rider: rider,
                    upload_rate: up,
                    joined: None,
                    completed: None,
                    left: None,
                    uploaded: 0,
                    downloaded: 0,
                    wasted: 0,
                },
            });
        }
        q.push(Instant::ZERO, Ev::Sample);
        Simulation {
            copies: vec![0; lengths.num_pieces() as usize],
            out_of_seeds: vec![false; lengths.num_pieces() as usize],
            out_of_seeds_count: 0,
            first_copy_at: None,
            seed_blocks: vec![0; lengths.num_pieces() as usize],
            sc,
            lengths,
            now: Instant::ZERO,
            q,
            peers,
            conns: Vec::new(),
            free_conns: Vec::new(),
            registry,
            leechers_done: 0,
            last_completion: None,
            uploaded: 0,
            cap_rate: 0.0,
            cap_integral: 0.0,
            cap_since: Instant::ZERO,
            samples: Vec::new(),
            progress_at: Instant::ZERO,
            since_check: 0,
            touched: Vec::new(),
        }
    }

    /// Runs to the last completion (or `time_max`), calling `progress` with
    /// the completed fraction of leechers at every sample.
    pub fn run(mut self, mut progress: impl FnMut(f64)) -> Outcome {
        let end_at = Instant::ZERO + self.sc.time_max;
        while let Some((at, ev)) = self.q.pop() {
            if at > end_at {
                self.now = end_at;
                break;
            }
            debug_assert!(at >= self.now, "time went backwards");
            self.now = at;
            if matches!(ev, Ev::Sample) {
                self.sample();
                progress(self.leechers_done as f64 / self.sc.leechers.max(1) as f64);
                if self.now.saturating_since(self.progress_at) > self.sc.stall_max {
                    break;
                }
            } else {
                self.handle(ev);
            }
            if self.leechers_done == self.sc.leechers {
                break;
            }
            if self.sc.check_every > 0 {
                self.since_check += 1;
                if self.since_check >= self.sc.check_every {
                    self.since_check = 0;
                    self.check_invariants();
                }
            }
        }
        self.finish()
    }

    fn finish(mut self) -> Outcome {
        for p in &mut self.peers {
            if let Some(core) = &p.core {
                let st = core.stats(self.now);
                (p.out.downloaded, p.out.wasted) = (st.downloaded, st.wasted);
            }
        }
        let cap_end = self.last_completion.unwrap_or(self.now);
        self.integrate_capacity(cap_end);
        self.sample();
        let lost = self.copies.iter().filter(|&&c| c == 0).count() as u32;
        Outcome {
            peers: self.peers.into_iter().map(|p| p.out).collect(),
            samples: self.samples,
            last_completion: (self.leechers_done == self.sc.leechers)
                .then_some(self.last_completion)
                .flatten()
                .or((self.sc.leechers == 0).then_some(Instant::ZERO)),
            end: self.now,
            uploaded: self.uploaded,
            upload_capacity: self.cap_integral,
            events: self.q.popped(),
            events_peak: self.q.peak(),
            pieces_lost_at_end: lost,
            first_copy_at: self.first_copy_at,
            seed_blocks: self.seed_blocks,
        }
    }

    /// Every present core's invariants.
    pub fn check_invariants(&self) {
        for p in &self.peers {
            if let Some(c) = &p.core {
                c.check_invariants();
            }
        }
    }

    fn integrate_capacity(&mut self, until: Instant) {
        if until > self.cap_since {
            self.cap_integral += self.cap_rate * (until - self.cap_since).as_secs_f64();
            self.cap_since = until;
        }
    }

    fn sample(&mut self) {
        let present = self
            .peers
            .iter()
            .filter(|p| p.presence == Presence::Present)
            .count();
        if self
            .samples
            .last()
            .is_none_or(|s| s.uploaded != self.uploaded)
        {
            self.progress_at = self.now;
        }
        let rarest = self.copies.iter().copied().min().unwrap_or(0);
        let mean = self.copies.iter().map(|&c| f64::from(c)).sum::<f64>()
            / self.copies.len().max(1) as f64;
        self.samples.push(Sample {
            at: self.now,
            present,
            completed: self.leechers_done,
            rarest_copies: rarest,
            mean_copies: mean,
            uploaded: self.uploaded,
        });
        self.q.push(self.now + self.sc.sample_interval, Ev::Sample);
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Join(p) => self.join(p),
            // Events of a connection whose slot went to a newer one are
            // stale, like those of a closed one.
            Ev::Connect(c, g) if self.current(c, g) => self.connect(c),
            Ev::Dialled(c, g) if self.current(c, g) => self.dialled(c),
            Ev::EndpointTimer(p) => {
                if self.peers[p].endpoint_timer == Some(self.now) {
                    self.peers[p].endpoint_timer = None;
                    if let Some(ep) = self.peers[p].endpoint.as_mut() {
                        ep.handle_timeout(self.now);
                        self.pump_endpoint(p);
                    }
                }
            }
            Ev::Arrive(c, g, dir) if self.current(c, g) => self.arrive(c, dir),
            Ev::UpDone(c, g, dir) if self.current(c, g) => self.up_done(c, dir),
            Ev::DownDone(c, g, dir) if self.current(c, g) => self.down_done(c, dir),
            Ev::Connect(..)
            | Ev::Dialled(..)
            | Ev::Arrive(..)
            | Ev::UpDone(..)
            | Ev::DownDone(..) => {}
            Ev::Timer(p) => {
                if self.peers[p].timer == Some(self.now) {
                    self.peers[p].timer = None;
                    if let Some(core) = self.peers[p].core.as_mut() {
                        core.handle_timeout(self.now);
                        self.pump(p);
                        self.report_progress(p);
                    }
                }
            }
            Ev::Verified(p, piece) => {
                if let Some(core) = self.peers[p].core.as_mut() {
                    core.handle_storage(self.now, StorageDone::PieceVerified { piece, ok: true });
                    self.pump(p);
                }
            }
            Ev::Leave(p) => self.leave(p),
            Ev::Announce(p) => self.announce(p, Event::None),
            Ev::Sample => {}
        }
    }

    /// An event of slot `c`'s use `g` is for the connection in it now.
    fn current(&self, c: u32, g: u32) -> bool {
        self.conns[c as usize].generation == g
    }

    fn join(&mut self, p: usize) {
        let n = self.lengths.num_pieces();
        let seed = self.peers[p].out.initial_seed;
        let have = if seed {
            Bitfield::full(n)
        } else {
            Bitfield::empty(n)
        };
        if seed {
            for c in &mut self.copies {
                *c += 1;
            }
        }
        let core = TorrentCore::new(
            self.sc.engine.clone(),
            self.lengths,
            have,
            core_seed(self.sc.seed, p),
            self.now,
        );
        self.integrate_capacity(self.now);
        self.cap_rate += self.peers[p].up.rate();
        let mut endpoint = Endpoint::new(
            self.sc.endpoint.clone(),
            peer_id(p),
            core_seed(self.sc.seed ^ 0xE9D9_0147, p),
        );
        endpoint
            .add_torrent(self.now, INFO_HASH)
            .expect("a new endpoint takes one torrent");
        endpoint.set_seeding(self.now, INFO_HASH, seed);
        endpoint.set_our_addr(addr_of(p));
        let sp = &mut self.peers[p];
        sp.core = Some(core);
        sp.endpoint = Some(endpoint);
        sp.presence = Presence::Present;
        sp.out.joined = Some(self.now);
        sp.up = Link::new(sp.up.rate());
        sp.down = Link::new(sp.down.rate());
        self.announce(p, Event::Started);
        self.pump_endpoint(p);
        self.pump(p);
    }

    /// Bytes `p` still needs (the tracker's `left`).
    fn left(&self, p: usize) -> u64 {
        let have = self.peers[p]
            .core
            .as_ref()
            .map_or(0, |c| u64::from(c.have().count_ones()));
        (u64::from(self.lengths.num_pieces()) - have) * u64::from(self.sc.piece_len)
    }

    fn announce(&mut self, p: usize, event: Event) {
        if self.peers[p].presence != Presence::Present {
            return;
        }
        if event != Event::Completed {
            self.q
                .push(self.now + self.sc.announce_interval, Ev::Announce(p));
        }
        let got = if self.sc.client_server {
            // Client-server: a leecher knows the servers (a web download's
            // URL) and nobody else; the tracker is not asked.
            if self.peers[p].out.initial_seed {
                Vec::new()
            } else {
                (0..self.sc.seeds).collect()
            }
        } else {
            let left = self.left(p);
            // `completed` only tells the tracker (it asks for no peers).
            let numwant = if event == Event::Completed {
                0
            } else {
                self.sc.numwant
            };
            self.registry.announce(self.now, p, left, event, numwant)
        };
        if let Some(ep) = self.peers[p].endpoint.as_mut() {
            ep.handle_peers(
                self.now,
                INFO_HASH,
                PeerSource::Tracker,
                got.into_iter().map(addr_of),
            );
        }
        self.pump_endpoint(p);
    }

    /// Carries out what `p`'s endpoint decided: dials, closes, announces.
    fn pump_endpoint(&mut self, p: usize) {
        while let Some(action) = self.peers[p]
            .endpoint
            .as_mut()
            .and_then(|e| e.poll_action())
        {
            match action {
                Action::Dial { conn, addr, .. } => self.dial(p, conn, addr),
                Action::Close { conn, .. } => {
                    if let Some(c) = self.peers[p].keys.get(conn) {
                        self.close(c);
                    }
                }
                // The simulator announces on its own schedule (arrival,
                // re-announce, completion, departure).
                Action::Announce { .. } => {}
            }
        }
        let Some(t) = self.peers[p]
            .endpoint
            .as_ref()
            .and_then(|e| e.poll_timeout())
        else {
            return;
        };
        let t = t.max(self.now);
        let sp = &mut self.peers[p];
        if sp.endpoint_timer.is_none_or(|old| t < old) {
            sp.endpoint_timer = Some(t);
            self.q.push(t, Ev::EndpointTimer(p));
        }
    }

    /// Tells `p`'s endpoint which connections made progress since its
    /// last tick, as swarm-net's session does once a tick: a block moved
    /// either way, or either side is interested (a choked, interested
    /// leecher waiting for its turn is not idle).
    fn report_progress(&mut self, p: usize) {
        let mut moved = std::mem::take(&mut self.peers[p].moved);
        for &c in &moved {
            let conn = &mut self.conns[c as usize];
            let Some(k) = (0..2).find(|&k| conn.ends[k] == p && conn.moved[k]) else {
                continue;
            };
            conn.moved[k] = false;
            if let (true, Some(key), Some(ep)) =
                (conn.open, conn.keys[k], self.peers[p].endpoint.as_mut())
            {
                ep.handle_progress(self.now, key);
            }
        }
        moved.clear();
        self.peers[p].moved = moved;
        let sp = &mut self.peers[p];
        let (Some(core), Some(ep)) = (sp.core.as_ref(), sp.endpoint.as_mut()) else {
            return;
        };
        for peer in core.busy_peers() {
            ep.handle_progress(self.now, peer);
        }
    }

    /// A block moved on connection `c`, sent or received by its end `k`:
    /// noted for that end's next tick (`report_progress`).
    fn note_moved(&mut self, c: u32, k: usize) {
        let conn = &mut self.conns[c as usize];
        if !conn.moved[k] {
            conn.moved[k] = true;
            self.peers[conn.ends[k]].moved.push(c);
        }
    }

    fn delay(&self, a: usize, b: usize) -> Duration {
        // Every peer has the same access latency in this model.
        let _ = (a, b);
        self.sc.latency + self.sc.latency
    }

    /// `a`'s endpoint dials `addr` as `key`: the SYN takes one way.
    fn dial(&mut self, a: usize, key: PeerKey, addr: std::net::SocketAddr) {
        let b = peer_of(addr).filter(|&b| b < self.peers.len());
        let mut conn = Conn {
            generation: 0,
            ends: [a, b.unwrap_or(a)],
            keys: [Some(key), None],
            open: true,
            established: false,
            dirs: [Dir::default(), Dir::default()],
            moved: [false; 2],
        };
        let c = if let Some(c) = self.free_conns.pop() {
            let slot = &mut self.conns[c as usize];
            conn.generation = slot.generation.wrapping_add(1);
            *slot = conn;
            c
        } else {
            let c = u32::try_from(self.conns.len()).expect("fewer than 2^32 connections");
            self.conns.push(conn);
            c
        };
        self.peers[a].keys.insert(key, c);
        self.peers[a].conns.push(c);
        let at = self.now + self.delay(a, b.unwrap_or(a));
        self.q
            .push(at, Ev::Connect(c, self.conns[c as usize].generation));
    }

    /// The dial reaches its peer: nobody there (refused), or its endpoint
    /// accepts it; the handshakes then take a round trip.
    fn connect(&mut self, c: u32) {
        let conn = &self.conns[c as usize];
        if !conn.open {
            return;
        }
        let [a, b] = conn.ends;
        let accepted = if a == b || self.peers[b].presence != Presence::Present {
            None
        } else {
            self.peers[b]
                .endpoint
                .as_mut()
                .and_then(|ep| ep.handle_accept(self.now, addr_of(a)).ok())
        };
        match accepted {
            None => self.close(c),
            Some(kb) => {
                self.conns[c as usize].keys[1] = Some(kb);
                self.peers[b].keys.insert(kb, c);
                self.peers[b].conns.push(c);
                let rtt = self.delay(a, b) + self.delay(b, a);
                let g = self.conns[c as usize].generation;
                self.q.push(self.now + rtt, Ev::Dialled(c, g));
            }
        }
    }

    fn dialled(&mut self, c: u32) {
        let conn = &self.conns[c as usize];
        if !conn.open {
            return;
        }
        let ends = conn.ends;
        let keys = conn.keys.map(|k| k.expect("both ends have keys by now"));
        // Each endpoint judges the other's handshake.
        for k in 0..2 {
            let ok = self.peers[ends[k]].endpoint.as_mut().is_some_and(|ep| {
                ep.handle_handshake(self.now, keys[k], INFO_HASH, peer_id(ends[1 - k]))
                    .is_ok()
            });
            if !ok {
                // The refusing endpoint has forgotten it already.
                self.close(c);
                for e in ends {
                    self.pump_endpoint(e);
                }
                return;
            }
        }
        self.conns[c as usize].established = true;
        for (k, &e) in ends.iter().enumerate() {
            self.peers[e].neighbours.push(ends[1 - k]);
            let Some(core) = self.peers[e].core.as_mut() else {
                continue;
            };
            let info = PeerInfo {
                fast_ext: true,
                outgoing: k == 0,
            };
            core.peer_connected(self.now, keys[k], info);
            // The BEP 10 handshake a swarm peer sends advertises this reqq.
            core.peer_extension_handshake(
                self.now,
                keys[k],
                ExtensionInfo {
                    reqq: Some(PEER_REQUESTS_MAX as u32),
                },
            );
        }
        for e in ends {
            self.pump_endpoint(e);
            self.pump(e);
        }
    }

    /// Closes a connection: both cores forget it (a no-op for a core that
    /// dropped it itself); what was on its way is lost (its blocks still
    /// take their time on the links, see [`Link`]).
    fn close(&mut self, c: u32) {
        let conn = &mut self.conns[c as usize];
        if !conn.open {
            return;
        }
        conn.open = false;
        let established = conn.established;
        conn.dirs = [Dir::default(), Dir::default()];
        let ends = conn.ends;
        let keys = conn.keys;
        for (k, &e) in ends.iter().enumerate() {
            let Some(key) = keys[k] else {
                continue;
            };
            let other = ends[1 - k];
            let sp = &mut self.peers[e];
            sp.conns.retain(|&x| x != c);
            sp.keys.remove(key);
            if established && let Some(i) = sp.neighbours.iter().position(|&x| x == other) {
                sp.neighbours.swap_remove(i);
            }
            if let Some(ep) = sp.endpoint.as_mut() {
                ep.handle_closed(self.now, key);
            }
            if established && let Some(core) = sp.core.as_mut() {
                core.peer_disconnected(self.now, key);
            }
        }
        for (k, &e) in ends.iter().enumerate() {
            if keys[k].is_some() {
                self.pump_endpoint(e);
                self.pump(e);
            }
        }
        self.free_conns.push(c);
    }

    /// Drains a core after an input: storage jobs are answered, disconnects
    /// executed, messages queued on their connections, its timer set.
    fn pump(&mut self, p: usize) {
        loop {
            let Some(core) = self.peers[p].core.as_mut() else {
                return;
            };
            let Some(ev) = core.poll_event() else {
                break;
            };
            match ev {
                TorrentEvent::ReadBlock { peer, block } => {
                    let data = Bytes::from_static(&BLOCK[..block.length as usize]);
                    core.handle_storage(self.now, StorageDone::BlockRead { peer, block, data });
                }
                TorrentEvent::VerifyPiece { piece, .. } => match self.sc.hash_rate {
                    None => core
                        .handle_storage(self.now, StorageDone::PieceVerified { piece, ok: true }),
                    Some(rate) => {
                        let secs = f64::from(self.lengths.piece_len(piece)) / rate;
                        let sp = &mut self.peers[p];
                        let start = sp.hash_busy_until.max(self.now);
                        sp.hash_busy_until = start + Duration::from_micros((secs * 1e6) as u64);
                        self.q.push(sp.hash_busy_until, Ev::Verified(p, piece));
                    }
                },
                TorrentEvent::Disconnect { peer, .. } => {
                    if let Some(c) = self.peers[p].keys.get(peer) {
                        self.close(c);
                    }
                }
                TorrentEvent::PieceCompleted(piece) => {
                    let i = piece.as_usize();
                    self.copies[i] += 1;
                    if !self.out_of_seeds[i] {
                        self.out_of_seeds[i] = true;
                        self.out_of_seeds_count += 1;
                        if self.out_of_seeds_count == self.lengths.num_pieces() {
                            self.first_copy_at = Some(self.now);
                        }
                    }
                }
                TorrentEvent::PeerSeed(peer) => {
                    if let Some(ep) = self.peers[p].endpoint.as_mut() {
                        ep.handle_peer_seed(self.now, peer);
                        self.pump_endpoint(p);
                    }
                }
                TorrentEvent::Completed => {
                    if let Some(ep) = self.peers[p].endpoint.as_mut() {
                        ep.set_seeding(self.now, INFO_HASH, true);
                        self.pump_endpoint(p);
                    }
                    self.completed(p);
                }
                TorrentEvent::Fatal(e) => panic!("peer {p}: fatal engine error: {e}"),
            }
        }
        // The connections written to, in order (a scratch buffer kept
        // between calls: this runs for nearly every event).
        let mut touched = std::mem::take(&mut self.touched);
        while let Some((key, msg)) = self.peers[p].core.as_mut().and_then(|c| c.poll_transmit()) {
            let Some(c) = self.peers[p].keys.get(key) else {
                continue;
            };
            let conn = &mut self.conns[c as usize];
            if !conn.open {
                continue;
            }
            let dir = u8::from(conn.ends[0] != p);
            if msg == Message::Interested
                && let Some(ep) = self.peers[p].endpoint.as_mut()
            {
                // Busy from now on (the per-tick report would come up to a
                // tick late: an eviction in between would cut a transfer
                // that just started).
                ep.handle_progress(self.now, key);
            }
            let conn = &mut self.conns[c as usize];
            conn.dirs[dir as usize].out.push_back(msg.into());
            if touched.last() != Some(&(c, dir)) {
                touched.push((c, dir));
            }
        }
        for &(c, dir) in &touched {
            self.flush(c, dir);
        }
        touched.clear();
        self.touched = touched;
        if let Some(t) = self.peers[p].core.as_ref().and_then(|c| c.poll_timeout()) {
            let t = t.max(self.now);
            let sp = &mut self.peers[p];
            if sp.timer.is_none_or(|old| t < old) {
                sp.timer = Some(t);
                self.q.push(t, Ev::Timer(p));
            }
        }
    }

    /// Sends what a direction may send now: control messages up to the
    /// first block, which then takes the sender's uplink.
    fn flush(&mut self, c: u32, dir: u8) {
        let delay = self.sc.latency + self.sc.latency;
        let now = self.now;
        let conn = &mut self.conns[c as usize];
        let from = conn.ends[dir as usize];
        let d = &mut conn.dirs[dir as usize];
        let blocks_allowed = !self.peers[from].done_uploading;
        if d.up.is_none() && d.out.len() > 1 {
            // As swarm-net's writer: messages that ride ahead go before
            // what is queued in front of them (not before the block on the
            // uplink: it is in the socket), up to the first message that
            // opens the connection.
            let mut from = 0;
            while let Some(m) = take_rider(
                &mut d.out,
                &mut from,
                SimMessage::rides_ahead,
                SimMessage::opens,
            ) {
                if d.send_control(now + delay, m) {
                    self.q
                        .push_in_order(now + delay, Ev::Arrive(c, conn.generation, dir));
                }
            }
        }
        while d.up.is_none() {
            let Some(msg) = d.out.pop_front() else {
                break;
            };
            let len = msg.block_len();
            if !blocks_allowed && len.is_some() {
                d.out.push_front(msg);
                break;
            }
            if let Some(len) = len {
                let seq = d.next_seq;
                d.next_seq += 1;
                d.up = Some((seq, msg));
                if let Some(at) = self.peers[from].up.pass(now, len) {
                    self.q.push(at, Ev::UpDone(c, conn.generation, dir));
                }
            } else if d.send_control(now + delay, msg) {
                // Always `now` plus the one delay: in time order.
                self.q
                    .push_in_order(now + delay, Ev::Arrive(c, conn.generation, dir));
            }
        }
    }

    /// A block left its sender's uplink: it travels the latency, then
    /// crosses the receiver's downlink (blocks reach a downlink in the
    /// order they left their uplinks: every path has the same delay).
    fn up_done(&mut self, c: u32, dir: u8) {
        let delay = self.sc.latency + self.sc.latency;
        let now = self.now;
        let conn = &mut self.conns[c as usize];
        if !conn.open {
            return;
        }
        let (from, to) = (conn.ends[dir as usize], conn.ends[1 - dir as usize]);
        let d = &mut conn.dirs[dir as usize];
        let Some((seq, msg)) = d.up.take() else {
            return;
        };
        let len = msg.block_len().unwrap_or(0);
        d.down.push_back((seq, msg));
        // A downlink of rate 0 never delivers.
        if let Some(at) = self.peers[to].down.pass(now + delay, len) {
            self.q.push(at, Ev::DownDone(c, conn.generation, dir));
            let sp = &mut self.peers[from];
            sp.last_delivery = sp.last_delivery.max(at);
        }
        self.uploaded += u64::from(len);
        if self.peers[from].out.initial_seed
            && let Some(piece) = d.down.back().and_then(|(_, m)| m.block_piece())
        {
            self.seed_blocks[piece as usize] += 1;
        }
        self.peers[from].out.uploaded += u64::from(len);
        self.note_moved(c, dir as usize);
        self.flush(c, dir);
        self.seed_may_leave(from);
    }

    fn down_done(&mut self, c: u32, dir: u8) {
        let conn = &mut self.conns[c as usize];
        if !conn.open {
            return;
        }
        let Some((seq, msg)) = conn.dirs[dir as usize].down.pop_front() else {
            return;
        };
        self.note_moved(c, 1 - dir as usize);
        self.ready(c, dir, seq, msg);
    }

    fn seed_may_leave(&mut self, p: usize) {
        let SeedDeparture::AfterCopies(copies) = self.sc.seed_departure else {
            return;
        };
        let sp = &mut self.peers[p];
        if sp.out.initial_seed
            && !sp.leave_scheduled
            && sp.out.uploaded as f64 >= copies * self.sc.file_bytes() as f64
        {
            // It stops sending now and leaves once what it sent is
            // delivered (a socket closed after its send buffer drained).
            sp.leave_scheduled = true;
            sp.done_uploading = true;
            let at = sp.last_delivery.max(self.now);
            self.q.push(at, Ev::Leave(p));
        }
    }

    /// Control messages due by now reach their receiver.
    fn arrive(&mut self, c: u32, dir: u8) {
        loop {
            let conn = &mut self.conns[c as usize];
            if !conn.open {
                return;
            }
            let d = &mut conn.dirs[dir as usize];
            if d.wire.front().is_none_or(|&(at, _, _)| at > self.now) {
                return;
            }
            let Some((_, seq, msg)) = d.wire.pop_front() else {
                return;
            };
            self.ready(c, dir, seq, msg);
        }
    }

    /// A message is at its receiver: deliver it and whatever it held back.
    fn ready(&mut self, c: u32, dir: u8, seq: u64, msg: SimMessage) {
        let dir = dir as usize;
        let conn = &mut self.conns[c as usize];
        let to = conn.ends[1 - dir];
        let Some(key) = conn.keys[1 - dir] else {
            return;
        };
        let d = &mut conn.dirs[dir];
        if seq == d.deliver_seq && d.arrived.is_empty() {
            // In order, nothing held back: the common case.
            d.deliver_seq += 1;
            if let Some(core) = self.peers[to].core.as_mut() {
                core.handle_message(self.now, key, msg.into());
                self.pump(to);
            }
            return;
        }
        let i = (seq - d.deliver_seq) as usize;
        if d.arrived.len() <= i {
            d.arrived.resize_with(i + 1, || None);
        }
        d.arrived[i] = Some(msg);
        loop {
            let conn = &mut self.conns[c as usize];
            if !conn.open {
                break;
            }
            let d = &mut conn.dirs[dir];
            let Some(Some(_)) = d.arrived.front() else {
                break;
            };
            let Some(Some(msg)) = d.arrived.pop_front() else {
                break;
            };
            d.deliver_seq += 1;
            let Some(core) = self.peers[to].core.as_mut() else {
                break;
            };
            core.handle_message(self.now, key, msg.into());
            self.pump(to);
        }
    }

    fn completed(&mut self, p: usize) {
        let sp = &mut self.peers[p];
        if sp.out.initial_seed || sp.out.completed.is_some() {
            return;
        }
        sp.out.completed = Some(self.now);
        self.leechers_done += 1;
        self.last_completion = Some(self.now);
        self.announce(p, Event::Completed);
        let sp = &mut self.peers[p];
        // A client-server leecher is a web client: done, it closes its
        // connection (staying, it held one of the server's connection
        // slots until idle eviction, 20 s, and kept the next client out).
        let departure = if self.sc.client_server {
            Departure::OnCompletion
        } else {
            self.sc.departure
        };
        let at = match departure {
            Departure::OnCompletion => Some(self.now),
            Departure::SeedFor(d) => Some(self.now + d),
            Departure::Stay => None,
        };
        if let Some(at) = at {
            sp.leave_scheduled = true;
            self.q.push(at, Ev::Leave(p));
        }
    }

    fn leave(&mut self, p: usize) {
        if self.peers[p].presence != Presence::Present {
            return;
        }
        // Its core and endpoint go first: closing its connections must not
        // make it dial others or send anything.
        let left = self.left(p);
        let sp = &mut self.peers[p];
        sp.presence = Presence::Gone;
        sp.out.left = Some(self.now);
        sp.timer = None;
        sp.endpoint = None;
        sp.endpoint_timer = None;
        if let Some(core) = sp.core.take() {
            let st = core.stats(self.now);
            (sp.out.downloaded, sp.out.wasted) = (st.downloaded, st.wasted);
            for i in core.have().iter_ones() {
                self.copies[i as usize] -= 1;
            }
        }
        let conns = self.peers[p].conns.clone();
        for c in conns {
            self.close(c);
        }
        self.integrate_capacity(self.now);
        self.cap_rate -= self.peers[p].up.rate();
        if !self.sc.client_server {
            self.registry.leave(self.now, p, left);
        }
    }
}
