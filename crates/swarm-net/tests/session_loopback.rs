//! Two sessions on loopback: a seeder with the data and a leecher without it.
//! The leecher must end with the same bytes, through the real drivers
//! (storage, connections, session) and the real core.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha1::{Digest, Sha1};
use swarm_net::session::{self, SessionConfig};
use swarm_net::{FileSpec, OpenMode, Storage, TorrentSpec};
use swarm_wire::lengths::Lengths;
use swarm_wire::{InfoHash, PeerId};

const DEADLINE: Duration = Duration::from_secs(60);

fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn spec_of(files: &[(&str, usize)], data: &[u8], piece_len: u32) -> TorrentSpec {
    let lengths = Lengths::new(data.len() as u64, piece_len).unwrap();
    TorrentSpec {
        info_hash: InfoHash(Sha1::digest(b"session_loopback").into()),
        name: "tree".into(),
        lengths,
        piece_hashes: data
            .chunks(piece_len as usize)
            .map(|c| Sha1::digest(c).into())
            .collect(),
        files: files
            .iter()
            .map(|&(p, len)| FileSpec::new(PathBuf::from("tree").join(p), len as u64))
            .collect(),
        trackers: vec![],
    }
}

fn write_tree(root: &Path, files: &[(&str, usize)], data: &[u8]) {
    let mut at = 0;
    for &(p, len) in files {
        let path = root.join("tree").join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &data[at..at + len]).unwrap();
        at += len;
    }
}

