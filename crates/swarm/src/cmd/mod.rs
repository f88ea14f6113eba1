//! The subcommands, one module each (its clap `Args` struct, its help text and
//! its `run`), and what they share: exit codes, logging, sizes for humans.
//!
//! Exit codes: 0 success; 1 failure (I/O, network, anything else); 2 bad
//! input: a usage error (clap), or a malformed or hostile .torrent or magnet,
//! reported on one line and with nothing written.

pub mod content;
pub mod create;
pub mod daemon;
pub mod demo;
pub mod dht;
pub mod download;
pub mod info;
pub mod peer;
pub mod seed;
pub mod sim;
pub mod term;
pub mod tracker;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// The EXIT STATUS paragraph shared by every help page.
pub const EXIT_STATUS_HELP: &str = "\
EXIT STATUS:
  0  success
  1  failure (I/O error, anything else)
  2  bad input: usage error, or a malformed or hostile .torrent or magnet";

/// An error caused by what the user handed us (a malformed .torrent, a bad
/// magnet, content that cannot become a torrent): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// `Err(BadInput)` as an `anyhow::Error`, for `?`.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

/// Prints a failed command's error on one line and maps it to an exit code.
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            let bad = e.chain().any(|cause| cause.is::<BadInput>());
            ExitCode::from(if bad { 2 } else { 1 })
        }
    }
}

/// A failed command's error as one line: the context chain joined with
/// ": ", each cause said once (an error whose text already ends with its
/// source's text, as `"x: y"` over `"y"`, would say it twice), and escaped:
/// a hostile file name or tracker text cannot forge further lines or
/// escape sequences.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    swarm_wire::text::escape(&line)
}

/// The largest .torrent `download`, `seed` and `info` read: more is refused
/// before more than this is read. Reading stops at the cap plus one byte
/// whatever the input (a pipe or `/dev/zero` has no size). The bencode
/// decoder's budget (`VALUES_MAX`, 2,000,000 values, ~400,000 files) admits
/// no larger real torrent (~100 bytes a file), and a hostile input of the
/// cap's size peaks at ~180 MB RSS (input plus the decoder's bounded tree);
/// libtorrent's own cap is 10 MB.
pub const TORRENT_FILE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a .torrent argument: a file, or `-` for stdin, refused (exit 2) if
/// larger than [`TORRENT_FILE_MAX_BYTES`]. A regular file's size is checked
/// before anything is read.
pub fn read_torrent_input(input: &std::ffi::OsStr) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    use std::io::Read as _;
    let path = std::path::Path::new(input);
    let too_big = || {
        bad_input(format!(
            "{} is larger than {}: not a .torrent",
            path.display(),
            human_bytes(TORRENT_FILE_MAX_BYTES)
        ))
    };
    let limit = TORRENT_FILE_MAX_BYTES + 1;
    let mut bytes = Vec::new();
    if input == "-" {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        if let Ok(meta) = file.metadata()
            && meta.is_file()
        {
            if meta.len() > TORRENT_FILE_MAX_BYTES {
                return Err(too_big());
            }
            bytes.reserve_exact(meta.len() as usize);
        }
        file.take(limit)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    if bytes.len() as u64 > TORRENT_FILE_MAX_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Logs go to stderr. `-v` = info, `-vv` = debug, `-vvv` = trace; without
/// `-v`, `RUST_LOG` decides (default: warnings only).
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        1 => EnvFilter::new("info"),
        2 => EnvFilter::new("debug"),
        _ => EnvFilter::new("trace"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(term::LogWriter::default)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Writes `text` to stdout; a closed pipe (`swarm info x | head -1`) is not an
/// error.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// `1.50 GiB`, `256 KiB`, `17 B`: binary units, at most two decimals.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let s = format!("{value:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} {}", UNITS[unit])
}

/// Parses a size: plain bytes (`262144`) or a number with a binary unit,
/// case-insensitive, with or without `iB`/`B`: `256K`, `256KiB`, `1M`, `1MB`,
/// `16kib`. Units are powers of 1024 (`K` = 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!(
            "`{s}` is not a size (try 256K, 1M, 16KiB or 262144)"
        ));
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown unit `{other}` in `{s}` (use K, M or G)")),
    };
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is too large"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_every_spelling() {
        assert_eq!(parse_size("262144"), Ok(262_144));
        assert_eq!(parse_size("256K"), Ok(262_144));
        assert_eq!(parse_size("256k"), Ok(262_144));
        assert_eq!(parse_size("256KiB"), Ok(262_144));
        assert_eq!(parse_size("16KiB"), Ok(16_384));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("1MB"), Ok(1 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("7b"), Ok(7));
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("1.5M").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("3X").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn an_error_line_says_each_cause_once_and_escaped() {
        // An error that prints its source and also returns it as `source()`.
        #[derive(Debug, thiserror::Error)]
        #[error("opening {0}: {1}")]
        struct Open(String, #[source] std::io::Error);
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(Open("NAME/a\x1b[2J.bin".into(), io)).context("seeding");
        assert_eq!(
            error_line(&e),
            "seeding: opening NAME/a\\u{1b}[2J.bin: entity not found"
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(262_144), "256 KiB");
        assert_eq!(human_bytes(1_536 * 1024 * 1024), "1.5 GiB");
        assert_eq!(human_bytes(1_000_003), "976.57 KiB");
        assert_eq!(human_bytes(u64::MAX), "16 EiB");
    }
}
