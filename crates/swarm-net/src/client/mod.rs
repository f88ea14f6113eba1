//! The library's front door: a [`Client`] (one per process) runs many
//! torrents on one listening port. The CLI's `download` and `seed`, the
//! daemon and tests all start torrents through it, so there is one start-up
//! path:
//!
//! 1. [`Client::add_torrent`] publishes a `checking` status at once and, in
//!    the torrent's own task, opens the files, trusts what the resume record
//!    vouches for, checks the rest (progress in the status);
//! 2. starts the torrent's session (the owner task of its core) and
//!    registers it with the endpoint driver ([`driver`]), which from then on
//!    routes the handshakes that name it and dials its peers;
//! 3. on [`TorrentHandle::stop`] (or a fatal error) the session closes its
//!    connections, saves the resume record, announces `stopped`, publishes
//!    a final status and the torrent leaves the endpoint.
//!
//! Peer sources other than trackers and `--peer` (the DHT, PEX) feed
//! addresses through a [`PeerFeed`].
//!
//! Rate limits: the process's (`ClientConfig`) are [`FairShare`]s, shared
//! max-min fairly by the torrents (re-divided every second by what each
//! used); a torrent's own (`AddOptions`) are a bucket its connections take
//! from as well.

mod driver;
mod startup;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use swarm_engine::{Endpoint, EndpointConfig, InfoHash, PeerId, PeerSource, TorrentConfig};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ratelimit::{FAIR_SHARE_INTERVAL, FairShare, RateLimiter};
use crate::session::{self, SessionConfig};
use crate::status::{TorrentState, TorrentStatus};
use crate::tracker::TrackerConfig;
use crate::{NetError, OpenMode, TorrentSpec};
pub use driver::DIAL_FAILURES_REPORT;
pub(crate) use driver::DriverLink;
use driver::{Driver, DriverCmd};

/// The first ports [`bind_listener`] tries when no address is given
/// (6881-6889, BitTorrent's classic range).
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

/// The process's knobs.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Where to accept peers (none: 0.0.0.0:6881, or the next free port up
    /// to 6889).
    pub listen: Option<SocketAddr>,
    pub peer_id: PeerId,
    /// The connection policy's caps and timings.
    pub endpoint: EndpointConfig,
    /// Bytes per second over every torrent (`--max-upload-rate`).
    pub upload_limit: Option<u64>,
    pub download_limit: Option<u64>,
    pub tracker: TrackerConfig,
    /// Seeds the endpoint's RNG (each torrent's core gets its own).
    pub rng_seed: u64,
    /// The DHT node: every public torrent looks its peers up and announces
    /// itself there (BEP 5). `None`: no DHT (`--no-dht`).
    pub dht: Option<crate::dht::DhtHandle>,
    /// An idle torrent's session sleeps: no task, no channel, only its
    /// plain data, until a peer connects, an announce is due or it is
    /// stopped (`session::Dormant`). The daemon's many torrents need it;
    /// a command that runs a few gains nothing.
    pub sleep_when_idle: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            listen: None,
            peer_id: crate::new_peer_id(),
            endpoint: EndpointConfig::default(),
            upload_limit: None,
            download_limit: None,
            tracker: TrackerConfig::default(),
            rng_seed: rand::random(),
            dht: None,
            sleep_when_idle: false,
        }
    }
}

/// How to add one torrent.
#[derive(Clone, Debug)]
pub struct AddOptions {
    /// The folder that holds (or will hold) the torrent's data.
    pub dir: PathBuf,
    /// `Create` to download (missing files are created), `Existing` to
    /// seed (every file must be there, and some piece must check out).
    pub mode: OpenMode,
    /// Addresses to dial (and redial) from the start (`--peer`).
    pub peers: Vec<SocketAddr>,
    /// Bytes per second for this torrent alone (on top of the process's).
    pub upload_limit: Option<u64>,
    pub download_limit: Option<u64>,
    pub torrent: TorrentConfig,
    /// Keep a resume record in `dir/.swarm/` (trusted at the next start).
    pub resume: bool,
    /// The raw info dictionary, served to peers that ask (BEP 9: how
    /// magnet links get it).
    pub metadata: Option<bytes::Bytes>,
    /// A private torrent (BEP 27): neither DHT nor PEX.
    pub private: bool,
    /// No peer exchange (BEP 11) even if public (`--no-pex`).
    pub no_pex: bool,
    /// Keep the resume record in this folder instead of `dir/.swarm/`
    /// (the daemon keeps its records in its state folder).
    pub resume_dir: Option<PathBuf>,
    /// Each file's priority, by index in the torrent (pads included; empty
    /// or short: `Normal`). A `Skip` file is not fetched, nor created: its
    /// bytes that share a piece with a wanted file go to the parts file
    /// beside the resume record. [`TorrentHandle::set_file_priorities`]
    /// changes it while the torrent runs.
    pub file_priorities: Vec<swarm_engine::Priority>,
}

