//! What `download` and `seed` share: the network options, loading the
//! torrent, checking data on disk, running a session until it is done or
//! interrupted, and showing its status (a progress bar on a terminal, or one
//! JSON line per second with `--json`).

use std::io::{IsTerminal, Write as _};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use swarm_engine::EndpointConfig;
use swarm_net::{
    AddOptions, Client, ClientConfig, NetError, OpenMode, TorrentHandle, TorrentSpec, TorrentState,
    TorrentStatus,
};
use swarm_wire::metainfo::Metainfo;

use super::{bad_input, human_bytes, parse_size};

/// Options every command that talks to peers takes.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// A peer to connect to, as HOST:PORT (repeatable). Peers also come from
    /// the torrent's trackers and may connect to us.
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub peers: Vec<String>,

    /// Where to accept peers: IP:PORT, or a PORT on every interface.
    /// Default: 0.0.0.0:6881, or the next free port up to 6889.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,

    /// Print one JSON status line per second on stdout (and a final one)
    /// instead of a progress bar.
    #[arg(long)]
    pub json: bool,

    /// Upload at most this many bytes per second, over all peers of all
    /// torrents (shared fairly: a torrent that needs less leaves the rest
    /// to the others): 4M, 512K, 100000.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_upload_rate: Option<u64>,

    /// Download at most this many bytes per second, over all peers of all
    /// torrents (shared fairly, as --max-upload-rate).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_download_rate: Option<u64>,

    /// Connections at most over all torrents (dialling or open; each
    /// torrent has at most 50).
    #[arg(long, value_name = "N", value_parser = parse_connections)]
    pub max_connections: Option<usize>,

    /// Upload at most this many bytes per second for each torrent (on top
    /// of --max-upload-rate, which all torrents share).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub torrent_max_upload_rate: Option<u64>,

    /// Download at most this many bytes per second for each torrent.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub torrent_max_download_rate: Option<u64>,

    /// Show a live table of neighbours (like top): address, client, choke
    /// state and why, rates both ways. With --json every status line carries
    /// the same as `neighbours` (always, with or without --peers).
    #[arg(long = "peers")]
    pub peers_table: bool,

    /// Once complete, leave after uploading R times the torrent's size
    /// (0.5, 1, 2.5). Implies seeding after a download.
    #[arg(long, value_name = "R", value_parser = parse_ratio)]
    pub seed_ratio: Option<f64>,

    /// Once complete, leave after seeding this long: 90s, 30m, 2h, or
    /// seconds. Implies seeding after a download. With --seed-ratio too, the
    /// first limit reached ends the run.
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub seed_time: Option<Duration>,

    /// Do not use the DHT (BEP 5) to find peers and announce ourselves.
    /// Private torrents never use it (nor peer exchange).
    #[arg(long)]
    pub no_dht: bool,

    /// A DHT node to join through, HOST:PORT (repeatable). Default: the
    /// public routers (router.bittorrent.com and others), unless --listen is
    /// a loopback address (they cannot be reached from there).
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    pub dht_bootstrap: Vec<String>,
}

/// Overrides the default DHT bootstrap nodes (comma-separated HOST:PORT;
/// empty: none). For offline use and tests, which never contact the public
/// routers.
pub const DHT_BOOTSTRAP_ENV: &str = "SWARM_DHT_BOOTSTRAP";

