//! HTTP tracker, server direction (BEP 3, 23, 7, 48): announce and scrape
//! query strings in, bencoded responses out.
//!
//! Hostile input: a query longer than [`QUERY_LEN_MAX`] or with more than
//! [`PARAMS_MAX`] parameters is refused before anything is decoded; binary
//! values are percent-decoded straight into fixed 20-byte arrays (no
//! allocation, a wrong length is an error); numbers are checked decimals;
//! unknown parameters are ignored. Every error is a [`QueryError`] whose
//! `Display` is the `failure reason` to send.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::ids::{InfoHash, PeerId};
use crate::tracker::{AnnounceRequest, Event};

/// Longest query string read, in bytes (a real announce is ~250).
pub const QUERY_LEN_MAX: usize = 4096;
/// Most `key=value` pairs read from one query.
pub const PARAMS_MAX: usize = 64;
/// Most info-hashes in one HTTP scrape (more are refused, not truncated);
/// as many as a UDP scrape carries.
pub const SCRAPE_HASHES_MAX: usize = 74;
/// Longest scrape query read, in bytes (74 fully escaped hashes take 5,254).
pub const SCRAPE_QUERY_LEN_MAX: usize = 8192;
/// Most `key=value` pairs read from one scrape query.
pub const SCRAPE_PARAMS_MAX: usize = 128;
/// Longest failure reason sent, in bytes.
pub const FAILURE_LEN_MAX: usize = 256;

/// Why a query was refused; `Display` is the failure reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("query string too long")]
    TooLong,
    #[error("too many parameters")]
    TooManyParams,
    #[error("missing info_hash")]
    MissingInfoHash,
    #[error("invalid info_hash: not 20 bytes")]
    BadInfoHash,
    #[error("missing peer_id")]
    MissingPeerId,
    #[error("invalid peer_id: not 20 bytes")]
    BadPeerId,
    #[error("missing port")]
    MissingPort,
    #[error("invalid port")]
    BadPort,
    #[error("invalid number in {0}")]
    BadNumber(&'static str),
    #[error("invalid event")]
    BadEvent,
    #[error("too many info_hash values")]
    TooManyHashes,
}

/// An announce as a client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnnounce {
    /// `tracker_id` is never filled (swarm sends none, so none comes back);
    /// `left` is `u64::MAX` when the client did not say (a leecher).
    pub request: AnnounceRequest,
    /// `compact=0` asks for the dictionary model; absent or `1`: compact.
    pub compact: bool,
    /// `no_peer_id=1`: dictionary entries without `peer id`.
    pub no_peer_id: bool,
}

/// Splits `query` into at most `params_max` `(key, raw value)` pairs.
fn params(
    query: &[u8],
    len_max: usize,
    params_max: usize,
) -> Result<impl Iterator<Item = (&[u8], &[u8])>, QueryError> {
    if query.len() > len_max {
        return Err(QueryError::TooLong);
    }
    if query.split(|&b| b == b'&').count() > params_max {
        return Err(QueryError::TooManyParams);
    }
    Ok(query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(eq) => (&p[..eq], &p[eq + 1..]),
            None => (p, &p[p.len()..]),
        }))
}

/// Percent-decodes `raw` into exactly 20 bytes (`%XX` escapes, other bytes
/// as they are; `+` stays `+`: these are binary values, not form text).
pub fn decode_20(raw: &[u8]) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = if raw[i] == b'%' {
            let mut b = [0u8];
            hex::decode_to_slice(raw.get(i + 1..i + 3)?, &mut b).ok()?;
            i += 3;
            b[0]
        } else {
            i += 1;
            raw[i - 1]
        };
        *out.get_mut(n)? = b;
        n += 1;
    }
    (n == 20).then_some(out)
}

