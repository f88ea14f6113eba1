//! The tit-for-tat choker inside `TorrentCore`: rounds driven by
//! `handle_timeout` with a fake clock, uploads gated by the choke state, and
//! the explanations exposed in `PeerStats`.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use swarm_engine::{
    Bitfield, ChokeReason, ChokeState, Instant, PeerInfo, PeerKey, TorrentConfig, TorrentCore,
    TorrentEvent,
};
use swarm_sim::harness::*;
use swarm_wire::Lengths;
use swarm_wire::peer::Message;

const SLOW: PeerInfo = PeerInfo {
    fast_ext: false,
    outgoing: false,
};
const FAST: PeerInfo = PeerInfo {
    fast_ext: true,
    outgoing: false,
};

fn core(pieces: u32, seed_all: bool) -> TorrentCore {
    let l = Lengths::new(u64::from(pieces) * u64::from(K), K).unwrap();
    let have = if seed_all {
        Bitfield::full(pieces)
    } else {
        Bitfield::empty(pieces)
    };
    TorrentCore::new(TorrentConfig::default(), l, have, 42, Instant::ZERO)
}

fn request(piece: u32) -> Message {
    Message::Request {
        piece,
        offset: 0,
        length: K,
    }
}

fn state(c: &TorrentCore, k: u64) -> ChokeState {
    c.peer(Instant::ZERO, PeerKey(k))
        .and_then(|p| p.choke)
        .map(|d| d.state)
        .expect("peer with a decision")
}

#[test]
fn a_choked_peer_gets_no_data_and_a_fast_one_gets_rejects() {
    // A seed with seven interested leechers: four regular slots and the
    // optimistic one go to peers 1–5; 6 (BEP 3) and 7 (BEP 6) stay choked.
    let mut c = core(8, true);
    for k in 1..=7 {
        c.peer_connected(Instant::ZERO, PeerKey(k), if k == 7 { FAST } else { SLOW });
    }
    for k in 1..=7 {
        c.handle_message(Instant::ZERO, PeerKey(k), Message::Interested);
    }
    drain(&mut c);
    assert_eq!(state(&c, 5), ChokeState::Optimistic);
    assert_eq!(state(&c, 6), ChokeState::Choked);
    assert_eq!(state(&c, 7), ChokeState::Choked);
    // The choked peers ask anyway; an unchoked one asks too.
    c.handle_message(secs(1), PeerKey(6), request(0));
    c.handle_message(secs(1), PeerKey(7), request(1));
    c.handle_message(secs(1), PeerKey(1), request(2));
    let (tx, ev) = drain(&mut c);
    let block = c.lengths().validate_block(2, 0, K).unwrap();
    // Only the unchoked peer's request becomes a disk read.
    assert_eq!(
        ev,
        vec![TorrentEvent::ReadBlock {
            peer: PeerKey(1),
            block
        }]
    );
    // The BEP 6 peer is told; the BEP 3 one just gets nothing.
    assert_eq!(
        tx,
        vec![(
            PeerKey(7),
            Message::RejectRequest {
                piece: 1,
                offset: 0,
                length: K
            }
        )]
    );
    assert_eq!(c.peer(secs(1), PeerKey(6)).unwrap().requests_from_peer, 0);
    c.check_invariants();
}

/// Requests a leecher sent to each peer and not yet answered.
#[derive(Default)]
struct Outstanding(BTreeMap<PeerKey, VecDeque<u32>>);

impl Outstanding {
    fn note(&mut self, tx: &[(PeerKey, Message)]) {
        for (k, m) in tx {
            match m {
                Message::Request { piece, .. } => {
                    self.0.entry(*k).or_default().push_back(*piece);
                }
                Message::Cancel { piece, .. } => {
                    if let Some(q) = self.0.get_mut(k) {
                        q.retain(|p| p != piece);
                    }
                }
                _ => {}
            }
        }
    }
}

