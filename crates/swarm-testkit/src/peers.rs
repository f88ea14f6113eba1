//! Launching the peers of an interop test and telling when each is done.
//!
//! Each launcher returns a [`Peer`]: the process (killed on drop), its listen
//! address, and how to tell that it completed, which differs per client:
//! - libtorrent (`tests/py/lt_peer.py`): a JSON status line with `"complete": true`;
//! - swarm: `swarm download` exits 0, or a `--json` status line says it is complete;
//! - Transmission (`transmission-cli`): it never exits, so `-f SCRIPT` touches a marker file;
//! - aria2 (`aria2c --seed-time=0`): it exits 0 when done.
//!
//! Loopback quirks (see DESIGN.md): libtorrent runs TCP-only; Transmission 3.00
//! ignores 127.x peers a tracker hands it, so it receives data only from peers
//! that connect to it: start it first and point the seeder at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::{ListenAt, Proc, loopback, wait_until};
use crate::torrent::{TorrentFile, lt_peer_script};

pub const TRANSMISSION: &str = "transmission-cli";
pub const ARIA2: &str = "aria2c";

/// Which client a [`Peer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Libtorrent,
    Swarm,
    Transmission,
    Aria2,
}

/// A running peer of a test.
pub struct Peer {
    pub proc: Proc,
    pub client: Client,
    /// Where it accepts peers.
    pub listen: SocketAddr,
    /// The directory the torrent's content is (or will be) in: the torrent's
    /// name is a child of it.
    pub dir: PathBuf,
    /// Transmission's completion marker.
    done_marker: Option<PathBuf>,
    /// Whether the process is expected to exit by itself when complete.
    exits_when_complete: bool,
}

impl Peer {
    /// True once the peer has the whole torrent.
    pub fn is_complete(&mut self) -> bool {
        match self.client {
            Client::Libtorrent => self.proc.json_lines().iter().any(|v| v["complete"] == true),
            Client::Swarm => {
                (self.exits_when_complete && self.proc.try_exit().is_some_and(|s| s.success()))
                    || self.proc.json_lines().iter().any(swarm_status_is_complete)
            }
            Client::Transmission => self.done_marker.as_ref().is_some_and(|m| m.exists()),
            Client::Aria2 => self.proc.try_exit().is_some_and(|s| s.success()),
        }
    }

    /// An error if the process exited when it should still run (a seeder, or a
    /// leecher before completing, or any peer with a failure status).
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.proc.try_exit() {
            None => Ok(()),
            Some(s) if s.success() && self.exits_when_complete => Ok(()),
            Some(s) => Err(format!("{} exited early with {s}", self.proc.name())),
        }
    }

    /// The path of the torrent's content at this peer.
    pub fn content(&self, torrent: &TorrentFile) -> PathBuf {
        self.dir.join(&torrent.name)
    }
}

/// Whether a swarm `--json` status line says the torrent is complete.
///
/// Accepts a `"state"` of seeding/complete/completed/finished/done or
/// `"complete": true`.
pub fn swarm_status_is_complete(v: &serde_json::Value) -> bool {
    let state_done = v["state"].as_str().is_some_and(|s| {
        matches!(
            s.to_lowercase().as_str(),
            "seeding" | "complete" | "completed" | "finished" | "done"
        )
    });
    let complete_flag = v["complete"] == true;
    state_done || complete_flag
}

/// Waits until every peer in `peers` is complete, failing fast if one dies.
/// Panics with every peer's log tail on failure or timeout.
pub fn wait_all_complete(peers: &mut [&mut Peer], timeout: Duration) {
    let mut failure: Option<String> = None;
    let done = wait_until(timeout, || {
        let mut all = true;
        for p in peers.iter_mut() {
            if p.is_complete() {
                continue;
            }
            all = false;
            if let Err(e) = p.check_alive() {
                failure = Some(e);
                return true;
            }
        }
        all
    });
    let failure = failure.or_else(|| (!done).then(|| format!("timeout after {timeout:?}")));
    if let Some(why) = failure {
        let incomplete: Vec<String> = peers
            .iter_mut()
            .filter_map(|p| (!p.is_complete()).then(|| p.proc.name().to_string()))
            .collect();
        let logs: String = peers.iter().map(|p| p.proc.log_tail()).collect();
        panic!("peers did not all complete ({why}); incomplete: {incomplete:?}\n{logs}");
    }
}

/// Panics with the peer's log unless it stays alive (a seeder) for the check.
pub fn assert_alive(peer: &mut Peer) {
    if let Err(e) = peer.check_alive() {
        panic!("{e}\n{}", peer.proc.log_tail());
    }
}

