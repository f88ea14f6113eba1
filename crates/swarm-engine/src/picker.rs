//! The piece picker: which block to request next from which peer (BEP 3).
//!
//! Policy, in order of precedence:
//! 1. **Strict priority, with affinity**: finish the pieces opened for this
//!    peer before opening new ones, so pieces complete (and can be verified,
//!    written and shared) soon; pieces opened for other peers are helped
//!    only when the peer has no new piece for us (so a seed is asked for
//!    the rare pieces, not for the rest of common ones).
//! 2. **Random first pieces**: until `initial_random_pieces` pieces are *have*,
//!    a new piece is chosen at random among those the peer has: a rare piece
//!    would take longest to complete, and a newcomer needs something to trade.
//! 3. **Rarest first**: otherwise the new piece is one of the least available
//!    among the connected peers, ties broken at random.
//! 4. **Endgame**: once every missing block is requested, a block already in
//!    flight elsewhere may be requested again; the first copy to arrive wins
//!    and the caller cancels the others.
//!
//! The strategy for new pieces is a [`PickStrategy`] (rarest first by
//! default; random and sequential exist so the simulator can show what
//! rarest first buys); strict priority and endgame apply to all three.
//!
//! Rarest first without a scan of all pieces: the not-started pieces live in
//! `order`, sorted by availability into contiguous buckets (libtorrent's
//! piece-picker layout). A change of availability by one moves a piece across
//! one bucket boundary by a swap, then to a random slot inside its new bucket,
//! so every bucket stays a uniformly random permutation: the first piece a
//! peer has in the lowest bucket is a uniformly random choice among the
//! rarest, with no per-pick shuffling.
//!
//! Pieces implicated in a hash failure put their peers *on parole*: a peer on
//! parole only gets pieces it downloads alone (`exclusive`), so the next
//! failure is attributable to it (libtorrent's parole mode).
//!
//! **Priorities** ([`Priority`], one byte a piece, from the files a piece
//! touches: the highest of theirs): a new piece is opened from the highest
//! priority class the peer has anything of, rarest first inside it (a scan
//! of `order`, only while the not-started pieces are of several classes).
//! A [`Priority::Skip`] piece is left out of `order`: never opened, never
//! counted in [`PiecePicker::wanted_left`]; the download is *done* when
//! every wanted piece is have ([`PiecePicker::is_done`]). A piece already
//! in progress when it is skipped is finished (its blocks are not thrown
//! away).
//!
//! Invariants (checked by [`PiecePicker::check_invariants`]): a piece is in
//! exactly one of have / verifying / in progress / `order` (not started) /
//! skipped (none of these, priority `Skip`); `order` holds no skipped piece
//! and is bucketed by availability; per-piece counters match the slots.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use swarm_wire::lengths::{BlockInfo, Lengths, ValidPieceIndex};

use crate::bitfield::Bitfield;
use crate::ids::PeerKey;
use crate::rng::Rng;

const NOT_IN_ORDER: u32 = u32::MAX;

/// Requests of one block at once in endgame: enough to route around a slow
/// peer, few enough to bound the duplicate download.
pub const ENDGAME_REQUESTS_PER_BLOCK_MAX: usize = 3;

/// How the picker chooses a new piece to open (strict priority and endgame
/// apply whatever the strategy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PickStrategy {
    /// Random first pieces, then the least available (BEP 3's advice).
    #[default]
    RarestFirst,
    /// A random piece the peer has, always.
    Random,
    /// The lowest-numbered piece the peer has (rqbit's file order).
    Sequential,
}

/// How much a piece is wanted (from its files' priorities). Ordered:
/// `Skip < Low < Normal < High`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Priority {
    /// Not downloaded (unless already in progress).
    Skip = 0,
    Low = 1,
    #[default]
    Normal = 2,
    High = 3,
}

impl Priority {
    const LEVELS: usize = 4;
}

/// One block of a piece being downloaded.
#[derive(Clone, Debug)]
enum Slot {
    Missing,
    /// Requested from these peers (more than one only in endgame).
    Requested(Vec<PeerKey>),
    Received {
        data: Bytes,
        from: PeerKey,
    },
}

