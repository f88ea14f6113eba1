//! `swarm info` from the outside: a hostile metainfo corpus (exit code 2, one
//! line naming the problem, nothing written, no panic), magnets, text and JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use swarm_testkit::{TestDir, data};

fn swarm() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn run(dir: &Path, args: &[&str]) -> Output {
    swarm_testkit::cli::run(&swarm(), dir, args)
}

use swarm_testkit::cli::stderr;

use swarm_testkit::cli::names;

use swarm_testkit::raw_bencode::{B, bytes, s};

const PIECE: i128 = 16384;

/// A well-formed multi-file torrent whose info dict holds `files` (paths as
/// component lists) and `extra` keys after them; `pieces` is computed.
fn multi(files: &[(&[&str], i128)], piece: i128) -> B {
    let total: i128 = files.iter().map(|f| f.1.max(0)).sum();
    let n = if piece > 0 {
        (total + piece - 1) / piece
    } else {
        1
    };
    let n = n.clamp(0, 1000) as usize;
    B::D(vec![(
        "info",
        B::D(vec![
            (
                "files",
                B::L(
                    files
                        .iter()
                        .map(|(p, len)| {
                            B::D(vec![
                                ("length", B::I(*len)),
                                ("path", B::L(p.iter().map(|c| s(c)).collect())),
                            ])
                        })
                        .collect(),
                ),
            ),
            ("name", s("top")),
            ("piece length", B::I(piece)),
            ("pieces", B::S(vec![7; 20 * n])),
        ]),
    )])
}

fn single(name: &str, length: i128, piece: i128, pieces_len: usize) -> B {
    B::D(vec![(
        "info",
        B::D(vec![
            ("length", B::I(length)),
            ("name", s(name)),
            ("piece length", B::I(piece)),
            ("pieces", B::S(vec![1; pieces_len])),
        ]),
    )])
}

