//! The session: the one task that owns a torrent's [`TorrentCore`].
//!
//! It `select!`s over the core's next timeout, the batches of messages the
//! connections' reader tasks forward (a bounded channel: a slow session
//! slows the readers, and TCP slows the peers), inputs from the process's
//! endpoint driver ([`crate::client`]: a connection handshaken for this
//! torrent, a connection to close, "announce started") and storage jobs, a
//! one-second housekeeping tick and commands from the handle. After each
//! input it drains the core in the documented order: events first (storage
//! jobs go to the blocking pool, `Disconnect` closes the socket and tells
//! the driver, a ban goes to the endpoint), then transmits (each to its
//! peer's writer task).
//!
//! Nothing here decides protocol or connection matters: which piece, whom
//! to unchoke, when a peer is bad are the core's calls; which connections
//! exist (whom to dial, caps, duplicates, bans) the endpoint's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use swarm_engine::{
    Bitfield, Duration as CoreDuration, ExtensionEvent, Extensions, ExtensionsConfig,
    Instant as CoreInstant, PEER_REQUESTS_MAX, PeerHello, PeerId, PeerInfo, PeerKey, PeerSource,
    StorageDone, TorrentConfig, TorrentCore, TorrentEvent,
};
use swarm_wire::lengths::{BlockInfo, Lengths};
use swarm_wire::peer::{Message, MessageDecoder};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{DhtSource, DriverLink};
use crate::conn::{self, Handshaken, PeerInput, SEND_BUFFER_HIGH_BYTES};

pub(crate) mod announce;
use crate::ratelimit::RateLimiter;
use crate::resume::{ResumeSaver, ResumeStore};
use crate::status::{NeighbourStatus, TorrentState, TorrentStatus, TrackerStatus};
use crate::storage::Storage;
use crate::tracker::{AnnounceStats, TrackerClient, TrackerConfig};
use crate::{NetError, TorrentSpec};
use announce::{TrackerCommand, TrackerTask, tracker_task};

/// Batches of messages the readers may queue ahead of the session (all the
/// torrent's peers together). A batch is what one read returned, at most
/// ~320 KiB (a reader's buffer), so this queue holds at most ~1.3 MiB of
/// blocks; TCP's receive buffers (the kernel's) hold the rest of a burst.
/// It was 256 batches (up to 80 MiB), then 16 (5 MiB): measured on a 256 MiB
/// download from libtorrent, 4 with a 2 MiB verify backlog took the peak RSS
/// from 26-28 to 15-16 MiB at the same CPU time (ARCHITECTURE.md).
pub const PEER_CHANNEL_LEN: usize = 4;
/// The `stopped` announce at exit may take this long at most.
pub const STOP_ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);
/// Storage jobs (piece checks and writes, batches of reads) running at once
/// on the blocking pool; more wait in the session. Several jobs writing one
/// file only contend for its lock, and each running job holds its piece.
pub const STORAGE_JOBS_MAX: usize = 2;
/// While pieces waiting to be checked and written hold more than this many
/// bytes, the session stops taking messages from peers: the readers block,
/// and TCP slows the senders down. Bounds memory when the disk is slower
/// than the network (or hashing slower: on loopback it is). 2 MiB is 8
/// pieces of 256 KiB, ahead of the two storage jobs: enough to keep them
/// busy (it was 16 MiB, then 4).
pub const VERIFY_BACKLOG_MAX_BYTES: usize = 2 * 1024 * 1024;
/// What one torrent's download holds in memory beyond an idle process's,
/// with one peer and pieces of up to 1 MiB: block data between the socket
/// and the disk (the peer channel's ~1.3 MiB, the verify backlog's
/// [`VERIFY_BACKLOG_MAX_BYTES`] plus the piece that crossed it, the piece in
/// progress, the reader's one buffer) and allocator slack. Each further peer
/// adds at most a read buffer (~320 KiB) and a piece in progress.
/// `crates/swarm/tests/download_memory.rs` checks it with a real download
/// (peak RSS from the kernel): 4.8-5.7 MiB in a debug build; 14.4 MiB with
/// the queues of before (16 reads, 4 MiB, blocks pinning read buffers) and
/// 33.8 MiB with those before them (256 reads, 16 MiB).
pub const DOWNLOAD_MEMORY_ONE_PEER_MAX_BYTES: usize = 10 * 1024 * 1024;
/// A peer with this much queued for it and not yet written is dropped: it
/// does not read what we send. Blocks stop being read for a peer at
/// [`conn::SEND_BUFFER_HIGH_BYTES`] (its deep request queue waits as
/// requests), so only small messages get it this far.
pub const WRITE_QUEUE_MAX_BYTES: usize = 16 * 1024 * 1024;
/// At exit, how long running piece writes may take before the final resume
/// record is saved without them.
pub const STORAGE_FINISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the status is published.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// Knobs of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub peer_id: PeerId,
    pub torrent: Arc<TorrentConfig>,
    pub tracker: Arc<TrackerConfig>,
    /// Rate limits the connections of this torrent take from: its own
    /// (`per torrent`) and the process's.
    pub upload_limits: Vec<Arc<RateLimiter>>,
    pub download_limits: Vec<Arc<RateLimiter>>,
    /// Seeds the core's RNG.
    pub rng_seed: u64,
    /// Where to save the resume record (none: never saved).
    pub resume: Option<Arc<ResumeStore>>,
    /// Where peers reach us (goes to trackers and the extension handshake).
    pub listen_port: u16,
    /// The raw info dictionary, served to peers that ask (BEP 9); `None`:
    /// their requests are rejected.
    pub metadata: Option<bytes::Bytes>,
    /// BEP 27: no PEX, no DHT port.
    pub private: bool,
    /// `--no-pex`: no peer exchange (BEP 11) for this public torrent.
    pub no_pex: bool,
    /// Our DHT node's UDP port, for the `port` message (BEP 5); `None`
    /// without a DHT.
    pub dht_port: Option<u16>,
    /// Our DHT node: it pings the nodes peers name in their `port`
    /// messages. `None` without a DHT, or for a private torrent.
    pub dht: Option<crate::dht::DhtHandle>,
    /// Counts wake-ups and published statuses (shared by the client's
    /// torrents: see [`crate::Client::counters`]).
    pub counters: Arc<crate::client::Counters>,
    /// Each file's priority (`AddOptions::file_priorities`).
    pub file_priorities: Vec<swarm_engine::Priority>,
    /// An idle session goes to sleep (see [`Dormant`]):
    /// `ClientConfig::sleep_when_idle`.
    pub sleep_when_idle: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            peer_id: crate::new_peer_id(),
            torrent: Arc::default(),
            tracker: Arc::default(),
            upload_limits: Vec::new(),
            download_limits: Vec::new(),
            rng_seed: rand::random(),
            resume: None,
            listen_port: 0,
            metadata: None,
            private: false,
            no_pex: false,
            dht_port: None,
            dht: None,
            counters: Arc::default(),
            file_priorities: Vec::new(),
            sleep_when_idle: false,
        }
    }
}

