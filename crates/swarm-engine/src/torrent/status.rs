//! Read-only views of the torrent core: getters for the status display and
//! the choker, and the invariant check the tests and the simulator run.

use super::{
    PeerKey, PeerStats, TORRENT_READS_IN_FLIGHT_MAX, TorrentConfig, TorrentCore, TorrentStats,
};
use crate::bitfield::Bitfield;
use crate::time::Instant;
use crate::unchoke::ChokeDecision;
use swarm_wire::lengths::Lengths;

impl TorrentCore {
    /// Pieces verified and written.
    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }

    /// Every wanted piece is verified and written (the download is done;
    /// skipped pieces may be missing). The torrent seeds what it has.
    pub fn is_complete(&self) -> bool {
        self.picker.is_done()
    }

    /// Every piece is have (a seed, whatever was skipped).
    pub fn is_seed(&self) -> bool {
        self.picker.have().is_all_set()
    }

    /// Wanted pieces not have yet.
    pub fn wanted_left(&self) -> u32 {
        self.picker.wanted_left()
    }

    /// Each piece's priority.
    pub fn priorities(&self) -> &[crate::picker::Priority] {
        self.picker.priorities()
    }

    /// Connected peers that have each piece, in piece order.
    pub fn availability(&self) -> &[u32] {
        self.picker.availability_all()
    }

    /// The pieces being downloaded or verified, ascending.
    pub fn pieces_downloading(&self) -> Vec<u32> {
        self.picker.in_progress()
    }

    pub fn lengths(&self) -> &Lengths {
        &self.lengths
    }

    pub fn config(&self) -> &TorrentConfig {
        &self.config
    }

    /// The error that stopped the torrent, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Whether every missing block is requested and duplicates are allowed.
    pub fn in_endgame(&self) -> bool {
        self.picker.in_endgame()
    }

    pub fn stats(&self, now: Instant) -> TorrentStats {
        TorrentStats {
            downloaded: self.downloaded,
            uploaded: self.uploaded,
            wasted: self.wasted,
            pieces_have: self.picker.have().count_ones(),
            pieces_total: self.lengths.num_pieces(),
            hash_failures: self.hash_failures,
            peers: self.peers.len(),
            download_rate: self.download_rate.rate(now),
            upload_rate: self.upload_rate.rate(now),
            endgame: self.picker.in_endgame(),
        }
    }

    /// All connected peers, in `PeerKey` order.
    pub fn peer_stats(&self, now: Instant) -> Vec<PeerStats> {
        self.peers
            .keys()
            .filter_map(|&k| self.peer(now, k))
            .collect()
    }

    /// The peers where either side is interested (`am_interested`, or
    /// `peer_interested` as [`PeerStats`] counts it), in `PeerKey` order:
    /// what a driver reports to its endpoint as busy each tick, without
    /// building every peer's [`PeerStats`] (rates, queue target, choke
    /// decision) only to read two flags.
    pub fn busy_peers(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| p.am_interested || p.peer_interested || self.super_seed_wants(p))
            .map(|(&k, _)| k)
    }

    pub fn peer(&self, now: Instant, key: PeerKey) -> Option<PeerStats> {
        let p = self.peers.get(&key)?;
        Some(PeerStats {
            peer: key,
            info: p.info,
            am_choking: p.am_choking,
            am_interested: p.am_interested,
            peer_choking: p.peer_choking,
            peer_interested: p.peer_interested || self.super_seed_wants(p),
            snubbed: p.snubbed,
            download_rate: p.download.rate(now),
            upload_rate: p.upload.rate(now),
            downloaded: p.download.total(),
            uploaded: p.upload.total(),
            pieces: p.pieces.count_ones(),
            requests_in_flight: p.in_flight.len(),
            queue_target: p.queue_target(now, &self.config),
            requests_from_peer: p.requests_held(),
            connected_at: p.connected_at,
            choke: self.choke_decision(key).cloned(),
        })
    }

    /// The last rechoke's decisions for the peers still connected, in
    /// `PeerKey` order: the `--peers` table and `--json` status print them
    /// (`state`, `reason` via `Display`, both rates, `since`).
    pub fn choke_decisions(&self) -> impl Iterator<Item = &ChokeDecision> + '_ {
        self.choke_decisions
            .iter()
            .filter(|d| self.peers.contains_key(&d.peer))
    }

    fn choke_decision(&self, key: PeerKey) -> Option<&ChokeDecision> {
        self.choke_decisions
            .binary_search_by_key(&key, |d| d.peer)
            .ok()
            .map(|i| &self.choke_decisions[i])
    }

    /// When the last rechoke ran (`None`: never).
    pub fn last_rechoke(&self) -> Option<Instant> {
        self.last_rechoke
    }

    pub fn num_peers(&self) -> usize {
        self.peers.len()
    }

    /// Asserts the invariants of the module docs and the choker's. Costs O(pieces × peers +
    /// blocks): tests and the simulator call it after every step.
    pub fn check_invariants(&self) {
        self.picker.check_invariants();
        self.check_super_seed();
        let have = self.picker.have();
        let mut pairs = 0;
        assert!(self.reads_outstanding <= TORRENT_READS_IN_FLIGHT_MAX);
        let peer_reads: usize = self.peers.values().map(|p| p.reads_outstanding).sum();
        let unchoked = self.peers.values().filter(|p| !p.am_choking).count();
        assert_eq!(self.unchoked, unchoked, "unchoked peers counted");
        assert!(peer_reads <= self.reads_outstanding, "reads of live peers");
        for (&k, p) in &self.peers {
            p.check_invariants(&self.config);
            for b in &p.in_flight {
                assert!(
                    self.picker.requested_from(*b).contains(&k),
                    "{k:?} has {b:?} in flight but the picker does not know"
                );
                assert!(
                    p.pieces.get(b.piece.get()),
                    "{k:?} asked for a piece it lacks"
                );
            }
            pairs += p.in_flight.len();
            let interesting = p
                .pieces
                .iter_ones()
                .filter(|&i| !have.get(i) && self.picker.is_wanted(i))
                .count();
            assert_eq!(
                p.interesting as usize, interesting,
                "interesting count of {k:?}"
            );
            if self.error.is_none() {
                assert_eq!(
                    p.am_interested,
                    interesting > 0 && !self.picker.is_done(),
                    "interest in {k:?}"
                );
            }
            if p.peer_choking && !p.info.fast_ext {
                assert!(p.in_flight.is_empty(), "requests to choking {k:?}");
            }
        }
        assert_eq!(pairs, self.picker.requested_pairs(), "request pairs");
        for piece in self.lengths.pieces() {
            let holders = self
                .peers
                .values()
                .filter(|p| p.pieces.get(piece.get()))
                .count();
            assert_eq!(
                self.picker.availability(piece) as usize,
                holders,
                "availability of {piece:?}"
            );
        }
        // The choke state on the wire is the last rechoke's decision, and no
        // more peers are unchoked than the unchoker's slots.
        let mut unchoked = 0;
        for (k, p) in &self.peers {
            unchoked += usize::from(!p.am_choking);
            match self.choke_decision(*k) {
                Some(d) => assert_eq!(
                    p.am_choking,
                    !d.state.is_unchoked(),
                    "{k:?} choke state differs from its decision {d:?}"
                ),
                None => assert!(p.am_choking, "{k:?} unchoked without a decision"),
            }
        }
        assert!(
            unchoked <= self.unchoker.max_unchoked(),
            "{unchoked} peers unchoked"
        );
        for (k, _) in &self.transmit {
            assert!(self.peers.contains_key(k), "message queued for gone {k:?}");
        }
        if have.is_all_set() {
            assert_eq!(pairs, 0);
        }
    }
}
