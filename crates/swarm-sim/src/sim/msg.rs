//! A peer message as the simulator carries it between two cores: 16 bytes
//! instead of [`Message`]'s 48. At a thousand peers the connections'
//! queues of messages on the way were about 40% of the heap (heaptrack,
//! 300 × 200 pieces), and every message is written and read back once
//! on its way: a smaller entry is fewer bytes to allocate and fewer cache
//! lines to touch. A block's payload is always a slice of [`BLOCK`] (the
//! cores never look at the bytes), so a `Piece` keeps only its length;
//! anything else uncommon (a bitfield, an extended message, a payload
//! from elsewhere) is boxed as it came.

use bytes::Bytes;
use swarm_wire::peer::{BLOCK_LEN, Message};

/// The payload of every simulated block: the cores never look at the bytes
/// (the simulator answers hash checks itself), so one static buffer serves.
pub(super) static BLOCK: [u8; BLOCK_LEN as usize] = [0; BLOCK_LEN as usize];

/// A block reference: piece, offset, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Block {
    piece: u32,
    offset: u32,
    length: u32,
}

/// [`Message`], compact: see the module doc. Converting there and back
/// gives the same message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SimMessage {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    HaveAll,
    HaveNone,
    Have(u32),
    SuggestPiece(u32),
    AllowedFast(u32),
    Request(Block),
    Cancel(Block),
    RejectRequest(Block),
    /// A block whose payload is `BLOCK[..length]`.
    Piece(Block),
    Other(Box<Message>),
}

const _: () = assert!(std::mem::size_of::<SimMessage>() == 16);

impl SimMessage {
    /// [`Message::rides_ahead`], for the compact form.
    pub fn rides_ahead(&self) -> bool {
        matches!(
            self,
            SimMessage::Request(_)
                | SimMessage::Cancel(_)
                | SimMessage::Interested
                | SimMessage::NotInterested
                | SimMessage::KeepAlive
        ) || matches!(self, SimMessage::Other(m) if m.rides_ahead())
    }

    /// [`Message::opens`], for the compact form.
    pub fn opens(&self) -> bool {
        matches!(self, SimMessage::HaveAll | SimMessage::HaveNone)
            || matches!(self, SimMessage::Other(m) if m.opens())
    }

    /// The payload bytes, if it is a block.
    pub fn block_len(&self) -> Option<u32> {
        match self {
            SimMessage::Piece(b) => Some(b.length),
            SimMessage::Other(m) => match &**m {
                Message::Piece { data, .. } => Some(data.len() as u32),
                _ => None,
            },
            _ => None,
        }
    }

    /// The piece, if it is a block.
    pub fn block_piece(&self) -> Option<u32> {
        match self {
            SimMessage::Piece(b) => Some(b.piece),
            SimMessage::Other(m) => match &**m {
                Message::Piece { piece, .. } => Some(*piece),
                _ => None,
            },
            _ => None,
        }
    }
}

impl From<Message> for SimMessage {
    fn from(m: Message) -> Self {
        let block = |piece, offset, length| Block {
            piece,
            offset,
            length,
        };
        match m {
            Message::KeepAlive => SimMessage::KeepAlive,
            Message::Choke => SimMessage::Choke,
            Message::Unchoke => SimMessage::Unchoke,
            Message::Interested => SimMessage::Interested,
            Message::NotInterested => SimMessage::NotInterested,
            Message::HaveAll => SimMessage::HaveAll,
            Message::HaveNone => SimMessage::HaveNone,
            Message::Have { piece } => SimMessage::Have(piece),
            Message::SuggestPiece { piece } => SimMessage::SuggestPiece(piece),
            Message::AllowedFast { piece } => SimMessage::AllowedFast(piece),
            Message::Request {
                piece,
                offset,
                length,
            } => SimMessage::Request(block(piece, offset, length)),
            Message::Cancel {
                piece,
                offset,
                length,
            } => SimMessage::Cancel(block(piece, offset, length)),
            Message::RejectRequest {
                piece,
                offset,
                length,
            } => SimMessage::RejectRequest(block(piece, offset, length)),
            Message::Piece {
                piece,
                offset,
                data,
            } if data.as_ptr() == BLOCK.as_ptr() => {
                SimMessage::Piece(block(piece, offset, data.len() as u32))
            }
            m => SimMessage::Other(Box::new(m)),
        }
    }
}

impl From<SimMessage> for Message {
    fn from(m: SimMessage) -> Self {
        match m {
            SimMessage::KeepAlive => Message::KeepAlive,
            SimMessage::Choke => Message::Choke,
            SimMessage::Unchoke => Message::Unchoke,
            SimMessage::Interested => Message::Interested,
            SimMessage::NotInterested => Message::NotInterested,
            SimMessage::HaveAll => Message::HaveAll,
            SimMessage::HaveNone => Message::HaveNone,
            SimMessage::Have(piece) => Message::Have { piece },
            SimMessage::SuggestPiece(piece) => Message::SuggestPiece { piece },
            SimMessage::AllowedFast(piece) => Message::AllowedFast { piece },
            SimMessage::Request(b) => Message::Request {
                piece: b.piece,
                offset: b.offset,
                length: b.length,
            },
            SimMessage::Cancel(b) => Message::Cancel {
                piece: b.piece,
                offset: b.offset,
                length: b.length,
            },
            SimMessage::RejectRequest(b) => Message::RejectRequest {
                piece: b.piece,
                offset: b.offset,
                length: b.length,
            },
            SimMessage::Piece(b) => Message::Piece {
                piece: b.piece,
                offset: b.offset,
                data: Bytes::from_static(&BLOCK[..b.length as usize]),
            },
            SimMessage::Other(m) => *m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of message comes back as it went in.
    #[test]
    fn round_trip() {
        let msgs = [
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::HaveAll,
            Message::HaveNone,
            Message::Have { piece: 7 },
            Message::SuggestPiece { piece: 8 },
            Message::AllowedFast { piece: 9 },
            Message::Request {
                piece: 1,
                offset: 16384,
                length: 16384,
            },
            Message::Cancel {
                piece: 2,
                offset: 0,
                length: 100,
            },
            Message::RejectRequest {
                piece: 3,
                offset: 32768,
                length: 16384,
            },
            Message::Piece {
                piece: 4,
                offset: 16384,
                data: Bytes::from_static(&BLOCK[..1000]),
            },
            Message::Piece {
                piece: 5,
                offset: 0,
                data: Bytes::from(vec![1, 2, 3]),
            },
            Message::Bitfield(Bytes::from(vec![0xF0])),
            Message::Port(6881),
            Message::Extended {
                id: 1,
                payload: Bytes::from(vec![b'd', b'e']),
            },
        ];
        for m in msgs {
            let s = SimMessage::from(m.clone());
            assert_eq!(
                s.block_len(),
                match &m {
                    Message::Piece { data, .. } => Some(data.len() as u32),
                    _ => None,
                }
            );
            assert_eq!(s.rides_ahead(), m.rides_ahead(), "{m:?}");
            assert_eq!(s.opens(), m.opens(), "{m:?}");
            assert_eq!(Message::from(s), m);
        }
    }
}