fn lt_command(
    mode: &str,
    torrent: &TorrentFile,
    dir: &Path,
    listen: SocketAddr,
    peers: &[SocketAddr],
) -> Command {
    let mut cmd = Command::new(crate::PYTHON);
    cmd.arg(lt_peer_script())
        .arg(mode)
        .arg("--torrent")
        .arg(&torrent.path)
        .arg("--dir")
        .arg(dir)
        .args(["--port", &listen.port().to_string(), "--interval", "0.5"]);
    if listen.ip() != loopback(0).ip() {
        cmd.args(["--ip", &listen.ip().to_string()]);
    }
    for p in peers {
        cmd.args(["--peer", &p.to_string()]);
    }
    cmd
}

/// A libtorrent seeder of `torrent` whose content is in `data_dir`, listening on
/// `listen` (a port on 127.0.0.1, or an address: it dials from its IP) and
/// dialling `peers` every 2 s.
pub fn lt_seed(
    logs: &Path,
    name: &str,
    torrent: &TorrentFile,
    data_dir: &Path,
    listen: impl Into<ListenAt>,
    peers: &[SocketAddr],
) -> Peer {
    let listen = listen.into().0;
    let cmd = lt_command("seed", torrent, data_dir, listen, peers);
    libtorrent_peer(logs, name, cmd, listen, data_dir)
}

/// As [`lt_seed`], uploading at most `upload_limit` bytes/s (so that a
/// download from it lasts long enough to watch).
pub fn lt_seed_capped(
    logs: &Path,
    name: &str,
    torrent: &TorrentFile,
    data_dir: &Path,
    listen: impl Into<ListenAt>,
    peers: &[SocketAddr],
    upload_limit: u64,
) -> Peer {
    let listen = listen.into().0;
    let mut cmd = lt_command("seed", torrent, data_dir, listen, peers);
    cmd.args(["--upload-limit", &upload_limit.to_string()]);
    libtorrent_peer(logs, name, cmd, listen, data_dir)
}

/// A libtorrent leecher downloading into `out_dir`; it keeps seeding when done.
pub fn lt_leech(
    logs: &Path,
    name: &str,
    torrent: &TorrentFile,
    out_dir: &Path,
    listen: impl Into<ListenAt>,
    peers: &[SocketAddr],
) -> Peer {
    lt_leech_with(logs, name, torrent, out_dir, listen.into(), peers, &[])
}

/// As [`lt_leech`], with one disk I/O thread: for a leech that is sent corrupt
/// pieces (a [`crate::hostile::HostilePeer`]).
///
/// With libtorrent's default 10 threads, libtorrent 2.0.8 (Debian's) hashes a
/// piece on any of them, so the hash can finish before the piece's last
/// block is written. When that piece fails, its reset (a disk fence) and the
/// write's completion race: the write's completion can reach libtorrent's
/// network thread after the reset, which marks the stale corrupt block
/// finished again. A piece of more blocks then fails once more when an
/// honest peer fills it in; a one-block piece (a short last piece) is never
/// checked again and has nothing left to request, so the download never
/// completes. One thread runs a piece's writes and hash in order.
pub fn lt_leech_one_disk_thread(
    logs: &Path,
    name: &str,
    torrent: &TorrentFile,
    out_dir: &Path,
    listen: impl Into<ListenAt>,
    peers: &[SocketAddr],
) -> Peer {
    let one_thread = ["--aio-threads", "1"];
    lt_leech_with(
        logs,
        name,
        torrent,
        out_dir,
        listen.into(),
        peers,
        &one_thread,
    )
}

/// A libtorrent leecher with `extra` arguments to `lt_peer.py`.
fn lt_leech_with(
    logs: &Path,
    name: &str,
    torrent: &TorrentFile,
    out_dir: &Path,
    listen: ListenAt,
    peers: &[SocketAddr],
    extra: &[&str],
) -> Peer {
    std::fs::create_dir_all(out_dir).expect("create out dir");
    let listen = listen.0;
    let mut cmd = lt_command("leech", torrent, out_dir, listen, peers);
    cmd.args(extra);
    libtorrent_peer(logs, name, cmd, listen, out_dir)
}

/// Starts `cmd`, a `tests/py/lt_peer.py` process listening on `listen` with
/// its data in `dir`; it never exits by itself.
fn libtorrent_peer(logs: &Path, name: &str, cmd: Command, listen: SocketAddr, dir: &Path) -> Peer {
    Peer {
        proc: Proc::spawn(name, cmd, logs),
        client: Client::Libtorrent,
        listen,
        dir: dir.to_path_buf(),
        done_marker: None,
        exits_when_complete: false,
    }
}

