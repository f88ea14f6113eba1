//! What the torrent core and its driver tell each other, apart from wire
//! messages: what the handshake said about a peer, the storage jobs the core
//! asks for ([`TorrentEvent`]) and their answers ([`StorageDone`]). A leaf
//! module: it imports only the ids.

use bytes::Bytes;
use swarm_wire::lengths::{BlockInfo, ValidPieceIndex};

use crate::ids::PeerKey;

/// What the handshake told us about a peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// Both sides set the BEP 6 fast-extension reserved bit.
    pub fast_ext: bool,
    /// We dialled it (false: it connected to us).
    pub outgoing: bool,
}

/// What the BEP 10 extension handshake told us about a peer (the driver decodes it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtensionInfo {
    /// `reqq`: how many outstanding requests the peer accepts from us.
    pub reqq: Option<u32>,
}

/// A disk or hash job the driver finished (requested by a [`TorrentEvent`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageDone {
    /// Answer to `VerifyPiece`: `ok` means the hash matched AND the piece was written.
    PieceVerified { piece: ValidPieceIndex, ok: bool },
    /// Answer to `VerifyPiece`: the hash matched but the write failed (disk
    /// full, folder unwritable). The torrent stops with `Fatal`.
    WriteFailed {
        piece: ValidPieceIndex,
        error: String,
    },
    /// Answer to `ReadBlock`.
    BlockRead {
        peer: PeerKey,
        block: BlockInfo,
        data: Bytes,
    },
    /// Answer to `ReadBlock` when the read failed. The torrent stops with `Fatal`.
    ReadFailed {
        peer: PeerKey,
        block: BlockInfo,
        error: String,
    },
}

/// Work for the driver, and things worth telling the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TorrentEvent {
    /// All blocks of `piece`, in order: hash them, and if the hash matches
    /// write them; then answer with `StorageDone::PieceVerified` (or `WriteFailed`).
    /// One job per piece, not per block: batching is what makes disk and
    /// hashing fast (DESIGN.md).
    VerifyPiece {
        piece: ValidPieceIndex,
        blocks: Vec<Bytes>,
    },
    /// Read `block` from disk for `peer`; answer with `StorageDone::BlockRead`.
    ReadBlock { peer: PeerKey, block: BlockInfo },
    /// Close this connection; the core has already forgotten the peer.
    /// `ban`: refuse the peer's address from now on.
    Disconnect {
        peer: PeerKey,
        reason: String,
        ban: bool,
    },
    /// This peer has every piece (its bitfield, have-all or last have
    /// said so), once per connection: for the endpoint's seed rule
    /// (`Endpoint::handle_peer_seed`).
    PeerSeed(PeerKey),
    /// A piece passed its hash and is on disk.
    PieceCompleted(ValidPieceIndex),
    /// Every piece is on disk.
    Completed,
    /// The torrent cannot go on (disk error); the driver should stop it.
    Fatal(String),
}
