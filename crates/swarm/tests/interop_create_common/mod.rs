//! Shared by the `interop_create_*` tests: the content shapes, and the views
//! of a .torrent by swarm (`swarm info --json`) and by libtorrent
//! (`tests/py/lt_torrent.py info`, under Debian's /usr/bin/python3).
#![allow(dead_code)] // each test crate uses part of it

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use swarm_testkit::{PYTHON, data, workspace_root};

/// One piece length for every shape: the smallest that mktorrent accepts
/// (`-l 15`), so the shapes have several pieces and every tool can make them.
pub const PIECE: u64 = 32 * 1024;

/// The shapes every tool is tested with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One file of an odd size (31 pieces, the last one short).
    SingleFile,
    /// A folder of files of odd sizes, nested, pieces crossing file boundaries.
    MultiFile,
    /// A single file of one byte.
    OneByte,
    /// A single file of exactly one piece.
    ExactlyOnePiece,
    /// A single file of one piece plus one byte (two pieces, the last of 1 byte).
    OnePiecePlusOne,
    /// A folder with empty files among others (first, middle, last).
    EmptyFileInFolder,
    /// A folder and files whose names are not ASCII.
    NonAscii,
}

impl Shape {
    pub const ALL: [Shape; 7] = [
        Shape::SingleFile,
        Shape::MultiFile,
        Shape::OneByte,
        Shape::ExactlyOnePiece,
        Shape::OnePiecePlusOne,
        Shape::EmptyFileInFolder,
        Shape::NonAscii,
    ];

    /// Writes the content under `dir`; returns the path to share (a file or
    /// a folder inside `dir`).
    pub fn build(self, dir: &Path) -> PathBuf {
        match self {
            Shape::SingleFile => data::single_file(dir, "single.bin", 1_000_003, 1),
            Shape::MultiFile => data::tree(dir, "multi", data::ODD_TREE, 2),
            Shape::OneByte => data::single_file(dir, "one-byte", 1, 3),
            Shape::ExactlyOnePiece => data::single_file(dir, "one-piece.bin", PIECE, 4),
            Shape::OnePiecePlusOne => data::single_file(dir, "piece-plus-one.bin", PIECE + 1, 5),
            Shape::EmptyFileInFolder => data::tree(
                dir,
                "with-empty",
                &[
                    ("0-empty-first", 0),
                    ("a.bin", 40_000),
                    ("m/empty-middle", 0),
                    ("n.bin", 32_767),
                    ("z-empty-last", 0),
                ],
                6,
            ),
            Shape::NonAscii => data::tree(
                dir,
                "données-ü",
                &[
                    ("日本語/ファイル.txt", 50_001),
                    ("café/ñandú.bin", 33_333),
                    ("emoji-🎉.dat", 7),
                    ("Ελληνικά", 65_536),
                ],
                7,
            ),
        }
    }

    /// Whether the shape holds empty files (Transmission drops those).
    pub fn has_empty_files(self) -> bool {
        self == Shape::EmptyFileInFolder
    }
}

/// The fields both views must agree on.
pub const COMPARED_KEYS: [&str; 8] = [
    "name",
    "info_hash",
    "total_size",
    "piece_length",
    "num_pieces",
    "private",
    "files",
    "trackers",
];

fn run_json(mut cmd: Command) -> Value {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{cmd:?} printed no JSON ({e}):\n{stdout}"))
}

/// `swarm info --json TORRENT`.
pub fn swarm_info(swarm: &Path, torrent: &Path) -> Value {
    let mut cmd = Command::new(swarm);
    cmd.arg("info").arg("--json").arg(torrent);
    run_json(cmd)
}

/// The path of `tests/py/lt_torrent.py`.
pub fn lt_script() -> PathBuf {
    workspace_root().join("tests/py/lt_torrent.py")
}

/// libtorrent's view of `torrent`, with the keys of `swarm info --json`.
pub fn lt_info(torrent: &Path) -> Value {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(lt_script()).arg("info").arg(torrent);
    run_json(cmd)
}

/// Asserts that swarm and libtorrent read `torrent` the same way, and returns
/// libtorrent's view.
pub fn assert_same_view(swarm: &Path, torrent: &Path) -> Value {
    let mut ours = swarm_info(swarm, torrent);
    let theirs = lt_info(torrent);
    // libtorrent shuffles URLs inside a tier (BEP 12) and lt_torrent.py
    // sorts them; swarm keeps the file's order: compare tiers as sorted.
    if let Some(tiers) = ours["trackers"].as_array_mut() {
        for tier in tiers {
            if let Some(urls) = tier.as_array_mut() {
                urls.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    for key in COMPARED_KEYS {
        assert_eq!(
            ours[key],
            theirs[key],
            "`{key}` of {}: swarm (left) and libtorrent (right) disagree\nswarm: {ours}\nlibtorrent: {theirs}",
            torrent.display()
        );
    }
    theirs
}

/// The files of `content` as a torrent lists them, `{path, length}` with the
/// path under the download folder, sorted by path (each torrent may order
/// them its own way).
pub fn expected_files(content: &Path, skip_empty: bool) -> Vec<(String, u64)> {
    let name = content
        .file_name()
        .expect("content has a name")
        .to_str()
        .expect("UTF-8 name");
    let mut files: Vec<(String, u64)> = data::list_files(content)
        .into_iter()
        .filter(|(_, len)| !(skip_empty && *len == 0))
        .map(|(rel, len)| {
            let rel = rel.to_str().expect("UTF-8 path").to_owned();
            let path = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{name}/{rel}")
            };
            (path, len)
        })
        .collect();
    files.sort();
    files
}

/// The `files` of a view as sorted `(path, length)` pairs.
pub fn view_files(view: &Value) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = view["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files in {view}"))
        .iter()
        .map(|f| {
            (
                f["path"].as_str().expect("path").to_owned(),
                f["length"].as_u64().expect("length"),
            )
        })
        .collect();
    files.sort();
    files
}
