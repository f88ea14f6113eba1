//! Scale over real UDP: 500 swarm DHT nodes in this process, each on its
//! own loopback address (127.0.1.1 … 127.0.2.244), bootstrap from the
//! first; then 100 random immutable puts are each read back from another
//! random node. All must be found. Prints the median and 95th percentile of
//! messages and round trips per lookup and the memory per node (resident
//! set growth over the 500 nodes: engine, task, socket).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use swarm_dht::{DhtConfig, LookupOutcome, Rng};
use swarm_net::dht::DhtHandle;

const NODES: usize = 500;
const PUTS: usize = 100;

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

fn addr(i: usize) -> SocketAddr {
    let n = 256 + 1 + i as u32; // 127.0.1.1 onwards
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, (n >> 8) as u8, n as u8)),
        0,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_dht_500_udp_nodes_100_puts_all_read_back() {
    let seed = 500u64;
    println!("seed {seed}");
    let before = rss_kib();
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let h = DhtHandle::start(addr(i), DhtConfig::default(), seed * 1000 + i as u64)
            .await
            .expect("bind a loopback address");
        nodes.push(h);
    }
    let first = nodes[0].local_addr();
    // Bootstrap in waves of 25 at once (each from the first node).
    for wave in nodes[1..].chunks(25) {
        let joins = wave.iter().map(|n| {
            let n = n.clone();
            async move { n.bootstrap(vec![first]).await }
        });
        for r in futures_join(joins).await {
            let (outcome, _) = r.expect("node running");
            assert!(matches!(outcome, LookupOutcome::Nodes(ref n) if !n.is_empty()));
        }
    }
    nodes[0].bootstrap(vec![]).await.expect("node running");
    let after = rss_kib();
    let mut rng = Rng::new(seed);
    let (mut msgs, mut rtts, mut put_msgs, mut put_rtts) = (vec![], vec![], vec![], vec![]);
    for p in 0..PUTS {
        let w = rng.below(NODES as u64) as usize;
        let mut r = rng.below(NODES as u64) as usize;
        if r == w {
            r = (r + 1) % NODES;
        }
        let text = format!("value {p} from node {w}");
        let value = format!("{}:{text}", text.len()).into_bytes();
        let v = value.clone();
        let (outcome, s) = nodes[w]
            .lookup(move |dht, now| dht.put_immutable(now, v).ok().map(|x| x.0))
            .await
            .expect("put");
        let LookupOutcome::Put { target, stored, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(stored >= 6, "put {p}: stored at {stored}");
        put_msgs.push(s.messages);
        put_rtts.push(s.round_trips);
        let (outcome, s) = nodes[r]
            .lookup(move |dht, now| Some(dht.get_immutable(now, target)))
            .await
            .expect("get");
        let LookupOutcome::Item(Some(item)) = outcome else {
            panic!("put {p} by node {w} not read back by node {r}: {outcome:?}")
        };
        assert_eq!(item.value, value);
        msgs.push(s.messages);
        rtts.push(s.round_trips);
    }
    let mut sizes = Vec::new();
    for n in &nodes {
        let s = n.stats().await.expect("stats");
        sizes.push(s.nodes_v4);
    }
    println!(
        "get: messages median {} p95 {}; round trips median {} p95 {}",
        pct(&mut msgs.clone(), 50),
        pct(&mut msgs, 95),
        pct(&mut rtts.clone(), 50),
        pct(&mut rtts, 95)
    );
    println!(
        "put: messages median {} p95 {}; round trips median {} p95 {}",
        pct(&mut put_msgs.clone(), 50),
        pct(&mut put_msgs, 95),
        pct(&mut put_rtts.clone(), 50),
        pct(&mut put_rtts, 95)
    );
    println!(
        "tables: min {} max {} nodes; memory ~{} KiB per node (RSS +{} KiB for {NODES})",
        sizes.iter().min().unwrap(),
        sizes.iter().max().unwrap(),
        after.saturating_sub(before) / NODES as u64,
        after.saturating_sub(before)
    );
}

/// Awaits every future (in order), concurrently.
async fn futures_join<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("join"));
    }
    out
}
