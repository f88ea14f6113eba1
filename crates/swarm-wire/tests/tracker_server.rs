//! The tracker codecs' server direction, checked against the client
//! direction (each request the client encodes decodes to itself; each
//! response the server encodes parses back), plus hostile input.

use std::net::SocketAddr;

use proptest::prelude::*;
use swarm_wire::bencode;
use swarm_wire::tracker::server::http::{
    self as shttp, AnnounceNumbers, PeerList, QueryError, ScrapeEntry,
};
use swarm_wire::tracker::server::udp::{self as sudp, UdpRequest, UdpRequestErrorKind};
use swarm_wire::tracker::udp::{Request, Response};
use swarm_wire::tracker::{AnnounceRequest, Event, ScrapeStats, http};
use swarm_wire::{InfoHash, PeerId};

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::None),
        Just(Event::Started),
        Just(Event::Completed),
        Just(Event::Stopped)
    ]
}

prop_compose! {
    fn request()(info_hash in any::<[u8; 20]>(), peer_id in any::<[u8; 20]>(), port in any::<u16>(),
                 uploaded in any::<u64>(), downloaded in any::<u64>(), left in any::<u64>(),
                 event in event(), numwant in proptest::option::of(0u32..=i32::MAX as u32), key in any::<u32>())
        -> AnnounceRequest {
        AnnounceRequest { info_hash: InfoHash(info_hash), peer_id: PeerId(peer_id), port, uploaded, downloaded, left, event, numwant, key, tracker_id: None }
    }
}

fn query_of(url: &str) -> &[u8] {
    url.split_once('?').map_or(b"", |(_, q)| q.as_bytes())
}

proptest! {
    #[test]
    fn http_announce_round_trips(req in request()) {
        let url = http::announce_url("http://t.example/announce", &req);
        let got = shttp::parse_announce_query(query_of(&url)).expect("our own URL parses");
        prop_assert_eq!(&got.request, &req);
        prop_assert!(got.compact);
    }

    #[test]
    fn http_scrape_round_trips(hashes in prop::collection::vec(any::<[u8; 20]>(), 1..20)) {
        let hashes: Vec<InfoHash> = hashes.into_iter().map(InfoHash).collect();
        let url = http::scrape_url("http://t.example/announce", &hashes).expect("scrape url");
        let got = shttp::parse_scrape_query(query_of(&url)).expect("parses");
        prop_assert_eq!(got, hashes);
    }

    #[test]
    fn udp_announce_round_trips(req in request(), cid in any::<u64>(), tid in any::<u32>()) {
        let bytes = Request::Announce { connection_id: cid, transaction_id: tid, request: &req }.to_bytes();
        let got = sudp::parse_request(&bytes).expect("parses");
        prop_assert_eq!(got, UdpRequest::Announce { connection_id: cid, transaction_id: tid, request: req.clone() });
        // BEP 41 options after the 98 bytes are ignored.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[2, 9, b'/', b'a', b'n', b'n', b'o', b'u', b'n', b'c', b'e']);
        let is_announce = matches!(sudp::parse_request(&longer), Ok(UdpRequest::Announce { .. }));
        prop_assert!(is_announce);
    }

    #[test]
    fn udp_responses_parse_back(tid in any::<u32>(), interval in any::<u32>(), l in any::<u32>(), s in any::<u32>(),
                                peers in prop::collection::vec(any::<[u8; 6]>(), 0..100)) {
        let records: Vec<u8> = peers.concat();
        let mut out = Vec::new();
        sudp::write_announce(&mut out, tid, interval, l, s, &records);
        let Response::Announce { transaction_id, response } = Response::parse(&out, false).expect("parses") else {
            panic!("not an announce");
        };
        prop_assert_eq!(transaction_id, tid);
        prop_assert_eq!((response.interval, response.incomplete, response.complete), (interval, Some(l), Some(s)));
        prop_assert_eq!(response.peers.len(), peers.len());
    }

    #[test]
    fn http_announce_response_parses_back_and_is_canonical(
        numbers in (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        v6 in any::<bool>(), n in 0usize..60, compact in any::<bool>(), seed in any::<u8>())
    {
        let numbers = AnnounceNumbers { interval: numbers.0, min_interval: numbers.1, complete: numbers.2,
                                        incomplete: numbers.3, downloaded: numbers.4 };
        let len = if v6 { 18 } else { 6 };
        let records: Vec<u8> = (0..n * len).map(|i| (i as u8).wrapping_mul(seed) | 1).collect();
        let ids: Vec<[u8; 20]> = (0..n).map(|i| [i as u8; 20]).collect();
        let list = if compact {
            PeerList::Compact { v6, records: &records }
        } else {
            PeerList::Dictionary { v6, records: &records, peer_ids: Some(&ids) }
        };
        let mut body = Vec::new();
        shttp::encode_announce_response(&numbers, list, &mut body);
        bencode::decode(&body).expect("canonical bencode");
        let parsed = http::parse_announce_response(&body).expect("parses");
        prop_assert_eq!(parsed.interval, numbers.interval);
        prop_assert_eq!(parsed.min_interval, Some(numbers.min_interval));
        prop_assert_eq!((parsed.complete, parsed.incomplete), (Some(numbers.complete), Some(numbers.incomplete)));
        let mut expected = Vec::new();
        for r in records.chunks_exact(len) {
            let ip: std::net::IpAddr = if v6 { <[u8; 16]>::try_from(&r[..16]).expect("16").into() } else { [r[0], r[1], r[2], r[3]].into() };
            expected.push(SocketAddr::new(ip, u16::from_be_bytes([r[len - 2], r[len - 1]])));
        }
        prop_assert_eq!(parsed.peers, expected);
    }

    /// Random bytes never panic either decoder.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = shttp::parse_announce_query(&bytes);
        let _ = shttp::parse_scrape_query(&bytes);
        let _ = sudp::parse_request(&bytes);
    }

    /// A valid query or datagram with bytes flipped, cut or repeated never
    /// panics either decoder.
    #[test]
    fn mutated_requests_never_panic(req in request(), at in any::<prop::sample::Index>(), b in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let url = http::announce_url("http://t/announce", &req);
        let mut q = query_of(&url).to_vec();
        let i = at.index(q.len());
        q[i] = b;
        q.truncate(cut.index(q.len() + 1));
        let _ = shttp::parse_announce_query(&q);
        let mut d = Request::Announce { connection_id: 1, transaction_id: 2, request: &req }.to_bytes();
        let i = at.index(d.len());
        d[i] = b;
        d.truncate(cut.index(d.len() + 1));
        let _ = sudp::parse_request(&d);
    }
}

