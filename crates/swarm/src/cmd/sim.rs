//! `swarm sim`: experiments in the discrete-event simulator, which runs
//! swarm's own engines (picker, choker, pipeline) in virtual time. Each
//! writes CSV tables and a chart (SVG, or PNG with `--png`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use swarm_sim::experiments::{self, Report};
use swarm_sim::{Scenario, chart};

const EXAMPLES: &str = "\
EXAMPLES:
  Distribution time against N, 1 to 1,000 peers (the classic figure):
      swarm sim scaling --max-peers 1000 -o figures/
  Rarest first against random and sequential, the (super-)seed leaving after one copy:
      swarm sim picking --pieces 200 --peers 60
  20% free riders under tit-for-tat and with choking off, as PNG:
      swarm sim incentives --png
  DHT lookups in 1,000 to 100,000 nodes, with churn (mean session 1 hour):
      swarm sim dht --max-nodes 100000 -o figures/
  Big swarms run 10-12% faster with glibc's heap on huge pages (same results):
      GLIBC_TUNABLES=glibc.malloc.hugetlb=1 swarm sim scaling --max-peers 10000";

/// Simulate swarms of swarm's own engines in virtual time.
///
/// Every peer is a real torrent core (piece picker, tit-for-tat choker,
/// request pipeline); the simulator only moves 16 KiB blocks over modelled
/// links (each peer's uplink and downlink shared by its transfers) and
/// answers disk jobs. A run is deterministic: the same options and --seed
/// give the same CSV bytes. Each experiment writes CSV files and a chart
/// (SVG by default) named after it into the output folder, and prints a
/// summary.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct SimArgs {
    #[command(subcommand)]
    experiment: Experiment,
}

#[derive(Debug, Subcommand)]
enum Experiment {
    /// Distribution time against the number of peers: simulated BitTorrent,
    /// simulated client-server and the two fluid bounds.
    Scaling {
        #[command(flatten)]
        common: Common,
        /// The largest swarm (sizes 1, 3, 10, 30, … up to it).
        #[arg(long, default_value_t = 300)]
        max_peers: usize,
        /// Simulate client-server up to this many peers (it moves N copies
        /// through one uplink); beyond, only its bound is drawn.
        #[arg(long, default_value_t = 100)]
        client_server_max: usize,
    },
    /// Rarest first against random and sequential piece choice.
    Picking {
        #[command(flatten)]
        common: Common,
        /// Leechers in the swarm.
        #[arg(long, default_value_t = 100)]
        peers: usize,
        /// The seed leaves after uploading this many copies of the torrent
        /// (it super-seeds here, so one copy holds every piece once).
        #[arg(long, default_value_t = 1.0)]
        seed_copies: f64,
    },
    /// Free riders (upload 0) under tit-for-tat and with choking off;
    /// leechers leave when done.
    Incentives {
        #[command(flatten)]
        common: Common,
        /// Leechers in the swarm.
        #[arg(long, default_value_t = 100)]
        peers: usize,
        /// Fraction of the leechers that upload nothing.
        #[arg(long, default_value_t = 0.2)]
        free_riders: f64,
    },
    /// Lookups in simulated Mainline DHTs of real swarm DHT engines:
    /// messages and round trips per lookup against the number of nodes,
    /// without churn and under churn.
    ///
    /// Each node is a real swarm DHT engine; datagrams take the sum of the
    /// two nodes' access latencies. Tables start filled (k random nodes
    /// per bucket range). Each phase puts `--lookups` immutable items from
    /// random nodes, reads each back from another node 30 s later, and runs
    /// as many find_node lookups of random targets. Under churn, nodes
    /// leave at random (a Poisson process, mean session --session-min) and
    /// are replaced by new nodes that bootstrap; the churn phase's lookups
    /// start after --warmup-min of churn. A node costs ~30 KiB.
    Dht(DhtArgs),
}