impl AddOptions {
    pub fn new(dir: impl Into<PathBuf>, mode: OpenMode) -> AddOptions {
        AddOptions {
            dir: dir.into(),
            mode,
            peers: Vec::new(),
            upload_limit: None,
            download_limit: None,
            torrent: TorrentConfig::default(),
            resume: true,
            metadata: None,
            private: false,
            no_pex: false,
            resume_dir: None,
            file_priorities: Vec::new(),
        }
    }
}

/// Where other code (the DHT, PEX) feeds peer addresses to the endpoint.
#[derive(Clone)]
pub struct PeerFeed {
    tx: mpsc::UnboundedSender<DriverCmd>,
}

impl PeerFeed {
    /// Addresses of peers of `info_hash`, found by `source`. Unknown
    /// torrents are ignored; the endpoint bounds the candidate list.
    pub fn peers(&self, info_hash: InfoHash, source: PeerSource, addrs: Vec<SocketAddr>) {
        let _ = self.tx.send(DriverCmd::Peers {
            info_hash,
            source,
            addrs,
        });
    }
}

struct Registered {
    status: watch::Receiver<TorrentStatus>,
    control: Arc<Control>,
    added: Instant,
}

/// What a torrent's handle (and the client) share with its start task:
/// the stop flag, and why the start failed if it did. The start task is
/// not kept (no `JoinHandle`: a finished task's memory, ~2 KB, would stay
/// for the torrent's life); its error waits here for
/// [`TorrentHandle::join`].
struct Control {
    stop: crate::stop::StopFlag,
    /// The start's error (metadata, opening, checking), set before the
    /// final status is published.
    failure: Mutex<Option<NetError>>,
}

impl Control {
    fn stop(&self) {
        self.stop.stop();
    }
}

