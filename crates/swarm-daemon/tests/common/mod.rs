//! What the idle-cost tests share: small torrents on disk, and a daemon
//! (a client on loopback) that holds them seeding.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha1::{Digest, Sha1};
use swarm_daemon::service::{AddRequest, AddSource, Daemon, ServiceConfig};
use swarm_daemon::state::StateDir;
use swarm_net::{Client, ClientConfig, TorrentState};
use swarm_wire::{NewContent, TorrentBuilder};

pub const PIECE_BYTES: usize = 16 * 1024;

/// A small file of pseudo-random bytes in `dir` and its torrent: 20-64 KB,
/// 2 to 4 pieces (as the benchmark's 16-64 KiB files).
pub fn small_torrent(dir: &Path, i: usize) -> Vec<u8> {
    let len = 20_000 + (i % 45) * 997;
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

/// A daemon over a client on loopback, its state and data under `root`.
pub async fn start_daemon(root: &Path, sleep_when_idle: bool) -> Arc<Daemon> {
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let client = Client::start(ClientConfig {
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        sleep_when_idle,
        ..ClientConfig::default()
    })
    .await
    .expect("client");
    let state = StateDir::open(&root.join("state")).expect("state dir");
    Daemon::start(
        client,
        state,
        ServiceConfig {
            download_dir: data,
            allow_dirs: Vec::new(),
            watch_dir: None,
        },
    )
    .await
    .expect("daemon")
}

/// Adds torrents `range` (their data made in the daemon's folder) and
/// waits until every torrent it holds seeds (each checked its data): at
/// most 60 s.
pub async fn add_seeding(daemon: &Daemon, root: &Path, range: std::ops::Range<usize>) {
    let data = root.join("data");
    for i in range {
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
    let (mut seeding, mut all) = (0, 0);
    for _ in 0..600 {
        let list = daemon.list().await;
        all = list.len();
        seeding = list
            .iter()
            .filter(|v| v.status.state == TorrentState::Seeding && v.status.complete)
            .count();
        if seeding == all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seeding, all, "every torrent checks out and seeds");
}

/// Reads the counters once a `step` until they stop moving (the start-up's
/// work: checks, the first resume records), at most `steps` times.
pub async fn settle(client: &Client, step: Duration, steps: usize) {
    use std::sync::atomic::Ordering;
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
