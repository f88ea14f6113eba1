//! The tracker's servers: HTTP (BEP 3, 23, 7, 48; hyper, keep-alive) and
//! UDP (BEP 15) around the sans-IO [`Registry`](crate::registry::Registry).
//!
//! **Shape.** `workers` threads (default: one per core), each a
//! single-threaded tokio runtime that owns one *shard* of the registry (the
//! swarms whose info-hash maps to it), its own UDP socket and its own TCP
//! listener on the same address (`SO_REUSEPORT`: the kernel spreads
//! datagrams and connections over the workers; or, for port 0 and
//! `reuse_port: false`, one socket that every worker reads). A request whose swarm
//! lives in another shard is forwarded to that worker's inbox (UDP
//! announces in batches, one message per drained burst; the owner answers
//! from its own socket, so nothing comes back); a scrape travels through
//! the shards that own its hashes and the last one answers. No lock: each
//! registry has one owner thread; counters are published into atomics once
//! a second.
//!
//! **Bounds.** Inboxes hold at most [`INBOX_LEN_MAX`] messages of at most
//! [`UDP_BATCH_MAX`] requests (a full inbox drops the UDP batch: UDP is
//! lossy, the client retries); the registry's limits bound the rest.

mod http;
mod udp;
mod worker;

pub mod access;
pub mod conn_id;
pub mod stats;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{mpsc, watch};

use crate::registry::RegistryConfig;
pub use access::{AccessList, AccessMode, AccessSource};
pub use stats::Counters;

/// Most messages waiting in one worker's inbox.
pub const INBOX_LEN_MAX: usize = 256;
/// Most datagrams read in one burst before forwarding and yielding.
pub const UDP_BATCH_MAX: usize = 256;
/// Socket buffer asked for each UDP socket (the kernel may cap it).
pub const UDP_SOCKET_BUFFER_BYTES: usize = 8 << 20;
/// Pending TCP connections per listener.
pub const TCP_BACKLOG: i32 = 1024;

/// What to serve and how.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// HTTP address (`/announce`, `/scrape`, `/stats`, `/metrics`); port 0 picks one.
    pub http: Option<SocketAddr>,
    /// UDP address; port 0 picks one. `[::]` serves IPv4 too.
    pub udp: Option<SocketAddr>,
    pub registry: RegistryConfig,
    /// Worker threads, each owning one shard (at least 1).
    pub workers: usize,
    pub access: Option<AccessSource>,
    /// Behind a reverse proxy: the header naming the client's address
    /// (its last comma-separated entry, the one the proxy added).
    pub real_ip_header: Option<String>,
    /// Seeds the registries' random choices and hash keys.
    pub seed: u64,
    /// One socket per worker with `SO_REUSEPORT` (the kernel spreads the
    /// load), else one socket all workers read. Port 0 always gets the
    /// shared socket: with `SO_REUSEPORT`, binding port 0 may join another
    /// tracker's group on the same port and split its traffic.
    pub reuse_port: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            http: None,
            udp: None,
            registry: RegistryConfig::default(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            access: None,
            real_ip_header: None,
            seed: 0,
            reuse_port: true,
        }
    }
}

/// A running tracker; dropping it stops the workers.
pub struct Tracker {
    http: Option<SocketAddr>,
    udp: Option<SocketAddr>,
    access_source: Option<AccessSource>,
    access: watch::Sender<Arc<AccessList>>,
    shutdown: watch::Sender<bool>,
    published: Vec<Arc<stats::Published>>,
    started: std::time::Instant,
    memory_bound_bytes: u64,
    threads: Vec<JoinHandle<()>>,
}