/// Its handle and the client gone (the last `Arc`): the torrent stops.
impl Drop for Control {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// `status` with the time since the torrent was added brought up to now
/// (a session publishes only when something else changes; a final status
/// keeps the time it ended at).
fn fresh(status: &TorrentStatus, added: Instant) -> TorrentStatus {
    let mut s = status.clone();
    if !s.is_final {
        s.elapsed_s = added.elapsed().as_secs_f64();
    }
    s
}

/// One per process: the listener, the endpoint driver, the torrents.
pub struct Client {
    driver: mpsc::UnboundedSender<DriverCmd>,
    driver_task: JoinHandle<()>,
    listen_addr: SocketAddr,
    peer_id: PeerId,
    /// Every torrent's tracker client's (one copy: a sleeping torrent
    /// keeps its `SessionConfig`), announcing from where we listen.
    tracker: Arc<TrackerConfig>,
    /// The last torrent configuration added, shared by the torrents added
    /// with the same (the daemon's are all alike).
    torrent_config: Mutex<Arc<TorrentConfig>>,
    /// The process's rate limits, shared fairly by the torrents (each may
    /// be switched on, changed or off at any time: `set_rate_limits`).
    upload_limit: Arc<FairShare>,
    download_limit: Arc<FairShare>,
    /// Re-divides the process's rate limits every second (nothing to do
    /// while there is no limit).
    rebalance_task: Option<JoinHandle<()>>,
    torrents: Mutex<BTreeMap<InfoHash, Registered>>,
    dht: Option<crate::dht::DhtHandle>,
    /// The endpoint's cap on one torrent's connections.
    torrent_connections_max: usize,
    counters: Arc<Counters>,
    sleep_when_idle: bool,
}

/// What the client's torrents have done so far, over all of them: the
/// measure of what idle torrents cost (see [`Client::counters`]).
#[derive(Debug, Default)]
pub struct Counters {
    /// Times a session's owner task woke up (an input, a timer).
    pub session_wakeups: std::sync::atomic::AtomicU64,
    /// Statuses published (a session publishes when its status changed).
    pub publications: std::sync::atomic::AtomicU64,
    /// Times a session went to sleep, and times one was woken
    /// (`ClientConfig::sleep_when_idle`): their difference is how many
    /// sleep now.
    pub session_sleeps: std::sync::atomic::AtomicU64,
    pub session_wakes: std::sync::atomic::AtomicU64,
}

impl Counters {
    /// Sessions asleep now.
    pub fn sessions_asleep(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        // Wakes first: a session counted awake, never asleep, by a race.
        let wakes = self.session_wakes.load(Relaxed);
        self.session_sleeps.load(Relaxed).saturating_sub(wakes)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(t) = &self.rebalance_task {
            t.abort();
        }
    }
}

impl Client {
    /// Binds the listener and starts the endpoint driver.
    pub async fn start(config: ClientConfig) -> Result<Client, NetError> {
        let listener = bind_listener(config.listen).await?;
        let listen_addr = listener.local_addr().map_err(|source| NetError::Listen {
            addr: config.listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            source,
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut endpoint = Endpoint::new(config.endpoint.clone(), config.peer_id, config.rng_seed);
        // A specific listen address is the one peers see (BEP 40 priorities;
        // on 0.0.0.0 it is not known, and a full torrent refuses newcomers).
        if !listen_addr.ip().is_unspecified() {
            endpoint.set_our_addr(listen_addr);
        }
        let driver = Driver {
            endpoint,
            listener: crate::listener::Acceptor::new(listener),
            listen_addr,
            our_id: config.peer_id,
            epoch: Instant::now(),
            rx,
            tx: tx.clone(),
            sessions: Default::default(),
            figures: Default::default(),
            figures_dirty: true,
            pending: Default::default(),
            attached: Default::default(),
            torrent_caps: Default::default(),
        };
        let driver_task = tokio::spawn(driver.run());
        let upload_limit = Arc::new(FairShare::with_limit(config.upload_limit));
        let download_limit = Arc::new(FairShare::with_limit(config.download_limit));
        let shares = [upload_limit.clone(), download_limit.clone()];
        let rebalance_task = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(FAIR_SHARE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = Instant::now();
            loop {
                tick.tick().await;
                let now = Instant::now();
                for share in &shares {
                    share.rebalance(now - last);
                }
                last = now;
            }
        }));
        Ok(Client {
            driver: tx,
            driver_task,
            listen_addr,
            peer_id: config.peer_id,
            tracker: Arc::new({
                let mut tracker = config.tracker;
                if tracker.local_ip.is_none() && !listen_addr.ip().is_unspecified() {
                    // Announce from where we listen, so the tracker hands
                    // out the address peers can reach us on.
                    tracker.local_ip = Some(listen_addr.ip());
                }
                tracker
            }),
            torrent_config: Mutex::default(),
            upload_limit,
            download_limit,
            rebalance_task,
            torrents: Mutex::new(BTreeMap::new()),
            dht: config.dht,
            torrent_connections_max: config.endpoint.torrent_connections_max,
            counters: Arc::default(),
            sleep_when_idle: config.sleep_when_idle,
        })
    }

    /// The process's rate limits (bytes/s; `None`: none) from now on,
    /// for every torrent and connection, running ones included.
    pub fn set_rate_limits(&self, upload: Option<u64>, download: Option<u64>) {
        self.upload_limit.set_limit(upload);
        self.download_limit.set_limit(download);
    }

    /// The process's rate limits: (upload, download), bytes/s.
    pub fn rate_limits(&self) -> (Option<u64>, Option<u64>) {
        (self.upload_limit.limit(), self.download_limit.limit())
    }

    /// A new cap on connections over all torrents; over it, the
    /// connections idle longest close at once.
    pub fn set_connections_max(&self, n: usize) {
        let _ = self.driver.send(DriverCmd::SetConnectionsMax { n });
    }

    /// Connections one torrent may have (the endpoint's cap).
    pub fn torrent_connections_max(&self) -> usize {
        self.torrent_connections_max
    }

