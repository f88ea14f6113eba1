//! `swarm seed`: check a torrent's data on disk, then upload it to peers.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use swarm_net::OpenMode;

use super::bad_input;
use super::peer::{self, NetArgs, Run, TorrentArg, Until};

const EXAMPLES: &str = "\
EXAMPLES:
  Seed photos.torrent whose files are in ~/share (as ~/share/photos/...):
      swarm seed photos.torrent -d ~/share

  Several torrents whose data all lie in ~/share, on one port:
      swarm seed photos.torrent music.torrent talk.torrent -d ~/share

  On a fixed port, also offering the data to a known peer:
      swarm seed photos.torrent -d ~/share --listen 0.0.0.0:51413 --peer 192.0.2.7:6881

  Upload the torrent's size three times over, then leave; show the neighbours:
      swarm seed photos.torrent -d ~/share --seed-ratio 3 --peers";

/// Seed a torrent: check its data, then upload it to peers until Ctrl-C.
///
/// The data is looked for under DIR (-d) as the torrent lays it out: DIR/NAME
/// for a single file, DIR/NAME/... for several. Every piece is checked first
/// (on all cores, with progress); a missing file is an error, and so is data
/// of which no piece matches. A resume record, DATA_DIR/.swarm/<info-hash>.resume
/// (see `swarm download --help`), spares that check for files unchanged
/// since it was saved; a read-only DATA_DIR only costs a warning. Then swarm announces to the torrent's trackers,
/// dials --peer addresses, accepts peers on --listen and uploads until Ctrl-C
/// or SIGTERM, or until --seed-ratio / --seed-time is reached, when it tells
/// the trackers it stopped.
///
/// Several torrents given are seeded side by side in one process, on one
/// port; --max-connections and the rate limits are shared by all of them.
///
/// Seeding, the 4 upload slots take turns (round robin, 30 s each, the
/// longest-waiting interested peer next), so no leecher starves; --peers
/// shows who holds a slot and why.
#[derive(Debug, Args)]
#[command(after_help = format!("{EXAMPLES}\n\n{}", super::EXIT_STATUS_HELP))]
pub struct SeedArgs {
    /// The .torrent file(s).
    #[arg(value_name = "FILE.torrent", required = true, num_args = 1..)]
    pub torrents: Vec<PathBuf>,

    /// The folder that holds the torrent's data: DATA_DIR/NAME is the file
    /// (single-file torrent) or folder the torrent names, not NAME itself.
    #[arg(short = 'd', long = "data", value_name = "DATA_DIR")]
    pub data: PathBuf,

    #[command(flatten)]
    pub net: NetArgs,
}

pub fn run(args: SeedArgs) -> Result<()> {
    let peers = peer::resolve_peers(&args.net.peers)?;
    let torrents = peer::load_torrents(&args.torrents, false)?;
    for spec in torrents.iter().filter_map(|t| match t {
        TorrentArg::File(l) => Some(&l.spec),
        TorrentArg::Magnet(_) => None,
    }) {
        let data = args.data.join(&spec.name);
        if std::fs::symlink_metadata(&data).is_err() {
            let hint = if args.data.file_name() == Some(spec.name.as_ref()) {
                format!(" (try -d {})", parent_or_dot(&args.data).display())
            } else {
                String::new()
            };
            return Err(bad_input(format!(
                "{} holds no {}: -d is the folder that holds {}, the torrent's data{hint}",
                args.data.display(),
                spec.name,
                spec.name
            )));
        }
    }
    peer::run(Run {
        torrents,
        dir: &args.data,
        mode: OpenMode::Existing,
        net: &args.net,
        peers,
        until: args
            .net
            .seed_limits()
            .map_or(Until::Interrupted, Until::SeedLimits),
    })?;
    Ok(())
}

/// The folder holding `p` (`.` for a bare name).
fn parent_or_dot(p: &std::path::Path) -> &std::path::Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    }
}
