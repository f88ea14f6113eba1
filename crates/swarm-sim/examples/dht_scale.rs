//! The simulated DHT's cost: one DHT of N nodes, its lookups without and
//! with churn, reporting events, events per second, peak memory and the
//! memory per node.
//!
//! `cargo run --release -p swarm-sim --example dht_scale -- NODES [LOOKUPS [SEED [SESSION_MIN]]]`
//! (SESSION_MIN 0: no churn phase).

use swarm_sim::dht::{DhtScenario, DhtSim, Kind, percentile};

fn status_kib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let session = arg(3, 60);
    let sc = DhtScenario {
        nodes: arg(0, 1000) as usize,
        lookups: arg(1, 100) as usize,
        seed: arg(2, 1),
        session: (session > 0).then(|| swarm_dht::Duration::from_secs(session * 60)),
        ..DhtScenario::default()
    };
    let before = status_kib("VmRSS:");
    // A benchmark harness, not engine code: it may read the wall clock.
    #[allow(clippy::disallowed_methods)]
    let start = std::time::Instant::now();
    let sim = DhtSim::new(sc.clone());
    let out = sim.run(|_| {});
    let wall = start.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    println!(
        "nodes {}: wall {:.2} s, {} events, {:.0} events/s, {} datagrams, peak RSS {:.0} MiB, ~{:.1} KiB a node, {} departures, {} abandoned",
        sc.nodes,
        wall,
        out.events,
        out.events as f64 / wall,
        out.datagrams,
        peak / 1024.0,
        (peak - before) / sc.nodes as f64,
        out.departures,
        out.abandoned
    );
    for churn in [false, true] {
        for kind in [Kind::Put, Kind::Get, Kind::FindNode] {
            let r = out.of(kind, churn);
            if r.is_empty() {
                continue;
            }
            let ok = r.iter().filter(|x| x.ok).count();
            let mut m: Vec<u32> = r.iter().map(|x| x.messages).collect();
            let mut t: Vec<u32> = r.iter().map(|x| x.round_trips).collect();
            println!(
                "  {kind:?} churn={churn}: {ok}/{} ok, messages median {:?} p95 {:?}, round trips median {:?} p95 {:?}",
                r.len(),
                percentile(&mut m, 0.5),
                percentile(&mut m, 0.95),
                percentile(&mut t, 0.5),
                percentile(&mut t, 0.95)
            );
        }
    }
}
