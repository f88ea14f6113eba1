//! `swarm daemon` in a test, and `transmission-remote` (Debian's
//! transmission-cli, a real Transmission RPC client) to drive it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::proc::{Proc, wait_until};

pub const TRANSMISSION_REMOTE: &str = "transmission-remote";

/// A running daemon, killed on drop.
pub struct Daemon {
    pub proc: Proc,
    /// Where its HTTP server listens (`127.0.0.1:PORT`).
    pub http: SocketAddr,
    /// Where it accepts peers.
    pub peers: SocketAddr,
    pub state: PathBuf,
    pub download_dir: PathBuf,
}

/// How to start one.
pub struct DaemonOpts<'a> {
    /// Where peers reach it (`--listen`), e.g. from [`crate::free_addr`].
    pub listen: SocketAddr,
    pub state: &'a Path,
    pub download_dir: &'a Path,
    /// More arguments (`--auth-file F`, ...).
    pub extra: Vec<String>,
    /// Its `RUST_LOG` (none: `info`).
    pub rust_log: Option<&'a str>,
}

/// Starts `swarm daemon` on a free HTTP port and waits for the line it
/// prints once it serves (`{"http": ..., "peers": ...}`). Panics, with its
/// log, if it exits or does not get there in 30 s.
pub fn start_daemon(bin: &Path, logs: &Path, name: &str, opts: &DaemonOpts) -> Daemon {
    let mut cmd = Command::new(bin);
    cmd.args(["daemon", "--http", "127.0.0.1:0", "--listen"])
        .arg(opts.listen.to_string())
        .arg("--state")
        .arg(opts.state)
        .arg("--download-dir")
        .arg(opts.download_dir)
        .args(&opts.extra)
        .env("RUST_LOG", opts.rust_log.unwrap_or("info"));
    let mut proc = Proc::spawn(name, cmd, logs);
    let mut addrs = None;
    let up = wait_until(Duration::from_secs(30), || {
        if let Some(v) = proc
            .json_lines()
            .into_iter()
            .find(|v| v["http"].is_string())
        {
            let parse = |k: &str| v[k].as_str().and_then(|s| s.parse::<SocketAddr>().ok());
            addrs = parse("http").zip(parse("peers"));
            return true;
        }
        proc.try_exit().is_some()
    });
    let Some((http, peers)) = addrs.filter(|_| up) else {
        panic!(
            "swarm daemon did not start (exit {:?})\n{}",
            proc.try_exit(),
            proc.log_tail()
        );
    };
    Daemon {
        proc,
        http,
        peers,
        state: opts.state.to_path_buf(),
        download_dir: opts.download_dir.to_path_buf(),
    }
}

impl Daemon {
    /// Runs `transmission-remote HTTP ARGS...` (bounded: 30 s).
    pub fn remote(&self, args: &[&str]) -> Remote {
        remote(self.http, args)
    }

    /// Stops it with SIGTERM and waits (at most 30 s) for it to exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.proc.pid().to_string()])
            .status();
        self.proc.wait_exit(Duration::from_secs(30))
    }
}

/// What a `transmission-remote` run printed.
#[derive(Debug)]
pub struct Remote {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Remote {
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// `transmission-remote ADDR ARGS...`, killed after 30 s.
pub fn remote(addr: SocketAddr, args: &[&str]) -> Remote {
    let mut cmd = Command::new("timeout");
    cmd.args(["30", TRANSMISSION_REMOTE, &addr.to_string()])
        .args(args);
    let out: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {TRANSMISSION_REMOTE}: {e}"));
    Remote {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The row of torrent `id` in `transmission-remote -l` output, split on
/// runs of spaces: `[ID, Done, Have(2 words)..., Status, Name]` as printed.
pub fn list_row(list: &str, id: u32) -> Option<String> {
    list.lines()
        .map(str::trim)
        .find(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|first| first.trim_end_matches('*') == id.to_string())
        })
        .map(str::to_string)
}

/// One Transmission RPC call (`{"method": ..., "arguments": ...}`) to
/// `addr`, with the session-id handshake; the answer's JSON.
pub fn rpc(addr: SocketAddr, request: &serde_json::Value) -> serde_json::Value {
    let body = request.to_string();
    let mut session = String::new();
    for _ in 0..2 {
        let (status, head, answer) = http_post(addr, "/transmission/rpc", &session, &body);
        if status == 409 {
            session = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("x-transmission-session-id")
                        .then(|| v.trim().to_string())
                })
                .expect("a 409 carries the session id");
            continue;
        }
        return serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("RPC answer {status}: {answer}: {e}"));
    }
    panic!("the session-id handshake did not settle");
}

/// A bare HTTP/1.1 POST (Connection: close): status, head, body.
fn http_post(addr: SocketAddr, path: &str, session: &str, body: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nX-Transmission-Session-Id: {session}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}