#[derive(Clone, Debug)]
struct Download {
    slots: Vec<Slot>,
    missing: u32,
    received: u32,
    /// Only this peer (on parole) may request blocks of this piece, until endgame.
    exclusive: Option<PeerKey>,
    /// The peer it was opened for (`None` after a failed hash): that peer
    /// finishes it first, before others help (piece affinity).
    opener: Option<PeerKey>,
}

/// What became of a received block.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Stored. `cancel`: other peers that were asked for the same block
    /// (endgame). `complete`: the piece's blocks in order, ready to verify.
    Stored {
        cancel: Vec<PeerKey>,
        complete: Option<Vec<Bytes>>,
    },
    /// We already have this block (or its piece): the bytes are wasted.
    NotNeeded,
}

/// Rarest-first piece picker with strict priority and endgame.
pub struct PiecePicker {
    lengths: Lengths,
    have: Bitfield,
    initial_random_pieces: u32,
    endgame_enabled: bool,
    strategy: PickStrategy,
    /// Connected peers that have each piece.
    availability: Vec<u32>,
    /// Not-started pieces, bucketed by availability (ascending).
    order: Vec<u32>,
    /// Index of each piece in `order`, or `NOT_IN_ORDER`.
    pos: Vec<u32>,
    /// The pieces in `order`, as a set: a peer with none of them has no new
    /// piece for us, and `pick` skips the scan of `order` (eight pieces a
    /// byte instead of one piece a probe).
    in_order: Bitfield,
    /// `bucket_start[a]`: index in `order` of the first piece of availability `a`.
    bucket_start: Vec<u32>,
    downloads: BTreeMap<ValidPieceIndex, Download>,
    /// In-progress pieces that still have a `Missing` slot.
    partial: BTreeSet<ValidPieceIndex>,
    /// All blocks handed to the driver; the contributing peers, block order.
    verifying: BTreeMap<ValidPieceIndex, Vec<PeerKey>>,
    /// Sum of `missing` over `downloads`.
    unrequested: u64,
    /// Each piece's priority.
    priority: Vec<Priority>,
    /// Pieces in `order` of each priority (indexed by `Priority as usize`).
    order_levels: [u32; Priority::LEVELS],
    /// Pieces not skipped and not have.
    wanted_left: u32,
}

impl PiecePicker {
    pub fn new(
        lengths: Lengths,
        have: Bitfield,
        initial_random_pieces: u32,
        endgame: bool,
    ) -> Self {
        let n = lengths.num_pieces();
        assert_eq!(have.len(), n, "have bitfield length");
        let order: Vec<u32> = (0..n).filter(|&i| !have.get(i)).collect();
        let mut pos = vec![NOT_IN_ORDER; n as usize];
        let mut in_order = Bitfield::empty(n);
        for (k, &p) in order.iter().enumerate() {
            pos[p as usize] = k as u32;
            in_order.set(p);
        }
        PiecePicker {
            lengths,
            initial_random_pieces,
            endgame_enabled: endgame,
            strategy: PickStrategy::RarestFirst,
            availability: vec![0; n as usize],
            order,
            pos,
            in_order,
            bucket_start: vec![0],
            downloads: BTreeMap::new(),
            partial: BTreeSet::new(),
            verifying: BTreeMap::new(),
            unrequested: 0,
            priority: vec![Priority::Normal; n as usize],
            order_levels: [0, 0, n - have.count_ones(), 0],
            wanted_left: n - have.count_ones(),
            have,
        }
    }

