//! Magnet URIs for BitTorrent (BEP 9): `magnet:?xt=urn:btih:<info-hash>`
//! with the optional display name `dn`, trackers `tr` and peers `x.pe`.
//!
//! The info-hash is 40 hex digits (either case) or 32 base32 characters
//! (RFC 4648 alphabet, either case, no padding), as BEP 9 allows. Values are
//! percent-decoded (`+` is a space, as in HTML forms, which is how many
//! sites write `dn`); decoded values must be UTF-8. Parameters this module
//! does not know (`xl`, `ws`, `so`, `tr.1`...) are ignored; a magnet whose
//! only `xt` is not `urn:btih:` (a v2-only `urn:btmh:`, a `urn:sha1:`) is
//! refused, because it does not name a v1 torrent (a `urn:btmh:` alone with
//! [`MagnetError::V2Only`]). A hybrid magnet, with both `urn:btih:` and
//! `urn:btmh:`, is used through its `btih`.
//!
//! [`Magnet`]'s `Display` writes the canonical form: hex info-hash, then
//! `dn`, `tr`s and `x.pe`s, percent-encoded.

use std::fmt;
use std::str::FromStr;

use percent_encoding::AsciiSet;

use crate::ids::{InfoHash, QUERY_VALUE, percent_encode_into};

/// A parsed magnet link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: InfoHash,
    /// `dn`: a name for display until the metadata arrives (untrusted: never
    /// a path).
    pub name: Option<String>,
    /// `tr`: tracker URLs, in the order given.
    pub trackers: Vec<String>,
    /// `x.pe`: peer addresses (`host:port`), in the order given.
    pub peers: Vec<String>,
}

/// Why a magnet link was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    #[error("not a magnet link: it must start with `magnet:?`")]
    NotMagnet,
    #[error("magnet link has no `xt=urn:btih:` info-hash")]
    NoInfoHash,
    #[error("magnet link names no BitTorrent v1 info-hash (`xt` is `{0}`, not `urn:btih:...`)")]
    NotBtih(String),
    #[error(
        "magnet link names only a v2 info-hash (`urn:btmh:`): v2-only torrents are not supported yet"
    )]
    V2Only,
    #[error(
        "info-hash `{0}` is neither 40 hex digits nor 32 base32 characters ({1} characters long)"
    )]
    BadInfoHashLength(String, usize),
    #[error("info-hash `{0}` is not valid hex")]
    BadHex(String),
    #[error("info-hash `{0}` is not valid base32 (A-Z, 2-7)")]
    BadBase32(String),
    #[error("bad percent-escape in `{0}`")]
    BadEscape(String),
    #[error("parameter `{0}` is not UTF-8 once percent-decoded")]
    NotUtf8(String),
    #[error("two different info-hashes in one magnet link")]
    ConflictingInfoHashes,
}

impl FromStr for Magnet {
    type Err = MagnetError;
    fn from_str(s: &str) -> Result<Self, MagnetError> {
        Magnet::parse(s)
    }
}

impl Magnet {
    pub fn new(info_hash: InfoHash) -> Self {
        Magnet {
            info_hash,
            name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
        }
    }