    /// A torrent's own cap on connections (`None`: back to
    /// [`Client::torrent_connections_max`]), from now on: over it, its
    /// connections idle longest close at once. Kept while the torrent is
    /// stopped or checking, until set back to `None` (or the torrent is
    /// removed with [`Client::remove`]).
    pub fn set_torrent_connections_max(&self, info_hash: &InfoHash, n: Option<usize>) {
        let _ = self.driver.send(DriverCmd::SetTorrentConnectionsMax {
            info_hash: *info_hash,
            n,
        });
    }

    /// Where peers reach us.
    /// `config` as one shared copy: the last one added if equal.
    fn torrent_config(&self, config: &TorrentConfig) -> Arc<TorrentConfig> {
        let mut last = self
            .torrent_config
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if **last != *config {
            *last = Arc::new(config.clone());
        }
        last.clone()
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Wake-ups and publications of this client's torrents so far. A
    /// session wakes for its inputs, and on timers only while it is busy
    /// (peers, storage jobs, a resume record to save, rates not yet zero);
    /// it publishes a status when it changed. An idle torrent costs neither.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// For the DHT and PEX: a way to hand the endpoint peers.
    pub fn peer_feed(&self) -> PeerFeed {
        PeerFeed {
            tx: self.driver.clone(),
        }
    }

    /// Starts a torrent: checks its data, then runs it. Returns at once;
    /// the handle's status says `checking` until the check is done.
    /// Refused if the torrent is already added (and not yet removed).
    /// The spec may be shared (`Arc`): the torrent keeps no copy of its own.
    pub fn add_torrent(
        &self,
        spec: impl Into<Arc<TorrentSpec>>,
        options: AddOptions,
    ) -> Result<TorrentHandle, NetError> {
        let spec = spec.into();
        spec.validate()?;
        self.add(Source::Spec(spec), options)
    }

    /// Starts a magnet link: its metadata first (BEP 9; from
    /// `DIR/.swarm/<info-hash>.torrent` if an earlier run saved it there,
    /// else from peers: the link's `x.pe` and `tr`, `options.peers`, the
    /// DHT, peer exchange), saved there once checked against the
    /// info-hash; then as [`Client::add_torrent`]. The status says
    /// `metadata` until then. `options.metadata` and `options.private` are
    /// taken from the metadata.
    pub fn add_magnet(
        &self,
        magnet: swarm_wire::Magnet,
        options: AddOptions,
    ) -> Result<TorrentHandle, NetError> {
        self.add(Source::Magnet(magnet), options)
    }

    fn add(&self, source: Source, options: AddOptions) -> Result<TorrentHandle, NetError> {
        let info_hash = source.info_hash();
        let mut torrents = self.torrents.lock().unwrap_or_else(|e| e.into_inner());
        if torrents
            .get(&info_hash)
            .is_some_and(|r| !r.status.borrow().state.is_final())
        {
            return Err(NetError::AlreadyAdded(info_hash.to_hex()));
        }
        let added = Instant::now();
        let first_status = match &source {
            Source::Spec(spec) => initial_status(spec, self.listen_addr.port()),
            Source::Magnet(m) => TorrentStatus {
                info_hash: info_hash.to_hex(),
                name: m.name.clone().unwrap_or_else(|| info_hash.to_hex()),
                state: TorrentState::Metadata,
                metadata_pieces: Some((0, 0)),
                listen_port: self.listen_addr.port(),
                ..TorrentStatus::default()
            },
        };
        let (status_tx, status_rx) = watch::channel(first_status);
        let control = Arc::new(Control {
            stop: crate::stop::StopFlag::default(),
            failure: Mutex::new(None),
        });
        // The torrent's own buckets (limiting nothing without a limit, so
        // that one can be set later), then its shares of the process's.
        let own = (
            Arc::new(RateLimiter::with_limit(options.upload_limit)),
            Arc::new(RateLimiter::with_limit(options.download_limit)),
        );
        let upload_limits = vec![own.0.clone(), self.upload_limit.join()];
        let download_limits = vec![own.1.clone(), self.download_limit.join()];
        let config = SessionConfig {
            peer_id: self.peer_id,
            torrent: self.torrent_config(&options.torrent),
            tracker: self.tracker.clone(),
            upload_limits,
            download_limits,
            rng_seed: rand::random(),
            resume: None,
            listen_port: self.listen_addr.port(),
            metadata: options.metadata.clone(),
            private: options.private,
            no_pex: options.no_pex,
            dht_port: self.dht.as_ref().map(|d| d.local_addr().port()),
            dht: self.dht.clone().filter(|_| !options.private),
            counters: self.counters.clone(),
            file_priorities: options.file_priorities.clone(),
            sleep_when_idle: self.sleep_when_idle,
        };
        let link = DriverLink {
            tx: self.driver.clone(),
            info_hash,
        };
        // The session's inputs: made now and given to the driver, so that
        // commands sent through it (a new file choice) wait while the
        // torrent checks. The driver is the only way in: the channel lives
        // only while the session is awake (see `session::Dormant`).
        let (input_tx, input_rx) = mpsc::unbounded_channel();
        let _ = self.driver.send(DriverCmd::Register {
            info_hash,
            session: input_tx.clone(),
        });
        tokio::spawn(run_torrent(
            source,
            options,
            config,
            self.dht.clone(),
            link,
            status_tx,
            control.clone(),
            added,
            (input_tx, input_rx),
        ));
        torrents.insert(
            info_hash,
            Registered {
                status: status_rx.clone(),
                control: control.clone(),
                added,
            },
        );
        Ok(TorrentHandle {
            info_hash,
            status: status_rx,
            control,
            added,
            limits: own,
            driver: self.driver.clone(),
        })
    }

    /// Every torrent's latest status, by info-hash.
    pub fn status(&self) -> Vec<TorrentStatus> {
        let torrents = self.torrents.lock().unwrap_or_else(|e| e.into_inner());
        torrents
            .values()
            .map(|r| fresh(&r.status.borrow(), r.added))
            .collect()
    }

    /// Asks a torrent to stop (it stays listed, with its final status).
    pub fn stop(&self, info_hash: &InfoHash) {
        let torrents = self.torrents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = torrents.get(info_hash) {
            r.control.stop();
            self.wake(*info_hash);
        }
    }

    /// A sleeping session wakes (to see that it was stopped).
    fn wake(&self, info_hash: InfoHash) {
        let _ = self.driver.send(DriverCmd::Wake { info_hash });
    }

    /// Stops a torrent, waits for its final status and forgets it (its
    /// data and resume record stay on disk).
    pub async fn remove(&self, info_hash: &InfoHash) -> Option<TorrentStatus> {
        let registered = {
            let mut torrents = self.torrents.lock().unwrap_or_else(|e| e.into_inner());
            torrents.remove(info_hash)?
        };
        registered.control.stop();
        self.set_torrent_connections_max(info_hash, None);
        self.wake(*info_hash);
        let mut status = registered.status;
        let last = status.wait_for(|s| s.state.is_final()).await.ok()?.clone();
        Some(last)
    }

    /// Stops every torrent, waits for their final statuses, then stops the
    /// endpoint driver and closes the listener.
    pub async fn shutdown(mut self) {
        let registered: Vec<(InfoHash, Registered)> = {
            let mut torrents = self.torrents.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *torrents).into_iter().collect()
        };
        for (info_hash, r) in &registered {
            r.control.stop();
            self.wake(*info_hash);
        }
        for (_, r) in registered {
            let mut status = r.status;
            let _ = status.wait_for(|s| s.state.is_final()).await;
        }
        let _ = self.driver.send(DriverCmd::Shutdown);
        let _ = (&mut self.driver_task).await;
    }
}

/// One torrent of a [`Client`].
pub struct TorrentHandle {
    info_hash: InfoHash,
    status: watch::Receiver<TorrentStatus>,
    control: Arc<Control>,
    added: Instant,
    /// Its own rate limits (upload, download), beside the process's.
    limits: (Arc<RateLimiter>, Arc<RateLimiter>),
    /// Its session's inputs go through the endpoint driver (which wakes it
    /// if it sleeps, and keeps them while it checks).
    driver: mpsc::UnboundedSender<DriverCmd>,
}

impl TorrentHandle {
    /// This torrent's own rate limits (bytes/s; `None`: none) from now
    /// on, its running connections included (no restart).
    pub fn set_rate_limits(&self, upload: Option<u64>, download: Option<u64>) {
        self.limits.0.set_limit(upload);
        self.limits.1.set_limit(download);
    }

