//! Test support for swarm's interop tests and benchmark (dev-only, not published).
//!
//! - [`proc`]: child processes killed on drop, free loopback ports, bounded waits,
//!   `require_program` (a missing program fails under `CI=true`, skips otherwise).
//! - [`data`]: deterministic test content (odd sizes, trees) and byte comparison.
//! - [`hostile`]: a raw-TCP peer that serves corrupted blocks.
//! - [`torrent`]: v1-only torrents made by libtorrent.
//! - [`tracker`]: opentracker on loopback (whitelist-only in Debian).
//! - [`peers`]: libtorrent, Transmission, aria2 and swarm peers, and when each is done.
//!
//! Every test makes a [`TestDir`] (its own temp dir, logs under `logs/`) and
//! its own ports; everything it starts dies when the test ends.

pub mod cli;
pub mod daemon;
pub mod data;
pub mod hostile;
pub mod peers;
pub mod proc;
pub mod raw_bencode;
pub mod torrent;
pub mod tracker;
pub mod webdriver;

use std::path::{Path, PathBuf};

pub use data::{assert_same_tree, compare_tree};
pub use peers::{Client, Peer, SwarmOpts, wait_all_complete};
pub use proc::{
    ListenAt, Proc, free_addr, free_port, free_port_on, loopback, require_program,
    require_python_libtorrent, wait_until,
};
pub use torrent::{
    PIECE_4_MIB, PIECE_16_KIB, PIECE_256_KIB, TorrentFile, make_hybrid_torrent, make_torrent,
};
pub use tracker::Opentracker;

/// Debian's python3, the one that imports python3-libtorrent. A `python3`
/// earlier on PATH (pyenv) is another interpreter without it.
pub const PYTHON: &str = "/usr/bin/python3";

/// The workspace root (this crate is `crates/swarm-testkit`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/swarm-testkit is two levels below the workspace root")
        .to_path_buf()
}

/// A test's own temporary directory, removed on drop (kept with
/// `SWARM_KEEP_TEST_DIR=1`, its path printed, for debugging).
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    pub fn new(label: &str) -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("swarm-{label}-"))
            .tempdir()
            .expect("create temp dir");
        let path = dir.path().to_path_buf();
        let keep = std::env::var("SWARM_KEEP_TEST_DIR").is_ok_and(|v| v == "1");
        if keep {
            eprintln!("test dir kept: {}", path.display());
            return TestDir {
                dir: None,
                path: dir.keep(),
            };
        }
        TestDir {
            dir: Some(dir),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self/name`, created.
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p).expect("create sub dir");
        p
    }

    /// Where peers' logs go.
    pub fn logs(&self) -> PathBuf {
        self.sub("logs")
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "(failed test's dir: {}; set SWARM_KEEP_TEST_DIR=1 to keep it)",
                self.path.display()
            );
        }
        drop(self.dir.take());
    }
}
