//! Scale in virtual time: 500 nodes bootstrap from one, then 100 random
//! immutable puts are each read back from another random node. Prints the
//! median and 95th percentile of messages and round trips per lookup, and
//! the memory per node (resident set growth / nodes). Replays from its seed.

mod net;

use net::Net;
use swarm_dht::{DhtConfig, Duration, LookupOutcome, Rng};

fn pct(v: &mut [u32], p: usize) -> u32 {
    v.sort_unstable();
    v[(v.len() - 1) * p / 100]
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * 4
}

#[test]
fn heavy_500_nodes_100_puts_all_read_back() {
    let seed = 500;
    println!("seed {seed}");
    let before = rss_kib();
    let mut net = Net::new(500, seed, DhtConfig::default());
    net.bootstrap_all();
    let after = rss_kib();
    let mut rng = Rng::new(seed);
    let (mut msgs, mut rtts) = (Vec::new(), Vec::new());
    let (mut put_msgs, mut put_rtts) = (Vec::new(), Vec::new());
    for p in 0..100 {
        let writer = rng.below(500) as usize;
        let mut reader = rng.below(500) as usize;
        if reader == writer {
            reader = (reader + 1) % 500;
        }
        let text = format!("value {p} from {writer}");
        let value = format!("{}:{text}", text.len());
        let now = net.now;
        let (id, key) = net.nodes[writer]
            .put_immutable(now, value.clone().into_bytes())
            .unwrap();
        let (LookupOutcome::Put { stored, .. }, s) =
            net.wait_stats(writer, id, Duration::from_secs(60))
        else {
            panic!()
        };
        assert!(stored >= 6, "put {p} stored at {stored}");
        put_msgs.push(s.messages);
        put_rtts.push(s.round_trips);
        let now = net.now;
        let id = net.nodes[reader].get_immutable(now, key);
        let (LookupOutcome::Item(Some(item)), s) =
            net.wait_stats(reader, id, Duration::from_secs(60))
        else {
            panic!("put {p} by node {writer} not read back by node {reader}")
        };
        assert_eq!(item.value, value.as_bytes());
        msgs.push(s.messages);
        rtts.push(s.round_trips);
    }
    net.check_invariants();
    let tables: Vec<usize> = net.nodes.iter().map(|n| n.table(false).len()).collect();
    println!(
        "get: messages median {} p95 {}; round trips median {} p95 {}",
        pct(&mut msgs.clone(), 50),
        pct(&mut msgs, 95),
        pct(&mut rtts.clone(), 50),
        pct(&mut rtts, 95)
    );
    println!(
        "put (get phase + writes): messages median {} p95 {}; round trips median {} p95 {}",
        pct(&mut put_msgs.clone(), 50),
        pct(&mut put_msgs, 95),
        pct(&mut put_rtts.clone(), 50),
        pct(&mut put_rtts, 95)
    );
    println!(
        "table sizes: min {} max {}; memory per node ~{} KiB (RSS growth {} KiB / 500)",
        tables.iter().min().unwrap(),
        tables.iter().max().unwrap(),
        (after.saturating_sub(before)) / 500,
        after.saturating_sub(before)
    );
}
