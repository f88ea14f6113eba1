//! The DHT's UDP driver: one owner task per [`Dht`] engine, a socket, a
//! timer, and commands from handles.
//!
//! The task `select!`s over the engine's next deadline, datagrams and
//! commands; after each input it sends what the engine queued and hands
//! finished lookups to whoever is waiting for them. It decides nothing: the
//! engine does (see `swarm-dht`). Time is the engine's `Instant`, counted
//! in microseconds since the task started.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use swarm_dht::{
    Dht, DhtConfig, DhtEvent, DhtStats, Instant, LookupId, LookupOutcome, LookupStats, NodeInfo,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// Largest datagram read; longer ones are cut and then refused by the codec.
const RECV_BUF_LEN: usize = 4096;
/// Commands queued to the owner task.
const COMMANDS_MAX: usize = 64;

type Start = Box<dyn FnOnce(&mut Dht, Instant) -> Option<LookupId> + Send>;
type Done = oneshot::Sender<Option<(LookupOutcome, LookupStats)>>;

enum Command {
    Lookup(Start, Done),
    Stats(oneshot::Sender<DhtStats>),
    Nodes(oneshot::Sender<Vec<NodeInfo>>),
    AddNodes(Vec<NodeInfo>),
    Ping(SocketAddr),
    Keep(swarm_dht::item::Item, oneshot::Sender<bool>),
}

/// A running DHT node: cheap to clone; the task stops when every handle is
/// dropped.
#[derive(Clone, Debug)]
pub struct DhtHandle {
    tx: mpsc::Sender<Command>,
    local_addr: SocketAddr,
}

/// What went wrong starting a node.
#[derive(Debug, thiserror::Error)]
pub enum DhtStartError {
    #[error("cannot bind the DHT's UDP socket to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl DhtHandle {
    /// Binds `bind` and starts the node's task. The config's address
    /// families are set from the socket's.
    pub async fn start(
        bind: SocketAddr,
        mut config: DhtConfig,
        seed: u64,
    ) -> Result<Self, DhtStartError> {
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(|source| DhtStartError::Bind { addr: bind, source })?;
        let local_addr = socket
            .local_addr()
            .map_err(|source| DhtStartError::Bind { addr: bind, source })?;
        config.ipv4 = local_addr.is_ipv4();
        config.ipv6 = local_addr.is_ipv6();
        let epoch = tokio::time::Instant::now();
        let dht = Dht::new(config, None, seed, Instant(0));
        let (tx, rx) = mpsc::channel(COMMANDS_MAX);
        tokio::spawn(run(dht, socket, rx, epoch));
        Ok(DhtHandle { tx, local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts a command on the engine and waits for its outcome (`None` if
    /// the node stopped).
    pub async fn lookup(
        &self,
        start: impl FnOnce(&mut Dht, Instant) -> Option<LookupId> + Send + 'static,
    ) -> Option<(LookupOutcome, LookupStats)> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Lookup(Box::new(start), done))
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Joins the DHT through `seeds` (a lookup of our own id).
    pub async fn bootstrap(&self, seeds: Vec<SocketAddr>) -> Option<(LookupOutcome, LookupStats)> {
        self.lookup(move |dht, now| Some(dht.bootstrap(now, &seeds)))
            .await
    }

    pub async fn stats(&self) -> Option<DhtStats> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Stats(tx)).await.ok()?;
        rx.await.ok()
    }

    /// The routing table's nodes (to save them).
    pub async fn nodes(&self) -> Vec<NodeInfo> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Nodes(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Pings saved nodes; those that answer join the table.
    pub async fn add_nodes(&self, nodes: Vec<NodeInfo>) {
        let _ = self.tx.send(Command::AddNodes(nodes)).await;
    }

    /// Pings the DHT node a peer named in its `port` message (BEP 5); if it
    /// answers it joins the table. Never waits: dropped when the node's
    /// command queue is full.
    pub fn ping(&self, addr: SocketAddr) {
        let _ = self.tx.try_send(Command::Ping(addr));
    }

    /// Keeps an item this node put alive: the node puts it again every
    /// [`swarm_dht::ITEM_REPUT_INTERVAL`] (see [`swarm_dht::Dht::keep`]).
    /// False if the node keeps too many items already, or stopped.
    pub async fn keep(&self, item: swarm_dht::item::Item) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Keep(item, tx)).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

async fn run(
    mut dht: Dht,
    socket: UdpSocket,
    mut rx: mpsc::Receiver<Command>,
    epoch: tokio::time::Instant,
) {
    let now = || Instant(epoch.elapsed().as_micros() as u64);
    let mut buf = vec![0u8; RECV_BUF_LEN];
    let mut waiting: BTreeMap<LookupId, Done> = BTreeMap::new();
    loop {
        let deadline = dht
            .poll_timeout()
            .map(|t| epoch + std::time::Duration::from_micros(t.as_micros()))
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(60));
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((len, from)) => dht.handle_datagram(now(), from, &buf[..len]),
                Err(e) => tracing::debug!("dht: recv: {e}"),
            },
            cmd = rx.recv() => match cmd {
                None => break,
                Some(Command::Lookup(start, done)) => {
                    let t = now();
                    match start(&mut dht, t) {
                        Some(id) => { waiting.insert(id, done); }
                        None => { let _ = done.send(None); }
                    }
                }
                Some(Command::Stats(tx)) => { let _ = tx.send(dht.stats(now())); }
                Some(Command::Nodes(tx)) => { let _ = tx.send(dht.nodes()); }
                Some(Command::AddNodes(nodes)) => dht.add_nodes(now(), &nodes),
                Some(Command::Ping(addr)) => dht.ping(now(), addr),
                Some(Command::Keep(item, tx)) => { let _ = tx.send(dht.keep(now(), item)); }
            },
            () = tokio::time::sleep_until(deadline) => dht.handle_timeout(now()),
        }
        while let Some((to, bytes)) = dht.poll_transmit() {
            // A full socket buffer or an unreachable address loses the
            // datagram: the engine times the query out, as on a lossy path.
            if let Err(e) = socket.send_to(&bytes, to).await {
                tracing::debug!("dht: send to {to}: {e}");
            }
        }
        while let Some(DhtEvent::LookupDone { id, outcome, stats }) = dht.poll_event() {
            if let Some(done) = waiting.remove(&id) {
                let _ = done.send(Some((outcome, stats)));
            }
        }
    }
}