/// A decimal `u64` (at most 20 digits, no sign); larger values saturate.
fn number(raw: &[u8], what: &'static str) -> Result<u64, QueryError> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return Err(QueryError::BadNumber(what));
    }
    Ok(raw.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Parses an announce query string (the part after `?`).
pub fn parse_announce_query(query: &[u8]) -> Result<HttpAnnounce, QueryError> {
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let (mut uploaded, mut downloaded, mut left) = (0, 0, u64::MAX);
    let mut event = Event::None;
    let mut numwant = None;
    let mut key = 0u32;
    let mut compact = true;
    let mut no_peer_id = false;
    for (k, v) in params(query, QUERY_LEN_MAX, PARAMS_MAX)? {
        match k {
            b"info_hash" if info_hash.is_none() => {
                info_hash = Some(decode_20(v).ok_or(QueryError::BadInfoHash)?);
            }
            b"peer_id" if peer_id.is_none() => {
                peer_id = Some(decode_20(v).ok_or(QueryError::BadPeerId)?);
            }
            b"port" => {
                let p = number(v, "port").map_err(|_| QueryError::BadPort)?;
                port = Some(u16::try_from(p).map_err(|_| QueryError::BadPort)?);
            }
            b"uploaded" => uploaded = number(v, "uploaded")?,
            b"downloaded" => downloaded = number(v, "downloaded")?,
            b"left" => left = number(v, "left")?,
            b"numwant" => {
                numwant = Some(number(v, "numwant")?.min(u64::from(u32::MAX)) as u32);
            }
            b"compact" => compact = v != b"0",
            b"no_peer_id" => no_peer_id = v == b"1",
            b"key" => {
                // Up to 8 hex digits by convention; anything else is hashed
                // down, never an error (the key is only an identity hint).
                let hex = (v.len() <= 8).then(|| {
                    v.iter().try_fold(0u32, |acc, &b| {
                        Some((acc << 4) | char::from(b).to_digit(16)?)
                    })
                });
                key = hex.flatten().unwrap_or_else(|| {
                    v.iter().fold(0u32, |acc, &b| {
                        acc.wrapping_mul(31).wrapping_add(u32::from(b))
                    })
                });
            }
            b"event" => {
                event = match v {
                    b"started" => Event::Started,
                    b"completed" => Event::Completed,
                    b"stopped" => Event::Stopped,
                    // BEP 21's `paused` and an empty value are regular announces.
                    b"" | b"empty" | b"paused" => Event::None,
                    _ => return Err(QueryError::BadEvent),
                };
            }
            _ => {}
        }
    }
    let info_hash = info_hash.ok_or(QueryError::MissingInfoHash)?;
    let peer_id = peer_id.ok_or(QueryError::MissingPeerId)?;
    let port = port.ok_or(QueryError::MissingPort)?;
    Ok(HttpAnnounce {
        request: AnnounceRequest {
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer_id),
            port,
            uploaded,
            downloaded,
            left,
            event,
            numwant,
            key,
            tracker_id: None,
        },
        compact,
        no_peer_id,
    })
}

/// Parses a scrape query: every `info_hash` (none: the client asks for
/// all torrents, which swarm does not serve; the caller answers empty).
pub fn parse_scrape_query(query: &[u8]) -> Result<Vec<InfoHash>, QueryError> {
    let mut hashes = Vec::new();
    for (k, v) in params(query, SCRAPE_QUERY_LEN_MAX, SCRAPE_PARAMS_MAX)? {
        if k == b"info_hash" {
            if hashes.len() == SCRAPE_HASHES_MAX {
                return Err(QueryError::TooManyHashes);
            }
            hashes.push(InfoHash(decode_20(v).ok_or(QueryError::BadInfoHash)?));
        }
    }
    Ok(hashes)
}

/// The numbers of an announce response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AnnounceNumbers {
    pub interval: u32,
    pub min_interval: u32,
    pub complete: u32,
    pub incomplete: u32,
    pub downloaded: u32,
}

/// The peers of an announce response.
#[derive(Clone, Copy, Debug)]
pub enum PeerList<'a> {
    /// BEP 23: `peers` (6-byte records) or BEP 7 `peers6` (18-byte records).
    Compact { v6: bool, records: &'a [u8] },
    /// BEP 3's list of dictionaries (`ip`, `peer id` unless `None`, `port`),
    /// from the same compact records.
    Dictionary {
        v6: bool,
        records: &'a [u8],
        peer_ids: Option<&'a [[u8; 20]]>,
    },
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Writing to a Vec cannot fail.
    let _ = write!(VecWriter(out), "{}:", bytes.len());
    out.extend_from_slice(bytes);
}