fn valid_query() -> String {
    let hash = "%aa".repeat(20);
    let id = "-SW0001-abcdefghijkl";
    format!("info_hash={hash}&peer_id={id}&port=6881&uploaded=0&downloaded=0&left=10")
}

#[test]
fn http_bad_queries_get_a_reason() {
    let ok = valid_query();
    assert!(shttp::parse_announce_query(ok.as_bytes()).is_ok());
    let cases: &[(&str, QueryError)] = &[
        (
            "peer_id=-SW0001-abcdefghijkl&port=1",
            QueryError::MissingInfoHash,
        ),
        (
            "info_hash=abc&peer_id=-SW0001-abcdefghijkl&port=1",
            QueryError::BadInfoHash,
        ),
        (
            &format!("info_hash={}&port=1", "%aa".repeat(20)),
            QueryError::MissingPeerId,
        ),
        (
            &format!("info_hash={}&peer_id=short&port=1", "%aa".repeat(20)),
            QueryError::BadPeerId,
        ),
        (
            &format!(
                "info_hash={}&peer_id=-SW0001-abcdefghijkl",
                "%aa".repeat(20)
            ),
            QueryError::MissingPort,
        ),
        (&format!("{ok}&port=65536"), QueryError::BadPort),
        (&format!("{ok}&port=-1"), QueryError::BadPort),
        (&format!("{ok}&left=1e9"), QueryError::BadNumber("left")),
        (&format!("{ok}&event=exploded"), QueryError::BadEvent),
        (
            &format!("{ok}&{}", "x=1&".repeat(70)),
            QueryError::TooManyParams,
        ),
        (
            &format!("{ok}&pad={}", "a".repeat(5000)),
            QueryError::TooLong,
        ),
    ];
    for (query, want) in cases {
        assert_eq!(
            shttp::parse_announce_query(query.as_bytes()).err(),
            Some(*want),
            "{query}"
        );
        assert!(!want.to_string().is_empty());
    }
    // A huge numwant is clamped, not refused (the registry caps it at 200).
    let huge =
        shttp::parse_announce_query(format!("{ok}&numwant=99999999999999999999999").as_bytes());
    assert_eq!(
        huge.err(),
        Some(QueryError::BadNumber("numwant")),
        "more than 20 digits"
    );
    let big =
        shttp::parse_announce_query(format!("{ok}&numwant=99999999999").as_bytes()).expect("ok");
    assert_eq!(big.request.numwant, Some(u32::MAX));
    // Port 0 parses (the registry refuses it with its own reason).
    let zero = shttp::parse_announce_query(format!("{ok}&port=0").as_bytes()).expect("ok");
    assert_eq!(zero.request.port, 0);
    let dict =
        shttp::parse_announce_query(format!("{ok}&compact=0&no_peer_id=1").as_bytes()).expect("ok");
    assert!(!dict.compact && dict.no_peer_id);
    let too_many: String = (0..101)
        .map(|_| format!("info_hash={}&", "%bb".repeat(20)))
        .collect();
    assert_eq!(
        shttp::parse_scrape_query(too_many.as_bytes()),
        Err(QueryError::TooManyHashes)
    );
}