    /// Sets every piece's priority (`priorities.len()` must be the piece
    /// count: asserted). Skipped pieces leave `order`; pieces wanted again
    /// go back in. Pieces in progress or verifying are left to finish.
    pub fn set_priorities(&mut self, priorities: &[Priority], rng: &mut Rng) {
        assert_eq!(
            priorities.len(),
            self.priority.len(),
            "one priority a piece"
        );
        for (i, &new) in priorities.iter().enumerate() {
            let p = i as u32;
            let old = self.priority[i];
            if old == new {
                continue;
            }
            let in_order = self.pos[i] != NOT_IN_ORDER;
            if in_order {
                self.remove_from_order(p);
            }
            self.priority[i] = new;
            if !self.have.get(p) {
                match (old == Priority::Skip, new == Priority::Skip) {
                    (true, false) => self.wanted_left += 1,
                    (false, true) => self.wanted_left -= 1,
                    _ => {}
                }
            }
            let idle = !self.have.get(p)
                && self.lengths.validate_piece_index(p).is_some_and(|vp| {
                    !self.downloads.contains_key(&vp) && !self.verifying.contains_key(&vp)
                });
            if new != Priority::Skip && (in_order || idle) {
                self.insert_into_order(p, rng);
            }
        }
    }

    /// Each piece's priority.
    pub fn priorities(&self) -> &[Priority] {
        &self.priority
    }

    /// Whether `piece` is wanted (not skipped).
    pub fn is_wanted(&self, piece: u32) -> bool {
        self.priority
            .get(piece as usize)
            .is_some_and(|&p| p != Priority::Skip)
    }

    /// Wanted pieces not have yet.
    pub fn wanted_left(&self) -> u32 {
        self.wanted_left
    }

    /// Every wanted piece is have (the download is done; skipped pieces
    /// may be missing).
    pub fn is_done(&self) -> bool {
        self.wanted_left == 0
    }

    /// Chooses how new pieces are opened (rarest first unless set).
    pub fn set_strategy(&mut self, strategy: PickStrategy) {
        self.strategy = strategy;
    }

    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    pub fn availability(&self, piece: ValidPieceIndex) -> u32 {
        self.availability[piece.as_usize()]
    }

    /// True when every block we still need is requested or received: the
    /// picker is in endgame.
    pub fn in_endgame(&self) -> bool {
        self.endgame_enabled
            && self.unrequested == 0
            && !self.is_done()
            && self.order_len_available() == 0
    }

    /// Not-started pieces that at least one connected peer has.
    fn order_len_available(&self) -> usize {
        self.order.len() - self.bucket_end(0)
    }

    fn bucket_end(&self, a: usize) -> usize {
        self.bucket_start
            .get(a + 1)
            .map_or(self.order.len(), |&s| s as usize)
    }

    fn swap_order(&mut self, i: usize, j: usize) {
        self.order.swap(i, j);
        self.pos[self.order[i] as usize] = i as u32;
        self.pos[self.order[j] as usize] = j as u32;
    }

    /// Moves the piece at `i` to a uniformly random slot of bucket `a`.
    fn shuffle_into_bucket(&mut self, i: usize, a: usize, rng: &mut Rng) {
        let s = self.bucket_start[a] as usize;
        let e = self.bucket_end(a);
        debug_assert!((s..e).contains(&i));
        let r = s + rng.below(e - s);
        self.swap_order(i, r);
    }

    /// A connected peer has `piece` (bitfield, have, have-all).
    pub fn peer_has(&mut self, piece: ValidPieceIndex, rng: &mut Rng) {
        let p = piece.as_usize();
        let a = self.availability[p] as usize;
        self.availability[p] += 1;
        let i = self.pos[p];
        if i == NOT_IN_ORDER {
            return;
        }
        if self.bucket_start.len() == a + 1 {
            self.bucket_start.push(self.order.len() as u32);
        }
        // Swap to the end of bucket a, then shift the boundary over it.
        let last = self.bucket_start[a + 1] as usize - 1;
        self.swap_order(i as usize, last);
        self.bucket_start[a + 1] -= 1;
        self.shuffle_into_bucket(last, a + 1, rng);
    }

    /// A peer that had `piece` left.
    pub fn peer_lost(&mut self, piece: ValidPieceIndex, rng: &mut Rng) {
        let p = piece.as_usize();
        let a = self.availability[p] as usize;
        assert!(a > 0, "availability underflow for piece {p}");
        self.availability[p] -= 1;
        let i = self.pos[p];
        if i == NOT_IN_ORDER {
            return;
        }
        let first = self.bucket_start[a] as usize;
        self.swap_order(i as usize, first);
        self.bucket_start[a] += 1;
        self.shuffle_into_bucket(first, a - 1, rng);
    }

