//! `swarm dht`: a Mainline DHT node (BEP 5) and its key-value store (BEP 44)
//! from the command line: run a node, put and get items, find peers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ed25519_dalek::SigningKey;
use swarm_dht::{DhtConfig, LookupOutcome, NodeId, NodeInfo};
use swarm_net::dht::DhtHandle;
use swarm_wire::InfoHash;

use super::{bad_input, print_stdout};

/// The well-known public routers, used when no `--bootstrap` is given.
pub const PUBLIC_ROUTERS: [&str; 3] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
];
/// Nodes kept in a state file.
const STATE_NODES_MAX: usize = 1000;

const EXAMPLES: &str = "\
EXAMPLES:
  Run a node on the usual port, joining through the public routers:
      swarm dht node

  Store a value; anyone can read it back with the key it prints:
      swarm dht put 'hello world'
      swarm dht get 430ce34d020724ed75a196dfc2ad67c77772d169

  A mutable item, signed by your key (its sequence number goes up by one
  on every put unless --seq is given):
      swarm dht keygen me.key
      swarm dht put --key me.key --salt status 'online'
      swarm dht get --pubkey <public key printed by keygen> --salt status

  Who has a torrent:
      swarm dht peers c9e15763f722f23e98a29decdfae341b98d53056

  A private DHT on loopback (no public routers):
      swarm dht node --bind 127.0.0.1:7000 --bootstrap 127.0.0.1:7001";

/// Use the Mainline DHT: run a node, store and read values, find peers.
///
/// The DHT is the distributed table BitTorrent clients share: every node
/// stores a small part of it, any node can read and write. `put` stores a
/// value of up to 1000 bytes (bencoded) for about 2 hours (re-put it, or
/// `put --keep`, to keep it); its key is the SHA-1 of the value, or for a mutable item, of your
/// public key and a salt. The one-shot commands (put, get, peers) start a
/// short-lived read-only node, join through --bootstrap (default: the public
/// routers), do their lookup and exit.
#[derive(Debug, Args)]
#[command(after_help = format!("{EXAMPLES}\n\n{}", super::EXIT_STATUS_HELP))]
pub struct DhtArgs {
    #[command(subcommand)]
    command: DhtCommand,
}

#[derive(Debug, Subcommand)]
enum DhtCommand {
    Node(NodeArgs),
    Put(PutArgs),
    Get(GetArgs),
    Keygen(KeygenArgs),
    Peers(PeersArgs),
}

#[derive(Debug, Args, Clone)]
struct JoinArgs {
    /// Local UDP address to bind.
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// A node to join through, HOST:PORT (repeat for more). Default: the
    /// public routers (router.bittorrent.com, dht.transmissionbt.com,
    /// router.utorrent.com).
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap: Vec<String>,
    /// Accept node ids that do not match their IP (BEP 42); local addresses
    /// are exempt anyway.
    #[arg(long)]
    no_enforce_node_id: bool,
}

/// Run a DHT node until interrupted, logging its table and traffic.
///
/// Prints the address it listens on (one line on stdout), then every
/// --log-interval seconds a line on stderr: nodes in the table, queries
/// in and out per second, what it stores. The routing table is saved to
/// --state at exit and pinged at the next start.
#[derive(Debug, Args)]
struct NodeArgs {
    #[command(flatten)]
    join: JoinArgs,
    /// Where the routing table is kept between runs. Default:
    /// $XDG_STATE_HOME/swarm/dht.nodes (~/.local/state/swarm/dht.nodes).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    log_interval: u64,
}

/// Store a value in the DHT and print its key.
///
/// Without --key: an immutable item, whose key is the SHA-1 of the value
/// (bencoded as a string). With --key: a mutable item, signed by the key
/// (made by `swarm dht keygen`), found under the public key and --salt.
/// Nodes drop an item 2 hours after its last put: --keep stays running and
/// puts it again every hour, until Ctrl-C.
#[derive(Debug, Args)]
struct PutArgs {
    /// The value (stored as a bencoded string, at most 1000 bytes encoded).
    value: String,
    /// Sign with this key file: a mutable item.
    #[arg(long, value_name = "KEYFILE")]
    key: Option<PathBuf>,
    /// Salt of a mutable item (several items per key).
    #[arg(long, requires = "key")]
    salt: Option<String>,
    /// Sequence number of a mutable item. Default: the stored one plus one.
    #[arg(long, requires = "key")]
    seq: Option<i64>,
    #[command(flatten)]
    join: JoinArgs,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
    /// After the put, stay running and put the item again every hour (it
    /// lives 2 hours after its last put) until Ctrl-C or SIGTERM.
    #[arg(long)]
    keep: bool,
}

