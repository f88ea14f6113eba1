//! BEP 10 extensions of one torrent in virtual time: PEX diffs and their
//! bounds, private torrents, the handshake we send, the `port` message, and
//! a magnet fetch between two `Extensions` wired back to back.

use std::net::SocketAddr;

use bytes::Bytes;
use swarm_engine::extensions::{UT_METADATA_ID, UT_PEX_ID};
use swarm_engine::pex::{PEX_FIRST_DELAY, PEX_INTERVAL, PEX_RECEIVE_INTERVAL_MIN, Pex};
use swarm_engine::{
    Duration, ExtensionEvent, Extensions, ExtensionsConfig, InfoHash, Instant, PeerHello, PeerKey,
};
use swarm_wire::peer::{
    EXTENDED_HANDSHAKE_ID, ExtendedHandshake, Message, MetadataMessage, PEX_ADDED_MAX, PexFlags,
    PexMessage,
};

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(((0x0a00_0000u32 + i).to_be_bytes(), 6881))
}

fn sent(p: &mut Pex) -> Vec<(PeerKey, PexMessage)> {
    let mut out = Vec::new();
    while let Some(t) = p.poll_transmit() {
        out.push(t);
    }
    p.check_invariants();
    out
}

#[test]
fn pex_sends_diffs_at_most_once_a_minute() {
    let mut pex = Pex::new(false);
    let t0 = Instant(0);
    pex.peer_connected(PeerKey(1), Some(addr(1)), true);
    pex.peer_connected(PeerKey(2), Some(addr(2)), true);
    // Incoming: its address is known once its handshake gives `p`.
    pex.peer_connected(PeerKey(3), None, false);
    pex.set_listen(PeerKey(3), addr(3));
    pex.set_enabled(t0, PeerKey(1), true);
    assert_eq!(pex.poll_timeout(), Some(t0 + PEX_FIRST_DELAY));
    pex.handle_timeout(t0 + Duration::from_secs(1));
    assert!(sent(&mut pex).is_empty(), "not before the first delay");
    let t1 = t0 + PEX_FIRST_DELAY;
    pex.handle_timeout(t1);
    let msgs = sent(&mut pex);
    assert_eq!(
        msgs,
        vec![(
            PeerKey(1),
            PexMessage {
                added: vec![
                    (addr(2), PexFlags(PexFlags::REACHABLE)),
                    (addr(3), PexFlags(0))
                ],
                dropped: vec![]
            }
        )]
    );
    // Peer 3 leaves, peer 4 comes: told at the next minute, not before.
    pex.peer_disconnected(PeerKey(3));
    pex.peer_connected(PeerKey(4), Some(addr(4)), true);
    pex.handle_timeout(t1 + Duration::from_secs(59));
    assert!(sent(&mut pex).is_empty());
    assert_eq!(pex.poll_timeout(), Some(t1 + PEX_INTERVAL));
    pex.handle_timeout(t1 + PEX_INTERVAL);
    assert_eq!(
        sent(&mut pex),
        vec![(
            PeerKey(1),
            PexMessage {
                added: vec![(addr(4), PexFlags(PexFlags::REACHABLE))],
                dropped: vec![addr(3)]
            }
        )]
    );
    // Nothing changed: nothing sent.
    pex.handle_timeout(t1 + PEX_INTERVAL + PEX_INTERVAL);
    assert!(sent(&mut pex).is_empty());
}

#[test]
fn pex_messages_hold_at_most_50_added() {
    let mut pex = Pex::new(false);
    for i in 0..120 {
        pex.peer_connected(PeerKey(i), Some(addr(i as u32)), true);
    }
    pex.set_enabled(Instant(0), PeerKey(0), true);
    let mut now = Instant(0) + PEX_FIRST_DELAY;
    let mut told = 0;
    for _ in 0..3 {
        pex.handle_timeout(now);
        let msgs = sent(&mut pex);
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].1.added.len() <= PEX_ADDED_MAX);
        told += msgs[0].1.added.len();
        now = now + PEX_INTERVAL;
    }
    assert_eq!(
        told, 119,
        "everyone but the peer itself, over three minutes"
    );
}

