//! The experiments behind `swarm sim`: each runs a family of scenarios
//! through the real engines and returns CSV tables and charts.

use std::fmt::Write as _;

use swarm_engine::{Choking, Duration, PickStrategy, TorrentConfig};

use crate::chart::{Chart, Series, cdf};
use crate::outcome::{Outcome, quantile, secs};
use crate::scenario::{Departure, Scenario, SeedDeparture};
use crate::{Simulation, bounds};

/// What an experiment produced: named CSV tables, charts, and a summary.
pub struct Report {
    /// (file stem suffix, CSV text).
    pub tables: Vec<(String, String)>,
    /// (file stem suffix, chart).
    pub charts: Vec<(String, Chart)>,
    pub summary: String,
}

/// Progress: (runs finished, runs in all, fraction of the current run).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, f64);

/// Runs one scenario, stopping it at [`time_limit`] if it never completes.
fn run_one(
    mut sc: Scenario,
    i: usize,
    n: usize,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Outcome {
    sc.time_max = sc.time_max.min(time_limit(&sc));
    let out = Simulation::new(sc).run(|f| progress(i, n, f));
    progress(i + 1, n, 0.0);
    out
}

/// The swarm sizes of the scaling experiment: 1, 3, 10, 30, … up to `max`.
pub fn sizes(max: usize) -> Vec<usize> {
    let mut v: Vec<usize> = [1, 3, 10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000]
        .into_iter()
        .filter(|&n| n < max)
        .collect();
    v.push(max.max(1));
    v
}

/// Distribution time against N: simulated BitTorrent (flash crowd, peers
/// stay), simulated client-server (up to `cs_max` peers: it costs N·F of
/// simulated transfer), and both bounds.
pub fn scaling(base: &Scenario, max_peers: usize, cs_max: usize, progress: Progress<'_>) -> Report {
    let ns = sizes(max_peers);
    let runs = ns.len() + ns.iter().filter(|&&n| n <= cs_max).count();
    let mut done = 0;
    let mut csv = String::from(
        "peers,bittorrent_s,client_server_s,client_server_bound_s,p2p_bound_s,upload_utilisation\n",
    );
    let (mut bt, mut cs, mut csb, mut p2pb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &n in &ns {
        let sc = Scenario {
            leechers: n,
            departure: Departure::Stay,
            ..base.clone()
        };
        let (cs_bound, p2p_bound) = bounds::of(&sc);
        let out = run_one(sc.clone(), done, runs, progress);
        done += 1;
        let t = out.last_completion.map(secs);
        let c = if n <= cs_max {
            let o = run_one(
                Scenario {
                    client_server: true,
                    peer_up: 0.0,
                    ..sc
                },
                done,
                runs,
                progress,
            );
            done += 1;
            o.last_completion.map(secs)
        } else {
            None
        };
        let f = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.3}"));
        let _ = writeln!(
            csv,
            "{n},{},{},{cs_bound:.3},{p2p_bound:.3},{:.4}",
            f(t),
            f(c),
            out.upload_utilisation()
        );
        let x = n as f64;
        if let Some(t) = t {
            bt.push((x, t));
        }
        if let Some(c) = c {
            cs.push((x, c));
        }
        csb.push((x, cs_bound));
        p2pb.push((x, p2p_bound));
    }
    let series = vec![
        Series {
            name: "BitTorrent (swarm's engines, simulated)".into(),
            points: bt,
            bound: false,
        },
        Series {
            name: "client-server (simulated)".into(),
            points: cs,
            bound: false,
        },
        Series {
            name: "client-server bound N·F/u_s".into(),
            points: csb,
            bound: true,
        },
        Series {
            name: "P2P bound max(F/u_s, F/d, N·F/(u_s+Σu))".into(),
            points: p2pb,
            bound: true,
        },
    ];
    let chart = Chart {
        title: format!(
            "Distribution time of {} MiB to N peers (u = {} KiB/s)",
            base.file_bytes() >> 20,
            (base.peer_up / 1024.0) as u64
        ),
        x_label: "peers N (log scale)".into(),
        y_label: "time to the last completion, s (log scale)".into(),
        log_x: true,
        log_y: true,
        series,
    };
    Report {
        summary: csv.clone(),
        tables: vec![(String::new(), csv)],
        charts: vec![(String::new(), chart)],
    }
}

/// Rarest first against random and sequential piece choice, with the
/// seed leaving after `seed_copies` copies. The seed super-seeds (BEP 16):
/// its first copy then holds every piece once (a plain seed's holds
/// pieces twice, and one copy of it leaves the swarm without some), so
/// what is measured after it left is the leechers' piece choice.
pub fn picking(base: &Scenario, seed_copies: f64, progress: Progress<'_>) -> Report {
    let strategies = [
        ("rarest first", PickStrategy::RarestFirst),
        ("random", PickStrategy::Random),
        ("sequential", PickStrategy::Sequential),
    ];
    let mut times = String::from("strategy,peer,download_s\n");
    let mut samples = String::from("strategy,t_s,rarest_copies,mean_copies,completed\n");
    let mut summary = String::from("strategy,completed,leechers,pieces_lost,median_s\n");
    let (mut cdfs, mut rarest) = (Vec::new(), Vec::new());
    for (i, (name, picking)) in strategies.iter().enumerate() {
        let sc = Scenario {
            engine: TorrentConfig {
                picking: *picking,
                super_seeding: true,
                ..base.engine.clone()
            },
            seed_departure: SeedDeparture::AfterCopies(seed_copies),
            ..base.clone()
        };
        let out = run_one(sc, i, strategies.len(), progress);
        let t = out.download_secs(|_| true);
        for p in out.peers.iter().filter(|p| !p.initial_seed) {
            let d = p
                .download_secs()
                .map_or(String::new(), |d| format!("{d:.3}"));
            let _ = writeln!(times, "{name},{},{d}", p.index);
        }
        for s in &out.samples {
            let _ = writeln!(
                samples,
                "{name},{:.3},{},{:.3},{}",
                secs(s.at),
                s.rarest_copies,
                s.mean_copies,
                s.completed
            );
        }
        let med = quantile(&t, 0.5).map_or(String::new(), |m| format!("{m:.1}"));
        let _ = writeln!(
            summary,
            "{name},{},{},{},{med}",
            out.completed(),
            base.leechers,
            out.pieces_lost_at_end
        );
        cdfs.push(Series {
            name: name.to_string(),
            points: cdf(&t),
            bound: false,
        });
        rarest.push(Series {
            name: name.to_string(),
            points: out
                .samples
                .iter()
                .map(|s| (secs(s.at), f64::from(s.rarest_copies)))
                .collect(),
            bound: false,
        });
    }
    let times_chart = Chart {
        title: format!("Completion times by piece choice (seed leaves after {seed_copies} copies)"),
        x_label: "download time, s".into(),
        y_label: "fraction of leechers done".into(),
        log_x: false,
        log_y: false,
        series: cdfs,
    };
    let rarest_chart = Chart {
        title: "Copies of the rarest piece in the swarm".into(),
        x_label: "time, s".into(),
        y_label: "copies of the rarest piece (peers)".into(),
        log_x: false,
        log_y: false,
        series: rarest,
    };
    Report {
        tables: vec![("-times".into(), times), ("-rarest".into(), samples)],
        charts: vec![
            ("-times".into(), times_chart),
            ("-rarest".into(), rarest_chart),
        ],
        summary,
    }
}

/// A share of free riders (upload 0), under tit-for-tat and with choking
/// off. Leechers leave when done (peers that stay seed round robin, and
/// free riders then get as much as anyone).
pub fn incentives(base: &Scenario, free_riders: f64, progress: Progress<'_>) -> Report {
    let policies = [
        ("tit-for-tat", Choking::TitForTat),
        ("choking off", Choking::Off),
    ];
    let mut times = String::from("choking,peer,free_rider,download_s\n");
    let mut summary = String::from("choking,contributors_median_s,free_riders_median_s,ratio\n");
    let mut series = Vec::new();
    for (i, (name, choking)) in policies.iter().enumerate() {
        let sc = Scenario {
            free_riders,
            departure: Departure::OnCompletion,
            engine: TorrentConfig {
                choking: *choking,
                ..base.engine.clone()
            },
            ..base.clone()
        };
        let out = run_one(sc, i, policies.len(), progress);
        for p in out.peers.iter().filter(|p| !p.initial_seed) {
            let d = p
                .download_secs()
                .map_or(String::new(), |d| format!("{d:.3}"));
            let _ = writeln!(times, "{name},{},{},{d}", p.index, u8::from(p.free_rider));
        }
        let c = out.download_secs(|p| !p.free_rider);
        let r = out.download_secs(|p| p.free_rider);
        let (mc, mr) = (quantile(&c, 0.5), quantile(&r, 0.5));
        let f = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.1}"));
        let ratio = mc.zip(mr).map(|(c, r)| r / c);
        let _ = writeln!(
            summary,
            "{name},{},{},{}",
            f(mc),
            f(mr),
            ratio.map_or(String::new(), |x| format!("{x:.2}"))
        );
        series.push(Series {
            name: format!("contributors, {name}"),
            points: cdf(&c),
            bound: false,
        });
        series.push(Series {
            name: format!("free riders, {name}"),
            points: cdf(&r),
            bound: false,
        });
    }
    let chart = Chart {
        title: format!(
            "Free riders ({:.0}%, upload 0) under tit-for-tat and with choking off",
            free_riders * 100.0
        ),
        x_label: "download time, s".into(),
        y_label: "fraction of the group done".into(),
        log_x: false,
        log_y: false,
        series,
    };
    Report {
        tables: vec![(String::new(), times)],
        charts: vec![(String::new(), chart)],
        summary,
    }
}

/// A time limit that lets a run finish but stops a stuck one: 20 times the
/// client-server bound, at least an hour.
pub fn time_limit(sc: &Scenario) -> Duration {
    let (cs, _) = bounds::of(sc);
    Duration::from_secs((cs * 20.0).max(3600.0) as u64)
}