    /// Its own rate limits: (upload, download), bytes/s.
    pub fn rate_limits(&self) -> (Option<u64>, Option<u64>) {
        (self.limits.0.limit(), self.limits.1.limit())
    }

    /// A new priority for each file (as [`AddOptions::file_priorities`]),
    /// applied by the running session without a restart: the picker takes
    /// the new piece priorities at once (interest recounted, completion if
    /// everything wanted is there); storage is opened again for the new
    /// choice once its running jobs are done (a file wanted again is created
    /// and takes its bytes back from the parts file; one skipped that holds
    /// no data is deleted). While the torrent checks (or fetches a magnet's
    /// metadata) the change waits for the session.
    pub fn set_file_priorities(&self, priorities: Vec<swarm_engine::Priority>) {
        // A sleeping session wakes for it.
        let _ = self.driver.send(DriverCmd::Input {
            info_hash: self.info_hash,
            input: session::Input::SetPriorities(priorities),
        });
    }

    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The latest status (its `elapsed_s` brought up to now).
    pub fn status(&self) -> TorrentStatus {
        fresh(&self.status.borrow(), self.added)
    }

    /// The latest status, borrowed (no copy; hold it briefly: the session
    /// waits to publish the next one while it is held). Its `elapsed_s` is
    /// as of its publication: [`TorrentHandle::elapsed_s`] is now's.
    pub fn status_ref(&self) -> watch::Ref<'_, TorrentStatus> {
        self.status.borrow()
    }

