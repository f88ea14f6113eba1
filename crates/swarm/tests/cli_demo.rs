//! `swarm demo` with small settings: every leecher's file equals the source
//! (compared here, not only by the demo), and the leechers gave each other
//! more than half of all the bytes they downloaded: the swarm is
//! peer-to-peer, not N clients of one server.

use std::process::Command;

use swarm_testkit::TestDir;

#[test]
fn demo_runs_a_peer_to_peer_swarm_to_completion() {
    let t = TestDir::new("demo");
    let dir = t.sub("work");
    // The seeder's cap is a quarter of one leecher's, as on real swarms
    // where the seeder is the bottleneck.
    let args = "demo --leechers 4 --size 4M --seed-upload 512K --leecher-upload 2M --timeout 120 --json --dir";
    let out = Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(args.split(' '))
        .arg(&dir)
        .output()
        .expect("run swarm demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stdout.lines().last().unwrap_or("")
    );
    let summary: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["summary"] == true)
        .expect("a summary line");
    assert_eq!(summary["all_verified"], true, "{summary}");
    let source = std::fs::read(dir.join("seeder/demo.bin")).expect("source");
    assert_eq!(source.len(), 4 << 20);
    for i in 1..=4 {
        let got = std::fs::read(dir.join(format!("leecher-{i}/demo.bin"))).expect("leecher file");
        assert!(got == source, "leecher {i}'s bytes differ");
    }
    let given = summary["leechers_gave_each_other"].as_u64().expect("given");
    let downloaded = summary["leechers_downloaded"].as_u64().expect("downloaded");
    assert!(downloaded >= 4 * (4 << 20), "{summary}");
    assert!(
        2 * given > downloaded,
        "leechers gave each other only {given} of {downloaded} bytes"
    );
    // Each peer has an IP of its own (127.0.0.2 the seeder, then one per
    // leecher), so the per-IP rules see five machines, not one: the
    // neighbours the peers reported come from 5 distinct IPs, none 127.0.0.1.
    let mut ips = std::collections::BTreeSet::new();
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        for p in v["peers"].as_array().into_iter().flatten() {
            for n in p["status"]["neighbours"].as_array().into_iter().flatten() {
                let addr: std::net::SocketAddr = n["addr"].as_str().unwrap().parse().unwrap();
                ips.insert(addr.ip());
            }
        }
    }
    assert_eq!(ips.len(), 5, "neighbour IPs: {ips:?}");
    assert!(
        !ips.contains(&std::net::IpAddr::from([127, 0, 0, 1])),
        "{ips:?}"
    );
    let elapsed = summary["elapsed_s"].as_f64().expect("elapsed");
    let p2p = summary["p2p_bound_s"].as_f64().expect("bound");
    assert!(
        elapsed >= p2p * 0.9,
        "faster than the P2P lower bound? {summary}"
    );
}