fn put_int(out: &mut Vec<u8>, key: &str, value: u64) {
    put_bytes(out, key.as_bytes());
    let _ = write!(VecWriter(out), "i{value}e");
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends a canonical bencoded announce response to `out` (keys sorted:
/// complete, downloaded, incomplete, interval, min interval, peers|peers6).
/// IPv6 peers go in `peers6`, beside an empty `peers` (every client expects that key).
pub fn encode_announce_response(numbers: &AnnounceNumbers, peers: PeerList<'_>, out: &mut Vec<u8>) {
    out.push(b'd');
    put_int(out, "complete", u64::from(numbers.complete));
    put_int(out, "downloaded", u64::from(numbers.downloaded));
    put_int(out, "incomplete", u64::from(numbers.incomplete));
    put_int(out, "interval", u64::from(numbers.interval));
    put_int(out, "min interval", u64::from(numbers.min_interval));
    match peers {
        PeerList::Compact { v6: false, records } => {
            put_bytes(out, b"peers");
            put_bytes(out, records);
        }
        PeerList::Compact { v6: true, records } => {
            put_bytes(out, b"peers");
            put_bytes(out, b"");
            put_bytes(out, b"peers6");
            put_bytes(out, records);
        }
        PeerList::Dictionary {
            v6,
            records,
            peer_ids,
        } => {
            put_bytes(out, b"peers");
            out.push(b'l');
            let len = if v6 { 18 } else { 6 };
            for (i, r) in records.chunks_exact(len).enumerate() {
                let ip: IpAddr = if v6 {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&r[..16]);
                    a.into()
                } else {
                    [r[0], r[1], r[2], r[3]].into()
                };
                let port = u16::from_be_bytes([r[len - 2], r[len - 1]]);
                out.push(b'd');
                put_bytes(out, b"ip");
                put_bytes(out, ip.to_string().as_bytes());
                if let Some(id) = peer_ids.and_then(|ids| ids.get(i)) {
                    put_bytes(out, b"peer id");
                    put_bytes(out, id);
                }
                put_int(out, "port", u64::from(port));
                out.push(b'e');
            }
            out.push(b'e');
        }
    }
    out.push(b'e');
}

/// Appends `d14:failure reason…e` (the reason cut to [`FAILURE_LEN_MAX`] bytes).
pub fn encode_failure(reason: &str, out: &mut Vec<u8>) {
    let mut cut = reason.len().min(FAILURE_LEN_MAX);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push(b'd');
    put_bytes(out, b"failure reason");
    put_bytes(out, &reason.as_bytes()[..cut]);
    out.push(b'e');
}

/// One torrent's counts in a scrape response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrapeEntry {
    pub info_hash: InfoHash,
    pub complete: u32,
    pub downloaded: u32,
    pub incomplete: u32,
}

/// Appends a canonical scrape response (`files` keyed by info-hash, sorted,
/// each hash once) to `out`.
pub fn encode_scrape_response(entries: &[ScrapeEntry], out: &mut Vec<u8>) {
    let mut sorted: Vec<&ScrapeEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.info_hash);
    sorted.dedup_by_key(|e| e.info_hash);
    out.extend_from_slice(b"d5:filesd");
    for e in sorted {
        put_bytes(out, &e.info_hash.0);
        out.push(b'd');
        put_int(out, "complete", u64::from(e.complete));
        put_int(out, "downloaded", u64::from(e.downloaded));
        put_int(out, "incomplete", u64::from(e.incomplete));
        out.push(b'e');
    }
    out.extend_from_slice(b"ee");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_20_takes_escapes_and_raw_bytes() {
        let raw = b"%00%01abc%FF%fE+-._~01234567";
        let got = decode_20(&raw[..]).expect("20 bytes");
        assert_eq!(&got[..5], &[0, 1, b'a', b'b', b'c']);
        assert_eq!(got[5], 0xff);
        assert_eq!(got[6], 0xfe);
        assert_eq!(got[7], b'+');
        assert!(decode_20(b"%0").is_none());
        assert!(decode_20(b"%zz000000000000000000").is_none());
        assert!(decode_20(&[b'a'; 21]).is_none());
        assert!(decode_20(&[b'a'; 19]).is_none());
    }
}