/// Read a value from the DHT and print it.
///
/// KEY (40 hex digits) names an immutable item; --pubkey (64 hex digits,
/// with --salt if it was put with one) a mutable one.
#[derive(Debug, Args)]
struct GetArgs {
    /// The key `swarm dht put` printed.
    #[arg(required_unless_present = "pubkey", conflicts_with = "pubkey")]
    key: Option<String>,
    /// A mutable item's public key.
    #[arg(long, value_name = "HEX")]
    pubkey: Option<String>,
    #[arg(long, requires = "pubkey")]
    salt: Option<String>,
    #[command(flatten)]
    join: JoinArgs,
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
}

/// Make an ed25519 key for mutable items: writes KEYFILE (keep it secret)
/// and prints the public key.
#[derive(Debug, Args)]
struct KeygenArgs {
    keyfile: PathBuf,
    /// Replace an existing KEYFILE.
    #[arg(long)]
    force: bool,
}

/// Find peers of a torrent (get_peers) and print them, one per line.
#[derive(Debug, Args)]
struct PeersArgs {
    /// The torrent's info-hash, 40 hex digits.
    info_hash: String,
    #[command(flatten)]
    join: JoinArgs,
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
}

pub fn run(args: DhtArgs) -> Result<()> {
    if let DhtCommand::Keygen(k) = &args.command {
        return keygen(k);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match args.command {
            DhtCommand::Node(a) => node(a).await,
            DhtCommand::Put(a) => put(a).await,
            DhtCommand::Get(a) => get(a).await,
            DhtCommand::Peers(a) => peers(a).await,
            DhtCommand::Keygen(_) => Ok(()),
        }
    })
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    use std::io::Read;
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .context("reading /dev/urandom")?;
    Ok(out)
}

async fn resolve(join: &JoinArgs) -> Result<Vec<SocketAddr>> {
    let names: Vec<String> = if join.bootstrap.is_empty() {
        PUBLIC_ROUTERS.iter().map(|s| s.to_string()).collect()
    } else {
        join.bootstrap.clone()
    };
    let mut out = Vec::new();
    for name in &names {
        match tokio::net::lookup_host(name.as_str()).await {
            Ok(addrs) => out.extend(addrs),
            Err(e) => tracing::warn!("bootstrap {name}: {e}"),
        }
    }
    if out.is_empty() {
        bail!("no bootstrap node could be resolved ({})", names.join(", "));
    }
    Ok(out)
}

/// Starts a node. A one-shot command needs a seed to join through; a
/// long-running node (`serve`) starts without one (others may join it, and
/// its saved table may be enough).
async fn start(join: &JoinArgs, read_only: bool, default_bind: &str) -> Result<Joining> {
    let serve = !read_only;
    let seeds = match resolve(join).await {
        Ok(s) => s,
        Err(e) if serve => {
            eprintln!("warning: {e:#}; waiting for other nodes to contact this one");
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let bind = match join.bind {
        Some(b) => b,
        None if seeds.iter().all(SocketAddr::is_ipv6) => "[::]:0".parse()?,
        None => default_bind.parse()?,
    };
    let config = DhtConfig {
        read_only,
        enforce_node_id: !join.no_enforce_node_id,
        ..DhtConfig::default()
    };
    let seed = u64::from_le_bytes(random_bytes()?);
    let handle = DhtHandle::start(bind, config, seed).await?;
    let family: Vec<SocketAddr> = seeds
        .into_iter()
        .filter(|a| a.is_ipv4() == handle.local_addr().is_ipv4())
        .collect();
    if family.is_empty() && !serve {
        bail!("no bootstrap node of the bound address's family ({bind})");
    }
    Ok(Joining {
        handle,
        seeds: family,
    })
}

/// A started node and the seeds it joins through.
struct Joining {
    handle: DhtHandle,
    seeds: Vec<SocketAddr>,
}

impl Joining {
    async fn join(&self) -> Result<()> {
        let (outcome, _) = self
            .handle
            .bootstrap(self.seeds.clone())
            .await
            .context("the DHT node stopped")?;
        let found = match outcome {
            LookupOutcome::Nodes(n) => n.len(),
            _ => 0,
        };
        let stats = self.handle.stats().await.unwrap_or_default();
        if found == 0 && stats.nodes_v4 + stats.nodes_v6 == 0 {
            bail!("no DHT node answered (bootstrap: {:?})", self.seeds);
        }
        tracing::info!(
            "joined the DHT: {} nodes in the table",
            stats.nodes_v4 + stats.nodes_v6
        );
        Ok(())
    }
}

async fn with_timeout<T>(secs: u64, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(r) => r,
        Err(_) => bail!("timed out after {secs} s"),
    }
}

fn bencoded_string(value: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 6);
    swarm_wire::bencode::put_bytes(&mut v, value.as_bytes());
    v
}