    /// Seconds since the torrent was added.
    pub fn elapsed_s(&self) -> f64 {
        self.added.elapsed().as_secs_f64()
    }

    /// A receiver that wakes on every published status.
    pub fn watch(&self) -> watch::Receiver<TorrentStatus> {
        self.status.clone()
    }

    /// Asks the torrent to stop: close its connections, save its resume
    /// record, announce `stopped`.
    pub fn stop(&self) {
        self.control.stop();
        let _ = self.driver.send(DriverCmd::Wake {
            info_hash: self.info_hash,
        });
    }

    /// Waits for the torrent to end; its final status, or why it failed
    /// (the final status, state `failed`, says it too).
    pub async fn join(mut self) -> Result<TorrentStatus, NetError> {
        let last = match self.status.wait_for(|s| s.is_final).await {
            Ok(s) => s.clone(),
            Err(_) => return Err(NetError::Fatal("the torrent's session is gone".into())),
        };
        // A failed start left its error before the final status.
        let failure = self
            .control
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(e) = failure {
            return Err(e);
        }
        match (last.state, &last.error) {
            (TorrentState::Failed, Some(e)) => Err(NetError::Fatal(e.clone())),
            _ => Ok(last),
        }
    }
}

/// What a torrent is added from.
enum Source {
    Spec(Arc<TorrentSpec>),
    /// Metadata first ([`crate::magnet`]).
    Magnet(swarm_wire::Magnet),
}

impl Source {
    fn info_hash(&self) -> InfoHash {
        match self {
            Source::Spec(s) => s.info_hash,
            Source::Magnet(m) => m.info_hash,
        }
    }
}

/// A torrent's status before its data is checked.
fn initial_status(spec: &TorrentSpec, listen_port: u16) -> TorrentStatus {
    TorrentStatus {
        info_hash: spec.info_hash_hex(),
        name: spec.name.clone(),
        state: TorrentState::Checking,
        // `Some` once data is actually read (none when the resume
        // record vouches for everything, or nothing is on disk).
        checked: None,
        pieces_total: spec.lengths.num_pieces(),
        total_length: spec.pads().real_total(),
        wanted_length: spec.pads().real_total(),
        left: spec.pads().real_total(),
        listen_port,
        ..TorrentStatus::default()
    }
}

/// Registers the torrent with the endpoint (which from then on dials its
/// candidates and routes its handshakes to `session`).
async fn join_endpoint(
    link: &DriverLink,
    session: mpsc::UnboundedSender<session::Input>,
    peers: Vec<SocketAddr>,
) -> Result<(), NetError> {
    let (reply_tx, reply_rx) = oneshot::channel();
    let _ = link.tx.send(DriverCmd::Add {
        info_hash: link.info_hash,
        session,
        peers,
        reply: reply_tx,
    });
    match reply_rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(NetError::Fatal(format!(
            "the endpoint refused the torrent: {e:?}"
        ))),
        Err(_) => Err(NetError::Fatal("the endpoint driver is gone".to_string())),
    }
}