fn hostile_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, Vec<u8>)> = vec![
        ("empty file", vec![]),
        ("not bencode", b"hello world".to_vec()),
        ("truncated", b"d4:infod6:lengthi5e".to_vec()),
        ("trailing data", {
            let mut b = bytes(&single("a", 5, PIECE, 20));
            b.extend_from_slice(b"junk");
            b
        }),
        ("a list, not a dict", b"l4:spame".to_vec()),
        (
            "no info dict",
            bytes(&B::D(vec![("announce", s("http://x/a"))])),
        ),
        (
            "unsorted keys in info",
            bytes(&B::D(vec![(
                "info",
                B::D(vec![
                    ("name", s("a")),
                    ("length", B::I(5)),
                    ("piece length", B::I(PIECE)),
                    ("pieces", B::S(vec![0; 20])),
                ]),
            )])),
        ),
        (
            "duplicate key",
            bytes(&B::D(vec![(
                "info",
                B::D(vec![
                    ("length", B::I(5)),
                    ("length", B::I(6)),
                    ("name", s("a")),
                    ("piece length", B::I(PIECE)),
                    ("pieces", B::S(vec![0; 20])),
                ]),
            )])),
        ),
        (
            "leading zero",
            bytes(&B::D(vec![(
                "info",
                B::D(vec![
                    ("length", B::Raw(b"i05e")),
                    ("name", s("a")),
                    ("piece length", B::I(PIECE)),
                    ("pieces", B::S(vec![0; 20])),
                ]),
            )])),
        ),
        (
            "minus zero",
            bytes(&B::D(vec![(
                "info",
                B::D(vec![
                    ("length", B::Raw(b"i-0e")),
                    ("name", s("a")),
                    ("piece length", B::I(PIECE)),
                    ("pieces", B::S(vec![0; 20])),
                ]),
            )])),
        ),
        ("deep nesting", {
            let mut b = b"d4:info".to_vec();
            b.extend(std::iter::repeat_n(b'l', 100_000));
            b.extend(std::iter::repeat_n(b'e', 100_000));
            b.push(b'e');
            b
        }),
        (
            "string length past the end",
            b"d4:info999999999999:xe".to_vec(),
        ),
        ("zero piece length", bytes(&single("a", 5, 0, 20))),
        ("negative piece length", bytes(&single("a", 5, -16384, 20))),
        ("huge piece length", bytes(&single("a", 5, 1 << 40, 20))),
        (
            "pieces not a multiple of 20",
            bytes(&single("a", 5, PIECE, 21)),
        ),
        (
            "too few pieces for the length",
            bytes(&single("a", 3 * PIECE, PIECE, 40)),
        ),
        (
            "too many pieces for the length",
            bytes(&single("a", 5, PIECE, 60)),
        ),
        ("negative length", bytes(&single("a", -5, PIECE, 20))),
        (
            "overflowing length",
            bytes(&single("a", i128::from(u64::MAX) * 4, PIECE, 20)),
        ),
        ("name ..", bytes(&single("..", 5, PIECE, 20))),
        ("name .", bytes(&single(".", 5, PIECE, 20))),
        ("empty name", bytes(&single("", 5, PIECE, 20))),
        ("name with a slash", bytes(&single("../etc", 5, PIECE, 20))),
        ("absolute name", bytes(&single("/etc/passwd", 5, PIECE, 20))),
        ("name with NUL", bytes(&single("a\0b", 5, PIECE, 20))),
    ];
    let traversal: &[(&str, &[&str])] = &[
        ("path ..", &["..", "..", "etc", "passwd"]),
        ("path component ..", &["a", "..", "..", "b"]),
        ("path component with slash", &["a/../../b"]),
        ("absolute path component", &["/etc/passwd"]),
        ("path with backslash", &["..\\..\\windows"]),
        ("empty path component", &["a", "", "b"]),
        ("path component .", &[".", "b"]),
        ("empty path list", &[]),
        ("path with NUL", &["a\0"]),
    ];
    for (label, path) in traversal {
        v.push((label, bytes(&multi(&[(&["ok"], 10), (path, 10)], PIECE))));
    }
    v.push((
        "negative file length",
        bytes(&multi(&[(&["a"], 10), (&["b"], -10)], PIECE)),
    ));
    v.push((
        "files summing past u64",
        bytes(&multi(
            &[(&["a"], 1 << 63), (&["b"], 1 << 63), (&["c"], 5)],
            1 << 22,
        )),
    ));
    v.push(("no files", bytes(&multi(&[], PIECE))));
    // A 4 MB file of empty lists: refused by the bencode value budget before
    // its tree outgrows ~140 MB (each `le` costs 56 bytes of tree).
    v.push(("too many values", {
        let n = swarm_wire::bencode::VALUES_MAX;
        let mut b = b"d4:infod5:filesl".to_vec();
        b.extend(std::iter::repeat_n(*b"le", n).flatten());
        b.extend_from_slice(b"eee");
        b
    }));
    v
}

#[test]
fn hostile_torrents_exit_2_with_one_line_and_write_nothing() {
    let t = TestDir::new("cli-info-hostile");
    let corpus = t.sub("corpus");
    let work = t.sub("work");
    for (i, (label, bytes)) in hostile_corpus().into_iter().enumerate() {
        let file = corpus.join(format!("{i:02}.torrent"));
        std::fs::write(&file, &bytes).unwrap();
        for json in [false, true] {
            let mut args = vec!["info", file.to_str().unwrap()];
            if json {
                args.push("--json");
            }
            let o = run(&work, &args);
            let err = stderr(&o);
            assert_eq!(
                o.status.code(),
                Some(2),
                "{label}: exit {:?}, stderr:\n{err}",
                o.status.code()
            );
            assert!(
                o.stdout.is_empty(),
                "{label}: printed {:?}",
                String::from_utf8_lossy(&o.stdout)
            );
            let lines: Vec<&str> = err.lines().collect();
            assert_eq!(lines.len(), 1, "{label}: one line expected:\n{err}");
            assert!(lines[0].starts_with("error: "), "{label}: {err}");
            assert!(
                lines[0].len() > "error: ".len() + 10,
                "{label}: says what is wrong: {err}"
            );
            assert!(names(&work).is_empty(), "{label}: wrote {:?}", names(&work));
        }
    }
}

