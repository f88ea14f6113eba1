//! The 20-byte ids of BitTorrent, each its own type so two can never swap:
//! [`InfoHash`] (which torrent) and [`PeerId`] (which client). A leaf
//! module: everything imports it, it imports nothing of the crate.
//!
//! Hex (info-hashes in logs, file names, magnet links) goes through the
//! `hex` crate here and nowhere else; percent-encoding (tracker URLs, magnet
//! links) through [`percent_encode`].

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use sha1::{Digest, Sha1};

/// A v1 info-hash: the SHA-1 of the bencoded info dictionary.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Lower-case hex, 40 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// 40 hex digits (either case); `None` for anything else.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 20];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(InfoHash(out))
    }

    /// The info-hash of an info dictionary's raw bytes.
    pub fn of_info(info_bytes: &[u8]) -> Self {
        InfoHash(Sha1::digest(info_bytes).into())
    }
}

impl From<[u8; 20]> for InfoHash {
    fn from(b: [u8; 20]) -> Self {
        InfoHash(b)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({self})")
    }
}

/// A peer id (BEP 3): 20 bytes a client picks for itself, by convention
/// Azureus style `-XX1234-` and 12 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// `-SW0001-...` → `SW0001`, for logs; other ids as printable text
    /// (non-graphic bytes shown as `.`).
    pub fn client_name(&self) -> String {
        let text: String = self
            .0
            .iter()
            .take(8)
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        text.trim_matches('-').to_string()
    }
}

impl From<[u8; 20]> for PeerId {
    fn from(b: [u8; 20]) -> Self {
        PeerId(b)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: String = self
            .0
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        write!(f, "PeerId({text})")
    }
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// is escaped: what trackers expect for the binary `info_hash` and
/// `peer_id`, and safe in any query value.
pub const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Appends `bytes` percent-encoded (`%XX`, upper case) to `out`: the bytes
/// in `set` are escaped, the others stay as they are.
pub fn percent_encode_into(bytes: &[u8], set: &'static AsciiSet, out: &mut String) {
    out.extend(percent_encoding::percent_encode(bytes, set));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_bad_input() {
        let h = InfoHash([0xab; 20]);
        assert_eq!(h.to_hex(), "ab".repeat(20));
        assert_eq!(InfoHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(InfoHash::from_hex(&"AB".repeat(20)), Some(h));
        assert_eq!(InfoHash::from_hex("abc"), None);
        assert_eq!(InfoHash::from_hex(&"zz".repeat(20)), None);
    }

    #[test]
    fn client_name_reads_azureus_ids() {
        assert_eq!(PeerId(*b"-SW0001-abcdefghijkl").client_name(), "SW0001");
        assert_eq!(PeerId([0; 20]).client_name(), "........");
    }

    #[test]
    fn query_values_keep_only_unreserved() {
        let mut s = String::new();
        percent_encode_into(b"aZ09-._~ /%\xff", QUERY_VALUE, &mut s);
        assert_eq!(s, "aZ09-._~%20%2F%25%FF");
    }
}