#[test]
fn pex_receive_filters_and_rate_limits() {
    let mut pex = Pex::new(false);
    pex.peer_connected(PeerKey(1), Some(addr(1)), true);
    pex.peer_connected(PeerKey(2), Some(addr(2)), true);
    let msg = PexMessage {
        added: vec![
            (addr(2), PexFlags(0)),
            (addr(7), PexFlags(0)),
            (addr(7), PexFlags(0)),
        ],
        dropped: vec![addr(8)],
    };
    // Not enabled by its handshake yet: ignored.
    assert!(pex.handle_message(Instant(0), PeerKey(1), &msg).is_empty());
    pex.set_enabled(Instant(0), PeerKey(1), true);
    assert_eq!(
        pex.handle_message(Instant(1), PeerKey(1), &msg),
        vec![addr(7)],
        "connected and repeated addresses are left out"
    );
    assert!(pex.handle_message(Instant(2), PeerKey(1), &msg).is_empty());
    assert_eq!(pex.ignored_too_frequent(), 1);
    let later = Instant(1) + PEX_RECEIVE_INTERVAL_MIN;
    assert_eq!(pex.handle_message(later, PeerKey(1), &msg), vec![addr(7)]);
}

#[test]
fn private_torrents_exchange_no_peers() {
    let mut pex = Pex::new(true);
    pex.peer_connected(PeerKey(1), Some(addr(1)), true);
    pex.peer_connected(PeerKey(2), Some(addr(2)), true);
    pex.set_enabled(Instant(0), PeerKey(1), true);
    pex.handle_timeout(Instant(0) + PEX_FIRST_DELAY + PEX_INTERVAL);
    assert!(sent(&mut pex).is_empty());
    let msg = PexMessage {
        added: vec![(addr(9), PexFlags(0))],
        dropped: vec![],
    };
    assert!(pex.handle_message(Instant(1), PeerKey(1), &msg).is_empty());

    // The extensions of a private torrent: no ut_pex offered, no port.
    let config = ExtensionsConfig {
        private: true,
        dht_port: Some(7000),
        ..ExtensionsConfig::default()
    };
    let mut ext = Extensions::with_metadata(Bytes::from_static(b"d4:name1:xe"), config);
    ext.peer_connected(Instant(0), PeerKey(1), hello(1, true));
    let out = transmits(&mut ext);
    assert_eq!(out.len(), 1, "{out:?}");
    let hs = decode_hs(&out[0].1);
    assert!(!hs.m.contains_key("ut_pex"));
    assert_eq!(hs.extension_id("ut_metadata"), Some(UT_METADATA_ID));
    ext.handle_message(Instant(0), PeerKey(1), &Message::Port(6881));
    assert!(
        ext.poll_event().is_none(),
        "a private torrent ignores DHT nodes"
    );
}

fn hello(i: u32, dht: bool) -> PeerHello {
    PeerHello {
        addr: addr(i),
        outgoing: true,
        extension_protocol: true,
        dht,
    }
}

fn transmits(e: &mut Extensions) -> Vec<(PeerKey, Message)> {
    let mut out = Vec::new();
    while let Some(t) = e.poll_transmit() {
        out.push(t);
    }
    e.check_invariants();
    out
}

fn events(e: &mut Extensions) -> Vec<ExtensionEvent> {
    let mut out = Vec::new();
    while let Some(t) = e.poll_event() {
        out.push(t);
    }
    out
}

fn decode_hs(m: &Message) -> ExtendedHandshake {
    let Message::Extended { id, payload } = m else {
        panic!("not extended: {m:?}")
    };
    assert_eq!(*id, EXTENDED_HANDSHAKE_ID);
    ExtendedHandshake::decode(payload).unwrap()
}

