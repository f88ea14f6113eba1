//! What idle torrents cost the daemon: torrents seeding with no peers wake
//! nothing and publish nothing. Measured by the client's counters (every
//! wake-up of a torrent's owner task, every published status) over a real
//! window, not by timing anything: before this was built, each torrent woke
//! and published once a second (`TORRENTS × WINDOW_S` at least).

use std::sync::atomic::Ordering;
use std::time::Duration;

use sha1::{Digest, Sha1};
use swarm_daemon::service::{AddRequest, AddSource, Daemon, Ids, ServiceConfig};
use swarm_daemon::state::StateDir;
use swarm_net::{Client, ClientConfig, TorrentState};
use swarm_wire::{NewContent, TorrentBuilder};

const TORRENTS: usize = 40;
const PIECE_BYTES: usize = 16 * 1024;
/// The window over which idle torrents are watched.
const WINDOW: Duration = Duration::from_secs(3);

/// A small file of pseudo-random bytes in `dir` and its torrent.
fn small_torrent(dir: &std::path::Path, i: usize) -> Vec<u8> {
    let len = 20_000 + i * 997;
    let mut x = i as u64 + 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let name = format!("small-{i:03}.bin");
    std::fs::write(dir.join(&name), &data).expect("write data");
    let hashes = data
        .chunks(PIECE_BYTES)
        .map(|c| Sha1::digest(c).into())
        .collect();
    let builder = TorrentBuilder::new(
        name,
        PIECE_BYTES as u32,
        NewContent::File { length: len as u64 },
        hashes,
    );
    builder.build().expect("build torrent").0
}

/// Reads the counters once a `step` until they stop moving (the start-up's
/// work: checks, the first resume records), at most `steps` times.
async fn settle(client: &Client, step: Duration, steps: usize) {
    let mut last = client.counters().session_wakeups.load(Ordering::Relaxed);
    for _ in 0..steps {
        tokio::time::sleep(step).await;
        let now = client.counters().session_wakeups.load(Ordering::Relaxed);
        if now == last {
            return;
        }
        last = now;
    }
}

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
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let client = Client::start(ClientConfig {
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        sleep_when_idle,
        ..ClientConfig::default()
    })
    .await
    .expect("client");
    let state = StateDir::open(&tmp.path().join("state")).expect("state dir");
    let daemon = Daemon::start(
        client,
        state,
        ServiceConfig {
            download_dir: data.clone(),
            allow_dirs: Vec::new(),
            watch_dir: None,
        },
    )
    .await
    .expect("daemon");
    for i in 0..TORRENTS {
        let added = daemon
            .add(AddRequest {
                source: AddSource::Metainfo(small_torrent(&data, i)),
                download_dir: None,
                paused: false,
            })
            .await
            .expect("add");
        assert!(!added.duplicate);
    }
    // All seeding (each checked its data): at most 60 s.
    let mut seeding = 0;
    for _ in 0..600 {
        seeding = daemon
            .list()
            .await
            .iter()
            .filter(|v| v.status.state == TorrentState::Seeding && v.status.complete)
            .count();
        if seeding == TORRENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seeding, TORRENTS, "every torrent checks out and seeds");
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
