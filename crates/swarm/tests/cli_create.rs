//! `swarm create` from the outside: help, exit codes, refusals, what is
//! written and what is not.

use std::path::{Path, PathBuf};
use std::process::Output;

use swarm_testkit::{TestDir, data};

fn swarm() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn run(dir: &Path, args: &[&str]) -> Output {
    swarm_testkit::cli::run(&swarm(), dir, args)
}

use swarm_testkit::cli::stderr;

use swarm_testkit::cli::names;

/// The error of a failed run: exactly one line, `error: ...`.
fn one_line_error(o: &Output) -> String {
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{err}");
    lines[0].to_owned()
}

#[test]
fn every_help_page_has_examples_and_exit_status() {
    for args in [&["--help"][..], &["create", "--help"], &["help", "create"]] {
        let o = run(Path::new("."), args);
        assert!(o.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("Usage:"), "{args:?}:\n{text}");
        assert!(text.contains("EXAMPLES:"), "{args:?}:\n{text}");
        assert!(text.contains("EXIT STATUS:"), "{args:?}:\n{text}");
    }
}

#[test]
fn default_output_is_name_dot_torrent_and_is_not_overwritten() {
    let t = TestDir::new("cli-create-default");
    let work = t.sub("work");
    data::tree(&work, "stuff", &[("a", 10), ("b/c", 20)], 1);
    let o = run(&work, &["create", "stuff"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("piece size 256 KiB (automatic)"),
        "{}",
        stderr(&o)
    );
    let torrent = work.join("stuff.torrent");
    let first = std::fs::read(&torrent).expect("stuff.torrent written");
    assert!(
        first.starts_with(b"d") && first.ends_with(b"e"),
        "a bencoded dict"
    );

    // A second run refuses to replace it: exit 1, file unchanged, no temp left.
    let o = run(&work, &["create", "stuff"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(one_line_error(&o).contains("--force"));
    assert_eq!(std::fs::read(&torrent).unwrap(), first);
    assert_eq!(names(&work), ["stuff", "stuff.torrent"]);

    // With --force it does.
    let o = run(&work, &["create", "stuff", "--force", "--comment", "again"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(&torrent).unwrap(), first);
    assert_eq!(names(&work), ["stuff", "stuff.torrent"]);
}

#[test]
fn bad_input_exits_2_with_one_line_and_writes_nothing() {
    let t = TestDir::new("cli-create-bad");
    let work = t.sub("work");
    data::single_file(&work, "f.bin", 100, 1);
    std::fs::create_dir_all(work.join("empty-dir")).unwrap();
    std::fs::create_dir_all(work.join("only-empty")).unwrap();
    std::fs::write(work.join("only-empty/zero"), b"").unwrap();
    std::fs::create_dir_all(work.join("linked")).unwrap();
    std::fs::write(work.join("linked/real"), b"x").unwrap();
    std::os::unix::fs::symlink("real", work.join("linked/alias")).unwrap();
    let before = names(&work);

    let cases: &[(&[&str], &str)] = &[
        (&["create", "f.bin", "--piece-size", "300K"], "power of two"),
        (&["create", "f.bin", "--piece-size", "8K"], "power of two"),
        (&["create", "f.bin", "--piece-size", "lots"], "size"),
        (&["create", "f.bin", "-t", "not a url"], "tracker"),
        (&["create", "empty-dir"], "no data"),
        (&["create", "only-empty"], "no data"),
        (&["create", "linked"], "symbolic link"),
        (&["create", "f.bin", "--threads", "0"], "threads"),
    ];
    for (args, why) in cases {
        let o = run(&work, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let line = one_line_error(&o);
        assert!(
            line.contains(why),
            "{args:?}: `{line}` should mention {why}"
        );
        assert_eq!(names(&work), before, "{args:?} wrote something");
    }
}

#[test]
fn missing_path_is_a_failure_not_bad_input() {
    let t = TestDir::new("cli-create-missing");
    let o = run(t.path(), &["create", "does-not-exist"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(one_line_error(&o).contains("does-not-exist"));
    assert!(names(t.path()).is_empty());
}

#[test]
fn same_folder_gives_the_same_info_hash() {
    let t = TestDir::new("cli-create-stable");
    let work = t.sub("work");
    data::tree(&work, "d", data::ODD_TREE, 3);
    let hash = |out: &str, threads: &str| {
        let o = run(&work, &["create", "d", "-o", out, "-j", threads]);
        assert!(o.status.success(), "{}", stderr(&o));
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        stdout
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("info-hash")
                    .map(|h| h.trim().to_owned())
            })
            .expect("info-hash line")
    };
    let a = hash("a.torrent", "1");
    let b = hash("b.torrent", "2");
    assert_eq!(a.len(), 40);
    assert_eq!(a, b, "thread count must not change the torrent");
}
