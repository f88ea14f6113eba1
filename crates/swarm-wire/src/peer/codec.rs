//! Encoding and framing of peer wire messages (BEP 3, BEP 6, BEP 10).
//!
//! Every message after the handshake is `<len: u32 BE><id: u8><payload>`
//! (`len` = 0 is a keep-alive). The decoder reads the length, then checks it
//! against a hard limit for that message id *before* it waits for (or reserves
//! room for) the body: a peer can never make us allocate more than one block
//! plus a small header, or a bitfield longer than the torrent needs.
//!
//! Unknown message ids are *skipped*, not errors: newer BEPs add messages
//! (BEP 52's hash request / hashes / hash reject, 21-23) and peers send some
//! of them without negotiation; libtorrent and Transmission ignore ids they do
//! not know too. A skipped message must still fit the general limit, so
//! skipping costs at most one bounded buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{BLOCK_LEN, Message, WireError};

/// Message ids on the wire.
pub mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    pub const PORT: u8 = 9;
    pub const SUGGEST_PIECE: u8 = 13;
    pub const HAVE_ALL: u8 = 14;
    pub const HAVE_NONE: u8 = 15;
    pub const REJECT_REQUEST: u8 = 16;
    pub const ALLOWED_FAST: u8 = 17;
    pub const EXTENDED: u8 = 20;
}

/// Bytes of the length prefix.
pub const LEN_PREFIX_LEN: usize = 4;
/// Bytes of a `piece` message before its block: id, piece index, offset.
pub const PIECE_HEADER_LEN: usize = 1 + 4 + 4;
/// Longest `piece` message body (id included): one 16 KiB block plus header.
/// Also the limit for messages with an unknown id.
pub const PIECE_MSG_LEN_MAX: usize = PIECE_HEADER_LEN + BLOCK_LEN as usize;
/// Room for the bencoded dictionary in front of a BEP 9 `ut_metadata` data
/// message's 16 KiB piece (`d8:msg_typei1e5:piecei0e10:total_sizei..ee` is
/// under 60 bytes; the slack covers extra keys some clients add).
pub const EXTENDED_HEADER_LEN_MAX: usize = 1024;
/// Longest BEP 10 extended message payload (after id and extended id).
pub const EXTENDED_PAYLOAD_LEN_MAX: usize = BLOCK_LEN as usize + EXTENDED_HEADER_LEN_MAX;

/// Takes out of a send queue the next message that may ride ahead of the
/// ones before it ([`Message::rides_ahead`]), scanning from `*from` and
/// stopping at the first message that [`Message::opens`]; `*from` is left
/// where the next call resumes. Call it until it returns `None` to take the
/// riders in order. Generic over the queue's message type so that swarm's
/// writer and its simulator (which queues a compact form) share the rule.
pub fn take_rider<T>(
    queue: &mut std::collections::VecDeque<T>,
    from: &mut usize,
    rides_ahead: impl Fn(&T) -> bool,
    opens: impl Fn(&T) -> bool,
) -> Option<T> {
    while let Some(m) = queue.get(*from) {
        if rides_ahead(m) {
            return queue.remove(*from);
        }
        if opens(m) {
            return None;
        }
        *from += 1;
    }
    None
}

impl Message {
    /// Whether a sender may let this message overtake what it has queued
    /// (not yet written) on the same connection: messages about what the
    /// sender downloads (request, cancel, interested, not interested,
    /// keep-alive) have nothing to do with the blocks it uploads, and a
    /// request stuck behind them starves the sender's own download. The
    /// rest keeps its order: choke, unchoke, rejects and haves are about
    /// what it uploads (a have overtaking blocks made the simulator's
    /// super-seeded 1,000-peer flash crowd 1.099-1.112x the bound instead
    /// of 1.084-1.094x: its offers outran its pieces). Riders keep their
    /// own order and never overtake a message that [`Self::opens`].
    pub fn rides_ahead(&self) -> bool {
        matches!(
            self,
            Message::Request { .. }
                | Message::Cancel { .. }
                | Message::Interested
                | Message::NotInterested
                | Message::KeepAlive
        )
    }

    /// The piece state and extension messages a connection opens with
    /// (bitfield, have-all, have-none, extended): nothing overtakes them.
    pub fn opens(&self) -> bool {
        matches!(
            self,
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone | Message::Extended { .. }
        )
    }