/// What a session adds to its core's totals: those of its earlier
/// wakes (a session that wakes builds a fresh core).
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    downloaded: u64,
    uploaded: u64,
    wasted: u64,
    hash_failures: u32,
}

/// A torrent's session while it sleeps: plain data, no task, held by the
/// endpoint driver (`ClientConfig::sleep_when_idle`). A session goes to
/// sleep when it has nothing to do (no connection, no storage job, no
/// piece in progress, its resume record saved, its rates at zero, no input
/// waiting) and wakes, a new core built from its pieces, when the driver
/// has an input for it (a peer's connection, an announce, an input from
/// the handle or the tracker task: every input goes through the driver) or
/// is told to wake it (`DriverCmd::Wake`: after a stop). Its tracker task
/// (if it has trackers) runs on meanwhile and hands its peers to the
/// endpoint, which dials them: a connection wakes the session.
///
/// Asleep it has no input channel: the driver drops it (its last sender
/// was the driver's) and makes a new one when it wakes. A channel kept
/// would cost its first block (32 slots, ~1 KB) and hold the ended task's
/// memory (~6 KB) through the waker it registered last.
pub(crate) struct Dormant {
    /// Its input channel's receiver while the driver takes it over (what
    /// came since it decided to sleep waits there); none asleep.
    inputs: Option<mpsc::UnboundedReceiver<Input>>,
    spec: Arc<TorrentSpec>,
    storage: Arc<Storage>,
    have: Bitfield,
    totals: Totals,
    config: SessionConfig,
    status_tx: watch::Sender<TorrentStatus>,
    /// What the tracker task announces (none without one).
    stats_tx: Option<watch::Sender<AnnounceStats>>,
    link: DriverLink,
    stop: crate::stop::StopFlag,
    added: Instant,
    resume: Option<ResumeSaver>,
    tracker: Option<TrackerTask>,
    trackers: Vec<TrackerStatus>,
    dht_source: Option<DhtSource>,
    started_complete: bool,
    figures: Figures,
}

impl Dormant {
    /// Asleep, its channel dropped; or, if it must wake at once (stopped,
    /// or an input came since it decided to sleep), itself and its
    /// channel's receiver.
    #[allow(clippy::type_complexity)]
    pub(crate) fn into_sleep(
        mut self: Box<Self>,
    ) -> Result<Box<Dormant>, (Box<Dormant>, mpsc::UnboundedReceiver<Input>)> {
        let rx = self.inputs.take();
        match rx {
            Some(rx) if self.stop.is_stopped() || !rx.is_empty() => Err((self, rx)),
            _ => Ok(self),
        }
    }

