//! HTTP tracker messages (BEP 3), sans-IO: the announce and scrape URLs a
//! client requests, and the bencoded responses it gets back.
//!
//! Binary values (`info_hash`, `peer_id`) are percent-encoded byte by byte:
//! every byte outside RFC 3986's unreserved set becomes `%XX`, which every
//! tracker decodes back to the same 20 bytes.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::{
    AnnounceRequest, AnnounceResponse, MESSAGE_LEN_MAX, PEERS_MAX, ScrapeStats,
    TrackerResponseError, bounded_text, parse_compact_v4, parse_compact_v6,
};
use crate::bencode::{self, Kind};
use crate::ids::{self, InfoHash, QUERY_VALUE};

/// Appends `bytes` percent-encoded (unreserved characters kept) to `out`.
pub fn percent_encode_into(bytes: &[u8], out: &mut String) {
    ids::percent_encode_into(bytes, QUERY_VALUE, out);
}

pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    percent_encode_into(bytes, &mut out);
    out
}

/// `?` or `&`: announce URLs may already carry a query (private trackers put
/// a passkey there).
fn query_separator(url: &str) -> char {
    if url.contains('?') { '&' } else { '?' }
}

/// The full announce URL for `request` on tracker `announce_url`.
///
/// Always asks for `compact=1` (BEP 23); dictionary-form responses are still
/// understood for trackers that ignore it.
pub fn announce_url(announce_url: &str, request: &AnnounceRequest) -> String {
    let mut url = String::with_capacity(announce_url.len() + 256);
    url.push_str(announce_url);
    url.push(query_separator(announce_url));
    url.push_str("info_hash=");
    percent_encode_into(request.info_hash.as_bytes(), &mut url);
    url.push_str("&peer_id=");
    percent_encode_into(request.peer_id.as_bytes(), &mut url);
    let _ = write!(
        url,
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1",
        request.port, request.uploaded, request.downloaded, request.left
    );
    if let Some(event) = request.event.http_name() {
        let _ = write!(url, "&event={event}");
    }
    if let Some(numwant) = request.numwant {
        let _ = write!(url, "&numwant={numwant}");
    }
    let _ = write!(url, "&key={:08X}", request.key);
    if let Some(id) = &request.tracker_id {
        url.push_str("&trackerid=");
        percent_encode_into(id, &mut url);
    }
    url
}

/// The scrape URL of an announce URL, by the convention of BEP 48: the last
/// path segment must start with `announce`, which becomes `scrape`. `None`
/// when the tracker has no scrape URL by that convention.
pub fn scrape_base_url(announce_url: &str) -> Option<String> {
    let (path_part, query) = match announce_url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (announce_url, None),
    };
    let slash = path_part.rfind('/')?;
    let last = &path_part[slash + 1..];
    let rest = last.strip_prefix("announce")?;
    let mut url = format!("{}scrape{rest}", &path_part[..=slash]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Some(url)
}

/// The scrape URL for `info_hashes` on the tracker whose announce URL is
/// `announce_url`, or `None` if it has no scrape URL (see [`scrape_base_url`]).
pub fn scrape_url(announce_url: &str, info_hashes: &[InfoHash]) -> Option<String> {
    let mut url = scrape_base_url(announce_url)?;
    let mut sep = query_separator(&url);
    for hash in info_hashes {
        url.push(sep);
        url.push_str("info_hash=");
        percent_encode_into(hash.as_bytes(), &mut url);
        sep = '&';
    }
    Some(url)
}

