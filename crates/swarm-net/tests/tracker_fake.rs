//! Tracker client against in-test fake trackers: UDP retransmission after a
//! lost packet, connection-id reuse, HTTP `failure reason`, BEP 12 tier order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use swarm_net::tracker::{AnnounceStats, TrackerClient, TrackerConfig, TrackerError, UdpRetry};
use swarm_wire::tracker::Event;
use swarm_wire::{InfoHash, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const INFO_HASH: InfoHash = InfoHash([0x42; 20]);
const PEER_ID: PeerId = PeerId(*b"-SW0001-faketracker1");
/// Every test is bounded by this, whatever the client does.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);

fn config(base_ms: u64, exponent_max: u32) -> TrackerConfig {
    TrackerConfig {
        udp_retry: UdpRetry {
            base_timeout: Duration::from_millis(base_ms),
            exponent_max,
        },
        http_timeout: Duration::from_secs(5),
        numwant: None,
        rng_seed: 7,
        local_ip: None,
    }
}

fn stats() -> AnnounceStats {
    AnnounceStats {
        uploaded: 0,
        downloaded: 0,
        left: 1000,
    }
}

/// What the fake UDP tracker saw.
#[derive(Default)]
struct UdpLog {
    connects: AtomicUsize,
    announces: AtomicUsize,
    dropped: AtomicUsize,
}

/// A BEP 15 tracker that ignores the first `drop_first` packets it receives
/// and answers the rest: connect with a fixed id, announce with one peer.
async fn fake_udp_tracker(drop_first: usize) -> (SocketAddr, Arc<UdpLog>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let log = Arc::new(UdpLog::default());
    let log2 = log.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        // Bounded: the test never sends more than a few dozen packets.
        for _ in 0..100 {
            let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            if log2.dropped.load(Ordering::SeqCst) < drop_first {
                log2.dropped.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let packet = &buf[..len];
            let action = u32::from_be_bytes(packet[8..12].try_into().unwrap());
            let tid = &packet[12..16];
            let mut reply = Vec::new();
            match action {
                0 => {
                    assert_eq!(len, 16);
                    assert_eq!(&packet[..8], &0x41727101980u64.to_be_bytes());
                    log2.connects.fetch_add(1, Ordering::SeqCst);
                    reply.extend_from_slice(&0u32.to_be_bytes());
                    reply.extend_from_slice(tid);
                    reply.extend_from_slice(&0x1234_5678_9abc_def0u64.to_be_bytes());
                }
                1 => {
                    assert_eq!(len, 98);
                    assert_eq!(&packet[..8], &0x1234_5678_9abc_def0u64.to_be_bytes());
                    log2.announces.fetch_add(1, Ordering::SeqCst);
                    reply.extend_from_slice(&1u32.to_be_bytes());
                    reply.extend_from_slice(tid);
                    reply.extend_from_slice(&900u32.to_be_bytes());
                    reply.extend_from_slice(&2u32.to_be_bytes());
                    reply.extend_from_slice(&3u32.to_be_bytes());
                    reply.extend_from_slice(&[10, 1, 2, 3, 0x1a, 0xe1]);
                }
                _ => continue,
            }
            let _ = socket.send_to(&reply, from).await;
        }
    });
    (addr, log)
}

