//! The UDP tracker protocol (BEP 15), sans-IO: packets in, packets out.
//!
//! A client first `connect`s to get a connection id (valid one minute), then
//! sends `announce` or `scrape` with it. Every request carries a transaction
//! id the response must echo; matching them, timing and retransmission are the
//! client driver's job. Responses are checked strictly: each action has an
//! exact length (or an exact record size) and anything else is refused.

use std::net::SocketAddr;

use crate::ids::InfoHash;

use super::{
    AnnounceRequest, AnnounceResponse, COMPACT_PEER_V4_LEN, COMPACT_PEER_V6_LEN, ScrapeStats,
    TrackerResponseError, bounded_text, parse_compact_v4, parse_compact_v6,
};

/// The magic constant a connect request starts with.
pub const PROTOCOL_ID: u64 = 0x41727101980;
pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;

pub const CONNECT_REQUEST_LEN: usize = 16;
pub const CONNECT_RESPONSE_LEN: usize = 16;
pub const ANNOUNCE_REQUEST_LEN: usize = 98;
/// Announce response bytes before the peer list.
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
/// Scrape request and response bytes before the per-torrent records.
pub const SCRAPE_HEADER_LEN: usize = 16;
pub const SCRAPE_RESPONSE_HEADER_LEN: usize = 8;
pub const SCRAPE_RECORD_LEN: usize = 12;
/// Info-hashes per scrape request: BEP 15 says about 74 fit a safe datagram.
pub const SCRAPE_HASHES_MAX: usize = 74;
/// Largest datagram a tracker may send us; bigger ones are truncated by the
/// receive buffer and then refused by the length checks.
pub const PACKET_LEN_MAX: usize = 8192;

/// A request to a UDP tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Connect {
        transaction_id: u32,
    },
    Announce {
        connection_id: u64,
        transaction_id: u32,
        request: &'a AnnounceRequest,
    },
    Scrape {
        connection_id: u64,
        transaction_id: u32,
        info_hashes: &'a [InfoHash],
    },
}

impl Request<'_> {
    /// The datagram to send.
    ///
    /// Panics if a scrape asks for more than [`SCRAPE_HASHES_MAX`] hashes
    /// (a caller bug: split the list).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Request::Connect { transaction_id } => {
                let mut out = Vec::with_capacity(CONNECT_REQUEST_LEN);
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out
            }
            Request::Announce {
                connection_id,
                transaction_id,
                request,
            } => {
                let mut out = Vec::with_capacity(ANNOUNCE_REQUEST_LEN);
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                out.extend_from_slice(request.info_hash.as_bytes());
                out.extend_from_slice(request.peer_id.as_bytes());
                out.extend_from_slice(&request.downloaded.to_be_bytes());
                out.extend_from_slice(&request.left.to_be_bytes());
                out.extend_from_slice(&request.uploaded.to_be_bytes());
                out.extend_from_slice(&request.event.udp_code().to_be_bytes());
                // IP address 0: the tracker uses the packet's source address.
                out.extend_from_slice(&0u32.to_be_bytes());
                out.extend_from_slice(&request.key.to_be_bytes());
                // num_want -1: the tracker's default.
                let numwant = request
                    .numwant
                    .map_or(-1i32, |n| i32::try_from(n).unwrap_or(i32::MAX));
                out.extend_from_slice(&numwant.to_be_bytes());
                out.extend_from_slice(&request.port.to_be_bytes());
                debug_assert_eq!(out.len(), ANNOUNCE_REQUEST_LEN);
                out
            }
            Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                assert!(
                    info_hashes.len() <= SCRAPE_HASHES_MAX,
                    "scrape of {} hashes; split it",
                    info_hashes.len()
                );
                let mut out = Vec::with_capacity(SCRAPE_HEADER_LEN + 20 * info_hashes.len());
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for hash in info_hashes.iter() {
                    out.extend_from_slice(hash.as_bytes());
                }
                out
            }
        }
    }
}

/// A response from a UDP tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    /// `interval`, `complete` (seeders), `incomplete` (leechers) and `peers`
    /// are filled; BEP 15 has no min interval, warning or tracker id.
    Announce {
        transaction_id: u32,
        response: AnnounceResponse,
    },
    /// One record per requested info-hash, in request order.
    Scrape {
        transaction_id: u32,
        stats: Vec<ScrapeStats>,
    },
    Error {
        transaction_id: u32,
        message: String,
    },
}

