//! Peer wire codec: round trips, golden bytes, limits, and a fuzz-style
//! property (arbitrary bytes never panic the decoder).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use swarm_wire::peer::{
    BLOCK_LEN, EXTENDED_PAYLOAD_LEN_MAX, HANDSHAKE_LEN, Handshake, Message, MessageDecoder,
    PIECE_MSG_LEN_MAX, WireError, encode_piece_header,
};
use swarm_wire::{InfoHash, PeerId};

const BITFIELD_MAX: usize = 16;

fn all_messages() -> Vec<Message> {
    vec![
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have { piece: 0x0102_0304 },
        Message::Bitfield(Bytes::from_static(&[0xff, 0x80])),
        Message::Bitfield(Bytes::new()),
        Message::Request {
            piece: 7,
            offset: 16384,
            length: BLOCK_LEN,
        },
        Message::Piece {
            piece: 3,
            offset: 32768,
            data: Bytes::from(vec![0xab; BLOCK_LEN as usize]),
        },
        Message::Piece {
            piece: 3,
            offset: 0,
            data: Bytes::from_static(b"short last block"),
        },
        Message::Cancel {
            piece: 7,
            offset: 16384,
            length: BLOCK_LEN,
        },
        Message::Port(6881),
        Message::HaveAll,
        Message::HaveNone,
        Message::SuggestPiece { piece: 9 },
        Message::RejectRequest {
            piece: 1,
            offset: 2,
            length: 3,
        },
        Message::AllowedFast { piece: 11 },
        Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"d1:md11:ut_metadatai1eee"),
        },
        Message::Extended {
            id: 3,
            payload: Bytes::new(),
        },
    ]
}

fn decode_all(decoder: &mut MessageDecoder, buf: &mut BytesMut) -> Vec<Message> {
    let mut out = Vec::new();
    // Bounded: each successful decode consumes at least 4 bytes.
    for _ in 0..10_000 {
        match decoder.decode(buf).expect("valid stream") {
            Some(msg) => out.push(msg),
            None => break,
        }
    }
    out
}

#[test]
fn every_message_round_trips() {
    for msg in all_messages() {
        let bytes = msg.to_bytes();
        assert_eq!(bytes.len(), msg.encoded_len(), "{msg:?}");
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoder = MessageDecoder::new(BITFIELD_MAX);
        assert_eq!(decoder.decode(&mut buf), Ok(Some(msg.clone())));
        assert!(buf.is_empty(), "{msg:?} left bytes behind");
    }
}

#[test]
fn a_stream_fed_one_byte_at_a_time_decodes_in_order() {
    let msgs = all_messages();
    let mut stream = BytesMut::new();
    for msg in &msgs {
        msg.encode_into(&mut stream);
    }
    let mut decoder = MessageDecoder::new(BITFIELD_MAX);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for byte in stream.iter() {
        buf.extend_from_slice(&[*byte]);
        got.extend(decode_all(&mut decoder, &mut buf));
    }
    assert_eq!(got, msgs);
    assert!(buf.is_empty());
}

