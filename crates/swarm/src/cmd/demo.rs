//! `swarm demo`: a whole swarm on this machine. An embedded tracker, one
//! seeder and N leechers, each a real `swarm` peer process on loopback,
//! upload-capped so the run takes tens of seconds; a live line per peer;
//! at the end the measured time beside the client-server and P2P lower
//! bounds, the bytes the leechers gave each other, and every leecher's
//! bytes checked against the source.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use swarm_tracker::registry::RegistryConfig;
use swarm_tracker::server::{Tracker, TrackerConfig};

use super::{human_bytes, parse_size};

const EXAMPLES: &str = "\
EXAMPLES:
  The default: 64 MiB, 1 seeder capped at 4 MiB/s, 8 leechers at 2 MiB/s each:
      swarm demo
  A bigger swarm, a smaller file, machine-readable:
      swarm demo --leechers 16 --size 16M --json";

/// Run a whole BitTorrent swarm on this machine and watch it work.
///
/// Generates a file, starts a tracker inside this process, then one seeder
/// and N leechers, each a real `swarm` peer process on its own 127.0.0.x, with its
/// upload capped (so a run takes tens of seconds, not a blink). Shows one
/// line per peer: progress, rates, how many neighbours unchoke it. At the
/// end: the measured time beside the client-server lower bound
/// max(N·F/u_s, F/d_min) and the peer-to-peer lower bound
/// max(F/u_s, F/d_min, N·F/(u_s + Σu_i)), how many bytes the leechers gave
/// each other, and every leecher's file compared with the source.
#[derive(Debug, Args)]
#[command(after_help = format!("{EXAMPLES}\n\n{}", super::EXIT_STATUS_HELP))]
pub struct DemoArgs {
    /// Leechers (N).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    leechers: u16,

    /// Size of the file (F): 64M, 1G, 500K.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    size: u64,

    /// The seeder's upload cap (u_s), bytes per second.
    #[arg(long, value_name = "RATE", default_value = "4M", value_parser = parse_size)]
    seed_upload: u64,

    /// Each leecher's upload cap (u_i), bytes per second.
    #[arg(long, value_name = "RATE", default_value = "2M", value_parser = parse_size)]
    leecher_upload: u64,

    /// Working folder (kept); default: a temporary one, removed at the end.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,

    /// One JSON line a second with every peer, and a final summary line.
    #[arg(long)]
    json: bool,
}

/// One peer process and its latest `--json` status.
struct DemoPeer {
    name: String,
    seeder: bool,
    child: Child,
    status: Arc<Mutex<Option<serde_json::Value>>>,
    dir: PathBuf,
}

impl Drop for DemoPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_peer(
    name: &str,
    seeder: bool,
    mut cmd: Command,
    dir: PathBuf,
    logs: &Path,
) -> Result<DemoPeer> {
    let err = std::fs::File::create(logs.join(format!("{name}.log")))?;
    cmd.stdout(Stdio::piped()).stderr(err).stdin(Stdio::null());
    let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    let status = Arc::new(Mutex::new(None));
    let out = child.stdout.take().context("peer stdout")?;
    let slot = status.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Ok(mut s) = slot.lock()
            {
                *s = Some(v);
            }
        }
    });
    Ok(DemoPeer {
        name: name.into(),
        seeder,
        child,
        status,
        dir,
    })
}

/// Where peer `i` (0: the seeder) listens and dials from: an IP of its own,
/// 127.0.0.(2+i), so the per-IP connection rules hold as between real
/// machines (the tracker stays on 127.0.0.1); the port is the kernel's.
fn peer_listen(i: u16) -> String {
    debug_assert!(i <= 64, "--leechers is at most 64");
    format!("127.0.0.{}:0", 2 + i)
}

