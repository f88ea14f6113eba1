//! The peer wire protocol (BEP 3), with the fast extension (BEP 6), the
//! extension protocol (BEP 10) and two extensions over it: metadata exchange
//! (BEP 9, [`MetadataMessage`]) and peer exchange (BEP 11, [`PexMessage`]).
//! The DHT port message (BEP 5) is [`Message::Port`].
//!
//! Framing is sans-IO: the driver feeds received bytes in and gets whole
//! messages out. Every length is checked against hard limits before any
//! allocation the remote peer could choose.

mod codec;
mod extended;
mod handshake;
mod metadata;
mod pex;

pub use codec::{
    EXTENDED_HEADER_LEN_MAX, EXTENDED_PAYLOAD_LEN_MAX, LEN_PREFIX_LEN, MessageDecoder,
    PIECE_HEADER_LEN, PIECE_MSG_LEN_MAX, encode_piece_header, id, take_rider,
};
pub use extended::{
    CLIENT_NAME_LEN_MAX, EXTENDED_HANDSHAKE_ID, EXTENSION_NAME_LEN_MAX, EXTENSIONS_MAX,
    ExtendedHandshake,
};
pub use handshake::{HANDSHAKE_LEN, Handshake, PROTOCOL};
pub use metadata::{METADATA_PIECE_LEN, MetadataMessage, UT_METADATA};
pub use pex::{PEX_ADDED_MAX, PEX_DECODE_ADDRS_MAX, PEX_DROPPED_MAX, PexFlags, PexMessage, UT_PEX};

/// Why a peer's bytes were refused. Every variant means: drop the connection
/// and log the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("handshake: not the BitTorrent protocol")]
    BadProtocol,
    #[error("message (id {id:?}) of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLong {
        id: Option<u8>,
        len: usize,
        max: usize,
    },
    #[error("bitfield of {len} bytes, but the torrent needs at most {max}")]
    BitfieldTooLong { len: usize, max: usize },
    #[error("message id {id} has length {len}, expected {expected}")]
    BadLength { id: u8, len: usize, expected: usize },
    #[error("bad extension handshake: {0}")]
    BadExtendedHandshake(String),
    #[error("bad {extension} message: {why}")]
    BadExtensionMessage {
        extension: &'static str,
        why: String,
    },
}

/// Length of one block request: 16 KiB, the size every client uses.
pub const BLOCK_LEN: u32 = 16 * 1024;

/// One peer wire message (after the handshake).
///
/// `Piece` carries its block as `bytes::Bytes` so a received block can move
/// to the disk writer without a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have {
        piece: u32,
    },
    /// Raw bitfield bytes, high bit first; the receiver validates its length
    /// and spare bits against the torrent.
    Bitfield(bytes::Bytes),
    Request {
        piece: u32,
        offset: u32,
        length: u32,
    },
    Piece {
        piece: u32,
        offset: u32,
        data: bytes::Bytes,
    },
    Cancel {
        piece: u32,
        offset: u32,
        length: u32,
    },
    /// BEP 5: the sender's DHT port.
    Port(u16),
    // BEP 6 fast extension
    HaveAll,
    HaveNone,
    SuggestPiece {
        piece: u32,
    },
    RejectRequest {
        piece: u32,
        offset: u32,
        length: u32,
    },
    AllowedFast {
        piece: u32,
    },
    /// BEP 10: extended message `id` (0 = the extension handshake) and its raw payload.
    Extended {
        id: u8,
        payload: bytes::Bytes,
    },
}
