//! A hostile BitTorrent peer for tests: it completes the BEP 3 handshake,
//! claims every piece, unchokes, and answers every request with the right
//! block except for one flipped byte, so every piece it contributes to fails
//! its SHA-1 check.
//!
//! Written from raw TCP, independent of swarm's wire code, so a bug shared by
//! swarm's encoder and decoder cannot hide. It records what it saw (connections,
//! closes, blocks served, protocol violations by the other side) for the test
//! to assert on.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bound on a message the hostile peer accepts (requests are 17 bytes).
const MESSAGE_LEN_MAX: usize = 1 << 20;

/// How a plaintext (BEP 3) handshake starts: the length byte, then the string.
const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";

/// What the hostile peer saw, shared with its connection threads.
#[derive(Default)]
pub struct Seen {
    pub connections: AtomicUsize,
    pub open: AtomicUsize,
    /// Connections the other side closed (EOF or reset), as opposed to our stop.
    pub closed_by_peer: AtomicUsize,
    pub blocks_sent: AtomicUsize,
    /// Bytes of each piece served (all corrupted).
    pub served: Mutex<BTreeMap<u32, u64>>,
    /// What the peer did wrong on the wire, as seen by the hostile peer.
    pub violations: Mutex<Vec<String>>,
}

impl Seen {
    /// Records a violation; returns false: we hang up on it.
    fn violation(&self, what: String) -> bool {
        self.violations.lock().expect("lock").push(what);
        false
    }
}

pub struct HostilePeer {
    /// Where it listens: 127.0.0.2 when the system allows it (Linux routes all
    /// of 127/8 to loopback), so a ban by IP address does not also hit honest
    /// peers on 127.0.0.1.
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HostilePeer {
    /// Listens on 127.0.0.2 (or 127.0.0.1), a free port, for peers of
    /// `info_hash` whose content is `content` cut in pieces of `piece_len`.
    pub fn start(info_hash: [u8; 20], content: Arc<Vec<u8>>, piece_len: u64) -> HostilePeer {
        let listener = TcpListener::bind("127.0.0.2:0")
            .or_else(|_| TcpListener::bind("127.0.0.1:0"))
            .expect("bind hostile peer");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("addr");
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
                            let closed_by_peer =
                                serve(sock, info_hash, &content, piece_len, &seen, &stop);
                            if closed_by_peer {
                                seen.closed_by_peer.fetch_add(1, Ordering::SeqCst);
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
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Pieces whose every byte the hostile peer has served (corrupted).
    pub fn pieces_fully_served(&self, piece_len: u64, total: u64) -> usize {
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

/// Serves one connection. Returns true if the other side closed it, false if
/// we hung up: the test stops, an encrypted (MSE) handshake we do not speak,
/// or a protocol violation (recorded in `violations`).
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
    if hs[..20] != PROTOCOL[..] {
        // Not a plaintext handshake: libtorrent tries MSE encryption first and
        // falls back to plaintext when we hang up. MSE opens with a random
        // Diffie-Hellman key, whose first byte is 19 (plaintext's length
        // byte) once in 256: so the whole protocol string tells them apart.
        return false;
    }
    if hs[28..48] != info_hash {
        return seen.violation(format!("handshake for another torrent: {hs:?}"));
    }
    let mut reply = Vec::with_capacity(68);
    reply.extend_from_slice(PROTOCOL);
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

/// 40 hex digits to the 20 bytes of an info-hash.
pub fn hex20(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    hex::decode_to_slice(hex, &mut out).expect("hex info-hash");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libtorrent's first try is MSE: a random Diffie-Hellman key, which
    /// starts with 19 once in 256 (a real run's, 68 bytes read:
    /// [19, 165, 1, 165, 22, ...]). That is no broken plaintext handshake.
    #[test]
    fn an_encrypted_handshake_starting_with_19_is_no_violation() {
        let hostile = HostilePeer::start([7; 20], Arc::new(vec![1; 100]), 64);
        let mut sock = TcpStream::connect(hostile.addr).expect("connect");
        let mut key = [0xa5u8; 96];
        key[0] = 19;
        sock.write_all(&key).expect("send the key");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        // The hostile peer hangs up (EOF, or a reset for the unread bytes).
        let mut byte = [0u8; 1];
        assert!(!matches!(sock.read(&mut byte), Ok(n) if n > 0));
        let violations = hostile.seen.violations.lock().expect("lock").clone();
        assert!(violations.is_empty(), "{violations:?}");
    }
}