/// Parses an announce response body: `failure reason` becomes
/// [`TrackerResponseError::Failure`]; peers may be compact (BEP 23), `peers6`
/// (BEP 7) or the original list of dictionaries (`ip`, `port`; entries whose
/// `ip` is a host name, not an address, are skipped: resolving is IO).
pub fn parse_announce_response(body: &[u8]) -> Result<AnnounceResponse, TrackerResponseError> {
    // Lenient: real trackers send dictionaries with unsorted keys.
    let dict = bencode::decode_lenient(body).map_err(malformed)?;
    if dict.as_dict().is_none() {
        return Err(malformed("not a dictionary"));
    }
    if let Some(reason) = dict.get(b"failure reason") {
        let text = reason
            .as_bytes()
            .ok_or_else(|| malformed("failure reason is not a string"))?;
        return Err(TrackerResponseError::Failure(bounded_text(text)));
    }
    let int = |key: &[u8]| -> Result<Option<u32>, TrackerResponseError> {
        match dict.get(key) {
            None => Ok(None),
            Some(v) => {
                let i = v.as_int().ok_or_else(|| {
                    malformed(format!(
                        "{} is not an integer",
                        String::from_utf8_lossy(key)
                    ))
                })?;
                // Negative or absurd counts are clamped, not fatal: some
                // trackers send -1 for "unknown".
                Ok(Some(i.clamp(0, i64::from(u32::MAX)) as u32))
            }
        }
    };
    let interval = int(b"interval")?.ok_or_else(|| malformed("no interval"))?;
    let mut response = AnnounceResponse {
        interval,
        min_interval: int(b"min interval")?,
        complete: int(b"complete")?,
        incomplete: int(b"incomplete")?,
        tracker_id: dict
            .get(b"tracker id")
            .and_then(|v| v.as_bytes())
            .map(|b| b[..b.len().min(MESSAGE_LEN_MAX)].to_vec()),
        warning: dict
            .get(b"warning message")
            .and_then(|v| v.as_bytes())
            .map(bounded_text),
        peers: Vec::new(),
    };
    match dict.get(b"peers").map(|v| v.kind()) {
        None => {}
        Some(Kind::Bytes(compact)) => parse_compact_v4(compact, &mut response.peers)?,
        Some(Kind::List(entries)) => {
            for entry in entries {
                if response.peers.len() >= PEERS_MAX {
                    break;
                }
                if entry.as_dict().is_none() {
                    return Err(malformed("peer entry is not a dictionary"));
                }
                let ip = entry.get(b"ip").and_then(|v| v.as_bytes());
                let port = entry.get(b"port").and_then(|v| v.as_int());
                let (Some(ip), Some(port)) = (ip, port) else {
                    return Err(malformed("peer entry without ip or port"));
                };
                let port = u16::try_from(port).map_err(|_| malformed("peer port out of range"))?;
                let ip = std::str::from_utf8(ip)
                    .ok()
                    .and_then(|s| s.parse::<IpAddr>().ok());
                if let Some(ip) = ip {
                    response.peers.push(SocketAddr::new(ip, port));
                }
            }
        }
        Some(_) => return Err(malformed("peers is neither a string nor a list")),
    }
    match dict.get(b"peers6").map(|v| v.kind()) {
        None => {}
        Some(Kind::Bytes(compact)) => parse_compact_v6(compact, &mut response.peers)?,
        Some(_) => return Err(malformed("peers6 is not a string")),
    }
    Ok(response)
}

/// Parses a scrape response and returns the counts of `info_hash`
/// (`files` → info-hash → `complete`, `downloaded`, `incomplete`). A tracker
/// that does not list the torrent reports it with zero peers.
pub fn parse_scrape_response(
    body: &[u8],
    info_hash: &InfoHash,
) -> Result<ScrapeStats, TrackerResponseError> {
    // Lenient: real trackers send dictionaries with unsorted keys.
    let dict = bencode::decode_lenient(body).map_err(malformed)?;
    if dict.as_dict().is_none() {
        return Err(malformed("not a dictionary"));
    }
    if let Some(reason) = dict.get(b"failure reason") {
        let text = reason
            .as_bytes()
            .ok_or_else(|| malformed("failure reason is not a string"))?;
        return Err(TrackerResponseError::Failure(bounded_text(text)));
    }
    let files = dict
        .get(b"files")
        .filter(|v| v.as_dict().is_some())
        .ok_or_else(|| malformed("no files dictionary"))?;
    let Some(entry) = files.get(info_hash.as_bytes()) else {
        return Ok(ScrapeStats::default());
    };
    if entry.as_dict().is_none() {
        return Err(malformed("files entry is not a dictionary"));
    }
    let count = |key: &[u8]| {
        entry
            .get(key)
            .and_then(|v| v.as_int())
            .map_or(0, |i| i.clamp(0, i64::from(u32::MAX)) as u32)
    };
    Ok(ScrapeStats {
        complete: count(b"complete"),
        downloaded: count(b"downloaded"),
        incomplete: count(b"incomplete"),
    })
}

fn malformed(why: impl std::fmt::Display) -> TrackerResponseError {
    TrackerResponseError::Malformed(format!("http tracker: {why}"))
}
