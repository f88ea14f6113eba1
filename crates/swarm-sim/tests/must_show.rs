//! What the simulator must show (issue 12), at sizes that run in seconds.
//! Every assertion is on simulated quantities, never on wall time.

use swarm_sim::{Scenario, bounds, run};

const KIB: u32 = 1024;

/// One seed, no peer uploading: the seed sends N copies, N·F/u_s. More
/// clients than the server's connection cap (50 per torrent), so some wait
/// for a slot: the server's uplink must not idle while they get in.
#[test]
fn client_server_takes_n_f_over_u_s() {
    let sc = Scenario {
        leechers: 100,
        pieces: 8,
        piece_len: 256 * KIB,
        peer_up: 0.0,
        client_server: true,
        check_every: 1000,
        ..Scenario::default()
    };
    let (cs, _) = bounds::of(&sc);
    let out = run(sc.clone());
    let t = swarm_sim::outcome::secs(out.last_completion.expect("all complete"));
    println!(
        "client-server: {t:.2} s, N·F/u_s = {cs:.2} s, ratio {:.4}",
        t / cs
    );
    assert!((t / cs - 1.0).abs() <= 0.01, "{t} vs {cs}");
}

/// The same seed gives the same CSV bytes; another seed different ones.
#[test]
fn same_seed_same_csv_other_seed_other_csv() {
    let sc = Scenario {
        leechers: 30,
        pieces: 24,
        check_every: 500,
        ..Scenario::default()
    };
    let a = run(sc.clone());
    let b = run(sc.clone());
    let c = run(Scenario { seed: 2, ..sc });
    assert_eq!(a.peers_csv(), b.peers_csv());
    assert_eq!(a.samples_csv(), b.samples_csv());
    assert_ne!(a.peers_csv(), c.peers_csv());
}

fn secs(t: Option<swarm_engine::Instant>) -> f64 {
    t.map_or(f64::INFINITY, swarm_sim::outcome::secs)
}

/// A homogeneous flash crowd (u_i = u_s, d = 4u): the P2P bound is F/u_s,
/// so the seed's first copy is the whole game. The last completion against
/// the bound, and the upload utilisation, with a plain seed and with a
/// super-seed (BEP 16).
#[test]
fn heavy_homogeneous_swarm_near_the_p2p_bound() {
    let base = Scenario {
        leechers: 100,
        pieces: 800,
        piece_len: 32 * KIB,
        check_every: 500_000,
        ..Scenario::default()
    };
    let (_, bound) = bounds::of(&base);
    let mut results = Vec::new();
    for super_seeding in [false, true] {
        let sc = Scenario {
            engine: swarm_engine::TorrentConfig {
                super_seeding,
                ..base.engine.clone()
            },
            ..base.clone()
        };
        let out = run(sc);
        let t = secs(out.last_completion);
        println!(
            "super-seeding {super_seeding}: last completion {t:.2} s, bound {bound:.2} s, ratio {:.3}, utilisation {:.3}, first copy out at {:.3}x F/u_s",
            t / bound,
            out.upload_utilisation(),
            secs(out.first_copy_at) / bound
        );
        results.push((
            t / bound,
            out.upload_utilisation(),
            secs(out.first_copy_at) / bound,
        ));
    }
    // The super-seed's first copy has no piece twice: the swarm holds
    // every piece within 2% of F/u_s (a plain seed: ~1.18x), and the
    // swarm finishes sooner and uses more of its upload. (Issue 12's
    // 1.10x and 90% are for 1,000 peers and a longer file: see the
    // 1,000-leecher test below.)
    let (plain, sup) = (results[0], results[1]);
    assert!(sup.0 < plain.0 && sup.1 > plain.1, "{results:?}");
    assert!(sup.2 <= 1.02, "{results:?}");
    assert!(sup.0 <= 1.20 && sup.1 >= 0.83, "{results:?}");
}

/// Issue 12's homogeneous swarm at the size: 1,000 leechers and a
/// super-seed, u_i = u_s = 1 MiB/s, d = 4u, all arriving at once, 1,600
/// pieces of 64 KiB (F/u_s = 100 s). The last completion within 1.10x of
/// the P2P bound and the upload utilisation at least 90%: 1.069x and 93.7%
/// with this seed (seeds 1-5: 1.067-1.080x, 92.8-94.0%,
/// `bench/sim-flash-crowd.sh`; 1.084-1.094x before session 10's riders).
/// What is left to the bound: the ramp (nobody holds a piece at first;
/// each hop of the first pieces takes ~0.4 s, ~3 s in all), the uplinks' idle share while peers hold few pieces, and the
/// last arrivals' fewer connections (see ARCHITECTURE.md). About 2.5 CPU
/// minutes: the heaviest test, alone in the serial group.
#[test]
fn heavy_homogeneous_flash_crowd_of_1000_within_1_10_of_the_p2p_bound() {
    let sc = Scenario {
        leechers: 1000,
        pieces: 1600,
        piece_len: 64 * KIB,
        check_every: 5_000_000,
        engine: swarm_engine::TorrentConfig {
            super_seeding: true,
            ..Default::default()
        },
        ..Scenario::default()
    };
    let (_, bound) = bounds::of(&sc);
    let out = run(sc);
    let t = secs(out.last_completion);
    let (ratio, util) = (t / bound, out.upload_utilisation());
    println!(
        "1,000 leechers: last completion {t:.2} s, P2P bound {bound:.2} s, ratio {ratio:.3}, upload utilisation {util:.3}"
    );
    assert_eq!(out.completed(), 1000);
    assert!(
        ratio <= 1.10 && util >= 0.90,
        "ratio {ratio}, utilisation {util}"
    );
}

