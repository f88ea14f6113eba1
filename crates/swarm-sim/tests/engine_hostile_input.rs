//! Network input never panics the core: arbitrary message sequences from
//! several peers, interleaved with storage answers and time, keep every
//! invariant. Violations end in `Disconnect`, never in a panic.

use bytes::Bytes;
use proptest::prelude::*;
use swarm_engine::{
    Bitfield, Duration, Instant, PeerInfo, PeerKey, StorageDone, TorrentConfig, TorrentCore,
    TorrentEvent,
};
use swarm_sim::harness::*;
use swarm_wire::Lengths;
use swarm_wire::peer::Message;

fn small() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..6, Just(K), Just(K - 1), Just(2 * K), any::<u32>()]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        small().prop_map(|piece| Message::Have { piece }),
        proptest::collection::vec(any::<u8>(), 0..3)
            .prop_map(|b| Message::Bitfield(Bytes::from(b))),
        (small(), small(), small()).prop_map(|(piece, offset, length)| Message::Request {
            piece,
            offset,
            length
        }),
        (small(), small(), 0usize..(K as usize + 2)).prop_map(|(piece, offset, n)| {
            Message::Piece {
                piece,
                offset,
                data: Bytes::from(vec![0xAB; n]),
            }
        }),
        (small(), small(), small()).prop_map(|(piece, offset, length)| Message::Cancel {
            piece,
            offset,
            length
        }),
        (small(), small(), small()).prop_map(|(piece, offset, length)| Message::RejectRequest {
            piece,
            offset,
            length
        }),
        small().prop_map(|piece| Message::SuggestPiece { piece }),
        small().prop_map(|piece| Message::AllowedFast { piece }),
        any::<u16>().prop_map(Message::Port),
    ]
}

#[derive(Debug, Clone)]
enum Input {
    Msg(u8, Message),
    Connect(u8, bool),
    Disconnect(u8),
    Storage(bool),
    Time(u16),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        8 => (0u8..3, message()).prop_map(|(p, m)| Input::Msg(p, m)),
        1 => (0u8..3, any::<bool>()).prop_map(|(p, f)| Input::Connect(p, f)),
        1 => (0u8..3).prop_map(Input::Disconnect),
        2 => any::<bool>().prop_map(Input::Storage),
        1 => any::<u16>().prop_map(Input::Time),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_input_keeps_invariants(
        seed in any::<u64>(),
        half in any::<bool>(),
        inputs in proptest::collection::vec(input(), 0..200),
    ) {
        // 5 pieces of 2 blocks, the last one short.
        let lengths = Lengths::new(4 * 2 * u64::from(K) + 100, 2 * K).unwrap();
        let mut have = Bitfield::empty(5);
        if half {
            have.set(0);
            have.set(3);
        }
        let mut core = TorrentCore::new(TorrentConfig::default(), lengths, have, seed, Instant::ZERO);
        let mut now = Instant::ZERO;
        let mut generation = [0u64; 3];
        let mut connected = [false; 3];
        let mut jobs: Vec<TorrentEvent> = Vec::new();
        for inp in inputs {
            match inp {
                Input::Msg(p, m) => {
                    let key = PeerKey(u64::from(p) + 10 * generation[p as usize]);
                    core.handle_message(now, key, m);
                }
                Input::Connect(p, fast) => {
                    if !connected[p as usize] {
                        generation[p as usize] += 1;
                        let key = PeerKey(u64::from(p) + 10 * generation[p as usize]);
                        core.peer_connected(now, key, PeerInfo { fast_ext: fast, outgoing: false });
                        connected[p as usize] = true;
                    }
                }
                Input::Disconnect(p) => {
                    let key = PeerKey(u64::from(p) + 10 * generation[p as usize]);
                    core.peer_disconnected(now, key);
                    connected[p as usize] = false;
                }
                Input::Storage(ok) => {
                    if let Some(job) = jobs.pop() {
                        let done = match job {
                            TorrentEvent::VerifyPiece { piece, .. } => StorageDone::PieceVerified { piece, ok },
                            TorrentEvent::ReadBlock { peer, block } => StorageDone::BlockRead {
                                peer,
                                block,
                                data: Bytes::from(vec![0; block.length as usize]),
                            },
                            _ => unreachable!(),
                        };
                        core.handle_storage(now, done);
                    }
                }
                Input::Time(ms) => {
                    now = now + Duration::from_millis(u64::from(ms) * 10);
                    core.handle_timeout(now);
                }
            }
            while let Some(e) = core.poll_event() {
                match e {
                    TorrentEvent::VerifyPiece { .. } | TorrentEvent::ReadBlock { .. } => jobs.push(e),
                    TorrentEvent::Disconnect { peer, .. } => {
                        let p = (peer.0 % 10) as usize;
                        if peer.0 / 10 == generation[p] {
                            connected[p] = false;
                        }
                    }
                    _ => {}
                }
            }
            while core.poll_transmit().is_some() {}
            core.check_invariants();
        }
    }
}