    pub(crate) fn info_hash(&self) -> swarm_engine::InfoHash {
        self.link.info_hash
    }

    /// Counts it asleep (the driver holds it now).
    pub(crate) fn asleep(&self) {
        self.config
            .counters
            .session_sleeps
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The endpoint's figures changed while it sleeps: shown at once,
    /// without waking it.
    pub(crate) fn set_figures(&mut self, figures: Figures) {
        self.figures = figures;
        self.status_tx.send_if_modified(|s| {
            let changed = (s.connecting, s.banned) != (figures.connecting, figures.banned);
            s.connecting = figures.connecting;
            s.banned = figures.banned;
            changed
        });
    }
}

/// Starts the owner task of one torrent. `have`: the pieces already verified
/// on disk; `status`: where it publishes (the torrent's status channel, made
/// before the check); `link`: the endpoint driver, told of closed
/// connections, bans and peers; `stop`: set to true, the session closes its
/// connections, saves the resume record, announces `stopped`, leaves the
/// endpoint and publishes its final status; `inputs`: the channel the
/// driver was given when the torrent was added.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn(
    spec: Arc<TorrentSpec>,
    storage: Arc<Storage>,
    have: Bitfield,
    config: SessionConfig,
    status_tx: watch::Sender<TorrentStatus>,
    link: DriverLink,
    stop: crate::stop::StopFlag,
    added: Instant,
    dht_source: Option<DhtSource>,
    inputs: (mpsc::UnboundedSender<Input>, mpsc::UnboundedReceiver<Input>),
) {
    let resume = config.resume.clone().map(ResumeSaver::new);
    let dormant = Dormant {
        inputs: None,
        spec,
        storage,
        have,
        totals: Totals::default(),
        config,
        status_tx,
        stats_tx: None,
        link,
        stop,
        added,
        resume,
        tracker: None,
        trackers: Vec::new(),
        dht_source,
        started_complete: false,
        figures: Figures::default(),
    };
    let mut session = build(Box::new(dormant), inputs);
    // Everything wanted is there: `Completed` will never come from the core.
    session.started_complete = session.core.is_complete();
    // The first status anyone reads is the real one (the pieces found on
    // disk), not the checking one.
    session.publish();
    tracing::info!(
        torrent = %session.spec.name,
        pieces = session.lengths.num_pieces(),
        have = session.core.have().count_ones(),
        "session started"
    );
    tokio::spawn(session.run());
}

/// Wakes a sleeping session: its task again, with a new core; `inputs`:
/// its channel (the driver keeps a sender).
pub(crate) fn wake(
    dormant: Box<Dormant>,
    inputs: (mpsc::UnboundedSender<Input>, mpsc::UnboundedReceiver<Input>),
) {
    tracing::debug!(torrent = %dormant.spec.name, "session woken");
    dormant
        .config
        .counters
        .session_wakes
        .fetch_add(1, Ordering::Relaxed);
    tokio::spawn(build(dormant, inputs).run());
}