#[test]
fn public_handshake_offers_pex_metadata_and_the_dht_port() {
    let info = Bytes::from_static(
        b"d6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae",
    );
    let config = ExtensionsConfig {
        listen_port: Some(6881),
        dht_port: Some(7000),
        client: Some("swarm test".into()),
        reqq: Some(500),
        ..ExtensionsConfig::default()
    };
    let mut ext = Extensions::with_metadata(info.clone(), config);
    ext.peer_connected(Instant(0), PeerKey(1), hello(1, true));
    let out = transmits(&mut ext);
    let hs = decode_hs(&out[0].1);
    assert_eq!(hs.extension_id("ut_pex"), Some(UT_PEX_ID));
    assert_eq!(hs.metadata_size, Some(info.len() as u64));
    assert_eq!(hs.p, Some(6881));
    assert_eq!(hs.reqq, Some(500));
    assert_eq!(out[1].1, Message::Port(7000));
    // Its port message: one DHT node, once.
    ext.handle_message(Instant(0), PeerKey(1), &Message::Port(7001));
    ext.handle_message(Instant(0), PeerKey(1), &Message::Port(7002));
    assert_eq!(
        events(&mut ext),
        vec![ExtensionEvent::DhtNode(SocketAddr::new(addr(1).ip(), 7001))]
    );
    // Without the DHT bit, no port message.
    ext.peer_connected(Instant(0), PeerKey(2), hello(2, false));
    assert_eq!(transmits(&mut ext).len(), 1);
}

#[test]
fn serving_is_bounded_per_connection() {
    let info = Bytes::from(vec![b'x'; 40_000]); // 3 pieces
    let mut ext = Extensions::with_metadata(info, ExtensionsConfig::default());
    ext.peer_connected(Instant(0), PeerKey(1), hello(1, false));
    let theirs = ExtendedHandshake {
        m: [("ut_metadata".to_owned(), 5)].into(),
        ..ExtendedHandshake::default()
    };
    ext.handle_message(
        Instant(0),
        PeerKey(1),
        &Message::Extended {
            id: 0,
            payload: theirs.encode().into(),
        },
    );
    transmits(&mut ext);
    let (mut data, mut rejects) = (0, 0);
    for i in 0..100 {
        let req = MetadataMessage::Request { piece: i % 4 }.encode();
        ext.handle_message(
            Instant(0),
            PeerKey(1),
            &Message::Extended {
                id: UT_METADATA_ID,
                payload: req,
            },
        );
        for (_, m) in transmits(&mut ext) {
            let Message::Extended { id: 5, payload } = m else {
                panic!("{m:?}")
            };
            match MetadataMessage::decode(&payload).unwrap() {
                MetadataMessage::Data { .. } => data += 1,
                MetadataMessage::Reject { .. } => rejects += 1,
                _ => panic!(),
            }
        }
    }
    // Piece 3 does not exist (rejected); after 2 copies + slack, all rejected.
    assert_eq!(data + rejects, 100);
    assert!(data <= 2 * 3 + 16, "{data}");
    assert!(data >= 6);
}

