//! What the simulator must show (issue 12), at sizes that run in seconds.
//! Every assertion is on simulated quantities, never on wall time.

use swarm_sim::{Scenario, bounds, run};

const KIB: u32 = 1024;

/// One seed, no peer uploading: the seed sends N copies, N·F/u_s.
#[test]
fn client_server_takes_n_f_over_u_s() {
    let sc = Scenario {
        leechers: 20,
        pieces: 32,
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