/// `transmission-cli` on `port` with a fresh config dir, downloading into (or
/// seeding from, with `verify`) `dir`. Completion is a marker file its `-f`
/// script touches. It never exits by itself.
pub fn transmission(
    logs: &Path,
    name: &str,
    torrent: &TorrentFile,
    dir: &Path,
    port: u16,
    verify: bool,
) -> Peer {
    std::fs::create_dir_all(dir).expect("create transmission dir");
    let work = logs.join(format!("{name}.transmission"));
    // Transmission checks a torrent new to its config dir by itself before
    // starting it (libtransmission's torrentInit: `isNewTorrent` →
    // `tr_torrentVerify`). `-v` on top asked for a second check, which
    // stops the torrent and races the first one; transmission-cli exits as
    // soon as its torrent reads as stopped, so under load the seeder was
    // sometimes gone 0.2 s after its start (2 runs in 5). So `-v` only
    // when this config dir already knows the torrent (a restart).
    let known = work.join("config").exists();
    std::fs::create_dir_all(&work).expect("create transmission config dir");
    let marker = work.join("done");
    let script = work.join("on-done.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .expect("write -f script");
    set_executable(&script);
    let mut cmd = Command::new(TRANSMISSION);
    cmd.args(["-M", "-et", "-D", "-U", "-p", &port.to_string()])
        .arg("-g")
        .arg(work.join("config"))
        .arg("-w")
        .arg(dir)
        .arg("-f")
        .arg(&script);
    if verify && known {
        cmd.arg("-v");
    }
    cmd.arg(&torrent.path);
    Peer {
        proc: Proc::spawn(name, cmd, logs),
        client: Client::Transmission,
        listen: loopback(port),
        dir: dir.to_path_buf(),
        done_marker: Some(marker),
        exits_when_complete: false,
    }
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(path).expect("stat script").permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(path, perm).expect("chmod script");
}

fn aria2_command(logs: &Path, name: &str, dir: &Path, port: u16) -> Command {
    aria2_command_dht(logs, name, dir, port, false)
}

/// aria2 1.36 asks UDP trackers only with its DHT on (`dht`); the DHT then
/// finds nobody on loopback, which is harmless.
fn aria2_command_dht(logs: &Path, name: &str, dir: &Path, port: u16, dht: bool) -> Command {
    let mut cmd = Command::new(ARIA2);
    if dht {
        cmd.arg(format!("--dht-listen-port={port}")).arg(format!(
            "--dht-file-path={}",
            dir.join(".aria2-dht.dat").display()
        ));
    }
    cmd.args([
        if dht {
            "--enable-dht=true"
        } else {
            "--enable-dht=false"
        },
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--file-allocation=none",
        "--bt-external-ip=127.0.0.1",
        // Its sockets on 127.0.0.1 only. Left to itself it listens on the
        // IPv4 wildcard, which fails when any other loopback IP (a test
        // peer's 127.0.x.y, `free_addr`) holds the same port: aria2 then
        // listens on IPv6 alone and never on 127.0.0.1 (a CI run's
        // `aria2 listens` failure, reproduced with a socket on
        // 127.0.0.5:port). `free_port` checks 127.0.0.1 only, which is now
        // all aria2 needs.
        "--interface=127.0.0.1",
        "--summary-interval=1",
        "--console-log-level=notice",
        "--auto-save-interval=0",
        &format!("--listen-port={port}"),
    ])
    .arg(format!("--dir={}", dir.display()))
    .arg(format!(
        "--log={}",
        logs.join(format!("{name}.aria2.log")).display()
    ))
    .arg("--log-level=info");
    cmd
}

/// `aria2c` downloading into `dir`; it exits 0 when done (`--seed-time=0`).
pub fn aria2_leech(logs: &Path, name: &str, torrent: &TorrentFile, dir: &Path, port: u16) -> Peer {
    std::fs::create_dir_all(dir).expect("create aria2 dir");
    let mut cmd = aria2_command(logs, name, dir, port);
    cmd.arg("--seed-time=0").arg(&torrent.path);
    Peer {
        proc: Proc::spawn(name, cmd, logs),
        client: Client::Aria2,
        listen: loopback(port),
        dir: dir.to_path_buf(),
        done_marker: None,
        exits_when_complete: true,
    }
}

/// `aria2c` downloading into `dir` with its DHT on, which aria2 needs to use
/// UDP trackers at all; it exits 0 when done.
pub fn aria2_leech_dht(
    logs: &Path,
    name: &str,
    torrent: &TorrentFile,
    dir: &Path,
    port: u16,
) -> Peer {
    std::fs::create_dir_all(dir).expect("create aria2 dir");
    let mut cmd = aria2_command_dht(logs, name, dir, port, true);
    cmd.arg("--seed-time=0").arg(&torrent.path);
    Peer {
        proc: Proc::spawn(name, cmd, logs),
        client: Client::Aria2,
        listen: loopback(port),
        dir: dir.to_path_buf(),
        done_marker: None,
        exits_when_complete: true,
    }
}

/// `aria2c` seeding `torrent` from `dir` (checked first) until killed.
pub fn aria2_seed(logs: &Path, name: &str, torrent: &TorrentFile, dir: &Path, port: u16) -> Peer {
    let mut cmd = aria2_command(logs, name, dir, port);
    cmd.args(["--check-integrity=true", "--seed-ratio=0.0"])
        .arg(&torrent.path);
    Peer {
        proc: Proc::spawn(name, cmd, logs),
        client: Client::Aria2,
        listen: loopback(port),
        dir: dir.to_path_buf(),
        done_marker: None,
        exits_when_complete: false,
    }
}

/// Options of a swarm peer beyond the torrent and directory.
#[derive(Debug, Clone, Default)]
pub struct SwarmOpts {
    /// `--peer` addresses.
    pub peers: Vec<SocketAddr>,
    /// Keep seeding after the download (`--seed`).
    pub seed_after: bool,
    /// More arguments, appended last.
    pub extra: Vec<String>,
    /// Environment variables for the process (`RUST_LOG` among them
    /// overrides the default).
    pub env: Vec<(String, String)>,
}

fn swarm_command(
    bin: &Path,
    sub: &str,
    torrent: &TorrentFile,
    dir_flag: &str,
    dir: &Path,
    listen: SocketAddr,
    opts: &SwarmOpts,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg(sub)
        .arg(&torrent.path)
        .arg(dir_flag)
        .arg(dir)
        .args(["--listen", &listen.to_string(), "--json"]);
    for p in &opts.peers {
        cmd.args(["--peer", &p.to_string()]);
    }
    cmd.args(&opts.extra);
    cmd.env(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    cmd.env("RUST_BACKTRACE", "1");
    // No DHT bootstrap unless a test names one: tests never contact the
    // public routers.
    cmd.env("SWARM_DHT_BOOTSTRAP", "");
    cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// `swarm download TORRENT -o OUT --listen ADDR --json [--peer ..]` (a `u16`
/// listens on 127.0.0.1; a [`crate::free_addr`] on an IP of its own).
/// `bin` is the test's `env!("CARGO_BIN_EXE_swarm")`.
pub fn swarm_download(
    bin: &Path,
    logs: &Path,
    name: &str,
    torrent: &TorrentFile,
    out_dir: &Path,
    listen: impl Into<ListenAt>,
    opts: &SwarmOpts,
) -> Peer {
    std::fs::create_dir_all(out_dir).expect("create out dir");
    let listen = listen.into().0;
    let mut cmd = swarm_command(bin, "download", torrent, "-o", out_dir, listen, opts);
    if opts.seed_after {
        cmd.arg("--seed");
    }
    Peer {
        proc: Proc::spawn(name, cmd, logs),
        client: Client::Swarm,
        listen,
        dir: out_dir.to_path_buf(),
        done_marker: None,
        exits_when_complete: !opts.seed_after,
    }
}

/// `swarm seed TORRENT -d DATA_DIR --listen ADDR --json [--peer ..]`.
pub fn swarm_seed(
    bin: &Path,
    logs: &Path,
    name: &str,
    torrent: &TorrentFile,
    data_dir: &Path,
    listen: impl Into<ListenAt>,
    opts: &SwarmOpts,
) -> Peer {
    let listen = listen.into().0;
    let cmd = swarm_command(bin, "seed", torrent, "-d", data_dir, listen, opts);
    Peer {
        proc: Proc::spawn(name, cmd, logs),
        client: Client::Swarm,
        listen,
        dir: data_dir.to_path_buf(),
        done_marker: None,
        exits_when_complete: false,
    }
}

/// Checks that the swarm binary at `bin` has the subcommand `sub` (the CLI is
/// being built alongside these tests). Missing under CI=true: panics;
/// otherwise prints SKIP and returns false.
pub fn require_swarm_subcommand(bin: &Path, sub: &str) -> bool {
    // A skeleton binary that ignores its arguments also exits 0: ask for
    // clap's usage text naming the subcommand.
    let ok = Command::new(bin)
        .args([sub, "--help"])
        .output()
        .is_ok_and(|o| {
            let text = String::from_utf8_lossy(&o.stdout) + String::from_utf8_lossy(&o.stderr);
            o.status.success() && text.contains("Usage") && text.contains(sub)
        });
    if ok {
        return true;
    }
    let why = format!("`{} {sub}` is not available", bin.display());
    if crate::proc::in_ci() {
        panic!("{why}: required when CI=true");
    }
    eprintln!("SKIP: {why}");
    false
}

/// The swarm binary under test: `$SWARM_TEST_BIN` if set (to test another
/// build, e.g. a release one), else `cargo_bin` (the test's
/// `env!("CARGO_BIN_EXE_swarm")`).
pub fn swarm_bin(cargo_bin: &str) -> PathBuf {
    std::env::var_os("SWARM_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(cargo_bin))
}
