//! `swarm-wire`: the bytes BitTorrent puts on the wire, and nothing else.
//!
//! No IO, no clock, no async runtime: every type here is a value that is
//! decoded from bytes or encoded into them. The engines (`swarm-engine`) and
//! the tokio drivers (`swarm-net`) build on these types.
//!
//! - [`ids`]: [`InfoHash`] and [`PeerId`], hex and percent-encoding.
//! - [`bencode`]: the BitTorrent serialisation format (BEP 3), strict and zero-copy.
//! - [`metainfo`]: `.torrent` files (BEP 3, BEP 12, BEP 47 attributes, the v1 half of hybrids).
//! - [`layout`]: the piece ↔ file-span mapping (one implementation, pad-file aware).
//! - [`krpc`]: the DHT's messages (BEP 5, 32, 42, 43, 44).
//! - [`magnet`]: magnet URIs (BEP 9 `xt=urn:btih:`).
//! - [`peer`]: the peer wire protocol (BEP 3, BEP 6, BEP 10).
//! - [`tracker`]: tracker announce/scrape messages, HTTP (BEP 3, 23) and UDP (BEP 15).
//! - [`text`]: remote text made safe for a terminal ([`text::Escaped`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bencode;
pub mod crc32c;
pub mod ids;
pub mod krpc;
pub mod layout;
pub mod lengths;
pub mod magnet;
pub mod metainfo;
pub mod peer;
pub mod text;
pub mod tracker;

pub use ids::{InfoHash, PeerId};
pub use lengths::{BlockInfo, Lengths, ValidPieceIndex};
pub use magnet::Magnet;
pub use metainfo::{FileEntry, FileSpan, Metainfo, NewContent, TorrentBuilder};