/// The seed leaves after uploading exactly one copy: it super-seeds, so
/// that copy holds every piece once (it leaves when the last block it sent
/// is delivered). Rarest first then completes the swarm, and keeps more
/// copies of its rarest piece than random choice, which may lose pieces.
#[test]
fn rarest_first_survives_the_seed_leaving() {
    let base = Scenario {
        leechers: 60,
        pieces: 200,
        piece_len: 256 * KIB,
        seed_departure: swarm_sim::SeedDeparture::AfterCopies(1.0),
        stall_max: swarm_engine::Duration::from_secs(60),
        check_every: 100_000,
        ..Scenario::default()
    };
    let mut res = Vec::new();
    for picking in [
        swarm_engine::PickStrategy::RarestFirst,
        swarm_engine::PickStrategy::Random,
    ] {
        let out = run(Scenario {
            engine: swarm_engine::TorrentConfig {
                picking,
                super_seeding: true,
                ..base.engine.clone()
            },
            ..base.clone()
        });
        let rarest_min_after_seed = out
            .samples
            .iter()
            .filter(|s| s.present <= base.leechers)
            .map(|s| s.rarest_copies)
            .min()
            .expect("samples after the seed left");
        println!(
            "{picking:?}: completed {} of {}, pieces lost {}, rarest copies after the seed left {}, first copy {:.1} s",
            out.completed(),
            base.leechers,
            out.pieces_lost_at_end,
            rarest_min_after_seed,
            secs(out.first_copy_at)
        );
        // One copy, every piece once.
        assert!(
            out.seed_blocks.iter().all(|&b| b == 16),
            "{:?}",
            out.seed_blocks
        );
        res.push((out, rarest_min_after_seed));
    }
    let ((rarest, rarest_min), (random, random_min)) = (&res[0], &res[1]);
    assert_eq!(rarest.completed(), base.leechers, "rarest first completes");
    assert_eq!(rarest.pieces_lost_at_end, 0);
    assert!(
        random.pieces_lost_at_end > 0 || random_min < rarest_min,
        "random: lost {}, rarest copies {random_min} against {rarest_min}",
        random.pieces_lost_at_end
    );
}

/// 20% free riders under tit-for-tat, leechers leaving when done: the free
/// riders' median download time is at least twice the contributors', as
/// the median over nine seeds of each run's ratio.
///
/// Why this size and nine seeds: one run's ratio is a property of its order
/// of events as much as of the choker. At 50 leechers and 128 pieces (the
/// test until session 10) seed 1 gave 3.26x while seeds 1-12 gave 0.99x to
/// 3.40x, median 1.36x: those downloads take ~45 s, less than the 60 s
/// after which a peer that never sends a block is snubbed (out of the
/// regular slots), and the swarm is seed-bound, so riders live off the
/// contributors' idle upload (see ARCHITECTURE.md, `crates/swarm-sim`).
/// At 1,024 pieces (256 MiB) the contributors take ~5.5 minutes, well past
/// the snub timeout, and the seed-bound start is a small part of that:
/// seeds 1-9 give 1.59x to 3.52x, median 2.76x (1.70x to 4.64x, median
/// 2.73x, before the simulator let requests overtake queued blocks; which
/// of the two causes matters more was not measured). Heavy: nine runs of
/// 50 engines over 1,024 pieces, ~15 s in the test profile.
#[test]
fn heavy_free_riders_wait_at_least_twice_as_long() {
    let mut ratios = Vec::new();
    for seed in 1..=9 {
        let sc = Scenario {
            leechers: 50,
            pieces: 1024,
            piece_len: 256 * KIB,
            free_riders: 0.2,
            departure: swarm_sim::Departure::OnCompletion,
            check_every: 1_000_000,
            seed,
            ..Scenario::default()
        };
        let out = run(sc);
        let c = out.download_secs(|p| !p.free_rider);
        let r = out.download_secs(|p| p.free_rider);
        assert_eq!(
            (c.len(), r.len()),
            (40, 10),
            "seed {seed}: everyone completes"
        );
        let (mc, mr) = (
            swarm_sim::quantile(&c, 0.5).expect("contributors completed"),
            swarm_sim::quantile(&r, 0.5).expect("free riders completed"),
        );
        println!(
            "seed {seed}: contributors median {mc:.1} s, free riders median {mr:.1} s, ratio {:.2}",
            mr / mc
        );
        ratios.push(mr / mc);
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!("median ratio over seeds 1-9: {median:.2} (sorted: {ratios:.2?})");
    assert!(median >= 2.0, "median ratio {median:.2}: {ratios:.2?}");
}
