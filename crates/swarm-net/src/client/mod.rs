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
    /// Keep the resume record in this folder instead of `dir/.swarm/`
    /// (the daemon keeps its records in its state folder).
    pub resume_dir: Option<PathBuf>,
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
            resume_dir: None,
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
    stop: Arc<watch::Sender<bool>>,
}

/// One per process: the listener, the endpoint driver, the torrents.
pub struct Client {
    driver: mpsc::UnboundedSender<DriverCmd>,
    driver_task: JoinHandle<()>,
    listen_addr: SocketAddr,
    peer_id: PeerId,
    tracker: TrackerConfig,
    upload_limit: Option<Arc<FairShare>>,
    download_limit: Option<Arc<FairShare>>,
    /// Re-divides the process's rate limits every second.
    rebalance_task: Option<JoinHandle<()>>,
    torrents: Mutex<BTreeMap<InfoHash, Registered>>,
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
        let driver = Driver {
            endpoint: Endpoint::new(config.endpoint.clone(), config.peer_id, config.rng_seed),
            listener: crate::listener::Acceptor::new(listener),
            listen_addr,
            our_id: config.peer_id,
            epoch: Instant::now(),
            rx,
            tx: tx.clone(),
            sessions: Default::default(),
            pending: Default::default(),
            attached: Default::default(),
        };
        let driver_task = tokio::spawn(driver.run());
        let upload_limit = config.upload_limit.map(|r| Arc::new(FairShare::new(r)));
        let download_limit = config.download_limit.map(|r| Arc::new(FairShare::new(r)));
        let shares: Vec<Arc<FairShare>> = upload_limit
            .iter()
            .chain(download_limit.iter())
            .cloned()
            .collect();
        let rebalance_task = (!shares.is_empty()).then(|| {
            tokio::spawn(async move {
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
            })
        });
        Ok(Client {
            driver: tx,
            driver_task,
            listen_addr,
            peer_id: config.peer_id,
            tracker: config.tracker,
            upload_limit,
            download_limit,
            rebalance_task,
            torrents: Mutex::new(BTreeMap::new()),
        })
    }

    /// Where peers reach us.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
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
    pub fn add_torrent(
        &self,
        spec: TorrentSpec,
        options: AddOptions,
    ) -> Result<TorrentHandle, NetError> {
        spec.validate()?;
        let info_hash = spec.info_hash;
        let mut torrents = self.torrents.lock().unwrap_or_else(|e| e.into_inner());
        if torrents
            .get(&info_hash)
            .is_some_and(|r| !r.status.borrow().state.is_final())
        {
            return Err(NetError::AlreadyAdded(spec.info_hash_hex()));
        }
        let added = Instant::now();
        let (status_tx, status_rx) = watch::channel(TorrentStatus {
            info_hash: spec.info_hash_hex(),
            name: spec.name.clone(),
            state: TorrentState::Checking,
            // `Some` once data is actually read (none when the resume
            // record vouches for everything, or nothing is on disk).
            checked: None,
            pieces_total: spec.lengths.num_pieces(),
            total_length: spec.pads().real_total(),
            left: spec.pads().real_total(),
            listen_port: self.listen_addr.port(),
            ..TorrentStatus::default()
        });
        let stop_tx = Arc::new(watch::channel(false).0);
        let mut upload_limits: Vec<_> = options
            .upload_limit
            .map(|r| Arc::new(RateLimiter::new(r)))
            .into_iter()
            .collect();
        upload_limits.extend(self.upload_limit.as_ref().map(|f| f.join()));
        let mut download_limits: Vec<_> = options
            .download_limit
            .map(|r| Arc::new(RateLimiter::new(r)))
            .into_iter()
            .collect();
        download_limits.extend(self.download_limit.as_ref().map(|f| f.join()));
        let mut tracker = self.tracker.clone();
        if tracker.local_ip.is_none() && !self.listen_addr.ip().is_unspecified() {
            // Announce from where we listen, so the tracker hands out the
            // address peers can reach us on.
            tracker.local_ip = Some(self.listen_addr.ip());
        }
        let config = SessionConfig {
            peer_id: self.peer_id,
            torrent: options.torrent.clone(),
            tracker,
            upload_limits,
            download_limits,
            rng_seed: rand::random(),
            resume: None,
            listen_port: self.listen_addr.port(),
        };
        let link = DriverLink {
            tx: self.driver.clone(),
            info_hash,
        };
        let task = tokio::spawn(run_torrent(
            spec,
            options,
            config,
            link,
            status_tx,
            stop_tx.clone(),
            added,
        ));
        torrents.insert(
            info_hash,
            Registered {
                status: status_rx.clone(),
                stop: stop_tx.clone(),
            },
        );
        Ok(TorrentHandle {
            info_hash,
            status: status_rx,
            stop: stop_tx,
            task,
        })
    }

    /// Every torrent's latest status, by info-hash.
    pub fn status(&self) -> Vec<TorrentStatus> {
        let torrents = self.torrents.lock().unwrap_or_else(|e| e.into_inner());
        torrents
            .values()
            .map(|r| r.status.borrow().clone())
            .collect()
    }

    /// Asks a torrent to stop (it stays listed, with its final status).
    pub fn stop(&self, info_hash: &InfoHash) {
        let torrents = self.torrents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = torrents.get(info_hash) {
            r.stop.send_replace(true);
        }
    }

    /// Stops a torrent, waits for its final status and forgets it (its
    /// data and resume record stay on disk).
    pub async fn remove(&self, info_hash: &InfoHash) -> Option<TorrentStatus> {
        let registered = {
            let mut torrents = self.torrents.lock().unwrap_or_else(|e| e.into_inner());
            torrents.remove(info_hash)?
        };
        registered.stop.send_replace(true);
        let mut status = registered.status;
        let last = status.wait_for(|s| s.state.is_final()).await.ok()?.clone();
        Some(last)
    }

    /// Stops every torrent, waits for their final statuses, then stops the
    /// endpoint driver and closes the listener.
    pub async fn shutdown(mut self) {
        let registered: Vec<Registered> = {
            let mut torrents = self.torrents.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *torrents).into_values().collect()
        };
        for r in &registered {
            r.stop.send_replace(true);
        }
        for r in registered {
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
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<Result<TorrentStatus, NetError>>,
}

