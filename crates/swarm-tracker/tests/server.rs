//! The tracker's HTTP and UDP front ends on loopback, spoken to with the
//! client codecs of swarm-wire: announces, scrapes across shards, errors,
//! access lists, the proxy header, and a fuzz-style barrage after which a
//! correct announce is still answered correctly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use swarm_tracker::registry::RegistryConfig;
use swarm_tracker::server::{AccessMode, AccessSource, Tracker, TrackerConfig};
use swarm_wire::tracker::udp::{self, Request, Response};
use swarm_wire::tracker::{AnnounceRequest, AnnounceResponse, Event, ScrapeStats, http};
use swarm_wire::{InfoHash, PeerId};

fn start(workers: usize) -> Tracker {
    start_with(workers, |_| {})
}

fn start_with(workers: usize, tweak: impl FnOnce(&mut TrackerConfig)) -> Tracker {
    let mut config = TrackerConfig {
        http: Some("127.0.0.1:0".parse().expect("addr")),
        udp: Some("127.0.0.1:0".parse().expect("addr")),
        registry: RegistryConfig::with_interval(600),
        workers,
        seed: 7,
        ..TrackerConfig::default()
    };
    tweak(&mut config);
    Tracker::start(config).expect("tracker starts")
}

/// Info-hash `n`: its first byte varies, so consecutive ones land in different shards.
fn hash(n: u8) -> InfoHash {
    let mut h = [0x5a; 20];
    h[0] = n;
    InfoHash(h)
}

fn request(info_hash: InfoHash, peer: u8, port: u16, left: u64, event: Event) -> AnnounceRequest {
    let mut peer_id = *b"-XX0001-000000000000";
    peer_id[19] = peer;
    AnnounceRequest {
        info_hash,
        peer_id: PeerId(peer_id),
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event,
        numwant: None,
        key: u32::from(peer),
        tracker_id: None,
    }
}

/// A UDP tracker client over one socket (so one source address).
struct UdpClient {
    sock: UdpSocket,
    tracker: SocketAddr,
    tid: u32,
}

impl UdpClient {
    fn new(tracker: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        UdpClient {
            sock,
            tracker,
            tid: 1,
        }
    }

