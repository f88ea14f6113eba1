//! Magnet: no panic on any input; an accepted magnet formats to a link that
//! parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_wire::magnet::Magnet;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Magnet::parse(s) {
        assert_eq!(Magnet::parse(&m.to_string()), Ok(m));
    }
});
