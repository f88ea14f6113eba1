//! A hostile peer sends corrupted blocks: swarm must fail those pieces' hashes,
//! fetch them again from an honest seeder (libtorrent), finish with the right
//! bytes, and ban the hostile peer.
//!
//! The hostile peer is written here from raw TCP (BEP 3 handshake, bitfield,
//! unchoke, piece answers), independent of swarm's own wire code, so a bug
//! shared by swarm's encoder and decoder cannot hide. It serves every block
//! with one byte flipped.
//!
//! Phases: first swarm knows only the hostile peer (`--peer`), so every piece
//! it completes comes from it and fails its check. Then an honest libtorrent
//! seeder dials swarm. swarm keeps running after completion (`--seed`), so a
//! closed hostile connection afterwards is swarm's decision, not its exit.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use swarm_testkit::peers::{assert_alive, lt_seed, require_swarm_subcommand, swarm_download};
use swarm_testkit::{data, *};

const DEADLINE: Duration = Duration::from_secs(120);
/// Bound on a message the hostile peer accepts from swarm (requests are 17 bytes).
const MESSAGE_LEN_MAX: usize = 1 << 20;

fn swarm_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_swarm"))
}

/// What the hostile peer saw, shared with its connection threads.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    open: AtomicUsize,
    /// Connections that swarm closed (EOF or reset), as opposed to our stop.
    closed_by_swarm: AtomicUsize,
    blocks_sent: AtomicUsize,
    /// Bytes of each piece served (all corrupted).
    served: Mutex<BTreeMap<u32, u64>>,
    /// What swarm did wrong on the wire, as seen by the hostile peer.
    violations: Mutex<Vec<String>>,
}

impl Seen {
    fn violation(&self, what: String) -> bool {
        self.violations.lock().expect("lock").push(what);
        true
    }
}

