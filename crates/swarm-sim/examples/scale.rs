//! The simulator's scale benchmark: one homogeneous flash crowd of N
//! leechers and one seed over a torrent of P pieces (256 KiB, 16 KiB
//! blocks), reporting wall and CPU time, events per CPU-second, CPU time
//! per 16 KiB block delivered, and peak memory.
//!
//! `cargo run --release -p swarm-sim --example scale -- LEECHERS PIECES [PIECE_KIB [SEED [SUPER_SEED]]]`
//! (SUPER_SEED 1: the seed super-seeds). Diagnostics from the environment:
//! `SAMPLE_MS` (sample interval), `EVERY` (print every n-th sample),
//! `SEED_COPIES` (the seed leaves after this many copies), `PICK=random`,
//! `SLOTS` (regular unchoke slots), `UP_KIB` (every upload, KiB/s; downloads 4x).
//! (`bench/sim-scale.sh` runs the two sizes).

use swarm_sim::{Scenario, Simulation, bounds};

/// mimalloc, not the system's malloc: it asks the kernel for transparent
/// huge pages (this machine's THP setting is `madvise`, so glibc's heap
/// gets none), and a run's hundreds of MiB of small records then cost far
/// fewer TLB misses: every event touches a few connection, core and peer
/// records scattered over the heap. Same outcome, bit for bit; 16-26% less
/// CPU (1,000 leechers x 300 pieces: 42.1 CPU-s against 50.2 and 52.1;
/// 300 x 800 x 64 KiB: 10.1 against 13.7), peak RSS 16-30% higher. (glibc
/// with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` measured the same as
/// mimalloc.) `swarm sim`, in the main binary, keeps the system allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// This thread's time on a core and waiting for one, in seconds, from
/// `/proc/self/schedstat` (ns): on a shared machine the CPU time is the
/// figure to compare, and the wait says how loaded the machine was.
fn cpu_and_wait_secs() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/schedstat").unwrap_or_default();
    let mut f = s
        .split_whitespace()
        .map(|x| x.parse::<f64>().map_or(f64::NAN, |ns| ns / 1e9));
    (f.next().unwrap_or(f64::NAN), f.next().unwrap_or(f64::NAN))
}

