//! Making `.torrent` files with libtorrent (through `tests/py/lt_peer.py create`).
//!
//! The torrents are v1-only and without pad files, so every client under test
//! (Transmission 3.00 included) reads them, and swarm is tested against a
//! metainfo it did not write itself; [`make_hybrid_torrent`] makes what
//! libtorrent makes by default (v1+v2 hybrid, BEP 47 pad files).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Piece sizes the interop tests cover.
pub const PIECE_16_KIB: u32 = 16 * 1024;
pub const PIECE_256_KIB: u32 = 256 * 1024;
pub const PIECE_4_MIB: u32 = 4 * 1024 * 1024;

/// A `.torrent` file made for a test, and what libtorrent says about it.
#[derive(Debug, Clone)]
pub struct TorrentFile {
    pub path: PathBuf,
    /// The v1 info-hash, 40 lowercase hex digits.
    pub info_hash_hex: String,
    /// The torrent's name: the file name of a single-file torrent, the root
    /// directory of a multi-file one.
    pub name: String,
    pub total_size: u64,
    pub piece_size: u32,
    pub num_pieces: u32,
    pub num_files: u32,
    /// The v2 info-hash (64 hex digits) of a hybrid torrent.
    pub info_hash_v2_hex: Option<String>,
    /// BEP 47 pad files libtorrent put in (counted in `num_files`).
    pub pad_files: u32,
}

/// The path of `tests/py/lt_peer.py` in this workspace.
pub fn lt_peer_script() -> PathBuf {
    crate::workspace_root().join("tests/py/lt_peer.py")
}

/// Makes a v1-only torrent of `content` (a file or a directory) at `out`.
/// `trackers` become one tier each, in order.
pub fn make_torrent(
    content: &Path,
    out: &Path,
    piece_size: u32,
    trackers: &[String],
) -> TorrentFile {
    lt_create(content, out, piece_size, trackers, false)
}

/// Makes a torrent with libtorrent's default `create_torrent`: a v1+v2
/// hybrid, with a pad file after every file but the last that does not end
/// on a piece boundary.
pub fn make_hybrid_torrent(content: &Path, out: &Path, piece_size: u32) -> TorrentFile {
    let t = lt_create(content, out, piece_size, &[], true);
    assert_eq!(
        t.info_hash_v2_hex.as_ref().map(String::len),
        Some(64),
        "a hybrid torrent has a v2 info-hash"
    );
    t
}

fn lt_create(
    content: &Path,
    out: &Path,
    piece_size: u32,
    trackers: &[String],
    hybrid: bool,
) -> TorrentFile {
    let mut cmd = Command::new(crate::PYTHON);
    cmd.arg(lt_peer_script())
        .args(["create", "--content"])
        .arg(content)
        .arg("--out")
        .arg(out)
        .args(["--piece-size", &piece_size.to_string()]);
    for t in trackers {
        cmd.args(["--tracker", t]);
    }
    if hybrid {
        cmd.arg("--hybrid");
    }
    let output = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "lt_peer.py create failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let v = crate::proc::json_objects(&stdout)
        .into_iter()
        .last()
        .unwrap_or_else(|| panic!("no JSON from lt_peer.py create: {stdout}"));
    let field = |k: &str| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {v}"))
    };
    let t = TorrentFile {
        path: out.to_path_buf(),
        info_hash_hex: v["info_hash"].as_str().expect("info_hash").to_string(),
        name: v["name"].as_str().expect("name").to_string(),
        total_size: field("total_size"),
        piece_size: field("piece_size") as u32,
        num_pieces: field("num_pieces") as u32,
        num_files: field("num_files") as u32,
        info_hash_v2_hex: v["info_hash_v2"].as_str().map(str::to_string),
        pad_files: field("pad_files") as u32,
    };
    assert_eq!(t.info_hash_hex.len(), 40, "v1 info-hash: {v}");
    assert_eq!(t.piece_size, piece_size, "libtorrent kept the piece size");
    t
}
