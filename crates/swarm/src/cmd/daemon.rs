//! `swarm daemon`: many torrents in the background, driven over HTTP (our
//! JSON API, Transmission's RPC, a web UI). The daemon itself lives in the
//! `swarm-daemon` crate; this only reads the command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

const EXAMPLES: &str = "\
EXAMPLES:
  Run it (web UI at http://127.0.0.1:9091/, peers on port 6881):
      swarm daemon --download-dir ~/Downloads

  Drive it with Transmission's tools:
      transmission-remote 127.0.0.1:9091 -a ubuntu.torrent
      transmission-remote 127.0.0.1:9091 -l

  Reachable from the LAN, with a password (`user:password` lines):
      swarm daemon --http 0.0.0.0:9091 --auth-file ~/.config/swarm/auth
      transmission-remote 192.168.1.5:9091 -n alice:s3cret -l";

/// Run torrents in the background, driven over HTTP.
///
/// The daemon runs any number of torrents on one peer port, and serves on
/// --http: Transmission's RPC at /transmission/rpc (transmission-remote,
/// Sonarr, Radarr and the remote apps speak it), a JSON API of its own
/// under /api/v1/ with live updates (Server-Sent Events), and a web UI at /.
///
/// Its state lives in --state: the torrents, their settings and resume
/// records, written atomically, so it survives a restart and a kill -9 (no
/// verified piece is fetched again). One daemon per state folder: a second
/// one is refused. SIGTERM or Ctrl-C stops every torrent cleanly (resume
/// records saved, trackers told `stopped`).
///
/// Security: --http is loopback-only unless --auth-file is given; with it
/// every request needs HTTP basic auth (`transmission-remote -n user:pass`).
/// Requests with a Host header that is not loopback are refused on a
/// loopback address (DNS rebinding); a download folder named over HTTP must
/// lie under --download-dir or an --allow-dir.
#[derive(Debug, Args)]
#[command(after_help = format!("{EXAMPLES}\n\n{}", super::EXIT_STATUS_HELP))]
pub struct DaemonArgs {
    /// Where the HTTP server (RPC, API, UI) listens.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9091")]
    pub http: SocketAddr,

    /// Where peers reach us (default 0.0.0.0:6881, or the next free port
    /// up to 6889).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// The state folder (default $XDG_STATE_HOME/swarm or
    /// ~/.local/state/swarm).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// Where torrents download to unless a client names another folder
    /// (default: the current folder).
    #[arg(long, value_name = "DIR")]
    pub download_dir: Option<PathBuf>,

    /// Another folder clients may download into (repeatable).
    #[arg(long, value_name = "DIR")]
    pub allow_dir: Vec<PathBuf>,

    /// A file of `user:password` lines: every HTTP request then needs basic
    /// auth with one of them. Required when --http is not loopback.
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,

    /// A folder to watch: a .torrent dropped there is added (and renamed
    /// NAME.torrent.added, or NAME.torrent.invalid if it cannot be).
    #[arg(long, value_name = "DIR")]
    pub watch_dir: Option<PathBuf>,

    /// At most this many bytes/s down over all torrents (K, M, G suffixes).
    #[arg(long, value_name = "RATE", value_parser = super::peer::parse_rate)]
    pub max_download_rate: Option<u64>,

    /// At most this many bytes/s up over all torrents.
    #[arg(long, value_name = "RATE", value_parser = super::peer::parse_rate)]
    pub max_upload_rate: Option<u64>,

    /// At most this many peer connections over all torrents.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
}

fn default_state_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("swarm");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/state/swarm")
}

fn absolute(p: PathBuf) -> Result<PathBuf> {
    std::path::absolute(&p).with_context(|| format!("{}", p.display()))
}

/// glibc's malloc gives the threads that allocate their own arenas (up to
/// 8 a core): what a torrent's start frees in one (a worker thread's, a
/// check's) is not reused by what another thread allocates, so each
/// keeps its own slack. The daemon holds many small, long-lived
/// allocations and moves little data, so one arena for all threads: with
/// 1,000 idle torrents RSS 17.3-18.3 MiB against 17.8-19.1 with the
/// default (ARCHITECTURE.md). `swarm download`/`seed` keep the default.
#[allow(unsafe_code)]
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a tunable of glibc's allocator (no
    // memory is touched); it is called before the runtime starts any
    // thread. A failure (0) leaves the default, which is only more memory.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Every `HEAP_TRIM_INTERVAL`, free heap pages go back to the kernel
/// (`malloc_trim`): glibc returns only the top of its heap by itself, so
/// the pages that adding, checking and waking torrents freed in the middle
/// stay resident. An idle daemon wakes for it once in that interval.
const HEAP_TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

#[allow(unsafe_code)]
async fn trim_heap_periodically() {
    let mut tick = tokio::time::interval(HEAP_TRIM_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: `malloc_trim` only releases free memory of glibc's
        // allocator; it takes the allocator's locks itself and touches no
        // memory that is in use.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

pub fn run(args: DaemonArgs) -> Result<()> {
    let state_dir = absolute(args.state.unwrap_or_else(default_state_dir))?;
    let download_dir = absolute(args.download_dir.unwrap_or_else(|| PathBuf::from(".")))?;
    let allow_dirs = args
        .allow_dir
        .into_iter()
        .map(absolute)
        .collect::<Result<Vec<_>>>()?;
    let config = swarm_daemon::DaemonConfig {
        http: args.http,
        listen: args.listen,
        state_dir,
        download_dir,
        allow_dirs,
        auth_file: args.auth_file,
        watch_dir: args.watch_dir.map(absolute).transpose()?,
        download_limit: args.max_download_rate,
        upload_limit: args.max_upload_rate,
        max_connections: args.max_connections,
    };
    one_malloc_arena();
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = sigterm.recv() => {}
            }
        };
        tokio::spawn(trim_heap_periodically());
        swarm_daemon::run(config, shutdown, |http, peers| {
            // One line on stdout that scripts (and tests) can wait for.
            println!(
                "{}",
                serde_json::json!({"http": http.to_string(), "peers": peers.to_string()})
            );
        })
        .await
        .map_err(anyhow::Error::from)
    })
}