#[tokio::test]
async fn udp_retransmits_after_a_lost_packet_and_reuses_the_connection_id() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (addr, log) = fake_udp_tracker(1).await;
        let url = format!("udp://{addr}/announce");
        let mut client =
            TrackerClient::with_config(vec![vec![url]], INFO_HASH, PEER_ID, 6881, config(100, 3));
        let response = client.announce(Event::Started, stats()).await.unwrap();
        assert_eq!(response.interval, 900);
        assert_eq!(response.incomplete, Some(2));
        assert_eq!(response.complete, Some(3));
        assert_eq!(
            response.peers,
            vec!["10.1.2.3:6881".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            log.dropped.load(Ordering::SeqCst),
            1,
            "first connect was dropped"
        );
        assert_eq!(
            log.connects.load(Ordering::SeqCst),
            1,
            "connect retransmitted once"
        );

        // A second announce within the minute reuses the connection id.
        client.announce(Event::Completed, stats()).await.unwrap();
        assert_eq!(log.connects.load(Ordering::SeqCst), 1, "no second connect");
        assert_eq!(log.announces.load(Ordering::SeqCst), 2);
        let next = client.next_announce_in().unwrap();
        assert!(
            next <= Duration::from_secs(900) && next > Duration::from_secs(800),
            "{next:?}"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn udp_gives_up_after_the_last_retransmission() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // Drops everything: 1 + 2 attempts (n = 0, 1, 2) then timeout.
        let (addr, log) = fake_udp_tracker(usize::MAX).await;
        let mut client = TrackerClient::with_config(
            vec![vec![format!("udp://{addr}")]],
            INFO_HASH,
            PEER_ID,
            6881,
            config(50, 2),
        );
        let err = client.announce(Event::Started, stats()).await.unwrap_err();
        let TrackerError::AllFailed(errors) = err else {
            panic!("expected AllFailed, got {err:?}");
        };
        assert!(
            matches!(errors[..], [(_, TrackerError::Timeout)]),
            "{errors:?}"
        );
        assert_eq!(log.dropped.load(Ordering::SeqCst), 3, "sent at n = 0, 1, 2");
        // After a failure the next try is a back-off away, not immediate.
        assert!(client.next_announce_in().unwrap() > Duration::from_secs(10));
    })
    .await
    .expect("test timed out");
}

/// An HTTP tracker that answers every request with `body` and counts them.
async fn fake_http_tracker(body: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let hits2 = hits.clone();
    tokio::spawn(async move {
        for _ in 0..100 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            hits2.fetch_add(1, Ordering::SeqCst);
            let mut req = vec![0u8; 4096];
            let mut got = 0;
            // Read until the end of the request head (bounded by the buffer).
            while got < req.len() && !req[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut req[got..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body).await;
            let _ = stream.shutdown().await;
        }
    });
    (addr, hits)
}