    fn exchange(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        self.sock.send_to(datagram, self.tracker).expect("send");
        let mut buf = vec![0u8; 8192];
        let (n, _) = self.sock.recv_from(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    fn connect(&mut self) -> u64 {
        self.tid += 1;
        let reply = self
            .exchange(
                &Request::Connect {
                    transaction_id: self.tid,
                }
                .to_bytes(),
            )
            .expect("connect answered");
        match udp::expect_action(
            Response::parse(&reply, false).expect("parses"),
            self.tid,
            udp::ACTION_CONNECT,
        ) {
            Ok(Response::Connect { connection_id, .. }) => connection_id,
            other => panic!("connect: {other:?}"),
        }
    }

    fn announce(&mut self, cid: u64, req: &AnnounceRequest) -> Result<AnnounceResponse, String> {
        self.tid += 1;
        let bytes = Request::Announce {
            connection_id: cid,
            transaction_id: self.tid,
            request: req,
        }
        .to_bytes();
        let reply = self.exchange(&bytes).ok_or("no answer")?;
        match udp::expect_action(
            Response::parse(&reply, false).map_err(|e| e.to_string())?,
            self.tid,
            udp::ACTION_ANNOUNCE,
        ) {
            Ok(Response::Announce { response, .. }) => Ok(response),
            Ok(other) => Err(format!("{other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    fn scrape(&mut self, cid: u64, hashes: &[InfoHash]) -> Vec<ScrapeStats> {
        self.tid += 1;
        let bytes = Request::Scrape {
            connection_id: cid,
            transaction_id: self.tid,
            info_hashes: hashes,
        }
        .to_bytes();
        let reply = self.exchange(&bytes).expect("scrape answered");
        match udp::expect_action(
            Response::parse(&reply, false).expect("parses"),
            self.tid,
            udp::ACTION_SCRAPE,
        ) {
            Ok(Response::Scrape { stats, .. }) => stats,
            other => panic!("scrape: {other:?}"),
        }
    }
}

/// One HTTP/1.1 GET on a fresh connection; returns (status, body).
fn get(addr: SocketAddr, target: &str, headers: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    split_response(&raw)
}

fn split_response(raw: &[u8]) -> (u16, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head[9..12].parse().expect("status");
    (status, raw[end + 4..].to_vec())
}

fn http_announce(addr: SocketAddr, req: &AnnounceRequest) -> Result<AnnounceResponse, String> {
    let url = http::announce_url("/announce", req);
    let (status, body) = get(addr, &url, "");
    assert_eq!(status, 200);
    http::parse_announce_response(&body).map_err(|e| e.to_string())
}

#[test]
fn udp_announces_connect_and_scrape_across_shards() {
    let tracker = start(2);
    let addr = tracker.udp_addr().expect("udp");
    let mut a = UdpClient::new(addr);
    let mut b = UdpClient::new(addr);
    let (ca, cb) = (a.connect(), b.connect());
    let port_a = a.sock.local_addr().expect("addr").port();
    let port_b = b.sock.local_addr().expect("addr").port();
    // Four torrents: with 2 shards some are forwarded to the other worker.
    for t in 0..4u8 {
        let r = a
            .announce(ca, &request(hash(t), 1, port_a, 100, Event::Started))
            .unwrap_or_else(|e| {
                std::thread::sleep(Duration::from_millis(1100));
                panic!("a announces {t}: {e} {:?}", tracker.counters())
            });
        assert_eq!(
            (r.interval, r.complete, r.incomplete),
            (600, Some(0), Some(1))
        );
        assert!(r.peers.is_empty());
        let r = b
            .announce(cb, &request(hash(t), 2, port_b, 0, Event::Started))
            .expect("b announces");
        assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
        assert_eq!(
            r.peers,
            vec![SocketAddr::from(([127, 0, 0, 1], port_a))],
            "b gets a, not itself"
        );
    }
    let stats = a.scrape(ca, &[hash(0), hash(1), hash(2), hash(3), hash(99)]);
    let one_each = ScrapeStats {
        complete: 1,
        downloaded: 0,
        incomplete: 1,
    };
    assert_eq!(
        stats,
        vec![
            one_each,
            one_each,
            one_each,
            one_each,
            ScrapeStats::default()
        ]
    );
    // Completed counts once; stopped removes.
    b.announce(cb, &request(hash(1), 2, port_b, 0, Event::Completed))
        .expect("ok");
    a.announce(ca, &request(hash(1), 1, port_a, 0, Event::Completed))
        .expect("ok");
    a.announce(ca, &request(hash(1), 1, port_a, 0, Event::Completed))
        .expect("ok");
    let r = a
        .announce(ca, &request(hash(1), 1, port_a, 0, Event::Stopped))
        .expect("ok");
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(0)));
    assert_eq!(
        a.scrape(ca, &[hash(1)]),
        vec![ScrapeStats {
            complete: 1,
            downloaded: 2,
            incomplete: 0
        }]
    );
}

#[test]
fn udp_refuses_forged_ids_and_bad_datagrams_without_harm() {
    let tracker = start(2);
    let mut c = UdpClient::new(tracker.udp_addr().expect("udp"));
    let port = c.sock.local_addr().expect("addr").port();
    let forged = c.announce(0x1234_5678, &request(hash(1), 1, port, 1, Event::Started));
    assert!(forged.expect_err("refused").contains("connection id"));
    // Port 0 is refused by the registry with a reason.
    let cid = c.connect();
    let zero = c.announce(cid, &request(hash(1), 1, 0, 1, Event::Started));
    assert!(zero.expect_err("refused").contains("port"));
    // A datagram too short to carry a transaction id is dropped, silently.
    c.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    assert!(c.exchange(&[1, 2, 3]).is_none());
    c.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // An unknown action is answered with an error.
    let mut unknown = Request::Connect { transaction_id: 77 }.to_bytes();
    unknown[11] = 9;
    let reply = c.exchange(&unknown).expect("answered");
    assert!(matches!(
        Response::parse(&reply, false),
        Ok(Response::Error {
            transaction_id: 77,
            ..
        })
    ));
    // Nothing was registered by any of it.
    let stats = c.scrape(cid, &[hash(1)]);
    assert_eq!(stats, vec![ScrapeStats::default()]);
}

#[test]
fn http_announce_compact_dictionary_scrape_stats_metrics() {
    let tracker = start(2);
    let addr = tracker.http_addr().expect("http");
    for t in 0..3u8 {
        let r = http_announce(addr, &request(hash(t), 1, 7001, 10, Event::Started)).expect("ok");
        assert_eq!((r.interval, r.min_interval), (600, Some(300)));
        let r = http_announce(addr, &request(hash(t), 2, 7002, 0, Event::Started)).expect("ok");
        assert_eq!(r.peers, vec![SocketAddr::from(([127, 0, 0, 1], 7001))]);
        assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    }
    // The dictionary model, with and without peer ids.
    let mut url = http::announce_url("/announce", &request(hash(0), 3, 7003, 10, Event::None));
    url = url.replace("compact=1", "compact=0");
    let (_, body) = get(addr, &url, "");
    assert!(
        body.windows(7).any(|w| w == b"peer id"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let r = http::parse_announce_response(&body).expect("dictionary parses");
    assert_eq!(r.peers.len(), 2);
    let (_, body) = get(addr, &format!("{url}&no_peer_id=1"), "");
    assert!(!body.windows(7).any(|w| w == b"peer id"));
    // Scrape over both shards.
    let scrape = http::scrape_url("http://t/announce", &[hash(0), hash(1), hash(2)]).expect("url");
    let target = &scrape["http://t".len()..];
    let (status, body) = get(addr, target, "");
    assert_eq!(status, 200);
    let s0 = http::parse_scrape_response(&body, &hash(0)).expect("parses");
    assert_eq!((s0.complete, s0.incomplete), (1, 2));
    let s2 = http::parse_scrape_response(&body, &hash(2)).expect("parses");
    assert_eq!((s2.complete, s2.incomplete), (1, 1));
    // Failure reasons, 404, stats and metrics (published once a second).
    let (status, body) = get(addr, "/announce?info_hash=short", "");
    assert_eq!(status, 200);
    assert!(
        http::parse_announce_response(&body)
            .expect_err("failure")
            .to_string()
            .contains("info_hash")
    );
    assert_eq!(get(addr, "/nothing", "").0, 404);
    std::thread::sleep(Duration::from_millis(1300));
    let (status, stats) = get(addr, "/stats", "");
    assert_eq!(status, 200);
    let stats = String::from_utf8(stats).expect("utf-8");
    assert!(
        stats.contains("\"swarms\":3") && stats.contains("\"peers\":7"),
        "{stats}"
    );
    let (_, metrics) = get(addr, "/metrics", "");
    let metrics = String::from_utf8(metrics).expect("utf-8");
    assert!(
        metrics.contains("swarm_tracker_peers{kind=\"seeder\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE swarm_tracker_announces_total counter"));
}

#[test]
fn http_keeps_the_connection_alive() {
    let tracker = start(1);
    let addr = tracker.http_addr().expect("http");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    for peer in 1..=3u8 {
        let url = http::announce_url(
            "/announce",
            &request(hash(1), peer, 7000 + u16::from(peer), 5, Event::Started),
        );
        write!(s, "GET {url} HTTP/1.1\r\nHost: t\r\n\r\n").expect("write");
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).expect("read");
        let (status, body) = split_response(&buf[..n]);
        assert_eq!(status, 200);
        let r = http::parse_announce_response(&body).expect("parses");
        assert_eq!(
            r.peers.len(),
            usize::from(peer - 1),
            "same connection, request {peer}"
        );
    }
}

#[test]
fn http_ipv6_peers_come_as_peers6() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here");
        return;
    };
    drop(probe);
    let tracker = start_with(1, |c| c.http = Some("[::]:0".parse().expect("addr")));
    let port = tracker.http_addr().expect("http").port();
    let v6: SocketAddr = format!("[::1]:{port}").parse().expect("addr");
    http_announce(v6, &request(hash(1), 1, 7001, 5, Event::Started)).expect("ok");
    let url = http::announce_url("/announce", &request(hash(1), 2, 7002, 5, Event::Started));
    let (_, body) = get(v6, &url, "");
    assert!(body.windows(6).any(|w| w == b"peers6"));
    let r = http::parse_announce_response(&body).expect("parses");
    assert_eq!(
        r.peers,
        vec![SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 7001))]
    );
    // An IPv4 client of the same dual-stack socket is an IPv4 peer.
    let v4: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let r = http_announce(v4, &request(hash(1), 3, 7003, 5, Event::Started)).expect("ok");
    assert!(r.peers.is_empty(), "IPv4 peers only for an IPv4 client");
    assert_eq!(r.incomplete, Some(3));
}

