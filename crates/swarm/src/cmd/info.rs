//! `swarm info`: what a .torrent (BEP 3, BEP 12) or a magnet link (BEP 9)
//! holds, for people or (with `--json`) for scripts.

use std::ffi::OsString;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use super::{human_bytes, print_stdout};

const EXAMPLES: &str = "\
EXAMPLES:
  What is in a torrent:
      swarm info debian.iso.torrent

  Its info-hash only, for a script (jq):
      swarm info --json debian.iso.torrent | jq -r .info_hash

  A magnet link (quote it: it holds & characters):
      swarm info 'magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056&dn=cosmos'

  A torrent on stdin:
      curl -s https://example.org/x.torrent | swarm info -";

/// Show what a .torrent file or a magnet link holds.
///
/// For a .torrent: its name, info-hash (v1, hex; and v2 for a hybrid v1+v2
/// torrent, which swarm uses through its v1 half), total size, piece size
/// and count, private flag, trackers by tier, comment, creator and creation
/// date, then every file with its size. BEP 47 pad files are not listed:
/// the summary gives their count and bytes. For a magnet link: the info-hash, and the
/// name, trackers and peers it names (the rest is only known once the
/// metadata is fetched from peers).
///
/// A file's path is where it lands under the download folder: the torrent's
/// name, then (multi-file torrents) the path inside it, joined with '/'.
///
/// With --json, one JSON object with stable keys: name, info_hash,
/// info_hash_v2 (hybrid torrents, else null), version ("v1" or "hybrid"),
/// total_size (the real files' bytes, pads left out), piece_length, num_pieces, private, files [{path, length}]
/// (real files only), pad_files {count, bytes},
/// trackers [[url, ...], ...], comment, created_by, creation_date (Unix
/// seconds), peers, source ("torrent" or "magnet"). Keys a magnet cannot
/// know are null.
///
/// A malformed or hostile torrent or magnet (bad bencode, unsafe paths,
/// impossible lengths...) is reported on one line, with exit code 2.
#[derive(Debug, Args)]
#[command(after_help = format!("{EXAMPLES}\n\n{}", super::EXIT_STATUS_HELP))]
pub struct InfoArgs {
    /// A .torrent file, `-` for stdin, or a magnet URI (magnet:?xt=urn:btih:...).
    #[arg(value_name = "FILE.torrent|MAGNET")]
    pub input: OsString,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let view = match args.input.to_str() {
        Some(s) if s.starts_with("magnet:") => adapt::from_magnet(s)?,
        _ => {
            let bytes = read_input(&args.input)?;
            adapt::from_torrent(&bytes)?
        }
    };
    if args.json {
        let mut text = serde_json::to_string_pretty(&view).context("JSON")?;
        text.push('\n');
        print_stdout(&text)
    } else {
        print_stdout(&render(&view))
    }
}

fn read_input(input: &OsString) -> Result<Vec<u8>> {
    super::read_torrent_input(input)
}

/// What `swarm info` shows; also its JSON form (keys are a stable interface).
#[derive(Debug, Serialize)]
pub struct View {
    pub name: Option<String>,
    pub info_hash: String,
    pub info_hash_v2: Option<String>,
    pub version: Option<&'static str>,
    pub total_size: Option<u64>,
    pub piece_length: Option<u64>,
    pub num_pieces: Option<u64>,
    pub private: Option<bool>,
    pub files: Option<Vec<FileView>>,
    pub pad_files: Option<PadView>,
    pub trackers: Vec<Vec<String>>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    pub peers: Vec<String>,
    pub source: &'static str,
}

