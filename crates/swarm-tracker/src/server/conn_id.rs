//! BEP 15 connection ids that cannot be forged and need no state: a keyed
//! hash (SipHash-1-3 under a random 128-bit key, std's `RandomState`) of the
//! client's IP and the current 60 s window. An id is valid in its window
//! and the next, so 60-120 s, as BEP 15's "one minute" asks. Without the key
//! an id is a 64-bit guess; the key never leaves the process.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

/// Seconds per connection-id window.
pub const CONNECTION_ID_WINDOW_S: u64 = 60;

/// Makes and checks connection ids. Cloned into every worker (same key).
#[derive(Clone)]
pub struct ConnectionIds {
    key: RandomState,
}

impl Default for ConnectionIds {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectionIds {
    /// A fresh random key.
    pub fn new() -> Self {
        ConnectionIds {
            key: RandomState::new(),
        }
    }

    fn id(&self, ip: IpAddr, window: u64) -> u64 {
        let mut h = self.key.build_hasher();
        ip.to_canonical().hash(&mut h);
        window.hash(&mut h);
        h.finish()
    }

    /// The id for `ip` at `now_s` (seconds since any fixed epoch).
    pub fn make(&self, ip: IpAddr, now_s: u64) -> u64 {
        self.id(ip, now_s / CONNECTION_ID_WINDOW_S)
    }

    /// Whether `id` was made for `ip` in this window or the previous one.
    pub fn is_valid(&self, id: u64, ip: IpAddr, now_s: u64) -> bool {
        let window = now_s / CONNECTION_ID_WINDOW_S;
        id == self.id(ip, window) || (window > 0 && id == self.id(ip, window - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bound_to_ip_and_time() {
        let ids = ConnectionIds::new();
        let a: IpAddr = "127.0.0.5".parse().expect("ip");
        let b: IpAddr = "127.0.0.6".parse().expect("ip");
        let id = ids.make(a, 1000);
        assert!(ids.is_valid(id, a, 1000));
        assert!(ids.is_valid(id, a, 1000 + 60), "valid in the next window");
        assert!(
            !ids.is_valid(id, a, 1000 + 140),
            "expired after two windows"
        );
        assert!(!ids.is_valid(id, b, 1000), "another address");
        assert!(!ids.is_valid(id ^ 1, a, 1000), "a guess");
        assert!(!ConnectionIds::new().is_valid(id, a, 1000), "another key");
        let mapped: IpAddr = "::ffff:127.0.0.5".parse().expect("ip");
        assert!(
            ids.is_valid(id, mapped, 1000),
            "v4-mapped is the same client"
        );
    }
}
