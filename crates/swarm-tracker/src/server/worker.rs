//! One worker: a single-threaded runtime owning one registry shard, its
//! UDP socket, its TCP listener and its inbox.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use swarm_engine::Instant;
use swarm_wire::metainfo::InfoHash;
use tokio::sync::{mpsc, oneshot, watch};

use super::access::AccessList;
use super::conn_id::ConnectionIds;
use super::stats::{Counters, Published};
use crate::registry::{
    Announce, AnnouncePeers, AnnounceReply, Refusal, Registry, RegistryConfig, SwarmCounts,
};

/// Everything a worker thread starts from.
pub(super) struct WorkerContext {
    pub index: usize,
    pub registry: RegistryConfig,
    pub seed: u64,
    pub udp: Option<std::net::UdpSocket>,
    pub tcp: Option<std::net::TcpListener>,
    pub inbox: mpsc::Receiver<ShardMsg>,
    pub inboxes: Vec<mpsc::Sender<ShardMsg>>,
    pub access: watch::Receiver<Arc<AccessList>>,
    pub shutdown: watch::Receiver<bool>,
    pub conn_ids: ConnectionIds,
    pub published: Vec<Arc<Published>>,
    pub started: std::time::Instant,
    pub real_ip_header: Option<String>,
}

/// A UDP announce already checked (connection id, access list) by the
/// worker that received it, for the worker that owns its swarm.
pub(super) struct UdpJob {
    pub src: SocketAddr,
    pub transaction_id: u32,
    pub announce: Announce,
}

pub(super) type HttpAnnounceResult = Result<(AnnounceReply, AnnouncePeers), Refusal>;

/// Where a finished scrape goes.
pub(super) enum ScrapeReply {
    Udp {
        src: SocketAddr,
        transaction_id: u32,
    },
    Http(oneshot::Sender<Vec<(InfoHash, SwarmCounts)>>),
}

/// A scrape on its way through the shards that own its hashes.
pub(super) struct ScrapeJob {
    pub origin: usize,
    pub hashes: Vec<InfoHash>,
    pub counts: Vec<SwarmCounts>,
    pub reply: ScrapeReply,
}

pub(super) enum ShardMsg {
    Udp(Vec<UdpJob>),
    Scrape(ScrapeJob),
    HttpAnnounce {
        announce: Announce,
        with_peer_ids: bool,
        reply: oneshot::Sender<HttpAnnounceResult>,
    },
}

/// The worker's mutable state (one thread; borrowed, never across an await).
pub(super) struct State {
    pub registry: Registry,
    pub access: Arc<AccessList>,
    pub peers: AnnouncePeers,
    pub counters: Counters,
}

pub(super) struct Worker {
    pub index: usize,
    pub shards: usize,
    pub state: RefCell<State>,
    pub inboxes: Vec<mpsc::Sender<ShardMsg>>,
    /// Sends go through a plain non-blocking clone of the socket: tokio's
    /// `try_send_to` refuses until its reactor has seen the socket writable,
    /// which a worker answering forwarded work before its first poll has not.
    pub udp_tx: Option<std::net::UdpSocket>,
    pub conn_ids: ConnectionIds,
    pub started: std::time::Instant,
    pub real_ip_header: Option<String>,
    /// Every worker's published numbers (this one's at `index`).
    pub published: Vec<Arc<Published>>,
}

/// Which shard owns a swarm: info-hashes are uniform, so their first bytes do.
pub(super) fn shard_of(info_hash: &InfoHash, shards: usize) -> usize {
    let h = info_hash.0;
    u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize % shards
}

