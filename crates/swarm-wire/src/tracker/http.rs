//! HTTP tracker messages (BEP 3), sans-IO: the announce and scrape URLs a
//! client requests, and the bencoded responses it gets back.
//!
//! Binary values (`info_hash`, `peer_id`) are percent-encoded byte by byte:
//! every byte outside RFC 3986's unreserved set becomes `%XX`, which every
//! tracker decodes back to the same 20 bytes.

use std::fmt::Write as _;

use super::AnnounceRequest;

/// Appends `bytes` percent-encoded (unreserved characters kept) to `out`.
pub fn percent_encode_into(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
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
    percent_encode_into(&request.info_hash, &mut url);
    url.push_str("&peer_id=");
    percent_encode_into(&request.peer_id, &mut url);
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
pub fn scrape_url(announce_url: &str, info_hashes: &[[u8; 20]]) -> Option<String> {
    let mut url = scrape_base_url(announce_url)?;
    let mut sep = query_separator(&url);
    for hash in info_hashes {
        url.push(sep);
        url.push_str("info_hash=");
        percent_encode_into(hash, &mut url);
        sep = '&';
    }
    Some(url)
}
