//! The set of pieces a peer has, as the `bitfield` message carries it (BEP 3).
//!
//! Bit `i` (high bit of byte 0 first) says whether piece `i` is present.
//! A bitfield from the network is validated once, in [`Bitfield::from_wire`]:
//! its length must be exactly `ceil(num_pieces / 8)` bytes and the spare bits
//! after the last piece must be zero (BEP 3 says so; a peer that sets them is
//! broken or hostile, and we drop it).

use bytes::Bytes;
use swarm_wire::lengths::Lengths;

/// Why a bitfield from the network was refused. The caller disconnects the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    #[error("bitfield is {got} bytes long, the torrent needs exactly {want}")]
    WrongLength { got: usize, want: usize },
    #[error("bitfield has spare bits set after the last piece")]
    SpareBitsSet,
}

/// A fixed-size set of piece indices with a cached population count.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{})", self.ones, self.len)
    }
}

impl Bitfield {
    /// No piece present.
    pub fn empty(len: u32) -> Self {
        Bitfield {
            bytes: vec![0; (len as usize).div_ceil(8)],
            len,
            ones: 0,
        }
    }

    /// Every piece present.
    pub fn full(len: u32) -> Self {
        let mut b = Self::empty(len);
        b.bytes.fill(0xff);
        b.clear_spare_bits();
        b.ones = len;
        b
    }

