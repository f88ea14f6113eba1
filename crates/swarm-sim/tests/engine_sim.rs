//! Whole cores against each other in memory: random interleavings of
//! deliveries, storage completions, time and dropped connections, until
//! every leecher holds the exact bytes of the seeder. Bounded in steps.

use proptest::prelude::*;
use swarm_engine::{Duration, TorrentConfig};
use swarm_sim::harness::*;

const STEPS_MAX: usize = 400_000;

/// Runs until all nodes are complete; returns the steps taken.
/// `churn`: per-step chance (in 1/10 000) to drop a random connection.
fn run(sim: &mut Sim, churn: usize) -> usize {
    let n = sim.nodes.len();
    for step in 0..STEPS_MAX {
        if sim.nodes.iter().all(|node| node.core.is_complete()) {
            return step;
        }
        sim.step();
        if churn > 0 && sim.rng.below(10_000) < churn {
            let a = sim.rng.below(n);
            let b = sim.rng.below(n);
            if a != b && sim.connected(a, b) {
                sim.disconnect(a, b);
            }
        }
        // Dropped connections come back after a while (not banned ones).
        if sim.rng.below(200) == 0 {
            for a in 0..n {
                for b in a + 1..n {
                    if !sim.connected(a, b) && !sim.banned(a, b) {
                        sim.connect(a, b);
                    }
                }
            }
        }
        sim.check();
    }
    panic!("not complete after {STEPS_MAX} steps");
}

fn assert_all_correct(sim: &Sim) {
    for (i, node) in sim.nodes.iter().enumerate() {
        assert!(node.core.is_complete(), "node {i}");
        assert!(node.disk == node.truth, "node {i} bytes differ");
    }
}

fn full_mesh(sim: &mut Sim) {
    let n = sim.nodes.len();
    for a in 0..n {
        for b in a + 1..n {
            sim.connect(a, b);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// One seeder, one leecher: the leecher ends with the seeder's bytes.
    #[test]
    fn pair_completes(
        seed in any::<u64>(),
        pieces in 1u32..24,
        piece_blocks in prop::sample::select(vec![1u32, 2, 3, 8]),
        tail in 0u32..K,
        fast in any::<bool>(),
        churn in prop::sample::select(vec![0usize, 5, 30]),
    ) {
        let piece_len = piece_blocks * K;
        let len = u64::from(pieces - 1) * u64::from(piece_len) + u64::from(tail.max(1));
        let truth = content(len, seed as u8);
        let config = TorrentConfig::default();
        let seeder = Node::new(config.clone(), &truth, piece_len, true, seed);
        let leecher = Node::new(config, &truth, piece_len, false, seed ^ 1);
        let mut sim = Sim::new(vec![seeder, leecher], seed, fast);
        sim.connect(1, 0);
        run(&mut sim, churn);
        assert_all_correct(&sim);
        let s = sim.nodes[1].core.stats(sim.now);
        prop_assert!(s.downloaded >= len);
        prop_assert_eq!(s.hash_failures, 0);
    }

    /// One seeder, three leechers in a full mesh: everyone completes, and
    /// leechers also trade pieces among themselves.
    #[test]
    fn swarm_of_four_completes(seed in any::<u64>(), fast in any::<bool>()) {
        let piece_len = 2 * K;
        let truth = content(u64::from(piece_len) * 30 + 777, seed as u8);
        let config = TorrentConfig::default();
        let mut nodes = vec![Node::new(config.clone(), &truth, piece_len, true, seed)];
        for i in 1..4 {
            nodes.push(Node::new(config.clone(), &truth, piece_len, false, seed.wrapping_add(i)));
        }
        let mut sim = Sim::new(nodes, seed, fast);
        full_mesh(&mut sim);
        run(&mut sim, 5);
        assert_all_correct(&sim);
    }
}

/// A hostile seeder corrupts every block it uploads: the leecher still ends
/// with the right bytes (from the honest seeder) and bans the hostile one.
#[test]
fn hostile_seeder_is_banned_and_data_is_correct() {
    for seed in 0..8u64 {
        let piece_len = 2 * K;
        let truth = content(u64::from(piece_len) * 40, 9);
        let config = TorrentConfig::default();
        let honest = Node::new(config.clone(), &truth, piece_len, true, seed);
        let mut hostile = Node::new(config.clone(), &truth, piece_len, true, seed + 100);
        hostile.corrupt_uploads = true;
        let leecher = Node::new(config, &truth, piece_len, false, seed + 200);
        let mut sim = Sim::new(vec![honest, hostile, leecher], seed, true);
        sim.connect(2, 0);
        sim.connect(2, 1);
        run(&mut sim, 0);
        let leecher = &sim.nodes[2];
        assert!(leecher.core.is_complete());
        assert!(leecher.disk == leecher.truth, "seed {seed}");
        assert!(
            leecher.verified_bad > 0,
            "seed {seed}: the hostile peer sent nothing?"
        );
        assert!(
            sim.bans.contains(&(2, 1)),
            "seed {seed}: hostile not banned"
        );
        assert!(
            !sim.bans.contains(&(2, 0)),
            "seed {seed}: honest peer banned"
        );
    }
}

/// With the clock standing still apart from the random advances, a seeder
/// feeding one leecher grows the pipeline beyond `queue_min`.
#[test]
fn pipeline_grows_on_a_fast_link() {
    let piece_len = 16 * K;
    let truth = content(u64::from(piece_len) * 64, 1);
    let config = TorrentConfig::default();
    let seeder = Node::new(config.clone(), &truth, piece_len, true, 1);
    let leecher = Node::new(config.clone(), &truth, piece_len, false, 2);
    let mut sim = Sim::new(vec![seeder, leecher], 3, true);
    sim.connect(1, 0);
    let mut max_in_flight = 0;
    for _ in 0..20_000 {
        // Deliver and serve everything at once: an infinitely fast link.
        let mut progress = true;
        while progress {
            progress = sim.deliver(0, 1) | sim.deliver(1, 0);
            for i in 0..2 {
                if !sim.nodes[i].jobs.is_empty() {
                    sim.nodes[i].run_all_jobs(sim.now);
                    sim.pump(i);
                    progress = true;
                }
            }
            if let Some(p) = sim.nodes[1].core.peer_stats(sim.now).first() {
                max_in_flight = max_in_flight.max(p.requests_in_flight);
            }
        }
        if sim.nodes[1].core.is_complete() {
            break;
        }
        sim.advance(Duration::from_millis(1));
    }
    assert!(sim.nodes[1].core.is_complete());
    assert!(sim.nodes[1].disk == truth);
    assert!(
        max_in_flight > 4 * config.queue_min,
        "pipeline stayed at {max_in_flight}"
    );
}
