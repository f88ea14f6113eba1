//! BEP 11 `ut_pex` messages: peer exchange. A connected peer tells us, at
//! most once a minute, which peers it connected to (`added`, `added6`, with a
//! flags byte each in `added.f` / `added6.f`) and which it lost (`dropped`,
//! `dropped6`) since its last message, as compact addresses (BEP 23 for IPv4,
//! 18-byte entries for IPv6).
//!
//! Limits: we send at most [`PEX_ADDED_MAX`] added and [`PEX_DROPPED_MAX`]
//! dropped addresses per message (BEP 11's 50). Decoding keeps at most
//! [`PEX_DECODE_ADDRS_MAX`] addresses of each list and ignores the rest (the
//! payload bound, [`super::EXTENDED_PAYLOAD_LEN_MAX`], would otherwise allow
//! about 2,800), and skips port-0 entries. A list whose length is not a
//! multiple of its entry size is an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;

use super::WireError;
use crate::bencode;
use crate::bencode::put_bytes;

/// The extension's name in a BEP 10 handshake's `m`.
pub const UT_PEX: &str = "ut_pex";
/// Added addresses we put in one message (BEP 11: "at most 50").
pub const PEX_ADDED_MAX: usize = 50;
/// Dropped addresses we put in one message.
pub const PEX_DROPPED_MAX: usize = 50;
/// Addresses kept per list (added, added6, dropped, dropped6) of a received
/// message; libtorrent sends at most 100 per list.
pub const PEX_DECODE_ADDRS_MAX: usize = 100;

/// The flags byte of an added peer (BEP 11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    pub const PREFERS_ENCRYPTION: u8 = 0x01;
    /// A seed (or upload-only).
    pub const SEED: u8 = 0x02;
    pub const SUPPORTS_UTP: u8 = 0x04;
    pub const SUPPORTS_HOLEPUNCH: u8 = 0x08;
    /// The sender connected *to* this peer: its address is reachable.
    pub const REACHABLE: u8 = 0x10;

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }
}

/// One `ut_pex` message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PexMessage {
    pub added: Vec<(SocketAddr, PexFlags)>,
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.dropped.is_empty()
    }

    /// The extended message payload (after the extended id byte). Every
    /// address given is written: callers keep to [`PEX_ADDED_MAX`] and
    /// [`PEX_DROPPED_MAX`].
    pub fn encode(&self) -> Bytes {
        let (mut a4, mut f4, mut a6, mut f6) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (addr, flags) in &self.added {
            match addr {
                SocketAddr::V4(_) => {
                    put_compact(&mut a4, addr);
                    f4.push(flags.0);
                }
                SocketAddr::V6(_) => {
                    put_compact(&mut a6, addr);
                    f6.push(flags.0);
                }
            }
        }
        let (mut d4, mut d6) = (Vec::new(), Vec::new());
        for addr in &self.dropped {
            match addr {
                SocketAddr::V4(_) => put_compact(&mut d4, addr),
                SocketAddr::V6(_) => put_compact(&mut d6, addr),
            }
        }
        let mut out = Vec::with_capacity(64 + a4.len() + a6.len() + d4.len() + d6.len());
        // Keys in byte order ('.' < '6').
        out.push(b'd');
        for (key, value) in [
            (&b"added"[..], &a4),
            (b"added.f", &f4),
            (b"added6", &a6),
            (b"added6.f", &f6),
            (b"dropped", &d4),
            (b"dropped6", &d6),
        ] {
            put_bytes(&mut out, key);
            put_bytes(&mut out, value);
        }
        out.push(b'e');
        Bytes::from(out)
    }

    /// Parses an extended message payload (lenient about key order, as
    /// clients are). Missing lists are empty; a missing or short flags
    /// string gives flags 0.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let dict = bencode::decode_lenient(payload).map_err(bad)?;
        if dict.as_dict().is_none() {
            return Err(bad("not a dictionary"));
        }
        let bytes = |key: &[u8]| -> Result<&[u8], WireError> {
            match dict.get(key) {
                None => Ok(&[]),
                Some(v) => v.as_bytes().ok_or_else(|| {
                    bad(format!(
                        "`{}` is not a string",
                        String::from_utf8_lossy(key)
                    ))
                }),
            }
        };
        let mut msg = PexMessage::default();
        for (list, flags, entry) in [
            (&b"added"[..], &b"added.f"[..], 6),
            (b"added6", b"added6.f", 18),
        ] {
            let addrs = parse_compact(bytes(list)?, entry, list)?;
            let flags = bytes(flags)?;
            msg.added.extend(
                addrs
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, a)| Some((a?, PexFlags(flags.get(i).copied().unwrap_or(0))))),
            );
        }
        for (list, entry) in [(&b"dropped"[..], 6), (b"dropped6", 18)] {
            msg.dropped.extend(
                parse_compact(bytes(list)?, entry, list)?
                    .into_iter()
                    .flatten(),
            );
        }
        Ok(msg)
    }
}

fn put_compact(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The first [`PEX_DECODE_ADDRS_MAX`] entries, `None` for port 0 (kept as a
/// slot so flags stay aligned with their addresses).
fn parse_compact(b: &[u8], entry: usize, key: &[u8]) -> Result<Vec<Option<SocketAddr>>, WireError> {
    if !b.len().is_multiple_of(entry) {
        return Err(bad(format!(
            "`{}` is {} bytes, not a multiple of {entry}",
            String::from_utf8_lossy(key),
            b.len()
        )));
    }
    Ok(b.chunks_exact(entry)
        .take(PEX_DECODE_ADDRS_MAX)
        .map(|c| {
            let port = u16::from_be_bytes([c[entry - 2], c[entry - 1]]);
            let ip = if entry == 6 {
                IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            } else {
                let mut o = [0u8; 16];
                o.copy_from_slice(&c[..16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            (port != 0).then_some(SocketAddr::new(ip, port))
        })
        .collect())
}

fn bad(why: impl std::fmt::Display) -> WireError {
    WireError::BadExtensionMessage {
        extension: UT_PEX,
        why: why.to_string(),
    }
}
