//! `swarm download` and `swarm seed` from the outside: help pages, exit codes
//! on bad input and on missing data, and a download of data already on disk
//! (checked, nothing fetched, exit 0) — no network peer needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use swarm_testkit::{TestDir, data};

fn swarm() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn run(dir: &Path, args: &[&str]) -> Output {
    swarm_testkit::cli::run(&swarm(), dir, args)
}

fn error_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.starts_with("error"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn help_pages_have_examples_and_exit_status() {
    for args in [
        &["download", "--help"][..],
        &["seed", "--help"],
        &["help", "download"],
    ] {
        let o = run(Path::new("."), args);
        assert!(o.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&o.stdout);
        for needle in ["Usage:", "EXAMPLES:", "EXIT STATUS:"] {
            assert!(text.contains(needle), "{args:?} lacks {needle}:\n{text}");
        }
    }
}

#[test]
fn a_malformed_torrent_is_bad_input_and_nothing_is_written() {
    let t = TestDir::new("cli-dl-bad");
    std::fs::write(t.path().join("bad.torrent"), b"d4:infoi3ee").unwrap();
    let out = t.sub("out");
    let o = run(
        t.path(),
        &[
            "download",
            "bad.torrent",
            "-o",
            "out",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(error_lines(&o).len(), 1, "{o:?}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    let o = run(t.path(), &["seed", "bad.torrent", "-d", "out"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[test]
fn bad_rates_and_peers_are_bad_input() {
    let t = TestDir::new("cli-dl-args");
    for args in [
        &["download", "x.torrent", "--max-upload-rate", "fast"][..],
        &["download", "x.torrent", "--max-download-rate", "0"],
        &["download", "x.torrent", "--peer", "no-port"],
        &["download", "x.torrent", "--listen", "localhost"],
        &[
            "seed",
            "x.torrent",
            "-d",
            ".",
            "--peer",
            "127.0.0.1:notaport",
        ],
    ] {
        let o = run(t.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    }
}

/// Makes a torrent of `content` with `swarm create`.
fn create(t: &TestDir, content: &Path) -> PathBuf {
    let torrent = t.path().join("t.torrent");
    let o = Command::new(swarm())
        .args(["create"])
        .arg(content)
        .arg("-o")
        .arg(&torrent)
        .args(["--piece-size", "16K"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    torrent
}

#[test]
fn seeding_missing_data_fails_with_the_path() {
    let t = TestDir::new("cli-seed-missing");
    let content = data::tree(&t.sub("src"), "tree", &[("a", 1000), ("b/c", 30_000)], 7);
    let torrent = create(&t, &content);
    let empty = t.sub("empty");
    let o = Command::new(swarm())
        .arg("seed")
        .arg(&torrent)
        .arg("-d")
        .arg(&empty)
        .args(["--listen", "127.0.0.1:0", "--json"])
        .output()
        .unwrap();
    // A wrong -d: bad input, one line that says what -d is.
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let errors = error_lines(&o);
    assert_eq!(errors.len(), 1, "{o:?}");
    let want = format!(
        "error: {} holds no tree: -d is the folder that holds tree",
        empty.display()
    );
    assert!(errors[0].starts_with(&want), "{errors:?}");
    // -d naming the data folder itself gets the right one suggested.
    let o = run(
        t.path(),
        &[
            "seed",
            "t.torrent",
            "-d",
            "src/tree",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let errors = error_lines(&o);
    assert_eq!(errors.len(), 1, "{o:?}");
    assert!(
        errors[0].starts_with("error: src/tree holds no tree: -d is the folder that holds tree"),
        "{errors:?}"
    );
    assert!(errors[0].ends_with("(try -d src)"), "{errors:?}");
    // One file missing: a failure (1) naming it, said once.
    std::fs::remove_file(content.join("b/c")).unwrap();
    let o = run(
        t.path(),
        &["seed", "t.torrent", "-d", "src", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let errors = error_lines(&o);
    assert_eq!(errors.len(), 1, "{o:?}");
    assert!(
        errors[0].starts_with("error: src/tree/b/c is missing: seeding needs every file"),
        "{errors:?}"
    );
    assert_eq!(
        errors[0].matches("missing").count(),
        1,
        "said once: {errors:?}"
    );
}

#[test]
fn a_download_whose_data_is_already_there_checks_it_and_exits_0() {
    let t = TestDir::new("cli-dl-present");
    let src = t.sub("src");
    let content = data::tree(&src, "tree", &[("a", 1000), ("b/c", 70_000)], 8);
    let torrent = create(&t, &content);
    let o = Command::new(swarm())
        .arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(&src)
        .args(["--listen", "127.0.0.1:0", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a status line")).unwrap();
    assert_eq!(last["complete"], true, "{stdout}");
    assert_eq!(last["downloaded"], 0, "{stdout}");
    assert_eq!(last["pieces_have"], last["pieces_total"], "{stdout}");
}

/// `swarm download TORRENT -o DIR --json` with info logs; (stdout, stderr).
fn download_logged(torrent: &Path, dir: &Path) -> (String, String) {
    let o = Command::new(swarm())
        .arg("download")
        .arg(torrent)
        .arg("-o")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--json"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let (out, err) = (&o.stdout, &o.stderr);
    (
        String::from_utf8_lossy(out).into_owned(),
        String::from_utf8_lossy(err).into_owned(),
    )
}

#[test]
fn the_resume_record_spares_the_check_of_unchanged_files_only() {
    let t = TestDir::new("cli-resume");
    let src = t.sub("src");
    // 5 pieces of 16 KiB; only piece 0 touches `a`.
    let content = data::tree(&src, "tree", &[("a", 1000), ("b/c", 70_000)], 9);
    let torrent = create(&t, &content);

    // First start: no record, every piece read; the record is written at exit,
    // beside the content, not in it.
    let (_, err) = download_logged(&torrent, &src);
    assert!(err.contains("trusted=0 verified=5 of=5"), "{err}");
    let records: Vec<_> = std::fs::read_dir(src.join(".swarm"))
        .expect("the record folder")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].to_string_lossy().ends_with(".resume"));
    assert!(!content.join(".swarm").exists());

    // Second start: everything trusted, nothing read, no `checking` line.
    let (out, err) = download_logged(&torrent, &src);
    assert!(err.contains("trusted=5 verified=0 of=5"), "{err}");
    assert!(!out.contains("\"checking\""), "{out}");

    // `a` changed on disk (same bytes, new mtime): only piece 0 is read again.
    let a = std::fs::OpenOptions::new()
        .write(true)
        .open(content.join("a"))
        .unwrap();
    a.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(a);
    let (_, err) = download_logged(&torrent, &src);
    assert!(err.contains("trusted=4 verified=1 of=5"), "{err}");

    // A damaged record is a warning, and the data is checked instead.
    std::fs::write(&records[0], b"SWRESUME garbage").unwrap();
    let (_, err) = download_logged(&torrent, &src);
    assert!(err.contains("resume record ignored"), "{err}");
    assert!(err.contains("trusted=0 verified=5 of=5"), "{err}");

    // A record that cannot be written (a file where its folder goes) is a
    // warning, not a failure.
    std::fs::remove_dir_all(src.join(".swarm")).unwrap();
    std::fs::write(src.join(".swarm"), b"not a folder").unwrap();
    let (out, err) = download_logged(&torrent, &src);
    assert!(err.contains("resume record not saved"), "{err}");
    assert!(out.contains("\"complete\":true"), "{out}");
}

/// Several torrents in one `download`: one that fails (a file stands where
/// its folder goes) does not stop the other, which completes; the exit
/// status is 1 and the error names the failed torrent.
#[test]
fn with_several_torrents_one_failure_exits_1_naming_it_after_the_others_finish() {
    let t = TestDir::new("cli-dl-several");
    let src = t.sub("src");
    let present = data::tree(&src, "present", &[("a", 1000), ("b/c", 70_000)], 9);
    let blocked = data::tree(
        &t.sub("elsewhere"),
        "blocked",
        &[("x", 5000), ("y/z", 20_000)],
        10,
    );
    let bad_torrent = t.path().join("blocked.torrent");
    std::fs::rename(create(&t, &blocked), &bad_torrent).unwrap();
    let good = create(&t, &present);
    // `blocked` is a folder of files; a regular file takes its place.
    std::fs::write(src.join("blocked"), b"not a folder").unwrap();
    let o = Command::new(swarm())
        .arg("download")
        .arg(&good)
        .arg(&bad_torrent)
        .arg("-o")
        .arg(&src)
        .args(["--listen", "127.0.0.1:0", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("1 of 2 torrents failed") && stderr.contains("blocked:"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let finals: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["final"] == true)
        .collect();
    let state = |name: &str| {
        finals
            .iter()
            .find(|v| v["name"] == name)
            .map(|v| v["state"].clone())
    };
    assert_eq!(state("present"), Some("completed".into()), "{stdout}");
    assert_eq!(state("blocked"), Some("failed".into()), "{stdout}");
    assert_eq!(std::fs::read(src.join("blocked")).unwrap(), b"not a folder");
}

#[test]
fn the_same_torrent_twice_is_bad_input() {
    let t = TestDir::new("cli-dl-twice");
    let content = data::tree(&t.sub("src"), "tree", &[("a", 1000)], 11);
    let torrent = create(&t, &content);
    let o = Command::new(swarm())
        .arg("download")
        .arg(&torrent)
        .arg(&torrent)
        .args(["-o", "out", "--listen", "127.0.0.1:0"])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("again"),
        "{o:?}"
    );
}
