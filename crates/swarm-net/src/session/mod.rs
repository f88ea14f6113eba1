//! The session: the one task that owns a torrent's [`TorrentCore`].
//!
//! It `select!`s over the core's next timeout, the batches of messages the
//! connections' reader tasks forward (a bounded channel: a slow session
//! slows the readers, and TCP slows the peers), completed handshakes and
//! storage jobs, tracker answers, the listener, a one-second housekeeping
//! tick and commands from the handle. After each input it drains the core in
//! the documented order: events first (storage jobs go to the blocking pool,
//! `Disconnect` closes the socket, a ban remembers the IP), then transmits
//! (each to its peer's writer task).
//!
//! Nothing here decides protocol matters: which piece, whom to unchoke, when
//! a peer is bad are the core's calls. The session decides only IO matters:
//! whom to dial (CLI and tracker addresses, with back-off), how many
//! connections (`connections_max`), refusing banned IPs and duplicates.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use swarm_engine::{
    Bitfield, Duration as CoreDuration, ExtensionInfo, InfoHash, Instant as CoreInstant,
    PEER_REQUESTS_MAX, PeerId, PeerInfo, PeerKey, StorageDone, TorrentConfig, TorrentCore,
    TorrentEvent,
};
use swarm_wire::lengths::{BlockInfo, Lengths};
use swarm_wire::peer::{EXTENDED_HANDSHAKE_ID, ExtendedHandshake, Message, MessageDecoder};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::conn::{self, ConnError, Handshaken, PeerInput, SEND_BUFFER_HIGH_BYTES};

mod announce;
use crate::listener::Acceptor;
use crate::ratelimit::RateLimiter;
use crate::resume::{ResumeSaver, ResumeStore};
use crate::storage::Storage;
use crate::tracker::{AnnounceStats, TrackerClient, TrackerConfig};
use crate::{NetError, TorrentSpec};
use announce::{TrackerCommand, TrackerTask, tracker_task};

/// Connections (open and being opened) per torrent, by default.
pub const CONNECTIONS_MAX_DEFAULT: usize = 50;
/// Batches of messages the readers may queue ahead of the session.
pub const PEER_CHANNEL_LEN: usize = 256;
/// First retry delay after a failed dial; doubles per failure.
pub const DIAL_BACKOFF_BASE: Duration = Duration::from_secs(2);
pub const DIAL_BACKOFF_MAX: Duration = Duration::from_secs(120);
/// A peer we dial that fails this many times in a row (connect or
/// handshake) is reported once at the default level, with the reason.
pub const DIAL_FAILURES_REPORT: u32 = 3;
/// Before redialling an address whose connection closed.
pub const REDIAL_DELAY: Duration = Duration::from_secs(10);
/// The `stopped` announce at exit may take this long at most.
pub const STOP_ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);
/// Storage jobs (piece checks and writes, batches of reads) running at once
/// on the blocking pool; more wait in the session. Several jobs writing one
/// file only contend for its lock, and each running job holds its piece.
pub const STORAGE_JOBS_MAX: usize = 2;
/// While pieces waiting to be checked and written hold more than this many
/// bytes, the session stops taking messages from peers: the readers block,
/// and TCP slows the senders down. Bounds memory when the disk is slower
/// than the network.
pub const VERIFY_BACKLOG_MAX_BYTES: usize = 16 * 1024 * 1024;
/// A peer with this much queued for it and not yet written is dropped: it
/// does not read what we send. Blocks stop being read for a peer at
/// [`conn::SEND_BUFFER_HIGH_BYTES`] (its deep request queue waits as
/// requests), so only small messages get it this far.
pub const WRITE_QUEUE_MAX_BYTES: usize = 16 * 1024 * 1024;
/// At exit, how long running piece writes may take before the final resume
/// record is saved without them.
pub const STORAGE_FINISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the status is published and dialling reconsidered.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// The first ports `bind_listener` tries when no address is given (6881-6889,
/// BitTorrent's classic range).
pub const LISTEN_PORTS: std::ops::RangeInclusive<u16> = 6881..=6889;

/// Binds `addr`, or the first free port of 0.0.0.0:6881..=6889.
pub async fn bind_listener(addr: Option<SocketAddr>) -> Result<TcpListener, NetError> {
    if let Some(addr) = addr {
        return TcpListener::bind(addr)
            .await
            .map_err(|source| NetError::Listen { addr, source });
    }
    let mut last = None;
    for port in LISTEN_PORTS {
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some((addr, e)),
        }
    }
    let (addr, source) = last.unwrap_or_else(|| {
        (
            SocketAddr::from(([0, 0, 0, 0], 0)),
            std::io::Error::other("no port to try"),
        )
    });
    Err(NetError::Listen { addr, source })
}

