//! What a torrent looks like from outside: the status a [`crate::Client`]
//! publishes for each torrent (every second, on completion, and a last one
//! marked `final`). These types derive `serde::Serialize`: the CLI's
//! `--json` lines and the daemon's API are these, serialized.

use std::net::SocketAddr;

use serde::{Serialize, Serializer};

/// Where a torrent is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TorrentState {
    /// A magnet link's first phase: fetching the metadata from peers (BEP 9).
    Metadata,
    /// Opening its files and checking the data on disk.
    #[default]
    Checking,
    Downloading,
    Seeding,
    /// Ended complete (the final status of a torrent that has every piece).
    Completed,
    /// Ended incomplete.
    Stopped,
    /// Ended on an error (`error` says which).
    Failed,
}

impl TorrentState {
    pub fn as_str(self) -> &'static str {
        match self {
            TorrentState::Metadata => "metadata",
            TorrentState::Checking => "checking",
            TorrentState::Downloading => "downloading",
            TorrentState::Seeding => "seeding",
            TorrentState::Completed => "completed",
            TorrentState::Stopped => "stopped",
            TorrentState::Failed => "failed",
        }
    }

    /// The torrent has ended (the status is its last).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TorrentState::Completed | TorrentState::Stopped | TorrentState::Failed
        )
    }
}

/// A snapshot of one torrent for the user.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TorrentStatus {
    /// The v1 info-hash, hex.
    pub info_hash: String,
    pub name: String,
    pub state: TorrentState,
    pub complete: bool,
    /// While checking: the bytes checked so far (of `total_length`); none
    /// before the check starts reading (or if it reads nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<u64>,
    /// While fetching a magnet link's metadata: its pieces received and in
    /// all (`[0, 0]` until a peer said its size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_pieces: Option<(u32, u32)>,
    pub pieces_have: u32,
    pub pieces_total: u32,
    /// Bytes of the user's data (BEP 47 pad files left out).
    pub total_length: u64,
    /// Bytes of it verified on disk.
    pub have_length: u64,
    /// Bytes of the wanted pieces (skipped files left out, but a piece
    /// shared with a wanted file counts whole): Transmission's `sizeWhenDone`.
    pub wanted_length: u64,
    /// Wanted bytes still missing (`leftUntilDone`): 0 once complete.
    pub left: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub wasted: u64,
    /// Bytes/s over the last 20 s.
    #[serde(serialize_with = "whole")]
    pub download_rate: f64,
    #[serde(serialize_with = "whole")]
    pub upload_rate: f64,
    pub peers: usize,
    /// Our dials still connecting or handshaking.
    pub connecting: usize,
    /// IP addresses refused after a ban (the process's, shared by its torrents).
    pub banned: usize,
    pub hash_failures: u32,
    pub listen_port: u16,
    /// Seconds since the torrent was added.
    #[serde(serialize_with = "tenths")]
    pub elapsed_s: f64,
    pub error: Option<String>,
    /// This is the torrent's last status.
    #[serde(rename = "final", skip_serializing_if = "is_false")]
    pub is_final: bool,
    /// Every connected peer, with the choker's last verdict on it, ordered
    /// by download rate (fastest first).
    pub neighbours: Vec<NeighbourStatus>,
    /// Piece by piece: have, downloading, how many neighbours hold it
    /// (none before the session runs, or past [`PIECE_MAP_PIECES_MAX`]).
    /// Not in the `--json` lines (its size grows with the torrent); the
    /// daemon serves it on a torrent's own page.
    #[serde(skip)]
    pub piece_map: Option<std::sync::Arc<PieceMap>>,
    /// The trackers announced to so far (none before the first announce,
    /// nor for a torrent without trackers), in the order last tried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trackers: Vec<TrackerStatus>,
}

/// One tracker's last announce, as the tracker task saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TrackerStatus {
    /// The announce URL, as the torrent lists it.
    pub url: String,
    /// Its tier in the announce-list (BEP 12), from 0.
    pub tier: usize,
    /// Seconds since the Unix epoch of its last announce's answer (or
    /// failure).
    pub last_announce_unix: u64,
    pub last_announce_succeeded: bool,
    /// `Success`, or why it failed (the tracker's `failure reason`, a
    /// timeout, a refused connection...).
    pub last_announce_result: String,
    /// The last announce got no answer in time.
    pub last_announce_timed_out: bool,
    /// Peers in its last answer.
    pub last_announce_peers: u32,
    /// Seeders and leechers, as its last answer said (if it said).
    pub seeders: Option<u32>,
    pub leechers: Option<u32>,
    /// Seconds since the Unix epoch when the next regular announce is due
    /// (none after `stopped`).
    pub next_announce_unix: Option<u64>,
}

/// Torrents of more pieces than this get no [`PieceMap`] (it costs 4
/// bytes a piece, rebuilt with every status).
pub const PIECE_MAP_PIECES_MAX: u32 = 1 << 20;

/// The state of every piece, for a piece map.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PieceMap {
    /// The pieces we have: a bitfield, first piece in the high bit of the
    /// first byte (as BEP 3's bitfield message), hex.
    pub have: String,
    /// Pieces being downloaded or verified.
    pub downloading: Vec<u32>,
    /// Connected neighbours that have each piece.
    pub availability: Vec<u32>,
}

/// One connected peer as the user sees it (`--peers`, `--json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NeighbourStatus {
    pub addr: SocketAddr,
    /// The client it runs, from its peer id (`libtorrent 2.0`, `-TR3000-`...).
    pub client: String,
    /// We dialled it (false: it connected to us).
    pub outgoing: bool,
    /// The choker's last verdict: `unchoked` (a regular slot), `optimistic`,
    /// `choked` or `snubbed` (`choked` until the first rechoke saw it).
    pub choke: &'static str,
    /// Why, in words (`top-4 by download rate (#2)`, `optimistic since 12 s`).
    pub reason: String,
    /// Seconds it has been in that state.
    #[serde(serialize_with = "tenths")]
    pub choke_for_s: f64,
    /// Bytes/s over the last 20 s, from it and to it.
    #[serde(serialize_with = "whole")]
    pub download_rate: f64,
    #[serde(serialize_with = "whole")]
    pub upload_rate: f64,
    pub downloaded: u64,
    pub uploaded: u64,
    /// It unchokes us / wants data from us / we want data from it.
    pub unchokes_us: bool,
    pub interested: bool,
    pub we_are_interested: bool,
    /// Pieces it has.
    pub pieces: u32,
    pub requests_in_flight: usize,
}

fn whole<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(v.max(0.0).round() as u64)
}

fn tenths<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((v * 10.0).round() / 10.0)
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_serializes_with_its_torrent_and_rounded_figures() {
        let s = TorrentStatus {
            info_hash: "ab".repeat(20),
            name: "tree".into(),
            state: TorrentState::Downloading,
            download_rate: 1234.6,
            elapsed_s: 1.26,
            ..TorrentStatus::default()
        };
        let v: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(v["info_hash"], "ab".repeat(20));
        assert_eq!(v["name"], "tree");
        assert_eq!(v["state"], "downloading");
        assert_eq!(v["download_rate"], 1235);
        assert_eq!(v["elapsed_s"], 1.3);
        assert!(v.get("final").is_none() && v.get("checked").is_none());
        let last = TorrentStatus {
            is_final: true,
            state: TorrentState::Completed,
            ..s
        };
        let v = serde_json::to_value(&last).unwrap();
        assert_eq!(
            (v["final"].as_bool(), v["state"].as_str()),
            (Some(true), Some("completed"))
        );
    }
}