#[tokio::test]
async fn http_failure_reason_is_reported_and_the_next_tier_is_tried() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (bad, bad_hits) = fake_http_tracker(b"d14:failure reason17:torrent not founde").await;
        let (good, good_hits) = fake_http_tracker(
            b"d8:intervali1200e12:min intervali60e5:peers6:\x7f\x00\x00\x01\x1a\xe1e",
        )
        .await;
        let bad_url = format!("http://{bad}/announce");
        let good_url = format!("http://{good}/announce");

        // Only the failing tracker: the failure reason comes back.
        let mut alone = TrackerClient::with_config(
            vec![vec![bad_url.clone()]],
            INFO_HASH,
            PEER_ID,
            6881,
            config(100, 0),
        );
        let err = alone.announce(Event::Started, stats()).await.unwrap_err();
        let TrackerError::AllFailed(errors) = err else {
            panic!("{err:?}");
        };
        assert!(
            matches!(&errors[..], [(_, TrackerError::Failure(why))] if why == "torrent not found"),
            "{errors:?}"
        );

        // Tier 1 fails, tier 2 answers.
        let mut client = TrackerClient::with_config(
            vec![vec![bad_url], vec![good_url]],
            INFO_HASH,
            PEER_ID,
            6881,
            config(100, 0),
        );
        let response = client.announce(Event::Started, stats()).await.unwrap();
        assert_eq!(response.interval, 1200);
        assert_eq!(response.min_interval, Some(60));
        assert_eq!(
            response.peers,
            vec!["127.0.0.1:6881".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(bad_hits.load(Ordering::SeqCst), 2);
        assert_eq!(good_hits.load(Ordering::SeqCst), 1);

        // min interval is respected for regular announces, not for events.
        let err = client.announce(Event::None, stats()).await.unwrap_err();
        assert!(matches!(err, TrackerError::TooSoon { .. }), "{err:?}");
        assert_eq!(good_hits.load(Ordering::SeqCst), 1, "TooSoon sends nothing");
        client.announce(Event::Stopped, stats()).await.unwrap();
        assert_eq!(
            client.next_announce_in(),
            None,
            "no re-announce after stopped"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_working_tracker_moves_to_the_front_of_its_tier() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (bad, _) = fake_http_tracker(b"d14:failure reason4:nopee").await;
        let (good, good_hits) = fake_http_tracker(b"d8:intervali1200e5:peers0:e").await;
        let bad_url = format!("http://{bad}/announce");
        let good_url = format!("http://{good}/announce");
        // Try seeds until the shuffle puts the failing tracker first, so the
        // move to the front is observable (bounded: a coin flip per seed).
        let mut client = None;
        for seed in 0..64 {
            let mut cfg = config(100, 0);
            cfg.rng_seed = seed;
            let c = TrackerClient::with_config(
                vec![vec![bad_url.clone(), good_url.clone()]],
                INFO_HASH,
                PEER_ID,
                6881,
                cfg,
            );
            if c.tiers()[0][0] == bad_url {
                client = Some(c);
                break;
            }
        }
        let mut client = client.expect("some seed shuffles the failing tracker first");
        client.announce(Event::Started, stats()).await.unwrap();
        assert_eq!(
            client.tiers(),
            vec![vec![good_url.clone(), bad_url.clone()]]
        );
        assert_eq!(good_hits.load(Ordering::SeqCst), 1);
    })
    .await
    .expect("test timed out");
}

#[test]
fn the_tier_shuffle_is_deterministic_per_seed() {
    let tier: Vec<String> = (0..8)
        .map(|i| format!("udp://127.0.0.1:{}/", 1000 + i))
        .collect();
    let make = |seed| {
        let cfg = TrackerConfig {
            rng_seed: seed,
            ..TrackerConfig::default()
        };
        TrackerClient::with_config(vec![tier.clone()], INFO_HASH, PEER_ID, 1, cfg).tiers()
    };
    assert_eq!(make(1), make(1));
    assert_ne!(
        make(1),
        make(2),
        "8! orders: two seeds agreeing is a bug, not luck"
    );
    let mut sorted = make(3)[0].clone();
    sorted.sort();
    let mut want = tier.clone();
    want.sort();
    assert_eq!(sorted, want, "a shuffle keeps every tracker");
}

#[tokio::test]
async fn no_usable_tracker() {
    let mut client = TrackerClient::new(
        vec![vec!["wss://example.invalid/".into(), "not a url".into()]],
        INFO_HASH,
        PEER_ID,
        1,
    );
    assert!(matches!(
        client.announce(Event::Started, stats()).await,
        Err(TrackerError::NoTrackers)
    ));
}

/// An HTTP server that answers every request with `response` (status line,
/// headers and body) and counts the requests.
async fn fake_http_server(response: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    fake_http_server_on(listener, response)
}