impl TorrentHandle {
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The latest status.
    pub fn status(&self) -> TorrentStatus {
        self.status.borrow().clone()
    }

    /// The latest status, borrowed (no copy; hold it briefly: the session
    /// waits to publish the next one while it is held).
    pub fn status_ref(&self) -> watch::Ref<'_, TorrentStatus> {
        self.status.borrow()
    }

    /// A receiver that wakes on every published status.
    pub fn watch(&self) -> watch::Receiver<TorrentStatus> {
        self.status.clone()
    }

    /// Asks the torrent to stop: close its connections, save its resume
    /// record, announce `stopped`.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits for the torrent to end; its final status, or why it failed
    /// (the final status, state `failed`, says it too).
    pub async fn join(self) -> Result<TorrentStatus, NetError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(NetError::Fatal(format!("torrent task: {e}"))),
        }
    }
}

/// The life of one torrent: check, run the session, leave the endpoint.
async fn run_torrent(
    spec: TorrentSpec,
    options: AddOptions,
    mut config: SessionConfig,
    link: DriverLink,
    status_tx: watch::Sender<TorrentStatus>,
    stop_tx: Arc<watch::Sender<bool>>,
    added: Instant,
) -> Result<TorrentStatus, NetError> {
    let mut stop = stop_tx.subscribe();
    drop(stop_tx);
    let fail = |status_tx: &watch::Sender<TorrentStatus>, e: NetError| {
        status_tx.send_modify(|s| {
            s.state = TorrentState::Failed;
            s.error = Some(e.to_string());
            s.elapsed_s = added.elapsed().as_secs_f64();
            s.is_final = true;
        });
        Err(e)
    };
    let started = tokio::select! {
        r = startup::open_and_check(&spec, &options, &status_tx) => r,
        _ = stop.wait_for(|s| *s) => {
            status_tx.send_modify(|s| {
                s.state = TorrentState::Stopped;
                s.elapsed_s = added.elapsed().as_secs_f64();
                s.is_final = true;
            });
            return Ok(status_tx.borrow().clone());
        }
    };
    let (storage, resume, have) = match started {
        Ok(r) => r,
        Err(e) => return fail(&status_tx, e),
    };
    config.resume = resume;
    let info_hash = spec.info_hash;
    let driver = link.tx.clone();
    // The torrent joins the endpoint before its session publishes a running
    // status: whoever sees `seeding` can connect to it.
    let (input_tx, input_rx) = mpsc::unbounded_channel();
    let (reply_tx, reply_rx) = oneshot::channel();
    let _ = driver.send(DriverCmd::Add {
        info_hash,
        session: input_tx.clone(),
        peers: options.peers.clone(),
        reply: reply_tx,
    });
    let refused = match reply_rx.await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("the endpoint refused the torrent: {e:?}")),
        Err(_) => Some("the endpoint driver is gone".to_string()),
    };
    if let Some(why) = refused {
        return fail(&status_tx, NetError::Fatal(why));
    }
    let session = session::spawn(
        &spec,
        storage,
        have,
        config,
        status_tx.clone(),
        link,
        stop,
        added,
        (input_tx, input_rx),
    );
    tracing::info!(
        name = %spec.name,
        info_hash = %spec.info_hash_hex(),
        "started"
    );
    let result = session.join().await;
    let _ = driver.send(DriverCmd::Remove { info_hash });
    result
}