/// A session from its plain data and its input channel.
fn build(
    d: Box<Dormant>,
    (input_tx, input_rx): (mpsc::UnboundedSender<Input>, mpsc::UnboundedReceiver<Input>),
) -> Session {
    let Dormant {
        inputs: _,
        spec,
        storage,
        have,
        totals,
        config,
        status_tx,
        stats_tx,
        link,
        stop,
        added,
        resume,
        tracker,
        trackers,
        dht_source,
        started_complete,
        figures,
    } = *d;
    let epoch = Instant::now();
    let lengths = spec.lengths;
    let mut core = TorrentCore::new(
        TorrentConfig::clone(&config.torrent),
        lengths,
        have,
        config.rng_seed,
        CoreInstant(0),
    );
    if config
        .file_priorities
        .iter()
        .any(|&p| p != swarm_engine::Priority::Normal)
    {
        let prios = spec.piece_priorities(&config.file_priorities);
        core.set_priorities(CoreInstant(0), &prios);
    }
    // The wanted pieces (none skipped: `None`).
    let wanted = spec.wanted_pieces(&config.file_priorities);
    let pads = spec.pads();
    let wanted_length = wanted
        .as_ref()
        .map_or(pads.real_total(), |w| pads.real_bytes_present(w));
    let (peer_tx, peer_rx) = mpsc::channel(PEER_CHANNEL_LEN);
    let ext_config = ExtensionsConfig {
        private: config.private,
        no_pex: config.no_pex,
        listen_port: Some(config.listen_port),
        dht_port: config.dht_port.filter(|_| !config.private),
        client: Some(format!("swarm {}", env!("CARGO_PKG_VERSION"))),
        reqq: Some(PEER_REQUESTS_MAX as u32),
    };
    let ext = match &config.metadata {
        Some(info) => Extensions::with_metadata(info.clone(), ext_config),
        None => Extensions::without_metadata(ext_config),
    };
    Session {
        ext,
        resume,
        core,
        lengths,
        pads,
        wanted,
        wanted_length,
        spec,
        storage,
        config,
        epoch,
        added,
        totals,
        conns: std::collections::HashMap::new(),
        figures,
        link,
        peer_tx,
        peer_rx,
        input_tx,
        input_rx,
        stop,
        status_tx,
        stats_tx,
        tracker,
        trackers,
        dht_source,
        started_complete,
        told_seeding: None,
        fatal: None,
        storage_queue: std::collections::VecDeque::new(),
        storage_running: 0,
        verify_backlog: 0,
        rechoose: false,
        reopening: false,
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
    /// Payload bytes both ways at the last housekeeping tick (progress).
    moved: u64,
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

/// The endpoint's figures for this torrent, for the status.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Figures {
    pub(crate) connecting: usize,
    pub(crate) banned: usize,
}

/// What the endpoint driver and the session's own tasks tell the session.
pub(crate) enum Input {
    /// A connection the endpoint accepted for this torrent, handshaken.
    Attach(PeerKey, Box<Handshaken>),
    /// The endpoint closed this connection (a duplicate, a ban, a stop).
    Close(PeerKey),
    /// The endpoint's `Announce { Started }`: start the tracker task.
    AnnounceStarted,
    Figures(Figures),
    Storage(Vec<StorageDone>),
    /// The tracker task announced: each tracker's last outcome.
    Trackers(Vec<TrackerStatus>),
    /// A new priority for each file ([`crate::TorrentHandle::set_file_priorities`]).
    SetPriorities(Vec<swarm_engine::Priority>),
    /// Storage opened again for the new file choice (or why it could not be).
    Rechosen(Box<Result<Storage, NetError>>),
}

struct Session {
    /// BEP 10 extensions: metadata serving (BEP 9), PEX (BEP 11), the DHT
    /// port (BEP 5).
    ext: Extensions,
    /// Saves the resume record (see [`ResumeSaver`]).
    resume: Option<ResumeSaver>,
    core: TorrentCore,
    lengths: Lengths,
    /// BEP 47 pad files: the status counts real bytes only.
    pads: crate::spec::PadRanges,
    /// The wanted pieces, if any file is skipped (1 bit a piece).
    wanted: Option<Bitfield>,
    /// Real bytes of the wanted pieces.
    wanted_length: u64,
    spec: Arc<TorrentSpec>,
    storage: Arc<Storage>,
    config: SessionConfig,
    epoch: Instant,
    /// When the torrent was added (the status's `elapsed_s`).
    added: Instant,
    /// The totals of its earlier wakes (this core counts from zero).
    totals: Totals,
    conns: std::collections::HashMap<PeerKey, Conn>,
    figures: Figures,
    link: DriverLink,
    peer_tx: mpsc::Sender<PeerInput>,
    peer_rx: mpsc::Receiver<PeerInput>,
    input_tx: mpsc::UnboundedSender<Input>,
    input_rx: mpsc::UnboundedReceiver<Input>,
    stop: crate::stop::StopFlag,
    status_tx: watch::Sender<TorrentStatus>,
    /// What the tracker task announces (made with it).
    stats_tx: Option<watch::Sender<AnnounceStats>>,
    tracker: Option<TrackerTask>,
    /// Each tracker's last announce, as the tracker task last reported.
    trackers: Vec<TrackerStatus>,
    /// The DHT's lookups for this torrent (ended with it).
    dht_source: Option<DhtSource>,
    started_complete: bool,
    /// What the endpoint was last told of `is_complete` (none: not yet,
    /// in this wake).
    told_seeding: Option<bool>,
    fatal: Option<String>,
    /// Storage jobs waiting for a slot, oldest first.
    storage_queue: std::collections::VecDeque<StorageJob>,
    storage_running: usize,
    /// Bytes of pieces handed to storage and not yet answered.
    verify_backlog: usize,
    /// The file choice changed: storage is to be opened again for it once
    /// its running jobs are done (no job starts meanwhile).
    rechoose: bool,
    /// Storage is being opened again (the only storage job running).
    reopening: bool,
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

    async fn run(mut self) {
        if self.started_complete {
            // Nothing to download: `Completed` will never come from the core.
            self.publish();
        }
        // Housekeeping (progress for the endpoint, the status, the resume
        // record) runs every HOUSEKEEPING_INTERVAL while the session is
        // busy; an idle one (see `Session::busy`) has no timer at all and
        // sleeps until an input comes.
        let mut next_housekeeping = Instant::now();
        loop {
            if self.stop.is_stopped() {
                break;
            }
            let mut busy = self.busy();
            // Nothing to do and nothing waiting: sleep (as plain data, in
            // the driver) until an input comes.
            if !busy && self.may_sleep() && self.input_rx.is_empty() {
                // What it shows first: a peer may have come, taken blocks
                // and gone between two housekeeping rounds, and a sleeping
                // session publishes nothing (its uploads stayed unshown).
                // Shown rates above zero keep it awake until they fall.
                self.publish();
                busy = self.busy();
                if !busy {
                    self.sleep();
                    return;
                }
            }
            // The core and the extensions time out peers, rechoke them and
            // send them keep-alives: without peers there is nothing to time
            // (the core's first timeout after a peer connects comes at once).
            let deadline = if self.conns.is_empty() {
                None
            } else {
                match (self.core.poll_timeout(), self.ext.poll_timeout()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
                .map(|t| self.to_tokio(t))
            };
            tokio::select! {
                () = self.stop.stopped() => break,
                Some(input) = self.peer_rx.recv(), if self.verify_backlog < VERIFY_BACKLOG_MAX_BYTES => {
                    self.on_peer_input(input);
                }
                Some(input) = self.input_rx.recv() => self.on_input(input),
                () = tokio::time::sleep_until(deadline.unwrap_or(next_housekeeping)), if deadline.is_some() => {
                    let now = self.now();
                    self.core.handle_timeout(now);
                    self.ext.handle_timeout(now);
                }
                // A resume record written: an idle session sleeps at once
                // (not a tick later: while torrents are added, each would
                // stay awake a second, its task, core and channels with it).
                () = async {
                    if let Some(r) = &mut self.resume {
                        r.finished().await;
                    }
                }, if self.resume.as_ref().is_some_and(ResumeSaver::running) => {}
                () = tokio::time::sleep_until(next_housekeeping), if busy => {
                    next_housekeeping = Instant::now() + HOUSEKEEPING_INTERVAL;
                    self.report_progress();
                    self.publish();
                    self.save_resume();
                }
            }
            self.config
                .counters
                .session_wakeups
                .fetch_add(1, Ordering::Relaxed);
            self.drain();
            if self.fatal.is_some() {
                break;
            }
            if !busy || !self.busy() {
                // Idle, or idle now (the last peer left, a save ended):
                // the input may have changed what the status shows (a peer
                // came and went, the endpoint's figures). Without a timer
                // an idle session shows nothing later: a peer that took
                // the whole torrent between two housekeeping rounds would
                // stay unshown, its uploads uncounted by a seed ratio.
                self.publish();
            }
        }
        // Boxed: the running future would otherwise hold room for a second
        // `Session` (the one moved into `shutdown`) all its life.
        Box::pin(self.shutdown()).await;
    }

    /// It may sleep when idle (see [`Dormant`]): allowed, nothing in
    /// memory that a new core would lose (connections, pieces in
    /// progress), not failed.
    fn may_sleep(&self) -> bool {
        self.config.sleep_when_idle
            && self.conns.is_empty()
            && !self.rechoose
            && !self.reopening
            && self.fatal.is_none()
            && self.core.pieces_downloading().is_empty()
    }

    /// Hands the session to the driver as plain data; the driver wakes it
    /// at once if an input came meanwhile (it waits in the channel) or it
    /// was stopped.
    fn sleep(self) {
        let s = self.core.stats(self.now());
        let totals = Totals {
            downloaded: self.totals.downloaded + s.downloaded,
            uploaded: self.totals.uploaded + s.uploaded,
            wasted: self.totals.wasted + s.wasted,
            hash_failures: self.totals.hash_failures + s.hash_failures,
        };
        let link = self.link.clone();
        // Its own sender goes: the driver's is the channel's last.
        drop(self.input_tx);
        let dormant = Box::new(Dormant {
            inputs: Some(self.input_rx),
            have: self.core.have().clone(),
            spec: self.spec,
            storage: self.storage,
            totals,
            config: self.config,
            status_tx: self.status_tx,
            stats_tx: self.stats_tx,
            link: self.link,
            stop: self.stop,
            added: self.added,
            resume: self.resume,
            tracker: self.tracker,
            trackers: self.trackers,
            dht_source: self.dht_source,
            started_complete: self.started_complete,
            figures: self.figures,
        });
        link.sleep(dormant);
    }

    async fn shutdown(mut self) {
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
            match tokio::time::timeout(STOP_ANNOUNCE_TIMEOUT, &mut task).await {
                // The `stopped` announce's outcome, for the final status.
                Ok(Ok(last)) => self.trackers = last,
                Ok(Err(_)) => {}
                Err(_) => task.abort(),
            }
        }
        // The torrent leaves the endpoint before its final status is
        // published: whoever waits for that (to add it again) comes after.
        drop(self.dht_source.take());
        self.link.remove();
        let mut status = self.status();
        status.is_final = true;
        match self.fatal.take() {
            Some(error) => {
                status.state = TorrentState::Failed;
                status.error = Some(error);
            }
            None => {
                status.state = if status.complete {
                    TorrentState::Completed
                } else {
                    TorrentState::Stopped
                };
            }
        }
        self.status_tx.send_replace(status);
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
                Ok(Some(input @ (Input::Storage(_) | Input::Rechosen(_)))) => {
                    self.on_input(input);
                    self.drain();
                }
                Ok(Some(_)) => {} // a connection or an announce: too late
                Ok(None) | Err(_) => {
                    tracing::warn!("storage jobs still running at exit");
                    return;
                }
            }
        }
    }

    /// The session has periodic work: connections (rates, choking, progress
    /// for the endpoint), storage jobs, a resume record to save, or rates
    /// the status still shows above zero (they fall to zero over the rate
    /// window after the last peer leaves). An idle seed or a download
    /// without peers is none of these: it costs no wake-up.
    fn busy(&self) -> bool {
        !self.conns.is_empty()
            || self.storage_running > 0
            || !self.storage_queue.is_empty()
            || self
                .resume
                .as_ref()
                .is_some_and(|r| r.pending(self.core.have()))
            || {
                let shown = self.status_tx.borrow();
                shown.download_rate > 0.0 || shown.upload_rate > 0.0
            }
    }

    /// Starts a save of the resume record when one is due (see [`ResumeSaver`]).
    fn save_resume(&mut self) {
        if let Some(r) = &mut self.resume {
            r.maybe_start(self.core.have(), &self.storage);
        }
    }

    fn status(&self) -> TorrentStatus {
        let s = self.core.stats(self.now());
        // Real bytes only: pad files (BEP 47) are not the user's data.
        let have_bytes = self.pads.real_bytes_present(self.core.have());
        // Left: the wanted bytes missing (what Transmission calls
        // `leftUntilDone`, of `sizeWhenDone`).
        let wanted_have = match &self.wanted {
            None => have_bytes,
            w => self.pads.real_bytes_wanted(self.core.have(), w.as_ref()),
        };
        let complete = self.core.is_complete();
        TorrentStatus {
            info_hash: self.spec.info_hash_hex(),
            name: self.spec.name.clone(),
            state: if self.fatal.is_some() {
                TorrentState::Failed
            } else if complete {
                TorrentState::Seeding
            } else {
                TorrentState::Downloading
            },
            complete,
            checked: None,
            metadata_pieces: None,
            pieces_have: s.pieces_have,
            pieces_total: s.pieces_total,
            total_length: self.pads.real_total(),
            have_length: have_bytes,
            wanted_length: self.wanted_length,
            left: self.wanted_length - wanted_have.min(self.wanted_length),
            downloaded: self.totals.downloaded + s.downloaded,
            uploaded: self.totals.uploaded + s.uploaded,
            wasted: self.totals.wasted + s.wasted,
            download_rate: s.download_rate,
            upload_rate: s.upload_rate,
            peers: s.peers,
            connecting: self.figures.connecting,
            banned: self.figures.banned,
            hash_failures: self.totals.hash_failures + s.hash_failures,
            listen_port: self.config.listen_port,
            elapsed_s: self.added.elapsed().as_secs_f64(),
            error: self.fatal.clone(),
            is_final: false,
            neighbours: self.neighbours(),
            piece_map: (s.pieces_total <= crate::status::PIECE_MAP_PIECES_MAX).then(|| {
                std::sync::Arc::new(crate::status::PieceMap {
                    have: hex::encode(self.core.have().as_bytes()),
                    downloading: self.core.pieces_downloading(),
                    availability: self.core.availability().to_vec(),
                })
            }),
            trackers: self.trackers.clone(),
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

    /// Publishes the status if it changed (the time since the torrent was
    /// added aside: readers compute it, see [`crate::TorrentHandle::status`]).
    fn publish(&mut self) {
        let mut status = self.status();
        let published = self.status_tx.send_if_modified(|shown| {
            status.elapsed_s = shown.elapsed_s;
            if *shown == status {
                return false;
            }
            status.elapsed_s = self.added.elapsed().as_secs_f64();
            *shown = std::mem::take(&mut status);
            true
        });
        if published {
            self.config
                .counters
                .publications
                .fetch_add(1, Ordering::Relaxed);
            if let Some(stats) = &self.stats_tx {
                let shown = self.status_tx.borrow();
                stats.send_replace(AnnounceStats {
                    uploaded: shown.uploaded,
                    downloaded: shown.downloaded,
                    left: shown.left,
                });
            }
        }
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
                    self.ext.handle_message(now, key, &msg);
                    // The core's part of an extension handshake (`reqq`)
                    // goes in before the core sees more of this peer.
                    self.drain_extension_events();
                    if !self.conns.contains_key(&key) {
                        break; // the extensions dropped it
                    }
                    self.core.handle_message(now, key, msg);
                }
            }
            PeerInput::Closed(key, reason) => {
                if let Some(c) = self.conns.remove(&key) {
                    c.close();
                    tracing::info!(peer = %c.addr, %reason, "connection closed");
                    self.link.closed(key);
                    let now = self.now();
                    self.core.peer_disconnected(now, key);
                    self.ext.peer_disconnected(now, key);
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
            Input::Attach(key, h) => self.on_handshaken(key, *h),
            Input::Close(key) => {
                if let Some(c) = self.conns.remove(&key) {
                    c.close();
                    tracing::info!(peer = %c.addr, "connection closed by the endpoint");
                    let now = self.now();
                    self.core.peer_disconnected(now, key);
                    self.ext.peer_disconnected(now, key);
                }
            }
            Input::AnnounceStarted => self.start_tracker(),
            Input::Figures(f) => self.figures = f,
            Input::Trackers(t) => self.trackers = t,
            Input::SetPriorities(p) => self.set_priorities(p),
            Input::Rechosen(result) => {
                self.storage_running -= 1;
                self.reopening = false;
                match *result {
                    Ok(storage) => {
                        tracing::info!(torrent = %self.spec.name, "storage follows the new file choice");
                        self.storage = Arc::new(storage);
                        // Record the files as they are now (one may be new).
                        if let Some(r) = &mut self.resume {
                            r.resave_soon();
                        }
                    }
                    Err(e) => {
                        let error = format!("applying the new file choice: {e}");
                        tracing::error!(%error, "torrent stopped");
                        self.fatal.get_or_insert(error);
                    }
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
        }
    }

    /// Tells the endpoint which connections made progress since the last
    /// tick: payload moved either way, or either side is interested (a
    /// choked, interested leecher waiting for its turn is not idle).
    fn report_progress(&mut self) {
        let now = self.now();
        let mut progressed = Vec::new();
        for p in self.core.peer_stats(now) {
            let Some(c) = self.conns.get_mut(&p.peer) else {
                continue;
            };
            let moved = p.downloaded + p.uploaded;
            if moved != c.moved || p.peer_interested || p.am_interested {
                progressed.push(p.peer);
            }
            c.moved = moved;
        }
        self.link.progress(progressed);
    }

    /// Starts the tracker task (the endpoint asked for a `started` announce).
    fn start_tracker(&mut self) {
        if self.tracker.is_some() || self.spec.trackers.iter().flatten().next().is_none() {
            return;
        }
        let client = TrackerClient::with_config(
            self.spec.trackers.clone(),
            self.spec.info_hash,
            self.config.peer_id,
            self.config.listen_port,
            TrackerConfig::clone(&self.config.tracker),
        );
        let stats = {
            let shown = self.status_tx.borrow();
            AnnounceStats {
                uploaded: shown.uploaded,
                downloaded: shown.downloaded,
                left: shown.left,
            }
        };
        let stats = self.stats_tx.insert(watch::channel(stats).0).subscribe();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(tracker_task(client, rx, stats, self.link.clone()));
        self.tracker = Some(TrackerTask { tx, task });
    }

    /// A connection the endpoint gave this torrent: its reader and writer
    /// tasks start, the core meets the peer.
    fn on_handshaken(&mut self, key: PeerKey, h: Handshaken) {
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
            self.config.download_limits.clone(),
        ));
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(conn::write_loop(
            key,
            wr,
            rx,
            queued.clone(),
            self.peer_tx.clone(),
            self.config.upload_limits.clone(),
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
                moved: 0,
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
        let hello = PeerHello {
            addr,
            outgoing,
            extension_protocol: remote.supports_extension_protocol(),
            dht: remote.supports_dht(),
        };
        self.ext.peer_connected(now, key, hello);
        self.flush_extension_transmits();
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
                    let now = self.now();
                    self.ext.peer_disconnected(now, peer);
                    if let Some(c) = self.conns.remove(&peer) {
                        c.close();
                        self.link.closed(peer);
                        if ban {
                            self.link.ban(c.addr.ip());
                            tracing::warn!(peer = %c.addr, %reason, "banned peer");
                        } else {
                            tracing::info!(peer = %c.addr, %reason, "dropped peer");
                        }
                    }
                }
                TorrentEvent::PeerSeed(peer) => self.link.peer_seed(peer),
                TorrentEvent::PieceCompleted(p) => {
                    tracing::trace!(piece = p.get(), torrent = %self.spec.name, "piece completed");
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
        // The endpoint's seed rule: told when the torrent completes, and
        // again if more files are wanted.
        let seeding = self.core.is_complete();
        if self.told_seeding != Some(seeding) {
            self.told_seeding = Some(seeding);
            self.link.seeding(seeding);
        }
        if !reads.is_empty() {
            // One job for every read of this round: a job per 16 KiB block
            // would cost a thread wake-up per block.
            self.storage_queue.push_back(StorageJob::Read(reads));
        }
        self.start_storage_jobs();
        self.drain_extension_events();
        self.flush_transmits();
        self.flush_extension_transmits();
    }

    /// The extensions' events: the core's `reqq`, PEX addresses for the
    /// endpoint, disconnects, and the DHT nodes peers name in their `port`
    /// messages (pinged by our node: BEP 5).
    fn drain_extension_events(&mut self) {
        while let Some(ev) = self.ext.poll_event() {
            match ev {
                ExtensionEvent::PeerExtensions { peer, info } => {
                    let now = self.now();
                    self.core.peer_extension_handshake(now, peer, info);
                }
                ExtensionEvent::Peers(addrs) => {
                    tracing::info!(peers = addrs.len(), "addresses from peer exchange");
                    self.link.peers(PeerSource::Pex, addrs);
                }
                ExtensionEvent::Disconnect { peer, reason, ban } => {
                    let now = self.now();
                    self.core.peer_disconnected(now, peer);
                    if let Some(c) = self.conns.remove(&peer) {
                        c.close();
                        self.link.closed(peer);
                        tracing::info!(peer = %c.addr, %reason, ban, "dropped peer");
                        if ban {
                            self.link.ban(c.addr.ip());
                        }
                    }
                }
                ExtensionEvent::DhtNode(node) => {
                    tracing::debug!(%node, "a peer's DHT node: pinged");
                    if let Some(dht) = &self.config.dht {
                        dht.ping(node);
                    }
                }
                ExtensionEvent::MetadataComplete(_) => {}
            }
        }
    }

    fn flush_extension_transmits(&mut self) {
        while let Some((peer, msg)) = self.ext.poll_transmit() {
            if let Some(c) = self.conns.get(&peer) {
                let _ = c.send(msg);
            }
        }
    }

    /// A new file choice: the picker takes the new piece priorities at
    /// once (and the status the new wanted size); storage is opened again
    /// for it once no storage job runs (see [`Session::start_storage_jobs`]).
    fn set_priorities(&mut self, files: Vec<swarm_engine::Priority>) {
        if files == self.config.file_priorities {
            return;
        }
        let now = self.now();
        self.core
            .set_priorities(now, &self.spec.piece_priorities(&files));
        self.wanted = self.spec.wanted_pieces(&files);
        self.wanted_length = self
            .wanted
            .as_ref()
            .map_or(self.pads.real_total(), |w| self.pads.real_bytes_present(w));
        tracing::info!(
            torrent = %self.spec.name,
            skipped = files.iter().filter(|&&p| p == swarm_engine::Priority::Skip).count(),
            "new file choice: applied without a restart"
        );
        self.config.file_priorities = files;
        self.rechoose = true;
        self.publish();
    }

    /// Which files storage keeps out of the download now: the skipped ones,
    /// except those with a skipped piece still being downloaded (blocks
    /// requested before the change may complete it, and it must be
    /// writable): they stay on disk as they are.
    fn files_to_keep_out(&self) -> Vec<bool> {
        let pl = u64::from(self.lengths.piece_length());
        let skipped_piece = self.spec.piece_priorities(&self.config.file_priorities);
        let downloading: Vec<u32> = self
            .core
            .pieces_downloading()
            .into_iter()
            .filter(|&p| skipped_piece.get(p as usize) == Some(&swarm_engine::Priority::Skip))
            .collect();
        let mut start = 0u64;
        self.spec
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (first, end) = (start / pl, start + f.length);
                start = end;
                self.config.file_priorities.get(i) == Some(&swarm_engine::Priority::Skip)
                    && !(f.length > 0
                        && downloading
                            .iter()
                            .any(|&p| u64::from(p) >= first && u64::from(p) <= (end - 1) / pl))
            })
            .collect()
    }

    /// Hands queued storage jobs to the blocking pool, up to
    /// [`STORAGE_JOBS_MAX`]; after a new file choice, first opens storage
    /// again for it (once no job runs; none starts meanwhile).
    fn start_storage_jobs(&mut self) {
        if self.reopening {
            return;
        }
        if self.rechoose {
            if self.storage_running > 0 {
                return;
            }
            self.rechoose = false;
            self.reopening = true;
            self.storage_running += 1;
            let (storage, tx) = (self.storage.clone(), self.input_tx.clone());
            let (spec, skipped) = (self.spec.clone(), self.files_to_keep_out());
            tokio::task::spawn_blocking(move || {
                let reopened = storage.rechoose(&spec, skipped);
                let _ = tx.send(Input::Rechosen(Box::new(reopened)));
            });
            return;
        }
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
                self.link.closed(peer);
                let now = self.now();
                self.core.peer_disconnected(now, peer);
                self.ext.peer_disconnected(now, peer);
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