#[test]
fn real_ip_header_names_the_peer() {
    let tracker = start_with(1, |c| c.real_ip_header = Some("X-Forwarded-For".into()));
    let addr = tracker.http_addr().expect("http");
    let url = http::announce_url("/announce", &request(hash(1), 1, 7001, 5, Event::Started));
    let (_, body) = get(addr, &url, "X-Forwarded-For: 203.0.113.9, 198.51.100.7\r\n");
    http::parse_announce_response(&body).expect("accepted");
    let url = http::announce_url("/announce", &request(hash(1), 2, 7002, 5, Event::Started));
    let (_, body) = get(addr, &url, "X-Forwarded-For: 198.51.100.8\r\n");
    let r = http::parse_announce_response(&body).expect("accepted");
    assert_eq!(
        r.peers,
        vec!["198.51.100.7:7001".parse::<SocketAddr>().expect("addr")]
    );
    let (_, body) = get(addr, &url, "");
    let e = http::parse_announce_response(&body).expect_err("no header: refused");
    assert!(e.to_string().contains("X-Forwarded-For"));
}

#[test]
fn whitelist_is_enforced_and_reloaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("whitelist");
    std::fs::write(&path, format!("{}\n", hash(1).to_hex())).expect("write");
    let tracker = start_with(2, |c| {
        c.access = Some(AccessSource {
            mode: AccessMode::Whitelist,
            path: path.clone(),
        })
    });
    let haddr = tracker.http_addr().expect("http");
    let mut u = UdpClient::new(tracker.udp_addr().expect("udp"));
    let cid = u.connect();
    http_announce(haddr, &request(hash(1), 1, 7001, 5, Event::Started)).expect("listed");
    let e = http_announce(haddr, &request(hash(2), 1, 7001, 5, Event::Started))
        .expect_err("not listed");
    assert!(e.contains("not registered"), "{e}");
    assert!(
        u.announce(cid, &request(hash(2), 1, 7001, 5, Event::Started))
            .is_err()
    );
    std::fs::write(
        &path,
        format!("{}\n{}\n", hash(1).to_hex(), hash(2).to_hex()),
    )
    .expect("write");
    assert_eq!(tracker.reload_access(), Ok(2));
    // Workers take the new list from a watch channel: give them a moment.
    let mut ok = false;
    for _ in 0..50 {
        if u.announce(cid, &request(hash(2), 1, 7001, 5, Event::Started))
            .is_ok()
        {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "the reloaded whitelist admits hash 2");
    std::fs::write(&path, "garbage\n").expect("write");
    assert!(
        tracker.reload_access().is_err(),
        "a bad file is refused, the old list kept"
    );
    http_announce(haddr, &request(hash(2), 2, 7002, 5, Event::Started))
        .expect("old list still in force");
}