impl Response {
    /// The transaction id the response echoes.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Response::Connect { transaction_id, .. }
            | Response::Announce { transaction_id, .. }
            | Response::Scrape { transaction_id, .. }
            | Response::Error { transaction_id, .. } => *transaction_id,
        }
    }

    /// Parses a datagram. `peer_addr_is_v6`: the announce was sent over IPv6,
    /// so its peers are 18-byte records (BEP 15 ties the record format to
    /// the address family of the socket).
    pub fn parse(packet: &[u8], peer_addr_is_v6: bool) -> Result<Response, TrackerResponseError> {
        if packet.len() < 8 {
            return Err(malformed(format!("{}-byte packet", packet.len())));
        }
        let action = be_u32(&packet[0..4]);
        let transaction_id = be_u32(&packet[4..8]);
        match action {
            ACTION_CONNECT => {
                if packet.len() != CONNECT_RESPONSE_LEN {
                    return Err(malformed(format!(
                        "connect response of {} bytes, expected {CONNECT_RESPONSE_LEN}",
                        packet.len()
                    )));
                }
                Ok(Response::Connect {
                    transaction_id,
                    connection_id: be_u64(&packet[8..16]),
                })
            }
            ACTION_ANNOUNCE => {
                if packet.len() < ANNOUNCE_RESPONSE_HEADER_LEN {
                    return Err(malformed(format!(
                        "announce response of {} bytes, expected at least {ANNOUNCE_RESPONSE_HEADER_LEN}",
                        packet.len()
                    )));
                }
                let mut peers: Vec<SocketAddr> = Vec::new();
                let list = &packet[ANNOUNCE_RESPONSE_HEADER_LEN..];
                if peer_addr_is_v6 {
                    parse_compact_v6(list, &mut peers)?;
                } else {
                    parse_compact_v4(list, &mut peers)?;
                }
                Ok(Response::Announce {
                    transaction_id,
                    response: AnnounceResponse {
                        interval: be_u32(&packet[8..12]),
                        incomplete: Some(be_u32(&packet[12..16])),
                        complete: Some(be_u32(&packet[16..20])),
                        peers,
                        ..AnnounceResponse::default()
                    },
                })
            }
            ACTION_SCRAPE => {
                let records = &packet[SCRAPE_RESPONSE_HEADER_LEN..];
                if !records.len().is_multiple_of(SCRAPE_RECORD_LEN) {
                    return Err(malformed(format!(
                        "scrape response records of {} bytes, not a multiple of {SCRAPE_RECORD_LEN}",
                        records.len()
                    )));
                }
                let stats = records
                    .chunks_exact(SCRAPE_RECORD_LEN)
                    .map(|r| ScrapeStats {
                        complete: be_u32(&r[0..4]),
                        downloaded: be_u32(&r[4..8]),
                        incomplete: be_u32(&r[8..12]),
                    })
                    .collect();
                Ok(Response::Scrape {
                    transaction_id,
                    stats,
                })
            }
            ACTION_ERROR => Ok(Response::Error {
                transaction_id,
                message: bounded_text(&packet[8..]),
            }),
            other => Err(malformed(format!("unknown action {other}"))),
        }
    }
}

/// Checks that a parsed response answers the request: same transaction id
/// and, for success, the same action. An `Error` response becomes
/// [`TrackerResponseError::Failure`].
pub fn expect_action(
    response: Response,
    transaction_id: u32,
    action: u32,
) -> Result<Response, TrackerResponseError> {
    if response.transaction_id() != transaction_id {
        return Err(malformed(format!(
            "transaction id {:#x}, expected {transaction_id:#x}",
            response.transaction_id()
        )));
    }
    let got = match &response {
        Response::Connect { .. } => ACTION_CONNECT,
        Response::Announce { .. } => ACTION_ANNOUNCE,
        Response::Scrape { .. } => ACTION_SCRAPE,
        Response::Error { message, .. } => {
            return Err(TrackerResponseError::Failure(message.clone()));
        }
    };
    if got != action {
        return Err(malformed(format!("action {got}, expected {action}")));
    }
    Ok(response)
}

fn malformed(why: String) -> TrackerResponseError {
    TrackerResponseError::Malformed(format!("udp tracker: {why}"))
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Peers per announce response that fit [`PACKET_LEN_MAX`], for each family.
pub const fn peers_per_packet_max(v6: bool) -> usize {
    let rec = if v6 {
        COMPACT_PEER_V6_LEN
    } else {
        COMPACT_PEER_V4_LEN
    };
    (PACKET_LEN_MAX - ANNOUNCE_RESPONSE_HEADER_LEN) / rec
}