/// Writes `len` pseudo-random bytes (splitmix64) to `path`.
fn write_data(path: &Path, len: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x = 0x5eed_u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

pub fn run(args: DemoArgs) -> Result<()> {
    let temp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let exe = std::env::current_exe().context("finding the swarm binary")?;
    let n = u64::from(args.leechers);
    let f = args.size.max(1);

    // The tracker, in this process; a short interval so peers meet fast.
    let tracker = Tracker::start(TrackerConfig {
        http: Some("127.0.0.1:0".parse()?),
        udp: None,
        registry: RegistryConfig::with_interval(5),
        workers: 1,
        ..TrackerConfig::default()
    })
    .context("starting the tracker")?;
    let announce = format!(
        "http://{}/announce",
        tracker.http_addr().context("tracker address")?
    );

    let seed_dir = dir.join("seeder");
    std::fs::create_dir_all(&seed_dir)?;
    let data = seed_dir.join("demo.bin");
    if !args.json {
        eprintln!("demo: writing {} of test data...", human_bytes(f));
    }
    write_data(&data, f)?;
    let torrent = dir.join("demo.torrent");
    let made = Command::new(&exe)
        .arg("create")
        .arg(&data)
        .args(["-t", &announce, "--piece-size", "256K", "-f", "-o"])
        .arg(&torrent)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !made.status.success() {
        bail!(
            "swarm create failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }

    let rate = |r: u64| r.to_string();
    let mut peers = Vec::new();
    let mut cmd = Command::new(&exe);
    cmd.arg("seed")
        .arg(&torrent)
        .arg("-d")
        .arg(&seed_dir)
        .args(["--listen", &peer_listen(0), "--json"])
        .args(["--max-upload-rate", &rate(args.seed_upload)]);
    peers.push(spawn_peer("seeder", true, cmd, seed_dir.clone(), &logs)?);
    let started = Instant::now();
    for i in 1..=args.leechers {
        let out = dir.join(format!("leecher-{i}"));
        std::fs::create_dir_all(&out)?;
        let mut cmd = Command::new(&exe);
        cmd.arg("download")
            .arg(&torrent)
            .arg("-o")
            .arg(&out)
            .args(["--listen", &peer_listen(i), "--json", "--seed"])
            .args(["--max-upload-rate", &rate(args.leecher_upload)]);
        peers.push(spawn_peer(&format!("leecher-{i}"), false, cmd, out, &logs)?);
    }

    let tty = !args.json && std::io::stdout().is_terminal();
    let mut drawn = 0;
    let deadline = started + Duration::from_secs(args.timeout);
    let finished = loop {
        std::thread::sleep(Duration::from_secs(1));
        let statuses: Vec<Option<serde_json::Value>> = peers
            .iter()
            .map(|p| p.status.lock().ok().and_then(|s| s.clone()))
            .collect();
        for p in &mut peers {
            if let Ok(Some(code)) = p.child.try_wait() {
                bail!("{} exited early ({code}); see {}", p.name, logs.display());
            }
        }
        let done = statuses[1..]
            .iter()
            .all(|s| s.as_ref().is_some_and(|v| v["complete"] == true));
        if args.json {
            let line = serde_json::json!({
                "elapsed_s": started.elapsed().as_secs_f64(),
                "peers": peers.iter().zip(&statuses).map(|(p, s)| serde_json::json!({
                    "name": p.name, "seeder": p.seeder, "status": s,
                })).collect::<Vec<_>>(),
            });
            println!("{line}");
        } else {
            let mut out = String::new();
            for (p, s) in peers.iter().zip(&statuses) {
                let v = s.clone().unwrap_or_default();
                let total = num(&v, "total_length").max(1);
                let have = total - num(&v, "left").min(total);
                let unchoking = v["neighbours"].as_array().map_or(0, |ns| {
                    ns.iter().filter(|n| n["unchokes_us"] == true).count()
                });
                out.push_str(&format!(
                    "{:<11} {:<7} {:>5.1}%  down {:>10}/s  up {:>10}/s  {:>2} neighbours, {:>2} unchoke it\n",
                    p.name,
                    if v["complete"] == true { "seeder" } else { "leecher" },
                    100.0 * have as f64 / total as f64,
                    human_bytes(num(&v, "download_rate")),
                    human_bytes(num(&v, "upload_rate")),
                    num(&v, "peers"),
                    unchoking,
                ));
            }
            if tty && drawn > 0 {
                print!("\x1b[{drawn}A");
            }
            print!("{out}");
            if !tty {
                println!();
            }
            drawn = peers.len();
            std::io::stdout().flush()?;
        }
        if done {
            break statuses;
        }
        if Instant::now() > deadline {
            bail!(
                "the swarm did not finish in {} s; logs in {}",
                args.timeout,
                logs.display()
            );
        }
    };
    let elapsed = started.elapsed().as_secs_f64();

    // Leechers' uploads all went to other leechers (the seeder wants nothing).
    let leechers = &finished[1..];
    let given: u64 = leechers.iter().flatten().map(|v| num(v, "uploaded")).sum();
    let downloaded: u64 = leechers
        .iter()
        .flatten()
        .map(|v| num(v, "downloaded"))
        .sum();
    let seeder_uploaded = finished[0].as_ref().map_or(0, |v| num(v, "uploaded"));
    let mut verified = 0;
    for p in &peers[1..] {
        if same_bytes(&data, &p.dir.join("demo.bin"))? {
            verified += 1;
        } else {
            eprintln!("demo: {}'s file differs from the source", p.name);
        }
    }
    drop(peers);
    tracker.shutdown();

    let (fs, us, ul) = (
        f as f64,
        args.seed_upload as f64,
        args.leecher_upload as f64,
    );
    let nf = n as f64 * fs;
    // No download caps: d_min is unbounded, its terms vanish.
    let client_server = nf / us;
    let p2p = (fs / us).max(nf / (us + n as f64 * ul));
    let share = given as f64 / downloaded.max(1) as f64;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "summary": true,
                "leechers": n, "size": f, "seed_upload": args.seed_upload, "leecher_upload": args.leecher_upload,
                "elapsed_s": elapsed, "client_server_bound_s": client_server, "p2p_bound_s": p2p,
                "leechers_downloaded": downloaded, "leechers_gave_each_other": given,
                "seeder_uploaded": seeder_uploaded, "leecher_share": share,
                "verified": verified, "all_verified": verified == n,
            })
        );
    } else {
        println!();
        println!(
            "{n} leechers got {} each in {elapsed:.1} s (seeder {}/s, leechers {}/s up)",
            human_bytes(f),
            human_bytes(args.seed_upload),
            human_bytes(args.leecher_upload)
        );
        println!(
            "  client-server lower bound max(N·F/u_s, F/d_min)           = {client_server:.1} s"
        );
        println!("  peer-to-peer lower bound max(F/u_s, F/d_min, N·F/(u_s+Σu_i)) = {p2p:.1} s");
        println!(
            "  leechers gave each other {} of the {} they downloaded ({:.0}%); the seeder uploaded {}",
            human_bytes(given),
            human_bytes(downloaded),
            100.0 * share,
            human_bytes(seeder_uploaded)
        );
        println!("  {verified} of {n} leechers' files are identical to the source");
    }
    if verified != n {
        bail!("{} leechers' files differ from the source", n - verified);
    }
    Ok(())
}
