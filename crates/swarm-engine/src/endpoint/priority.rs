//! BEP 40, canonical peer priority: a number both ends of a connection
//! compute alike from their two addresses, so every peer agrees which
//! connections matter most. A full torrent lets a newcomer in by closing its
//! lowest-priority connection if the newcomer's is higher (libtorrent's
//! `torrent::attach_peer`): without it the peers that arrive last in a flash
//! crowd find every slot taken, for the whole download.

use std::net::{IpAddr, SocketAddr};

use swarm_wire::crc32c::crc32c;

/// Masks the two addresses as BEP 40 says: the bytes of both in different
/// subnets count less (0x55), so priorities do not favour one network.
fn masked<const N: usize>(a: [u8; N], b: [u8; N], first: usize) -> ([u8; N], [u8; N]) {
    let mut mask = [0xffu8; N];
    // The prefix length `first` bytes (a /16 for IPv4, a /48 for IPv6),
    // then one more byte, then the rest.
    let same_first = a[..first] == b[..first];
    let same_next = a[..=first] == b[..=first];
    let from = if !same_first {
        first
    } else if !same_next {
        first + 1
    } else {
        N
    };
    for m in mask.iter_mut().skip(from) {
        *m = 0x55;
    }
    let apply = |x: [u8; N]| {
        let mut y = x;
        for (v, m) in y.iter_mut().zip(mask) {
            *v &= m;
        }
        y
    };
    (apply(a), apply(b))
}

/// The canonical priority of the connection between `a` and `b` (the same
/// both ways round). Mixed address families: `None`.
pub fn priority(a: SocketAddr, b: SocketAddr) -> Option<u32> {
    if a.ip() == b.ip() {
        let (pa, pb) = (a.port().to_be_bytes(), b.port().to_be_bytes());
        let (x, y) = if pa <= pb { (pa, pb) } else { (pb, pa) };
        return Some(crc32c(&[&x, &y]));
    }
    match (a.ip(), b.ip()) {
        (IpAddr::V4(x), IpAddr::V4(y)) => {
            let (x, y) = masked(x.octets(), y.octets(), 2);
            let (x, y) = if x <= y { (x, y) } else { (y, x) };
            Some(crc32c(&[&x, &y]))
        }
        (IpAddr::V6(x), IpAddr::V6(y)) => {
            let (x, y) = masked(x.octets(), y.octets(), 6);
            let (x, y) = if x <= y { (x, y) } else { (y, x) };
            Some(crc32c(&[&x, &y]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// BEP 40's own test vectors.
    #[test]
    fn the_beps_examples() {
        assert_eq!(
            priority(at("123.213.32.10:0"), at("98.76.54.32:0")),
            Some(0xec2d_7224)
        );
        assert_eq!(
            priority(at("123.213.32.10:0"), at("123.213.32.234:0")),
            Some(0x9956_8189)
        );
        // Either way round.
        assert_eq!(
            priority(at("98.76.54.32:0"), at("123.213.32.10:0")),
            Some(0xec2d_7224)
        );
        // Another client's vector (anacrolix/torrent's bep40 test).
        assert_eq!(
            priority(at("206.248.98.111:0"), at("142.147.89.224:0")),
            Some(0x2b41_d456)
        );
        // One IP: the ports decide, either way round.
        assert_eq!(
            priority(at("10.0.0.1:6881"), at("10.0.0.1:6882")),
            priority(at("10.0.0.1:6882"), at("10.0.0.1:6881"))
        );
        assert_eq!(priority(at("1.2.3.4:5"), at("[::1]:5")), None);
    }
}
