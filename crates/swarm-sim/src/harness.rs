//! The in-memory harness of the engine tests (they live in this crate's
//! `tests/engine_*.rs`): drives `TorrentCore`s in memory with a fake clock
//! and no network model, choosing what happens next at random, to find
//! interleavings that break the cores' invariants. (The simulator proper,
//! [`crate::Simulation`], is the timed model behind the figures.)
//!
//! `Node` wraps a core plus an in-memory "disk" that answers `VerifyPiece`
//! (the bytes are compared with the original, standing in for SHA-1) and
//! `ReadBlock`. `Sim` connects nodes with FIFO links (one per direction, as
//! TCP is) and lets a seeded RNG choose what happens next.
use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use swarm_engine::rng::Rng;
use swarm_engine::{
    Bitfield, Duration, Instant, PeerInfo, PeerKey, StorageDone, TorrentConfig, TorrentCore,
    TorrentEvent,
};
use swarm_wire::Lengths;
use swarm_wire::peer::Message;

pub const K: u32 = swarm_wire::peer::BLOCK_LEN;

/// Deterministic content: byte i of the torrent.
pub fn content(len: u64, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

pub fn drain(core: &mut TorrentCore) -> (Vec<(PeerKey, Message)>, Vec<TorrentEvent>) {
    let mut ev = Vec::new();
    while let Some(e) = core.poll_event() {
        ev.push(e);
    }
    let mut tx = Vec::new();
    while let Some(t) = core.poll_transmit() {
        tx.push(t);
    }
    (tx, ev)
}

pub fn secs(s: u64) -> Instant {
    Instant(s * 1_000_000)
}

/// A core with an in-memory disk.
pub struct Node {
    pub core: TorrentCore,
    pub lengths: Lengths,
    /// The true content (what the hash would be checked against).
    pub truth: Vec<u8>,
    /// What is "on disk": verified pieces only.
    pub disk: Vec<u8>,
    /// Storage jobs not yet answered.
    pub jobs: VecDeque<TorrentEvent>,
    pub disconnects: Vec<(PeerKey, String, bool)>,
    pub completed: bool,
    pub verified_ok: u32,
    pub verified_bad: u32,
    /// A hostile node: every block it uploads is corrupted.
    pub corrupt_uploads: bool,
}

impl Node {
    pub fn new(
        config: TorrentConfig,
        truth: &[u8],
        piece_len: u32,
        seed_all: bool,
        rng_seed: u64,
    ) -> Self {
        let lengths = Lengths::new(truth.len() as u64, piece_len).expect("valid torrent lengths");
        let n = lengths.num_pieces();
        let have = if seed_all {
            Bitfield::full(n)
        } else {
            Bitfield::empty(n)
        };
        let disk = if seed_all {
            truth.to_vec()
        } else {
            vec![0; truth.len()]
        };
        Node {
            core: TorrentCore::new(config, lengths, have, rng_seed, Instant::ZERO),
            lengths,
            truth: truth.to_vec(),
            disk,
            jobs: VecDeque::new(),
            disconnects: Vec::new(),
            completed: false,
            verified_ok: 0,
            verified_bad: 0,
            corrupt_uploads: false,
        }
    }

    /// Drains the core: transmits are returned, storage jobs queued,
    /// disconnects recorded.
    pub fn drain(&mut self) -> Vec<(PeerKey, Message)> {
        let (tx, ev) = drain(&mut self.core);
        for e in ev {
            match e {
                TorrentEvent::VerifyPiece { .. } | TorrentEvent::ReadBlock { .. } => {
                    self.jobs.push_back(e)
                }
                TorrentEvent::Disconnect { peer, reason, ban } => {
                    self.disconnects.push((peer, reason, ban))
                }
                TorrentEvent::Completed => self.completed = true,
                TorrentEvent::PieceCompleted(_) | TorrentEvent::PeerSeed(_) => {}
                TorrentEvent::Fatal(e) => panic!("fatal: {e}"),
            }
        }
        tx
    }

    /// Answers storage job `i` of the queue.
    pub fn run_job(&mut self, now: Instant, i: usize) {
        let Some(job) = self.jobs.remove(i) else {
            return;
        };
        let done = match job {
            TorrentEvent::VerifyPiece { piece, blocks } => {
                let off = self.lengths.piece_offset(piece) as usize;
                let len = self.lengths.piece_len(piece) as usize;
                let got: Vec<u8> = blocks.iter().flat_map(|b| b.iter().copied()).collect();
                let ok = got == self.truth[off..off + len];
                if ok {
                    self.disk[off..off + len].copy_from_slice(&got);
                    self.verified_ok += 1;
                } else {
                    self.verified_bad += 1;
                }
                StorageDone::PieceVerified { piece, ok }
            }
            TorrentEvent::ReadBlock { peer, block } => {
                assert!(
                    self.core.have().get(block.piece.get()),
                    "read of a piece we do not have"
                );
                let off = self.lengths.piece_offset(block.piece) as usize + block.offset as usize;
                let mut data = self.disk[off..off + block.length as usize].to_vec();
                if self.corrupt_uploads {
                    data[0] ^= 0x55;
                }
                let data = Bytes::from(data);
                StorageDone::BlockRead { peer, block, data }
            }
            other => panic!("not a job: {other:?}"),
        };
        self.core.handle_storage(now, done);
    }

    pub fn run_all_jobs(&mut self, now: Instant) {
        while !self.jobs.is_empty() {
            self.run_job(now, 0);
        }
    }
}

/// Several nodes joined by FIFO links; a seeded RNG interleaves deliveries,
/// storage completions and time.
pub struct Sim {
    pub nodes: Vec<Node>,
    pub now: Instant,
    pub rng: Rng,
    /// (from, to) → messages in flight on that direction of the connection.
    pub links: BTreeMap<(usize, usize), VecDeque<Message>>,
    /// (node, peer node) → the key node uses for peer node.
    pub keys: BTreeMap<(usize, usize), PeerKey>,
    next_key: u64,
    pub fast_ext: bool,
    /// (banning node, banned node).
    pub bans: Vec<(usize, usize)>,
}

impl Sim {
    pub fn new(nodes: Vec<Node>, seed: u64, fast_ext: bool) -> Self {
        Sim {
            nodes,
            now: Instant::ZERO,
            rng: Rng::new(seed),
            links: BTreeMap::new(),
            keys: BTreeMap::new(),
            next_key: 1,
            fast_ext,
            bans: Vec::new(),
        }
    }

    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.keys.contains_key(&(a, b))
    }

    pub fn banned(&self, a: usize, b: usize) -> bool {
        self.bans.contains(&(a, b)) || self.bans.contains(&(b, a))
    }

    pub fn connect(&mut self, a: usize, b: usize) {
        for (x, y, outgoing) in [(a, b, true), (b, a, false)] {
            let key = PeerKey(self.next_key);
            self.next_key += 1;
            self.keys.insert((x, y), key);
            self.links.insert((x, y), VecDeque::new());
            let info = PeerInfo {
                fast_ext: self.fast_ext,
                outgoing,
            };
            self.nodes[x].core.peer_connected(self.now, key, info);
        }
        self.pump(a);
        self.pump(b);
    }

    pub fn disconnect(&mut self, a: usize, b: usize) {
        for (x, y) in [(a, b), (b, a)] {
            self.links.remove(&(x, y));
            if let Some(key) = self.keys.remove(&(x, y)) {
                self.nodes[x].core.peer_disconnected(self.now, key);
            }
        }
        self.pump(a);
        self.pump(b);
    }

    fn peer_of(&self, node: usize, key: PeerKey) -> Option<usize> {
        self.keys
            .iter()
            .find(|(xy, k)| xy.0 == node && **k == key)
            .map(|(xy, _)| xy.1)
    }

    /// Moves node `i`'s outputs onto its links; handles its disconnects.
    pub fn pump(&mut self, i: usize) {
        let tx = self.nodes[i].drain();
        for (key, msg) in tx {
            if let Some(j) = self.peer_of(i, key)
                && let Some(link) = self.links.get_mut(&(i, j))
            {
                link.push_back(msg);
            }
        }
        let drops: Vec<(PeerKey, bool)> = self.nodes[i]
            .disconnects
            .drain(..)
            .map(|d| (d.0, d.2))
            .collect();
        for (key, ban) in drops {
            if let Some(j) = self.peer_of(i, key) {
                if ban {
                    self.bans.push((i, j));
                }
                // The core already forgot it; the other side sees a close.
                self.keys.remove(&(i, j));
                self.links.remove(&(i, j));
                self.links.remove(&(j, i));
                if let Some(k2) = self.keys.remove(&(j, i)) {
                    self.nodes[j].core.peer_disconnected(self.now, k2);
                    self.pump(j);
                }
            }
        }
    }

    /// Delivers the head of link (from, to).
    pub fn deliver(&mut self, from: usize, to: usize) -> bool {
        let Some(msg) = self.links.get_mut(&(from, to)).and_then(|l| l.pop_front()) else {
            return false;
        };
        let Some(&key) = self.keys.get(&(to, from)) else {
            return false;
        };
        self.nodes[to].core.handle_message(self.now, key, msg);
        self.pump(to);
        true
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        for i in 0..self.nodes.len() {
            if let Some(t) = self.nodes[i].core.poll_timeout()
                && t <= self.now
            {
                self.nodes[i].core.handle_timeout(self.now);
                self.pump(i);
            }
        }
    }

    pub fn check(&self) {
        for n in &self.nodes {
            n.core.check_invariants();
        }
    }

    /// One random step: deliver a message, finish a storage job or let time pass.
    pub fn step(&mut self) {
        let busy: Vec<(usize, usize)> = self
            .links
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(&k, _)| k)
            .collect();
        let jobs: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].jobs.is_empty())
            .collect();
        let r = self.rng.below(10);
        if r < 6 && !busy.is_empty() {
            let (a, b) = busy[self.rng.below(busy.len())];
            self.deliver(a, b);
        } else if r < 9 && !jobs.is_empty() {
            let i = jobs[self.rng.below(jobs.len())];
            let j = self.rng.below(self.nodes[i].jobs.len());
            self.nodes[i].run_job(self.now, j);
            self.pump(i);
        } else {
            let d = Duration::from_millis(1 + self.rng.below(400) as u64);
            self.advance(d);
        }
    }
}
