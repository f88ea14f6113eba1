//! opentracker on loopback.
//!
//! Debian's opentracker is built whitelist-only: the config file passed with
//! `-f` names a whitelist file holding the info-hashes (hex, one a line) it
//! will track. So the torrent is made first (its announce URL needs the port,
//! which [`crate::free_port`] gives before the tracker starts), then the
//! tracker starts with that torrent's info-hash.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::proc::{Proc, loopback, wait_listening};

pub const OPENTRACKER: &str = "opentracker";

/// A running opentracker, killed on drop.
pub struct Opentracker {
    pub proc: Proc,
    pub port: u16,
    addr: SocketAddr,
}

/// `http://127.0.0.1:PORT/announce`.
pub fn http_announce(port: u16) -> String {
    format!("http://127.0.0.1:{port}/announce")
}

/// `udp://127.0.0.1:PORT/announce`.
pub fn udp_announce(port: u16) -> String {
    format!("udp://127.0.0.1:{port}/announce")
}

impl Opentracker {
    /// Starts opentracker on 127.0.0.1:`port` (TCP and UDP), tracking only
    /// `info_hashes` (hex). Files go in `dir`. Waits until it accepts HTTP.
    pub fn start(dir: &Path, port: u16, info_hashes: &[&str]) -> Opentracker {
        Self::start_at(dir, loopback(port), info_hashes)
    }

    /// As [`Opentracker::start`], on `addr` (e.g. from
    /// [`crate::free_addr`]: an address of its own, so no other test's
    /// tracker can hold the port). Panics, with its log, if our opentracker
    /// exited (its port was taken between the test choosing it and
    /// opentracker binding it) instead of answering for another one.
    pub fn start_at(dir: &Path, addr: SocketAddr, info_hashes: &[&str]) -> Opentracker {
        let port = addr.port();
        let ip = addr.ip();
        std::fs::create_dir_all(dir).expect("create tracker dir");
        let whitelist = dir.join("opentracker.whitelist");
        let mut list = String::new();
        for h in info_hashes {
            assert_eq!(h.len(), 40, "hex info-hash: {h}");
            list.push_str(&h.to_lowercase());
            list.push('\n');
        }
        std::fs::write(&whitelist, list).expect("write whitelist");
        let conf = dir.join("opentracker.conf");
        std::fs::write(
            &conf,
            format!(
                "listen.tcp {ip}:{port}\nlisten.udp {ip}:{port}\naccess.whitelist {}\n",
                whitelist.display()
            ),
        )
        .expect("write opentracker.conf");
        let mut cmd = Command::new(OPENTRACKER);
        cmd.arg("-f").arg(&conf);
        let proc = Proc::spawn(&format!("opentracker-{port}"), cmd, dir);
        let mut tracker = Opentracker { proc, port, addr };
        let listening = wait_listening(tracker.addr(), Duration::from_secs(10));
        // opentracker exits at once when it cannot bind: a listener there
        // without ours alive is someone else's.
        std::thread::sleep(Duration::from_millis(100));
        if !listening || tracker.proc.try_exit().is_some() {
            let exit = tracker.proc.try_exit();
            panic!(
                "opentracker did not listen on {} (exit {exit:?})\n{}",
                tracker.addr(),
                tracker.proc.log_tail()
            );
        }
        tracker
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn http_announce(&self) -> String {
        format!("http://{}/announce", self.addr)
    }

    pub fn udp_announce(&self) -> String {
        format!("udp://{}/announce", self.addr)
    }
}

impl Opentracker {
    /// The tracker's scrape of `info_hash_hex`: (seeders, leechers), or None if
    /// the scrape failed. Lets a test wait until a peer has announced instead
    /// of sleeping.
    pub fn scrape(&self, info_hash_hex: &str) -> Option<(u64, u64)> {
        use std::io::{Read, Write};
        let mut escaped = String::new();
        for i in (0..info_hash_hex.len()).step_by(2) {
            escaped.push('%');
            escaped.push_str(info_hash_hex.get(i..i + 2)?);
        }
        let mut s =
            std::net::TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            s,
            "GET /scrape?info_hash={escaped} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.addr
        )
        .ok()?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).ok()?;
        let text = String::from_utf8_lossy(&resp);
        let int_after = |key: &str| -> Option<u64> {
            let at = text.find(key)? + key.len();
            let rest = &text[at..];
            rest[..rest.find('e')?].parse().ok()
        };
        if text.contains("d5:filesdee") {
            return Some((0, 0)); // opentracker's answer for a torrent without peers
        }
        Some((int_after("8:completei")?, int_after("10:incompletei")?))
    }

    /// Waits until the tracker knows at least `peers` peers (seeders plus
    /// leechers) of the torrent.
    pub fn wait_peers(&self, info_hash_hex: &str, peers: u64, timeout: Duration) -> bool {
        crate::proc::wait_until(timeout, || {
            self.scrape(info_hash_hex)
                .is_some_and(|(s, l)| s + l >= peers)
        })
    }
}