/// Starts the DHT node of a download or seed: UDP on the listener's IP
/// (its port if free, else any), joining through --dht-bootstrap, the
/// environment's [`DHT_BOOTSTRAP_ENV`] or the public routers. A failure
/// is a warning: the torrents go on without the DHT.
async fn start_dht(net: &NetArgs, listen: SocketAddr) -> Option<swarm_net::dht::DhtHandle> {
    use swarm_net::dht::DhtHandle;
    let seeds: Vec<String> = if !net.dht_bootstrap.is_empty() {
        net.dht_bootstrap.clone()
    } else if let Ok(v) = std::env::var(DHT_BOOTSTRAP_ENV) {
        v.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    } else if listen.ip().is_loopback() {
        Vec::new()
    } else {
        super::dht::PUBLIC_ROUTERS
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    };
    let config = swarm_dht::DhtConfig::default();
    let seed = rand_seed();
    let handle = match DhtHandle::start(listen, config.clone(), seed).await {
        Ok(h) => h,
        Err(_) => match DhtHandle::start(SocketAddr::new(listen.ip(), 0), config, seed).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("{e}: going on without the DHT");
                return None;
            }
        },
    };
    tracing::info!(addr = %handle.local_addr(), "DHT node started");
    let joining = handle.clone();
    tokio::spawn(async move {
        let mut addrs = Vec::new();
        for s in &seeds {
            match tokio::net::lookup_host(s.as_str()).await {
                Ok(found) => {
                    addrs.extend(found.filter(|a| a.is_ipv4() == joining.local_addr().is_ipv4()))
                }
                Err(e) => tracing::warn!("DHT bootstrap node {s}: {e}"),
            }
        }
        if addrs.is_empty() {
            tracing::info!("DHT: no bootstrap node; waiting for nodes to contact us");
            return;
        }
        if let Some((outcome, _)) = joining.bootstrap(addrs).await {
            tracing::info!(?outcome, "DHT bootstrap done");
        }
    });
    Some(handle)
}

fn rand_seed() -> u64 {
    super::dht::random_bytes()
        .map(u64::from_le_bytes)
        .unwrap_or_else(|_| u64::from(std::process::id()))
}

/// A loaded `.torrent`: what the client needs of it.
pub struct Loaded {
    pub spec: TorrentSpec,
    /// The raw info dictionary (served to peers by BEP 9).
    pub info: Vec<u8>,
    /// BEP 27: no DHT, no peer exchange.
    pub private: bool,
}

/// One torrent of the command line.
pub enum TorrentArg {
    File(Loaded),
    /// Its metadata comes first (from DIR/.swarm/ or from peers).
    Magnet(swarm_wire::Magnet),
}

impl TorrentArg {
    pub fn info_hash(&self) -> swarm_wire::InfoHash {
        match self {
            TorrentArg::File(l) => l.spec.info_hash,
            TorrentArg::Magnet(m) => m.info_hash,
        }
    }

    /// The torrent's name (a magnet's `dn`, or its info-hash, until its
    /// metadata is known).
    pub fn name(&self) -> String {
        match self {
            TorrentArg::File(l) => l.spec.name.clone(),
            TorrentArg::Magnet(m) => m.name.clone().unwrap_or_else(|| m.info_hash.to_hex()),
        }
    }
}

