//! Piece and block arithmetic of a torrent, checked once.
//!
//! A [`ValidPieceIndex`] can only be made by [`Lengths::validate_piece_index`],
//! so code holding one never has to check bounds again (parse, don't validate).

use crate::peer::BLOCK_LEN;

/// The lengths that shape a torrent: total size and piece size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lengths {
    total_length: u64,
    piece_length: u32,
    num_pieces: u32,
}

/// A piece index known to be inside the torrent it was validated against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidPieceIndex(u32);

impl ValidPieceIndex {
    pub fn get(self) -> u32 {
        self.0
    }
    pub fn as_usize(self) -> usize {
        self.0 as usize
    }
}

/// One block of a piece: what a `request` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockInfo {
    pub piece: ValidPieceIndex,
    pub offset: u32,
    pub length: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LengthsError {
    #[error("piece length must be greater than zero")]
    ZeroPieceLength,
    #[error("the torrent has {0} pieces; at most {max} are supported", max = u32::MAX)]
    TooManyPieces(u64),
}

impl Lengths {
    /// `total_length` may be zero (a torrent of empty files has no pieces).
    pub fn new(total_length: u64, piece_length: u32) -> Result<Self, LengthsError> {
        if piece_length == 0 {
            return Err(LengthsError::ZeroPieceLength);
        }
        let num_pieces = total_length.div_ceil(u64::from(piece_length));
        let num_pieces =
            u32::try_from(num_pieces).map_err(|_| LengthsError::TooManyPieces(num_pieces))?;
        Ok(Lengths {
            total_length,
            piece_length,
            num_pieces,
        })
    }

    pub fn total_length(&self) -> u64 {
        self.total_length
    }
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    pub fn validate_piece_index(&self, index: u32) -> Option<ValidPieceIndex> {
        (index < self.num_pieces).then_some(ValidPieceIndex(index))
    }

    /// All pieces in order.
    pub fn pieces(&self) -> impl Iterator<Item = ValidPieceIndex> + use<> {
        (0..self.num_pieces).map(ValidPieceIndex)
    }

    /// Byte offset of the piece's first byte in the torrent.
    pub fn piece_offset(&self, piece: ValidPieceIndex) -> u64 {
        u64::from(piece.0) * u64::from(self.piece_length)
    }

    /// Length of a piece: `piece_length`, except possibly the last one.
    pub fn piece_len(&self, piece: ValidPieceIndex) -> u32 {
        let rest = self.total_length - self.piece_offset(piece);
        rest.min(u64::from(self.piece_length)) as u32
    }

    pub fn blocks_in_piece(&self, piece: ValidPieceIndex) -> u32 {
        self.piece_len(piece).div_ceil(BLOCK_LEN)
    }

    /// The `block`-th block of `piece`, or `None` past the piece's end.
    pub fn block(&self, piece: ValidPieceIndex, block: u32) -> Option<BlockInfo> {
        let piece_len = self.piece_len(piece);
        let offset = block.checked_mul(BLOCK_LEN)?;
        if offset >= piece_len {
            return None;
        }
        Some(BlockInfo {
            piece,
            offset,
            length: (piece_len - offset).min(BLOCK_LEN),
        })
    }

    /// Checks a (piece, offset, length) triple from the network: inside the
    /// piece, non-empty and at most one block long.
    pub fn validate_block(&self, piece: u32, offset: u32, length: u32) -> Option<BlockInfo> {
        let piece = self.validate_piece_index(piece)?;
        let end = offset.checked_add(length)?;
        if length == 0 || length > BLOCK_LEN || end > self.piece_len(piece) {
            return None;
        }
        Some(BlockInfo {
            piece,
            offset,
            length,
        })
    }

    /// Length in bytes of a bitfield for this torrent.
    pub fn bitfield_len(&self) -> usize {
        (self.num_pieces as usize).div_ceil(8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_piece_is_short() {
        let l = Lengths::new(3 * 16384 + 5, 32768).unwrap();
        assert_eq!(l.num_pieces(), 2);
        let last = l.validate_piece_index(1).unwrap();
        assert_eq!(l.piece_len(last), 16389);
        assert_eq!(l.blocks_in_piece(last), 2);
        assert_eq!(l.block(last, 1).unwrap().length, 5);
        assert!(l.block(last, 2).is_none());
        assert!(l.validate_piece_index(2).is_none());
    }

    #[test]
    fn validate_block_rejects_out_of_piece() {
        let l = Lengths::new(100_000, 65536).unwrap();
        assert!(l.validate_block(0, 0, 16384).is_some());
        assert!(l.validate_block(0, 65536 - 100, 16384).is_none());
        assert!(l.validate_block(1, 0, 16384).is_some());
        assert!(l.validate_block(1, 34460, 10).is_none());
        assert!(l.validate_block(0, u32::MAX, 16384).is_none());
        assert!(l.validate_block(0, 0, 0).is_none());
        assert!(l.validate_block(2, 0, 1).is_none());
    }

    #[test]
    fn empty_torrent_has_no_pieces() {
        let l = Lengths::new(0, 16384).unwrap();
        assert_eq!(l.num_pieces(), 0);
        assert_eq!(l.bitfield_len(), 0);
        assert!(Lengths::new(1, 0).is_err());
    }
}