/// Knobs of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Addresses to dial (and redial) from the start (`--peer`).
    pub peers: Vec<SocketAddr>,
    pub peer_id: PeerId,
    pub connections_max: usize,
    pub torrent: TorrentConfig,
    pub tracker: TrackerConfig,
    pub upload_limit: Option<Arc<RateLimiter>>,
    pub download_limit: Option<Arc<RateLimiter>>,
    /// Seeds the core's RNG.
    pub rng_seed: u64,
    /// Where to save the resume record (none: never saved).
    pub resume: Option<Arc<ResumeStore>>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            peers: Vec::new(),
            peer_id: crate::new_peer_id(),
            connections_max: CONNECTIONS_MAX_DEFAULT,
            torrent: TorrentConfig::default(),
            tracker: TrackerConfig::default(),
            upload_limit: None,
            download_limit: None,
            rng_seed: rand::random(),
            resume: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionState {
    #[default]
    Downloading,
    Seeding,
    Stopped,
    Failed,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Downloading => "downloading",
            SessionState::Seeding => "seeding",
            SessionState::Stopped => "stopped",
            SessionState::Failed => "failed",
        }
    }
}

/// A snapshot for the user, published every second and on completion.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionStatus {
    pub state: SessionState,
    pub complete: bool,
    pub pieces_have: u32,
    pub pieces_total: u32,
    pub total_length: u64,
    /// Bytes still missing.
    pub left: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub wasted: u64,
    pub download_rate: f64,
    pub upload_rate: f64,
    pub peers: usize,
    pub connecting: usize,
    /// IP addresses refused after a ban.
    pub banned: usize,
    pub hash_failures: u32,
    pub listen_port: u16,
    pub error: Option<String>,
    /// Every connected peer, with the choker's last verdict on it, ordered
    /// by download rate (fastest first).
    pub neighbours: Vec<NeighbourStatus>,
}

/// One connected peer as the user sees it (`--peers`, `--json`).
#[derive(Clone, Debug, PartialEq)]
pub struct NeighbourStatus {
    pub addr: SocketAddr,
    /// The client it runs, from its peer id (`libtorrent 2.0`, `-TR3000-`...).
    pub client: String,
    /// We dialled it (false: it connected to us).
    pub outgoing: bool,
    /// The choker's last verdict: `unchoked` (a regular slot), `optimistic`,
    /// `choked` or `snubbed` (`choked` until the first rechoke saw it).
    pub choke: &'static str,
    /// Why, in words (`top-4 by download rate (#2)`, `optimistic since 12 s`).
    pub reason: String,
    /// Seconds it has been in that state.
    pub choke_for_s: f64,
    /// Bytes/s over the last 20 s, from it and to it.
    pub download_rate: f64,
    pub upload_rate: f64,
    pub downloaded: u64,
    pub uploaded: u64,
    /// It unchokes us / wants data from us / we want data from it.
    pub unchokes_us: bool,
    pub interested: bool,
    pub we_are_interested: bool,
    /// Pieces it has.
    pub pieces: u32,
    pub requests_in_flight: usize,
}

enum Command {
    Stop,
}

/// Controls a running session.
pub struct SessionHandle {
    status: watch::Receiver<SessionStatus>,
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<Result<SessionStatus, NetError>>,
}

impl SessionHandle {
    /// The latest status.
    pub fn status(&self) -> SessionStatus {
        self.status.borrow().clone()
    }

    /// A receiver that wakes on every published status.
    pub fn watch(&self) -> watch::Receiver<SessionStatus> {
        self.status.clone()
    }

    /// Asks the session to stop: close the connections, announce `stopped`.
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// Waits for the session to end; its last status, or why it failed.
    pub async fn join(self) -> Result<SessionStatus, NetError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(NetError::Fatal(format!("session task: {e}"))),
        }
    }
}

