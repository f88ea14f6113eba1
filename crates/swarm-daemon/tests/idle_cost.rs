//! What idle torrents cost the daemon: torrents seeding with no peers wake
//! nothing and publish nothing. Measured by the client's counters (every
//! wake-up of a torrent's owner task, every published status) over a real
//! window, not by timing anything: before this was built, each torrent woke
//! and published once a second (`TORRENTS × WINDOW_S` at least).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{add_seeding, settle, start_daemon};
use swarm_daemon::service::{Daemon, Ids};
use swarm_net::TorrentState;

const TORRENTS: usize = 40;
/// The window over which idle torrents are watched.
const WINDOW: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_seeding_torrents_wake_nothing_and_publish_nothing() {
    idle_torrents(false).await;
}

/// As the daemon runs them: idle sessions sleep (no task at all), and a
/// peer that connects to one wakes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_seeding_torrents_sleep_and_a_peer_wakes_one() {
    idle_torrents(true).await;
}

async fn idle_torrents(sleep_when_idle: bool) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(tmp.path(), sleep_when_idle).await;
    add_seeding(&daemon, tmp.path(), 0..TORRENTS).await;
    let client = daemon.client();
    settle(client, Duration::from_secs(1), 30).await;

    let counters = client.counters();
    let (wakeups, publications) = (
        counters.session_wakeups.load(Ordering::Relaxed),
        counters.publications.load(Ordering::Relaxed),
    );
    let before = daemon.list().await;
    tokio::time::sleep(WINDOW).await;
    let after = daemon.list().await;
    let woke = counters.session_wakeups.load(Ordering::Relaxed) - wakeups;
    let published = counters.publications.load(Ordering::Relaxed) - publications;
    eprintln!(
        "{TORRENTS} idle torrents over {WINDOW:?}: {woke} wake-ups, {published} statuses published"
    );
    // Once a second each, before: TORRENTS × 3 of each.
    assert!(
        woke < TORRENTS as u64 / 4,
        "idle torrents woke {woke} times in {WINDOW:?}"
    );
    assert!(
        published < TORRENTS as u64 / 4,
        "idle torrents published {published} statuses in {WINDOW:?}"
    );
    // The status read is still current: the time since each was added runs
    // on without a publication.
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.status.state, TorrentState::Seeding);
        assert!(a.status.elapsed_s >= b.status.elapsed_s + 2.0);
    }

    if sleep_when_idle {
        assert_eq!(
            counters.sessions_asleep(),
            TORRENTS as u64,
            "every idle session sleeps"
        );
        peer_wakes(&daemon, &after[1]).await;
    }

    // An idle torrent still answers at once: stopped, its status says so.
    let first = after[0].id;
    daemon
        .set_paused(
            &Ids::Some(vec![swarm_daemon::service::IdRef::Id(first)]),
            true,
        )
        .await
        .expect("pause");
    let mut stopped = false;
    for _ in 0..100 {
        let view = daemon.list().await.into_iter().find(|v| v.id == first);
        if view.is_some_and(|v| v.paused && v.status.state.is_final()) {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "a paused idle torrent stops");
    daemon.shutdown().await;
}

/// A peer connects to a sleeping torrent: the endpoint routes its
/// handshake, the session wakes, answers and sends what it has.
async fn peer_wakes(daemon: &Daemon, view: &swarm_daemon::service::TorrentView) {
    use swarm_wire::peer::Handshake;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let info_hash = swarm_wire::InfoHash::from_hex(&view.status.info_hash).expect("info-hash");
    let counters = daemon.client().counters();
    let wakes = counters.session_wakes.load(Ordering::Relaxed);
    let mut sock = tokio::net::TcpStream::connect(daemon.client().listen_addr())
        .await
        .expect("connect");
    let ours = Handshake::new(info_hash, swarm_wire::PeerId(*b"-XX0001-idlecostpeer"));
    sock.write_all(&ours.to_bytes()).await.expect("handshake");
    let mut theirs = [0u8; 68];
    tokio::time::timeout(Duration::from_secs(10), sock.read_exact(&mut theirs))
        .await
        .expect("answered in time")
        .expect("its handshake");
    assert_eq!(&theirs[28..48], &info_hash.0[..], "the torrent answers");
    // Its first message says what it has: all of it (a bitfield, or BEP
    // 6's have-all: id 14). Keep-alives (length 0) skipped.
    let pieces = view.status.pieces_total;
    let (id, payload) = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut len = [0u8; 4];
            sock.read_exact(&mut len).await.expect("a message length");
            let len = u32::from_be_bytes(len) as usize;
            if len == 0 {
                continue;
            }
            assert!(
                len <= 1 + pieces.div_ceil(8) as usize,
                "a first message of {len} bytes"
            );
            let mut msg = vec![0u8; len];
            sock.read_exact(&mut msg).await.expect("a message");
            return (msg[0], msg[1..].to_vec());
        }
    })
    .await
    .expect("a first message in time");
    match id {
        14 => {}
        5 => assert_eq!(
            payload.iter().map(|x| x.count_ones()).sum::<u32>(),
            pieces,
            "a full bitfield"
        ),
        other => panic!("first message id {other}"),
    }
    assert!(
        counters.session_wakes.load(Ordering::Relaxed) > wakes,
        "the session woke for the peer"
    );
    assert!(counters.sessions_asleep() < TORRENTS as u64);
}
