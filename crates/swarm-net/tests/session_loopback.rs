//! Clients on loopback: a seeder with the data and a leecher without it.
//! The leecher must end with the same bytes, through the real drivers
//! (the endpoint driver, storage, connections, session), the real endpoint
//! and the real core. Also: several torrents on one port, and a handshake
//! for a torrent the client does not serve is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha1::{Digest, Sha1};
use swarm_net::{
    AddOptions, Client, ClientConfig, FileSpec, OpenMode, TorrentHandle, TorrentSpec, TorrentState,
};
use swarm_wire::lengths::Lengths;
use swarm_wire::{InfoHash, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    named_spec("tree", files, data, piece_len)
}

fn named_spec(name: &str, files: &[(&str, usize)], data: &[u8], piece_len: u32) -> TorrentSpec {
    let lengths = Lengths::new(data.len() as u64, piece_len).unwrap();
    TorrentSpec {
        info_hash: InfoHash(Sha1::digest(name.as_bytes()).into()),
        name: name.into(),
        lengths,
        piece_hashes: data
            .chunks(piece_len as usize)
            .map(|c| Sha1::digest(c).into())
            .collect(),
        files: files
            .iter()
            .map(|&(p, len)| FileSpec::new(PathBuf::from(name).join(p), len as u64))
            .collect(),
        trackers: vec![],
    }
}

fn write_tree(root: &Path, files: &[(&str, usize)], data: &[u8]) {
    write_named(root, "tree", files, data);
}

fn write_named(root: &Path, name: &str, files: &[(&str, usize)], data: &[u8]) {
    let mut at = 0;
    for &(p, len) in files {
        let path = root.join(name).join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &data[at..at + len]).unwrap();
        at += len;
    }
}

fn read_tree(root: &Path, files: &[(&str, usize)]) -> Vec<u8> {
    read_named(root, "tree", files)
}