#[test]
fn golden_bytes() {
    let cases: Vec<(Message, &[u8])> = vec![
        (Message::KeepAlive, &[0, 0, 0, 0]),
        (Message::Interested, &[0, 0, 0, 1, 2]),
        (
            Message::Have { piece: 0x0102_0304 },
            &[0, 0, 0, 5, 4, 1, 2, 3, 4],
        ),
        (
            Message::Request {
                piece: 1,
                offset: 0x4000,
                length: 0x4000,
            },
            &[0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
        ),
        (
            Message::Piece {
                piece: 2,
                offset: 0,
                data: Bytes::from_static(b"ab"),
            },
            &[0, 0, 0, 11, 7, 0, 0, 0, 2, 0, 0, 0, 0, b'a', b'b'],
        ),
        (Message::Port(0x1ae1), &[0, 0, 0, 3, 9, 0x1a, 0xe1]),
        (Message::HaveAll, &[0, 0, 0, 1, 14]),
        (
            Message::Bitfield(Bytes::from_static(&[0b1010_0000])),
            &[0, 0, 0, 2, 5, 0xa0],
        ),
        (
            Message::Extended {
                id: 1,
                payload: Bytes::from_static(b"de"),
            },
            &[0, 0, 0, 4, 20, 1, b'd', b'e'],
        ),
    ];
    for (msg, golden) in cases {
        assert_eq!(&msg.to_bytes()[..], golden, "{msg:?}");
        let mut buf = BytesMut::from(golden);
        assert_eq!(MessageDecoder::new(4).decode(&mut buf), Ok(Some(msg)));
    }
}

#[test]
fn piece_header_matches_the_full_encoding() {
    let data = Bytes::from(vec![7u8; 1000]);
    let msg = Message::Piece {
        piece: 5,
        offset: 16384,
        data: data.clone(),
    };
    let mut header = BytesMut::new();
    encode_piece_header(5, 16384, data.len(), &mut header);
    assert_eq!(header.len(), 13);
    header.extend_from_slice(&data);
    assert_eq!(header.freeze(), msg.to_bytes());
}

#[test]
fn piece_data_shares_the_receive_buffer() {
    let msg = Message::Piece {
        piece: 1,
        offset: 0,
        data: Bytes::from(vec![1u8; BLOCK_LEN as usize]),
    };
    let mut buf = BytesMut::from(&msg.to_bytes()[..]);
    let start = buf.as_ptr() as usize;
    let Ok(Some(Message::Piece { data, .. })) = MessageDecoder::new(4).decode(&mut buf) else {
        panic!("expected a piece");
    };
    // The block points into the original allocation, 13 bytes in: no copy.
    assert_eq!(data.as_ptr() as usize, start + 13);
}

fn frame(len: u32, rest: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(rest);
    buf
}

#[test]
fn oversized_piece_is_refused_from_its_header_alone() {
    let len = (PIECE_MSG_LEN_MAX + 1) as u32;
    // Only the length and id arrived: refused before any body is buffered.
    let mut buf = frame(len, &[7]);
    let before = buf.capacity();
    let err = MessageDecoder::new(BITFIELD_MAX).decode(&mut buf);
    assert!(
        matches!(err, Err(WireError::MessageTooLong { id: Some(7), .. })),
        "{err:?}"
    );
    assert_eq!(
        buf.capacity(),
        before,
        "no allocation for a refused message"
    );
    // A piece of exactly one block plus header is fine.
    let mut ok = frame(PIECE_MSG_LEN_MAX as u32, &[7]);
    assert_eq!(MessageDecoder::new(BITFIELD_MAX).decode(&mut ok), Ok(None));
}

#[test]
fn huge_length_is_refused_before_the_id_arrives() {
    let mut buf = frame(u32::MAX, &[]);
    let err = MessageDecoder::new(BITFIELD_MAX).decode(&mut buf);
    assert!(
        matches!(err, Err(WireError::MessageTooLong { id: None, .. })),
        "{err:?}"
    );
}

#[test]
fn bitfield_longer_than_the_torrent_needs_is_refused() {
    let mut buf = frame(1 + BITFIELD_MAX as u32 + 1, &[5]);
    assert_eq!(
        MessageDecoder::new(BITFIELD_MAX).decode(&mut buf),
        Err(WireError::BitfieldTooLong {
            len: BITFIELD_MAX + 1,
            max: BITFIELD_MAX
        })
    );
    let mut bits = vec![5u8];
    bits.extend_from_slice(&[0xff; BITFIELD_MAX]);
    let mut ok = frame(1 + BITFIELD_MAX as u32, &bits);
    assert!(matches!(
        MessageDecoder::new(BITFIELD_MAX).decode(&mut ok),
        Ok(Some(Message::Bitfield(b))) if b.len() == BITFIELD_MAX
    ));
}

#[test]
fn large_torrent_bitfield_is_allowed_beyond_the_block_limit() {
    // A 100k-piece torrent needs a 12500-byte bitfield; 40 KiB one needs more
    // than one block's worth: the limit follows the torrent, not BLOCK_LEN.
    let max = 40_000;
    let msg = Message::Bitfield(Bytes::from(vec![0xff; max]));
    let mut buf = BytesMut::from(&msg.to_bytes()[..]);
    assert_eq!(MessageDecoder::new(max).decode(&mut buf), Ok(Some(msg)));
}

#[test]
fn fixed_length_messages_must_have_their_exact_length() {
    // (id, correct body length including id)
    let cases = [
        (0u8, 1usize),
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 5),
        (6, 13),
        (8, 13),
        (9, 3),
        (13, 5),
        (14, 1),
        (15, 1),
        (16, 13),
        (17, 5),
    ];
    for (id, good) in cases {
        for bad in [good + 1, good.saturating_sub(1).max(1)] {
            if bad == good {
                continue;
            }
            let mut body = vec![id];
            body.resize(bad, 0);
            let mut buf = frame(bad as u32, &body);
            assert_eq!(
                MessageDecoder::new(BITFIELD_MAX).decode(&mut buf),
                Err(WireError::BadLength {
                    id,
                    len: bad,
                    expected: good
                }),
                "id {id} length {bad}"
            );
        }
    }
}