    /// Parses a `bitfield` message payload for a torrent of `len` pieces.
    pub fn from_wire(bytes: &[u8], len: u32) -> Result<Self, BitfieldError> {
        let want = (len as usize).div_ceil(8);
        if bytes.len() != want {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                want,
            });
        }
        let mut b = Bitfield {
            bytes: bytes.to_vec(),
            len,
            ones: 0,
        };
        let before: Vec<u8> = b.bytes.clone();
        b.clear_spare_bits();
        if b.bytes != before {
            return Err(BitfieldError::SpareBitsSet);
        }
        b.ones = b.bytes.iter().map(|x| x.count_ones()).sum();
        Ok(b)
    }

    fn clear_spare_bits(&mut self) {
        let rem = self.len % 8;
        if rem != 0
            && let Some(last) = self.bytes.last_mut()
        {
            *last &= 0xffu8 << (8 - rem);
        }
    }

    /// The payload of a `bitfield` message.
    pub fn to_wire(&self) -> Bytes {
        Bytes::copy_from_slice(&self.bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of pieces this bitfield describes.
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of pieces present.
    pub fn count_ones(&self) -> u32 {
        self.ones
    }

    /// Bytes in the pieces present, for the torrent of `lengths` (whose
    /// piece count is this bitfield's length): every piece is full-length
    /// but the last, which may be short.
    pub fn bytes_present(&self, lengths: &Lengths) -> u64 {
        debug_assert_eq!(self.len, lengths.num_pieces());
        let full = u64::from(self.ones) * u64::from(lengths.piece_length());
        match self
            .len
            .checked_sub(1)
            .and_then(|i| lengths.validate_piece_index(i))
        {
            Some(last) if self.get(last.get()) => {
                full - u64::from(lengths.piece_length() - lengths.piece_len(last))
            }
            _ => full,
        }
    }

    pub fn is_all_set(&self) -> bool {
        self.ones == self.len
    }

    pub fn is_none_set(&self) -> bool {
        self.ones == 0
    }

    /// Whether piece `i` is present. Panics if `i` is out of range (a
    /// programmer error: indices are validated before they get here).
    pub fn get(&self, i: u32) -> bool {
        assert!(i < self.len, "bit {i} out of range {}", self.len);
        self.bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }

    /// Sets piece `i`; returns whether it was newly set.
    pub fn set(&mut self, i: u32) -> bool {
        assert!(i < self.len, "bit {i} out of range {}", self.len);
        let byte = &mut self.bytes[(i / 8) as usize];
        let mask = 0x80 >> (i % 8);
        let was = *byte & mask != 0;
        *byte |= mask;
        if !was {
            self.ones += 1;
        }
        !was
    }

    /// Clears piece `i`; returns whether it was set.
    pub fn clear(&mut self, i: u32) -> bool {
        assert!(i < self.len, "bit {i} out of range {}", self.len);
        let byte = &mut self.bytes[(i / 8) as usize];
        let mask = 0x80 >> (i % 8);
        let was = *byte & mask != 0;
        *byte &= !mask;
        if was {
            self.ones -= 1;
        }
        was
    }

    /// Whether some piece is present in both (same length, asserted): eight
    /// bytes at a time, so the picker can skip a scan that would find nothing.
    pub fn intersects(&self, other: &Bitfield) -> bool {
        assert_eq!(self.len, other.len, "bitfield lengths differ");
        let (a, b) = (&self.bytes, &other.bytes);
        let mut ca = a.chunks_exact(8);
        let mut cb = b.chunks_exact(8);
        let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("8 bytes"));
        if ca
            .by_ref()
            .zip(cb.by_ref())
            .any(|(x, y)| word(x) & word(y) != 0)
        {
            return true;
        }
        ca.remainder()
            .iter()
            .zip(cb.remainder())
            .any(|(x, y)| x & y != 0)
    }

    /// Indices of the pieces present, ascending. A byte at a time, its set
    /// bits by leading zeros (a peer leaving runs this over its pieces;
    /// a probe per piece cost ~20 instructions each). Spare bits are
    /// always clear, so every index is below `len`.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b != 0)
            .flat_map(|(i, &b)| {
                let base = i as u32 * 8;
                let mut rest = b;
                std::iter::from_fn(move || {
                    if rest == 0 {
                        return None;
                    }
                    let k = rest.leading_zeros();
                    rest &= !(0x80u8 >> k);
                    Some(base + k)
                })
            })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn intersects_finds_a_common_piece_anywhere() {
        for len in [1u32, 7, 8, 9, 63, 64, 65, 130] {
            for i in 0..len {
                let mut a = super::Bitfield::empty(len);
                let mut b = super::Bitfield::empty(len);
                assert!(!a.intersects(&b));
                a.set(i);
                assert!(!a.intersects(&b), "len {len} bit {i}");
                b.set((i + 1) % len);
                assert_eq!(a.intersects(&b), len == 1, "len {len} bit {i}");
                b.set(i);
                assert!(a.intersects(&b) && b.intersects(&a), "len {len} bit {i}");
            }
        }
    }

    use super::*;

    #[test]
    fn bytes_present_counts_the_short_last_piece() {
        // 3 pieces of 16 KiB, the last 100 bytes long.
        let l = Lengths::new(2 * 16384 + 100, 16384).unwrap();
        let mut b = Bitfield::empty(3);
        assert_eq!(b.bytes_present(&l), 0);
        b.set(0);
        assert_eq!(b.bytes_present(&l), 16384);
        b.set(2);
        assert_eq!(b.bytes_present(&l), 16384 + 100);
        b.set(1);
        assert_eq!(b.bytes_present(&l), l.total_length());
        assert_eq!(
            Bitfield::empty(0).bytes_present(&Lengths::new(0, 16384).unwrap()),
            0
        );
    }

    #[test]
    fn iter_ones_lists_exactly_the_set_bits_in_order() {
        // Patterns over lengths around byte boundaries: every third bit,
        // the last bit alone, all bits.
        for len in [1u32, 7, 8, 9, 16, 17, 130] {
            let mut every_third = Bitfield::empty(len);
            (0..len).step_by(3).for_each(|i| {
                every_third.set(i);
            });
            let mut last = Bitfield::empty(len);
            last.set(len - 1);
            for b in [every_third, last, Bitfield::full(len), Bitfield::empty(len)] {
                let want: Vec<u32> = (0..len).filter(|&i| b.get(i)).collect();
                assert_eq!(b.iter_ones().collect::<Vec<_>>(), want, "len {len}");
            }
        }
    }

    #[test]
    fn wire_roundtrip_and_counts() {
        let b = Bitfield::from_wire(&[0b1010_0000, 0b1000_0000], 9).unwrap();
        assert_eq!(b.count_ones(), 3);
        assert!(b.get(0) && !b.get(1) && b.get(2) && b.get(8));
        assert_eq!(b.to_wire().as_ref(), &[0b1010_0000, 0b1000_0000]);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![0, 2, 8]);
    }

    #[test]
    fn wrong_length_is_refused() {
        assert_eq!(
            Bitfield::from_wire(&[0, 0, 0], 9),
            Err(BitfieldError::WrongLength { got: 3, want: 2 })
        );
        assert!(Bitfield::from_wire(&[0xff], 9).is_err());
        assert!(Bitfield::from_wire(&[], 0).unwrap().is_all_set());
    }

    #[test]
    fn spare_bits_are_refused() {
        assert_eq!(
            Bitfield::from_wire(&[0xff, 0b1100_0000], 9),
            Err(BitfieldError::SpareBitsSet)
        );
        assert!(Bitfield::from_wire(&[0xff, 0b1000_0000], 9).is_ok());
        assert!(Bitfield::from_wire(&[0xff], 8).is_ok());
    }

    #[test]
    fn full_has_no_spare_bits() {
        let b = Bitfield::full(10);
        assert_eq!(b.as_bytes(), &[0xff, 0b1100_0000]);
        assert!(b.is_all_set());
        let mut b = b;
        assert!(b.clear(3));
        assert!(!b.clear(3));
        assert_eq!(b.count_ones(), 9);
        assert!(b.set(3));
        assert!(!b.set(3));
        assert!(b.is_all_set());
    }
}
