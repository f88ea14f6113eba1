//! `swarm create`: make a .torrent (BEP 3, BEP 12 announce-list) from a file
//! or a folder.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;

use swarm_net::{FileSpec, Storage};

use super::content::{self, Content};
use super::{bad_input, human_bytes, parse_size, print_stdout};

/// Piece length when none is given and the content is small enough.
pub const PIECE_LENGTH_DEFAULT: u64 = 256 * 1024;
/// Above this many pieces at the default length, the automatic choice doubles
/// the piece length (each piece costs 20 bytes of metainfo and a bit in every
/// peer's bitfield).
pub const PIECES_AUTO_MAX: u64 = 2000;
/// The automatic choice stops doubling here; bigger content gets more pieces.
pub const PIECE_LENGTH_AUTO_MAX: u64 = 16 * 1024 * 1024;
/// Smallest piece length accepted: one 16 KiB block (BEP 3 requests).
pub const PIECE_LENGTH_MIN: u64 = 16 * 1024;
/// Largest piece length accepted (other clients refuse bigger).
pub const PIECE_LENGTH_MAX: u64 = 64 * 1024 * 1024;

const EXAMPLES: &str = "\
EXAMPLES:
  Make ubuntu.iso.torrent in the current folder, with one tracker:
      swarm create ubuntu.iso -t udp://tracker.example.org:6969/announce

  A folder, two tracker tiers (the first with two trackers), 1 MiB pieces:
      swarm create photos/ -t http://a.example/announce,http://b.example/announce \\
                           -t udp://backup.example:1337 --piece-size 1M -o photos.torrent

  A private torrent with a comment, replacing an existing file:
      swarm create report.pdf --private --comment 'Q3 figures' --force";

/// Make a .torrent file from a file or a folder.
///
/// Hashes the content on all cores and writes a v1 torrent (BEP 3), named
/// NAME.torrent in the current folder unless -o says otherwise. An existing
/// file is not replaced unless --force is given; the torrent is written to a
/// temporary file first and renamed, so a failed run leaves nothing behind.
///
/// Piece size: 256 KiB, doubled until the content fits in about 2000 pieces
/// (up to 16 MiB); --piece-size overrides it. The choice is printed.
///
/// A folder becomes a multi-file torrent holding every file under it (hidden
/// ones too), sorted by path components compared as bytes, so the same folder
/// always gives the same torrent. Symbolic links inside the folder are refused,
/// not followed (the error names them); so are sockets, FIFOs and devices.
/// Empty folders cannot be stored in a torrent and are reported. File names
/// must be UTF-8 and hold no backslash (Windows clients would read it as a
/// folder separator, so swarm info and every swarm peer refuse it).
#[derive(Debug, Args)]
#[command(after_help = format!("{EXAMPLES}\n\n{}", super::EXIT_STATUS_HELP))]
pub struct CreateArgs {
    /// The file or folder to share.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,

    /// Tracker announce URL. Repeat for more tiers (tried in order); separate
    /// URLs with commas to put them in one tier (tried in random order).
    #[arg(short = 't', long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,

    /// Bytes per piece, a power of two from 16K to 64M: 256K, 1M, 16KiB or
    /// plain bytes (262144). Default: chosen from the content size.
    #[arg(long, value_name = "SIZE", value_parser = parse_piece_size)]
    pub piece_size: Option<u64>,

    /// Mark the torrent private (BEP 27): peers come from its trackers only,
    /// no DHT or peer exchange.
    #[arg(long)]
    pub private: bool,

    /// A free-text comment stored in the torrent.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,

    /// Where to write the torrent. Default: NAME.torrent in the current folder.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,

    /// Replace OUT if it exists.
    #[arg(short = 'f', long)]
    pub force: bool,