    fn remove_from_order(&mut self, piece: u32) {
        let mut i = self.pos[piece as usize] as usize;
        assert!(i != NOT_IN_ORDER as usize);
        let a = self.availability[piece as usize] as usize;
        // Carry the piece to the end of each bucket from its own to the last.
        for b in a..self.bucket_start.len() {
            let last = self.bucket_end(b) - 1;
            self.swap_order(i, last);
            i = last;
            if b + 1 < self.bucket_start.len() {
                self.bucket_start[b + 1] -= 1;
            }
        }
        debug_assert_eq!(i, self.order.len() - 1);
        self.order.pop();
        self.pos[piece as usize] = NOT_IN_ORDER;
        self.in_order.clear(piece);
        self.order_levels[self.priority[piece as usize] as usize] -= 1;
    }

    fn insert_into_order(&mut self, piece: u32, rng: &mut Rng) {
        assert_eq!(self.pos[piece as usize], NOT_IN_ORDER);
        self.order_levels[self.priority[piece as usize] as usize] += 1;
        let a = self.availability[piece as usize] as usize;
        while self.bucket_start.len() <= a {
            self.bucket_start.push(self.order.len() as u32);
        }
        self.order.push(piece);
        self.in_order.set(piece);
        let mut i = self.order.len() - 1;
        self.pos[piece as usize] = i as u32;
        // Carry it down to the front of each bucket above its own.
        for b in (a + 1..self.bucket_start.len()).rev() {
            let first = self.bucket_start[b] as usize;
            self.swap_order(i, first);
            i = first;
            self.bucket_start[b] += 1;
        }
        self.shuffle_into_bucket(i, a, rng);
    }

    fn open(&mut self, piece: u32, peer: PeerKey, exclusive: Option<PeerKey>) -> ValidPieceIndex {
        self.remove_from_order(piece);
        let vp = self
            .lengths
            .validate_piece_index(piece)
            .expect("pieces in order are valid");
        let n = self.lengths.blocks_in_piece(vp);
        self.downloads.insert(
            vp,
            Download {
                slots: vec![Slot::Missing; n as usize],
                missing: n,
                received: 0,
                exclusive,
                opener: Some(peer),
            },
        );
        self.unrequested += u64::from(n);
        if n > 0 {
            self.partial.insert(vp);
        }
        vp
    }

    /// Marks the first missing block of `piece` requested from `peer`.
    fn take_missing(&mut self, piece: ValidPieceIndex, peer: PeerKey) -> Option<BlockInfo> {
        let d = self.downloads.get_mut(&piece)?;
        let k = d.slots.iter().position(|s| matches!(s, Slot::Missing))?;
        d.slots[k] = Slot::Requested(vec![peer]);
        d.missing -= 1;
        self.unrequested -= 1;
        if d.missing == 0 {
            self.partial.remove(&piece);
        }
        self.lengths.block(piece, k as u32)
    }

