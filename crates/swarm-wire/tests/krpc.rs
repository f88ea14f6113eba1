//! KRPC codec properties: every message encodes canonically and decodes back
//! to itself; arbitrary and mutated datagrams give errors, never panics, and
//! whatever decodes re-encodes to something that decodes to the same message.

use proptest::prelude::*;
use std::net::SocketAddr;
use swarm_wire::InfoHash;
use swarm_wire::krpc::{
    Body, ErrorBody, Message, MutablePut, NodeId, NodeInfo, Put, Query, QueryKind, Response,
    ShortBytes, Want,
};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn short() -> impl Strategy<Value = ShortBytes> {
    bytes(16).prop_map(|b| ShortBytes::new(&b).unwrap())
}

fn id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 20]>().prop_map(NodeId)
}

fn addr4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn addr6() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![addr4(), addr6()]
}

/// A small bencoded value (an int or a string), as `v` carries.
fn bvalue() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i64>().prop_map(|i| format!("i{i}e").into_bytes()),
        bytes(40).prop_map(|b| {
            let mut out = format!("{}:", b.len()).into_bytes();
            out.extend(b);
            out
        }),
    ]
}

fn kind() -> impl Strategy<Value = QueryKind> {
    prop_oneof![
        Just(QueryKind::Ping),
        id().prop_map(|target| QueryKind::FindNode { target }),
        any::<[u8; 20]>().prop_map(|h| QueryKind::GetPeers {
            info_hash: InfoHash(h)
        }),
        (any::<[u8; 20]>(), 1..=u16::MAX, any::<bool>(), bytes(64)).prop_map(
            |(h, port, implied_port, token)| QueryKind::AnnouncePeer {
                info_hash: InfoHash(h),
                port,
                implied_port,
                token
            }
        ),
        (id(), prop::option::of(any::<i64>()))
            .prop_map(|(target, seq)| QueryKind::Get { target, seq }),
        (
            bytes(64),
            bvalue(),
            prop::option::of((
                any::<[u8; 32]>(),
                prop::collection::vec(any::<u8>(), 64),
                bytes(64),
                any::<i64>(),
                prop::option::of(any::<i64>())
            ))
        )
            .prop_map(|(token, value, m)| QueryKind::Put(Put {
                token,
                value,
                mutable: m.map(|(key, sig, salt, seq, cas)| MutablePut {
                    key,
                    sig: sig.try_into().unwrap(),
                    salt,
                    seq,
                    cas
                })
            })),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    (
        id(),
        prop::collection::vec((id(), addr4()), 0..8),
        prop::collection::vec((id(), addr6()), 0..8),
        prop::collection::vec(addr(), 0..20),
        prop::option::of(bytes(64)),
        prop::option::of(bvalue()),
        prop::option::of(any::<[u8; 32]>()),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(rid, n4, n6, values, token, value, key, seq)| {
            let mut r = Response::new(rid);
            r.nodes = n4
                .into_iter()
                .chain(n6)
                .map(|(id, addr)| NodeInfo { id, addr })
                .collect();
            r.values = values;
            r.token = token;
            r.value = value;
            r.key = key;
            r.sig = key.map(|k| {
                let mut s = [0u8; 64];
                s[..32].copy_from_slice(&k);
                s
            });
            r.seq = seq;
            r
        })
}

fn message() -> impl Strategy<Value = Message> {
    let body = prop_oneof![
        (id(), kind(), any::<bool>(), any::<bool>()).prop_map(|(id, kind, v4, v6)| Body::Query(
            Query {
                id,
                kind,
                want: Want { v4, v6 }
            }
        )),
        response().prop_map(Body::Response),
        (any::<i64>(), "[a-zA-Z ]{0,40}")
            .prop_map(|(code, message)| Body::Error(ErrorBody { code, message })),
    ];
    (
        short(),
        prop::option::of(short()),
        prop::option::of(addr()),
        any::<bool>(),
        body,
    )
        .prop_map(|(tid, version, ip, read_only, body)| Message {
            tid,
            version,
            ip,
            read_only,
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(m in message()) {
        let bytes = m.encode();
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m.clone());
        // Canonical: strict bencode accepts it.
        prop_assert!(swarm_wire::bencode::decode(&bytes).is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in bytes(300)) {
        if let Ok(m) = Message::decode(&b) {
            prop_assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        m in message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)
    ) {
        let mut b = m.encode();
        for (at, byte, op) in edits {
            if b.is_empty() { break; }
            let i = at.index(b.len());
            match op {
                0 => b[i] = byte,
                1 => b.insert(i, byte),
                _ => { b.remove(i); }
            }
        }
        if let Ok(m) = Message::decode(&b) {
            prop_assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }
}
