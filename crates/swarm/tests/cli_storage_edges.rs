//! Data on disk that does not fit the torrent, and torrents swarm cannot
//! use, from the outside: exit codes and the first words of the one error
//! line. No network peer needed.
//! - a file longer than the torrent says: `download` truncates it (the
//!   result is byte-identical), `seed` refuses it and leaves it untouched;
//! - a path longer than the file system allows: exit 2, nothing created;
//! - a v2-only torrent, or a magnet with only `urn:btmh:`: exit 2, one line.

use std::path::{Path, PathBuf};
use std::process::Output;

use swarm_testkit::cli::one_error;
use swarm_testkit::raw_bencode::{B, bytes, s};
use swarm_testkit::{TestDir, data};
use swarm_wire::metainfo::{NewContent, TorrentBuilder};

fn swarm() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn run(dir: &Path, args: &[&str]) -> Output {
    swarm_testkit::cli::run(&swarm(), dir, args)
}

/// `swarm create tree -o t.torrent` in `t`.
fn create(t: &TestDir, content: &str) {
    let o = run(
        t.path(),
        &["create", content, "-o", "t.torrent", "--piece-size", "16K"],
    );
    assert!(o.status.success(), "{o:?}");
}

#[test]
fn a_longer_file_is_truncated_by_download_and_refused_by_seed() {
    let t = TestDir::new("cli-longer");
    let src = t.sub("src");
    let content = data::tree(&src, "tree", &[("a", 1000), ("b/c", 40_000)], 5);
    create(&t, "src/tree");
    let original = std::fs::read(content.join("b/c")).unwrap();
    let mut longer = original.clone();
    longer.extend_from_slice(&[0xAB; 1 << 20]);

    // Seeding never changes the user's data: refused, left untouched.
    std::fs::write(content.join("b/c"), &longer).unwrap();
    let o = run(
        t.path(),
        &["seed", "t.torrent", "-d", "src", "--listen", "127.0.0.1:0"],
    );
    one_error(
        &o,
        1,
        "error: src/tree/b/c is 1088576 bytes long, the torrent says 40000",
    );
    assert!(
        std::fs::read(content.join("b/c")).unwrap() == longer,
        "untouched"
    );

    // A download truncates it to the torrent's size before the check, says
    // so, and ends complete with the right bytes (nothing to fetch).
    let o = std::process::Command::new(swarm())
        .current_dir(t.path())
        .args([
            "download",
            "t.torrent",
            "-o",
            "src",
            "--listen",
            "127.0.0.1:0",
            "--json",
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let stderr = swarm_testkit::cli::stderr(&o);
    assert_eq!(
        stderr.matches("truncated to its size").count(),
        1,
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["complete"], true, "{stdout}");
    assert_eq!(last["downloaded"], 0, "{stdout}");
    assert!(
        std::fs::read(content.join("b/c")).unwrap() == original,
        "byte-identical"
    );
}

#[test]
fn a_path_the_file_system_refuses_is_bad_input_and_nothing_is_created() {
    let t = TestDir::new("cli-long-path");
    let long = "n".repeat(300);
    let files = vec![
        (vec!["ok".to_string()], 10),
        (vec!["sub".to_string(), long.clone()], 10),
    ];
    let (torrent, _) = TorrentBuilder::new(
        "tree",
        16 * 1024,
        NewContent::Folder { files },
        vec![[0; 20]],
    )
    .build()
    .unwrap();
    std::fs::write(t.path().join("t.torrent"), torrent).unwrap();
    let o = run(
        t.path(),
        &[
            "download",
            "t.torrent",
            "-o",
            "out",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let line = one_error(&o, 2, "error: cannot download here: out/tree/sub/nnnn");
    assert!(line.contains("300 bytes long"), "{line}");
    assert!(!t.path().join("out").exists(), "nothing created");
}

#[test]
fn v2_only_torrents_and_magnets_are_refused_in_one_line() {
    let t = TestDir::new("cli-v2-only");
    let v2 = bytes(&B::D(vec![(
        "info",
        B::D(vec![
            ("file tree", B::D(vec![])),
            ("meta version", B::I(2)),
            ("name", s("x")),
            ("piece length", B::I(16384)),
        ]),
    )]));
    std::fs::write(t.path().join("v2.torrent"), v2).unwrap();
    let btmh =
        "magnet:?xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e";
    for args in [
        &["info", "v2.torrent"][..],
        &["info", btmh],
        &[
            "download",
            "v2.torrent",
            "-o",
            "out",
            "--listen",
            "127.0.0.1:0",
        ],
        &["seed", "v2.torrent", "-d", ".", "--listen", "127.0.0.1:0"],
    ] {
        let o = run(t.path(), args);
        let line = one_error(&o, 2, "error: ");
        assert!(
            line.contains("v2-only torrents are not supported yet"),
            "{args:?}: {line}"
        );
    }
    assert!(!t.path().join("out").exists());
}