    /// The next block to request from `peer`, which has `pieces`; marks it
    /// requested. `parole`: the peer was implicated in a hash failure.
    pub fn pick(
        &mut self,
        peer: PeerKey,
        pieces: &Bitfield,
        parole: bool,
        rng: &mut Rng,
    ) -> Option<BlockInfo> {
        // 1. Strict priority, with affinity: a started piece opened for
        // this peer. Others' started pieces come after new ones (the
        // fallback below): otherwise a peer that unchokes us (a seed, most
        // of all) would be asked for the rest of pieces we opened from
        // others, pieces its neighbours already spread, instead of the rare
        // ones it alone has (the simulator measured a seed's first copy
        // holding little more than half the pieces).
        let started = self.partial.iter().copied().find(|p| {
            let Some(d) = self.downloads.get(p) else {
                return false;
            };
            let allowed = match d.exclusive {
                Some(owner) => owner == peer,
                // A parole peer may claim a started piece nobody touched yet.
                None => !parole || d.missing as usize == d.slots.len(),
            };
            // A piece restarted after a failed hash has no opener: anyone's.
            allowed && d.opener.is_none_or(|o| o == peer) && pieces.get(p.get())
        });
        if let Some(p) = started {
            if parole && let Some(d) = self.downloads.get_mut(&p) {
                d.exclusive = Some(peer);
            }
            return self.take_missing(p, peer);
        }
        // 2./3. Open a new piece: random first, then rarest first.
        let lo = self.bucket_end(0);
        let hi = self.order.len();
        if lo < hi && pieces.intersects(&self.in_order) {
            let random = match self.strategy {
                PickStrategy::RarestFirst => self.have.count_ones() < self.initial_random_pieces,
                PickStrategy::Random => true,
                PickStrategy::Sequential => false,
            };
            // The highest class the peer has a piece of (a scan only while
            // the not-started pieces are of several classes).
            let mixed = self.order_levels.iter().filter(|&&n| n > 0).count() > 1;
            let class = if mixed {
                self.order[lo..]
                    .iter()
                    .filter(|&&p| pieces.get(p))
                    .map(|&p| self.priority[p as usize])
                    .max()
                    .unwrap_or(Priority::Skip)
            } else {
                Priority::Skip
            };
            let fits = |p: u32| pieces.get(p) && self.priority[p as usize] >= class;
            let found = if self.strategy == PickStrategy::Sequential {
                // Lowest index first: a scan, but the simulator's comparison
                // is the only user.
                (0..self.lengths.num_pieces()).find(|&p| {
                    let i = self.pos[p as usize];
                    i != NOT_IN_ORDER && i as usize >= lo && fits(p)
                })
            } else if random {
                let start = lo + rng.below(hi - lo);
                (start..hi)
                    .chain(lo..start)
                    .map(|i| self.order[i])
                    .find(|&p| fits(p))
            } else {
                self.order[lo..].iter().copied().find(|&p| fits(p))
            };
            if let Some(p) = found {
                let vp = self.open(p, peer, parole.then_some(peer));
                return self.take_missing(vp, peer);
            }
        }
        // Nothing of its own to do: help with any started piece rather than
        // let it stall behind a choking or slow owner (reservations are a
        // preference; blame for a shared piece is shared).
        if let Some(p) = self.partial.iter().copied().find(|p| pieces.get(p.get())) {
            if let Some(d) = self.downloads.get_mut(&p)
                && d.exclusive != Some(peer)
            {
                d.exclusive = None;
            }
            return self.take_missing(p, peer);
        }
        // 4. Endgame: ask this peer too for a block in flight elsewhere.
        if self.in_endgame() {
            return self.pick_endgame(peer, pieces);
        }
        None
    }

    fn pick_endgame(&mut self, peer: PeerKey, pieces: &Bitfield) -> Option<BlockInfo> {
        let mut best: Option<(usize, ValidPieceIndex, usize)> = None;
        for (&p, d) in &self.downloads {
            if !pieces.get(p.get()) {
                continue;
            }
            for (k, s) in d.slots.iter().enumerate() {
                if let Slot::Requested(peers) = s
                    && peers.len() < ENDGAME_REQUESTS_PER_BLOCK_MAX
                    && !peers.contains(&peer)
                    && best.is_none_or(|(n, _, _)| peers.len() < n)
                {
                    best = Some((peers.len(), p, k));
                }
            }
        }
        let (_, p, k) = best?;
        if let Some(Slot::Requested(peers)) =
            self.downloads.get_mut(&p).and_then(|d| d.slots.get_mut(k))
        {
            peers.push(peer);
        }
        self.lengths.block(p, k as u32)
    }

