//! UDP tracker, server direction (BEP 15): request datagrams in, response
//! datagrams out.
//!
//! Hostile input: every length is checked before a field is read; an
//! announce may be longer than 98 bytes (BEP 41 options follow; libtorrent
//! sends the URL path there) and the tail is ignored; a scrape carries at
//! most [`SCRAPE_HASHES_MAX`] hashes and is borrowed from the datagram, not
//! copied. Nothing here allocates on the request path.

use super::super::udp::{
    ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_ERROR, ACTION_SCRAPE, ANNOUNCE_REQUEST_LEN,
    CONNECT_REQUEST_LEN, PROTOCOL_ID, SCRAPE_HASHES_MAX, SCRAPE_HEADER_LEN,
};
use crate::ids::{InfoHash, PeerId};
use crate::tracker::{AnnounceRequest, Event, ScrapeStats};

/// Longest error message sent, in bytes.
pub const ERROR_LEN_MAX: usize = 256;

/// A request datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UdpRequest<'a> {
    Connect {
        transaction_id: u32,
    },
    /// `request.tracker_id` is `None`; the IP field is ignored (the tracker
    /// uses the datagram's source address).
    Announce {
        connection_id: u64,
        transaction_id: u32,
        request: AnnounceRequest,
    },
    Scrape {
        connection_id: u64,
        transaction_id: u32,
        info_hashes: ScrapeHashes<'a>,
    },
}

/// The info-hashes of a scrape, borrowed from the datagram (1 to
/// [`SCRAPE_HASHES_MAX`] of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrapeHashes<'a>(&'a [u8]);

impl<'a> ScrapeHashes<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / 20
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = InfoHash> + 'a {
        self.0.chunks_exact(20).map(|c| {
            let mut h = [0u8; 20];
            h.copy_from_slice(c);
            InfoHash(h)
        })
    }
}

/// Why a datagram was not a request. `transaction_id` is known when the
/// datagram had one: the tracker can then answer with an error; without
/// it, the datagram is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct UdpRequestError {
    pub transaction_id: Option<u32>,
    pub kind: UdpRequestErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UdpRequestErrorKind {
    #[error("packet too short")]
    TooShort,
    #[error("bad protocol id")]
    BadProtocolId,
    #[error("unknown action")]
    UnknownAction,
    #[error("invalid event")]
    BadEvent,
    #[error("scrape of no or too many info-hashes")]
    BadScrapeLength,
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    (u64::from(be_u32(b, at)) << 32) | u64::from(be_u32(b, at + 4))
}

fn bytes20(b: &[u8], at: usize) -> [u8; 20] {
    let mut out = [0u8; 20];
    out.copy_from_slice(&b[at..at + 20]);
    out
}

/// Parses a request datagram.
pub fn parse_request(packet: &[u8]) -> Result<UdpRequest<'_>, UdpRequestError> {
    let err = |transaction_id, kind| UdpRequestError {
        transaction_id,
        kind,
    };
    if packet.len() < CONNECT_REQUEST_LEN {
        return Err(err(None, UdpRequestErrorKind::TooShort));
    }
    let connection_id = be_u64(packet, 0);
    let action = be_u32(packet, 8);
    let transaction_id = be_u32(packet, 12);
    let tid = Some(transaction_id);
    match action {
        ACTION_CONNECT => {
            if connection_id != PROTOCOL_ID {
                return Err(err(tid, UdpRequestErrorKind::BadProtocolId));
            }
            Ok(UdpRequest::Connect { transaction_id })
        }
        ACTION_ANNOUNCE => {
            if packet.len() < ANNOUNCE_REQUEST_LEN {
                return Err(err(tid, UdpRequestErrorKind::TooShort));
            }
            let event = match be_u32(packet, 80) {
                0 => Event::None,
                1 => Event::Completed,
                2 => Event::Started,
                3 => Event::Stopped,
                _ => return Err(err(tid, UdpRequestErrorKind::BadEvent)),
            };
            let numwant = be_u32(packet, 92) as i32;
            Ok(UdpRequest::Announce {
                connection_id,
                transaction_id,
                request: AnnounceRequest {
                    info_hash: InfoHash(bytes20(packet, 16)),
                    peer_id: PeerId(bytes20(packet, 36)),
                    downloaded: be_u64(packet, 56),
                    left: be_u64(packet, 64),
                    uploaded: be_u64(packet, 72),
                    event,
                    // 84..88: IP address, ignored.
                    key: be_u32(packet, 88),
                    numwant: u32::try_from(numwant).ok(),
                    port: u16::from_be_bytes([packet[96], packet[97]]),
                    tracker_id: None,
                },
            })
        }
        ACTION_SCRAPE => {
            let hashes = &packet[SCRAPE_HEADER_LEN..];
            if hashes.is_empty()
                || !hashes.len().is_multiple_of(20)
                || hashes.len() / 20 > SCRAPE_HASHES_MAX
            {
                return Err(err(tid, UdpRequestErrorKind::BadScrapeLength));
            }
            Ok(UdpRequest::Scrape {
                connection_id,
                transaction_id,
                info_hashes: ScrapeHashes(hashes),
            })
        }
        _ => Err(err(tid, UdpRequestErrorKind::UnknownAction)),
    }
}

/// Appends a connect response.
pub fn write_connect(out: &mut Vec<u8>, transaction_id: u32, connection_id: u64) {
    out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&connection_id.to_be_bytes());
}

/// Appends an announce response: `records` are compact peers of the
/// request's family (6 or 18 bytes each).
pub fn write_announce(
    out: &mut Vec<u8>,
    transaction_id: u32,
    interval: u32,
    leechers: u32,
    seeders: u32,
    records: &[u8],
) {
    out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&interval.to_be_bytes());
    out.extend_from_slice(&leechers.to_be_bytes());
    out.extend_from_slice(&seeders.to_be_bytes());
    out.extend_from_slice(records);
}

/// Appends a scrape response, one record per requested hash, in order.
pub fn write_scrape(
    out: &mut Vec<u8>,
    transaction_id: u32,
    stats: impl IntoIterator<Item = ScrapeStats>,
) {
    out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    for s in stats {
        out.extend_from_slice(&s.complete.to_be_bytes());
        out.extend_from_slice(&s.downloaded.to_be_bytes());
        out.extend_from_slice(&s.incomplete.to_be_bytes());
    }
}

/// Appends an error response (the message cut to [`ERROR_LEN_MAX`] bytes).
pub fn write_error(out: &mut Vec<u8>, transaction_id: u32, message: &str) {
    out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&message.as_bytes()[..message.len().min(ERROR_LEN_MAX)]);
}
