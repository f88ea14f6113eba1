//! The torrent core's reactions to storage results and to the passing of time:
//! verified pieces, hash failures and bans, request timeouts, keep-alives,
//! rechoking.

use std::collections::BTreeSet;

use swarm_wire::peer::Message;

use super::{HASH_FAILURES_BAN, PeerKey, StorageDone, TorrentCore, TorrentEvent, UnchokeCandidate};
use crate::time::Instant;
use crate::unchoke::ChokeDecision;
use crate::unchoke::RechokeContext;

impl TorrentCore {
    /// A disk or hash job finished.
    pub fn handle_storage(&mut self, now: Instant, done: StorageDone) {
        self.advance(now);
        match done {
            StorageDone::PieceVerified { piece, ok } => {
                let Some(from) = self.picker.verified(piece, ok) else {
                    debug_assert!(false, "verified {piece:?}, which was not verifying");
                    return;
                };
                if ok {
                    self.piece_done(piece);
                } else {
                    self.hash_failed(piece, from);
                }
            }
            StorageDone::WriteFailed { piece, error } => {
                // Not have: the bytes are not on disk. Back to missing so the
                // state stays consistent; the torrent stops anyway.
                let _ = self.picker.verified(piece, false);
                self.fatal(format!("writing piece {}: {error}", piece.get()));
            }
            StorageDone::BlockRead { peer, block, data } => {
                debug_assert_eq!(data.len(), block.length as usize, "read length");
                let Some(p) = self.peers.get_mut(&peer) else {
                    self.read_answered(peer);
                    return;
                };
                // Not reading any more: cancelled, or the peer was choked.
                if !p.reading.remove(&block) || data.len() != block.length as usize {
                    self.read_answered(peer);
                    return;
                }
                let len = u64::from(block.length);
                p.upload.record(self.now, len);
                self.upload_rate.record(self.now, len);
                self.uploaded += len;
                self.send(
                    peer,
                    Message::Piece {
                        piece: block.piece.get(),
                        offset: block.offset,
                        data,
                    },
                );
                self.read_answered(peer);
            }
            StorageDone::ReadFailed {
                peer, block, error, ..
            } => {
                self.read_answered(peer);
                self.fatal(format!("reading piece {}: {error}", block.piece.get()));
            }
        }
    }

    fn fatal(&mut self, error: String) {
        if self.error.is_none() {
            self.error = Some(error.clone());
            self.events.push_back(TorrentEvent::Fatal(error));
        }
    }

