//! HTTP tracker URLs: announce query string and scrape URL derivation.

use swarm_wire::InfoHash;
use swarm_wire::PeerId;
use swarm_wire::tracker::http::{announce_url, percent_encode, scrape_base_url, scrape_url};
use swarm_wire::tracker::{AnnounceRequest, Event};

fn request() -> AnnounceRequest {
    let mut info_hash = [0u8; 20];
    for (i, b) in info_hash.iter_mut().enumerate() {
        *b = (i as u8) * 13;
    }
    AnnounceRequest {
        info_hash: InfoHash(info_hash),
        peer_id: PeerId(*b"-SW0001-ab~.c_d-1234"),
        port: 51413,
        uploaded: 10,
        downloaded: 20,
        left: 30,
        event: Event::Started,
        numwant: Some(50),
        key: 0x00ab_cdef,
        tracker_id: None,
    }
}

#[test]
fn percent_encoding_is_bytewise_and_keeps_unreserved() {
    assert_eq!(percent_encode(b"aZ09-._~"), "aZ09-._~");
    assert_eq!(
        percent_encode(&[0, 0x20, 0xff, b'/', b'%']),
        "%00%20%FF%2F%25"
    );
}

#[test]
fn announce_url_carries_every_parameter() {
    let req = request();
    let url = announce_url("http://127.0.0.1:6969/announce", &req);
    assert_eq!(
        url,
        "http://127.0.0.1:6969/announce?info_hash=%00%0D%1A%274AN%5Bhu%82%8F%9C%A9%B6%C3%D0%DD%EA%F7\
         &peer_id=-SW0001-ab~.c_d-1234&port=51413&uploaded=10&downloaded=20&left=30&compact=1\
         &event=started&numwant=50&key=00ABCDEF"
    );
}

#[test]
fn announce_url_with_existing_query_and_tracker_id() {
    let mut req = request();
    req.event = Event::None;
    req.numwant = None;
    req.tracker_id = Some(b"id 1".to_vec());
    let url = announce_url("http://t.example/announce?passkey=abc", &req);
    assert!(
        url.starts_with("http://t.example/announce?passkey=abc&info_hash="),
        "{url}"
    );
    assert!(!url.contains("event="), "{url}");
    assert!(!url.contains("numwant="), "{url}");
    assert!(url.ends_with("&trackerid=id%201"), "{url}");
}

#[test]
fn scrape_url_follows_the_announce_convention() {
    assert_eq!(
        scrape_base_url("http://example.com/announce").as_deref(),
        Some("http://example.com/scrape")
    );
    assert_eq!(
        scrape_base_url("http://example.com/x/announce.php?pk=1").as_deref(),
        Some("http://example.com/x/scrape.php?pk=1")
    );
    assert_eq!(
        scrape_base_url("http://example.com/announce?x2%0644").as_deref(),
        Some("http://example.com/scrape?x2%0644")
    );
    assert_eq!(scrape_base_url("http://example.com/a"), None);
    assert_eq!(scrape_base_url("http://example.com/announce/x"), None);
    assert_eq!(
        scrape_url(
            "http://h/announce?pk=1",
            &[InfoHash([0xff; 20]), InfoHash([b'a'; 20])]
        )
        .as_deref(),
        Some(
            "http://h/scrape?pk=1&info_hash=%FF%FF%FF%FF%FF%FF%FF%FF%FF%FF%FF%FF%FF%FF%FF%FF%FF%FF%FF%FF\
             &info_hash=aaaaaaaaaaaaaaaaaaaa"
        )
    );
}