fn read_tree(root: &Path, files: &[(&str, usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(p, _) in files {
        out.extend(std::fs::read(root.join("tree").join(p)).unwrap());
    }
    out
}

async fn transfer(files: &[(&str, usize)], piece_len: u32) {
    let total: usize = files.iter().map(|f| f.1).sum();
    let data = content(total, total as u64);
    let spec = spec_of(files, &data, piece_len);
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    write_tree(&seed_dir, files, &data);

    let seed_storage = Arc::new(Storage::open(&seed_dir, &spec, OpenMode::Existing).unwrap());
    let have = seed_storage.check(false, &|_| {});
    assert!(have.is_all_set(), "the seeder's data checks");
    // Each peer on an IP of its own (the per-IP rules stay on).
    let seed_listener = session::bind_listener(Some("127.0.0.2:0".parse().unwrap()))
        .await
        .unwrap();
    let seed_addr = seed_listener.local_addr().unwrap();
    let seeder = session::spawn(
        &spec,
        seed_storage,
        have,
        seed_listener,
        SessionConfig::default(),
    );

    let leech_storage = Arc::new(Storage::open(&leech_dir, &spec, OpenMode::Create).unwrap());
    let none = swarm_engine::Bitfield::empty(spec.lengths.num_pieces());
    let leech_listener = session::bind_listener(Some("127.0.0.3:0".parse().unwrap()))
        .await
        .unwrap();
    let leecher = session::spawn(
        &spec,
        leech_storage,
        none,
        leech_listener,
        SessionConfig {
            peers: vec![seed_addr],
            ..SessionConfig::default()
        },
    );
    let mut status = leecher.watch();
    let done = tokio::time::timeout(DEADLINE, status.wait_for(|s| s.complete)).await;
    assert!(
        done.is_ok_and(|r| r.is_ok()),
        "leecher completes: {:?}",
        leecher.status()
    );
    leecher.stop();
    seeder.stop();
    let last = leecher.join().await.unwrap();
    assert_eq!(last.pieces_have, spec.lengths.num_pieces());
    let seeded = seeder.join().await.unwrap();
    assert!(seeded.uploaded >= total as u64, "{seeded:?}");
    assert!(read_tree(&leech_dir, files) == data, "same bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leecher_gets_a_multi_file_torrent_from_a_seeder() {
    transfer(
        &[
            ("a.bin", 100_003),
            ("empty", 0),
            ("sub/b.bin", 1_000_000),
            ("sub/c", 7),
        ],
        32 * 1024,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leecher_gets_a_single_file_of_big_pieces() {
    transfer(&[("one.bin", 5 * 1024 * 1024 + 11)], 1024 * 1024).await;
}

/// `--listen 127.0.0.4:0` listens there and dials from there: the peer it
/// dials sees 127.0.0.4, so peers on loopback have IPs of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_dials_from_its_listen_ip() {
    let files = [("f.bin", 1000)];
    let data = content(1000, 3);
    let spec = spec_of(&files, &data, 16 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(dir.path(), &spec, OpenMode::Create).unwrap());
    let none = swarm_engine::Bitfield::empty(spec.lengths.num_pieces());
    let other = tokio::net::TcpListener::bind("127.0.0.5:0").await.unwrap();
    let listener = session::bind_listener(Some("127.0.0.4:0".parse().unwrap()))
        .await
        .unwrap();
    let listen = listener.local_addr().unwrap();
    let leecher = session::spawn(
        &spec,
        storage,
        none,
        listener,
        SessionConfig {
            peers: vec![other.local_addr().unwrap()],
            ..SessionConfig::default()
        },
    );
    let (_sock, from) = tokio::time::timeout(DEADLINE, other.accept())
        .await
        .expect("the session dials its --peer")
        .unwrap();
    assert_eq!(from.ip(), listen.ip(), "dialled from {from}");
    leecher.stop();
    leecher.join().await.unwrap();
}

/// A peer that asks for a deep queue of blocks but never reads them costs a
/// bounded buffer: blocks stop being read for it once its send buffer is
/// full, and its requests wait as requests (12 bytes each), not as data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_read_costs_a_bounded_buffer() {
    use swarm_engine::PEER_REQUESTS_MAX;
    use swarm_net::conn::SEND_BUFFER_HIGH_BYTES;
    use swarm_wire::peer::{Handshake, Message};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const BLOCK: usize = 16 * 1024;
    let files = [("f.bin", PEER_REQUESTS_MAX * BLOCK)];
    let data = content(files[0].1, 9);
    let spec = spec_of(&files, &data, 256 * 1024);
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &files, &data);
    let storage = Arc::new(Storage::open(dir.path(), &spec, OpenMode::Existing).unwrap());
    let have = storage.check(false, &|_| {});
    let listener = session::bind_listener(Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let seeder = session::spawn(&spec, storage, have, listener, SessionConfig::default());

    // A small receive buffer, so the kernel holds little of what is sent.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut sock = socket.connect(addr).await.unwrap();
    sock.write_all(&Handshake::new(spec.info_hash, PeerId(*b"-XX0001-notreading!!")).to_bytes())
        .await
        .unwrap();
    let mut hs = [0u8; 68];
    sock.read_exact(&mut hs).await.unwrap();
    sock.write_all(&Message::Interested.to_bytes())
        .await
        .unwrap();
    // The whole queue at once (32 MiB of blocks); then never a read.
    let mut batch = Vec::new();
    for i in 0..PEER_REQUESTS_MAX as u32 {
        let req = Message::Request {
            piece: i / 16,
            offset: (i % 16) * BLOCK as u32,
            length: BLOCK as u32,
        };
        batch.extend_from_slice(&req.to_bytes());
    }
    sock.write_all(&batch).await.unwrap();
    // Wait until the seeder sends no more (bounded: 5 s of 100 ms steps).
    let mut last = u64::MAX;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let up = seeder.status().uploaded;
        if up == last && up > 0 {
            break;
        }
        last = up;
    }
    let status = seeder.status();
    // What left the session: the send buffer's high mark plus one round of
    // reads, plus what the kernel buffers (loopback's send buffer grows to
    // 4 MiB at most; our receive buffer is small). Without the bound it is
    // all 32 MiB.
    let kernel = 6 * 1024 * 1024;
    let bound = (SEND_BUFFER_HIGH_BYTES + 32 * BLOCK + kernel) as u64;
    assert!(
        status.uploaded > 0 && status.uploaded <= bound,
        "sent {} bytes to a peer that reads nothing (bound {bound})",
        status.uploaded
    );
    assert_eq!(
        status.peers, 1,
        "it is not dropped: it costs a bounded buffer"
    );
    // Once it reads, the rest of its queue comes.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let want = PEER_REQUESTS_MAX * (BLOCK + 13);
    let read_all = async {
        while got < want {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {got} bytes");
            got += n;
        }
    };
    tokio::time::timeout(DEADLINE, read_all)
        .await
        .expect("the queue is served once the peer reads");
    seeder.stop();
    seeder.join().await.unwrap();
}

/// A leecher whose disk is full stops with the write error, and no piece
/// counts as had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_download_with_the_error() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let files = [("f.bin", 256 * 1024)];
    let data = content(files[0].1, 5);
    let spec = spec_of(&files, &data, 64 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    write_tree(&seed_dir, &files, &data);
    let storage = Arc::new(Storage::open(&seed_dir, &spec, OpenMode::Existing).unwrap());
    let have = storage.check(false, &|_| {});
    let listener = session::bind_listener(Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let seed_addr = listener.local_addr().unwrap();
    let seeder = session::spawn(&spec, storage, have, listener, SessionConfig::default());

    // /dev/full takes the open and fails every write with ENOSPC.
    std::fs::create_dir_all(leech_dir.join("tree")).unwrap();
    std::os::unix::fs::symlink("/dev/full", leech_dir.join("tree/f.bin")).unwrap();
    let storage = Arc::new(Storage::open(&leech_dir, &spec, OpenMode::Existing).unwrap());
    let none = swarm_engine::Bitfield::empty(spec.lengths.num_pieces());
    let listener = session::bind_listener(Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let leecher = session::spawn(
        &spec,
        storage,
        none,
        listener,
        SessionConfig {
            peers: vec![seed_addr],
            ..SessionConfig::default()
        },
    );
    let mut status = leecher.watch();
    // `is_ok()` drops the watch guard at once: holding it would block the
    // session's next status update.
    let failed = tokio::time::timeout(DEADLINE, status.wait_for(|s| s.error.is_some()))
        .await
        .is_ok();
    assert!(failed, "the leecher stops: {:?}", leecher.status());
    let last = leecher.status();
    assert_eq!(last.pieces_have, 0, "{last:?}");
    let err = leecher.join().await.expect_err("a fatal error");
    assert!(err.to_string().contains("f.bin"), "{err}");
    seeder.stop();
    seeder.join().await.unwrap();
}