/// A diagnostic setting from the environment, if set and well formed.
fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let sc = Scenario {
        leechers: arg(0, 1000) as usize,
        pieces: arg(1, 1000) as u32,
        piece_len: arg(2, 256) as u32 * 1024,
        seed: arg(3, 1),
        engine: swarm_engine::TorrentConfig {
            super_seeding: arg(4, 0) != 0,
            ..Default::default()
        },
        ..Scenario::default()
    };
    let mut sc = sc;
    if let Ok(c) = std::env::var("SEED_COPIES") {
        sc.seed_departure = swarm_sim::SeedDeparture::AfterCopies(c.parse().unwrap_or(1.0));
        sc.stall_max = swarm_engine::Duration::from_secs(60);
    }
    if std::env::var("PICK").is_ok_and(|p| p == "random") {
        sc.engine.picking = swarm_engine::PickStrategy::Random;
    }
    if let Some(kib) = env::<f64>("UP_KIB") {
        (sc.seed_up, sc.peer_up) = (kib * 1024.0, kib * 1024.0);
        (sc.seed_down, sc.peer_down) = (4.0 * kib * 1024.0, 4.0 * kib * 1024.0);
    }
    if let Some(n) = env("CONNS") {
        sc.endpoint.torrent_connections_max = n;
    }
    if let Some(n) = env("NUMWANT") {
        sc.numwant = n;
    }
    if let Some(n) = env("OUT_PCT") {
        sc.endpoint.torrent_outgoing_percent = n;
    }
    if let Some(s) = env("ANNOUNCE_S") {
        sc.announce_interval = swarm_engine::Duration::from_secs(s);
    }
    if let Some(n) = env("SLOTS") {
        sc.engine.choker.unchoke_slots = n;
    }
    if let Ok(ms) = std::env::var("SAMPLE_MS") {
        sc.sample_interval = swarm_engine::Duration::from_millis(ms.parse().unwrap_or(5000));
    }
    let (cs, p2p) = bounds::of(&sc);
    // A benchmark harness, not engine code: it may read the wall clock.
    #[allow(clippy::disallowed_methods)]
    let start = std::time::Instant::now();
    let (cpu0, wait0) = cpu_and_wait_secs();
    let out = Simulation::new(sc.clone()).run(|_| {});
    let wall = start.elapsed().as_secs_f64();
    let (cpu1, wait1) = cpu_and_wait_secs();
    let (cpu, wait) = (cpu1 - cpu0, wait1 - wait0);
    let last = out
        .last_completion
        .map_or(f64::NAN, swarm_sim::outcome::secs);
    println!(
        "leechers {} pieces {} x {} KiB: wall {:.2} s, cpu {:.2} s (waited {:.2} s for a core), {} events, {:.0} events/cpu-s, {:.2} us/block, peak RSS {:.0} MiB, queue peak {}",
        sc.leechers,
        sc.pieces,
        sc.piece_len / 1024,
        wall,
        cpu,
        wait,
        out.events,
        out.events as f64 / cpu,
        cpu * 1e6 / (out.uploaded as f64 / f64::from(swarm_wire::peer::BLOCK_LEN)).max(1.0),
        peak_rss_mib(),
        out.events_peak
    );
    println!(
        "simulated: last completion {:.1} s ({} of {} completed), P2P bound {:.1} s (ratio {:.3}), client-server bound {:.1} s, upload utilisation {:.3}",
        last,
        out.completed(),
        sc.leechers,
        p2p,
        last / p2p,
        cs,
        out.upload_utilisation()
    );
    let seed_up: u64 = out
        .peers
        .iter()
        .filter(|p| p.initial_seed)
        .map(|p| p.uploaded)
        .sum();
    let wasted: u64 = out.peers.iter().map(|p| p.wasted).sum();
    println!(
        "seeds uploaded {:.3} copies; the leechers held every piece at {:.1} s ({:.3}x F/u_s); duplicate bytes {:.4} of uploaded",
        seed_up as f64 / sc.file_bytes() as f64,
        out.first_copy_at.map_or(f64::NAN, swarm_sim::outcome::secs),
        out.first_copy_at.map_or(f64::NAN, swarm_sim::outcome::secs)
            / (sc.file_bytes() as f64 / (sc.seed_up * sc.seeds as f64)),
        wasted as f64 / out.uploaded.max(1) as f64
    );
    println!(
        "pieces the seeds never uploaded {}, pieces lost at the end {}, rarest copies min after the seeds left {:?}",
        out.seed_blocks.iter().filter(|&&b| b == 0).count(),
        out.pieces_lost_at_end,
        out.samples
            .iter()
            .filter(|s| s.present <= sc.leechers)
            .map(|s| s.rarest_copies)
            .min()
    );
    let t = out.download_secs(|_| true);
    let q = |x| swarm_sim::quantile(&t, x).unwrap_or(f64::NAN);
    println!(
        "download times: min {:.1} median {:.1} p90 {:.1} max {:.1} s",
        q(0.0),
        q(0.5),
        q(0.9),
        q(1.0)
    );
    // The last ten to complete: which peers straggle (index = join order)
    // and what they gave.
    let mut done: Vec<&swarm_sim::PeerOutcome> =
        out.peers.iter().filter(|p| !p.initial_seed).collect();
    done.sort_by_key(|p| std::cmp::Reverse(p.completed));
    let last10: Vec<String> = done
        .iter()
        .take(10)
        .map(|p| {
            format!(
                "#{} {:.1} s up {:.2}",
                p.index,
                p.download_secs().unwrap_or(f64::NAN),
                p.uploaded as f64 / sc.file_bytes() as f64
            )
        })
        .collect();
    println!(
        "last to complete (index, time, uploaded copies): {}",
        last10.join(", ")
    );
    let every = env("EVERY").unwrap_or((out.samples.len() / 12).max(1));
    for s in out.samples.iter().step_by(every) {
        println!(
            "  t {:>7.1} s: completed {:>5}, rarest copies {:>5}, mean copies {:>8.1}, uploaded {:>8.1} MiB",
            swarm_sim::outcome::secs(s.at),
            s.completed,
            s.rarest_copies,
            s.mean_copies,
            s.uploaded as f64 / 1048576.0
        );
    }
}
