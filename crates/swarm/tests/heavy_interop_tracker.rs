//! Interop: real clients use swarm's tracker (`swarm tracker`), once over
//! HTTP and once over UDP. A libtorrent seeder; as leechers libtorrent,
//! Transmission, aria2 and swarm's own client. Every leecher completes with
//! the original bytes, and the tracker's scrape counts match the swarm.
//!
//! Order matters on loopback: Transmission ignores 127.x peers a tracker
//! hands it, so it starts first and the seeder, announcing last, dials it.
//! aria2 uses UDP trackers only with its DHT on.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use swarm_testkit::peers::{
    SwarmOpts, aria2_leech, aria2_leech_dht, assert_alive, lt_leech, lt_seed,
    require_swarm_subcommand, swarm_download, transmission,
};
use swarm_testkit::proc::{Proc, wait_listening, wait_until};
use swarm_testkit::{data, tracker, *};
use swarm_wire::tracker::ScrapeStats;
use swarm_wire::tracker::http::{parse_scrape_response, scrape_url};

const DEADLINE: Duration = Duration::from_secs(180);

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

/// `swarm tracker` on 127.0.0.1:`port`, HTTP and UDP, a 10 s interval.
fn start_tracker(logs: &Path, port: u16) -> Proc {
    let mut cmd = Command::new(swarm_bin());
    let addr = format!("127.0.0.1:{port}");
    cmd.args([
        "tracker",
        "--http",
        &addr,
        "--udp",
        &addr,
        "--interval",
        "10",
    ]);
    let p = Proc::spawn("swarm-tracker", cmd, logs);
    assert!(
        wait_listening(swarm_testkit::proc::loopback(port), Duration::from_secs(10)),
        "swarm tracker listens"
    );
    p
}

/// The tracker's HTTP scrape of one torrent.
fn scrape(port: u16, info_hash_hex: &str) -> Option<ScrapeStats> {
    let hash = swarm_wire::InfoHash::from_hex(info_hash_hex)?;
    let url = scrape_url(&tracker::http_announce(port), &[hash])?;
    let target = &url[url.find("/scrape")?..];
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let body = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    parse_scrape_response(&raw[body..], &hash).ok()
}

fn wait_scrape(port: u16, ih: &str, what: &str, ok: impl Fn(&ScrapeStats) -> bool) -> ScrapeStats {
    let mut last = None;
    let done = wait_until(Duration::from_secs(40), || {
        last = scrape(port, ih);
        last.as_ref().is_some_and(&ok)
    });
    assert!(done, "{what}: scrape says {last:?}");
    last.unwrap_or_default()
}

fn real_clients_through_swarm_tracker(udp: bool) {
    if !(require_python_libtorrent()
        && require_program("transmission-cli")
        && require_program("aria2c")
        && require_swarm_subcommand(&swarm_bin(), "tracker"))
    {
        return;
    }
    let label = if udp { "tracker-udp" } else { "tracker-http" };
    let t = TestDir::new(label);
    let seed_dir = t.sub("seed");
    let content = data::tree(&seed_dir, "tracked", data::ODD_TREE, 17);
    let port = free_port();
    // libtorrent's SSRF rule wants the path /announce on loopback.
    let announce = if udp {
        tracker::udp_announce(port)
    } else {
        tracker::http_announce(port)
    };
    let torrent = make_torrent(
        &content,
        &t.path().join("t.torrent"),
        PIECE_256_KIB,
        &[announce],
    );
    let ih = torrent.info_hash_hex.clone();
    let _tracker = start_tracker(&t.logs(), port);
    let peers = |n: u32| {
        wait_scrape(port, &ih, &format!("{n} peers announced"), |s| {
            s.complete + s.incomplete >= n
        });
    };

    let mut tr = transmission(
        &t.logs(),
        "transmission",
        &torrent,
        &t.sub("tr"),
        free_port(),
        false,
    );
    peers(1);
    let opts = SwarmOpts {
        seed_after: true,
        ..SwarmOpts::default()
    };
    let mut sw = swarm_download(
        &swarm_bin(),
        &t.logs(),
        "swarm",
        &torrent,
        &t.sub("sw"),
        free_addr(),
        &opts,
    );
    peers(2);
    let mut lt = lt_leech(
        &t.logs(),
        "lt-leech",
        &torrent,
        &t.sub("lt"),
        free_addr(),
        &[],
    );
    peers(3);
    let mut ar = if udp {
        aria2_leech_dht(&t.logs(), "aria2", &torrent, &t.sub("ar"), free_port())
    } else {
        aria2_leech(&t.logs(), "aria2", &torrent, &t.sub("ar"), free_port())
    };
    peers(4);
    let mut seed = lt_seed(&t.logs(), "lt-seed", &torrent, &seed_dir, free_addr(), &[]);

    wait_all_complete(&mut [&mut tr, &mut sw, &mut lt, &mut ar], DEADLINE);
    assert_alive(&mut seed);
    for p in [&tr, &sw, &lt, &ar] {
        if let Err(e) = compare_tree(&content, &p.content(&torrent)) {
            panic!("{}: {e}", p.proc.name());
        }
    }
    // aria2 has left (`stopped`); the seeder and the three leechers that
    // stay are seeders now. Each counts as one peer, whatever it announced.
    let s = wait_scrape(port, &ih, "4 seeders, no leecher", |s| {
        s.complete == 4 && s.incomplete == 0
    });
    assert!(s.downloaded >= 3, "completed downloads counted: {s:?}");
}

#[test]
fn heavy_real_clients_through_swarm_http_tracker() {
    real_clients_through_swarm_tracker(false);
}

#[test]
fn heavy_real_clients_through_swarm_udp_tracker() {
    real_clients_through_swarm_tracker(true);
}
