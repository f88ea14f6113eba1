//! The tracker's BEP 15 request decoder: no panic on any datagram; an
//! accepted announce re-encodes (through the client's encoder) to a
//! datagram that decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_wire::tracker::server::udp::{UdpRequest, parse_request};
use swarm_wire::tracker::udp::Request;

fuzz_target!(|data: &[u8]| {
    if let Ok(UdpRequest::Announce { connection_id, transaction_id, request }) = parse_request(data) {
        let bytes = Request::Announce { connection_id, transaction_id, request: &request }.to_bytes();
        let again = parse_request(&bytes).expect("our own datagram parses");
        assert_eq!(again, UdpRequest::Announce { connection_id, transaction_id, request });
    }
});