    /// `peer` no longer has `block` in flight (cancel, reject, choke, timeout,
    /// disconnect). The block is missing again unless another peer has it in flight.
    pub fn cancel_request(&mut self, block: BlockInfo, peer: PeerKey) {
        let k = (block.offset / swarm_wire::peer::BLOCK_LEN) as usize;
        let Some(d) = self.downloads.get_mut(&block.piece) else {
            return;
        };
        let Some(Slot::Requested(peers)) = d.slots.get_mut(k) else {
            return;
        };
        peers.retain(|&q| q != peer);
        if peers.is_empty() {
            d.slots[k] = Slot::Missing;
            d.missing += 1;
            self.unrequested += 1;
            self.partial.insert(block.piece);
        }
    }

    /// `peer` disconnected: pieces reserved for it, and pieces opened for it
    /// (affinity), are open to everyone, so strict priority finishes them
    /// before new ones open (an orphaned piece would otherwise wait for
    /// endgame, its received blocks buffered).
    pub fn release_exclusive(&mut self, peer: PeerKey) {
        for d in self.downloads.values_mut() {
            if d.exclusive == Some(peer) {
                d.exclusive = None;
            }
            if d.opener == Some(peer) {
                d.opener = None;
            }
        }
    }

    /// A block arrived from `from`. The caller checked that it asked `from`
    /// for it (or did recently) and that it has the block's exact size.
    pub fn received(&mut self, block: BlockInfo, from: PeerKey, data: Bytes) -> Received {
        let k = (block.offset / swarm_wire::peer::BLOCK_LEN) as usize;
        let Some(d) = self.downloads.get_mut(&block.piece) else {
            return Received::NotNeeded;
        };
        let cancel = match d.slots.get(k) {
            None | Some(Slot::Received { .. }) => return Received::NotNeeded,
            Some(Slot::Missing) => {
                d.missing -= 1;
                self.unrequested -= 1;
                if d.missing == 0 {
                    self.partial.remove(&block.piece);
                }
                Vec::new()
            }
            Some(Slot::Requested(peers)) => peers.iter().copied().filter(|&q| q != from).collect(),
        };
        d.slots[k] = Slot::Received { data, from };
        d.received += 1;
        if d.received as usize != d.slots.len() {
            return Received::Stored {
                cancel,
                complete: None,
            };
        }
        let d = self
            .downloads
            .remove(&block.piece)
            .expect("download present");
        let mut blocks = Vec::with_capacity(d.slots.len());
        let mut from_peers = Vec::with_capacity(d.slots.len());
        for s in d.slots {
            if let Slot::Received { data, from } = s {
                blocks.push(data);
                from_peers.push(from);
            }
        }
        self.verifying.insert(block.piece, from_peers);
        Received::Stored {
            cancel,
            complete: Some(blocks),
        }
    }

    /// The driver verified (and wrote) a piece, or it failed. Returns the
    /// peers that sent its blocks, in block order. A failed piece starts over,
    /// open to every peer not on parole.
    pub fn verified(&mut self, piece: ValidPieceIndex, ok: bool) -> Option<Vec<PeerKey>> {
        let from = self.verifying.remove(&piece)?;
        if ok {
            self.have.set(piece.get());
            if self.is_wanted(piece.get()) {
                self.wanted_left -= 1;
            }
        } else {
            let n = self.lengths.blocks_in_piece(piece);
            self.downloads.insert(
                piece,
                Download {
                    slots: vec![Slot::Missing; n as usize],
                    missing: n,
                    received: 0,
                    exclusive: None,
                    opener: None,
                },
            );
            self.unrequested += u64::from(n);
            if n > 0 {
                self.partial.insert(piece);
            }
        }
        Some(from)
    }

    pub fn is_verifying(&self, piece: ValidPieceIndex) -> bool {
        self.verifying.contains_key(&piece)
    }

    /// Peers `block` is requested from (for invariant checks).
    pub fn requested_from(&self, block: BlockInfo) -> &[PeerKey] {
        let k = (block.offset / swarm_wire::peer::BLOCK_LEN) as usize;
        match self
            .downloads
            .get(&block.piece)
            .and_then(|d| d.slots.get(k))
        {
            Some(Slot::Requested(peers)) => peers,
            _ => &[],
        }
    }

