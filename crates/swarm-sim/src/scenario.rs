//! What to simulate: the torrent, the peers and their links, how they come
//! and go, and the engines' configuration.

use swarm_engine::{Duration, EndpointConfig, TorrentConfig};

/// How leechers arrive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrival {
    /// All at time zero (a flash crowd).
    AllAtOnce,
    /// A Poisson process of `per_sec` arrivals per second.
    Poisson { per_sec: f64 },
}

/// When a leecher leaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Departure {
    /// As soon as it completes.
    OnCompletion,
    /// After seeding this long.
    SeedFor(Duration),
    /// Never (it seeds until the run ends).
    Stay,
}

/// When the initial seeds leave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SeedDeparture {
    Stay,
    /// After uploading this many copies of the torrent (1.0: one copy).
    AfterCopies(f64),
}

/// One simulated swarm. Rates are bytes per second.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Seeds the run: the same scenario and seed give the same result, bit for bit.
    pub seed: u64,
    pub pieces: u32,
    /// Bytes per piece; blocks are 16 KiB as on the wire.
    pub piece_len: u32,
    /// Leechers (the N of the bounds).
    pub leechers: usize,
    /// Initial seeds (the server).
    pub seeds: usize,
    pub seed_up: f64,
    pub seed_down: f64,
    pub peer_up: f64,
    /// `f64::INFINITY`: downloads are limited only by the senders.
    pub peer_down: f64,
    /// Fraction of leechers that upload nothing (upload capacity 0).
    pub free_riders: f64,
    /// One-way delay of each peer's access link; a message from A to B
    /// takes A's plus B's.
    pub latency: Duration,
    pub arrival: Arrival,
    pub departure: Departure,
    pub seed_departure: SeedDeparture,
    /// Client-server mode: leechers only ever learn of the seeds, and leave
    /// when done (whatever `departure` says), as web clients do.
    pub client_server: bool,
    /// Hashing (and writing) a piece costs `piece_len / rate`, one piece at
    /// a time per peer; `None`: instant. Reading a block is always instant.
    pub hash_rate: Option<f64>,
    /// The engines' configuration, the same for every peer.
    pub engine: TorrentConfig,
    /// Peers a tracker answer carries.
    pub numwant: usize,
    /// Every peer's connection policy (swarm's `Endpoint`): caps per
    /// torrent (50) and on dials in flight, back-offs, idle eviction.
    pub endpoint: EndpointConfig,
    /// How often a peer re-announces (and gets more addresses).
    pub announce_interval: Duration,
    /// How often the run records a sample (piece copies, completions).
    pub sample_interval: Duration,
    /// The run stops here if not every leecher completed before.
    pub time_max: Duration,
    /// The run stops when no byte was uploaded for this long (a swarm that
    /// lost pieces, or peers that cannot reach each other).
    pub stall_max: Duration,
    /// Run every core's `check_invariants` after this many events (0: never).
    pub check_every: u64,
}

impl Default for Scenario {
    /// 100 leechers and one seed, all at 1 MiB/s up and 4 MiB/s down, a
    /// 32 MiB torrent of 128 pieces of 256 KiB, 20 ms one-way latency.
    fn default() -> Self {
        const MIB: f64 = 1024.0 * 1024.0;
        Scenario {
            seed: 1,
            pieces: 128,
            piece_len: 256 * 1024,
            leechers: 100,
            seeds: 1,
            seed_up: MIB,
            seed_down: 4.0 * MIB,
            peer_up: MIB,
            peer_down: 4.0 * MIB,
            free_riders: 0.0,
            latency: Duration::from_millis(20),
            arrival: Arrival::AllAtOnce,
            departure: Departure::Stay,
            seed_departure: SeedDeparture::Stay,
            client_server: false,
            hash_rate: None,
            engine: TorrentConfig::default(),
            numwant: 50,
            endpoint: EndpointConfig::default(),
            announce_interval: Duration::from_secs(60),
            sample_interval: Duration::from_secs(5),
            time_max: Duration::from_secs(24 * 3600),
            stall_max: Duration::from_secs(300),
            check_every: 0,
        }
    }
}

impl Scenario {
    /// The torrent's size in bytes (F).
    pub fn file_bytes(&self) -> u64 {
        u64::from(self.pieces) * u64::from(self.piece_len)
    }

    /// How many leechers are free riders: `free_riders` of them, rounded.
    pub fn free_rider_count(&self) -> usize {
        (self.free_riders * self.leechers as f64).round() as usize
    }
}