/// Where an experiment writes, and its seed: every `swarm sim` subcommand's.
#[derive(Debug, Args)]
struct Output {
    /// Output folder for the CSV files and charts.
    #[arg(short, long, default_value = ".")]
    out: PathBuf,
    /// Draw PNG charts instead of SVG.
    #[arg(long)]
    png: bool,
    /// Seed of the run: same seed, same results.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Args)]
struct DhtArgs {
    #[command(flatten)]
    output: Output,
    /// The smallest DHT (sizes: it, then 3,000, 10,000, 30,000, … below
    /// --max-nodes, then --max-nodes).
    #[arg(long, default_value_t = 1000)]
    min_nodes: usize,
    /// The largest DHT.
    #[arg(long, default_value_t = 10_000)]
    max_nodes: usize,
    /// Puts (each read back) and find_node lookups per phase.
    #[arg(long, default_value_t = 100)]
    lookups: usize,
    /// Lowest and highest one-way access latency of a node, milliseconds.
    #[arg(long, default_value = "10-100")]
    latency_ms: String,
    /// Probability that a datagram is lost.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Mean session time of a node under churn, minutes (0: no churn phase).
    #[arg(long, default_value_t = 60)]
    session_min: u64,
    /// Minutes of churn before the churn phase's lookups.
    #[arg(long, default_value_t = 10)]
    warmup_min: u64,
}

impl DhtArgs {
    fn scenario(&self) -> Result<swarm_sim::dht::DhtScenario> {
        let lat = self
            .latency_ms
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
            .filter(|(a, b): &(u64, u64)| a <= b && *b <= 10_000);
        let Some(latency_ms) = lat else {
            return Err(super::bad_input(
                "--latency-ms is a range LOW-HIGH in milliseconds, e.g. 10-100",
            ));
        };
        if !(0.0..1.0).contains(&self.loss) {
            return Err(super::bad_input("--loss is a probability below 1"));
        }
        if self.min_nodes < 2 || self.max_nodes < self.min_nodes || self.max_nodes > 1 << 24 {
            return Err(super::bad_input(
                "--min-nodes is at least 2 and --max-nodes between it and 16,777,216",
            ));
        }
        if self.lookups == 0 || self.lookups > 100_000 {
            return Err(super::bad_input("--lookups is between 1 and 100,000"));
        }
        let minutes = |m: u64| swarm_dht::Duration::from_secs(m.saturating_mul(60));
        Ok(swarm_sim::dht::DhtScenario {
            seed: self.output.seed,
            nodes: self.min_nodes,
            lookups: self.lookups,
            latency_ms,
            loss: self.loss,
            session: (self.session_min > 0).then(|| minutes(self.session_min)),
            warmup: minutes(self.warmup_min),
        })
    }
}

/// The most peers an experiment simulates: every one is a real core and
/// endpoint (at 64 pieces, 10,000 peers peak at 1.5 GiB).
const PEERS_MAX: usize = 100_000;

#[derive(Debug, Args)]
struct Common {
    #[command(flatten)]
    output: Output,
    /// Pieces in the torrent.
    #[arg(long, default_value_t = 64)]
    pieces: u32,
    /// Piece size (K, M suffixes), a multiple of 16 KiB.
    #[arg(long, default_value = "256K", value_parser = super::parse_size)]
    piece_size: u64,
    /// Each peer's upload capacity, bytes/s (K, M suffixes); the seed's too
    /// unless --seed-upload.
    #[arg(long, default_value = "1M", value_parser = super::parse_size)]
    upload: u64,
    /// The seed's upload capacity, bytes/s (default: --upload).
    #[arg(long, value_parser = super::parse_size)]
    seed_upload: Option<u64>,
    /// The seed super-seeds (BEP 16): it offers pieces one or two at a
    /// time, so its first copy has no piece twice.
    #[arg(long)]
    super_seed: bool,
    /// Each peer's download capacity, bytes/s (K, M suffixes).
    #[arg(long, default_value = "4M", value_parser = super::parse_size)]
    download: u64,
    /// One-way latency of each peer's link, milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
}

impl Common {
    fn scenario(&self) -> Result<Scenario> {
        if self.piece_size == 0
            || !self.piece_size.is_multiple_of(16_384)
            || self.piece_size > 1 << 26
        {
            return Err(super::bad_input(
                "--piece-size must be a multiple of 16 KiB, at most 64 MiB",
            ));
        }
        let seed_upload = self.seed_upload.unwrap_or(self.upload);
        if self.pieces == 0 || self.upload == 0 || self.download == 0 || seed_upload == 0 {
            return Err(super::bad_input(
                "--pieces, --upload, --seed-upload and --download must be positive",
            ));
        }
        Ok(Scenario {
            seed: self.output.seed,
            pieces: self.pieces,
            piece_len: self.piece_size as u32,
            seed_up: seed_upload as f64,
            seed_down: self.download as f64,
            peer_up: self.upload as f64,
            peer_down: self.download as f64,
            latency: swarm_engine::Duration::from_millis(self.latency_ms),
            engine: swarm_engine::TorrentConfig {
                super_seeding: self.super_seed,
                ..Default::default()
            },
            ..Scenario::default()
        })
    }
}

fn progress_bar(name: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{name} {{wide_bar}} {{msg}} elapsed {{elapsed}}"
        ))
        .expect("valid template"),
    );
    bar
}

