//! Bencode: no panic on any input; what the strict decoder accepts is
//! canonical (re-encodes to itself) and the lenient decoder agrees with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_wire::bencode::{decode, decode_lenient};

fuzz_target!(|data: &[u8]| {
    let lenient = decode_lenient(data);
    if let Ok(v) = decode(data) {
        assert_eq!(v.to_owned_value().encode(), data);
        assert_eq!(lenient.ok().as_ref(), Some(&v));
    }
});