    fn piece_done(&mut self, piece: swarm_wire::lengths::ValidPieceIndex) {
        self.events.push_back(TorrentEvent::PieceCompleted(piece));
        // Counted in peers' `interesting` only if wanted (a skipped piece
        // finishes if it was in progress when skipped).
        let wanted = self.picker.is_wanted(piece.get());
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            let Some(p) = self.peers.get_mut(&k) else {
                continue;
            };
            if wanted && p.pieces.get(piece.get()) {
                // It has the piece: one less reason to want it.
                p.interesting -= 1;
                self.update_interest(k);
            }
            // Every peer hears of it, those that have it too (libtorrent's
            // `send_redundant_have`): a seed learns our progress from it and
            // sees when we become a seed, and its table shows what we hold.
            self.send(k, Message::Have { piece: piece.get() });
        }
        if wanted && self.picker.is_done() {
            self.events.push_back(TorrentEvent::Completed);
        }
        // Our first piece: now there is something to give, so free slots
        // go to new peers at once (the choker's preemptive unchoke), with
        // the `have`s just sent. A peer that wants the piece then sends its
        // `interested` and its requests together, instead of waiting for
        // an unchoke a round trip later (in a flash crowd, every hop of
        // the first pieces).
        if self.picker.have().count_ones() == 1 && self.has_free_unchoke_slot() {
            self.rechoke(false);
        }
    }

    /// A piece failed its hash. The sole sender of a failed piece gets a
    /// strike (banned at [`HASH_FAILURES_BAN`]); every sender goes on parole,
    /// so its next pieces are its alone and the next failure is attributable.
    fn hash_failed(&mut self, piece: swarm_wire::lengths::ValidPieceIndex, from: Vec<PeerKey>) {
        self.hash_failures += 1;
        self.wasted += u64::from(self.lengths.piece_len(piece));
        let senders: BTreeSet<PeerKey> = from.into_iter().collect();
        let sole = senders.len() == 1;
        let mut ban = Vec::new();
        for k in &senders {
            if let Some(p) = self.peers.get_mut(k) {
                p.parole = true;
                if sole {
                    p.hash_strikes += 1;
                    if p.hash_strikes >= HASH_FAILURES_BAN {
                        ban.push(*k);
                    }
                }
            }
        }
        for k in ban {
            self.drop_peer(
                k,
                format!("sent {HASH_FAILURES_BAN} pieces that failed their hash"),
                true,
            );
        }
        self.refill_all();
    }

    /// Housekeeping: request timeouts, rechoke, keep-alives, idle peers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let now = self.now;
        if now >= self.next_tick {
            self.next_tick = now + self.config.tick_interval;
            self.tick();
        }
        if now >= self.next_rechoke {
            self.next_rechoke = now + self.config.choker.rechoke_interval;
            self.rechoke(true);
        }
        // Slots of peers that lost interest since (a round did it already).
        if self.rechoke_pending {
            self.rechoke(false);
        }
    }

    fn tick(&mut self) {
        let now = self.now;
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            let Some(p) = self.peers.get_mut(&k) else {
                continue;
            };
            if now.saturating_since(p.last_received) >= self.config.peer_idle_timeout {
                self.drop_peer(k, "idle: nothing received".into(), false);
                continue;
            }
            if !p.in_flight.is_empty()
                && now.saturating_since(p.last_progress) >= self.config.request_timeout
            {
                // Snubbed: its requests go to other peers; it keeps one.
                p.snubbed = true;
                p.slow_start_target = self.config.queue_min;
                let blocks = std::mem::take(&mut p.in_flight);
                for b in &blocks {
                    p.note_cancelled(*b);
                    self.picker.cancel_request(*b, k);
                }
                for b in blocks {
                    self.send(
                        k,
                        Message::Cancel {
                            piece: b.piece.get(),
                            offset: b.offset,
                            length: b.length,
                        },
                    );
                }
            }
            if let Some(p) = self.peers.get(&k)
                && now.saturating_since(p.last_sent) >= self.config.keepalive_interval
            {
                self.send(k, Message::KeepAlive);
            }
        }
        // Rates change: pipelines may grow; timed-out blocks go elsewhere.
        self.refill_all();
    }

    /// Asks the unchoker whom to unchoke, sends the differences and keeps
    /// the decisions for the status display. `round`: a scheduled rechoke
    /// (slots are re-ranked), not a slot change between rounds.
    pub(super) fn rechoke(&mut self, round: bool) {
        let now = self.now;
        // A super-seed's peers see only their offers: for the choker one
        // wants data while it lacks a piece (see `superseed`).
        let candidates: Vec<UnchokeCandidate> = self
            .peers
            .iter()
            .map(|(&k, p)| UnchokeCandidate {
                peer: k,
                interested: p.peer_interested || self.super_seed_wants(p),
                unchoked: !p.am_choking,
                unchokes_us_since: (!p.peer_choking).then_some(p.peer_unchoked_at),
                am_interested_since: p.am_interested.then_some(p.am_interested_at),
                download_rate: p.download.rate(now),
                upload_rate: p.upload.rate(now),
                connected_at: p.connected_at,
                last_block_at: p.last_block_at,
            })
            .collect();
        let ctx = RechokeContext {
            seeding: self.picker.is_done(),
            round,
            have_pieces: !self.picker.have().is_none_set(),
        };
        let decisions = self.unchoker.rechoke(now, ctx, &candidates, &mut self.rng);
        debug_assert_eq!(decisions.len(), candidates.len(), "one decision per peer");
        // The peers whose state changes, found in one pass: decisions come
        // in candidate order, which is key order, like `peers` (most
        // rechokes change one peer or none; a lookup per peer cost more
        // than the rest). Acting on one peer never changes another's
        // choke state, so this is the same as testing each in turn.
        let in_order = decisions.len() == self.peers.len()
            && decisions
                .iter()
                .zip(self.peers.keys())
                .all(|(d, k)| d.peer == *k);
        let changed: Vec<&ChokeDecision> = if in_order {
            decisions
                .iter()
                .zip(self.peers.values())
                .filter(|(d, p)| d.state.is_unchoked() == p.am_choking)
                .map(|(d, _)| d)
                .collect()
        } else {
            decisions.iter().collect()
        };
        for d in changed {
            let want = d.state.is_unchoked();
            if let Some(p) = self.peers.get_mut(&d.peer) {
                if want && p.am_choking {
                    p.am_choking = false;
                    self.unchoked += 1;
                    self.send(d.peer, Message::Unchoke);
                    // Unchoked: its quota of offers grows.
                    self.super_seed_offer(d.peer);
                } else if !want && !p.am_choking {
                    self.choke(d.peer);
                }
            }
        }
        self.choke_decisions = decisions;
        // In candidate order, which is key order: then this only checks.
        if !self.choke_decisions.is_sorted_by_key(|d| d.peer) {
            self.choke_decisions.sort_by_key(|d| d.peer);
        }
        self.last_rechoke = Some(now);
        self.rechoke_pending = false;
    }

    /// Chokes a peer: its queued requests are dropped (BEP 3), or rejected
    /// one by one for a BEP 6 peer.
    fn choke(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let was_unchoked = !p.am_choking;
        p.am_choking = true;
        let fast = p.info.fast_ext;
        if was_unchoked {
            self.unchoked -= 1;
        }
        self.super_seed_choked(key);
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let mut dropped: Vec<_> = p.requests.drain(..).collect();
        dropped.extend(std::mem::take(&mut p.reading));
        self.send(key, Message::Choke);
        if fast {
            for b in dropped {
                self.send(
                    key,
                    Message::RejectRequest {
                        piece: b.piece.get(),
                        offset: b.offset,
                        length: b.length,
                    },
                );
            }
        }
    }
}
