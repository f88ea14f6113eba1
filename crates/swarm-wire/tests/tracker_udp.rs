//! BEP 15 packets: golden request bytes, response parsing, strict lengths.

use std::net::SocketAddr;

use proptest::prelude::*;
use swarm_wire::tracker::udp::{self, Request, Response};
use swarm_wire::tracker::{AnnounceRequest, Event, ScrapeStats, TrackerResponseError};
use swarm_wire::{InfoHash, PeerId};

fn request() -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([0xaa; 20]),
        peer_id: PeerId([0xbb; 20]),
        port: 6881,
        uploaded: 3,
        downloaded: 2,
        left: 1,
        event: Event::Started,
        numwant: None,
        key: 0xdead_beef,
        tracker_id: None,
    }
}

#[test]
fn connect_request_golden() {
    let bytes = Request::Connect {
        transaction_id: 0x0102_0304,
    }
    .to_bytes();
    assert_eq!(
        bytes,
        [
            0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4
        ]
    );
}

#[test]
fn announce_request_layout() {
    let req = request();
    let bytes = Request::Announce {
        connection_id: 0x1122_3344_5566_7788,
        transaction_id: 9,
        request: &req,
    }
    .to_bytes();
    assert_eq!(bytes.len(), udp::ANNOUNCE_REQUEST_LEN);
    assert_eq!(&bytes[0..8], &0x1122_3344_5566_7788u64.to_be_bytes());
    assert_eq!(&bytes[8..12], &[0, 0, 0, 1]);
    assert_eq!(&bytes[12..16], &[0, 0, 0, 9]);
    assert_eq!(&bytes[16..36], &[0xaa; 20]);
    assert_eq!(&bytes[36..56], &[0xbb; 20]);
    assert_eq!(&bytes[56..64], &2u64.to_be_bytes()); // downloaded
    assert_eq!(&bytes[64..72], &1u64.to_be_bytes()); // left
    assert_eq!(&bytes[72..80], &3u64.to_be_bytes()); // uploaded
    assert_eq!(&bytes[80..84], &[0, 0, 0, 2]); // started
    assert_eq!(&bytes[84..88], &[0, 0, 0, 0]); // ip
    assert_eq!(&bytes[88..92], &[0xde, 0xad, 0xbe, 0xef]); // key
    assert_eq!(&bytes[92..96], &[0xff; 4]); // num_want -1
    assert_eq!(&bytes[96..98], &[0x1a, 0xe1]); // 6881
}

#[test]
fn scrape_request_layout() {
    let hashes = [InfoHash([1u8; 20]), InfoHash([2u8; 20])];
    let bytes = Request::Scrape {
        connection_id: 5,
        transaction_id: 6,
        info_hashes: &hashes,
    }
    .to_bytes();
    assert_eq!(bytes.len(), 16 + 40);
    assert_eq!(&bytes[8..12], &[0, 0, 0, 2]);
    assert_eq!(&bytes[36..56], &[2u8; 20]);
}

#[test]
fn connect_response_parses_and_must_be_16_bytes() {
    let mut packet = vec![0, 0, 0, 0, 0, 0, 0, 7];
    packet.extend_from_slice(&0xcafe_u64.to_be_bytes());
    assert_eq!(
        Response::parse(&packet, false),
        Ok(Response::Connect {
            transaction_id: 7,
            connection_id: 0xcafe
        })
    );
    packet.push(0);
    assert!(matches!(
        Response::parse(&packet, false),
        Err(TrackerResponseError::Malformed(_))
    ));
    assert!(matches!(
        Response::parse(&packet[..15], false),
        Err(TrackerResponseError::Malformed(_))
    ));
}

#[test]
fn announce_response_parses_v4_and_v6_peers() {
    let mut packet = vec![0, 0, 0, 1, 0, 0, 0, 8];
    packet.extend_from_slice(&1800u32.to_be_bytes()); // interval
    packet.extend_from_slice(&4u32.to_be_bytes()); // leechers
    packet.extend_from_slice(&5u32.to_be_bytes()); // seeders
    packet.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 80]);
    let Ok(Response::Announce {
        transaction_id: 8,
        response,
    }) = Response::parse(&packet, false)
    else {
        panic!("not an announce response");
    };
    assert_eq!(response.interval, 1800);
    assert_eq!(response.incomplete, Some(4));
    assert_eq!(response.complete, Some(5));
    let want: Vec<SocketAddr> = vec![
        "127.0.0.1:6881".parse().unwrap(),
        "10.0.0.2:80".parse().unwrap(),
    ];
    assert_eq!(response.peers, want);

    // The same 12 bytes are not a whole number of 18-byte IPv6 records.
    assert!(matches!(
        Response::parse(&packet, true),
        Err(TrackerResponseError::Malformed(_))
    ));
    // A trailing partial record is refused, not silently dropped.
    packet.push(1);
    assert!(Response::parse(&packet, false).is_err());

    let mut v6 = packet[..20].to_vec();
    let mut rec = [0u8; 18];
    rec[15] = 1;
    rec[16..].copy_from_slice(&443u16.to_be_bytes());
    v6.extend_from_slice(&rec);
    let Ok(Response::Announce { response, .. }) = Response::parse(&v6, true) else {
        panic!("v6");
    };
    assert_eq!(
        response.peers,
        vec!["[::1]:443".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn scrape_response_and_error() {
    let mut packet = vec![0, 0, 0, 2, 0, 0, 0, 3];
    for v in [1u32, 2, 3, 4, 5, 6] {
        packet.extend_from_slice(&v.to_be_bytes());
    }
    assert_eq!(
        Response::parse(&packet, false),
        Ok(Response::Scrape {
            transaction_id: 3,
            stats: vec![
                ScrapeStats {
                    complete: 1,
                    downloaded: 2,
                    incomplete: 3
                },
                ScrapeStats {
                    complete: 4,
                    downloaded: 5,
                    incomplete: 6
                },
            ]
        })
    );
    packet.pop();
    assert!(Response::parse(&packet, false).is_err());

    let mut err = vec![0, 0, 0, 3, 0, 0, 0, 4];
    err.extend_from_slice(b"unregistered torrent");
    let parsed = Response::parse(&err, false).unwrap();
    assert_eq!(
        udp::expect_action(parsed, 4, udp::ACTION_ANNOUNCE),
        Err(TrackerResponseError::Failure("unregistered torrent".into()))
    );
}

#[test]
fn expect_action_checks_transaction_and_action() {
    let connect = Response::Connect {
        transaction_id: 1,
        connection_id: 2,
    };
    assert!(udp::expect_action(connect.clone(), 1, udp::ACTION_CONNECT).is_ok());
    assert!(udp::expect_action(connect.clone(), 2, udp::ACTION_CONNECT).is_err());
    assert!(udp::expect_action(connect, 1, udp::ACTION_ANNOUNCE).is_err());
}

#[test]
fn short_and_unknown_packets_are_refused() {
    assert!(Response::parse(&[], false).is_err());
    assert!(Response::parse(&[0, 0, 0, 1, 0, 0, 0], false).is_err());
    assert!(Response::parse(&[0, 0, 0, 9, 0, 0, 0, 0], false).is_err());
    // Announce header cut short.
    assert!(Response::parse(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0], false).is_err());
}

proptest! {
    #[test]
    fn arbitrary_packets_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300), v6 in any::<bool>()) {
        let _ = Response::parse(&data, v6);
    }
}