/// A stored value for people: a bencoded string as its text, anything else
/// as its bencoding.
fn show_value(v: &[u8]) -> String {
    match swarm_wire::bencode::decode_lenient(v)
        .ok()
        .and_then(|x| x.as_bytes())
    {
        Some(s) => String::from_utf8_lossy(s).into_owned(),
        None => String::from_utf8_lossy(v).into_owned(),
    }
}

fn parse_hex<const N: usize>(s: &str, what: &str) -> Result<[u8; N]> {
    let s = s.trim();
    if s.len() != 2 * N {
        return Err(bad_input(format!(
            "{what} must be {} hex digits, got {} characters",
            2 * N,
            s.chars().count()
        )));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| bad_input(format!("{what} is not hex: {s}")))?;
    Ok(out)
}

fn load_key(path: &Path) -> Result<SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let seed: [u8; 32] = parse_hex(&text, &format!("key file {}", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn keygen(args: &KeygenArgs) -> Result<()> {
    if args.keyfile.exists() && !args.force {
        return Err(bad_input(format!(
            "{} exists (use --force to replace it)",
            args.keyfile.display()
        )));
    }
    let key = SigningKey::from_bytes(&random_bytes()?);
    write_private(
        &args.keyfile,
        format!("{}\n", hex::encode(key.to_bytes())).as_bytes(),
    )?;
    print_stdout(&format!(
        "{}\n",
        hex::encode(key.verifying_key().to_bytes())
    ))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

async fn put(args: PutArgs) -> Result<()> {
    let value = bencoded_string(&args.value);
    if value.len() > swarm_wire::krpc::VALUE_LEN_MAX {
        return Err(bad_input(format!(
            "the value is {} bytes bencoded; the DHT stores at most {}",
            value.len(),
            swarm_wire::krpc::VALUE_LEN_MAX
        )));
    }
    let key = args.key.as_deref().map(load_key).transpose()?;
    let salt = args.salt.unwrap_or_default().into_bytes();
    if salt.len() > swarm_wire::krpc::SALT_LEN_MAX {
        return Err(bad_input("the salt is longer than 64 bytes"));
    }
    let node = start(&args.join, true, "0.0.0.0:0").await?;
    let seq = args.seq;
    let (keep_key, keep_salt, keep_value) = (key.clone(), salt.clone(), value.clone());
    let handle = node.handle.clone();
    let stored_seq = with_timeout(args.timeout, async move {
        node.join().await?;
        let (outcome, stats) = node
            .handle
            .lookup(move |dht, now| match key {
                None => dht.put_immutable(now, value).ok().map(|(id, _)| id),
                Some(k) => dht
                    .put_mutable(now, &k, &salt, value, seq, None)
                    .ok()
                    .map(|(id, _)| id),
            })
            .await
            .context("the DHT node stopped")?;
        let LookupOutcome::Put {
            target,
            seq,
            stored,
            refused,
        } = outcome
        else {
            bail!("unexpected outcome {outcome:?}");
        };
        if stored == 0 {
            bail!("no node stored the item ({refused} refused)");
        }
        match seq {
            Some(s) => eprintln!(
                "stored at {stored} nodes (seq {s}, {} messages)",
                stats.messages
            ),
            None => eprintln!("stored at {stored} nodes ({} messages)", stats.messages),
        }
        print_stdout(&format!("{target}\n"))?;
        Ok(seq)
    })
    .await?;
    if !args.keep {
        return Ok(());
    }
    let item = match (keep_key, stored_seq) {
        (Some(k), Some(seq)) => swarm_dht::item::Item::sign(&k, &keep_salt, seq, keep_value),
        _ => swarm_dht::item::Item::immutable(keep_value),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !handle.keep(item).await {
        bail!("the DHT node could not keep the item");
    }
    eprintln!(
        "keeping it: put again every {} minutes until Ctrl-C",
        swarm_dht::ITEM_REPUT_INTERVAL.as_millis() / 60_000
    );
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm.recv() => {}
    }
    Ok(())
}

async fn get(args: GetArgs) -> Result<()> {
    enum Want {
        Immutable(NodeId),
        Mutable([u8; 32], Vec<u8>),
    }
    let want = match (&args.key, &args.pubkey) {
        (Some(k), _) => Want::Immutable(NodeId(parse_hex(k, "KEY")?)),
        (None, Some(p)) => Want::Mutable(
            parse_hex(p, "--pubkey")?,
            args.salt.clone().unwrap_or_default().into_bytes(),
        ),
        (None, None) => return Err(bad_input("give KEY or --pubkey")),
    };
    let node = start(&args.join, true, "0.0.0.0:0").await?;
    with_timeout(args.timeout, async move {
        node.join().await?;
        let (outcome, _) = node
            .handle
            .lookup(move |dht, now| {
                Some(match want {
                    Want::Immutable(t) => dht.get_immutable(now, t),
                    Want::Mutable(k, salt) => dht.get_mutable(now, k, &salt),
                })
            })
            .await
            .context("the DHT node stopped")?;
        match outcome {
            LookupOutcome::Item(Some(item)) => {
                if let Some(s) = &item.signed {
                    eprintln!("seq {}", s.seq);
                }
                print_stdout(&format!("{}\n", show_value(&item.value)))
            }
            _ => bail!("not found"),
        }
    })
    .await
}

async fn peers(args: PeersArgs) -> Result<()> {
    let ih = InfoHash(parse_hex(&args.info_hash, "INFOHASH")?);
    let node = start(&args.join, true, "0.0.0.0:0").await?;
    with_timeout(args.timeout, async move {
        node.join().await?;
        let (outcome, _) = node
            .handle
            .lookup(move |dht, now| Some(dht.get_peers(now, ih, None)))
            .await
            .context("the DHT node stopped")?;
        let LookupOutcome::Peers { peers, .. } = outcome else {
            bail!("unexpected outcome {outcome:?}");
        };
        if peers.is_empty() {
            bail!("no peers found");
        }
        let text: String = peers.iter().map(|p| format!("{p}\n")).collect();
        print_stdout(&text)
    })
    .await
}

fn default_state() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("swarm/dht.nodes"))
}

/// Reads a state file: one `<id hex> <addr>` per line; bad lines skipped.
fn load_state(path: &Path) -> Vec<NodeInfo> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .take(STATE_NODES_MAX)
        .filter_map(|l| {
            let (id, addr) = l.split_once(' ')?;
            Some(NodeInfo {
                id: NodeId::from_hex(id)?,
                addr: addr.trim().parse().ok()?,
            })
        })
        .collect()
}