fn read_named(root: &Path, name: &str, files: &[(&str, usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(p, _) in files {
        out.extend(std::fs::read(root.join(name).join(p)).unwrap());
    }
    out
}

/// A client listening on `ip` (an ephemeral port): each peer on an IP of
/// its own, so the per-IP rules stay on.
async fn client(ip: &str) -> Client {
    Client::start(ClientConfig {
        listen: Some(format!("{ip}:0").parse().unwrap()),
        ..ClientConfig::default()
    })
    .await
    .unwrap()
}

/// Adds `spec` to `client` as a seed of the data in `dir` and waits until
/// it seeds (its check done).
async fn seed(client: &Client, spec: &TorrentSpec, dir: &Path) -> TorrentHandle {
    let handle = client
        .add_torrent(spec.clone(), AddOptions::new(dir, OpenMode::Existing))
        .unwrap();
    let mut status = handle.watch();
    let seeding = tokio::time::timeout(
        DEADLINE,
        status.wait_for(|s| s.state == TorrentState::Seeding || s.state.is_final()),
    )
    .await
    .is_ok();
    assert!(seeding, "the seeder's check ends");
    let s = handle.status();
    assert_eq!(
        s.state,
        TorrentState::Seeding,
        "the seeder's data checks: {s:?}"
    );
    handle
}

fn leech_options(dir: &Path, peer: std::net::SocketAddr) -> AddOptions {
    AddOptions {
        peers: vec![peer],
        ..AddOptions::new(dir, OpenMode::Create)
    }
}

async fn wait_complete(handle: &TorrentHandle) {
    let mut status = handle.watch();
    let done = tokio::time::timeout(
        DEADLINE,
        status.wait_for(|s| s.complete || s.state.is_final()),
    )
    .await
    .is_ok();
    assert!(
        done && handle.status().complete,
        "leecher completes: {:?}",
        handle.status()
    );
}

async fn transfer(files: &[(&str, usize)], piece_len: u32) {
    let total: usize = files.iter().map(|f| f.1).sum();
    let data = content(total, total as u64);
    let spec = spec_of(files, &data, piece_len);
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    write_tree(&seed_dir, files, &data);

    let seed_client = client("127.0.0.2").await;
    let seeder = seed(&seed_client, &spec, &seed_dir).await;
    let leech_client = client("127.0.0.3").await;
    let leecher = leech_client
        .add_torrent(
            spec.clone(),
            leech_options(&leech_dir, seed_client.listen_addr()),
        )
        .unwrap();
    wait_complete(&leecher).await;
    leecher.stop();
    seeder.stop();
    let last = leecher.join().await.unwrap();
    assert_eq!(last.pieces_have, spec.lengths.num_pieces());
    assert_eq!(last.state, TorrentState::Completed);
    assert!(last.is_final);
    let seeded = seeder.join().await.unwrap();
    assert!(seeded.uploaded >= total as u64, "{seeded:?}");
    assert!(read_tree(&leech_dir, files) == data, "same bytes");
    leech_client.shutdown().await;
    seed_client.shutdown().await;
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

/// A peer that asks for a deep queue of blocks but never reads them costs a
/// bounded buffer: blocks stop being read for it once its send buffer is
/// full, and its requests wait as requests (12 bytes each), not as data.
/// Waits (bounded) until `n` sessions of `client` sleep.
async fn wait_asleep(client: &Client, n: u64) {
    for _ in 0..300 {
        if client.counters().sessions_asleep() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{} sessions asleep, not {n}",
        client.counters().sessions_asleep()
    );
}

/// A seeder whose idle session sleeps (no task: plain data in the driver)
/// wakes for a leecher that connects, serves it all, and a stop reaches it
/// asleep as awake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_seed_wakes_for_a_peer_and_stops_asleep() {
    let files = [("a.bin", 300_000), ("b.bin", 70_000)];
    let total: usize = files.iter().map(|f| f.1).sum();
    let data = content(total, 77);
    let spec = spec_of(&files, &data, 32 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    write_tree(&seed_dir, &files, &data);
    let seed_client = Client::start(ClientConfig {
        listen: Some("127.0.0.2:0".parse().unwrap()),
        sleep_when_idle: true,
        ..ClientConfig::default()
    })
    .await
    .unwrap();
    let seeder = seed(&seed_client, &spec, &seed_dir).await;
    // A second torrent, stopped while it sleeps.
    let other_files = [("c.bin", 40_000)];
    let other_data = content(40_000, 78);
    let other = named_spec("other", &other_files, &other_data, 16 * 1024);
    write_named(&seed_dir, "other", &other_files, &other_data);
    let other_handle = seed(&seed_client, &other, &seed_dir).await;
    wait_asleep(&seed_client, 2).await;

    let leech_client = client("127.0.0.3").await;
    let leecher = leech_client
        .add_torrent(
            spec.clone(),
            leech_options(&leech_dir, seed_client.listen_addr()),
        )
        .unwrap();
    wait_complete(&leecher).await;
    assert!(read_tree(&leech_dir, &files) == data, "same bytes");
    assert!(
        seed_client
            .counters()
            .session_wakes
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1,
        "the seeder woke for the leecher"
    );

    other_handle.stop();
    let last = tokio::time::timeout(DEADLINE, other_handle.join())
        .await
        .expect("a sleeping torrent stops")
        .unwrap();
    assert!(last.is_final);
    assert_eq!(last.state, TorrentState::Completed);
    leecher.stop();
    leecher.join().await.unwrap();
    seeder.stop();
    let seeded = seeder.join().await.unwrap();
    assert!(seeded.uploaded >= total as u64, "{seeded:?}");
    leech_client.shutdown().await;
    seed_client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_read_costs_a_bounded_buffer() {
    use swarm_engine::PEER_REQUESTS_MAX;
    use swarm_net::conn::SEND_BUFFER_HIGH_BYTES;
    use swarm_wire::peer::{Handshake, Message};

    const BLOCK: usize = 16 * 1024;
    let files = [("f.bin", PEER_REQUESTS_MAX * BLOCK)];
    let data = content(files[0].1, 9);
    let spec = spec_of(&files, &data, 256 * 1024);
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &files, &data);
    let seed_client = client("127.0.0.2").await;
    let seeder = seed(&seed_client, &spec, dir.path()).await;
    let addr = seed_client.listen_addr();

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
    seed_client.shutdown().await;
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
    let seed_client = client("127.0.0.2").await;
    let seeder = seed(&seed_client, &spec, &seed_dir).await;

    // /dev/full takes the open and fails every write with ENOSPC.
    std::fs::create_dir_all(leech_dir.join("tree")).unwrap();
    std::os::unix::fs::symlink("/dev/full", leech_dir.join("tree/f.bin")).unwrap();
    let leech_client = client("127.0.0.3").await;
    let leecher = leech_client
        .add_torrent(
            spec.clone(),
            AddOptions {
                resume: false,
                ..leech_options(&leech_dir, seed_client.listen_addr())
            },
        )
        .unwrap();
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

/// One seeding client serves two torrents on its one port; one leeching
/// client downloads both at once from it (one listener each side, the
/// endpoint routing each handshake to its torrent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_torrents_on_one_port_both_ways() {
    let files_a = [("a.bin", 700_001)];
    let files_b = [("b1.bin", 300_000), ("b2.bin", 123_457)];
    let data_a = content(700_001, 1);
    let data_b = content(423_457, 2);
    let spec_a = named_spec("alpha", &files_a, &data_a, 64 * 1024);
    let spec_b = named_spec("beta", &files_b, &data_b, 32 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    write_named(&seed_dir, "alpha", &files_a, &data_a);
    write_named(&seed_dir, "beta", &files_b, &data_b);

    let seed_client = client("127.0.0.2").await;
    let seed_a = seed(&seed_client, &spec_a, &seed_dir).await;
    let seed_b = seed(&seed_client, &spec_b, &seed_dir).await;
    assert_eq!(seed_client.status().len(), 2);
    let port = seed_client.listen_addr();
    let leech_client = client("127.0.0.3").await;
    let leech_a = leech_client
        .add_torrent(spec_a.clone(), leech_options(&leech_dir, port))
        .unwrap();
    let leech_b = leech_client
        .add_torrent(spec_b.clone(), leech_options(&leech_dir, port))
        .unwrap();
    assert!(
        leech_client
            .add_torrent(spec_a.clone(), leech_options(&leech_dir, port))
            .is_err(),
        "a torrent is added once"
    );
    wait_complete(&leech_a).await;
    wait_complete(&leech_b).await;
    let statuses = leech_client.status();
    let names: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"alpha") && names.contains(&"beta"),
        "{names:?}"
    );
    for s in &statuses {
        assert!(s.complete, "{s:?}");
        assert_eq!(s.info_hash.len(), 40);
    }
    assert!(
        read_named(&leech_dir, "alpha", &files_a) == data_a,
        "alpha: same bytes"
    );
    assert!(
        read_named(&leech_dir, "beta", &files_b) == data_b,
        "beta: same bytes"
    );
    let removed = leech_client.remove(&spec_a.info_hash).await.unwrap();
    assert!(removed.is_final && removed.complete, "{removed:?}");
    assert_eq!(leech_client.status().len(), 1);
    leech_client.shutdown().await;
    for h in [seed_a, seed_b] {
        h.stop();
        let last = h.join().await.unwrap();
        assert!(last.uploaded > 0, "each torrent uploaded: {last:?}");
    }
    seed_client.shutdown().await;
}

/// On the shared port, a handshake naming a torrent the client does not
/// serve is refused (closed, our handshake and peer id not sent); one
/// naming a served torrent is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_for_an_unknown_torrent_is_refused() {
    use swarm_wire::peer::Handshake;

    let files = [("f.bin", 100_000)];
    let data = content(100_000, 3);
    let spec = spec_of(&files, &data, 32 * 1024);
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &files, &data);
    let seed_client = client("127.0.0.2").await;
    let seeder = seed(&seed_client, &spec, dir.path()).await;
    let addr = seed_client.listen_addr();
    let them = PeerId(*b"-XX0001-handshaking!");

    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(&Handshake::new(InfoHash([0x5a; 20]), them).to_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 68];
    let n = tokio::time::timeout(DEADLINE, sock.read(&mut buf))
        .await
        .expect("the refusal comes at once");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "closed without an answer: {n:?}"
    );

    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(&Handshake::new(spec.info_hash, them).to_bytes())
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, sock.read_exact(&mut buf))
        .await
        .expect("answered in time")
        .expect("our torrent's handshake is answered");
    assert_eq!(&buf[28..48], &spec.info_hash.0, "it names the torrent");
    seeder.stop();
    seeder.join().await.unwrap();
    seed_client.shutdown().await;
}

