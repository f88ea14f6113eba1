//! `swarm sim dht` at small sizes: real swarm DHT engines in virtual time.
//! Simulated quantities only: lookups of stored keys all succeed without
//! churn, round trips grow like log N (not like N), and a run replays from
//! its seed.

use swarm_sim::dht::{self, DhtScenario, Kind};

fn mean(v: impl Iterator<Item = u32>) -> f64 {
    let v: Vec<u32> = v.collect();
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

#[test]
fn stored_keys_are_all_found_and_round_trips_grow_like_log_n() {
    let mut rtts = Vec::new();
    for n in [64usize, 1024] {
        let out = dht::run(
            DhtScenario {
                seed: 7,
                nodes: n,
                lookups: 30,
                session: None,
                ..DhtScenario::default()
            },
            |_| {},
        );
        let puts = out.of(Kind::Put, false);
        let gets = out.of(Kind::Get, false);
        let finds = out.of(Kind::FindNode, false);
        assert_eq!((puts.len(), gets.len(), finds.len()), (30, 30, 30), "N={n}");
        assert!(puts.iter().all(|r| r.ok), "N={n}: a put stored nowhere");
        assert!(
            gets.iter().all(|r| r.ok),
            "N={n}: {} of 30 stored keys not found",
            gets.iter().filter(|r| !r.ok).count()
        );
        assert_eq!(out.departures, 0);
        let rtt = mean(finds.iter().map(|r| r.round_trips));
        let msgs = mean(finds.iter().map(|r| r.messages));
        println!("N={n}: find_node round trips mean {rtt:.2}, messages mean {msgs:.1}");
        rtts.push((n as f64, rtt, msgs));
    }
    let (n0, r0, m0) = rtts[0];
    let (n1, r1, m1) = rtts[1];
    // 16 times the nodes: round trips grow, by at most log2(16) = 4 (one
    // bit of the distance resolved per hop at worst), and stay within
    // log2(N) each; messages grow far less than 16-fold.
    assert!(r1 > r0, "round trips did not grow: {r0:.2} -> {r1:.2}");
    assert!(r1 - r0 <= (n1 / n0).log2(), "{r0:.2} -> {r1:.2}");
    assert!(r0 <= n0.log2() && r1 <= n1.log2());
    assert!(m1 < 2.0 * m0, "messages {m0:.1} -> {m1:.1}");
}

#[test]
fn the_same_seed_gives_the_same_csv_and_churn_replaces_nodes() {
    let base = DhtScenario {
        seed: 3,
        lookups: 10,
        session: Some(swarm_dht::Duration::from_secs(600)),
        warmup: swarm_dht::Duration::from_secs(60),
        ..DhtScenario::default()
    };
    let sizes = [100, 200];
    let csv = |sc: &DhtScenario| {
        dht::experiment(sc, &sizes, &mut |_, _, _| {}).tables[0]
            .1
            .clone()
    };
    let a = csv(&base);
    assert_eq!(a, csv(&base));
    assert_ne!(
        a,
        csv(&DhtScenario {
            seed: 4,
            ..base.clone()
        })
    );
    // Header, then 2 sizes x 2 phases x 2 lookup kinds; churn rows count
    // the departures (about N x (60 s + the phase) / 600 s).
    let rows: Vec<&str> = a.lines().skip(1).collect();
    assert_eq!(rows.len(), 8, "{a}");
    let departures: Vec<u64> = rows
        .iter()
        .filter(|r| r.split(',').nth(1) == Some("1"))
        .map(|r| r.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(departures.iter().all(|&d| d > 5), "{a}");
}