    /// The id byte on the wire, `None` for keep-alive (which has none).
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have { .. } => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request { .. } => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel { .. } => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::SuggestPiece { .. } => id::SUGGEST_PIECE,
            Message::RejectRequest { .. } => id::REJECT_REQUEST,
            Message::AllowedFast { .. } => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
        })
    }

    /// Bytes after the length prefix (the value of the prefix).
    pub fn body_len(&self) -> usize {
        match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Have { .. } | Message::SuggestPiece { .. } | Message::AllowedFast { .. } => 5,
            Message::Bitfield(bits) => 1 + bits.len(),
            Message::Request { .. } | Message::Cancel { .. } | Message::RejectRequest { .. } => 13,
            Message::Piece { data, .. } => PIECE_HEADER_LEN + data.len(),
            Message::Port(_) => 3,
            Message::Extended { payload, .. } => 2 + payload.len(),
        }
    }

    /// Bytes on the wire, length prefix included.
    pub fn encoded_len(&self) -> usize {
        LEN_PREFIX_LEN + self.body_len()
    }

    /// Appends the message, length prefix included, to `buf`.
    ///
    /// `Piece` data is copied here; a driver that wants to send a block
    /// without copying writes [`encode_piece_header`] and then the block
    /// (vectored write).
    pub fn encode_into(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        buf.put_u32(len_u32(self.body_len()));
        let Some(id) = self.id() else { return };
        buf.put_u8(id);
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => {}
            Message::Have { piece }
            | Message::SuggestPiece { piece }
            | Message::AllowedFast { piece } => buf.put_u32(*piece),
            Message::Bitfield(bits) => buf.put_slice(bits),
            Message::Request {
                piece,
                offset,
                length,
            }
            | Message::Cancel {
                piece,
                offset,
                length,
            }
            | Message::RejectRequest {
                piece,
                offset,
                length,
            } => {
                buf.put_u32(*piece);
                buf.put_u32(*offset);
                buf.put_u32(*length);
            }
            Message::Piece {
                piece,
                offset,
                data,
            } => {
                buf.put_u32(*piece);
                buf.put_u32(*offset);
                buf.put_slice(data);
            }
            Message::Port(port) => buf.put_u16(*port),
            Message::Extended { id, payload } => {
                buf.put_u8(*id);
                buf.put_slice(payload);
            }
        }
    }

    /// The message as one freshly allocated buffer (tests, rare messages).
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut buf);
        buf.freeze()
    }
}

/// Writes the 13 bytes that precede a block of `data_len` bytes in a `piece`
/// message, so the block itself can go out without being copied.
pub fn encode_piece_header(piece: u32, offset: u32, data_len: usize, buf: &mut BytesMut) {
    buf.reserve(LEN_PREFIX_LEN + PIECE_HEADER_LEN);
    buf.put_u32(len_u32(PIECE_HEADER_LEN + data_len));
    buf.put_u8(id::PIECE);
    buf.put_u32(piece);
    buf.put_u32(offset);
}

/// Message lengths come from our own values; one over 4 GiB is a bug here.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("peer message longer than 4 GiB")
}

/// Splits a byte stream into [`Message`]s, enforcing the limits.
#[derive(Clone, Debug)]
pub struct MessageDecoder {
    max_bitfield_len: usize,
    skipped_unknown: u64,
}

impl MessageDecoder {
    /// `max_bitfield_len`: the bitfield length of the torrent
    /// ([`crate::Lengths::bitfield_len`]); a longer bitfield is an error.
    /// Before metadata is known (magnet), pass a bound derived from the
    /// largest torrent one accepts and tighten it with
    /// [`Self::set_max_bitfield_len`] later.
    pub fn new(max_bitfield_len: usize) -> Self {
        MessageDecoder {
            max_bitfield_len,
            skipped_unknown: 0,
        }
    }

    pub fn set_max_bitfield_len(&mut self, max_bitfield_len: usize) {
        self.max_bitfield_len = max_bitfield_len;
    }

    /// Messages with an unknown id skipped so far.
    pub fn skipped_unknown(&self) -> u64 {
        self.skipped_unknown
    }

    /// Longest body (after the length prefix) any message may have.
    fn body_len_max(&self) -> usize {
        PIECE_MSG_LEN_MAX
            .max(1 + self.max_bitfield_len)
            .max(2 + EXTENDED_PAYLOAD_LEN_MAX)
    }