/// `--listen 127.0.0.4:0` listens there and dials from there: the peer it
/// dials sees 127.0.0.4, so peers on loopback have IPs of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dials_from_its_listen_ip() {
    let files = [("f.bin", 1000)];
    let data = content(1000, 3);
    let spec = spec_of(&files, &data, 16 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let other = tokio::net::TcpListener::bind("127.0.0.5:0").await.unwrap();
    let leech_client = client("127.0.0.4").await;
    let leecher = leech_client
        .add_torrent(
            spec.clone(),
            leech_options(dir.path(), other.local_addr().unwrap()),
        )
        .unwrap();
    let (_sock, from) = tokio::time::timeout(DEADLINE, other.accept())
        .await
        .expect("the client dials its --peer")
        .unwrap();
    assert_eq!(
        from.ip(),
        leech_client.listen_addr().ip(),
        "dialled from {from}"
    );
    leecher.stop();
    leecher.join().await.unwrap();
    leech_client.shutdown().await;
}

/// A one-file torrent's info dictionary (bencoded) and its spec.
fn info_dict(name: &str, data: &[u8], piece_len: u32) -> (Vec<u8>, TorrentSpec) {
    info_dict_of(name, data, piece_len, false)
}

/// The same, private (BEP 27) if `private`.
fn info_dict_of(name: &str, data: &[u8], piece_len: u32, private: bool) -> (Vec<u8>, TorrentSpec) {
    let mut pieces = Vec::new();
    for c in data.chunks(piece_len as usize) {
        pieces.extend_from_slice(&Sha1::digest(c));
    }
    let mut info = format!(
        "d6:lengthi{}e4:name{}:{name}12:piece lengthi{piece_len}e6:pieces{}:",
        data.len(),
        name.len(),
        pieces.len()
    )
    .into_bytes();
    info.extend_from_slice(&pieces);
    if private {
        info.extend_from_slice(b"7:privatei1e");
    }
    info.push(b'e');
    let meta = swarm_wire::metainfo::Metainfo::from_info_bytes(&info).unwrap();
    (info, TorrentSpec::from_metainfo(&meta))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magnet_link_gets_its_metadata_from_a_seeder_then_its_data() {
    let data = content(300_001, 9);
    let (info, spec) = info_dict("magnet.bin", &data, 16_384);
    let (seed_dir, leech_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(seed_dir.path().join("magnet.bin"), &data).unwrap();
    let seeder = client("127.0.0.1").await;
    let handle = seeder
        .add_torrent(
            spec.clone(),
            AddOptions {
                metadata: Some(info.clone().into()),
                ..AddOptions::new(seed_dir.path(), OpenMode::Existing)
            },
        )
        .unwrap();
    let mut st = handle.watch();
    st.wait_for(|s| s.state == TorrentState::Seeding)
        .await
        .unwrap();
    let leecher = client("127.0.0.1").await;
    let magnet =
        swarm_wire::Magnet::parse(&format!("magnet:?xt=urn:btih:{}", spec.info_hash.to_hex()))
            .unwrap();
    let leech = leecher
        .add_magnet(
            magnet.clone(),
            leech_options(leech_dir.path(), seeder.listen_addr()),
        )
        .unwrap();
    // (Its first status says `metadata`: see the next test; here the
    // metadata may be in before anyone looks.)
    wait_complete(&leech).await;
    assert_eq!(leech.status().name, "magnet.bin");
    assert_eq!(
        std::fs::read(leech_dir.path().join("magnet.bin")).unwrap(),
        data
    );
    let saved = swarm_net::magnet::saved_torrent_path(leech_dir.path(), spec.info_hash);
    let meta = swarm_wire::metainfo::Metainfo::from_bytes(&std::fs::read(saved).unwrap()).unwrap();
    assert_eq!(meta.info_hash(), spec.info_hash);
    assert_eq!(meta.info_bytes(), &info[..]);
    leecher.shutdown().await;
    seeder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magnet_link_stopped_before_its_metadata_ends_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let c = client("127.0.0.1").await;
    let magnet = swarm_wire::Magnet::parse(&format!(
        "magnet:?xt=urn:btih:{}&dn=nowhere",
        "ab".repeat(20)
    ))
    .unwrap();
    let handle = c
        .add_magnet(magnet, AddOptions::new(dir.path(), OpenMode::Create))
        .unwrap();
    let s = handle.status();
    assert_eq!(
        (s.state, s.name.as_str()),
        (TorrentState::Metadata, "nowhere")
    );
    handle.stop();
    let last = tokio::time::timeout(DEADLINE, handle.join())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.state, TorrentState::Stopped);
    assert!(last.is_final);
    // Nothing was written: no data, no saved metadata.
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    c.shutdown().await;
}

/// What a raw peer on `dht_node`'s IP (extension protocol and DHT bits
/// set, sending a `port` message naming `dht_node`) receives from a seeder
/// in its first moments: our handshake, then messages until 300 ms after
/// the extension handshake.
async fn first_messages(
    addr: std::net::SocketAddr,
    info_hash: InfoHash,
    dht_node: std::net::SocketAddr,
) -> (swarm_wire::peer::Handshake, Vec<swarm_wire::peer::Message>) {
    use swarm_wire::peer::{EXTENDED_HANDSHAKE_ID, Handshake, Message, MessageDecoder};
    let them = PeerId(*b"-XX0001-raw-peer-ext");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(dht_node.ip(), 0))
        .unwrap();
    let mut sock = socket.connect(addr).await.unwrap();
    let ours = Handshake::new(info_hash, them).with_extensions(true, true, true);
    sock.write_all(&ours.to_bytes()).await.unwrap();
    let mut hs = [0u8; 68];
    tokio::time::timeout(DEADLINE, sock.read_exact(&mut hs))
        .await
        .unwrap()
        .unwrap();
    let theirs = Handshake::from_bytes(&hs).unwrap();
    let mut port = bytes::BytesMut::new();
    Message::Port(dht_node.port()).encode_into(&mut port);
    sock.write_all(&port).await.unwrap();
    let mut decoder = MessageDecoder::new(1024);
    let mut buf = bytes::BytesMut::new();
    let mut msgs = Vec::new();
    let mut until = tokio::time::Instant::now() + DEADLINE;
    loop {
        while let Some(m) = decoder.decode(&mut buf).unwrap() {
            if matches!(&m, Message::Extended { id, .. } if *id == EXTENDED_HANDSHAKE_ID) {
                until = tokio::time::Instant::now() + Duration::from_millis(300);
            }
            msgs.push(m);
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(until, sock.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    (theirs, msgs)
}

fn extension_handshake(msgs: &[swarm_wire::peer::Message]) -> swarm_wire::peer::ExtendedHandshake {
    use swarm_wire::peer::{EXTENDED_HANDSHAKE_ID, ExtendedHandshake, Message};
    msgs.iter()
        .find_map(|m| match m {
            Message::Extended { id, payload } if *id == EXTENDED_HANDSHAKE_ID => {
                Some(ExtendedHandshake::decode(payload).unwrap())
            }
            _ => None,
        })
        .expect("an extension handshake")
}

/// BEP 5, 10, 11 and 27 through the real drivers: a public torrent's
/// handshake sets the DHT bit, its extension handshake offers `ut_pex` and
/// `ut_metadata`, the `port` message names our DHT node, and the torrent is
/// announced on the DHT; a private torrent of the same client offers no
/// `ut_pex`, sends no `port` and is never announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_torrents_use_neither_the_dht_nor_pex_public_ones_both() {
    use swarm_net::dht::DhtHandle;
    use swarm_wire::peer::Message;

    let helper = DhtHandle::start(
        "127.0.0.1:0".parse().unwrap(),
        swarm_dht::DhtConfig::default(),
        1,
    )
    .await
    .unwrap();
    let ours = DhtHandle::start(
        "127.0.0.1:0".parse().unwrap(),
        swarm_dht::DhtConfig::default(),
        2,
    )
    .await
    .unwrap();
    ours.bootstrap(vec![helper.local_addr()]).await.unwrap();
    // The DHT nodes the raw peers name in their `port` messages, each on
    // its peer's IP.
    let named = |ip: &str, seed| {
        DhtHandle::start(
            format!("{ip}:0").parse().unwrap(),
            swarm_dht::DhtConfig::default(),
            seed,
        )
    };
    let (public_named, private_named) = (
        named("127.0.0.2", 3).await.unwrap(),
        named("127.0.0.3", 4).await.unwrap(),
    );
    let c = Client::start(ClientConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        dht: Some(ours.clone()),
        ..ClientConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut handles = Vec::new();
    let mut hashes = Vec::new();
    for (name, private) in [("public.bin", false), ("private.bin", true)] {
        let data = content(50_000, 11);
        std::fs::write(dir.path().join(name), &data).unwrap();
        let (info, spec) = info_dict_of(name, &data, 16_384, private);
        let h = c
            .add_torrent(
                spec.clone(),
                AddOptions {
                    metadata: Some(info.into()),
                    private,
                    ..AddOptions::new(dir.path(), OpenMode::Existing)
                },
            )
            .unwrap();
        let mut st = h.watch();
        st.wait_for(|s| s.state == TorrentState::Seeding)
            .await
            .unwrap();
        hashes.push(spec.info_hash);
        handles.push(h);
    }

    let (hs, msgs) = first_messages(c.listen_addr(), hashes[0], public_named.local_addr()).await;
    assert!(hs.supports_dht() && hs.supports_extension_protocol());
    let ext = extension_handshake(&msgs);
    assert!(ext.extension_id("ut_pex").is_some(), "{ext:?}");
    assert!(ext.extension_id("ut_metadata").is_some(), "{ext:?}");
    assert_eq!(ext.p, Some(c.listen_addr().port()));
    assert!(
        msgs.contains(&Message::Port(ours.local_addr().port())),
        "the port message names our DHT node: {msgs:?}"
    );

    let (_, msgs) = first_messages(c.listen_addr(), hashes[1], private_named.local_addr()).await;
    let ext = extension_handshake(&msgs);
    assert!(ext.extension_id("ut_pex").is_none(), "{ext:?}");
    assert!(
        !msgs.iter().any(|m| matches!(m, Message::Port(_))),
        "no port message for a private torrent: {msgs:?}"
    );

    // The public torrent is announced on the helper node; by then the
    // private one, added with it, would have been too.
    let announced = tokio::time::timeout(DEADLINE, async {
        loop {
            if helper.stats().await.unwrap().torrents >= 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(announced.is_ok(), "the public torrent is announced");
    // One more lookup round of the public torrent (2 s after its first).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let stats = helper.stats().await.unwrap();
    assert_eq!(
        (stats.torrents, stats.peers),
        (1, 1),
        "only the public torrent, once"
    );
    // The node the public torrent's peer named was pinged and joined our
    // table; the one named on the private torrent was not contacted.
    let table: Vec<_> = ours.nodes().await.iter().map(|n| n.addr).collect();
    assert!(table.contains(&public_named.local_addr()), "{table:?}");
    assert!(!table.contains(&private_named.local_addr()), "{table:?}");
    for h in handles {
        h.stop();
        h.join().await.unwrap();
    }
    c.shutdown().await;
}
