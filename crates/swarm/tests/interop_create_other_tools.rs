//! Interop, other tools → `swarm info`: torrents made by mktorrent, by
//! transmission-create and by libtorrent, for every content shape, are read by
//! `swarm info --json` with the same info-hash, name, size, piece length,
//! piece count, private flag, file list and trackers that libtorrent reports.
//!
//! What each tool can make (checked here, with 32 KiB pieces, the smallest
//! mktorrent accepts):
//! - mktorrent 1.1: every shape, empty files included.
//! - transmission-create 3.00: every shape, but it leaves empty files out of
//!   the torrent (the test expects exactly that).
//! - libtorrent 2.0 (`lt.create_torrent`, v1-only: 2.0 makes hybrid v1+v2 by
//!   default): every shape, empty files included (it lists them in its own
//!   order, not sorted).
//!
//! Needs mktorrent, transmission-create and Debian's /usr/bin/python3 with
//! python3-libtorrent: under CI=true a missing one fails the test, otherwise
//! it skips.

mod interop_create_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use interop_create_common::{
    PIECE, Shape, assert_same_view, expected_files, lt_script, view_files,
};
use swarm_testkit::peers::require_swarm_subcommand;
use swarm_testkit::{PYTHON, TestDir, require_program, require_python_libtorrent};

fn swarm() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

#[derive(Debug, Clone, Copy)]
enum Tool {
    Mktorrent,
    TransmissionCreate,
    Libtorrent,
}

impl Tool {
    fn available(self) -> bool {
        let tool = match self {
            Tool::Mktorrent => require_program("mktorrent"),
            Tool::TransmissionCreate => require_program("transmission-create"),
            Tool::Libtorrent => true,
        };
        // libtorrent is the reference view in every case.
        tool && require_python_libtorrent() && require_swarm_subcommand(&swarm(), "info")
    }

    /// Makes a torrent of `content` at `out` with [`PIECE`]-byte pieces.
    fn make(self, content: &Path, out: &Path) {
        let mut cmd = match self {
            Tool::Mktorrent => {
                let mut c = Command::new("mktorrent");
                // 2^15 = 32 KiB pieces
                c.args(["-l", "15", "-o"]).arg(out).arg(content);
                c
            }
            Tool::TransmissionCreate => {
                let mut c = Command::new("transmission-create");
                c.args(["-s", &(PIECE / 1024).to_string(), "-o"])
                    .arg(out)
                    .arg(content);
                c
            }
            Tool::Libtorrent => {
                let mut c = Command::new(PYTHON);
                c.arg(lt_script())
                    .arg("create")
                    .arg(content)
                    .arg(out)
                    .args(["--piece-size", &PIECE.to_string()]);
                c
            }
        };
        let o = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
        assert!(
            o.status.success() && out.is_file(),
            "{cmd:?} failed ({}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn drops_empty_files(self) -> bool {
        matches!(self, Tool::TransmissionCreate)
    }
}

fn read_back(tool: Tool, shape: Shape) {
    if !tool.available() {
        return;
    }
    let t = TestDir::new("read-other");
    let content = shape.build(&t.sub("data"));
    let torrent = t.path().join("made-by-other.torrent");
    tool.make(&content, &torrent);

    let view = assert_same_view(&swarm(), &torrent);
    // And both views match the content on disk, so the comparison above was
    // about the right torrent.
    let skip_empty = tool.drops_empty_files() && shape.has_empty_files();
    let files = expected_files(&content, skip_empty);
    assert_eq!(view_files(&view), files, "{tool:?}: {view}");
    let total: u64 = files.iter().map(|f| f.1).sum();
    assert_eq!(view["total_size"], total);
    assert_eq!(view["piece_length"], PIECE);
    assert_eq!(view["num_pieces"], total.div_ceil(PIECE));
}

macro_rules! shape_tests {
    ($module:ident, $tool:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn single_file() {
                read_back($tool, Shape::SingleFile);
            }
            #[test]
            fn multi_file() {
                read_back($tool, Shape::MultiFile);
            }
            #[test]
            fn one_byte_file() {
                read_back($tool, Shape::OneByte);
            }
            #[test]
            fn file_of_exactly_one_piece() {
                read_back($tool, Shape::ExactlyOnePiece);
            }
            #[test]
            fn file_of_one_piece_plus_one_byte() {
                read_back($tool, Shape::OnePiecePlusOne);
            }
            #[test]
            fn empty_files_inside_a_folder() {
                read_back($tool, Shape::EmptyFileInFolder);
            }
            #[test]
            fn non_ascii_names() {
                read_back($tool, Shape::NonAscii);
            }
        }
    };
}

shape_tests!(mktorrent, Tool::Mktorrent);
shape_tests!(transmission_create, Tool::TransmissionCreate);
shape_tests!(libtorrent, Tool::Libtorrent);

/// Trackers in tiers and the private flag, as libtorrent and mktorrent write
/// them, read the same way by swarm.
#[test]
fn mktorrent_tiers_and_private_flag() {
    if !Tool::Mktorrent.available() {
        return;
    }
    let t = TestDir::new("read-other-tiers");
    let content = Shape::OneByte.build(&t.sub("data"));
    let torrent = t.path().join("t.torrent");
    let o = Command::new("mktorrent")
        .args(["-l", "15", "-p", "-c", "a comment"])
        .args(["-a", "http://a.example/announce,udp://b.example:80"])
        .args(["-a", "udp://c.example:6969/announce"])
        .arg("-o")
        .arg(&torrent)
        .arg(&content)
        .output()
        .expect("run mktorrent");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let view = assert_same_view(&swarm(), &torrent);
    assert_eq!(view["private"], true);
    assert_eq!(
        view["trackers"],
        serde_json::json!([
            ["http://a.example/announce", "udp://b.example:80"],
            ["udp://c.example:6969/announce"]
        ])
    );
}
