//! BEP 42: node ids tied to the node's IP, so that one host cannot choose
//! its position in the id space (and surround a key).
//!
//! The top 21 bits of a valid id are the top 21 bits of CRC32-C over the IP
//! masked (`0x030f3fff` for IPv4, `0x0103070f1f3f7fff` over the first 8
//! bytes of IPv6) with the 3 low bits of the id's last byte mixed in. Local
//! addresses (loopback, private, link-local) are exempt, as the BEP says.

use std::net::IpAddr;

use swarm_wire::crc32c::crc32c;
use swarm_wire::krpc::NodeId;

const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

fn prefix(ip: IpAddr, r: u8) -> u32 {
    let r = r & 7;
    match ip {
        IpAddr::V4(v4) => {
            let mut b = v4.octets();
            for (x, m) in b.iter_mut().zip(V4_MASK) {
                *x &= m;
            }
            b[0] |= r << 5;
            crc32c(&[&b])
        }
        IpAddr::V6(v6) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v6.octets()[..8]);
            for (x, m) in b.iter_mut().zip(V6_MASK) {
                *x &= m;
            }
            b[0] |= r << 5;
            crc32c(&[&b])
        }
    }
}

/// Whether BEP 42 exempts `ip` (local networks).
pub fn is_exempt(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xfe00) == 0xfc00
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_exempt(IpAddr::V4(v4)))
        }
    }
}

/// Whether `id` is a valid id for a node at `ip` (always true for exempt IPs).
pub fn id_matches_ip(id: &NodeId, ip: IpAddr) -> bool {
    if is_exempt(ip) {
        return true;
    }
    let crc = prefix(ip, id.0[19]);
    id.0[0] == (crc >> 24) as u8
        && id.0[1] == (crc >> 16) as u8
        && (id.0[2] & 0xf8) == ((crc >> 8) as u8 & 0xf8)
}

/// A valid id for `ip`, its free bits from `random`.
pub fn id_for_ip(ip: IpAddr, random: [u8; 20]) -> NodeId {
    let mut id = random;
    let crc = prefix(ip, id[19]);
    id[0] = (crc >> 24) as u8;
    id[1] = (crc >> 16) as u8;
    id[2] = ((crc >> 8) as u8 & 0xf8) | (id[2] & 7);
    NodeId(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The BEP's test vectors: IP, last byte, and the id's first 3 bytes
    // (the third only in its top 5 bits).
    #[test]
    fn bep42_vectors() {
        let cases: [(&str, u8, [u8; 3]); 5] = [
            ("124.31.75.21", 1, [0x5f, 0xbf, 0xbf]),
            ("21.75.31.124", 86, [0x5a, 0x3c, 0xe9]),
            ("65.23.51.170", 22, [0xa5, 0xd4, 0x32]),
            ("84.124.73.14", 65, [0x1b, 0x03, 0x21]),
            ("43.213.53.83", 90, [0xe5, 0x6f, 0x6c]),
        ];
        for (ip, last, first) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            let mut random = [0x11u8; 20];
            random[19] = last;
            let id = id_for_ip(ip, random);
            assert_eq!(id.0[0], first[0], "{ip}");
            assert_eq!(id.0[1], first[1], "{ip}");
            assert_eq!(id.0[2] & 0xf8, first[2] & 0xf8, "{ip}");
            assert!(id_matches_ip(&id, ip));
            let mut wrong = id;
            wrong.0[0] ^= 0x80;
            assert!(!id_matches_ip(&wrong, ip));
        }
        assert!(id_matches_ip(
            &NodeId([0; 20]),
            "127.0.0.5".parse().unwrap()
        ));
        assert!(!id_matches_ip(&NodeId([0; 20]), "8.8.8.8".parse().unwrap()));
    }
}
