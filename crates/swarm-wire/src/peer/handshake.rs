//! The 68-byte handshake that opens every peer connection (BEP 3), and the
//! reserved bits that announce optional extensions: BEP 10 (extension
//! protocol), BEP 6 (fast extension), BEP 5 (DHT port message).

use bytes::{Buf, BufMut, BytesMut};

use super::WireError;
use crate::ids::{InfoHash, PeerId};

/// The protocol name after its length byte (19).
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Bytes of a handshake: 1 + 19 + 8 reserved + 20 info-hash + 20 peer id.
pub const HANDSHAKE_LEN: usize = 68;

/// Byte and mask of each reserved bit we know. Bit numbers in the BEPs count
/// from the right of the 64-bit field, so "bit 20" (BEP 10) is byte 5, 0x10.
const EXTENSION_PROTOCOL: (usize, u8) = (5, 0x10);
const FAST_EXTENSION: (usize, u8) = (7, 0x04);
const DHT: (usize, u8) = (7, 0x01);

/// The handshake each side sends first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
}

impl Handshake {
    /// A handshake with no reserved bits set; add them with the `with_*` setters.
    pub fn new(info_hash: InfoHash, peer_id: PeerId) -> Self {
        Handshake {
            reserved: [0; 8],
            info_hash,
            peer_id,
        }
    }

    /// Sets the BEP 10 (extension protocol), BEP 6 (fast) and BEP 5 (DHT)
    /// bits as given.
    pub fn with_extensions(mut self, extension_protocol: bool, fast: bool, dht: bool) -> Self {
        set_bit(&mut self.reserved, EXTENSION_PROTOCOL, extension_protocol);
        set_bit(&mut self.reserved, FAST_EXTENSION, fast);
        set_bit(&mut self.reserved, DHT, dht);
        self
    }

    /// BEP 10: the peer speaks the extension protocol (`reserved[5] & 0x10`).
    pub fn supports_extension_protocol(&self) -> bool {
        bit(&self.reserved, EXTENSION_PROTOCOL)
    }

    /// BEP 6: the peer speaks the fast extension (`reserved[7] & 0x04`).
    pub fn supports_fast(&self) -> bool {
        bit(&self.reserved, FAST_EXTENSION)
    }

    /// BEP 5: the peer runs a DHT node and may send `port` (`reserved[7] & 0x01`).
    pub fn supports_dht(&self) -> bool {
        bit(&self.reserved, DHT)
    }

    /// The 68 bytes on the wire.
    pub fn to_bytes(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = PROTOCOL.len() as u8;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(self.info_hash.as_bytes());
        out[48..68].copy_from_slice(self.peer_id.as_bytes());
        out
    }

    pub fn encode_into(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.to_bytes());
    }

    /// Parses exactly one handshake.
    pub fn from_bytes(bytes: &[u8; HANDSHAKE_LEN]) -> Result<Self, WireError> {
        check_prefix(bytes)?;
        let mut reserved = [0u8; 8];
        let mut info_hash = [0u8; 20];
        let mut peer_id = [0u8; 20];
        reserved.copy_from_slice(&bytes[20..28]);
        info_hash.copy_from_slice(&bytes[28..48]);
        peer_id.copy_from_slice(&bytes[48..68]);
        Ok(Handshake {
            reserved,
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer_id),
        })
    }

    /// Takes a handshake off the front of `buf` once all 68 bytes arrived.
    ///
    /// A wrong protocol string is an error as soon as its first bytes are
    /// in, so a connection speaking something else is dropped at once.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, WireError> {
        check_prefix(buf)?;
        if buf.len() < HANDSHAKE_LEN {
            return Ok(None);
        }
        let mut bytes = [0u8; HANDSHAKE_LEN];
        bytes.copy_from_slice(&buf[..HANDSHAKE_LEN]);
        buf.advance(HANDSHAKE_LEN);
        Self::from_bytes(&bytes).map(Some)
    }
}

/// Checks as much of the `\x13BitTorrent protocol` prefix as `bytes` holds.
fn check_prefix(bytes: &[u8]) -> Result<(), WireError> {
    let mut expected = [0u8; 20];
    expected[0] = PROTOCOL.len() as u8;
    expected[1..].copy_from_slice(PROTOCOL);
    let n = bytes.len().min(expected.len());
    if bytes[..n] == expected[..n] {
        Ok(())
    } else {
        Err(WireError::BadProtocol)
    }
}

fn bit(reserved: &[u8; 8], (byte, mask): (usize, u8)) -> bool {
    reserved[byte] & mask != 0
}

fn set_bit(reserved: &mut [u8; 8], (byte, mask): (usize, u8), on: bool) {
    if on {
        reserved[byte] |= mask;
    } else {
        reserved[byte] &= !mask;
    }
}