#[test]
fn http_failure_and_scrape_encodings() {
    let mut body = Vec::new();
    shttp::encode_failure("tracker full", &mut body);
    assert_eq!(body, b"d14:failure reason12:tracker fulle");
    let err = http::parse_announce_response(&body).expect_err("a failure");
    assert!(err.to_string().contains("tracker full"));
    let mut body = Vec::new();
    let a = InfoHash([2; 20]);
    let b = InfoHash([1; 20]);
    let entries = [
        ScrapeEntry {
            info_hash: a,
            complete: 3,
            downloaded: 4,
            incomplete: 5,
        },
        ScrapeEntry {
            info_hash: b,
            complete: 1,
            downloaded: 0,
            incomplete: 2,
        },
        ScrapeEntry {
            info_hash: a,
            complete: 3,
            downloaded: 4,
            incomplete: 5,
        },
    ];
    shttp::encode_scrape_response(&entries, &mut body);
    bencode::decode(&body).expect("canonical: sorted, each hash once");
    let got = http::parse_scrape_response(&body, &a).expect("parses");
    assert_eq!(
        got,
        ScrapeStats {
            complete: 3,
            downloaded: 4,
            incomplete: 5
        }
    );
}

#[test]
fn udp_bad_datagrams() {
    let kind = |d: &[u8]| {
        sudp::parse_request(d)
            .err()
            .map(|e| (e.transaction_id, e.kind))
    };
    assert_eq!(kind(&[0; 15]), Some((None, UdpRequestErrorKind::TooShort)));
    let mut connect = Request::Connect { transaction_id: 7 }.to_bytes();
    assert_eq!(
        sudp::parse_request(&connect),
        Ok(UdpRequest::Connect { transaction_id: 7 })
    );
    connect[0] = 9;
    assert_eq!(
        kind(&connect),
        Some((Some(7), UdpRequestErrorKind::BadProtocolId))
    );
    let mut unknown = Request::Connect { transaction_id: 8 }.to_bytes();
    unknown[11] = 9;
    assert_eq!(
        kind(&unknown),
        Some((Some(8), UdpRequestErrorKind::UnknownAction))
    );
    let req = AnnounceRequest {
        info_hash: InfoHash([1; 20]),
        peer_id: PeerId([2; 20]),
        port: 1,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        event: Event::None,
        numwant: None,
        key: 0,
        tracker_id: None,
    };
    let announce = Request::Announce {
        connection_id: 1,
        transaction_id: 9,
        request: &req,
    }
    .to_bytes();
    assert_eq!(
        kind(&announce[..97]),
        Some((Some(9), UdpRequestErrorKind::TooShort))
    );
    let mut bad_event = announce.clone();
    bad_event[83] = 4;
    assert_eq!(
        kind(&bad_event),
        Some((Some(9), UdpRequestErrorKind::BadEvent))
    );
    let hashes = [InfoHash([3u8; 20]); 75];
    let scrape = Request::Scrape {
        connection_id: 1,
        transaction_id: 10,
        info_hashes: &hashes[..74],
    }
    .to_bytes();
    match sudp::parse_request(&scrape) {
        Ok(UdpRequest::Scrape { info_hashes, .. }) => assert_eq!(info_hashes.len(), 74),
        other => panic!("{other:?}"),
    }
    let mut too_many = scrape.clone();
    too_many.extend_from_slice(&[3; 20]);
    assert_eq!(
        kind(&too_many),
        Some((Some(10), UdpRequestErrorKind::BadScrapeLength))
    );
    assert_eq!(
        kind(&scrape[..16]),
        Some((Some(10), UdpRequestErrorKind::BadScrapeLength))
    );
    assert_eq!(
        kind(&scrape[..30]),
        Some((Some(10), UdpRequestErrorKind::BadScrapeLength))
    );
    // Responses: connect, scrape and error parse back with the client's parser.
    let mut out = Vec::new();
    sudp::write_connect(&mut out, 5, 0xfeed);
    assert_eq!(
        Response::parse(&out, false),
        Ok(Response::Connect {
            transaction_id: 5,
            connection_id: 0xfeed
        })
    );
    out.clear();
    let stats = [ScrapeStats {
        complete: 1,
        downloaded: 2,
        incomplete: 3,
    }; 2];
    sudp::write_scrape(&mut out, 6, stats);
    assert_eq!(
        Response::parse(&out, false),
        Ok(Response::Scrape {
            transaction_id: 6,
            stats: stats.to_vec()
        })
    );
    out.clear();
    sudp::write_error(&mut out, 7, "unknown info-hash");
    assert_eq!(
        Response::parse(&out, false),
        Ok(Response::Error {
            transaction_id: 7,
            message: "unknown info-hash".into()
        })
    );
}