/// Throws random and mutated datagrams and query strings at both front ends,
/// then checks a correct announce is still answered correctly.
#[test]
fn fuzz_style_barrage_then_a_correct_announce() {
    let tracker = start(2);
    let uaddr = tracker.udp_addr().expect("udp");
    let haddr = tracker.http_addr().expect("http");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let valid = Request::Announce {
        connection_id: 5,
        transaction_id: 6,
        request: &request(hash(3), 9, 9999, 1, Event::Started),
    }
    .to_bytes();
    for i in 0..3000 {
        let r = next();
        let mut d = if i % 2 == 0 {
            (0..(r % 200) as usize)
                .map(|_| next() as u8)
                .collect::<Vec<u8>>()
        } else {
            let mut d = valid.clone();
            let at = (r as usize) % d.len();
            d[at] = (r >> 16) as u8;
            d
        };
        // Some with the connect magic, some with every action.
        if i % 5 == 1 && d.len() >= 16 {
            d[..8].copy_from_slice(&udp::PROTOCOL_ID.to_be_bytes());
            d[11] = (r % 5) as u8;
        }
        let _ = sock.send_to(&d, uaddr);
    }
    let valid_url = http::announce_url("/announce", &request(hash(3), 8, 8888, 1, Event::Started));
    for i in 0..300 {
        let r = next();
        let mut q = valid_url.clone().into_bytes();
        for _ in 0..(1 + r % 4) {
            let at = (next() as usize) % q.len();
            q[at] = next() as u8;
        }
        if i % 3 == 0 {
            q.truncate((r as usize) % q.len());
        }
        let target: String = q
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '%' })
            .collect();
        let target = if target.starts_with('/') {
            target
        } else {
            format!("/{target}")
        };
        if let Ok(mut s) = TcpStream::connect(haddr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                s,
                "GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            );
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
        if i % 50 == 0 {
            // Raw garbage instead of HTTP.
            if let Ok(mut s) = TcpStream::connect(haddr) {
                let junk: Vec<u8> = (0..300).map(|_| next() as u8).collect();
                let _ = s.write_all(&junk);
            }
        }
    }
    // Still serving, and correctly.
    let mut c = UdpClient::new(uaddr);
    let cid = c.connect();
    let port = c.sock.local_addr().expect("addr").port();
    c.announce(cid, &request(hash(42), 1, port, 5, Event::Started))
        .expect("udp works");
    let r = c
        .announce(cid, &request(hash(42), 2, port + 1, 0, Event::Started))
        .expect("udp works");
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    assert_eq!(r.peers, vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    let r =
        http_announce(haddr, &request(hash(42), 3, 7003, 5, Event::Started)).expect("http works");
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(2)));
    assert_eq!(r.peers.len(), 2);
}

#[test]
fn a_second_tracker_on_a_taken_port_fails_instead_of_sharing_it() {
    let first = start(2);
    let taken = first.udp_addr().expect("udp");
    let again = Tracker::start(TrackerConfig {
        udp: Some(taken),
        http: None,
        workers: 2,
        reuse_port: true,
        ..TrackerConfig::default()
    });
    assert!(
        again.is_err(),
        "SO_REUSEPORT must not join a running tracker's port"
    );
    let http_taken = first.http_addr().expect("http");
    let again = Tracker::start(TrackerConfig {
        http: Some(http_taken),
        udp: None,
        workers: 2,
        reuse_port: true,
        ..TrackerConfig::default()
    });
    assert!(again.is_err());
}
