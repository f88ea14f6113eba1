//! A connection flood against `swarm seed` while a real download runs
//! (issue 8, "Bad input"). 2,000 TCP connections to the seeder's port, from
//! one address and from 20 others: half send handshakes for random
//! info-hashes; some send a good handshake one byte every 250 ms (it would
//! take 17 s, past the handshake deadline); some use the seeder's own peer
//! id; some share one peer id (a collision with a connected peer) and then
//! sit idle; the rest connect and say nothing. Meanwhile a libtorrent
//! leecher on its own 127.0.0.x downloads the torrent.
//!
//! # The memory bound, stated before the run
//! What a connection costs the seeder process:
//! - a *half-open* socket (in the kernel's accept backlog, or accepted and
//!   refused at once): kernel memory only, nothing in the process
//!   ([`HALF_OPEN_BYTES`]);
//! - a *handshaking* connection (accepted, its 68 bytes not all read): its
//!   task, a 4 KiB handshake buffer and the socket's registration, at most
//!   [`HANDSHAKE_BYTES`]; at most [`HANDSHAKES_MAX`] of them (the endpoint's
//!   `handshakes_max`; today's session counts them within its 50);
//! - a *connected* peer: the reader's buffer (`READ_BUF_LEN`, 256 KiB, of
//!   which only what was read is touched), the core's state for it (request
//!   queue ≤ 2,000 × 12 bytes, bitfield, rates) and one channel batch:
//!   at most [`PEER_BYTES`]; at most [`PEERS_MAX`] (the per-torrent cap);
//! - a peer we upload to (only unchoked ones, [`UPLOAD_SLOTS`]): its send
//!   buffer's high mark plus its disk reads in flight, [`UPLOAD_SLOT_BYTES`];
//!   and the torrent's reads in flight, [`READS_BYTES`].
//!
//! So the seeder's peak RSS must stay within its peak before the flood plus
//! `PEERS_MAX × PEER_BYTES + HANDSHAKES_MAX × HANDSHAKE_BYTES + UPLOAD_SLOTS ×
//! UPLOAD_SLOT_BYTES + READS_BYTES + SLACK_BYTES` (≈ 44 MiB), whatever the
//! number of connections thrown at it. `SLACK_BYTES` is the allocator's and
//! the runtime's (per-thread arenas, fragmentation).
//!
//! Asserted: the download completes byte-identical; the seeder's peak RSS
//! (`VmHWM` in /proc/PID/status) stays within the bound; the seeder never
//! exits. The test raises its own open-file limit to its hard limit.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use swarm_testkit::peers::{self, lt_leech, swarm_seed};
use swarm_testkit::proc::wait_listening;
use swarm_testkit::{data, *};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const HALF_OPEN_BYTES: u64 = 0;
const HANDSHAKE_BYTES: u64 = 16 * KIB;
const HANDSHAKES_MAX: u64 = 64;
const PEER_BYTES: u64 = 320 * KIB;
const PEERS_MAX: u64 = 50;
const UPLOAD_SLOTS: u64 = 5;
const UPLOAD_SLOT_BYTES: u64 = 1536 * KIB;
const READS_BYTES: u64 = 4 * MIB;
const SLACK_BYTES: u64 = 16 * MIB;

/// Connections thrown at the seeder.
const FLOOD_CONNECTIONS: usize = 2000;
/// One connection opened every this long (2,000 over 4 s).
const FLOOD_SPACING: Duration = Duration::from_millis(2);
/// A flood connection is held at most this long.
const FLOOD_HOLD: Duration = Duration::from_secs(20);
/// The torrent; the seeder's upload cap makes the download last ~8 s, so it
/// runs through the flood.
const TORRENT_BYTES: u64 = 32 * MIB;
const UPLOAD_CAP: &str = "4M";
/// Bounds a hung run, not a timing assertion.
const DEADLINE: Duration = Duration::from_secs(180);

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

/// `VmHWM` or `VmRSS` of `pid`, bytes; `None` once the process is gone.
fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)?
        .parse()
        .expect("kB figure in /proc/PID/status");
    Some(kib * KIB)
}

/// Raises this process's soft open-file limit to its hard limit: the flood
/// holds up to 2,000 sockets at once.
fn raise_nofile_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let hard = lim.maximum.unwrap_or(u64::MAX);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: lim.maximum,
        },
    )
    .expect("raise RLIMIT_NOFILE to its hard limit");
    assert!(
        hard >= FLOOD_CONNECTIONS as u64 + 256,
        "the hard open-file limit ({hard}) is too low for {FLOOD_CONNECTIONS} connections"
    );
    hard
}

