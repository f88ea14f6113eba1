//! KRPC: no panic on any datagram; an accepted message re-encodes to bytes
//! that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_wire::krpc::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        assert_eq!(Message::decode(&m.encode()), Ok(m));
    }
});