fn save_state(path: &Path, nodes: &[NodeInfo]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text: String = nodes
        .iter()
        .take(STATE_NODES_MAX)
        .map(|n| format!("{} {}\n", n.id, n.addr))
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

async fn node(args: NodeArgs) -> Result<()> {
    let state = args.state.clone().or_else(default_state);
    let saved = state.as_deref().map(load_state).unwrap_or_default();
    let node = start(&args.join, false, "0.0.0.0:6881").await?;
    print_stdout(&format!("{}\n", node.handle.local_addr()))?;
    if !saved.is_empty() {
        eprintln!("pinging {} nodes saved in the state file", saved.len());
        node.handle.add_nodes(saved).await;
    }
    // Join in the background: the node answers queries meanwhile.
    let handle = node.handle.clone();
    let seeds = node.seeds.clone();
    tokio::spawn(async move {
        match handle.bootstrap(seeds).await {
            Some((LookupOutcome::Nodes(n), s)) => {
                eprintln!(
                    "bootstrap: {} closest nodes found in {} messages",
                    n.len(),
                    s.messages
                )
            }
            _ => eprintln!("bootstrap: no answer"),
        }
    });
    let interval = Duration::from_secs(args.log_interval.max(1));
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    let mut last = node.handle.stats().await.unwrap_or_default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = term.recv() => break,
            _ = tick.tick() => {
                let s = node.handle.stats().await.unwrap_or_default();
                let secs = interval.as_secs_f64();
                eprintln!(
                    "table {} nodes ({} good, {} buckets); queries in {:.1}/s, out {:.1}/s; \
                     stored {} torrents, {} peers, {} items; rate-limited {}",
                    s.nodes_v4 + s.nodes_v6,
                    s.good,
                    s.buckets,
                    (s.queries_in - last.queries_in) as f64 / secs,
                    (s.queries_out - last.queries_out) as f64 / secs,
                    s.torrents,
                    s.peers,
                    s.items,
                    s.rate_limited,
                );
                last = s;
            }
        }
    }
    if let Some(path) = state {
        let nodes = node.handle.nodes().await;
        match save_state(&path, &nodes) {
            Ok(()) => eprintln!("saved {} nodes to {}", nodes.len(), path.display()),
            Err(e) => eprintln!(
                "could not save the routing table to {}: {e:#}",
                path.display()
            ),
        }
    }
    Ok(())
}