#[derive(Debug, Serialize)]
pub struct PadView {
    pub count: usize,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct FileView {
    /// Where the file lands under the download folder, '/'-joined.
    pub path: String,
    pub length: u64,
}

/// Text for a terminal: control characters in names from the torrent are
/// shown escaped, so a hostile name cannot drive the terminal.
fn render(v: &View) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{key:<12}{value}");
    };
    line("name", &v.name.as_deref().map_or("(unknown)".into(), clean));
    match &v.info_hash_v2 {
        Some(v2) => {
            line("info-hash", &format!("{} (v1, used by swarm)", v.info_hash));
            line("", &format!("{v2} (v2)"));
            line("version", "hybrid (v1 + v2; swarm uses the v1 half)");
        }
        None => line("info-hash", &v.info_hash),
    }
    if let Some(total) = v.total_size {
        line("size", &format!("{} ({total} bytes)", human_bytes(total)));
    }
    if let (Some(n), Some(len)) = (v.num_pieces, v.piece_length) {
        line("pieces", &format!("{n} x {}", human_bytes(len)));
    }
    if let Some(p) = v.private {
        line(
            "private",
            if p {
                "yes (trackers only: no DHT, no peer exchange)"
            } else {
                "no"
            },
        );
    }
    if let Some(date) = v.creation_date {
        line("created", &utc_date(date));
    }
    if let Some(by) = &v.created_by {
        line("created by", &clean(by));
    }
    if let Some(c) = &v.comment {
        line("comment", &clean(c));
    }
    if v.trackers.is_empty() {
        line("trackers", "none");
    }
    for (i, tier) in v.trackers.iter().enumerate() {
        let key = if i == 0 { "trackers" } else { "" };
        let urls: Vec<String> = tier.iter().map(|u| clean(u)).collect();
        line(key, &format!("tier {}: {}", i + 1, urls.join(", ")));
    }
    for (i, p) in v.peers.iter().enumerate() {
        line(if i == 0 { "peers" } else { "" }, &clean(p));
    }
    match &v.files {
        Some(files) => {
            let pads = match &v.pad_files {
                Some(p) if p.count > 0 => format!(
                    " (and {} pad file{} of {} bytes, not stored)",
                    p.count,
                    if p.count == 1 { "" } else { "s" },
                    p.bytes
                ),
                _ => String::new(),
            };
            line("files", &format!("{}{pads}", files.len()));
            for f in files {
                line(
                    "",
                    &format!("{:>12}  {}", human_bytes(f.length), clean(&f.path)),
                );
            }
        }
        None => line(
            "files",
            "(unknown until the metadata is fetched from peers)",
        ),
    }
    out
}

/// `s` with control characters escaped (`\u{1b}`): remote text.
fn clean(s: &str) -> String {
    swarm_wire::text::escape(s)
}

/// `2024-05-01 12:00:00 UTC` for a Unix time (proleptic Gregorian calendar).
fn utc_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// From swarm-wire's parsed types to a [`View`]. Every parse error is bad
/// input (exit 2), reported with the parser's own words.
mod adapt {
    use anyhow::Result;
    use swarm_wire::metainfo::MetaVersion;
    use swarm_wire::{Magnet, Metainfo};

    use super::{FileView, PadView, View};
    use crate::cmd::bad_input;

    pub fn from_torrent(bytes: &[u8]) -> Result<View> {
        let m = Metainfo::from_bytes(bytes)
            .map_err(|e| bad_input(format!("not a valid .torrent: {e}")))?;
        let lengths = m.lengths();
        let (pad_count, pad_bytes) = m.pad_files();
        Ok(View {
            name: Some(m.name().to_owned()),
            info_hash: m.info_hash().to_hex(),
            info_hash_v2: m
                .info_hash_v2()
                .map(|h| h.iter().map(|b| format!("{b:02x}")).collect()),
            version: Some(match m.version() {
                MetaVersion::V1 => "v1",
                MetaVersion::Hybrid => "hybrid",
            }),
            total_size: Some(lengths.total_length() - pad_bytes),
            piece_length: Some(u64::from(lengths.piece_length())),
            num_pieces: Some(u64::from(lengths.num_pieces())),
            private: Some(m.is_private()),
            files: Some(
                m.real_files()
                    .map(|f| FileView {
                        path: f.display_path(),
                        length: f.length,
                    })
                    .collect(),
            ),
            pad_files: Some(PadView {
                count: pad_count,
                bytes: pad_bytes,
            }),
            trackers: m.tracker_tiers(),
            comment: m.comment().map(str::to_owned),
            created_by: m.created_by().map(str::to_owned),
            creation_date: m.creation_date(),
            peers: Vec::new(),
            source: "torrent",
        })
    }

    pub fn from_magnet(uri: &str) -> Result<View> {
        let m = Magnet::parse(uri).map_err(|e| bad_input(format!("bad magnet link: {e}")))?;
        Ok(View {
            name: m.name,
            info_hash: m.info_hash.to_hex(),
            info_hash_v2: None,
            version: None,
            total_size: None,
            piece_length: None,
            num_pieces: None,
            private: None,
            files: None,
            pad_files: None,
            // A magnet's trackers form one tier each (BEP 9 gives no tiers;
            // libtorrent does the same).
            trackers: m.trackers.into_iter().map(|t| vec![t]).collect(),
            comment: None,
            created_by: None,
            creation_date: None,
            peers: m.peers,
            source: "magnet",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_date(-1), "1969-12-31 23:59:59 UTC");
        // Hostile dates do not panic.
        let _ = utc_date(i64::MAX);
        let _ = utc_date(i64::MIN);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(clean("données"), "données");
    }
}