    pub fn parse(uri: &str) -> Result<Magnet, MagnetError> {
        let query = uri
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case("magnet:?"))
            .map(|_| &uri[8..])
            .ok_or(MagnetError::NotMagnet)?;
        let mut info_hash: Option<InfoHash> = None;
        let mut other_xt: Option<String> = None;
        let mut magnet = Magnet::new(InfoHash([0; 20]));
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "xt" => {
                    let xt = percent_decode(raw, key)?;
                    let Some(hash) = xt
                        .get(..9)
                        .filter(|p| p.eq_ignore_ascii_case("urn:btih:"))
                        .map(|_| &xt[9..])
                    else {
                        other_xt.get_or_insert(xt);
                        continue;
                    };
                    let hash = parse_info_hash(hash)?;
                    if info_hash.is_some_and(|h| h != hash) {
                        return Err(MagnetError::ConflictingInfoHashes);
                    }
                    info_hash = Some(hash);
                }
                "dn" => magnet.name = Some(percent_decode(raw, key)?),
                "tr" => magnet.trackers.push(percent_decode(raw, key)?),
                "x.pe" => magnet.peers.push(percent_decode(raw, key)?),
                _ => {}
            }
        }
        magnet.info_hash = match (info_hash, other_xt) {
            (Some(h), _) => h,
            (None, Some(xt))
                if xt
                    .get(..9)
                    .is_some_and(|p| p.eq_ignore_ascii_case("urn:btmh:")) =>
            {
                return Err(MagnetError::V2Only);
            }
            (None, Some(xt)) => return Err(MagnetError::NotBtih(xt)),
            (None, None) => return Err(MagnetError::NoInfoHash),
        };
        Ok(magnet)
    }
}

/// 40 hex digits or 32 base32 characters → 20 bytes.
pub fn parse_info_hash(s: &str) -> Result<InfoHash, MagnetError> {
    let mut out = [0u8; 20];
    match s.len() {
        40 => {
            out = InfoHash::from_hex(s)
                .ok_or_else(|| MagnetError::BadHex(s.to_owned()))?
                .0;
        }
        32 => {
            // 32 characters x 5 bits = 160 bits = 20 bytes, no padding.
            let mut acc: u64 = 0;
            let mut bits = 0;
            let mut i = 0;
            for &c in s.as_bytes() {
                let v = match c.to_ascii_uppercase() {
                    c @ b'A'..=b'Z' => c - b'A',
                    c @ b'2'..=b'7' => c - b'2' + 26,
                    _ => return Err(MagnetError::BadBase32(s.to_owned())),
                };
                acc = acc << 5 | u64::from(v);
                bits += 5;
                if bits >= 8 {
                    bits -= 8;
                    out[i] = (acc >> bits) as u8;
                    i += 1;
                }
            }
        }
        n => return Err(MagnetError::BadInfoHashLength(s.to_owned(), n)),
    }
    Ok(InfoHash(out))
}

/// `%XX` → byte, `+` → space; the result must be UTF-8. A `%` not followed
/// by two hex digits is an error (the `percent-encoding` crate would keep it).
fn percent_decode(s: &str, key: &str) -> Result<String, MagnetError> {
    let b = s.as_bytes();
    let bad_escape = b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !b
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if bad_escape {
        return Err(MagnetError::BadEscape(key.to_owned()));
    }
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| MagnetError::NotUtf8(key.to_owned()))
}

/// Magnet values escape what [`QUERY_VALUE`] escapes but `:` and `/`,
/// harmless in a query value and kept for readability.
const MAGNET_VALUE: &AsciiSet = &QUERY_VALUE.remove(b':').remove(b'/');