impl NetArgs {
    /// When a complete torrent stops seeding, if a limit was given.
    pub fn seed_limits(&self) -> Option<SeedLimits> {
        (self.seed_ratio.is_some() || self.seed_time.is_some()).then_some(SeedLimits {
            ratio: self.seed_ratio,
            time: self.seed_time,
        })
    }
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "`{s}` is not a ratio (a number of 0 or more, e.g. 1.5)"
        )),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a time (try 90s, 30m, 2h or 600)"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, m, h or d)")),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{s}` is too long"))
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    s.parse()
        .map_err(|_| format!("`{s}` is not IP:PORT or a port (e.g. 0.0.0.0:6881 or 6881)"))
}

fn parse_connections(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a number of connections (1 or more)")),
    }
}

/// Loads every torrent given (magnet links too if `magnets`); the same
/// torrent twice is bad input.
pub fn load_torrents(paths: &[PathBuf], magnets: bool) -> Result<Vec<TorrentArg>> {
    let mut torrents: Vec<TorrentArg> = Vec::new();
    for path in paths {
        let t = match path
            .to_str()
            .filter(|p| magnets && p.starts_with("magnet:"))
        {
            Some(uri) => TorrentArg::Magnet(
                swarm_wire::Magnet::parse(uri).map_err(|e| bad_input(e.to_string()))?,
            ),
            None => TorrentArg::File(load_torrent(path)?),
        };
        if let Some(other) = torrents.iter().find(|o| o.info_hash() == t.info_hash()) {
            return Err(bad_input(format!(
                "{} is the torrent {} again (info-hash {})",
                path.display(),
                other.name(),
                t.info_hash().to_hex()
            )));
        }
        torrents.push(t);
    }
    Ok(torrents)
}

pub(crate) fn parse_rate(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("a rate must be more than 0".into()),
        n => Ok(n),
    }
}

/// Reads and parses a .torrent: unreadable is a failure (1), malformed,
/// too large (see [`super::TORRENT_FILE_MAX_BYTES`]) or a magnet link is
/// bad input (2).
pub fn load_torrent(path: &Path) -> Result<Loaded> {
    if path.to_str().is_some_and(|p| p.starts_with("magnet:")) {
        return Err(bad_input(
            "a magnet link gives no data to seed: give the .torrent file \
             (`swarm download MAGNET` saves one in DIR/.swarm/)",
        ));
    }
    let bytes = super::read_torrent_input(path.as_os_str())?;
    let meta =
        Metainfo::from_bytes(&bytes).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    Ok(Loaded {
        spec: TorrentSpec::from_metainfo(&meta),
        info: meta.info_bytes().to_vec(),
        private: meta.is_private(),
    })
}

/// A storage error as the user should read it: a path the file system
/// refuses is bad input (2); a missing file says what `-d` means.
fn storage_error(e: NetError, name: &str) -> anyhow::Error {
    match e {
        NetError::PathRefused { .. } => bad_input(format!("cannot download here: {e}")),
        NetError::MissingFile { .. } => anyhow::anyhow!(
            "{e}: seeding needs every file of the torrent (-d is the folder that holds {})",
            name
        ),
        e => e.into(),
    }
}

/// `HOST:PORT` strings → addresses (the first each name resolves to).
pub fn resolve_peers(peers: &[String]) -> Result<Vec<SocketAddr>> {
    peers
        .iter()
        .map(|p| {
            p.to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| bad_input(format!("--peer `{p}` is not a reachable HOST:PORT")))
        })
        .collect()
}

/// How a run ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Until {
    /// Stop once every piece is on disk.
    Complete,
    /// Run until Ctrl-C / SIGTERM.
    Interrupted,
    /// Once complete, seed until a limit is reached (or Ctrl-C).
    SeedLimits(SeedLimits),
}

/// When a seeder leaves: the first limit reached.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeedLimits {
    /// Uploaded bytes / the torrent's size.
    pub ratio: Option<f64>,
    /// Time since the torrent was complete (in this run).
    pub time: Option<Duration>,
}

impl SeedLimits {
    /// Whether a complete torrent that has seeded for `seeded` should leave.
    pub fn reached(&self, s: &TorrentStatus, seeded: Duration) -> Option<String> {
        if let Some(r) = self.ratio {
            let ratio = s.uploaded as f64 / s.total_length.max(1) as f64;
            if ratio >= r {
                return Some(format!("seed ratio {ratio:.2} reached (--seed-ratio {r})"));
            }
        }
        match self.time {
            Some(t) if seeded >= t => Some(format!(
                "seeded for {} (--seed-time)",
                humanize_secs(seeded.as_secs())
            )),
            _ => None,
        }
    }
}

/// What a run needs besides the torrents.
pub struct Run<'a> {
    /// One or more torrents, run side by side on one port.
    pub torrents: Vec<TorrentArg>,
    pub dir: &'a Path,
    pub mode: OpenMode,
    pub net: &'a NetArgs,
    /// `net.peers`, resolved (see [`resolve_peers`]).
    pub peers: Vec<SocketAddr>,
    pub until: Until,
}

/// The connection policy the CLI runs with: the endpoint's defaults (50
/// connections per torrent), `--max-connections` over all torrents.
pub fn endpoint_config(net: &NetArgs) -> EndpointConfig {
    let defaults = EndpointConfig::default();
    let connections_max = net.max_connections.unwrap_or(defaults.connections_max);
    EndpointConfig {
        connections_max,
        torrent_connections_max: defaults.torrent_connections_max.min(connections_max),
        // The Endpoint's per-IP cap (4) holds here too: tests on loopback
        // give each peer its own 127.0.0.x (`--listen`), so one address
        // cannot take every slot.
        ..defaults
    }
}

/// Opens the files, checks what is on disk, runs the torrents and shows
/// their status. With several torrents a failure of one is reported after
/// the others finish.
pub fn run(r: Run<'_>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(r))
}

async fn run_async(r: Run<'_>) -> Result<()> {
    let started = Instant::now();
    let display = Display::new(
        r.net.json,
        r.net.peers_table,
        &r.torrents,
        r.until != Until::Complete,
    );
    // One DHT node for every torrent, unless all are private (BEP 27);
    // its UDP socket sits where we listen (the same port if free).
    let all_private = r
        .torrents
        .iter()
        .all(|t| matches!(t, TorrentArg::File(l) if l.private));
    let dht = if r.net.no_dht || all_private {
        None
    } else {
        let bind = r.net.listen.unwrap_or(SocketAddr::from((
            [0, 0, 0, 0],
            *swarm_net::client::LISTEN_PORTS.start(),
        )));
        start_dht(r.net, bind).await
    };
    let client = Client::start(ClientConfig {
        listen: r.net.listen,
        endpoint: endpoint_config(r.net),
        upload_limit: r.net.max_upload_rate,
        download_limit: r.net.max_download_rate,
        dht: dht.clone(),
        ..ClientConfig::default()
    })
    .await?;
    let several = r.torrents.len() > 1;
    let mut handles = Vec::new();
    for t in r.torrents {
        let which = if several {
            format!("{} ", t.name())
        } else {
            String::new()
        };
        let options = AddOptions {
            peers: r.peers.clone(),
            upload_limit: r.net.torrent_max_upload_rate,
            download_limit: r.net.torrent_max_download_rate,
            ..AddOptions::new(r.dir, r.mode)
        };
        let handle = match t {
            TorrentArg::File(l) => {
                let findable = l.spec.trackers.iter().flatten().next().is_some()
                    || !r.peers.is_empty()
                    || (dht.is_some() && !l.private);
                if !findable {
                    tracing::warn!(
                        "{which}lists no tracker, no --peer was given and the DHT is off: \
                         only peers that connect to us will be found"
                    );
                }
                client.add_torrent(
                    l.spec,
                    AddOptions {
                        metadata: Some(l.info.into()),
                        private: l.private,
                        ..options
                    },
                )?
            }
            TorrentArg::Magnet(m) => {
                let saved = swarm_net::magnet::saved_torrent_path(r.dir, m.info_hash).exists();
                if !saved
                    && m.trackers.is_empty()
                    && m.peers.is_empty()
                    && r.peers.is_empty()
                    && dht.is_none()
                {
                    return Err(bad_input(format!(
                        "the magnet link {which}has no tracker (tr=) and no peer (x.pe=), \
                         no --peer was given and the DHT is off: nowhere to find its metadata"
                    )));
                }
                client.add_magnet(m, options)?
            }
        };
        let s = handle.status();
        tracing::info!(
            port = client.listen_addr().port(),
            name = %s.name,
            info_hash = %s.info_hash,
            "listening"
        );
        handles.push(handle);
    }
    let drove = drive(&handles, &display, r.until, started).await;
    for h in &handles {
        h.stop();
    }
    let mut results = Vec::new();
    for h in handles {
        let status = h.watch();
        let joined = h.join().await;
        // A failed torrent published its failure (state and error) last.
        let last = status.borrow().clone();
        results.push((joined, last));
    }
    client.shutdown().await;
    drove?;
    let mut failures = Vec::new();
    let n_torrents = results.len();
    for (joined, last) in results {
        display.finish(Some(&last), started);
        let failure = match joined {
            Err(e) => Some(storage_error(e, &last.name)),
            // A download that ends incomplete failed, with --seed or
            // without; a seeder with partial data did what it could.
            Ok(last) if r.mode == OpenMode::Create && !last.complete => Some(anyhow::anyhow!(
                "stopped with {} of {} pieces",
                last.pieces_have,
                last.pieces_total
            )),
            Ok(_) => None,
        };
        if let Some(e) = failure {
            failures.push((last.name, e));
        }
    }
    if n_torrents == 1 {
        return match failures.pop() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        };
    }
    if failures.is_empty() {
        return Ok(());
    }
    let n = failures.len();
    let lines: Vec<String> = failures
        .into_iter()
        .map(|(name, e)| format!("  {name}: {e:#}"))
        .collect();
    anyhow::bail!("{n} of {n_torrents} torrents failed:\n{}", lines.join("\n"))
}

/// Shows the status until the run should end: every torrent complete (if
/// that is the goal), failed or past its seed limits, or a signal. With
/// several torrents, one that is done stops while the others go on.
async fn drive(
    handles: &[TorrentHandle],
    display: &Display,
    until: Until,
    started: Instant,
) -> Result<()> {
    let several = handles.len() > 1;
    // Every status change of every torrent, by index.
    let (changes_tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut forwarders = Vec::new();
    for (i, h) in handles.iter().enumerate() {
        let (mut status, tx) = (h.watch(), changes_tx.clone());
        forwarders.push(tokio::spawn(async move {
            while status.changed().await.is_ok() {
                if tx.send(i).is_err() {
                    return;
                }
            }
            let _ = tx.send(i); // the torrent ended
        }));
    }
    drop(changes_tx);
    let _abort = AbortOnDrop(forwarders);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let n = handles.len();
    let mut done = vec![false; n];
    let mut complete_since: Vec<Option<Instant>> = vec![None; n];
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let finish = |i: usize, done: &mut Vec<bool>| {
        done[i] = true;
        if several {
            handles[i].stop();
        }
        done.iter().all(|d| *d)
    };
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = sigterm.recv() => return Ok(()),
            _ = tick.tick() => {
                for (i, h) in handles.iter().enumerate() {
                    if done[i] {
                        continue;
                    }
                    let s = h.status();
                    display.show(i, &s, started);
                    if let (Until::SeedLimits(limits), Some(since)) = (until, complete_since[i])
                        && let Some(why) = limits.reached(&s, since.elapsed())
                    {
                        if several {
                            tracing::info!("{}: {why}: leaving", s.name);
                        } else {
                            tracing::info!("{why}: leaving");
                        }
                        if finish(i, &mut done) {
                            return Ok(());
                        }
                    }
                }
            }
            changed = changes.recv() => {
                let Some(i) = changed else {
                    return Ok(()); // every torrent ended
                };
                if done[i] {
                    continue;
                }
                let s = handles[i].status();
                if s.error.is_some() || s.state.is_final() {
                    if finish(i, &mut done) {
                        return Ok(());
                    }
                    continue;
                }
                if s.state == TorrentState::Checking {
                    continue;
                }
                if s.complete && complete_since[i].is_none() {
                    complete_since[i] = Some(Instant::now());
                    display.show(i, &s, started);
                }
                if s.complete && until == Until::Complete && finish(i, &mut done) {
                    return Ok(());
                }
            }
        }
    }
}

/// Aborts the status forwarders when `drive` returns.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The status output: JSON lines, progress bars (one per torrent), or
/// nothing (not a terminal); with `--peers`, a table of neighbours per
/// torrent on stderr (redrawn in place on a terminal, like top).
struct Display {
    json: bool,
    /// `--peers`: `Some(true)` redraws in place (a terminal), `Some(false)`
    /// appends a table per status.
    table: Option<bool>,
    /// One bar per torrent (several drawn together by `multi`).
    bars: Vec<indicatif::ProgressBar>,
    multi: Option<indicatif::MultiProgress>,
    /// Each torrent's name is shown with its figures.
    several: bool,
    /// The latest `--peers` table of each torrent (redrawn together).
    tables: std::sync::Mutex<Vec<String>>,
    /// The run goes on once complete: the bar then says "seeding", else
    /// "complete" (no "seeding" flash before a download exits).
    seeds: bool,
}

impl Display {
    fn new(json: bool, peers_table: bool, torrents: &[TorrentArg], seeds: bool) -> Display {
        let terminal = std::io::stderr().is_terminal();
        let table = peers_table.then_some(terminal);
        let several = torrents.len() > 1;
        // The in-place table replaces the bar (it has the same figures).
        let show = !json && terminal && table.is_none();
        let multi = (show && several).then(indicatif::MultiProgress::new);
        let bars: Vec<indicatif::ProgressBar> = if show {
            torrents
                .iter()
                .map(|t| {
                    // A magnet's length is known with its metadata.
                    let len = match t {
                        TorrentArg::File(l) => l.spec.pads().real_total(),
                        TorrentArg::Magnet(_) => 0,
                    };
                    let bar = indicatif::ProgressBar::new(len);
                    let bar = match &multi {
                        Some(m) => m.add(bar),
                        None => bar,
                    };
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{prefix:>11} {wide_bar} {percent:>3}% {msg}",
                        )
                        .expect("valid template"),
                    );
                    bar
                })
                .collect()
        } else {
            Vec::new()
        };
        match (&multi, bars.first()) {
            (Some(m), _) => super::term::show_bars(m),
            (None, Some(bar)) => super::term::show_bar(bar),
            _ => {}
        }
        Display {
            json,
            table,
            bars,
            multi,
            several,
            tables: std::sync::Mutex::new(vec![String::new(); torrents.len()]),
            seeds,
        }
    }

    fn print_json(&self, s: &TorrentStatus) {
        match serde_json::to_string(s) {
            Ok(line) => {
                let _ = super::print_stdout(&format!("{line}\n"));
            }
            Err(e) => tracing::error!(error = %e, "status not serializable"),
        }
    }

    /// `name: ` before a torrent's figures when there are several.
    fn label(&self, s: &TorrentStatus) -> String {
        if !self.several {
            return String::new();
        }
        format!(
            "{}: ",
            s.name
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
        )
    }

    fn show(&self, i: usize, s: &TorrentStatus, started: Instant) {
        if s.state == TorrentState::Checking && s.checked.is_none() {
            return; // opening the files: nothing to show yet
        }
        if self.json {
            self.print_json(s);
        }
        if let Some(in_place) = self.table {
            let text = format!("{}{}", self.label(s), neighbour_table(s, started));
            let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
            let mut err = std::io::stderr().lock();
            if in_place {
                // Home, clear to the end: redraw every table without scrolling.
                tables[i] = text;
                let _ = write!(err, "\x1b[H\x1b[J{}", tables.concat());
            } else {
                let _ = write!(err, "{text}");
            }
        }
        let Some(bar) = self.bars.get(i) else {
            return;
        };
        let label = self.label(s);
        if s.state == TorrentState::Metadata {
            let (got, all) = s.metadata_pieces.unwrap_or((0, 0));
            bar.set_prefix("metadata");
            bar.set_message(format!(
                "{label}fetching the metadata: {got}/{all} pieces, {} peer{}",
                s.peers,
                if s.peers == 1 { "" } else { "s" }
            ));
            return;
        }
        if bar.length() != Some(s.total_length) {
            bar.set_length(s.total_length);
        }
        if s.state == TorrentState::Checking {
            let (done, total) = (s.checked.unwrap_or(0), s.total_length);
            bar.set_prefix("checking");
            bar.set_position(done);
            bar.set_message(format!(
                "{label}{} of {}",
                human_bytes(done),
                human_bytes(total)
            ));
            return;
        }
        bar.set_prefix(match (s.complete, self.seeds) {
            (false, _) => "downloading",
            (true, true) => "seeding",
            (true, false) => "complete",
        });
        bar.set_position(s.total_length - s.left);
        let eta = if s.complete || s.download_rate < 1.0 {
            String::new()
        } else {
            format!(
                ", eta {}",
                humanize_secs((s.left as f64 / s.download_rate) as u64)
            )
        };
        bar.set_message(format!(
            "{label}↓ {}/s ↑ {}/s, {} peer{}{eta}",
            human_bytes(s.download_rate as u64),
            human_bytes(s.upload_rate as u64),
            s.peers,
            if s.peers == 1 { "" } else { "s" }
        ));
    }

    /// The torrent's last words: its final JSON line or summary line.
    fn finish(&self, last: Option<&TorrentStatus>, started: Instant) {
        self.clear_bars();
        let Some(s) = last else { return };
        if self.json {
            self.print_json(s);
        } else {
            let secs = started.elapsed().as_secs_f64();
            if s.error.is_some() {
                return; // the error line says it
            }
            let _ = super::print_stdout(&format!(
                "{}{}: {} of {} pieces, {} down, {} up in {:.1} s\n",
                self.label(s),
                if s.complete { "complete" } else { "stopped" },
                s.pieces_have,
                s.pieces_total,
                human_bytes(s.downloaded),
                human_bytes(s.uploaded),
                secs
            ));
        }
    }

    fn clear_bars(&self) {
        if self.bars.is_empty() {
            return;
        }
        super::term::hide_bar();
        for bar in &self.bars {
            if !bar.is_finished() {
                bar.finish_and_clear();
            }
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

impl Drop for Display {
    /// An early error leaves no bar behind for later log lines to redraw.
    fn drop(&mut self) {
        self.clear_bars();
    }
}

/// The `--peers` table: a summary line, then one row per neighbour, fastest first.
fn neighbour_table(s: &TorrentStatus, started: Instant) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}/{} pieces  down {}/s  up {}/s  {} peers  {:.0} s",
        s.state.as_str(),
        s.pieces_have,
        s.pieces_total,
        human_bytes(s.download_rate as u64),
        human_bytes(s.upload_rate as u64),
        s.peers,
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        out,
        "{:<22} {:<16} {:<10} {:>6} {:>11} {:>11} {:>5}  REASON",
        "PEER", "CLIENT", "CHOKE", "FOR", "DOWN/s", "UP/s", "HAS%"
    );
    for n in &s.neighbours {
        let has = if s.pieces_total == 0 {
            100.0
        } else {
            100.0 * f64::from(n.pieces) / f64::from(s.pieces_total)
        };
        let client: String = n
            .client
            .chars()
            .filter(|c| !c.is_control())
            .take(16)
            .collect();
        let _ = writeln!(
            out,
            "{:<22} {:<16} {:<10} {:>6} {:>11} {:>11} {:>4.0}%  {}",
            n.addr.to_string(),
            client,
            n.choke,
            humanize_secs(n.choke_for_s as u64),
            human_bytes(n.download_rate as u64),
            human_bytes(n.upload_rate as u64),
            has,
            n.reason,
        );
    }
    out
}

fn humanize_secs(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Where a download goes: `-o DIR`, default the current folder.
pub fn output_dir(o: Option<PathBuf>) -> PathBuf {
    o.unwrap_or_else(|| PathBuf::from("."))
}
