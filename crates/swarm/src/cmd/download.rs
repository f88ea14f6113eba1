//! `swarm download`: fetch a torrent's content from its peers (BEP 3), found
//! through its trackers, `--peer`, the DHT and peer exchange, and optionally
//! keep seeding it. A magnet link's metadata comes first (BEP 9).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use swarm_net::OpenMode;

use super::peer::{self, NetArgs, Run, Until};

const EXAMPLES: &str = "\
EXAMPLES:
  Download into the current folder, peers from the torrent's trackers:
      swarm download ubuntu.torrent

  Several torrents at once, in one process on one port:
      swarm download a.torrent b.torrent c.torrent -o ~/Downloads --max-download-rate 10M

  A magnet link (quoted: it holds `&`); its metadata is saved as
  ~/Downloads/.swarm/<info-hash>.torrent:
      swarm download 'magnet:?xt=urn:btih:...&dn=name' -o ~/Downloads

  Into ~/Downloads, also from a known peer, then keep seeding until Ctrl-C:
      swarm download photos.torrent -o ~/Downloads --peer 192.0.2.7:6881 --seed

  Gently: at most 2 MiB/s down and 512 KiB/s up, status as JSON lines:
      swarm download big.torrent --max-download-rate 2M --max-upload-rate 512K --json

  Give back: seed until twice the size is uploaded or for 2 hours at most,
  watching whom swarm unchokes and why:
      swarm download big.torrent --seed-ratio 2 --seed-time 2h --peers";

/// Download a torrent's files from its peers.
///
/// Several torrents given run side by side in one process, on one port,
/// one progress line each; --max-connections and the rate limits are
/// shared by all of them (a torrent that needs less leaves the rest to the
/// others). swarm then exits 0 once all are complete, and 1 if any failed
/// (after the others finished), naming each failure.
///
/// The files land under DIR (-o, default: the current folder): a single-file
/// torrent as DIR/NAME, a multi-file one as DIR/NAME/... . They are created
/// at their final size (sparse) right away; a piece is written only after its
/// SHA-1 checked out. Files already there are checked first, and only the
/// missing pieces are fetched, so an interrupted download resumes.
///
/// Resume record: DIR/.swarm/<info-hash>.resume lists the verified pieces
/// and each file's size and modification time. It is saved every 30 s while
/// pieces arrive, on completion and at exit (Ctrl-C, SIGTERM), atomically,
/// after the data is flushed to disk. On start, pieces whose files still
/// have the recorded size and time are trusted without reading them; the
/// rest are checked. So after kill -9 no verified piece is fetched again
/// (after a power cut, none verified before the last save), and no piece
/// is ever trusted unverified. The record
/// sits beside the content, never in it (a torrent named .swarm gets none).
/// If it cannot be written (read-only DIR) swarm warns and goes on; the
/// next start checks the data instead. Delete the .swarm folder to force a
/// full check.
///
/// Peers come from the torrent's trackers (HTTP and UDP), from --peer, from
/// the DHT (BEP 5; --no-dht to opt out) and by peer exchange with connected
/// peers (BEP 11); other peers may connect to us on --listen. Private
/// torrents (BEP 27) use neither the DHT nor peer exchange. A peer that
/// sends data that fails its checks repeatedly is banned (logged).
///
/// A magnet link (magnet:?xt=urn:btih:...) first fetches the torrent's
/// metadata from peers (BEP 9: its trackers tr=, its peers x.pe=, --peer,
/// the DHT), checks it against the info-hash and saves it as
/// DIR/.swarm/<info-hash>.torrent, so a restart does not fetch it again;
/// then the download proceeds as with that .torrent. Magnet links and
/// .torrent files mix on one command line.
///
/// swarm exits 0 once every piece is on disk, unless --seed is given: then it
/// keeps uploading to others until Ctrl-C, or until --seed-ratio or
/// --seed-time is reached (either implies seeding); leaving, it tells the
/// trackers it stopped.
///
/// Choking is tit-for-tat: every 10 s the 4 interested peers that gave us
/// the best download rate over the last 20 s are unchoked; every 30 s one
/// more, at random (new peers 3 times as likely), is the optimistic unchoke;
/// a peer that sent nothing for 60 s while unchoking us loses its slot.
/// --peers shows each neighbour's state and the reason.
#[derive(Debug, Args)]
#[command(after_help = format!("{EXAMPLES}\n\n{}", super::EXIT_STATUS_HELP))]
pub struct DownloadArgs {
    /// The .torrent file(s) or magnet links (quote them: they hold `&`).
    #[arg(value_name = "FILE.torrent|MAGNET", required = true, num_args = 1..)]
    pub torrents: Vec<PathBuf>,

    /// The folder to download into.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Keep seeding once complete, until Ctrl-C.
    #[arg(long)]
    pub seed: bool,

    #[command(flatten)]
    pub net: NetArgs,
}

pub fn run(args: DownloadArgs) -> Result<()> {
    let peers = peer::resolve_peers(&args.net.peers)?;
    let torrents = peer::load_torrents(&args.torrents, true)?;
    let dir = peer::output_dir(args.output);
    peer::run(Run {
        torrents,
        dir: &dir,
        mode: OpenMode::Create,
        net: &args.net,
        peers,
        until: match args.net.seed_limits() {
            Some(limits) => Until::SeedLimits(limits),
            None if args.seed => Until::Interrupted,
            None => Until::Complete,
        },
    })?;
    Ok(())
}