impl Tracker {
    /// Binds the sockets and starts the workers.
    pub fn start(config: TrackerConfig) -> io::Result<Tracker> {
        let workers = config.workers.max(1);
        let access = match &config.access {
            Some(source) => AccessList::load(source).map_err(io::Error::other)?,
            None => AccessList::open(),
        };
        let (access_tx, _) = watch::channel(Arc::new(access));
        let (shutdown_tx, _) = watch::channel(false);
        let mut udp_sockets: Vec<Option<std::net::UdpSocket>> = Vec::new();
        let mut tcp_listeners: Vec<Option<std::net::TcpListener>> = Vec::new();
        let reuse = |addr: &SocketAddr| config.reuse_port && addr.port() != 0;
        let udp_addr = match config.udp {
            Some(addr) if reuse(&addr) => {
                probe_free(addr, Type::DGRAM)?;
                for _ in 0..workers {
                    udp_sockets.push(Some(udp_socket(addr, true)?));
                }
                Some(addr)
            }
            Some(addr) => {
                let s = udp_socket(addr, false)?;
                let bound = s.local_addr()?;
                for _ in 1..workers {
                    udp_sockets.push(Some(s.try_clone()?));
                }
                udp_sockets.push(Some(s));
                Some(bound)
            }
            None => {
                udp_sockets.resize_with(workers, || None);
                None
            }
        };
        let http_addr = match config.http {
            Some(addr) if reuse(&addr) => {
                probe_free(addr, Type::STREAM)?;
                for _ in 0..workers {
                    tcp_listeners.push(Some(tcp_listener(addr, true)?));
                }
                Some(addr)
            }
            Some(addr) => {
                let l = tcp_listener(addr, false)?;
                let bound = l.local_addr()?;
                for _ in 1..workers {
                    tcp_listeners.push(Some(l.try_clone()?));
                }
                tcp_listeners.push(Some(l));
                Some(bound)
            }
            None => {
                tcp_listeners.resize_with(workers, || None);
                None
            }
        };
        let (inbox_txs, inbox_rxs): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| mpsc::channel(INBOX_LEN_MAX)).unzip();
        let conn_ids = conn_id::ConnectionIds::new();
        // The server is the driver: it reads the clock and hands `now` in.
        #[allow(clippy::disallowed_methods)]
        let started = std::time::Instant::now();
        let shard_config = config.registry.for_shard(workers);
        let published: Vec<_> = (0..workers)
            .map(|_| Arc::new(stats::Published::default()))
            .collect();
        let mut threads = Vec::new();
        for (index, ((udp, tcp), inbox)) in udp_sockets
            .into_iter()
            .zip(tcp_listeners)
            .zip(inbox_rxs)
            .enumerate()
        {
            let ctx = worker::WorkerContext {
                index,
                registry: shard_config.clone(),
                seed: config.seed.wrapping_add(index as u64),
                udp,
                tcp,
                inbox,
                inboxes: inbox_txs.clone(),
                access: access_tx.subscribe(),
                shutdown: shutdown_tx.subscribe(),
                conn_ids: conn_ids.clone(),
                published: published.clone(),
                started,
                real_ip_header: config.real_ip_header.clone(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("tracker-{index}"))
                    .spawn(move || worker::run(ctx))?,
            );
        }
        Ok(Tracker {
            http: http_addr,
            udp: udp_addr,
            access_source: config.access.clone(),
            access: access_tx,
            shutdown: shutdown_tx,
            published,
            started,
            memory_bound_bytes: config.registry.memory_bound_bytes() as u64,
            threads,
        })
    }

    /// The bound HTTP address, if serving HTTP.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// The bound UDP address, if serving UDP.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp
    }

    /// The workers' counters, summed (at most a second old).
    pub fn counters(&self) -> Counters {
        Counters::sum(self.published.iter().map(|p| &**p))
    }

    pub fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub fn memory_bound_bytes(&self) -> u64 {
        self.memory_bound_bytes
    }

    /// Re-reads the access list file (SIGHUP); on an error the old list stays.
    /// Returns the number of info-hashes now listed.
    pub fn reload_access(&self) -> Result<usize, String> {
        let Some(source) = &self.access_source else {
            return Ok(0);
        };
        let list = AccessList::load(source)?;
        let len = list.len();
        self.access.send_replace(Arc::new(list));
        Ok(len)
    }

    /// Stops the workers and waits for them.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shutdown.send_replace(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Fails if anything holds `addr` already, a group of `SO_REUSEPORT` sockets
/// of another process included (which would otherwise silently share the
/// traffic with us): a plain bind refuses then.
fn probe_free(addr: SocketAddr, kind: Type) -> io::Result<()> {
    let s = Socket::new(Domain::for_address(addr), kind, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    if kind == Type::STREAM {
        s.set_reuse_address(true)?;
    }
    s.bind(&addr.into())
}

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    s.set_reuse_port(reuse_port)?;
    // Bigger buffers absorb bursts; the kernel caps them at rmem_max.
    let _ = s.set_recv_buffer_size(UDP_SOCKET_BUFFER_BYTES);
    let _ = s.set_send_buffer_size(UDP_SOCKET_BUFFER_BYTES);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(reuse_port)?;
    s.set_tcp_nodelay(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(TCP_BACKLOG)?;
    Ok(s.into())
}
