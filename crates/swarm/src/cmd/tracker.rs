//! `swarm tracker`: run a BitTorrent tracker (HTTP and UDP).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use swarm_tracker::registry::{NUMWANT_MAX, RegistryConfig};
use swarm_tracker::server::{AccessMode, AccessSource, Tracker, TrackerConfig};

const EXAMPLES: &str = "\
EXAMPLES:
  A public tracker on the default ports (HTTP and UDP on 6969):
      swarm tracker
  Put its URLs in a torrent:
      swarm create ~/photos -t udp://tracker.example.org:6969/announce \\
                            -t http://tracker.example.org:6969/announce
  Only UDP, on a chosen port, for the torrents listed in a file (re-read on SIGHUP):
      swarm tracker --udp 0.0.0.0:1337 --whitelist hashes.txt
  Behind nginx, which sets X-Forwarded-For:
      swarm tracker --http 127.0.0.1:8080 --real-ip-header X-Forwarded-For";

/// Run a BitTorrent tracker: peers announce, and get other peers of their torrent.
///
/// Serves HTTP (BEP 3: /announce with compact or dictionary peer lists,
/// peers6, /scrape, plus /stats as JSON and /metrics for Prometheus) and UDP
/// (BEP 15). Without --http or --udp, both listen on 0.0.0.0:6969. A peer
/// silent for two intervals expires; `stopped` removes it at once. Each
/// announce gets up to 50 peers (numwant, at most 200) of its address family,
/// never itself; seeders get leechers first.
///
/// Memory is bounded: past --peers-max or --swarms-max new peers and new
/// torrents are refused with a failure reason (existing ones keep being
/// served), so a flood of made-up info-hashes cannot exhaust the machine.
///
/// Prints the URLs it serves, then one line a minute: torrents, peers,
/// announces per second. SIGHUP re-reads --whitelist/--blacklist; Ctrl-C or
/// SIGTERM stops it.
#[derive(Debug, Args)]
#[command(after_help = format!("{EXAMPLES}\n\n{}", super::EXIT_STATUS_HELP))]
pub struct TrackerArgs {
    /// Serve HTTP on this address (`[::]:PORT` serves IPv4 too; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,

    /// Serve UDP on this address (`[::]:PORT` serves IPv4 too; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    udp: Option<SocketAddr>,

    /// Seconds clients should wait between announces; peers expire after two.
    #[arg(long, value_name = "SECS", default_value_t = 1800, value_parser = clap::value_parser!(u32).range(1..))]
    interval: u32,

    /// Seconds clients must wait at least between announces [default: half the interval].
    #[arg(long, value_name = "SECS")]
    min_interval: Option<u32>,

    /// Most peers held (about 80 bytes each at most); new ones past it are refused.
    #[arg(long, value_name = "N", default_value_t = swarm_tracker::registry::PEERS_MAX_DEFAULT)]
    peers_max: usize,

    /// Most torrents held; new ones past it are refused.
    #[arg(long, value_name = "N", default_value_t = swarm_tracker::registry::SWARMS_MAX_DEFAULT)]
    swarms_max: usize,

    /// Peers handed out when the client does not say (numwant).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=NUMWANT_MAX as i64))]
    numwant: u32,

    /// Worker threads, each owning a shard of the torrents [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,

    /// Track only the info-hashes in FILE (40 hex digits a line); re-read on SIGHUP.
    #[arg(long, value_name = "FILE", conflicts_with = "blacklist")]
    whitelist: Option<PathBuf>,

    /// Refuse the info-hashes in FILE (40 hex digits a line); re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    blacklist: Option<PathBuf>,

    /// Behind a reverse proxy: take the client's address from this header
    /// (its last entry). Only with a proxy that sets it: clients could forge it.
    #[arg(long, value_name = "NAME")]
    real_ip_header: Option<String>,

    /// One socket that every worker reads, instead of one SO_REUSEPORT
    /// socket per worker (for measuring; port 0 always shares one).
    #[arg(long, hide = true)]
    shared_socket: bool,

    /// Seconds between status lines.
    #[arg(long, value_name = "SECS", default_value_t = 60, hide = true)]
    log_every: u64,
}

pub fn run(args: TrackerArgs) -> Result<()> {
    let (http, udp) = match (args.http, args.udp) {
        (None, None) => {
            let default: SocketAddr = ([0, 0, 0, 0], 6969).into();
            (Some(default), Some(default))
        }
        other => other,
    };
    let mut registry = RegistryConfig::with_interval(args.interval);
    if let Some(m) = args.min_interval {
        registry.min_interval_s = m;
    }
    registry.peers_max = args.peers_max;
    registry.swarms_max = args.swarms_max;
    registry.numwant_default = args.numwant;
    let access = match (args.whitelist, args.blacklist) {
        (Some(path), _) => Some(AccessSource {
            mode: AccessMode::Whitelist,
            path,
        }),
        (None, Some(path)) => Some(AccessSource {
            mode: AccessMode::Blacklist,
            path,
        }),
        (None, None) => None,
    };
    let config = TrackerConfig {
        http,
        udp,
        registry,
        workers: args
            .workers
            .map_or(TrackerConfig::default().workers, usize::from),
        access,
        real_ip_header: args.real_ip_header,
        seed: random_seed(),
        reuse_port: !args.shared_socket,
    };
    let memory_bound = config.registry.memory_bound_bytes();
    let tracker = Tracker::start(config).context("starting the tracker")?;
    if let Some(a) = tracker.http_addr() {
        println!("tracker: http://{a}/announce");
    }
    if let Some(a) = tracker.udp_addr() {
        println!("tracker: udp://{a}/announce");
    }
    println!(
        "tracker: interval {} s, at most {} peers and {} torrents ({} MiB)",
        args.interval,
        args.peers_max,
        args.swarms_max,
        memory_bound >> 20
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(supervise(
        &tracker,
        Duration::from_secs(args.log_every.max(1)),
    ))?;
    tracker.shutdown();
    println!("tracker: stopped");
    Ok(())
}

/// Logs a line every `every`, re-reads the access list on SIGHUP, returns on
/// Ctrl-C or SIGTERM.
async fn supervise(tracker: &Tracker, every: Duration) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut last = tracker.counters();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = tracker.counters();
                let rate = (now.announces() - last.announces()) as f64 / every.as_secs_f64();
                println!(
                    "tracker: {} torrents, {} peers ({} seeders, {} leechers), {rate:.1} announces/s, {} refused, {} bad requests",
                    now.swarms, now.peers(), now.seeders, now.leechers, now.refused, now.udp_errors + now.http_errors
                );
                last = now;
            }
            _ = hup.recv() => match tracker.reload_access() {
                Ok(n) => println!("tracker: access list re-read: {n} info-hashes"),
                Err(e) => println!("tracker: access list kept, re-reading failed: {e}"),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}

/// A seed for the registry's random choices and hash keys, unpredictable
/// from outside (std's per-process random SipHash keys).
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id())
}