#[test]
fn missing_file_is_exit_1() {
    let t = TestDir::new("cli-info-missing");
    let o = run(t.path(), &["info", "nope.torrent"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
}

const HEX: &str = "c9e15763f722f23e98a29decdfae341b98d53056";
/// The same 20 bytes in base32 (RFC 4648, as BEP 9 allows).
const BASE32: &str = "ZHQVOY7XELZD5GFCTXWN7LRUDOMNKMCW";

#[test]
fn magnet_hex_and_base32_give_the_same_info_hash() {
    let t = TestDir::new("cli-info-magnet");
    let hex = format!(
        "magnet:?xt=urn:btih:{}&dn=Cosmos%20Laundromat&tr=udp%3A%2F%2Ftracker.example%3A6969&tr=http://b.example/announce&x.pe=127.0.0.1:6881",
        HEX.to_uppercase()
    );
    let o = run(t.path(), &["info", "--json", &hex]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["info_hash"], HEX);
    assert_eq!(v["name"], "Cosmos Laundromat");
    assert_eq!(v["source"], "magnet");
    assert_eq!(v["total_size"], serde_json::Value::Null);
    assert_eq!(v["files"], serde_json::Value::Null);
    let trackers: Vec<String> = v["trackers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|tier| tier.as_array().unwrap().iter())
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        trackers,
        ["udp://tracker.example:6969", "http://b.example/announce"]
    );
    assert_eq!(v["peers"], serde_json::json!(["127.0.0.1:6881"]));

    let b32 = format!("magnet:?xt=urn:btih:{BASE32}");
    let o = run(t.path(), &["info", "--json", &b32]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["info_hash"], HEX);

    // Text form names the info-hash too.
    let o = run(t.path(), &["info", &b32]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(HEX));
}

#[test]
fn bad_magnets_exit_2_with_one_line() {
    let t = TestDir::new("cli-info-bad-magnet");
    for m in [
        "magnet:?dn=no-hash",
        "magnet:?xt=urn:btih:1234",
        "magnet:?xt=urn:btih:zz215763f722f23e98a29decdfae341b98d53056",
        "magnet:?xt=urn:btih:ZHQVOY7XELZD5GFCTXG57LRUDOMNKMC1",
        "magnet:?xt=urn:sha1:c9e15763f722f23e98a29decdfae341b98d53056",
        "magnet:",
    ] {
        let o = run(t.path(), &["info", m]);
        assert_eq!(o.status.code(), Some(2), "{m}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{m}: {}", stderr(&o));
        assert!(names(t.path()).is_empty());
    }
}

#[test]
fn info_of_a_created_torrent_text_and_json() {
    let t = TestDir::new("cli-info-roundtrip");
    let work = t.sub("work");
    data::tree(
        &work,
        "stuff",
        &[("b.bin", 70_000), ("a/x", 3), ("a/empty", 0)],
        9,
    );
    let o = run(
        &work,
        &[
            "create",
            "stuff",
            "--piece-size",
            "16K",
            "-t",
            "udp://t.example:1,http://u.example/a",
            "-t",
            "http://v.example/b",
            "--private",
            "--comment",
            "evil \u{1b}[2J name",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let o = run(&work, &["info", "--json", "stuff.torrent"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "stuff");
    assert_eq!(v["total_size"], 70_003);
    assert_eq!(v["piece_length"], 16384);
    assert_eq!(v["num_pieces"], 5);
    assert_eq!(v["private"], true);
    assert_eq!(v["source"], "torrent");
    assert_eq!(
        v["files"],
        serde_json::json!([
            {"path": "stuff/a/empty", "length": 0},
            {"path": "stuff/a/x", "length": 3},
            {"path": "stuff/b.bin", "length": 70000},
        ])
    );
    assert_eq!(
        v["trackers"],
        serde_json::json!([
            ["udp://t.example:1", "http://u.example/a"],
            ["http://v.example/b"]
        ])
    );
    assert_eq!(v["info_hash"].as_str().unwrap().len(), 40);
    assert!(v["created_by"].as_str().unwrap().starts_with("swarm"));

    let o = run(&work, &["info", "stuff.torrent"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(v["info_hash"].as_str().unwrap()), "{text}");
    assert!(text.contains("68.36 KiB (70003 bytes)"), "{text}");
    assert!(text.contains("stuff/b.bin"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "control characters escaped: {text}"
    );

    // stdin gives the same JSON.
    let mut child = Command::new(swarm())
        .args(["info", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(work.join("stuff.torrent")).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, o_json(&work));
}

fn o_json(work: &Path) -> Vec<u8> {
    run(work, &["info", "--json", "stuff.torrent"]).stdout
}
