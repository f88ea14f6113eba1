//! The tracker's HTTP query decoders: no panic on any input; an accepted
//! announce re-encodes (through the client's URL builder) to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_wire::tracker::http::announce_url;
use swarm_wire::tracker::server::http::{parse_announce_query, parse_scrape_query};

fuzz_target!(|data: &[u8]| {
    let _ = parse_scrape_query(data);
    if let Ok(a) = parse_announce_query(data) {
        let url = announce_url("http://t/announce", &a.request);
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let again = parse_announce_query(query.as_bytes()).expect("our own URL parses");
        assert_eq!(again.request.info_hash, a.request.info_hash);
        assert_eq!(again.request.peer_id, a.request.peer_id);
        assert_eq!(again.request.port, a.request.port);
    }
});