    /// Hashing threads. Default: one per core.
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

fn parse_piece_size(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    if !n.is_power_of_two() || !(PIECE_LENGTH_MIN..=PIECE_LENGTH_MAX).contains(&n) {
        return Err(format!(
            "piece size must be a power of two from 16 KiB to 64 MiB, not {n} bytes"
        ));
    }
    Ok(n)
}

/// The automatic piece length for `total` bytes of content.
pub fn auto_piece_length(total: u64) -> u64 {
    let mut piece = PIECE_LENGTH_DEFAULT;
    while total.div_ceil(piece) > PIECES_AUTO_MAX && piece < PIECE_LENGTH_AUTO_MAX {
        piece *= 2;
    }
    piece
}

pub fn run(args: CreateArgs) -> Result<()> {
    let tiers = tracker_tiers(&args.trackers)?;
    let content = content::list(&args.path)?;
    for dir in &content.empty_dirs {
        eprintln!(
            "note: empty folder {} is not stored (torrents hold files only)",
            dir.display()
        );
    }
    let total = content.total_size();
    if total == 0 {
        return Err(bad_input(format!(
            "{} holds no data (0 bytes): a torrent needs at least one byte",
            args.path.display()
        )));
    }
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.torrent", content.name)));
    if !args.force && output.exists() {
        anyhow::bail!("{} exists; use --force to replace it", output.display());
    }

    let (piece_length, how) = match args.piece_size {
        Some(p) => (p, "as asked"),
        None => (auto_piece_length(total), "automatic"),
    };
    let num_pieces = total.div_ceil(piece_length);
    eprintln!(
        "piece size {} ({how}): {num_pieces} pieces for {} in {} file{}",
        human_bytes(piece_length),
        human_bytes(total),
        content.files.len(),
        if content.files.len() == 1 { "" } else { "s" }
    );

    let threads = match args.threads {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    // The same parallel hasher as the start-up check of `download`/`seed`.
    let files: Vec<FileSpec> = content
        .files
        .iter()
        .map(|(_, f)| FileSpec::new(&f.path, f.length))
        .collect();
    let piece_length_u32 = u32::try_from(piece_length).context("piece size too large")?;
    let storage = Storage::for_hashing(&files, piece_length_u32)?;
    let bar = progress_bar(total);
    let started = std::time::Instant::now();
    let pieces = storage.piece_hashes(threads, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        secs,
        mb_per_s = total as f64 / secs.max(1e-9) / 1e6,
        threads,
        "hashed"
    );

    let torrent = NewTorrent {
        content: &content,
        piece_length,
        pieces: &pieces,
        tiers: &tiers,
        private: args.private,
        comment: args.comment.as_deref(),
        creation_date: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let (bytes, info_hash) = encode(&torrent)?;
    write_atomically(&output, &bytes, args.force)?;
    print_stdout(&format!(
        "wrote {}\n  name       {}\n  info-hash  {}\n  size       {} ({total} bytes)\n  pieces     {num_pieces} x {}\n",
        output.display(),
        content.name,
        info_hash,
        human_bytes(total),
        human_bytes(piece_length),
    ))
}

/// `-t` values → tiers: each `-t` one tier, commas separating its URLs.
fn tracker_tiers(args: &[String]) -> Result<Vec<Vec<String>>> {
    let mut tiers = Vec::new();
    for arg in args {
        let mut tier = Vec::new();
        for url in arg.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let ok = ["http://", "https://", "udp://", "ws://", "wss://"]
                .iter()
                .any(|scheme| url.len() > scheme.len() && url.starts_with(scheme));
            if !ok {
                return Err(bad_input(format!(
                    "tracker `{url}` is not an http://, https:// or udp:// URL"
                )));
            }
            tier.push(url.to_owned());
        }
        if tier.is_empty() {
            return Err(bad_input(format!("tracker argument `{arg}` holds no URL")));
        }
        tiers.push(tier);
    }
    Ok(tiers)
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "hashing {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    bar
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a
/// rename, so `path` is either absent/old or complete. Without `force`, an
/// existing `path` (even one created meanwhile) is left alone.
fn write_atomically(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".swarm-create-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    // tempfile creates 0600; a .torrent is not secret.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot set permissions of {}", tmp.path().display()))?;
    let persisted = if force {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    persisted.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} exists; use --force to replace it", path.display())
        } else {
            anyhow::Error::new(e.error).context(format!("cannot write {}", path.display()))
        }
    })?;
    Ok(())
}

/// Everything that goes into the new .torrent.
struct NewTorrent<'a> {
    content: &'a Content,
    piece_length: u64,
    pieces: &'a [[u8; 20]],
    tiers: &'a [Vec<String>],
    private: bool,
    comment: Option<&'a str>,
    creation_date: u64,
}

/// The .torrent bytes and the v1 info-hash, from swarm-wire's canonical
/// builder (which parses its output back before returning it).
fn encode(t: &NewTorrent<'_>) -> Result<(Vec<u8>, swarm_wire::InfoHash)> {
    use swarm_wire::metainfo::{NewContent, TorrentBuilder};
    let content = if t.content.is_dir {
        NewContent::Folder {
            files: t
                .content
                .files
                .iter()
                .map(|(path, f)| (path.clone(), f.length))
                .collect(),
        }
    } else {
        NewContent::File {
            length: t.content.total_size(),
        }
    };
    let piece_length = u32::try_from(t.piece_length).context("piece length")?;
    let mut builder = TorrentBuilder::new(
        t.content.name.clone(),
        piece_length,
        content,
        t.pieces.to_vec(),
    );
    builder.tiers = t.tiers.to_vec();
    builder.private = t.private;
    builder.comment = t.comment.map(str::to_owned);
    builder.created_by = Some(concat!("swarm/", env!("CARGO_PKG_VERSION")).to_owned());
    builder.creation_date = Some(i64::try_from(t.creation_date).unwrap_or(i64::MAX));
    let (bytes, info_hash) = builder.build().map_err(|e| bad_input(e.to_string()))?;
    Ok((bytes, info_hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_piece_length_keeps_about_2000_pieces() {
        assert_eq!(auto_piece_length(1), PIECE_LENGTH_DEFAULT);
        assert_eq!(auto_piece_length(2000 * 256 * 1024), 256 * 1024);
        assert_eq!(auto_piece_length(2000 * 256 * 1024 + 1), 512 * 1024);
        assert_eq!(auto_piece_length(2 << 30), 2 << 20); // 2 GiB -> 2 MiB, 1024 pieces
        assert_eq!(auto_piece_length(u64::MAX), PIECE_LENGTH_AUTO_MAX);
    }

    #[test]
    fn piece_size_must_be_a_power_of_two_in_range() {
        assert_eq!(parse_piece_size("256K"), Ok(262_144));
        assert_eq!(parse_piece_size("16KiB"), Ok(16_384));
        assert_eq!(parse_piece_size("64M"), Ok(64 << 20));
        assert!(parse_piece_size("8K").is_err());
        assert!(parse_piece_size("128M").is_err());
        assert!(parse_piece_size("300K").is_err());
        assert!(parse_piece_size("0").is_err());
    }

    #[test]
    fn tracker_tiers_split_on_commas() {
        let tiers =
            tracker_tiers(&["udp://a:1,http://b/announce".into(), "https://c/x".into()]).unwrap();
        assert_eq!(
            tiers,
            [
                vec!["udp://a:1".to_string(), "http://b/announce".into()],
                vec!["https://c/x".into()]
            ]
        );
        assert!(tracker_tiers(&["ftp://x".into()]).is_err());
        assert!(tracker_tiers(&[",".into()]).is_err());
    }
}