#[test]
fn core_rechokes_every_10s_by_download_rate() {
    // A leecher and six seeds that unchoke it and want its pieces later
    // (they declare interest). Peer k sends k blocks a second.
    let mut c = core(4096, false);
    let full = Bitfield::full(4096).to_wire();
    for k in 1..=6 {
        c.peer_connected(Instant::ZERO, PeerKey(k), SLOW);
        c.handle_message(Instant::ZERO, PeerKey(k), Message::Bitfield(full.clone()));
        c.handle_message(Instant::ZERO, PeerKey(k), Message::Unchoke);
        c.handle_message(Instant::ZERO, PeerKey(k), Message::Interested);
    }
    let mut out = Outstanding::default();
    let (tx, _) = drain(&mut c);
    out.note(&tx);
    // Free slots were filled by key while no rate was known.
    for k in 1..=4 {
        assert_eq!(state(&c, k), ChokeState::Unchoked);
    }
    assert_eq!(state(&c, 5), ChokeState::Optimistic);
    assert_eq!(c.poll_timeout(), Some(secs(1)));
    let first_round = c.last_rechoke();

    for t in 0..10u64 {
        let at = Instant(t * 1_000_000 + 500_000);
        for k in 1..=6u64 {
            for _ in 0..k {
                let Some(piece) = out.0.get_mut(&PeerKey(k)).and_then(|q| q.pop_front()) else {
                    break;
                };
                let data = Bytes::from(vec![k as u8; K as usize]);
                c.handle_message(
                    at,
                    PeerKey(k),
                    Message::Piece {
                        piece,
                        offset: 0,
                        data,
                    },
                );
            }
        }
        let (tx, _) = drain(&mut c);
        out.note(&tx);
        if t > 0 {
            // Housekeeping ticks every second; no round before 10 s.
            c.handle_timeout(secs(t));
            let (tx, _) = drain(&mut c);
            assert!(
                !tx.iter()
                    .any(|(_, m)| matches!(m, Message::Choke | Message::Unchoke)),
                "t = {t} s: {tx:?}"
            );
            out.note(&tx);
            assert_eq!(c.last_rechoke(), first_round);
        }
    }
    c.handle_timeout(secs(10));
    let (tx, _) = drain(&mut c);
    assert_eq!(c.last_rechoke(), Some(secs(10)));
    // Top four by download rate: 6, 5, 4, 3 (5 was the optimistic peer and
    // won a regular slot); 1 and 2 lose theirs, and one of them is drawn as
    // the new optimistic unchoke.
    let stats = c.peer_stats(secs(10));
    for (k, rank) in [(6, 1), (5, 2), (4, 3), (3, 4)] {
        let d = stats[k - 1].choke.clone().unwrap();
        assert_eq!(d.state, ChokeState::Unchoked, "peer {k}");
        assert_eq!(d.reason, ChokeReason::TopDownload { rank, slots: 4 });
        assert!(d.download_rate > 0.0);
    }
    let low: Vec<ChokeState> = stats[..2]
        .iter()
        .map(|p| p.choke.as_ref().unwrap().state)
        .collect();
    assert!(
        low == [ChokeState::Optimistic, ChokeState::Choked]
            || low == [ChokeState::Choked, ChokeState::Optimistic],
        "{low:?}"
    );
    let choked = if low[0] == ChokeState::Choked { 1 } else { 2 };
    assert_eq!(
        stats[choked - 1].choke.as_ref().unwrap().reason.to_string(),
        format!("#{} by download rate, 4 slots", 7 - choked)
    );
    let mut sent: Vec<(PeerKey, Message)> = tx
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Choke | Message::Unchoke))
        .collect();
    sent.sort_by_key(|(k, _)| *k);
    assert_eq!(
        sent,
        vec![
            (PeerKey(choked as u64), Message::Choke),
            (PeerKey(6), Message::Unchoke)
        ]
    );
    assert_eq!(c.choke_decisions().count(), 6);
    c.check_invariants();
}

#[test]
fn core_feeds_anti_snubbing() {
    // A seed that unchokes us and never sends a block loses its slot at the
    // 60 s round; the core tells it `choke`.
    let mut c = core(16, false);
    c.peer_connected(Instant::ZERO, PeerKey(1), SLOW);
    let full = Bitfield::full(16).to_wire();
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Bitfield(full));
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Unchoke);
    c.handle_message(Instant::ZERO, PeerKey(1), Message::Interested);
    drain(&mut c);
    for t in 1..60 {
        c.handle_message(secs(t), PeerKey(1), Message::KeepAlive);
        c.handle_timeout(secs(t));
        drain(&mut c);
        assert_eq!(state(&c, 1), ChokeState::Unchoked, "t = {t} s");
    }
    c.handle_timeout(secs(60));
    let (tx, _) = drain(&mut c);
    assert!(tx.contains(&(PeerKey(1), Message::Choke)), "{tx:?}");
    let d = c.peer(secs(60), PeerKey(1)).unwrap().choke.unwrap();
    assert_eq!(d.state, ChokeState::Snubbed);
    assert_eq!(d.reason.to_string(), "snubbed: nothing for 60 s");
    c.check_invariants();
}
