//! Tracker messages, sans-IO: what a client sends to a tracker and what it
//! gets back.
//!
//! - [`http`]: HTTP announce and scrape (BEP 3, compact peers per BEP 23,
//!   `peers6` per BEP 7, scrape URL convention of BEP 48).
//! - [`udp`]: the UDP tracker protocol (BEP 15).
//! - [`server`]: the other direction, for swarm's tracker: requests in, responses out.
//!
//! Both parse into the same [`AnnounceResponse`] so the tracker client above
//! does not care which transport answered.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::ids::{InfoHash, PeerId};

pub mod http;
pub mod server;
pub mod udp;

/// Bytes of one compact IPv4 peer (BEP 23): 4 address + 2 port.
pub const COMPACT_PEER_V4_LEN: usize = 6;
/// Bytes of one compact IPv6 peer (BEP 7): 16 address + 2 port.
pub const COMPACT_PEER_V6_LEN: usize = 18;
/// Peers kept from one response. A tracker cannot make us hold more; real
/// trackers send 50-200.
pub const PEERS_MAX: usize = 2000;
/// Longest failure / warning text kept, in bytes.
pub const MESSAGE_LEN_MAX: usize = 1024;

/// The `event` of an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Event {
    /// A regular re-announce.
    #[default]
    None,
    Started,
    Completed,
    Stopped,
}

impl Event {
    /// The HTTP `event=` value; `None` for a regular announce (parameter omitted).
    pub fn http_name(self) -> Option<&'static str> {
        match self {
            Event::None => None,
            Event::Started => Some("started"),
            Event::Completed => Some("completed"),
            Event::Stopped => Some("stopped"),
        }
    }

    /// The BEP 15 event code.
    pub fn udp_code(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }
}

/// What a client tells the tracker in an announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    /// Peers wanted; `None` lets the tracker choose (typically 50).
    pub numwant: Option<u32>,
    /// Random per-session key that lets a tracker recognise us across IP changes.
    pub key: u32,
    /// HTTP only: the `tracker id` a previous response gave us.
    pub tracker_id: Option<Vec<u8>>,
}

/// What an announce returned (either transport).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// Seconds until the next regular announce.
    pub interval: u32,
    /// Seconds the tracker wants at least between announces (HTTP only).
    pub min_interval: Option<u32>,
    /// HTTP only: send this back as `trackerid` in later announces.
    pub tracker_id: Option<Vec<u8>>,
    /// Seeders, if the tracker said.
    pub complete: Option<u32>,
    /// Leechers, if the tracker said.
    pub incomplete: Option<u32>,
    /// HTTP only: a warning; the announce still succeeded.
    pub warning: Option<String>,
    /// IPv4 and IPv6 peers, in the tracker's order, at most [`PEERS_MAX`].
    pub peers: Vec<SocketAddr>,
}

/// One torrent's counts in a scrape response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Seeders.
    pub complete: u32,
    /// Completed downloads ever reported.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}

/// Why a tracker response was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrackerResponseError {
    /// The tracker answered with an error (`failure reason` or a BEP 15 error
    /// packet): try another tracker of the tier.
    #[error("tracker failure: {0}")]
    Failure(String),
    /// The response was not what the protocol allows: treat the tracker as down.
    #[error("malformed tracker response: {0}")]
    Malformed(String),
}

/// Appends compact IPv4 peers from `bytes` (length a multiple of 6).
pub fn parse_compact_v4(
    bytes: &[u8],
    out: &mut Vec<SocketAddr>,
) -> Result<(), TrackerResponseError> {
    if !bytes.len().is_multiple_of(COMPACT_PEER_V4_LEN) {
        return Err(TrackerResponseError::Malformed(format!(
            "compact peers: {} bytes is not a multiple of {COMPACT_PEER_V4_LEN}",
            bytes.len()
        )));
    }
    for chunk in bytes.chunks_exact(COMPACT_PEER_V4_LEN) {
        if out.len() >= PEERS_MAX {
            break;
        }
        let ip = Ipv4Addr::new(chunk[0], chunk[1], chunk[2], chunk[3]);
        let port = u16::from_be_bytes([chunk[4], chunk[5]]);
        out.push(SocketAddr::V4(SocketAddrV4::new(ip, port)));
    }
    Ok(())
}

/// Appends compact IPv6 peers from `bytes` (length a multiple of 18).
pub fn parse_compact_v6(
    bytes: &[u8],
    out: &mut Vec<SocketAddr>,
) -> Result<(), TrackerResponseError> {
    if !bytes.len().is_multiple_of(COMPACT_PEER_V6_LEN) {
        return Err(TrackerResponseError::Malformed(format!(
            "compact peers6: {} bytes is not a multiple of {COMPACT_PEER_V6_LEN}",
            bytes.len()
        )));
    }
    for chunk in bytes.chunks_exact(COMPACT_PEER_V6_LEN) {
        if out.len() >= PEERS_MAX {
            break;
        }
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&chunk[..16]);
        let port = u16::from_be_bytes([chunk[16], chunk[17]]);
        out.push(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(octets),
            port,
            0,
            0,
        )));
    }
    Ok(())
}

/// Truncates tracker-supplied text to [`MESSAGE_LEN_MAX`] bytes, lossily decoded.
pub(crate) fn bounded_text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MESSAGE_LEN_MAX)];
    String::from_utf8_lossy(cut).into_owned()
}