    /// Takes the next whole message off the front of `buf`.
    ///
    /// `Ok(None)`: more bytes are needed; when the message's length is known
    /// and within limits, `buf` has already been grown to hold all of it, so
    /// the next read fills it without reallocating. `Err`: the peer broke the
    /// protocol; drop the connection (the error says why). `buf` is left as it
    /// was on error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        loop {
            if buf.len() < LEN_PREFIX_LEN {
                return Ok(None);
            }
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len == 0 {
                buf.advance(LEN_PREFIX_LEN);
                return Ok(Some(Message::KeepAlive));
            }
            if len > self.body_len_max() {
                return Err(WireError::MessageTooLong {
                    id: buf.get(LEN_PREFIX_LEN).copied(),
                    len,
                    max: self.body_len_max(),
                });
            }
            let Some(&msg_id) = buf.get(LEN_PREFIX_LEN) else {
                return Ok(None);
            };
            self.check_len(msg_id, len)?;
            let total = LEN_PREFIX_LEN + len;
            if buf.len() < total {
                // Safe: `len` passed the per-id limit just above.
                buf.reserve(total - buf.len());
                return Ok(None);
            }
            buf.advance(LEN_PREFIX_LEN + 1);
            let body = buf.split_to(len - 1);
            match parse_body(msg_id, body) {
                Some(msg) => return Ok(Some(msg)),
                None => self.skipped_unknown += 1,
            }
        }
    }

    /// Checks a message's length against what its id allows.
    fn check_len(&self, msg_id: u8, len: usize) -> Result<(), WireError> {
        let exact = |expected: usize| {
            if len == expected {
                Ok(())
            } else {
                Err(WireError::BadLength {
                    id: msg_id,
                    len,
                    expected,
                })
            }
        };
        let at_most = |max: usize| {
            if len <= max {
                Ok(())
            } else {
                Err(WireError::MessageTooLong {
                    id: Some(msg_id),
                    len,
                    max,
                })
            }
        };
        match msg_id {
            id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED => exact(1),
            id::HAVE_ALL | id::HAVE_NONE => exact(1),
            id::HAVE | id::SUGGEST_PIECE | id::ALLOWED_FAST => exact(5),
            id::REQUEST | id::CANCEL | id::REJECT_REQUEST => exact(13),
            id::PORT => exact(3),
            id::BITFIELD => {
                if len - 1 > self.max_bitfield_len {
                    Err(WireError::BitfieldTooLong {
                        len: len - 1,
                        max: self.max_bitfield_len,
                    })
                } else {
                    Ok(())
                }
            }
            id::PIECE => {
                if len < PIECE_HEADER_LEN {
                    return Err(WireError::BadLength {
                        id: msg_id,
                        len,
                        expected: PIECE_HEADER_LEN,
                    });
                }
                at_most(PIECE_MSG_LEN_MAX)
            }
            id::EXTENDED => {
                if len < 2 {
                    return Err(WireError::BadLength {
                        id: msg_id,
                        len,
                        expected: 2,
                    });
                }
                at_most(2 + EXTENDED_PAYLOAD_LEN_MAX)
            }
            _ => at_most(PIECE_MSG_LEN_MAX),
        }
    }
}

/// Parses a body (after the id) whose length `check_len` accepted; `None`
/// for an unknown id.
fn parse_body(msg_id: u8, mut body: BytesMut) -> Option<Message> {
    let msg = match msg_id {
        id::CHOKE => Message::Choke,
        id::UNCHOKE => Message::Unchoke,
        id::INTERESTED => Message::Interested,
        id::NOT_INTERESTED => Message::NotInterested,
        id::HAVE_ALL => Message::HaveAll,
        id::HAVE_NONE => Message::HaveNone,
        id::HAVE => Message::Have {
            piece: body.get_u32(),
        },
        id::SUGGEST_PIECE => Message::SuggestPiece {
            piece: body.get_u32(),
        },
        id::ALLOWED_FAST => Message::AllowedFast {
            piece: body.get_u32(),
        },
        id::REQUEST => Message::Request {
            piece: body.get_u32(),
            offset: body.get_u32(),
            length: body.get_u32(),
        },
        id::CANCEL => Message::Cancel {
            piece: body.get_u32(),
            offset: body.get_u32(),
            length: body.get_u32(),
        },
        id::REJECT_REQUEST => Message::RejectRequest {
            piece: body.get_u32(),
            offset: body.get_u32(),
            length: body.get_u32(),
        },
        id::PORT => Message::Port(body.get_u16()),
        id::BITFIELD => Message::Bitfield(body.freeze()),
        id::PIECE => {
            let piece = body.get_u32();
            let offset = body.get_u32();
            // Zero-copy: the block shares the receive buffer's allocation.
            Message::Piece {
                piece,
                offset,
                data: body.freeze(),
            }
        }
        id::EXTENDED => {
            let ext_id = body.get_u8();
            Message::Extended {
                id: ext_id,
                payload: body.freeze(),
            }
        }
        _ => return None,
    };
    Some(msg)
}