#[test]
fn short_piece_and_extended_are_refused() {
    let mut piece = frame(8, &[7, 0, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        MessageDecoder::new(4).decode(&mut piece),
        Err(WireError::BadLength { id: 7, .. })
    ));
    let mut ext = frame(1, &[20]);
    assert!(matches!(
        MessageDecoder::new(4).decode(&mut ext),
        Err(WireError::BadLength { id: 20, .. })
    ));
}

#[test]
fn oversized_extended_message_is_refused() {
    let len = (2 + EXTENDED_PAYLOAD_LEN_MAX + 1) as u32;
    let mut buf = frame(len, &[20, 0]);
    assert!(matches!(
        MessageDecoder::new(4).decode(&mut buf),
        Err(WireError::MessageTooLong { id: Some(20), .. })
    ));
}

#[test]
fn unknown_ids_are_skipped_within_the_limit() {
    let mut buf = frame(4, &[21, 1, 2, 3]);
    Message::Unchoke.encode_into(&mut buf);
    let mut decoder = MessageDecoder::new(4);
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Message::Unchoke)));
    assert_eq!(decoder.skipped_unknown(), 1);
    // But an unknown message may not exceed the general limit.
    let mut big = frame(PIECE_MSG_LEN_MAX as u32 + 1, &[99]);
    assert!(matches!(
        decoder.decode(&mut big),
        Err(WireError::MessageTooLong { id: Some(99), .. })
    ));
}

#[test]
fn handshake_round_trip_golden_and_bits() {
    let info_hash = InfoHash([0x11; 20]);
    let peer_id = PeerId(*b"-SW0001-abcdefghijkl");
    let hs = Handshake::new(info_hash, peer_id).with_extensions(true, true, true);
    assert_eq!(hs.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0x05]);
    assert!(hs.supports_extension_protocol() && hs.supports_fast() && hs.supports_dht());
    let bytes = hs.to_bytes();
    assert_eq!(bytes.len(), HANDSHAKE_LEN);
    assert_eq!(&bytes[..20], b"\x13BitTorrent protocol");
    assert_eq!(&bytes[48..], peer_id.as_bytes());
    assert_eq!(Handshake::from_bytes(&bytes), Ok(hs));

    let plain = Handshake::new(info_hash, peer_id);
    assert!(
        !plain.supports_extension_protocol() && !plain.supports_fast() && !plain.supports_dht()
    );
    let only_fast = plain.with_extensions(false, true, false);
    assert!(only_fast.supports_fast() && !only_fast.supports_dht());
}

