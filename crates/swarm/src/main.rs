//! `swarm`: a BitTorrent toolkit in one binary.
//!
//! This file only parses the command line and dispatches: each subcommand
//! lives in `cmd/<name>.rs` with its clap `Args` struct, its help text and its
//! `run`. Adding one is a variant in [`Command`] and a line in `main`.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
EXAMPLES:
  Make a torrent of a folder, then look inside it:
      swarm create ~/photos -t udp://tracker.example.org:6969/announce
      swarm info photos.torrent

  Read a magnet link:
      swarm info 'magnet:?xt=urn:btih:...&dn=photos'

  Download it into ~/Downloads, then seed the folder it came from:
      swarm download photos.torrent -o ~/Downloads
      swarm seed photos.torrent -d ~/photos/..

  More on one command:
      swarm help create";

/// A BitTorrent toolkit: make, inspect, download and seed torrents.
///
/// swarm speaks BitTorrent v1 (BEP 3) with trackers (HTTP and UDP). Each
/// command below has its own page: `swarm help COMMAND` or `swarm COMMAND
/// --help`. Logs go to stderr: -v for more (repeat for debug, trace), or set
/// RUST_LOG (e.g. RUST_LOG=swarm=debug).
#[derive(Debug, Parser)]
#[command(name = "swarm", version, propagate_version = true)]
#[command(after_help = format!("{EXAMPLES}\n\n{}", cmd::EXIT_STATUS_HELP))]
struct Cli {
    /// More log output on stderr: -v info, -vv debug, -vvv trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Create(cmd::create::CreateArgs),
    Info(cmd::info::InfoArgs),
    Download(cmd::download::DownloadArgs),
    Seed(cmd::seed::SeedArgs),
    Sim(cmd::sim::SimArgs),
    Tracker(cmd::tracker::TrackerArgs),
    Demo(cmd::demo::DemoArgs),
    Dht(cmd::dht::DhtArgs),
    Daemon(cmd::daemon::DaemonArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::init_logging(cli.verbose);
    cmd::exit(match cli.command {
        Command::Create(args) => cmd::create::run(args),
        Command::Info(args) => cmd::info::run(args),
        Command::Download(args) => cmd::download::run(args),
        Command::Seed(args) => cmd::seed::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Tracker(args) => cmd::tracker::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Dht(args) => cmd::dht::run(args),
        Command::Daemon(args) => cmd::daemon::run(args),
    })
}
