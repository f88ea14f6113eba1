//! Running the swarm binary as a user would, for the CLI tests: one call in a
//! folder, its output, and what it left in the folder.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `bin ARGS...` in `dir`, stdin closed, and collects its output.
pub fn run(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .current_dir(dir)
        .args(args)
        // Tests never contact the DHT's public routers.
        .env("SWARM_DHT_BOOTSTRAP", "")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}

/// The run's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The names of the entries in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// The run's stderr lines that start with `error`.
pub fn error_lines(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("error"))
        .map(str::to_owned)
        .collect()
}

/// Asserts the run exited with `code` and printed exactly one error line,
/// starting with `start`; returns that line.
pub fn one_error(o: &Output, code: i32, start: &str) -> String {
    assert_eq!(o.status.code(), Some(code), "{o:?}");
    let errors = error_lines(o);
    assert_eq!(errors.len(), 1, "one error line: {o:?}");
    assert!(
        errors[0].starts_with(start),
        "expected `{start}...`, got {:?}",
        errors[0]
    );
    errors.into_iter().next().unwrap_or_default()
}