/// First wait between two `get_peers` lookups of one torrent; it doubles
/// after each up to [`DHT_ANNOUNCE_INTERVAL`] (a young node's table fills
/// in its first minute, so early lookups find more each time).
pub const DHT_LOOKUP_INTERVAL_FIRST: std::time::Duration = std::time::Duration::from_secs(2);
/// Steady interval between lookups (each re-announces us: nodes keep an
/// announced peer for 30 minutes or more, so we re-announce well before).
pub const DHT_ANNOUNCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A torrent's DHT peer source (BEP 5): `get_peers` lookups of `info_hash`
/// that also announce us (`announce_peer` with `port`, our TCP listen port),
/// on a back-off from [`DHT_LOOKUP_INTERVAL_FIRST`] to
/// [`DHT_ANNOUNCE_INTERVAL`]; each lookup's peers are sent to `out`. Ends
/// when `out` is closed or the node stops.
pub async fn peer_lookups(
    dht: DhtHandle,
    info_hash: swarm_wire::InfoHash,
    port: u16,
    out: mpsc::UnboundedSender<Vec<SocketAddr>>,
) {
    let mut wait = DHT_LOOKUP_INTERVAL_FIRST;
    loop {
        let lookup = dht.lookup(move |d, now| Some(d.get_peers(now, info_hash, Some(Some(port)))));
        let result = tokio::select! {
            r = lookup => r,
            () = out.closed() => return,
        };
        match result {
            None => return,
            Some((LookupOutcome::Peers { peers, announced }, _)) => {
                tracing::info!(peers = peers.len(), announced, "dht: get_peers done");
                if !peers.is_empty() && out.send(peers).is_err() {
                    return;
                }
            }
            Some(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = out.closed() => return,
        }
        wait = (wait * 2).min(DHT_ANNOUNCE_INTERVAL);
    }
}