struct HostilePeer {
    port: u16,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HostilePeer {
    fn start(info_hash: [u8; 20], content: Arc<Vec<u8>>, piece_len: u64) -> HostilePeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hostile peer");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        seen2.connections.fetch_add(1, Ordering::SeqCst);
                        let (seen, stop, content) = (seen2.clone(), stop2.clone(), content.clone());
                        conns.push(std::thread::spawn(move || {
                            seen.open.fetch_add(1, Ordering::SeqCst);
                            let by_swarm =
                                serve(sock, info_hash, &content, piece_len, &seen, &stop);
                            if by_swarm {
                                seen.closed_by_swarm.fetch_add(1, Ordering::SeqCst);
                            }
                            seen.open.fetch_sub(1, Ordering::SeqCst);
                        }));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        HostilePeer {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Pieces whose every byte the hostile peer has served (corrupted).
    fn pieces_fully_served(&self, piece_len: u64, total: u64) -> usize {
        let served = self.seen.served.lock().expect("lock");
        served
            .iter()
            .filter(|&(&i, &n)| n >= piece_len.min(total - u64::from(i) * piece_len))
            .count()
    }
}

impl Drop for HostilePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one connection until swarm closes it (returns true) or the test
/// stops (returns false). Any protocol surprise also ends it (returns true:
/// swarm sent something a peer would drop it for, the test then fails later).
fn serve(
    mut sock: TcpStream,
    info_hash: [u8; 20],
    content: &[u8],
    piece_len: u64,
    seen: &Seen,
    stop: &AtomicBool,
) -> bool {
    sock.set_nonblocking(false).expect("blocking socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let mut hs = [0u8; 68];
    if read_exact_or_stop(&mut sock, &mut hs, stop) != Some(true) {
        return !stop.load(Ordering::Relaxed);
    }
    if &hs[..20] != b"\x13BitTorrent protocol" || hs[28..48] != info_hash {
        return seen.violation(format!("bad handshake from swarm: {hs:?}"));
    }
    let mut reply = Vec::with_capacity(68);
    reply.extend_from_slice(b"\x13BitTorrent protocol");
    reply.extend_from_slice(&[0u8; 8]); // no extensions: plain BEP 3
    reply.extend_from_slice(&info_hash);
    reply.extend_from_slice(b"-HO0001-hostilepeer!");
    // Bitfield of every piece (spare bits clear), then unchoke.
    let total = content.len() as u64;
    let pieces = total.div_ceil(piece_len) as usize;
    let mut bits = vec![0u8; pieces.div_ceil(8)];
    for i in 0..pieces {
        bits[i / 8] |= 0x80 >> (i % 8);
    }
    push_message(&mut reply, 5, &bits);
    push_message(&mut reply, 1, &[]);
    if sock.write_all(&reply).is_err() {
        return true;
    }
    loop {
        let mut len = [0u8; 4];
        match read_exact_or_stop(&mut sock, &mut len, stop) {
            Some(true) => {}
            Some(false) => return true,
            None => return false,
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            continue; // keep-alive
        }
        if len > MESSAGE_LEN_MAX {
            return seen.violation(format!("message of {len} bytes"));
        }
        let mut msg = vec![0u8; len];
        match read_exact_or_stop(&mut sock, &mut msg, stop) {
            Some(true) => {}
            Some(false) => return true,
            None => return false,
        }
        if msg[0] != 6 || len != 13 {
            continue; // interested, have, cancel...: nothing to do for a liar
        }
        let field = |at: usize| u32::from_be_bytes(msg[at..at + 4].try_into().expect("4 bytes"));
        let (index, begin, length) = (field(1), field(5), field(9));
        let start = u64::from(index) * piece_len + u64::from(begin);
        let end = start + u64::from(length);
        if u64::from(begin) + u64::from(length) > piece_len || end > total || length == 0 {
            return seen.violation(format!(
                "request outside the torrent: {index} {begin} {length}"
            ));
        }
        let mut block = content[start as usize..end as usize].to_vec();
        let flip = block.len() / 2;
        block[flip] ^= 0x5a; // the lie: one wrong byte per block
        let mut payload = Vec::with_capacity(8 + block.len());
        payload.extend_from_slice(&index.to_be_bytes());
        payload.extend_from_slice(&begin.to_be_bytes());
        payload.extend_from_slice(&block);
        let mut out = Vec::with_capacity(payload.len() + 5);
        push_message(&mut out, 7, &payload);
        if sock.write_all(&out).is_err() {
            return true;
        }
        seen.blocks_sent.fetch_add(1, Ordering::SeqCst);
        *seen.served.lock().expect("lock").entry(index).or_default() += u64::from(length);
    }

    fn push_message(out: &mut Vec<u8>, id: u8, payload: &[u8]) {
        out.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
        out.push(id);
        out.extend_from_slice(payload);
    }
}

/// Fills `buf`. Some(true): filled; Some(false): the peer closed or reset;
/// None: the test is stopping.
fn read_exact_or_stop(sock: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> Option<bool> {
    let mut n = 0;
    while n < buf.len() {
        if stop.load(Ordering::Relaxed) {
            let _ = sock.shutdown(Shutdown::Both);
            return None;
        }
        match sock.read(&mut buf[n..]) {
            Ok(0) => return Some(false),
            Ok(k) => n += k,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return Some(false),
        }
    }
    Some(true)
}

fn hex20(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex info-hash");
    }
    out
}

/// Whether swarm's output reports a ban: a JSON status field `banned` > 0, or
/// a log line mentioning a ban.
fn reports_ban(p: &Peer) -> bool {
    let json = p.proc.json_lines().iter().any(|v| {
        v["banned"].as_u64().is_some_and(|n| n > 0)
            || v["banned"].as_array().is_some_and(|a| !a.is_empty())
    });
    let log = format!("{}\n{}", p.proc.stdout(), p.proc.stderr()).to_lowercase();
    json || log.lines().any(|l| l.contains("ban"))
}

#[test]
fn corrupt_blocks_are_refetched_and_the_hostile_peer_is_banned() {
    if !(require_python_libtorrent() && require_swarm_subcommand(&swarm_bin(), "download")) {
        return;
    }
    let t = TestDir::new("hostile");
    let seed_dir = t.sub("seed");
    let content = data::single_file(&seed_dir, "target.bin", 3 * 1024 * 1024 + 5, 51);
    let torrent = make_torrent(&content, &t.path().join("t.torrent"), PIECE_256_KIB, &[]);
    let bytes = Arc::new(std::fs::read(&content).expect("read content"));
    let piece_len = u64::from(torrent.piece_size);
    let hostile = HostilePeer::start(hex20(&torrent.info_hash_hex), bytes.clone(), piece_len);

    // Phase 1: the hostile peer is swarm's only source.
    let opts = SwarmOpts {
        peers: vec![loopback(hostile.port)],
        seed_after: true,
        ..SwarmOpts::default()
    };
    let out = t.sub("swarm-out");
    let mut leech = swarm_download(
        &swarm_bin(),
        &t.logs(),
        "swarm",
        &torrent,
        &out,
        free_port(),
        &opts,
    );
    let lied = wait_until(Duration::from_secs(30), || {
        hostile.pieces_fully_served(piece_len, torrent.total_size) >= 2
            || hostile.seen.closed_by_swarm.load(Ordering::SeqCst) > 0
    });
    assert_alive(&mut leech);
    assert!(
        lied && hostile.pieces_fully_served(piece_len, torrent.total_size) >= 1,
        "swarm took at least one whole corrupt piece from the hostile peer (blocks sent: {})\n{}",
        hostile.seen.blocks_sent.load(Ordering::SeqCst),
        leech.proc.log_tail()
    );
    assert!(!leech.is_complete(), "nothing honest was available yet");

    // Phase 2: an honest seeder dials swarm.
    let mut seeder = lt_seed(
        &t.logs(),
        "lt-seed",
        &torrent,
        &seed_dir,
        free_port(),
        &[leech.listen],
    );
    wait_all_complete(&mut [&mut leech], DEADLINE);
    assert_alive(&mut seeder);
    assert_same_tree(&content, &leech.content(&torrent));

    // The ban: swarm (still running, seeding) holds no connection to the
    // hostile peer, and says so.
    let banned = wait_until(Duration::from_secs(30), || {
        hostile.seen.open.load(Ordering::SeqCst) == 0 && reports_ban(&leech)
    });
    assert!(
        banned,
        "hostile peer not banned: open connections {}, closed by swarm {}, total connections {}, \
         ban reported in output: {}\n{}",
        hostile.seen.open.load(Ordering::SeqCst),
        hostile.seen.closed_by_swarm.load(Ordering::SeqCst),
        hostile.seen.connections.load(Ordering::SeqCst),
        reports_ban(&leech),
        leech.proc.log_tail()
    );
    assert_alive(&mut leech);
    let violations = hostile.seen.violations.lock().expect("lock").clone();
    assert!(
        violations.is_empty(),
        "swarm broke the protocol: {violations:?}"
    );
    eprintln!(
        "hostile peer: {} connections, {} closed by swarm, {} corrupt blocks sent",
        hostile.seen.connections.load(Ordering::SeqCst),
        hostile.seen.closed_by_swarm.load(Ordering::SeqCst),
        hostile.seen.blocks_sent.load(Ordering::SeqCst)
    );
}
