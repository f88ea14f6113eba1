//! BEP 9 `ut_metadata` messages: how peers hand each other a torrent's info
//! dictionary (the metadata a magnet link lacks), in 16 KiB pieces.
//!
//! Each message is a BEP 10 extended message whose payload is a bencoded
//! dictionary (`msg_type`: 0 request, 1 data, 2 reject; `piece`; and for data
//! `total_size`); a data message's piece follows the dictionary as raw bytes.
//!
//! Limits: the payload is already bounded by the frame decoder
//! ([`super::EXTENDED_PAYLOAD_LEN_MAX`]); a data message's piece may not
//! exceed [`METADATA_PIECE_LEN`]. What a `total_size` may be is the fetcher's
//! business (`swarm_engine::metadata::METADATA_SIZE_MAX`), not the codec's.
//! The piece bytes share the payload's allocation (no copy).

use bytes::Bytes;

use super::WireError;
use crate::bencode;
use crate::bencode::{put_bytes, put_int};

/// The extension's name in a BEP 10 handshake's `m`.
pub const UT_METADATA: &str = "ut_metadata";
/// Bytes in every metadata piece but the last.
pub const METADATA_PIECE_LEN: usize = 16 * 1024;

const MSG_REQUEST: i64 = 0;
const MSG_DATA: i64 = 1;
const MSG_REJECT: i64 = 2;

/// One `ut_metadata` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataMessage {
    /// Send me piece `piece` of the info dictionary.
    Request { piece: u32 },
    /// Piece `piece` of an info dictionary of `total_size` bytes.
    Data {
        piece: u32,
        total_size: u64,
        data: Bytes,
    },
    /// I will not send piece `piece` (I do not have the metadata, or I limit
    /// requests).
    Reject { piece: u32 },
}

impl MetadataMessage {
    pub fn piece(&self) -> u32 {
        match self {
            MetadataMessage::Request { piece }
            | MetadataMessage::Data { piece, .. }
            | MetadataMessage::Reject { piece } => *piece,
        }
    }

    /// The extended message payload (after the extended id byte).
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(64);
        // Keys in byte order: msg_type, piece, total_size.
        out.push(b'd');
        put_bytes(&mut out, b"msg_type");
        let msg_type = match self {
            MetadataMessage::Request { .. } => MSG_REQUEST,
            MetadataMessage::Data { .. } => MSG_DATA,
            MetadataMessage::Reject { .. } => MSG_REJECT,
        };
        put_int(&mut out, msg_type);
        put_bytes(&mut out, b"piece");
        put_int(&mut out, i64::from(self.piece()));
        if let MetadataMessage::Data {
            total_size, data, ..
        } = self
        {
            put_bytes(&mut out, b"total_size");
            put_int(&mut out, i64::try_from(*total_size).unwrap_or(i64::MAX));
            out.push(b'e');
            out.extend_from_slice(data);
        } else {
            out.push(b'e');
        }
        Bytes::from(out)
    }

    /// Parses an extended message payload. Unsorted keys and unknown keys
    /// are accepted (clients add some); an unknown `msg_type`, a missing or
    /// out-of-range `piece`, a data message without `total_size` or with
    /// more than [`METADATA_PIECE_LEN`] bytes, or bytes after a request or
    /// reject are errors (BEP 9 says to ignore unknown message types: the
    /// caller may ignore the error instead of dropping the peer).
    pub fn decode(payload: &Bytes) -> Result<Self, WireError> {
        let (dict, dict_len) = bencode::decode_lenient_prefix(payload).map_err(bad)?;
        if dict.as_dict().is_none() {
            return Err(bad("not a dictionary"));
        }
        let int = |key: &[u8]| dict.get(key).and_then(|v| v.as_int());
        let piece = int(b"piece")
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| bad("no valid `piece`"))?;
        let rest = payload.len() - dict_len;
        match int(b"msg_type") {
            Some(MSG_REQUEST) | Some(MSG_REJECT) if rest != 0 => {
                Err(bad(format!("{rest} bytes after a request or reject")))
            }
            Some(MSG_REQUEST) => Ok(MetadataMessage::Request { piece }),
            Some(MSG_REJECT) => Ok(MetadataMessage::Reject { piece }),
            Some(MSG_DATA) => {
                let total_size = int(b"total_size")
                    .and_then(|t| u64::try_from(t).ok())
                    .ok_or_else(|| bad("data without a valid `total_size`"))?;
                if rest > METADATA_PIECE_LEN {
                    return Err(bad(format!(
                        "data piece of {rest} bytes (at most {METADATA_PIECE_LEN})"
                    )));
                }
                Ok(MetadataMessage::Data {
                    piece,
                    total_size,
                    data: payload.slice(dict_len..),
                })
            }
            Some(other) => Err(bad(format!("unknown msg_type {other}"))),
            None => Err(bad("no `msg_type`")),
        }
    }
}

fn bad(why: impl std::fmt::Display) -> WireError {
    WireError::BadExtensionMessage {
        extension: UT_METADATA,
        why: why.to_string(),
    }
}
