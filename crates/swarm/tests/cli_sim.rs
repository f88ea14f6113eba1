//! `swarm sim` at small sizes: every experiment writes its CSV tables and
//! charts (SVG, PNG with --png) with a title, axis labels and a legend, and
//! the same seed writes the same CSV bytes.

use std::path::Path;

use swarm_testkit::cli::{names, run, stderr};

fn swarm() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_swarm"))
}

const SMALL: [&str; 6] = ["--pieces", "8", "--upload", "256K", "--download", "1M"];

fn sim(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["sim"];
    all.extend_from_slice(args);
    all.extend_from_slice(&SMALL);
    let o = run(swarm(), dir, &all);
    assert!(o.status.success(), "swarm {all:?}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_experiment_writes_csv_and_a_labelled_chart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let summary = sim(
        d,
        &["scaling", "--max-peers", "10", "--client-server-max", "3"],
    );
    assert!(summary.starts_with("peers,bittorrent_s,"), "{summary}");
    sim(d, &["picking", "--peers", "8", "--seed-copies", "2"]);
    sim(d, &["incentives", "--peers", "10", "--png"]);
    assert_eq!(
        names(d),
        [
            "incentives.csv",
            "incentives.png",
            "picking-rarest.csv",
            "picking-rarest.svg",
            "picking-times.csv",
            "picking-times.svg",
            "scaling.csv",
            "scaling.svg"
        ]
    );
    let svg = std::fs::read_to_string(d.join("scaling.svg")).unwrap();
    for text in [
        "Distribution time",
        "peers N (log scale)",
        "time to the last completion, s",
        "client-server bound",
        "P2P bound",
    ] {
        assert!(svg.contains(text), "scaling.svg lacks {text:?}");
    }
    // Sizes 1, 3 and 10; client-server simulated up to 3.
    let csv = std::fs::read_to_string(d.join("scaling.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows.iter()
            .all(|r| r.split(',').nth(1).is_some_and(|t| !t.is_empty()))
    );
    let png = std::fs::read(d.join("incentives.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
}

#[test]
fn the_same_seed_writes_the_same_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for (out, seed) in [(&a, "5"), (&b, "5"), (&c, "6")] {
        std::fs::create_dir(out).unwrap();
        sim(out, &["incentives", "--peers", "12", "--seed", seed]);
    }
    let read = |d: &Path| std::fs::read(d.join("incentives.csv")).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
}

#[test]
fn bad_options_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        swarm(),
        dir.path(),
        &["sim", "picking", "--piece-size", "1000"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("16 KiB"));
    assert!(names(dir.path()).is_empty());
    // Swarm sizes that ran to empty tables and charts before.
    for (args, says) in [
        (
            &["sim", "scaling", "--max-peers", "0"][..],
            "--max-peers is between 1",
        ),
        (
            &["sim", "scaling", "--max-peers", "100001"],
            "--max-peers is between 1 and 100,000",
        ),
        (&["sim", "picking", "--peers", "0"], "--peers is between 1"),
        (
            &["sim", "picking", "--peers", "100001"],
            "--peers is between 1 and 100,000",
        ),
        (
            &["sim", "incentives", "--peers", "0"],
            "--peers is between 1",
        ),
        (
            &["sim", "incentives", "--peers", "2"],
            "0 free riders and 2 contributors",
        ),
        (
            &["sim", "incentives", "--free-riders", "1"],
            "100 free riders and 0 contributors",
        ),
    ] {
        let o = run(swarm(), dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert!(names(dir.path()).is_empty(), "{args:?} wrote files");
    }
}

#[test]
fn dht_writes_csv_and_two_labelled_charts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = [
        "sim",
        "dht",
        "--min-nodes",
        "40",
        "--max-nodes",
        "80",
        "--lookups",
        "4",
        "--session-min",
        "10",
        "--warmup-min",
        "1",
    ];
    let o = run(swarm(), d, &args);
    assert!(o.status.success(), "swarm {args:?}: {}", stderr(&o));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.starts_with("nodes,churn,lookup,"), "{summary}");
    assert_eq!(
        names(d),
        ["dht-messages.svg", "dht-round-trips.svg", "dht.csv"]
    );
    let svg = std::fs::read_to_string(d.join("dht-round-trips.svg")).unwrap();
    for text in [
        "DHT lookup round trips against N",
        "DHT nodes N (log scale)",
        "round trips per lookup",
        "find_node, churn, median",
    ] {
        assert!(svg.contains(text), "dht-round-trips.svg lacks {text:?}");
    }
    // Two sizes, each without and under churn, get and find_node.
    let csv = std::fs::read_to_string(d.join("dht.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 8, "{csv}");
    let bad = run(swarm(), d, &["sim", "dht", "--latency-ms", "100-10"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--latency-ms"), "{}", stderr(&bad));
}