/// A seeder's and a magnet's `Extensions`, their messages carried across.
#[test]
fn a_magnet_fetches_the_metadata_from_a_seeder() {
    let info = Bytes::from((0..70_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let hash = InfoHash::of_info(&info);
    let mut seeder = Extensions::with_metadata(info.clone(), ExtensionsConfig::default());
    let mut magnet = Extensions::for_magnet(hash, ExtensionsConfig::default());
    let now = Instant(0);
    // Seen from each side the other is PeerKey(1).
    seeder.peer_connected(now, PeerKey(1), hello(2, false));
    magnet.peer_connected(now, PeerKey(1), hello(1, false));
    // A bitfield before the metadata is kept for the core.
    magnet.handle_message(now, PeerKey(1), &Message::HaveAll);
    let mut complete = None;
    for _ in 0..50 {
        let a = transmits(&mut seeder);
        let b = transmits(&mut magnet);
        if a.is_empty() && b.is_empty() {
            break;
        }
        for (_, m) in a {
            magnet.handle_message(now, PeerKey(1), &m);
        }
        for (_, m) in b {
            seeder.handle_message(now, PeerKey(1), &m);
        }
        for ev in events(&mut magnet) {
            if let ExtensionEvent::MetadataComplete(bytes) = ev {
                complete = Some(bytes);
            }
        }
    }
    assert_eq!(complete.as_ref(), Some(&info));
    assert_eq!(magnet.metadata(), Some(&info));
    assert_eq!(
        magnet.take_early_messages(PeerKey(1)),
        vec![Message::HaveAll]
    );
    assert!(magnet.take_early_messages(PeerKey(1)).is_empty());
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    fn payload() -> impl Strategy<Value = Bytes> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200).prop_map(Bytes::from),
            (any::<u32>(), any::<u64>(), 0usize..20_000).prop_map(|(piece, total, len)| {
                MetadataMessage::Data {
                    piece: piece % 8,
                    total_size: total % 200_000,
                    data: Bytes::from(vec![1; len.min(16_384)]),
                }
                .encode()
            }),
            any::<u32>().prop_map(|piece| MetadataMessage::Request { piece: piece % 8 }.encode()),
            any::<u32>().prop_map(|piece| MetadataMessage::Reject { piece: piece % 8 }.encode()),
            (any::<u64>()).prop_map(|size| Bytes::from(
                ExtendedHandshake {
                    m: [("ut_metadata".to_owned(), 3), ("ut_pex".to_owned(), 4)].into(),
                    metadata_size: Some(size % (200 * 1024 * 1024)),
                    p: Some(1 + (size % 60_000) as u16),
                    ..ExtendedHandshake::default()
                }
                .encode()
            )),
            proptest::collection::vec((0u32..300, any::<u8>()), 0..60).prop_map(|a| PexMessage {
                added: a.into_iter().map(|(i, f)| (addr(i), PexFlags(f))).collect(),
                dropped: vec![addr(1)],
            }
            .encode()),
        ]
    }

    fn input() -> impl Strategy<Value = (u64, u8, Bytes, u64)> {
        (
            0u64..4,
            prop_oneof![
                Just(0u8),
                Just(UT_METADATA_ID),
                Just(UT_PEX_ID),
                any::<u8>()
            ],
            payload(),
            0u64..30_000_000,
        )
    }

    proptest! {
        #[test]
        fn any_extension_messages_keep_the_invariants(
            magnet in any::<bool>(),
            inputs in proptest::collection::vec(input(), 0..60),
        ) {
            let config = ExtensionsConfig { dht_port: Some(7000), ..ExtensionsConfig::default() };
            let info = Bytes::from(vec![7u8; 50_000]);
            let mut ext = if magnet {
                Extensions::for_magnet(InfoHash::of_info(&info), config)
            } else {
                Extensions::with_metadata(info, config)
            };
            let mut now = Instant(0);
            for k in 0..4 {
                ext.peer_connected(now, PeerKey(k), hello(k as u32, true));
            }
            for (peer, id, payload, dt) in inputs {
                now = now + Duration(dt);
                ext.handle_message(now, PeerKey(peer), &Message::Extended { id, payload });
                ext.handle_timeout(now);
                ext.check_invariants();
                while let Some(ev) = ext.poll_event() {
                    if let ExtensionEvent::Disconnect { peer, .. } = ev {
                        ext.peer_disconnected(now, peer);
                    }
                }
                while ext.poll_transmit().is_some() {}
                ext.check_invariants();
            }
        }
    }
}

#[test]
fn no_pex_offers_no_ut_pex_but_keeps_the_dht_port() {
    let config = ExtensionsConfig {
        no_pex: true,
        dht_port: Some(7000),
        ..ExtensionsConfig::default()
    };
    let mut ext = Extensions::with_metadata(Bytes::from_static(b"d4:name1:xe"), config);
    ext.peer_connected(Instant(0), PeerKey(1), hello(1, true));
    let out = transmits(&mut ext);
    let hs = decode_hs(&out[0].1);
    assert!(!hs.m.contains_key("ut_pex"));
    assert_eq!(hs.extension_id("ut_metadata"), Some(UT_METADATA_ID));
    assert_eq!(out[1].1, Message::Port(7000));
    ext.check_invariants();
}