fn run_dht(args: &DhtArgs) -> Result<()> {
    let base = args.scenario()?;
    let out = &args.output.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let bar = progress_bar("dht");
    let sizes = swarm_sim::dht::dht_sizes(args.min_nodes, args.max_nodes);
    let mut progress = |done: usize, total: usize, frac: f64| {
        let total = total.max(1);
        bar.set_position((((done as f64 + frac) / total as f64) * 1000.0) as u64);
        let n = sizes.get(done).copied().unwrap_or(0);
        bar.set_message(format!("{n} nodes, run {}/{total}", (done + 1).min(total)));
    };
    let report = swarm_sim::dht::experiment(&base, &sizes, &mut progress);
    bar.finish_and_clear();
    write_report(&report, out, "dht", args.output.png)?;
    super::print_stdout(&report.summary)
}

pub fn run(args: SimArgs) -> Result<()> {
    let (name, common) = match &args.experiment {
        Experiment::Scaling { common, .. } => ("scaling", common),
        Experiment::Picking { common, .. } => ("picking", common),
        Experiment::Incentives { common, .. } => ("incentives", common),
        Experiment::Dht(d) => return run_dht(d),
    };
    let base = common.scenario()?;
    check_sizes(&args.experiment, &base)?;
    let (out, png) = (common.output.out.clone(), common.output.png);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let bar = progress_bar(name);
    let mut progress = |done: usize, total: usize, frac: f64| {
        let total = total.max(1);
        bar.set_position((((done as f64 + frac) / total as f64) * 1000.0) as u64);
        bar.set_message(format!("run {}/{total}", (done + 1).min(total)));
    };
    let report = match args.experiment {
        Experiment::Scaling {
            max_peers,
            client_server_max,
            ..
        } => experiments::scaling(&base, max_peers, client_server_max, &mut progress),
        Experiment::Picking {
            peers, seed_copies, ..
        } => experiments::picking(
            &Scenario {
                leechers: peers,
                ..base
            },
            seed_copies,
            &mut progress,
        ),
        Experiment::Incentives {
            peers, free_riders, ..
        } => experiments::incentives(
            &Scenario {
                leechers: peers,
                ..base
            },
            free_riders,
            &mut progress,
        ),
        Experiment::Dht(d) => return run_dht(&d),
    };
    bar.finish_and_clear();
    write_report(&report, &out, name, png)?;
    super::print_stdout(&report.summary)
}

/// Refuses, before anything is written, swarm sizes an experiment cannot
/// run or read.
fn check_sizes(experiment: &Experiment, base: &Scenario) -> Result<()> {
    match *experiment {
        Experiment::Scaling { max_peers, .. } if !(1..=PEERS_MAX).contains(&max_peers) => {
            Err(super::bad_input(
                "--max-peers is between 1 and 100,000 (10,000 take ~3.5 minutes and 1.5 GiB)",
            ))
        }
        Experiment::Picking { peers, .. } | Experiment::Incentives { peers, .. }
            if !(1..=PEERS_MAX).contains(&peers) =>
        {
            Err(super::bad_input("--peers is between 1 and 100,000"))
        }
        Experiment::Incentives { free_riders, .. } if !(0.0..=1.0).contains(&free_riders) => Err(
            super::bad_input("--free-riders is a fraction between 0 and 1"),
        ),
        Experiment::Incentives {
            peers, free_riders, ..
        } => {
            // The experiment compares the two groups: each needs a peer.
            let riders = Scenario {
                leechers: peers,
                free_riders,
                ..base.clone()
            }
            .free_rider_count();
            if free_riders > 0.0 && (riders == 0 || riders == peers) {
                return Err(super::bad_input(format!(
                    "--free-riders {free_riders} of --peers {peers} makes {riders} free riders \
                     and {} contributors; the comparison needs both",
                    peers - riders
                )));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn write_report(report: &Report, dir: &Path, name: &str, png: bool) -> Result<()> {
    for (suffix, csv) in &report.tables {
        let path = dir.join(format!("{name}{suffix}.csv"));
        std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    for (suffix, c) in &report.charts {
        let ext = if png { "png" } else { "svg" };
        let path = dir.join(format!("{name}{suffix}.{ext}"));
        chart::draw(c, &path, png).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