/// The DHT as a peer source: lookups (that announce us) until the torrent
/// leaves (the tasks are aborted on drop); their peers go to the endpoint.
pub(crate) struct DhtSource([JoinHandle<()>; 2]);

impl DhtSource {
    fn start(dht: crate::dht::DhtHandle, link: &DriverLink, listen_port: u16) -> DhtSource {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let lookups = tokio::spawn(crate::dht::peer_lookups(
            dht,
            link.info_hash,
            listen_port,
            tx,
        ));
        let feed = link.clone();
        let forward = tokio::spawn(async move {
            while let Some(peers) = rx.recv().await {
                feed.peers(PeerSource::Dht, peers);
            }
        });
        DhtSource([lookups, forward])
    }
}

impl Drop for DhtSource {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// A magnet link's metadata: from its saved `.torrent`, or fetched from
/// peers (and saved). `None`: stopped first.
async fn magnet_metadata(
    magnet: &swarm_wire::Magnet,
    options: &AddOptions,
    config: &SessionConfig,
    link: &DriverLink,
    status_tx: &watch::Sender<TorrentStatus>,
    stop: &crate::stop::StopFlag,
    added: Instant,
) -> Result<Option<(swarm_wire::metainfo::Metainfo, Vec<SocketAddr>)>, NetError> {
    use swarm_wire::metainfo::Metainfo;
    let info_hash = magnet.info_hash;
    // Beside the resume record.
    let path = match &options.resume_dir {
        Some(folder) => folder.join(format!("{}.torrent", info_hash.to_hex())),
        None => crate::magnet::saved_torrent_path(&options.dir, info_hash),
    };
    if let Ok(bytes) = std::fs::read(&path) {
        match Metainfo::from_bytes(&bytes) {
            Ok(meta) if meta.info_hash() == info_hash => {
                tracing::info!(path = %path.display(), "metadata from the saved .torrent");
                return Ok(Some((meta, Vec::new())));
            }
            Ok(_) => tracing::warn!("{} is another torrent's; fetching again", path.display()),
            Err(e) => tracing::warn!("{}: {e}; fetching again", path.display()),
        }
    }
    let mut peers = options.peers.clone();
    for p in &magnet.peers {
        match tokio::net::lookup_host(p.as_str()).await {
            Ok(mut found) => peers.extend(found.next()),
            Err(e) => tracing::warn!("magnet peer `{p}`: {e}; skipped"),
        }
    }
    let (input_tx, mut input_rx) = mpsc::unbounded_channel();
    join_endpoint(link, input_tx, peers).await?;
    let phase = crate::magnet::MetadataPhase {
        info_hash,
        trackers: magnet.trackers.clone(),
        peer_id: config.peer_id,
        listen_port: config.listen_port,
        tracker: TrackerConfig::clone(&config.tracker),
        dht_port: config.dht_port,
        no_pex: options.no_pex,
    };
    let fetched = crate::magnet::fetch(phase, link, &mut input_rx, status_tx, stop, added).await;
    let _ = link.tx.send(DriverCmd::Remove { info_hash });
    let Some(fetched) = fetched else {
        return Ok(None);
    };
    let bytes = crate::magnet::torrent_file(&fetched.info, &magnet.trackers);
    let meta = Metainfo::from_bytes(&bytes).map_err(|e| {
        NetError::BadTorrent(format!(
            "the metadata peers gave for this info-hash is not a valid torrent: {e}"
        ))
    })?;
    tracing::info!(
        bytes = fetched.info.len(),
        "metadata fetched and checked against the info-hash"
    );
    match crate::magnet::save(&path, &bytes) {
        Ok(()) => tracing::info!(path = %path.display(), "metadata saved"),
        Err(e) => tracing::warn!(
            "cannot save the metadata to {}: {e}; a restart will fetch it again",
            path.display()
        ),
    }
    Ok(Some((meta, fetched.peers)))
}

/// The life of one torrent: a magnet's metadata, check, run the session,
/// leave the endpoint.
#[allow(clippy::too_many_arguments)]
async fn run_torrent(
    source: Source,
    mut options: AddOptions,
    mut config: SessionConfig,
    dht: Option<crate::dht::DhtHandle>,
    link: DriverLink,
    status_tx: watch::Sender<TorrentStatus>,
    control: Arc<Control>,
    added: Instant,
    (input_tx, input_rx): (
        mpsc::UnboundedSender<session::Input>,
        mpsc::UnboundedReceiver<session::Input>,
    ),
) {
    let stop = control.stop.clone();
    // Ended before its session: the driver forgets it (the inputs kept for
    // it) before the final status, so that whoever adds it again after
    // seeing that status comes after.
    let fail = |status_tx: &watch::Sender<TorrentStatus>, e: NetError| {
        link.remove();
        let error = e.to_string();
        *control.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
        status_tx.send_modify(|s| {
            s.state = TorrentState::Failed;
            s.error = Some(error);
            s.elapsed_s = added.elapsed().as_secs_f64();
            s.is_final = true;
        });
    };
    let stopped = |status_tx: &watch::Sender<TorrentStatus>| {
        link.remove();
        status_tx.send_modify(|s| {
            s.state = TorrentState::Stopped;
            s.elapsed_s = added.elapsed().as_secs_f64();
            s.is_final = true;
        });
    };
    let spec = match source {
        Source::Spec(spec) => spec,
        Source::Magnet(magnet) => {
            // A magnet's privacy (BEP 27) is known with its metadata: its
            // lookups run meanwhile (that is how its peers are found).
            let _dht_source = dht
                .clone()
                .map(|d| DhtSource::start(d, &link, config.listen_port));
            // Boxed (as the check below): this task lives as long as the
            // torrent, and its future is as large as its largest step.
            let resolved = Box::pin(magnet_metadata(
                &magnet, &options, &config, &link, &status_tx, &stop, added,
            ))
            .await;
            // The metadata phase left the endpoint (and the driver): the
            // torrent's own inputs go to its channel again (they wait
            // there while it checks).
            let _ = link.tx.send(DriverCmd::Register {
                info_hash: link.info_hash,
                session: input_tx.clone(),
            });
            let (meta, peers) = match resolved {
                Ok(Some(r)) => r,
                Ok(None) => return stopped(&status_tx),
                Err(e) => return fail(&status_tx, e),
            };
            let spec = Arc::new(TorrentSpec::from_metainfo(&meta));
            if let Err(e) = spec.validate() {
                return fail(&status_tx, e);
            }
            options.peers.extend(peers);
            options.metadata = Some(bytes::Bytes::copy_from_slice(meta.info_bytes()));
            options.private = meta.is_private();
            config.metadata = options.metadata.clone();
            config.private = options.private;
            if config.private {
                config.dht = None;
            }
            let mut first = initial_status(&spec, config.listen_port);
            first.elapsed_s = added.elapsed().as_secs_f64();
            status_tx.send_replace(first);
            spec
        }
    };
    let started = tokio::select! {
        r = Box::pin(startup::open_and_check(&spec, &options, &status_tx)) => r,
        () = stop.stopped() => return stopped(&status_tx),
    };
    let (storage, resume, have) = match started {
        Ok(r) => r,
        Err(e) => return fail(&status_tx, e),
    };
    config.resume = resume;
    // The torrent joins the endpoint before its session publishes a running
    // status: whoever sees `seeding` can connect to it.
    if let Err(e) = join_endpoint(&link, input_tx.clone(), options.peers.clone()).await {
        return fail(&status_tx, e);
    }
    // Private torrents (BEP 27) never use the DHT.
    let dht_source = dht
        .filter(|_| !options.private)
        .map(|d| DhtSource::start(d, &link, config.listen_port));
    tracing::info!(
        name = %spec.name,
        info_hash = %spec.info_hash_hex(),
        "started"
    );
    // From here the session owns the torrent (its end included: it leaves
    // the endpoint, then publishes its final status); this task ends.
    drop(control);
    session::spawn(
        spec,
        storage,
        have,
        config,
        status_tx,
        link,
        stop,
        added,
        dht_source,
        (input_tx, input_rx),
    );
}