/// [`fake_http_server`] on a bound listener.
fn fake_http_server_on(listener: TcpListener, response: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let hits2 = hits.clone();
    tokio::spawn(async move {
        for _ in 0..100 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            hits2.fetch_add(1, Ordering::SeqCst);
            let mut req = vec![0u8; 4096];
            let mut got = 0;
            while got < req.len() && !req[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut req[got..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
        }
    });
    (addr, hits)
}

/// The one error of a client with one tracker.
async fn only_error(url: String, config: TrackerConfig) -> TrackerError {
    let mut client = TrackerClient::with_config(vec![vec![url]], INFO_HASH, PEER_ID, 6881, config);
    let err = client.announce(Event::Started, stats()).await.unwrap_err();
    let TrackerError::AllFailed(mut errors) = err else {
        panic!("{err:?}");
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.remove(0).1
}

#[tokio::test]
async fn a_failure_reason_with_escapes_is_shown_escaped() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let why = "\x1b]0;pwned\x07\x1b[2J\n2026-01-01 INFO download complete";
        let body = format!("d14:failure reason{}:{why}e", why.len());
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (addr, _) = fake_http_server(response.into_bytes()).await;
        let err = only_error(format!("http://{addr}/announce"), config(100, 0)).await;
        // The text is kept as sent; what is printed is escaped.
        assert!(
            matches!(&err, TrackerError::Failure(w) if w == why),
            "{err:?}"
        );
        let shown = err.to_string();
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert_eq!(
            shown,
            "tracker failure: \\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\n2026-01-01 INFO download complete"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn http_errors_name_their_cause() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // Nobody listens: connection refused, said as such.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = only_error(format!("http://127.0.0.1:{port}/announce"), config(100, 0)).await;
        let text = err.to_string();
        assert!(
            text.contains("cannot connect") && text.contains("onnection refused"),
            "{text}"
        );
        assert!(!text.contains("error sending request"), "{text}");

        // Accepts and never answers: a timeout.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            for _ in 0..10 {
                if let Ok((s, _)) = silent.accept().await {
                    held.push(s);
                }
            }
        });
        let mut short = config(100, 0);
        short.http_timeout = Duration::from_millis(300);
        let err = only_error(format!("http://{addr}/announce"), short).await;
        assert!(matches!(err, TrackerError::Timeout), "{err:?}");
        hold.abort();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn redirects_are_bounded() {
    use swarm_net::tracker::HTTP_REDIRECTS_MAX;
    tokio::time::timeout(TEST_TIMEOUT, async {
        // A tracker that redirects to itself forever.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let response = format!(
            "HTTP/1.1 302 Found\r\nLocation: http://{addr}/announce?again\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (addr2, hits) = fake_http_server_on(listener, response.into_bytes());
        let err = only_error(format!("http://{addr2}/announce"), config(100, 0)).await;
        let text = err.to_string();
        assert!(text.contains("redirect"), "{text}");
        assert_eq!(hits.load(Ordering::SeqCst), 1 + HTTP_REDIRECTS_MAX, "{text}");
    })
    .await
    .unwrap();
}

/// With `local_ip` (the session sets it from `--listen 127.0.0.x:PORT`),
/// announces leave from that IP, UDP and HTTP: the tracker then hands out
/// the address peers can reach us on.
#[tokio::test]
async fn announces_leave_from_the_local_ip() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let local: std::net::IpAddr = "127.0.0.6".parse().unwrap();
        let cfg = TrackerConfig {
            local_ip: Some(local),
            ..config(100, 0)
        };
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let url = format!("udp://{}/announce", udp.local_addr().unwrap());
        let mut client =
            TrackerClient::with_config(vec![vec![url]], INFO_HASH, PEER_ID, 6881, cfg.clone());
        let (announced, received) = tokio::join!(client.announce(Event::Started, stats()), async {
            let mut buf = [0u8; 2048];
            udp.recv_from(&mut buf).await.unwrap().1
        });
        assert!(announced.is_err(), "nobody answers");
        assert_eq!(received.ip(), local, "UDP from {received}");

        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/announce", http.local_addr().unwrap());
        let mut client = TrackerClient::with_config(vec![vec![url]], INFO_HASH, PEER_ID, 6881, cfg);
        let (announced, accepted) = tokio::join!(client.announce(Event::Started, stats()), async {
            let (stream, from) = http.accept().await.unwrap();
            drop(stream);
            from
        });
        assert!(announced.is_err(), "the connection is dropped");
        assert_eq!(accepted.ip(), local, "HTTP from {accepted}");
    })
    .await
    .expect("test timed out");
}