#[test]
fn handshake_decodes_incrementally_and_rejects_other_protocols_early() {
    let hs = Handshake::new(InfoHash([1; 20]), PeerId([2; 20])).with_extensions(true, false, false);
    let bytes = hs.to_bytes();
    let mut buf = BytesMut::from(&bytes[..40]);
    assert_eq!(Handshake::decode(&mut buf), Ok(None));
    buf.extend_from_slice(&bytes[40..]);
    // Bytes after the handshake (the first message) stay in the buffer.
    Message::Interested.encode_into(&mut buf);
    assert_eq!(Handshake::decode(&mut buf), Ok(Some(hs)));
    assert_eq!(&buf[..], &Message::Interested.to_bytes()[..]);

    let mut http = BytesMut::from(&b"GET /"[..]);
    assert_eq!(Handshake::decode(&mut http), Err(WireError::BadProtocol));
    let mut wrong = BytesMut::from(&b"\x13BitTorrent protocoX"[..]);
    assert_eq!(Handshake::decode(&mut wrong), Err(WireError::BadProtocol));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes, fed in arbitrary chunks, never panic the decoder, and
    /// it never holds more than one bounded message's worth of capacity.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048),
                                   chunk in 1usize..300) {
        let mut decoder = MessageDecoder::new(BITFIELD_MAX);
        let mut buf = BytesMut::new();
        'outer: for piece in data.chunks(chunk) {
            buf.extend_from_slice(piece);
            for _ in 0..4096 {
                match decoder.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
            prop_assert!(buf.capacity() <= 4 + PIECE_MSG_LEN_MAX.max(2 + EXTENDED_PAYLOAD_LEN_MAX) + 4096);
        }
    }

    /// Any valid message sequence survives encode → decode.
    #[test]
    fn encoded_messages_decode_back(pieces in proptest::collection::vec((any::<u32>(), any::<u32>(), 0usize..64), 0..20)) {
        let msgs: Vec<Message> = pieces.into_iter().map(|(p, o, n)| Message::Piece {
            piece: p, offset: o, data: Bytes::from(vec![p as u8; n]),
        }).collect();
        let mut buf = BytesMut::new();
        for m in &msgs { m.encode_into(&mut buf); }
        let mut decoder = MessageDecoder::new(BITFIELD_MAX);
        let mut got = Vec::new();
        while let Some(m) = decoder.decode(&mut buf).expect("valid") { got.push(m); }
        prop_assert_eq!(got, msgs);
    }
}

/// `take_rider` takes the riders in order, past blocks, haves and chokes,
/// and stops at the first message a connection opens with.
#[test]
fn riders_come_out_in_order_up_to_an_opener() {
    use std::collections::VecDeque;
    use swarm_wire::peer::take_rider;
    let block = |piece| Message::Piece {
        piece,
        offset: 0,
        data: Bytes::from_static(b"x"),
    };
    let request = |piece| Message::Request {
        piece,
        offset: 0,
        length: 1,
    };
    let mut q: VecDeque<Message> = VecDeque::from(vec![
        block(0),
        request(1),
        Message::Have { piece: 2 },
        Message::Interested,
        Message::Choke,
        request(3),
        Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"de"),
        },
        request(4),
    ]);
    let mut from = 0;
    let taken: Vec<Message> =
        std::iter::from_fn(|| take_rider(&mut q, &mut from, Message::rides_ahead, Message::opens))
            .collect();
    assert_eq!(taken, vec![request(1), Message::Interested, request(3)]);
    // The rest in its order; the request behind the extension handshake
    // stays behind it.
    let rest: Vec<Message> = q.into_iter().collect();
    assert_eq!(
        rest,
        vec![
            block(0),
            Message::Have { piece: 2 },
            Message::Choke,
            Message::Extended {
                id: 0,
                payload: Bytes::from_static(b"de"),
            },
            request(4),
        ]
    );
}