impl Worker {
    /// The registry's clock: microseconds since the tracker started.
    pub fn now(&self) -> Instant {
        Instant(u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// Announces into this worker's shard.
    pub fn announce_local(
        &self,
        now: Instant,
        announce: &Announce,
        with_peer_ids: bool,
    ) -> Result<(AnnounceReply, AnnouncePeers), Refusal> {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        st.peers.set_with_peer_ids(with_peer_ids);
        match st.registry.announce(now, announce, &mut st.peers) {
            Ok(reply) => Ok((reply, st.peers.clone())),
            Err(refusal) => {
                st.counters.refused += 1;
                Err(refusal)
            }
        }
    }

    /// Fills this shard's part of `job`, then passes it on or answers it.
    pub fn scrape_step(&self, mut job: ScrapeJob) {
        {
            let mut st = self.state.borrow_mut();
            for (h, c) in job.hashes.iter().zip(job.counts.iter_mut()) {
                if shard_of(h, self.shards) == self.index {
                    *c = st.registry.scrape(h);
                }
            }
        }
        for step in 1..self.shards {
            let next = (self.index + step) % self.shards;
            if next == job.origin {
                break;
            }
            if job.hashes.iter().any(|h| shard_of(h, self.shards) == next) {
                if self.inboxes[next].try_send(ShardMsg::Scrape(job)).is_err() {
                    self.state.borrow_mut().counters.udp_dropped += 1;
                }
                return;
            }
        }
        match job.reply {
            ScrapeReply::Udp {
                src,
                transaction_id,
            } => {
                self.state.borrow_mut().counters.udp_scrapes += 1;
                let mut out = Vec::with_capacity(8 + 12 * job.counts.len());
                swarm_wire::tracker::server::udp::write_scrape(
                    &mut out,
                    transaction_id,
                    job.counts.iter().map(|c| swarm_wire::tracker::ScrapeStats {
                        complete: c.complete,
                        downloaded: c.downloaded,
                        incomplete: c.incomplete,
                    }),
                );
                self.udp_send(&out, src);
            }
            ScrapeReply::Http(tx) => {
                let _ = tx.send(job.hashes.into_iter().zip(job.counts).collect());
            }
        }
    }

    /// Sends a datagram from this worker's socket; a full buffer drops it.
    pub fn udp_send(&self, bytes: &[u8], to: SocketAddr) {
        let sent = self.udp_tx.as_ref().map(|s| s.send_to(bytes, to));
        if !matches!(sent, Some(Ok(_))) {
            self.state.borrow_mut().counters.udp_dropped += 1;
        }
    }

    fn handle(&self, msg: ShardMsg) {
        match msg {
            ShardMsg::Udp(jobs) => {
                let now = self.now();
                let mut out = Vec::with_capacity(1024);
                for job in jobs {
                    out.clear();
                    self.udp_announce(now, &job, &mut out);
                    self.udp_send(&out, job.src);
                }
            }
            ShardMsg::Scrape(job) => self.scrape_step(job),
            ShardMsg::HttpAnnounce {
                announce,
                with_peer_ids,
                reply,
            } => {
                let result = self.announce_local(self.now(), &announce, with_peer_ids);
                let _ = reply.send(result);
            }
        }
    }

    /// Publishes the counters and sizes; `with_memory` also walks the
    /// registry for its byte estimate (O(swarms), so not every second).
    fn publish(&self, with_memory: bool) {
        let mut st = self.state.borrow_mut();
        let sizes = st.registry.sizes();
        st.counters.swarms = sizes.swarms as u64;
        st.counters.seeders = sizes.seeders as u64;
        st.counters.leechers = sizes.leechers as u64;
        st.counters.peers_v6 = sizes.peers_v6 as u64;
        st.counters.expired = st.registry.totals().expired;
        if with_memory {
            st.counters.memory_bytes = st.registry.memory_bytes() as u64;
        }
        self.published[self.index].publish(&st.counters);
    }
}

/// Runs a worker until shutdown.
pub(super) fn run(ctx: WorkerContext) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("tracker worker {}: no runtime: {e}", ctx.index);
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, main(ctx));
}

async fn main(ctx: WorkerContext) {
    let WorkerContext {
        index,
        registry,
        seed,
        udp,
        tcp,
        mut inbox,
        inboxes,
        mut access,
        mut shutdown,
        conn_ids,
        published,
        started,
        real_ip_header,
    } = ctx;
    let udp_tx = udp.as_ref().and_then(|s| s.try_clone().ok());
    let udp = udp.and_then(|s| match tokio::net::UdpSocket::from_std(s) {
        Ok(s) => Some(Rc::new(s)),
        Err(e) => {
            tracing::error!("tracker worker {index}: UDP socket: {e}");
            None
        }
    });
    let expire_every_s = u64::from(registry.peer_timeout_s / 4).clamp(1, 60);
    let shards = inboxes.len();
    let worker = Rc::new(Worker {
        index,
        shards,
        state: RefCell::new(State {
            registry: Registry::new(registry, seed),
            access: access.borrow_and_update().clone(),
            peers: AnnouncePeers::new(false),
            counters: Counters::default(),
        }),
        inboxes,
        udp_tx,
        conn_ids,
        started,
        real_ip_header,
        published,
    });
    if let Some(sock) = udp {
        tokio::task::spawn_local(super::udp::serve(worker.clone(), sock));
    }
    if let Some(listener) = tcp {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => {
                tokio::task::spawn_local(super::http::serve(worker.clone(), l));
            }
            Err(e) => tracing::error!("tracker worker {index}: TCP listener: {e}"),
        }
    }
    let mut tick = tokio::time::interval(StdDuration::from_secs(1));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            msg = inbox.recv() => match msg {
                Some(msg) => worker.handle(msg),
                None => break,
            },
            _ = tick.tick() => {
                ticks += 1;
                if ticks.is_multiple_of(expire_every_s) {
                    let now = worker.now();
                    worker.state.borrow_mut().registry.expire(now);
                }
                worker.publish(ticks % 10 == 1);
            }
            changed = access.changed() => {
                if changed.is_err() {
                    break;
                }
                let list = access.borrow_and_update().clone();
                worker.state.borrow_mut().access = list;
            }
            _ = shutdown.changed() => break,
        }
    }
}