#[derive(Default)]
struct FloodStats {
    connect_failed: AtomicUsize,
    connected: AtomicUsize,
    /// The seeder closed it (EOF or reset) within `FLOOD_HOLD`.
    closed_by_seeder: AtomicUsize,
    /// Still open after `FLOOD_HOLD` (we closed it).
    held: AtomicUsize,
    /// Slow handshakes that got all 68 bytes in (should be none: the
    /// deadline comes first).
    slow_completed: AtomicUsize,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    RandomInfoHash,
    ByteByByte,
    OwnPeerId,
    SharedPeerId,
    Silent,
}

fn kind_of(i: usize) -> Kind {
    match i % 20 {
        0..=9 => Kind::RandomInfoHash,
        10 | 11 => Kind::ByteByByte,
        12 => Kind::OwnPeerId,
        13 | 14 => Kind::SharedPeerId,
        _ => Kind::Silent,
    }
}

/// One address for half the connections (in blocks of 20, so every kind
/// comes from it), 20 others for the rest.
fn source_of(i: usize) -> IpAddr {
    if (i / 20).is_multiple_of(2) {
        IpAddr::from([127, 0, 1, 1])
    } else {
        IpAddr::from([127, 0, 1, 2 + (i / 40 % 20) as u8])
    }
}

fn handshake(info_hash: [u8; 20], peer_id: [u8; 20]) -> Vec<u8> {
    let mut hs = Vec::with_capacity(68);
    hs.push(19);
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0u8; 8]);
    hs.extend_from_slice(&info_hash);
    hs.extend_from_slice(&peer_id);
    hs
}

async fn connect_from(ip: IpAddr, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    match tokio::time::timeout(Duration::from_secs(5), socket.connect(to)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// The seeder's peer id, from its answer to a good handshake.
async fn seeder_peer_id(to: SocketAddr, info_hash: [u8; 20]) -> [u8; 20] {
    let mut s = connect_from(IpAddr::from([127, 0, 1, 250]), to)
        .await
        .expect("probe connects");
    s.write_all(&handshake(info_hash, *b"-XX0001-probeprobe00"))
        .await
        .unwrap();
    let mut answer = [0u8; 68];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut answer))
        .await
        .expect("the seeder answers a good handshake")
        .expect("68 bytes");
    answer[48..68].try_into().unwrap()
}

/// Reads until the seeder closes or `until`; counts which.
async fn hold(mut s: tokio::net::TcpStream, until: tokio::time::Instant, stats: &FloodStats) {
    let mut buf = [0u8; 4096];
    // Bounded: each read either waits (to `until`) or consumes bytes the
    // seeder sent, and it sends a handshake and a bitfield at most.
    for _ in 0..10_000 {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Err(_) => {
                stats.held.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                stats.closed_by_seeder.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(Ok(_)) => {}
        }
    }
}

