//! BEP 10 extension handshake: golden bytes, round trip, what real clients send.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;
use swarm_wire::peer::{ExtendedHandshake, Message, MessageDecoder, WireError};

fn ours() -> ExtendedHandshake {
    ExtendedHandshake {
        m: BTreeMap::from([("ut_metadata".to_owned(), 2), ("ut_pex".to_owned(), 1)]),
        v: Some("swarm 0.1.0".into()),
        reqq: Some(500),
        p: Some(6881),
        yourip: Some("127.0.0.1".parse().unwrap()),
        metadata_size: Some(31235),
    }
}

#[test]
fn golden_and_round_trip() {
    let hs = ours();
    let bytes = hs.encode();
    assert_eq!(
        bytes,
        b"d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi500e\
          1:v11:swarm 0.1.06:yourip4:\x7f\x00\x00\x01e"
            .to_vec()
    );
    assert_eq!(ExtendedHandshake::decode(&bytes), Ok(hs.clone()));
    assert_eq!(hs.extension_id("ut_metadata"), Some(2));
    assert_eq!(hs.extension_id("lt_donthave"), None);

    let v6 = ExtendedHandshake {
        yourip: Some("::1".parse().unwrap()),
        ..ExtendedHandshake::default()
    };
    assert_eq!(ExtendedHandshake::decode(&v6.encode()), Ok(v6));
}

#[test]
fn travels_inside_an_extended_message() {
    let msg = Message::Extended {
        id: 0,
        payload: ours().encode().into(),
    };
    let mut buf = bytes::BytesMut::from(&msg.to_bytes()[..]);
    let Ok(Some(Message::Extended { id: 0, payload })) = MessageDecoder::new(1).decode(&mut buf)
    else {
        panic!("not an extended message");
    };
    assert_eq!(ExtendedHandshake::decode(&payload), Ok(ours()));
}

#[test]
fn libtorrent_style_handshake_with_unknown_keys() {
    // Shaped like libtorrent 2.0's: extra keys, a disabled extension (0),
    // an id out of range and a 6-byte yourip (ignored: not an address).
    let payload = b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi0e5:weirdi300ee13:metadata_sizei1234e4:reqqi500e11:upload_onlyi1e1:v17:libtorrent/2.0.116:yourip6:abcdefe";
    let hs = ExtendedHandshake::decode(payload).unwrap();
    assert_eq!(hs.extension_id("ut_metadata"), Some(2));
    assert_eq!(hs.m.get("ut_pex"), Some(&0), "0 (disabled) is kept");
    assert_eq!(hs.extension_id("ut_pex"), None);
    assert!(!hs.m.contains_key("weird"), "id 300 does not fit a byte");
    assert_eq!(hs.v.as_deref(), Some("libtorrent/2.0.11"));
    assert_eq!(hs.reqq, Some(500));
    assert_eq!(hs.p, None);
    assert_eq!(hs.yourip, None::<IpAddr>);
    assert_eq!(hs.metadata_size, Some(1234));
}

#[test]
fn unsorted_and_repeated_keys_from_sloppy_clients_are_read() {
    // Some clients write keys in insertion order (`v` first, `m` last) and
    // unsorted inside `m`; bencode's lenient mode reads them.
    let payload = b"d1:v6:sloppy1:pi6881e1:md6:ut_pexi1e11:ut_metadatai3ee1:pi1ee";
    let hs = ExtendedHandshake::decode(payload).unwrap();
    assert_eq!(hs.v.as_deref(), Some("sloppy"));
    assert_eq!(hs.p, Some(6881), "the first of two `p` keys wins");
    assert_eq!(hs.extension_id("ut_metadata"), Some(3));
    assert_eq!(hs.extension_id("ut_pex"), Some(1));
}

#[test]
fn malformed_payloads_are_errors() {
    for bad in [
        &b""[..],
        b"le",
        b"d1:mi1ee",
        b"d1:md",
        b"d1:md11:ut_metadatai2eeee",
    ] {
        assert!(
            matches!(
                ExtendedHandshake::decode(bad),
                Err(WireError::BadExtendedHandshake(_))
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_payloads_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = ExtendedHandshake::decode(&data);
    }

    #[test]
    fn round_trips(names in proptest::collection::btree_map("[a-z_]{1,20}", any::<u8>(), 0..10),
                   reqq in proptest::option::of(any::<u32>()),
                   p in proptest::option::of(1u16..),
                   size in proptest::option::of(0u64..(1 << 40))) {
        let hs = ExtendedHandshake { m: names, v: Some("x".into()), reqq, p, yourip: None, metadata_size: size };
        prop_assert_eq!(ExtendedHandshake::decode(&hs.encode()), Ok(hs));
    }
}