/// Starts the owner task of one torrent. `have`: the pieces already verified
/// on disk; `listener`: where peers reach us (its port goes to trackers).
pub fn spawn(
    spec: &TorrentSpec,
    storage: Arc<Storage>,
    have: Bitfield,
    listener: TcpListener,
    config: SessionConfig,
) -> SessionHandle {
    let epoch = Instant::now();
    let lengths = spec.lengths;
    let started_complete = have.is_all_set();
    let core = TorrentCore::new(
        config.torrent.clone(),
        lengths,
        have,
        config.rng_seed,
        CoreInstant(0),
    );
    let listen_port = listener.local_addr().map_or(0, |a| a.port());
    let (status_tx, status_rx) = watch::channel(SessionStatus::default());
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (peer_tx, peer_rx) = mpsc::channel(PEER_CHANNEL_LEN);
    let (input_tx, input_rx) = mpsc::unbounded_channel();
    let (stats_tx, stats_rx) = watch::channel(AnnounceStats::default());
    let tracker = if spec.trackers.iter().flatten().next().is_some() {
        let mut tracker_config = config.tracker.clone();
        if tracker_config.local_ip.is_none() {
            // Announce from where we listen, so the tracker hands out
            // the address peers can reach us on.
            tracker_config.local_ip = listener
                .local_addr()
                .ok()
                .map(|a| a.ip())
                .filter(|ip| !ip.is_unspecified());
        }
        let client = TrackerClient::with_config(
            spec.trackers.clone(),
            spec.info_hash,
            config.peer_id,
            listen_port,
            tracker_config,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(tracker_task(client, rx, stats_rx, input_tx.clone()));
        Some(TrackerTask { tx, task })
    } else {
        None
    };
    let now = Instant::now();
    let candidates = config
        .peers
        .iter()
        .map(|&a| {
            (
                a,
                Candidate {
                    failures: 0,
                    next_attempt: now,
                    peer_id: None,
                    reported: false,
                },
            )
        })
        .collect();
    let resume = config.resume.clone().map(ResumeSaver::new);
    let mut session = Session {
        resume,
        core,
        lengths,
        pads: spec.pads(),
        info_hash: spec.info_hash,
        storage,
        listener: Acceptor::new(listener),
        listen_port,
        config,
        epoch,
        conns: HashMap::new(),
        connecting: HashSet::new(),
        handshaking_in: 0,
        candidates,
        self_addrs: HashSet::new(),
        banned: HashSet::new(),
        next_key: 0,
        peer_tx,
        peer_rx,
        input_tx,
        input_rx,
        cmd_rx,
        status_tx,
        stats_tx,
        tracker,
        started_complete,
        fatal: None,
        storage_queue: std::collections::VecDeque::new(),
        storage_running: 0,
        verify_backlog: 0,
    };
    // The first status anyone reads is the real one (the pieces found on
    // disk), not the channel's empty default.
    session.publish();
    let task = tokio::spawn(session.run());
    SessionHandle {
        status: status_rx,
        commands: cmd_tx,
        task,
    }
}

struct Conn {
    addr: SocketAddr,
    peer_id: PeerId,
    outgoing: bool,
    tx: mpsc::UnboundedSender<Message>,
    /// Bytes queued for the writer and not yet written (the writer subtracts).
    queued: Arc<AtomicUsize>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Conn {
    /// Queues `msg` for the writer; false once more than
    /// [`WRITE_QUEUE_MAX_BYTES`] wait to be written.
    fn send(&self, msg: Message) -> bool {
        let len = msg.encoded_len();
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        let _ = self.tx.send(msg);
        before + len <= WRITE_QUEUE_MAX_BYTES
    }

    fn close(&self) {
        self.reader.abort();
        self.writer.abort();
    }
}

struct Candidate {
    failures: u32,
    next_attempt: Instant,
    /// The peer id it answered with last time: not dialled again while a
    /// connection with that id is open (it may have dialled us).
    peer_id: Option<PeerId>,
    /// Its failures were reported at the default level (once a candidate).
    reported: bool,
}

enum Input {
    Handshaken(Box<Handshaken>),
    HandshakeFailed {
        addr: SocketAddr,
        outgoing: bool,
        error: ConnError,
    },
    Storage(Vec<StorageDone>),
    TrackerPeers(Vec<SocketAddr>),
}

impl Input {
    /// The outcome of a connect (`outgoing`) or accept task for the owner task.
    fn handshake(result: Result<Handshaken, ConnError>, addr: SocketAddr, outgoing: bool) -> Input {
        match result {
            Ok(h) => Input::Handshaken(Box::new(h)),
            Err(error) => Input::HandshakeFailed {
                addr,
                outgoing,
                error,
            },
        }
    }
}

struct Session {
    /// Saves the resume record (see [`ResumeSaver`]).
    resume: Option<ResumeSaver>,
    core: TorrentCore,
    lengths: Lengths,
    /// BEP 47 pad files: the status counts real bytes only.
    pads: crate::spec::PadRanges,
    info_hash: InfoHash,
    storage: Arc<Storage>,
    listener: Acceptor,
    listen_port: u16,
    config: SessionConfig,
    epoch: Instant,
    conns: HashMap<PeerKey, Conn>,
    /// Outgoing connections being opened (address dialled).
    connecting: HashSet<SocketAddr>,
    /// Incoming connections whose handshake is in progress.
    handshaking_in: usize,
    /// Addresses we dial: `--peer` ones and tracker ones.
    candidates: HashMap<SocketAddr, Candidate>,
    /// Addresses that turned out to be ourselves.
    self_addrs: HashSet<SocketAddr>,
    banned: HashSet<IpAddr>,
    next_key: u64,
    peer_tx: mpsc::Sender<PeerInput>,
    peer_rx: mpsc::Receiver<PeerInput>,
    input_tx: mpsc::UnboundedSender<Input>,
    input_rx: mpsc::UnboundedReceiver<Input>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    status_tx: watch::Sender<SessionStatus>,
    stats_tx: watch::Sender<AnnounceStats>,
    tracker: Option<TrackerTask>,
    started_complete: bool,
    fatal: Option<String>,
    /// Storage jobs waiting for a slot, oldest first.
    storage_queue: std::collections::VecDeque<StorageJob>,
    storage_running: usize,
    /// Bytes of pieces handed to storage and not yet answered.
    verify_backlog: usize,
}

/// Work for the blocking pool.
enum StorageJob {
    Verify {
        piece: swarm_wire::lengths::ValidPieceIndex,
        blocks: Vec<bytes::Bytes>,
    },
    Read(Vec<(PeerKey, BlockInfo)>),
}

impl Session {
    fn now(&self) -> CoreInstant {
        CoreInstant(
            Instant::now()
                .saturating_duration_since(self.epoch)
                .as_micros() as u64,
        )
    }

    fn to_tokio(&self, t: CoreInstant) -> Instant {
        self.epoch + Duration::from_micros(t.0)
    }

    async fn run(mut self) -> Result<SessionStatus, NetError> {
        tracing::info!(
            port = self.listen_port,
            pieces = self.lengths.num_pieces(),
            have = self.core.have().count_ones(),
            "session started"
        );
        if self.started_complete {
            // Nothing to download: `Completed` will never come from the core.
            self.publish();
        }
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.core.poll_timeout().map_or_else(
                || Instant::now() + HOUSEKEEPING_INTERVAL,
                |t| self.to_tokio(t),
            );
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Command::Stop) | None => break,
                },
                Some(input) = self.peer_rx.recv(), if self.verify_backlog < VERIFY_BACKLOG_MAX_BYTES => {
                    self.on_peer_input(input);
                }
                Some(input) = self.input_rx.recv() => self.on_input(input),
                // Pauses on EMFILE (crate::listener); other inputs go on.
                (stream, addr) = self.listener.accept() => self.on_accept(stream, addr),
                () = tokio::time::sleep_until(deadline) => {
                    let now = self.now();
                    self.core.handle_timeout(now);
                }
                _ = housekeeping.tick() => {
                    self.dial();
                    self.publish();
                    self.save_resume();
                }
            }
            self.drain();
            if self.fatal.is_some() {
                break;
            }
        }
        self.shutdown().await
    }

    async fn shutdown(mut self) -> Result<SessionStatus, NetError> {
        for (_, c) in self.conns.drain() {
            c.close();
        }
        self.finish_storage_jobs().await;
        if let Some(mut r) = self.resume.take() {
            r.finish(self.core.have().clone(), &self.storage).await;
        }
        self.publish();
        if let Some(t) = self.tracker.take() {
            let _ = t.tx.send(TrackerCommand::Stop);
            let mut task = t.task;
            if tokio::time::timeout(STOP_ANNOUNCE_TIMEOUT, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        let mut status = self.status();
        match self.fatal.take() {
            Some(error) => {
                status.state = SessionState::Failed;
                status.error = Some(error.clone());
                self.status_tx.send_replace(status);
                Err(NetError::Fatal(error))
            }
            None => {
                status.state = SessionState::Stopped;
                self.status_tx.send_replace(status.clone());
                Ok(status)
            }
        }
    }

    /// At exit: lets the piece checks and writes already handed out finish
    /// and gives them to the core (pieces in memory not yet handed out are
    /// checked and written too), so the final resume record holds them and
    /// no write of ours lands after it (which would untrust its file at the
    /// next start). Bounded by [`STORAGE_FINISH_TIMEOUT`].
    async fn finish_storage_jobs(&mut self) {
        let deadline = Instant::now() + STORAGE_FINISH_TIMEOUT;
        loop {
            // Reads are for peers that are gone.
            self.storage_queue
                .retain(|j| matches!(j, StorageJob::Verify { .. }));
            self.start_storage_jobs();
            if self.storage_running == 0 {
                return;
            }
            match tokio::time::timeout_at(deadline, self.input_rx.recv()).await {
                Ok(Some(input @ Input::Storage(_))) => {
                    self.on_input(input);
                    self.drain();
                }
                Ok(Some(_)) => {} // a handshake or tracker answer: too late
                Ok(None) | Err(_) => {
                    tracing::warn!("storage jobs still running at exit");
                    return;
                }
            }
        }
    }

    /// Starts a save of the resume record when one is due (see [`ResumeSaver`]).
    fn save_resume(&mut self) {
        if let Some(r) = &mut self.resume {
            r.maybe_start(self.core.have(), &self.storage);
        }
    }

    fn status(&self) -> SessionStatus {
        let s = self.core.stats(self.now());
        // Real bytes only: pad files (BEP 47) are not the user's data.
        let have_bytes = self.pads.real_bytes_present(self.core.have());
        let complete = self.core.is_complete();
        SessionStatus {
            state: if self.fatal.is_some() {
                SessionState::Failed
            } else if complete {
                SessionState::Seeding
            } else {
                SessionState::Downloading
            },
            complete,
            pieces_have: s.pieces_have,
            pieces_total: s.pieces_total,
            total_length: self.pads.real_total(),
            left: self.pads.real_total() - have_bytes,
            downloaded: s.downloaded,
            uploaded: s.uploaded,
            wasted: s.wasted,
            download_rate: s.download_rate,
            upload_rate: s.upload_rate,
            peers: s.peers,
            connecting: self.connecting.len() + self.handshaking_in,
            banned: self.banned.len(),
            hash_failures: s.hash_failures,
            listen_port: self.listen_port,
            error: self.fatal.clone(),
            neighbours: self.neighbours(),
        }
    }

    fn neighbours(&self) -> Vec<NeighbourStatus> {
        let now = self.now();
        let mut out: Vec<NeighbourStatus> = self
            .core
            .peer_stats(now)
            .into_iter()
            .filter_map(|p| {
                let conn = self.conns.get(&p.peer)?;
                // Reasons carry durations as the last rechoke saw them: age
                // them to now.
                let aged_by = self
                    .core
                    .last_rechoke()
                    .map_or(CoreDuration::ZERO, |t| now.saturating_since(t));
                let (choke, reason, since) = match &p.choke {
                    Some(d) => (
                        d.state.as_str(),
                        d.reason.aged(aged_by).to_string(),
                        Some(d.since),
                    ),
                    None if !p.peer_interested => ("choked", "not interested".to_string(), None),
                    None => ("choked", "waiting for the first rechoke".to_string(), None),
                };
                Some(NeighbourStatus {
                    addr: conn.addr,
                    client: conn.peer_id.client_name(),
                    outgoing: conn.outgoing,
                    choke,
                    reason,
                    choke_for_s: since.map_or(0.0, |t| now.saturating_since(t).as_secs_f64()),
                    download_rate: p.download_rate,
                    upload_rate: p.upload_rate,
                    downloaded: p.downloaded,
                    uploaded: p.uploaded,
                    unchokes_us: !p.peer_choking,
                    interested: p.peer_interested,
                    we_are_interested: p.am_interested,
                    pieces: p.pieces,
                    requests_in_flight: p.requests_in_flight,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.download_rate
                .total_cmp(&a.download_rate)
                .then(a.addr.cmp(&b.addr))
        });
        out
    }

    fn publish(&mut self) {
        let status = self.status();
        self.stats_tx.send_replace(AnnounceStats {
            uploaded: status.uploaded,
            downloaded: status.downloaded,
            left: status.left,
        });
        self.status_tx.send_replace(status);
    }

    // ---- inputs ----

    fn on_peer_input(&mut self, input: PeerInput) {
        match input {
            PeerInput::Messages(key, msgs) => {
                if !self.conns.contains_key(&key) {
                    return; // already closed
                }
                for msg in msgs {
                    let now = self.now();
                    if tracing::enabled!(tracing::Level::TRACE) {
                        trace_message(key, &msg);
                    }
                    if let Message::Extended { id, payload } = &msg
                        && *id == EXTENDED_HANDSHAKE_ID
                    {
                        match ExtendedHandshake::decode(payload) {
                            Ok(hs) => {
                                let ext = ExtensionInfo { reqq: hs.reqq };
                                self.core.peer_extension_handshake(now, key, ext);
                            }
                            Err(e) => {
                                tracing::debug!(peer = ?key, error = %e, "bad extension handshake ignored")
                            }
                        }
                    }
                    self.core.handle_message(now, key, msg);
                }
            }
            PeerInput::Closed(key, reason) => {
                if let Some(c) = self.conns.remove(&key) {
                    c.close();
                    tracing::info!(peer = %c.addr, %reason, "connection closed");
                    let now = self.now();
                    // Two seeds have nothing to exchange (libtorrent hangs
                    // up on us then): do not dial that seed again.
                    let total = self.lengths.num_pieces();
                    let was_seed = self.core.peer(now, key).is_some_and(|p| p.pieces == total);
                    if was_seed && self.core.is_complete() {
                        self.candidates.remove(&c.addr);
                    } else {
                        self.redial_later(c.addr);
                    }
                    self.core.peer_disconnected(now, key);
                }
            }
            PeerInput::Drained(key) => {
                if self.conns.contains_key(&key) {
                    let now = self.now();
                    self.core.send_buffer_drained(now, key);
                }
            }
        }
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Handshaken(h) => self.on_handshaken(*h),
            Input::HandshakeFailed {
                addr,
                outgoing,
                error,
            } => {
                if outgoing {
                    self.connecting.remove(&addr);
                    if matches!(error, ConnError::SelfConnection) {
                        self.candidates.remove(&addr);
                        self.self_addrs.insert(addr);
                        return;
                    }
                    if let Some(c) = self.candidates.get_mut(&addr) {
                        c.failures = c.failures.saturating_add(1);
                        c.next_attempt = Instant::now() + backoff(c.failures);
                        if c.failures >= DIAL_FAILURES_REPORT && !c.reported {
                            c.reported = true;
                            let hint = match error {
                                ConnError::WrongInfoHash | ConnError::ClosedDuringHandshake => {
                                    " (it does not seem to serve this torrent)"
                                }
                                _ => "",
                            };
                            tracing::warn!(
                                "peer {addr} keeps failing: {error}{hint}; {} attempts, still retrying with back-off",
                                c.failures
                            );
                        }
                    }
                    tracing::info!(peer = %addr, %error, "could not connect");
                } else {
                    self.handshaking_in = self.handshaking_in.saturating_sub(1);
                    tracing::debug!(peer = %addr, %error, "incoming handshake failed");
                }
            }
            Input::Storage(results) => {
                self.storage_running -= 1;
                for done in results {
                    if let StorageDone::PieceVerified { piece, .. }
                    | StorageDone::WriteFailed { piece, .. } = &done
                    {
                        self.verify_backlog -= self.lengths.piece_len(*piece) as usize;
                    }
                    let now = self.now();
                    self.core.handle_storage(now, done);
                }
            }
            Input::TrackerPeers(peers) => {
                let now = Instant::now();
                for addr in peers {
                    if self.self_addrs.contains(&addr) || self.is_own_address(addr) {
                        continue;
                    }
                    self.candidates.entry(addr).or_insert(Candidate {
                        failures: 0,
                        next_attempt: now,
                        peer_id: None,
                        reported: false,
                    });
                }
                self.dial();
            }
        }
    }

    fn is_own_address(&self, addr: SocketAddr) -> bool {
        let Ok(listen) = self.listener.local_addr() else {
            return false;
        };
        if !listen.ip().is_unspecified() {
            // A specific IP (`--listen 127.0.0.7:0`): other loopback IPs
            // are other peers, whatever their port.
            return addr == listen;
        }
        addr.port() == self.listen_port && addr.ip().is_loopback()
    }

    fn on_accept(&mut self, stream: tokio::net::TcpStream, addr: SocketAddr) {
        if self.banned.contains(&addr.ip()) {
            tracing::debug!(peer = %addr, "refused: banned");
            return;
        }
        if self.active_connections() >= self.config.connections_max {
            tracing::debug!(peer = %addr, "refused: too many connections");
            return;
        }
        self.handshaking_in += 1;
        let (info_hash, peer_id, tx) = (self.info_hash, self.config.peer_id, self.input_tx.clone());
        tokio::spawn(async move {
            let result = conn::accept(stream, addr, info_hash, peer_id).await;
            let _ = tx.send(Input::handshake(result, addr, false));
        });
    }

    fn active_connections(&self) -> usize {
        self.conns.len() + self.connecting.len() + self.handshaking_in
    }

    fn on_handshaken(&mut self, h: Handshaken) {
        if h.outgoing {
            self.connecting.remove(&h.addr);
            if let Some(c) = self.candidates.get_mut(&h.addr) {
                c.failures = 0;
                c.peer_id = Some(h.remote.peer_id);
                c.next_attempt = Instant::now() + REDIAL_DELAY;
            }
        } else {
            self.handshaking_in = self.handshaking_in.saturating_sub(1);
        }
        if self.banned.contains(&h.addr.ip()) {
            return;
        }
        if self.conns.len() >= self.config.connections_max {
            tracing::debug!(peer = %h.addr, "dropped: too many connections");
            return;
        }
        // The same peer twice (it dialled us while we dialled it): both sides
        // keep the connection opened by the peer with the smaller id, so they
        // agree without talking.
        let our_id = self.config.peer_id;
        let keep_new = |outgoing: bool, their: &PeerId| (our_id < *their) == outgoing;
        if let Some((&old_key, old)) = self
            .conns
            .iter()
            .find(|(_, c)| c.peer_id == h.remote.peer_id)
        {
            if keep_new(old.outgoing, &old.peer_id) || !keep_new(h.outgoing, &h.remote.peer_id) {
                tracing::debug!(peer = %h.addr, "duplicate connection dropped");
                return;
            }
            if let Some(c) = self.conns.remove(&old_key) {
                c.close();
            }
            let now = self.now();
            self.core.peer_disconnected(now, old_key);
        }
        let key = PeerKey(self.next_key);
        self.next_key += 1;
        let Handshaken {
            stream,
            addr,
            remote,
            leftover,
            outgoing,
        } = h;
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let decoder = MessageDecoder::new(self.lengths.bitfield_len());
        let reader = tokio::spawn(conn::read_loop(
            key,
            rd,
            leftover,
            decoder,
            self.peer_tx.clone(),
            self.config.download_limit.clone(),
        ));
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(conn::write_loop(
            key,
            wr,
            rx,
            queued.clone(),
            self.peer_tx.clone(),
            self.config.upload_limit.clone(),
        ));
        tracing::info!(peer = %addr, outgoing, client = %remote.peer_id.client_name(), "peer connected");
        self.conns.insert(
            key,
            Conn {
                addr,
                peer_id: remote.peer_id,
                outgoing,
                tx,
                queued,
                reader,
                writer,
            },
        );
        let info = PeerInfo {
            fast_ext: remote.supports_fast(),
            outgoing,
        };
        let now = self.now();
        self.core.peer_connected(now, key, info);
        // The core's first message (bitfield / have-all / have-none) goes
        // first; our extension handshake right after it.
        self.flush_transmits();
        if remote.supports_extension_protocol() {
            let hs = ExtendedHandshake {
                v: Some(format!("swarm {}", env!("CARGO_PKG_VERSION"))),
                reqq: Some(PEER_REQUESTS_MAX as u32),
                p: Some(self.listen_port),
                yourip: Some(addr.ip()),
                ..ExtendedHandshake::default()
            };
            if let Some(c) = self.conns.get(&key) {
                c.send(Message::Extended {
                    id: EXTENDED_HANDSHAKE_ID,
                    payload: hs.encode().into(),
                });
            }
        }
    }

    fn redial_later(&mut self, addr: SocketAddr) {
        if let Some(c) = self.candidates.get_mut(&addr) {
            c.next_attempt = c.next_attempt.max(Instant::now() + REDIAL_DELAY);
        }
    }

    /// Dials candidates that are due, up to the connection cap.
    fn dial(&mut self) {
        let now = Instant::now();
        let mut budget = self
            .config
            .connections_max
            .saturating_sub(self.active_connections());
        if budget == 0 {
            return;
        }
        let connected: HashSet<SocketAddr> = self.conns.values().map(|c| c.addr).collect();
        let connected_ids: HashSet<PeerId> = self.conns.values().map(|c| c.peer_id).collect();
        let mut due: Vec<SocketAddr> = self
            .candidates
            .iter()
            .filter(|(a, c)| {
                c.next_attempt <= now
                    && !connected.contains(a)
                    && !c.peer_id.is_some_and(|id| connected_ids.contains(&id))
                    && !self.connecting.contains(a)
                    && !self.banned.contains(&a.ip())
            })
            .map(|(a, _)| *a)
            .collect();
        due.sort();
        for addr in due {
            if budget == 0 {
                break;
            }
            budget -= 1;
            if let Some(c) = self.candidates.get_mut(&addr) {
                // Provisional: a success or failure sets it properly.
                c.next_attempt = now + backoff(c.failures + 1);
            }
            self.connecting.insert(addr);
            let (info_hash, peer_id, tx) =
                (self.info_hash, self.config.peer_id, self.input_tx.clone());
            let local = self
                .listener
                .local_addr()
                .ok()
                .and_then(|l| conn::dial_source(l, addr));
            tokio::spawn(async move {
                let result = conn::connect_from(local, addr, info_hash, peer_id).await;
                let _ = tx.send(Input::handshake(result, addr, true));
            });
        }
    }

    // ---- outputs ----

    /// Executes the core's events, then sends its messages.
    fn drain(&mut self) {
        let mut reads: Vec<(PeerKey, BlockInfo)> = Vec::new();
        while let Some(event) = self.core.poll_event() {
            match event {
                TorrentEvent::VerifyPiece { piece, blocks } => {
                    self.verify_backlog += self.lengths.piece_len(piece) as usize;
                    self.storage_queue
                        .push_back(StorageJob::Verify { piece, blocks });
                }
                TorrentEvent::ReadBlock { peer, block } => reads.push((peer, block)),
                TorrentEvent::Disconnect { peer, reason, ban } => {
                    if let Some(c) = self.conns.remove(&peer) {
                        c.close();
                        if ban {
                            self.banned.insert(c.addr.ip());
                            self.candidates.remove(&c.addr);
                            tracing::warn!(peer = %c.addr, %reason, "banned peer");
                        } else {
                            tracing::info!(peer = %c.addr, %reason, "dropped peer");
                            self.redial_later(c.addr);
                        }
                    }
                }
                TorrentEvent::PieceCompleted(p) => {
                    tracing::trace!(piece = p.get(), "piece completed");
                }
                TorrentEvent::Completed => {
                    tracing::info!("download complete");
                    if let Some(r) = &mut self.resume {
                        r.save_soon();
                    }
                    if !self.started_complete
                        && let Some(t) = &self.tracker
                    {
                        let _ = t.tx.send(TrackerCommand::Completed);
                    }
                    self.publish();
                }
                TorrentEvent::Fatal(error) => {
                    tracing::error!(%error, "torrent stopped");
                    self.fatal.get_or_insert(error);
                }
            }
        }
        if !reads.is_empty() {
            // One job for every read of this round: a job per 16 KiB block
            // would cost a thread wake-up per block.
            self.storage_queue.push_back(StorageJob::Read(reads));
        }
        self.start_storage_jobs();
        self.flush_transmits();
    }

    /// Hands queued storage jobs to the blocking pool, up to [`STORAGE_JOBS_MAX`].
    fn start_storage_jobs(&mut self) {
        while self.storage_running < STORAGE_JOBS_MAX {
            let Some(job) = self.storage_queue.pop_front() else {
                break;
            };
            self.storage_running += 1;
            let (storage, tx) = (self.storage.clone(), self.input_tx.clone());
            tokio::task::spawn_blocking(move || {
                let done = match job {
                    StorageJob::Verify { piece, blocks } => {
                        vec![storage.verify_and_write(piece, &blocks)]
                    }
                    StorageJob::Read(reads) => reads
                        .into_iter()
                        .map(|(peer, block)| match storage.read_block(block) {
                            Ok(data) => StorageDone::BlockRead { peer, block, data },
                            Err(e) => StorageDone::ReadFailed {
                                peer,
                                block,
                                error: e.to_string(),
                            },
                        })
                        .collect(),
                };
                let _ = tx.send(Input::Storage(done));
            });
        }
    }

    fn flush_transmits(&mut self) {
        let mut stuck = Vec::new();
        let mut full = Vec::new();
        while let Some((peer, msg)) = self.core.poll_transmit() {
            let block = matches!(msg, Message::Piece { .. });
            if let Some(c) = self.conns.get(&peer) {
                if !c.send(msg) {
                    stuck.push(peer);
                } else if block
                    && c.queued.load(Ordering::Relaxed) > SEND_BUFFER_HIGH_BYTES
                    && full.last() != Some(&peer)
                {
                    full.push(peer);
                }
            }
        }
        // The writer says `Drained` once the queue falls below the low mark.
        let now = self.now();
        for peer in full {
            self.core.send_buffer_full(now, peer);
        }
        for peer in stuck {
            if let Some(c) = self.conns.remove(&peer) {
                c.close();
                tracing::info!(peer = %c.addr, "dropped peer: it does not read what it asked for");
                let now = self.now();
                self.core.peer_disconnected(now, peer);
            }
        }
    }
}

fn trace_message(key: PeerKey, msg: &Message) {
    match msg {
        Message::Piece {
            piece,
            offset,
            data,
        } => tracing::trace!(peer = key.0, piece, offset, len = data.len(), "recv piece"),
        Message::Bitfield(b) => tracing::trace!(peer = key.0, len = b.len(), "recv bitfield"),
        other => tracing::trace!(peer = key.0, msg = ?other, "recv"),
    }
}

fn backoff(failures: u32) -> Duration {
    DIAL_BACKOFF_BASE
        .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
        .min(DIAL_BACKOFF_MAX)
}
