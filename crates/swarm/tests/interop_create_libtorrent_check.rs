//! Interop, `swarm create` → libtorrent: for every content shape, the torrent
//! swarm makes loads in libtorrent with the same info-hash, size and files,
//! and libtorrent's check of the original data finds every piece (it goes
//! straight to seeding).
//!
//! Needs Debian's /usr/bin/python3 with python3-libtorrent: under CI=true a
//! missing one fails the test, otherwise it skips.

mod interop_create_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use interop_create_common::{PIECE, Shape, expected_files, lt_info, lt_script, view_files};
use swarm_testkit::{PYTHON, TestDir, require_python_libtorrent};

/// Bound on libtorrent's check; the shapes are a few MiB at most.
const CHECK_TIMEOUT_S: u32 = 60;

fn swarm() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

/// `swarm create CONTENT -o OUT [args]`; returns the info-hash it printed.
fn swarm_create(content: &Path, out: &Path, args: &[&str]) -> String {
    let output = Command::new(swarm())
        .arg("create")
        .arg(content)
        .arg("-o")
        .arg(out)
        .args(args)
        .output()
        .expect("run swarm create");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "swarm create failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("info-hash"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|| panic!("no info-hash line in:\n{stdout}"))
}

/// libtorrent checks `torrent` against the data under `data_dir`; returns
/// whether it went to seeding with every piece, and its JSON report.
fn lt_check(torrent: &Path, data_dir: &Path) -> (bool, serde_json::Value) {
    let out = Command::new(PYTHON)
        .arg(lt_script())
        .arg("check")
        .arg(torrent)
        .arg(data_dir)
        .args(["--timeout", &CHECK_TIMEOUT_S.to_string()])
        .output()
        .expect("run lt_torrent.py check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "lt_torrent.py check printed no JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

fn check_shape(shape: Shape, piece_args: &[&str]) {
    if !require_python_libtorrent() {
        return;
    }
    let t = TestDir::new("create-lt");
    let data = t.sub("data");
    let content = shape.build(&data);
    let torrent = t.path().join("made-by-swarm.torrent");
    let info_hash = swarm_create(&content, &torrent, piece_args);

    let view = lt_info(&torrent);
    assert_eq!(view["info_hash"], info_hash.as_str(), "{view}");
    assert_eq!(view_files(&view), expected_files(&content, false), "{view}");
    let total: u64 = expected_files(&content, false).iter().map(|f| f.1).sum();
    assert_eq!(view["total_size"], total, "{view}");
    if piece_args.is_empty() {
        assert_eq!(view["piece_length"], 256 * 1024, "default piece size");
    } else {
        assert_eq!(view["piece_length"], PIECE, "{view}");
    }
    assert_eq!(view["private"], false);

    let (seeding, report) = lt_check(&torrent, &data);
    assert!(seeding, "libtorrent did not find all the data: {report}");
    assert_eq!(report["info_hash"], info_hash.as_str());
    assert_eq!(report["progress"], 1.0, "{report}");
    assert_eq!(report["pieces_have"], report["num_pieces"], "{report}");
}

const PIECE_ARG: &[&str] = &["--piece-size", "32K"];

#[test]
fn single_file() {
    check_shape(Shape::SingleFile, PIECE_ARG);
}

#[test]
fn single_file_default_piece_size() {
    check_shape(Shape::SingleFile, &[]);
}

#[test]
fn multi_file() {
    check_shape(Shape::MultiFile, PIECE_ARG);
}

#[test]
fn one_byte_file() {
    check_shape(Shape::OneByte, PIECE_ARG);
}

#[test]
fn file_of_exactly_one_piece() {
    check_shape(Shape::ExactlyOnePiece, PIECE_ARG);
}

#[test]
fn file_of_one_piece_plus_one_byte() {
    check_shape(Shape::OnePiecePlusOne, PIECE_ARG);
}

#[test]
fn empty_files_inside_a_folder() {
    check_shape(Shape::EmptyFileInFolder, PIECE_ARG);
}

#[test]
fn non_ascii_names() {
    check_shape(Shape::NonAscii, PIECE_ARG);
}

/// The check above can fail: one changed byte costs libtorrent one piece.
#[test]
fn a_changed_byte_is_a_missing_piece_for_libtorrent() {
    if !require_python_libtorrent() {
        return;
    }
    let t = TestDir::new("create-lt-corrupt");
    let data = t.sub("data");
    let content = Shape::MultiFile.build(&data);
    let torrent = t.path().join("t.torrent");
    swarm_create(&content, &torrent, PIECE_ARG);
    let victim = content.join("middle.dat");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100_000] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let (seeding, report) = lt_check(&torrent, &data);
    assert!(!seeding, "{report}");
    let have = report["pieces_have"].as_u64().unwrap();
    let all = report["num_pieces"].as_u64().unwrap();
    assert_eq!(have + 1, all, "exactly one piece fails: {report}");
}

/// Private and trackers reach libtorrent as given: tiers in order, commas
/// inside one tier.
#[test]
fn private_flag_and_tracker_tiers() {
    if !require_python_libtorrent() {
        return;
    }
    let t = TestDir::new("create-lt-private");
    let content = Shape::OneByte.build(&t.sub("data"));
    let torrent = t.path().join("t.torrent");
    swarm_create(
        &content,
        &torrent,
        &[
            "--private",
            "-t",
            "http://a.example/announce,udp://b.example:80",
            "-t",
            "udp://c.example:6969/announce",
            "--comment",
            "hello, ünïcode",
        ],
    );
    let view = lt_info(&torrent);
    assert_eq!(view["private"], true, "{view}");
    assert_eq!(
        view["trackers"],
        serde_json::json!([
            ["http://a.example/announce", "udp://b.example:80"],
            ["udp://c.example:6969/announce"]
        ]),
        "{view}"
    );
    assert_eq!(view["comment"], "hello, ünïcode");
}