async fn flood_one(
    i: usize,
    to: SocketAddr,
    info_hash: [u8; 20],
    own_id: [u8; 20],
    stats: Arc<FloodStats>,
) {
    let start = tokio::time::Instant::now();
    let Ok(mut s) = connect_from(source_of(i), to).await else {
        stats.connect_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    stats.connected.fetch_add(1, Ordering::Relaxed);
    let until = start + FLOOD_HOLD;
    let mut random = [0u8; 20];
    let mut seed = 0x5eed ^ i as u64;
    for b in &mut random {
        *b = data::splitmix64(&mut seed) as u8;
    }
    let mut peer_id = *b"-FL0001-000000000000";
    peer_id[12..20].copy_from_slice(&(i as u64).to_be_bytes());
    let wrote = match kind_of(i) {
        Kind::RandomInfoHash => s.write_all(&handshake(random, peer_id)).await,
        Kind::OwnPeerId => s.write_all(&handshake(info_hash, own_id)).await,
        Kind::SharedPeerId => {
            s.write_all(&handshake(info_hash, *b"-FL0001-collidingid!"))
                .await
        }
        Kind::Silent => Ok(()),
        Kind::ByteByByte => {
            let hs = handshake(info_hash, peer_id);
            let mut sent = 0;
            for byte in &hs {
                if s.write_all(&[*byte]).await.is_err() {
                    break;
                }
                sent += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            if sent == hs.len() {
                stats.slow_completed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    };
    if wrote.is_err() {
        stats.closed_by_seeder.fetch_add(1, Ordering::Relaxed);
        return;
    }
    hold(s, until, &stats).await;
}

#[test]
fn heavy_connection_flood_leaves_a_real_download_whole_within_the_memory_bound() {
    if !require_python_libtorrent() {
        return;
    }
    let nofile = raise_nofile_limit();
    let t = TestDir::new("flood");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "flood.bin", TORRENT_BYTES, 88);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), 256 * 1024, &[]);
    let info_hash: [u8; 20] = hex_20(&torrent.info_hash_hex);

    let seed_at = free_addr();
    let mut seeder = swarm_seed(
        &swarm_bin(),
        &t.logs(),
        "seeder",
        &torrent,
        &seed_dir,
        seed_at,
        &SwarmOpts {
            extra: vec!["--max-upload-rate".into(), UPLOAD_CAP.into()],
            env: vec![("RUST_LOG".into(), "warn".into())],
            ..SwarmOpts::default()
        },
    );
    assert!(
        wait_listening(seed_at, Duration::from_secs(60)),
        "the seeder listens"
    );
    let pid = seeder.proc.pid();
    let hwm_before = proc_status_bytes(pid, "VmHWM").expect("the seeder runs");
    let bound = hwm_before
        + PEERS_MAX * PEER_BYTES
        + HANDSHAKES_MAX * (HANDSHAKE_BYTES + HALF_OPEN_BYTES)
        + UPLOAD_SLOTS * UPLOAD_SLOT_BYTES
        + READS_BYTES
        + SLACK_BYTES;

    // The sampler: the seeder's RSS every 100 ms, and whether it is alive.
    let done = Arc::new(AtomicBool::new(false));
    let rss_max = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, rss_max) = (done.clone(), rss_max.clone());
        std::thread::spawn(move || {
            let end = Instant::now() + DEADLINE;
            while !done.load(Ordering::Relaxed) && Instant::now() < end {
                match proc_status_bytes(pid, "VmRSS") {
                    Some(rss) => {
                        rss_max.fetch_max(rss, Ordering::Relaxed);
                    }
                    None => return false,
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            true
        })
    };

    let leech_dir = t.sub("leech");
    let mut leecher = lt_leech(
        &t.logs(),
        "libtorrent",
        &torrent,
        &leech_dir,
        free_addr(),
        &[seed_at],
    );
    let started = Instant::now();
    let stats = Arc::new(FloodStats::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let own_id = rt.block_on(seeder_peer_id(seed_at, info_hash));
    let flood = {
        let stats = stats.clone();
        rt.spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..FLOOD_CONNECTIONS {
                tasks.spawn(flood_one(i, seed_at, info_hash, own_id, stats.clone()));
                tokio::time::sleep(FLOOD_SPACING).await;
            }
            while tasks.join_next().await.is_some() {}
        })
    };
    // The download runs through the flood.
    wait_all_complete(&mut [&mut leecher], DEADLINE);
    let download_s = started.elapsed().as_secs_f64();
    rt.block_on(async {
        tokio::time::timeout(FLOOD_HOLD + Duration::from_secs(30), flood)
            .await
            .expect("the flood ends (every connection is bounded)")
            .unwrap()
    });
    let hwm = proc_status_bytes(pid, "VmHWM").expect("the seeder is still running");
    done.store(true, Ordering::Relaxed);
    let alive_throughout = sampler.join().unwrap();
    assert!(seeder.proc.try_exit().is_none(), "the seeder exited");
    assert!(alive_throughout, "the seeder's process went away");
    peers::assert_alive(&mut seeder);
    assert_same_tree(&content, &leecher.content(&torrent));

    let s = &stats;
    let line = format!(
        "flood: {FLOOD_CONNECTIONS} connections (nofile {nofile}): {} connected, {} connect failures, \
         {} closed by the seeder, {} held {FLOOD_HOLD:?}, {} slow handshakes completed; \
         download {download_s:.1} s; seeder VmHWM {:.1} MiB (before the flood {:.1} MiB, max VmRSS sampled {:.1} MiB), bound {:.1} MiB",
        s.connected.load(Ordering::Relaxed),
        s.connect_failed.load(Ordering::Relaxed),
        s.closed_by_seeder.load(Ordering::Relaxed),
        s.held.load(Ordering::Relaxed),
        s.slow_completed.load(Ordering::Relaxed),
        hwm as f64 / MIB as f64,
        hwm_before as f64 / MIB as f64,
        rss_max.load(Ordering::Relaxed) as f64 / MIB as f64,
        bound as f64 / MIB as f64,
    );
    println!("{line}");
    assert!(hwm <= bound, "peak RSS over the stated bound: {line}");
    assert_eq!(
        s.slow_completed.load(Ordering::Relaxed),
        0,
        "a handshake sent byte by byte outlived the handshake deadline: {line}"
    );
    seeder.proc.kill();
    leecher.proc.kill();
}

fn hex_20(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex info-hash");
    }
    out
}
