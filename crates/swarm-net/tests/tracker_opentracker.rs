//! Tracker client against a real opentracker on loopback, over HTTP and UDP:
//! two peers announce and see each other, scrape counts them, `stopped`
//! removes them. Needs `opentracker` (fails under CI=true without it).

use std::net::SocketAddr;
use std::time::Duration;

use swarm_net::tracker::{AnnounceStats, TrackerClient, TrackerConfig, TrackerError, UdpRetry};
use swarm_testkit::tracker::{OPENTRACKER, Opentracker};
use swarm_testkit::{TestDir, free_addr, require_program};
use swarm_wire::tracker::{AnnounceResponse, Event};
use swarm_wire::{InfoHash, PeerId};

const INFO_HASH: InfoHash = InfoHash(*b"swarm-tracker-test-1");
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

fn client(url: &str, peer: u8, port: u16) -> TrackerClient {
    let mut peer_id = *b"-SW0001-000000000000";
    peer_id[19] = peer;
    TrackerClient::with_config(
        vec![vec![url.to_owned()]],
        INFO_HASH,
        PeerId(peer_id),
        port,
        TrackerConfig {
            // Loopback answers in microseconds; 1 s keeps a lost packet cheap.
            udp_retry: UdpRetry {
                base_timeout: Duration::from_secs(1),
                exponent_max: 3,
            },
            http_timeout: Duration::from_secs(10),
            numwant: Some(50),
            rng_seed: u64::from(peer),
            local_ip: None,
        },
    )
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn two_peers_see_each_other(url: String) {
    let (port_a, port_b) = (40001, 40002);
    let mut a = client(&url, b'a', port_a);
    let mut b = client(&url, b'b', port_b);
    let leech = AnnounceStats {
        uploaded: 0,
        downloaded: 0,
        left: 1000,
    };
    let seed = AnnounceStats {
        uploaded: 0,
        downloaded: 1000,
        left: 0,
    };

    let first = a.announce(Event::Started, leech).await.expect("a started");
    assert!(first.interval > 0, "{first:?}");
    let second = b.announce(Event::Started, seed).await.expect("b started");
    assert!(
        second.peers.contains(&loopback(port_a)),
        "b should see a: {:?}",
        second.peers
    );
    assert_eq!(second.complete, Some(1), "b is a seeder: {second:?}");
    assert_eq!(second.incomplete, Some(1), "a is a leecher: {second:?}");

    // a's regular re-announce sees b. Over HTTP opentracker sends a
    // `min interval`, which the client enforces; a fresh client for the
    // same peer (same peer id and port) stands in for "later".
    let again = reannounce(&mut a, &url, b'a', port_a, first.min_interval, leech).await;
    assert!(
        again.peers.contains(&loopback(port_b)),
        "a should see b: {:?}",
        again.peers
    );

    let stats = a.scrape().await.expect("scrape");
    assert_eq!((stats.complete, stats.incomplete), (1, 1), "{stats:?}");

    b.announce(Event::Stopped, seed).await.expect("b stopped");
    assert_eq!(b.next_announce_in(), None);
    let stats = a.scrape().await.expect("scrape after stopped");
    assert_eq!(
        (stats.complete, stats.incomplete),
        (0, 1),
        "b gone: {stats:?}"
    );
    let after = reannounce(&mut a, &url, b'a', port_a, first.min_interval, leech).await;
    assert!(
        !after.peers.contains(&loopback(port_b)),
        "{:?}",
        after.peers
    );
}

/// A regular announce by `peer`: refused as too soon exactly when the
/// tracker sent a min interval, then made from a fresh client.
async fn reannounce(
    current: &mut TrackerClient,
    url: &str,
    peer: u8,
    port: u16,
    min_interval: Option<u32>,
    stats: AnnounceStats,
) -> AnnounceResponse {
    match current.announce(Event::None, stats).await {
        Err(TrackerError::TooSoon { .. }) => {
            assert!(min_interval.is_some(), "TooSoon without a min interval");
            client(url, peer, port)
                .announce(Event::None, stats)
                .await
                .expect("re-announce")
        }
        Ok(response) => {
            assert!(
                min_interval.is_none(),
                "min interval {min_interval:?} not enforced"
            );
            response
        }
        Err(e) => panic!("re-announce: {e}"),
    }
}

fn start_tracker(dir: &TestDir) -> Option<Opentracker> {
    if !require_program(OPENTRACKER) {
        return None;
    }
    Some(Opentracker::start_at(
        &dir.sub("tracker"),
        free_addr(),
        &[&INFO_HASH.to_hex()],
    ))
}

#[tokio::test]
async fn http_announce_scrape_and_stop_against_opentracker() {
    let dir = TestDir::new("tracker-http");
    let Some(tracker) = start_tracker(&dir) else {
        return;
    };
    tokio::time::timeout(
        TEST_TIMEOUT,
        two_peers_see_each_other(tracker.http_announce()),
    )
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn udp_announce_scrape_and_stop_against_opentracker() {
    let dir = TestDir::new("tracker-udp");
    let Some(tracker) = start_tracker(&dir) else {
        return;
    };
    tokio::time::timeout(
        TEST_TIMEOUT,
        two_peers_see_each_other(tracker.udp_announce()),
    )
    .await
    .expect("test timed out");
}
