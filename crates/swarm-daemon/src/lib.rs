//! `swarm-daemon`: the long-running service behind `swarm daemon`.
//!
//! - [`state`]: the state folder (torrents, settings, resume records; the
//!   lock that keeps a second daemon out), written atomically.
//! - [`service`]: the torrents and every decision about them ([`Daemon`]):
//!   add, start, stop, remove, verify, the download queue.
//! - [`http`]: the HTTP server: security (loopback, credentials, Host
//!   header, body size), then the routes of
//! - [`rpc`]: Transmission's RPC at `/transmission/rpc`, and
//! - [`api`]: our own JSON API under `/api/` and the web UI at `/`.
//!
//! Architecture invariant: the HTTP layers translate, they decide nothing;
//! all policy is in [`service`]. The torrents run in one
//! [`swarm_net::Client`] (one listening port for all).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![recursion_limit = "256"]

pub mod api;
pub mod http;
pub mod rpc;
pub mod service;
pub mod state;
mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use service::Daemon;

/// What went wrong, phrased for whoever asked.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another daemon holds the state folder's lock.
    #[error(
        "another swarm daemon uses the state folder {} (pid {pid}): stop it first, or give another --state",
        dir.display()
    )]
    Locked { dir: PathBuf, pid: String },
    /// The state folder cannot be read or written.
    #[error("state: {0}")]
    State(String),
    /// The request cannot be done as asked (the message says why).
    #[error("{0}")]
    BadRequest(String),
    /// The configuration cannot work (an address, the auth file).
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Net(#[from] swarm_net::NetError),
}

/// Everything `swarm daemon` takes on its command line.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// Where the HTTP server listens (API, RPC, UI).
    pub http: SocketAddr,
    /// Where peers reach us (none: 0.0.0.0:6881, or the next free port).
    pub listen: Option<SocketAddr>,
    pub state_dir: PathBuf,
    pub download_dir: PathBuf,
    /// More folders a client may name as a download folder.
    pub allow_dirs: Vec<PathBuf>,
    /// `user:password` lines: HTTP basic auth on every route.
    pub auth_file: Option<PathBuf>,
    /// A folder whose `.torrent` files are added.
    pub watch_dir: Option<PathBuf>,
    /// Global rate limits (bytes/s) at start.
    pub download_limit: Option<u64>,
    pub upload_limit: Option<u64>,
    /// Connection cap over all torrents.
    pub max_connections: Option<usize>,
}

/// Runs the daemon until `shutdown` resolves (SIGTERM, Ctrl-C): every
/// torrent then stops cleanly (resume record saved, `stopped` announced).
/// `ready` gets the HTTP address once it listens.
pub async fn run(
    config: DaemonConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr, SocketAddr),
) -> Result<(), DaemonError> {
    let auth = match &config.auth_file {
        Some(path) => Some(http::Credentials::load(path)?),
        None => None,
    };
    if !config.http.ip().is_loopback() && auth.is_none() {
        return Err(DaemonError::Config(format!(
            "--http {} is not a loopback address: give --auth-file so that only you can drive the daemon",
            config.http
        )));
    }
    let state = state::StateDir::open(&config.state_dir)?;
    std::fs::create_dir_all(&config.download_dir).map_err(|e| {
        DaemonError::Config(format!(
            "--download-dir {}: {e}",
            config.download_dir.display()
        ))
    })?;
    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(|e| {
            DaemonError::Config(format!("cannot listen on --http {}: {e}", config.http))
        })?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| DaemonError::Config(format!("--http {}: {e}", config.http)))?;
    let mut client_config = swarm_net::ClientConfig {
        listen: config.listen,
        download_limit: config.download_limit,
        upload_limit: config.upload_limit,
        // Many torrents, most of them idle: an idle one costs its plain
        // data, no task (ARCHITECTURE.md).
        sleep_when_idle: true,
        ..swarm_net::ClientConfig::default()
    };
    if let Some(n) = config.max_connections {
        client_config.endpoint.connections_max = n;
    }
    let client = swarm_net::Client::start(client_config).await?;
    let peer_addr = client.listen_addr();
    let daemon = Daemon::start(
        client,
        state,
        service::ServiceConfig {
            download_dir: config.download_dir.clone(),
            allow_dirs: config.allow_dirs.clone(),
            watch_dir: config.watch_dir.clone(),
        },
    )
    .await?;
    // Limits given on the command line win over the saved ones (and are
    // saved: session-get shows what is in force).
    if config.download_limit.is_some()
        || config.upload_limit.is_some()
        || config.max_connections.is_some()
    {
        daemon
            .set_settings(|s| {
                s.download_limit = config.download_limit.or(s.download_limit);
                s.upload_limit = config.upload_limit.or(s.upload_limit);
                s.peer_limit_global = config
                    .max_connections
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                    .or(s.peer_limit_global);
            })
            .await?;
    }
    let app = http::router(http::AppState::new(daemon.clone(), auth, http_addr));
    tracing::info!(http = %http_addr, peers = %peer_addr, "swarm daemon running");
    ready(http_addr, peer_addr);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    tracing::info!("stopping: every torrent saves its resume record and announces `stopped`");
    // Connections still open (an SSE stream) keep clones of the daemon;
    // the torrents stop all the same.
    daemon.shutdown().await;
    served.map_err(|e| DaemonError::Config(format!("HTTP server: {e}")))
}

/// The daemon behind a shared handle (what the HTTP layers hold).
pub type SharedDaemon = Arc<Daemon>;
