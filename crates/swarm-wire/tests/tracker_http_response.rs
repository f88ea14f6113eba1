//! HTTP tracker responses: compact and dictionary peers, failure, warning,
//! intervals, tracker id, scrape; malformed bodies are errors, never panics.

use std::net::SocketAddr;

use swarm_wire::InfoHash;

use proptest::prelude::*;
use swarm_wire::tracker::http::{parse_announce_response, parse_scrape_response};
use swarm_wire::tracker::{ScrapeStats, TrackerResponseError};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn compact_response_with_every_field() {
    let mut body = b"d8:completei5e10:incompletei3e8:intervali1800e12:min intervali900e".to_vec();
    body.extend_from_slice(b"5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50");
    body.extend_from_slice(
        b"6:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01\xbb",
    );
    body.extend_from_slice(b"10:tracker id3:abc15:warning message4:slowe");
    let r = parse_announce_response(&body).unwrap();
    assert_eq!(r.interval, 1800);
    assert_eq!(r.min_interval, Some(900));
    assert_eq!((r.complete, r.incomplete), (Some(5), Some(3)));
    assert_eq!(r.tracker_id.as_deref(), Some(&b"abc"[..]));
    assert_eq!(r.warning.as_deref(), Some("slow"));
    assert_eq!(
        r.peers,
        vec![
            addr("127.0.0.1:6881"),
            addr("10.0.0.2:80"),
            addr("[::1]:443")
        ]
    );
}

#[test]
fn dictionary_peers_and_host_names() {
    let body = b"d8:intervali60e5:peersld2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881eed2:ip11:example.com4:porti1eed2:ip3:::14:porti2eeee";
    let r = parse_announce_response(body).unwrap();
    // The host name entry is skipped (resolving is IO); addresses are kept.
    assert_eq!(r.peers, vec![addr("127.0.0.1:6881"), addr("[::1]:2")]);
    assert_eq!(r.min_interval, None);
}

#[test]
fn unsorted_keys_from_real_trackers_are_read() {
    // Trackers written in scripting languages emit keys in insertion order.
    let body = b"d8:intervali900e5:peers6:\x7f\x00\x00\x01\x1a\xe18:completei2ee";
    let r = parse_announce_response(body).unwrap();
    assert_eq!(r.interval, 900);
    assert_eq!(r.complete, Some(2));
    assert_eq!(r.peers, vec![addr("127.0.0.1:6881")]);
}

#[test]
fn failure_reason_is_a_failure() {
    assert_eq!(
        parse_announce_response(b"d14:failure reason9:forbiddene"),
        Err(TrackerResponseError::Failure("forbidden".into()))
    );
}

#[test]
fn malformed_bodies_are_refused() {
    let bad: &[&[u8]] = &[
        b"",
        b"<html>",
        b"le",
        b"d5:peers0:e",                                             // no interval
        b"d8:intervali60e5:peers5:abcdee",                          // compact not a multiple of 6
        b"d8:intervali60e5:peersi1ee",                              // peers of the wrong type
        b"d8:intervali60e6:peers65:abcdee",                         // peers6 not a multiple of 18
        b"d8:intervali60e5:peers0:ee",                              // trailing byte
        b"d8:intervali60e5:peersld2:ip9:127.0.0.14:porti70000eeee", // port out of range
    ];
    for body in bad {
        assert!(
            matches!(
                parse_announce_response(body),
                Err(TrackerResponseError::Malformed(_))
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn scrape_response() {
    let mut body = b"d5:filesd20:".to_vec();
    body.extend_from_slice(&[0xaa; 20]);
    body.extend_from_slice(b"d8:completei2e10:downloadedi7e10:incompletei1eeee");
    assert_eq!(
        parse_scrape_response(&body, &InfoHash([0xaa; 20])),
        Ok(ScrapeStats {
            complete: 2,
            downloaded: 7,
            incomplete: 1
        })
    );
    assert_eq!(
        parse_scrape_response(&body, &InfoHash([0xbb; 20])),
        Ok(ScrapeStats::default())
    );
    assert!(parse_scrape_response(b"de", &InfoHash([0; 20])).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_announce_response(&body);
        let _ = parse_scrape_response(&body, &InfoHash([0; 20]));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow(depth in 1usize..5000) {
        let mut body = vec![b'l'; depth];
        body.extend(std::iter::repeat_n(b'e', depth));
        let _ = parse_announce_response(&body);
    }
}