fn percent_encode(s: &str, out: &mut String) {
    percent_encode_into(s.as_bytes(), MAGNET_VALUE, out);
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = format!("magnet:?xt=urn:btih:{}", self.info_hash);
        if let Some(name) = &self.name {
            s.push_str("&dn=");
            percent_encode(name, &mut s);
        }
        for t in &self.trackers {
            s.push_str("&tr=");
            percent_encode(t, &mut s);
        }
        for p in &self.peers {
            s.push_str("&x.pe=");
            percent_encode(p, &mut s);
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c9e15763f722f23e98a29decdfae341b98d53056";
    const BASE32: &str = "ZHQVOY7XELZD5GFCTXWN7LRUDOMNKMCW";

    #[test]
    fn hex_and_base32_agree() {
        let a = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}")).unwrap();
        let b = Magnet::parse(&format!("magnet:?xt=urn:btih:{BASE32}")).unwrap();
        let c = Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{}",
            BASE32.to_ascii_lowercase()
        ))
        .unwrap();
        assert_eq!(a.info_hash.to_hex(), HEX);
        assert_eq!(a.info_hash, b.info_hash);
        assert_eq!(a.info_hash, c.info_hash);
    }

    #[test]
    fn a_hybrid_magnet_uses_its_btih() {
        const BTMH: &str = "1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e";
        for uri in [
            format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:{BTMH}"),
            format!("magnet:?xt=urn:btmh:{BTMH}&xt=urn:btih:{HEX}"),
        ] {
            assert_eq!(Magnet::parse(&uri).unwrap().info_hash.to_hex(), HEX);
        }
        let err = Magnet::parse(&format!("magnet:?xt=urn:btmh:{BTMH}")).unwrap_err();
        assert!(
            err.to_string()
                .contains("v2-only torrents are not supported yet")
        );
    }

    #[test]
    fn every_field_and_round_trip() {
        let uri = format!(
            "magnet:?xt=urn:btih:{}&dn=Cosmos+Laundromat%21&tr=udp%3A%2F%2Ft.example%3A6969&tr=http://b/announce&x.pe=10.0.0.1:6881&x.pe=[::1]:1&xl=5&tr.1=ignored",
            HEX.to_uppercase()
        );
        let m = Magnet::parse(&uri).unwrap();
        assert_eq!(m.name.as_deref(), Some("Cosmos Laundromat!"));
        assert_eq!(m.trackers, ["udp://t.example:6969", "http://b/announce"]);
        assert_eq!(m.peers, ["10.0.0.1:6881", "[::1]:1"]);
        let again = Magnet::parse(&m.to_string()).unwrap();
        assert_eq!(again, m);
        assert!(
            m.to_string()
                .starts_with(&format!("magnet:?xt=urn:btih:{HEX}&dn=Cosmos%20"))
        );
    }

    #[test]
    fn refusals() {
        type Check = fn(&MagnetError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("http://x", |e| matches!(e, MagnetError::NotMagnet)),
            ("magnet:", |e| matches!(e, MagnetError::NotMagnet)),
            ("magnet:?dn=x", |e| matches!(e, MagnetError::NoInfoHash)),
            ("magnet:?xt=urn:btih:1234", |e| {
                matches!(e, MagnetError::BadInfoHashLength(_, 4))
            }),
            (
                "magnet:?xt=urn:btih:zz215763f722f23e98a29decdfae341b98d53056",
                |e| matches!(e, MagnetError::BadHex(_)),
            ),
            (
                "magnet:?xt=urn:btih:ZHQVOY7XELZD5GFCTXG57LRUDOMNKMC1",
                |e| matches!(e, MagnetError::BadBase32(_)),
            ),
            (
                "magnet:?xt=urn:sha1:c9e15763f722f23e98a29decdfae341b98d53056",
                |e| matches!(e, MagnetError::NotBtih(_)),
            ),
            (
                "magnet:?xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e",
                |e| matches!(e, MagnetError::V2Only),
            ),
            (
                "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056&dn=%zz",
                |e| matches!(e, MagnetError::BadEscape(_)),
            ),
            (
                "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056&dn=%4",
                |e| matches!(e, MagnetError::BadEscape(_)),
            ),
            (
                "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056&dn=%ff",
                |e| matches!(e, MagnetError::NotUtf8(_)),
            ),
            (
                "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056&xt=urn:btih:ZHQVOY7XELZD5GFCTXWN7LRUDOMNKMCA",
                |e| matches!(e, MagnetError::ConflictingInfoHashes),
            ),
        ];
        for (uri, check) in cases {
            let e = Magnet::parse(uri).unwrap_err();
            assert!(check(&e), "{uri}: {e:?}");
        }
    }

    #[test]
    fn btmh_next_to_btih_is_fine() {
        let m = Magnet::parse(&format!("magnet:?xt=urn:btmh:1220abcd&xt=urn:btih:{HEX}")).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
    }
}