    /// Total (block, peer) request pairs.
    pub fn requested_pairs(&self) -> usize {
        self.downloads
            .values()
            .flat_map(|d| &d.slots)
            .map(|s| match s {
                Slot::Requested(p) => p.len(),
                _ => 0,
            })
            .sum()
    }

    /// Blocks received but not yet handed over for verification.
    pub fn buffered_blocks(&self) -> usize {
        self.downloads.values().map(|d| d.received as usize).sum()
    }

    pub fn pieces_in_progress(&self) -> usize {
        self.downloads.len()
    }

    /// Connected peers that have each piece, in piece order (a status
    /// view: the daemon's piece map).
    pub fn availability_all(&self) -> &[u32] {
        &self.availability
    }

    /// The pieces being downloaded or verified, ascending, each once.
    pub fn in_progress(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .downloads
            .keys()
            .chain(self.verifying.keys())
            .map(|p| p.get())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn check_invariants(&self) {
        let n = self.lengths.num_pieces() as usize;
        assert_eq!(self.pos.len(), n);
        assert_eq!(self.availability.len(), n);
        let mut unrequested = 0u64;
        let mut levels = [0u32; Priority::LEVELS];
        let mut wanted_left = 0;
        for p in self.lengths.pieces() {
            let prio = self.priority[p.as_usize()];
            let in_order = self.pos[p.as_usize()] != NOT_IN_ORDER;
            let states = [
                self.have.get(p.get()),
                self.verifying.contains_key(&p),
                self.downloads.contains_key(&p),
                in_order,
            ];
            let n = states.iter().filter(|&&s| s).count();
            // None of them: skipped.
            assert!(
                n == 1 || (n == 0 && prio == Priority::Skip),
                "piece {p:?} ({prio:?}) in states {states:?}"
            );
            assert!(
                !(in_order && prio == Priority::Skip),
                "skipped {p:?} in order"
            );
            if in_order {
                levels[prio as usize] += 1;
            }
            if prio != Priority::Skip && !self.have.get(p.get()) {
                wanted_left += 1;
            }
        }
        assert_eq!(levels, self.order_levels, "pieces in order by priority");
        assert_eq!(wanted_left, self.wanted_left, "wanted pieces left");
        assert_eq!(self.in_order.count_ones() as usize, self.order.len());
        for (k, &p) in self.order.iter().enumerate() {
            assert_eq!(self.pos[p as usize] as usize, k, "pos of {p}");
            assert!(self.in_order.get(p), "{p} in order, not in in_order");
            let a = self.availability[p as usize] as usize;
            assert!(a < self.bucket_start.len(), "bucket for avail {a}");
            assert!(
                (self.bucket_start[a] as usize..self.bucket_end(a)).contains(&k),
                "piece {p} (avail {a}) at {k} outside its bucket"
            );
        }
        assert!(self.bucket_start.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(self.bucket_start[0], 0);
        for (&p, d) in &self.downloads {
            assert_eq!(d.slots.len() as u32, self.lengths.blocks_in_piece(p));
            let missing = d
                .slots
                .iter()
                .filter(|s| matches!(s, Slot::Missing))
                .count();
            let received = d
                .slots
                .iter()
                .filter(|s| matches!(s, Slot::Received { .. }))
                .count();
            assert_eq!(d.missing as usize, missing, "missing count of {p:?}");
            assert_eq!(d.received as usize, received, "received count of {p:?}");
            assert!(
                received < d.slots.len(),
                "complete piece {p:?} not verifying"
            );
            assert_eq!(self.partial.contains(&p), missing > 0, "partial set {p:?}");
            for s in &d.slots {
                if let Slot::Requested(peers) = s {
                    assert!(!peers.is_empty() && peers.len() <= ENDGAME_REQUESTS_PER_BLOCK_MAX);
                    let distinct: BTreeSet<_> = peers.iter().collect();
                    assert_eq!(distinct.len(), peers.len(), "duplicate requester");
                }
            }
            unrequested += missing as u64;
        }
        assert!(self.partial.iter().all(|p| self.downloads.contains_key(p)));
        assert_eq!(self.unrequested, unrequested);
    }
}

#[cfg(test)]
mod tests;
