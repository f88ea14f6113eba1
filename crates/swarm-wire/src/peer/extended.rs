//! The BEP 10 extension handshake: extended message id 0, a bencoded
//! dictionary naming the extensions the sender supports (`m`) and a few
//! facts about it (`v`, `reqq`, `p`, `yourip`, `metadata_size` of BEP 9).
//!
//! Decoding is lenient where the BEP is (unknown keys and odd entries are
//! ignored, as every client does) and bounded: names, client strings and the
//! number of extensions are capped.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::WireError;
use crate::bencode;
use crate::bencode::{put_bytes, put_int};

/// Extensions kept from one handshake's `m`; real clients list under 20.
pub const EXTENSIONS_MAX: usize = 128;
/// Longest extension name kept, in bytes.
pub const EXTENSION_NAME_LEN_MAX: usize = 64;
/// Longest client name (`v`) kept, in bytes.
pub const CLIENT_NAME_LEN_MAX: usize = 256;

/// The extended message id of the handshake itself.
pub const EXTENDED_HANDSHAKE_ID: u8 = 0;

/// A BEP 10 extension handshake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtendedHandshake {
    /// Extension name → the id the *sender* wants to receive it under.
    /// An id of 0 means the sender disables that extension (in a later
    /// handshake), so 0 entries are kept, not dropped.
    pub m: BTreeMap<String, u8>,
    /// Client name and version, e.g. `swarm 0.1.0`.
    pub v: Option<String>,
    /// Outstanding requests the sender accepts without dropping.
    pub reqq: Option<u32>,
    /// The sender's listen port.
    pub p: Option<u16>,
    /// Our address as the sender sees it.
    pub yourip: Option<IpAddr>,
    /// BEP 9: size of the info dictionary in bytes.
    pub metadata_size: Option<u64>,
}

impl ExtendedHandshake {
    /// The id the peer wants extension `name` sent under, if it enabled it.
    pub fn extension_id(&self, name: &str) -> Option<u8> {
        self.m.get(name).copied().filter(|&id| id != 0)
    }

    /// The bencoded payload (after the extended id byte).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        // Keys in byte order, as bencode requires: m, metadata_size, p, reqq, v, yourip.
        out.push(b'd');
        put_bytes(&mut out, b"m");
        out.push(b'd');
        for (name, id) in &self.m {
            put_bytes(&mut out, name.as_bytes());
            put_int(&mut out, i64::from(*id));
        }
        out.push(b'e');
        if let Some(size) = self.metadata_size {
            put_bytes(&mut out, b"metadata_size");
            put_int(&mut out, i64::try_from(size).unwrap_or(i64::MAX));
        }
        if let Some(p) = self.p {
            put_bytes(&mut out, b"p");
            put_int(&mut out, i64::from(p));
        }
        if let Some(reqq) = self.reqq {
            put_bytes(&mut out, b"reqq");
            put_int(&mut out, i64::from(reqq));
        }
        if let Some(v) = &self.v {
            put_bytes(&mut out, b"v");
            put_bytes(&mut out, v.as_bytes());
        }
        if let Some(ip) = self.yourip {
            put_bytes(&mut out, b"yourip");
            match ip {
                IpAddr::V4(v4) => put_bytes(&mut out, &v4.octets()),
                IpAddr::V6(v6) => put_bytes(&mut out, &v6.octets()),
            }
        }
        out.push(b'e');
        out
    }

    /// Parses the payload of extended message 0.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        // Lenient: clients in the wild send unsorted keys here.
        let dict = bencode::decode_lenient(payload).map_err(bad)?;
        if dict.as_dict().is_none() {
            return Err(bad("not a dictionary"));
        }
        let mut hs = ExtendedHandshake::default();
        if let Some(m) = dict.get(b"m") {
            let m = m.as_dict().ok_or_else(|| bad("m is not a dictionary"))?;
            for (name, id) in m {
                if hs.m.len() >= EXTENSIONS_MAX {
                    break;
                }
                // Entries we cannot use (non-UTF-8 or long names, ids outside
                // 0..=255) are ignored: they name extensions we do not speak.
                let (Ok(name), Some(id)) = (std::str::from_utf8(name), id.as_int()) else {
                    continue;
                };
                let Ok(id) = u8::try_from(id) else { continue };
                if name.len() <= EXTENSION_NAME_LEN_MAX {
                    hs.m.insert(name.to_owned(), id);
                }
            }
        }
        let int = |key: &[u8]| dict.get(key).and_then(|v| v.as_int());
        hs.v = dict
            .get(b"v")
            .and_then(|v| v.as_bytes())
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(CLIENT_NAME_LEN_MAX)]).into_owned());
        hs.reqq = int(b"reqq").and_then(|i| u32::try_from(i).ok());
        hs.p = int(b"p")
            .and_then(|i| u16::try_from(i).ok())
            .filter(|&p| p != 0);
        hs.metadata_size = int(b"metadata_size").and_then(|i| u64::try_from(i).ok());
        hs.yourip = dict
            .get(b"yourip")
            .and_then(|v| v.as_bytes())
            .and_then(|b| match b.len() {
                4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
                16 => {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(b);
                    Some(IpAddr::V6(Ipv6Addr::from(o)))
                }
                _ => None,
            });
        Ok(hs)
    }
}

fn bad(why: impl std::fmt::Display) -> WireError {
    WireError::BadExtendedHandshake(why.to_string())
}
