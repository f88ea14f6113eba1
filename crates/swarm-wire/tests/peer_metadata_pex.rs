//! BEP 9 `ut_metadata` and BEP 11 `ut_pex` messages: exact bytes as the BEPs
//! show them (and libtorrent sends them), round trips, and hostile input.

use std::net::SocketAddr;

use bytes::Bytes;
use proptest::prelude::*;
use swarm_wire::peer::{
    METADATA_PIECE_LEN, MetadataMessage, PEX_DECODE_ADDRS_MAX, PexFlags, PexMessage, WireError,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn metadata_messages_match_bep9_bytes() {
    let req = MetadataMessage::Request { piece: 0 };
    assert_eq!(&req.encode()[..], b"d8:msg_typei0e5:piecei0ee");
    let rej = MetadataMessage::Reject { piece: 3 };
    assert_eq!(&rej.encode()[..], b"d8:msg_typei2e5:piecei3ee");
    let data = MetadataMessage::Data {
        piece: 1,
        total_size: 16_390,
        data: Bytes::from_static(b"xyz\x00d1:ae"),
    };
    let bytes = data.encode();
    assert_eq!(
        &bytes[..],
        b"d8:msg_typei1e5:piecei1e10:total_sizei16390eexyz\x00d1:ae"
    );
    // The piece after the dictionary may itself look like bencode: only the
    // first value is the header.
    assert_eq!(MetadataMessage::decode(&bytes), Ok(data));
    assert_eq!(MetadataMessage::decode(&req.encode()), Ok(req));
    assert_eq!(MetadataMessage::decode(&rej.encode()), Ok(rej));
}

#[test]
fn metadata_decode_accepts_unsorted_and_extra_keys() {
    let payload = Bytes::from_static(b"d5:piecei2e8:msg_typei1e10:total_sizei40000e3:fooi1eeABC");
    assert_eq!(
        MetadataMessage::decode(&payload),
        Ok(MetadataMessage::Data {
            piece: 2,
            total_size: 40_000,
            data: Bytes::from_static(b"ABC")
        })
    );
}

#[test]
fn metadata_decode_refuses_malformed() {
    let long_piece = {
        let mut v = b"d8:msg_typei1e5:piecei0e10:total_sizei99999ee".to_vec();
        v.extend(std::iter::repeat_n(0u8, METADATA_PIECE_LEN + 1));
        v
    };
    for bad in [
        &b""[..],
        b"le",
        b"i1e",
        b"d8:msg_typei0ee",                    // no piece
        b"d8:msg_typei0e5:piecei-1ee",         // negative piece
        b"d8:msg_typei0e5:piecei4294967296ee", // piece over u32
        b"d5:piecei0ee",                       // no msg_type
        b"d8:msg_typei7e5:piecei0ee",          // unknown type
        b"d8:msg_typei1e5:piecei0ee",          // data without total_size
        b"d8:msg_typei1e5:piecei0e10:total_sizei-5ee",
        b"d8:msg_typei0e5:piecei0eetrailing", // bytes after a request
        b"d8:msg_typei0e5:piecei0e",          // unterminated
        &long_piece,
    ] {
        let r = MetadataMessage::decode(&Bytes::copy_from_slice(bad));
        assert!(
            matches!(
                r,
                Err(WireError::BadExtensionMessage {
                    extension: "ut_metadata",
                    ..
                })
            ),
            "{:?} gave {r:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn pex_message_matches_bep11_bytes() {
    let msg = PexMessage {
        added: vec![
            (addr("10.0.0.1:6881"), PexFlags(PexFlags::REACHABLE)),
            (addr("[::1]:258"), PexFlags(PexFlags::SEED)),
        ],
        dropped: vec![addr("1.2.3.4:80")],
    };
    let bytes = msg.encode();
    let mut want = b"d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f1:\x10".to_vec();
    want.extend_from_slice(b"6:added618:");
    want.extend_from_slice(&[0; 15]);
    want.extend_from_slice(&[1, 1, 2]);
    want.extend_from_slice(b"8:added6.f1:\x027:dropped6:\x01\x02\x03\x04\x00\x508:dropped60:e");
    assert_eq!(&bytes[..], &want[..]);
    assert_eq!(PexMessage::decode(&bytes), Ok(msg));
}

#[test]
fn pex_decode_is_lenient_where_clients_are() {
    // libtorrent omits empty lists; some clients omit flags.
    let msg = PexMessage::decode(b"d5:added12:\x7f\x00\x00\x01\x1a\xe1\x7f\x00\x00\x02\x00\x00e")
        .unwrap();
    // The port-0 entry is skipped; missing flags are 0.
    assert_eq!(msg.added, vec![(addr("127.0.0.1:6881"), PexFlags(0))]);
    assert!(msg.dropped.is_empty());
    assert_eq!(PexMessage::decode(b"de"), Ok(PexMessage::default()));
}

#[test]
fn pex_decode_bounds_and_refusals() {
    // 1,000 added addresses: only the first PEX_DECODE_ADDRS_MAX are kept.
    let mut list = Vec::new();
    for i in 0..1000u32 {
        list.extend_from_slice(&(0x0a00_0000 + i).to_be_bytes());
        list.extend_from_slice(&6881u16.to_be_bytes());
    }
    let mut payload = format!("d5:added{}:", list.len()).into_bytes();
    payload.extend_from_slice(&list);
    payload.push(b'e');
    let msg = PexMessage::decode(&payload).unwrap();
    assert_eq!(msg.added.len(), PEX_DECODE_ADDRS_MAX);

    for bad in [
        &b"le"[..],
        b"d5:added5:abcdee", // not a multiple of 6
        b"d6:added617:aaaaaaaaaaaaaaaaae",
        b"d5:addedi1ee", // not a string
        b"d7:dropped7:1234567e",
        b"d5:added",
    ] {
        assert!(
            matches!(
                PexMessage::decode(bad),
                Err(WireError::BadExtensionMessage {
                    extension: "ut_pex",
                    ..
                })
            ),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

fn any_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), 1u16..).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), 1u16..).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

proptest! {
    #[test]
    fn pex_round_trips(
        added in proptest::collection::vec((any_addr(), any::<u8>()), 0..50),
        dropped in proptest::collection::vec(any_addr(), 0..50),
    ) {
        let msg = PexMessage {
            added: added.into_iter().map(|(a, f)| (a, PexFlags(f))).collect(),
            dropped,
        };
        let back = PexMessage::decode(&msg.encode()).unwrap();
        // Encoding groups IPv4 before IPv6; compare as sets of entries.
        let mut want_added = msg.added.clone();
        want_added.sort_by_key(|(a, _)| a.is_ipv6());
        let mut want_dropped = msg.dropped.clone();
        want_dropped.sort_by_key(|a| a.is_ipv6());
        prop_assert_eq!(back.added, want_added);
        prop_assert_eq!(back.dropped, want_dropped);
    }

    #[test]
    fn metadata_round_trips(piece in any::<u32>(), total in 0u64..(1 << 40), len in 0..=METADATA_PIECE_LEN, kind in 0..3u8) {
        let msg = match kind {
            0 => MetadataMessage::Request { piece },
            1 => MetadataMessage::Reject { piece },
            _ => MetadataMessage::Data { piece, total_size: total, data: Bytes::from(vec![0xab; len]) },
        };
        prop_assert_eq!(MetadataMessage::decode(&msg.encode()), Ok(msg));
    }

    #[test]
    fn hostile_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = MetadataMessage::decode(&Bytes::from(data.clone()));
        let _ = PexMessage::decode(&data);
    }
}
