//! The daemon's state folder: what survives a restart and a SIGKILL.
//!
//! ```text
//! STATE/
//!   lock                     held (flock, exclusive) while a daemon runs; holds its pid
//!   state.json               the settings
//!   torrents/<hex>.json      each torrent's record (id, folder, paused, ...)
//!   torrents/<hex>.torrent   its metainfo, as added (or as fetched for a magnet link)
//!   resume/<hex>.resume      its resume record (swarm-net's format)
//! ```
//!
//! One small file per torrent, so adding the thousandth torrent writes two
//! small files, not a list of a thousand. Every file is written atomically
//! (a temporary file in the same folder, fsync, rename, fsync the folder):
//! a crash leaves the old version or the new one, never a torn one. A
//! record is written after its metainfo, so a record always has one. A
//! `state.json` or record that does not parse stops the daemon (or leaves
//! that torrent out, logged) and is never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::DaemonError;

/// The version of `state.json` this build writes and reads.
pub const STATE_VERSION: u32 = 1;

/// The settings a client can change (`session-set`), kept across restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Settings {
    /// At most this many torrents download at once (the rest wait, queued);
    /// none: no limit.
    pub download_queue_size: Option<u32>,
    /// Global rate limits, bytes/s (none: unlimited).
    pub download_limit: Option<u64>,
    pub upload_limit: Option<u64>,
    /// The limits last entered, kept while switched off (Transmission's
    /// `speed-limit-down` with `speed-limit-down-enabled` false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_limit_value: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_limit_value: Option<u64>,
    /// Connections over all torrents at most (none: the endpoint's 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_limit_global: Option<u32>,
    /// A complete torrent stops once it uploaded this many times what it
    /// downloaded (Transmission's `seedRatioLimit` with `seedRatioLimited`);
    /// the value is kept while off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed_ratio_limit: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed_ratio_value: Option<f64>,
    /// A complete torrent stops after this many minutes without traffic
    /// (`idle-seeding-limit` with `idle-seeding-limit-enabled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_seeding_limit_min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_seeding_value_min: Option<u32>,
}

/// Transmission's default seed ratio limit (shown while none is set).
pub const SEED_RATIO_DEFAULT: f64 = 2.0;
/// Transmission's default idle seeding limit, minutes.
pub const SEED_IDLE_DEFAULT_MIN: u32 = 30;

impl Settings {
    /// Sets a global limit as Transmission's `session-set` does: `value`
    /// (bytes/s) is kept even while the limit is off; `enabled` switches it.
    pub fn set_limit<T: Copy>(
        limit: &mut Option<T>,
        kept: &mut Option<T>,
        value: Option<T>,
        enabled: Option<bool>,
        default: T,
    ) {
        if let Some(v) = value {
            *kept = Some(v);
            if limit.is_some() {
                *limit = Some(v);
            }
        }
        match enabled {
            Some(true) => *limit = Some(limit.or(*kept).unwrap_or(default)),
            Some(false) => {
                *kept = limit.or(*kept);
                *limit = None;
            }
            None => {}
        }
    }
}

/// One torrent as the daemon remembers it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TorrentRecord {
    /// The number Transmission's RPC names it by (stable across restarts).
    pub id: u32,
    /// The v1 info-hash, 40 lowercase hex digits.
    pub info_hash: String,
    pub name: String,
    /// The folder its content lies in (DIR/NAME).
    pub download_dir: PathBuf,
    /// Stopped by the user: not started at the next start either.
    pub paused: bool,
    /// Seconds since the Unix epoch.
    pub added_unix: u64,
    /// When it completed, if it did.
    #[serde(default)]
    pub done_unix: Option<u64>,
    /// Files the user skipped (indexes in the torrent's file list without
    /// its BEP 47 pad files, as the RPC and the API number them), sorted.
    #[serde(default)]
    pub files_unwanted: Vec<u32>,
    /// Files of high and of low priority (the rest: normal), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_high: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_low: Vec<u32>,
    /// This torrent's own limits, bytes/s.
    #[serde(default)]
    pub download_limit: Option<u64>,
    #[serde(default)]
    pub upload_limit: Option<u64>,
    /// Seed ratio: 0 the session's, 1 this torrent's `seed_ratio_limit`, 2
    /// none (Transmission's `seedRatioMode`); the same for idle seeding.
    #[serde(default)]
    pub seed_ratio_mode: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_ratio_limit: Option<f64>,
    #[serde(default)]
    pub seed_idle_mode: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_idle_limit_min: Option<u32>,
    /// Added as a magnet link (kept until its metadata is known, and after).
    #[serde(default)]
    pub magnet: Option<String>,
    /// Its own cap on connections (Transmission's `peer-limit`; none: the
    /// endpoint's per-torrent cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_limit: Option<u32>,
    /// Payload bytes uploaded and downloaded over every run before the
    /// current one (Transmission's `uploadedEver`/`downloadedEver` less
    /// this run's): the seed ratio counts across restarts. Saved when a run
    /// ends and every [`crate::service::EVER_SAVE_INTERVAL`] while it runs.
    #[serde(default)]
    pub uploaded_ever: u64,
    #[serde(default)]
    pub downloaded_ever: u64,
    /// Seconds it spent downloading (a magnet's metadata too) and seeding
    /// over every run (Transmission's `secondsDownloading`,
    /// `secondsSeeding`): kept once complete. Saved with the record (at
    /// the end of a run, and whenever it is saved for another reason).
    #[serde(default)]
    pub seconds_downloading: u64,
    #[serde(default)]
    pub seconds_seeding: u64,
}

/// `state.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StateFile {
    pub version: u32,
    #[serde(default)]
    pub settings: Settings,
}

impl Default for StateFile {
    fn default() -> Self {
        StateFile {
            version: STATE_VERSION,
            settings: Settings::default(),
        }
    }
}

/// The open, locked state folder. The lock is released when this is dropped
/// (or the process dies: the kernel drops flocks with the last descriptor).
#[derive(Debug)]
pub struct StateDir {
    root: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Creates the folder if needed and takes its lock: a second daemon on
    /// the same folder gets [`DaemonError::Locked`].
    pub fn open(root: &Path) -> Result<StateDir, DaemonError> {
        let io = |what: &str, e: io::Error| DaemonError::State(format!("{what}: {e}"));
        for sub in ["", "torrents", "resume"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| io(&dir.display().to_string(), e))?;
        }
        let lock_path = root.join("lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io(&lock_path.display().to_string(), e))?;
        if rustix::fs::flock(
            lock.as_fd(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        )
        .is_err()
        {
            let mut pid = String::new();
            let _ = lock.read_to_string(&mut pid);
            return Err(DaemonError::Locked {
                dir: root.to_path_buf(),
                pid: pid.trim().to_string(),
            });
        }
        lock.set_len(0)
            .and_then(|_| lock.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .map_err(|e| io(&lock_path.display().to_string(), e))?;
        Ok(StateDir {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// Where the resume records live (swarm-net writes them).
    pub fn resume_dir(&self) -> PathBuf {
        self.root.join("resume")
    }

    pub fn torrent_path(&self, info_hash_hex: &str) -> PathBuf {
        self.root
            .join("torrents")
            .join(format!("{info_hash_hex}.torrent"))
    }

    /// The saved state (a default one if there is none yet).
    pub fn load(&self) -> Result<StateFile, DaemonError> {
        let path = self.state_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StateFile::default()),
            Err(e) => return Err(DaemonError::State(format!("{}: {e}", path.display()))),
        };
        let state: StateFile = serde_json::from_slice(&bytes).map_err(|e| {
            DaemonError::State(format!(
                "{} is not a state file this daemon can read ({e}); it was left as it is",
                path.display()
            ))
        })?;
        if state.version != STATE_VERSION {
            return Err(DaemonError::State(format!(
                "{} has version {}, this build reads {STATE_VERSION}",
                path.display(),
                state.version
            )));
        }
        Ok(state)
    }

    /// Saves the settings atomically.
    pub fn save(&self, state: &StateFile) -> Result<(), DaemonError> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| DaemonError::State(format!("encoding the state: {e}")))?;
        write_atomically(&self.state_path(), &bytes)
            .map_err(|e| DaemonError::State(format!("{}: {e}", self.state_path().display())))
    }

    fn record_path(&self, info_hash_hex: &str) -> PathBuf {
        self.root
            .join("torrents")
            .join(format!("{info_hash_hex}.json"))
    }

    /// Saves one torrent's record atomically.
    pub fn save_record(&self, record: &TorrentRecord) -> Result<(), DaemonError> {
        let path = self.record_path(&record.info_hash);
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| DaemonError::State(format!("encoding a record: {e}")))?;
        write_atomically(&path, &bytes)
            .map_err(|e| DaemonError::State(format!("{}: {e}", path.display())))
    }

    /// Every torrent record, by id; a record that does not parse is left
    /// out (logged) and left on disk.
    pub fn records(&self) -> Result<Vec<TorrentRecord>, DaemonError> {
        let dir = self.root.join("torrents");
        let entries = fs::read_dir(&dir)
            .map_err(|e| DaemonError::State(format!("{}: {e}", dir.display())))?;
        let mut records = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match fs::read(&path).map_err(|e| e.to_string()).and_then(|b| {
                serde_json::from_slice::<TorrentRecord>(&b).map_err(|e| e.to_string())
            }) {
                Ok(r) => records.push(r),
                Err(e) => tracing::error!(path = %path.display(), "a torrent record left out: {e}"),
            }
        }
        records.sort_by_key(|r| r.id);
        Ok(records)
    }

    /// Keeps a torrent's metainfo (a temporary file, fsync, rename). The
    /// folder is fsynced by the [`StateDir::save_record`] that follows it
    /// (the record is what makes the torrent exist).
    pub fn save_torrent(&self, info_hash_hex: &str, bytes: &[u8]) -> Result<(), DaemonError> {
        let path = self.torrent_path(info_hash_hex);
        write_and_rename(&path, bytes)
            .map_err(|e| DaemonError::State(format!("{}: {e}", path.display())))
    }

    /// Forgets a torrent's metainfo and resume record.
    pub fn remove_torrent(&self, info_hash_hex: &str) {
        let _ = fs::remove_file(self.record_path(info_hash_hex));
        let _ = fs::remove_file(self.torrent_path(info_hash_hex));
        self.remove_resume(info_hash_hex);
        let _ = fs::remove_file(self.parts_path(info_hash_hex));
    }

    /// A torrent's parts file (skipped files' bytes that share a piece
    /// with a wanted file), beside its resume record; swarm-net names it.
    pub fn parts_path(&self, info_hash_hex: &str) -> PathBuf {
        self.resume_dir().join(format!("{info_hash_hex}.parts"))
    }

    /// Deletes a torrent's resume record (the next start checks its data).
    pub fn remove_resume(&self, info_hash_hex: &str) {
        let _ = fs::remove_file(self.resume_dir().join(format!("{info_hash_hex}.resume")));
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one: a temporary file beside it, fsync, rename, fsync the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_and_rename(path, bytes)?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// A temporary file beside `path`, fsync, rename (the folder not fsynced).
fn write_and_rename(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_folder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDir::open(dir.path()).unwrap();
        let err = StateDir::open(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("another swarm daemon") && text.contains(&std::process::id().to_string()),
            "{text}"
        );
        drop(first);
        StateDir::open(dir.path()).unwrap();
    }

    #[test]
    fn state_round_trips_and_a_corrupt_file_is_an_error_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        assert_eq!(s.load().unwrap(), StateFile::default());
        assert!(s.records().unwrap().is_empty());
        let record = TorrentRecord {
            id: 7,
            info_hash: "ab".repeat(20),
            name: "x".into(),
            download_dir: "/tmp/x".into(),
            paused: true,
            added_unix: 1,
            done_unix: None,
            files_unwanted: vec![1],
            files_high: vec![2],
            files_low: vec![0],
            download_limit: Some(5),
            upload_limit: None,
            seed_ratio_mode: 1,
            seed_ratio_limit: Some(1.5),
            seed_idle_mode: 2,
            seed_idle_limit_min: None,
            magnet: None,
            peer_limit: Some(3),
            uploaded_ever: 10,
            downloaded_ever: 20,
            seconds_downloading: 30,
            seconds_seeding: 40,
        };
        s.save_record(&record).unwrap();
        let mut state = StateFile::default();
        state.settings.download_queue_size = Some(3);
        s.save(&state).unwrap();
        assert_eq!(s.load().unwrap(), state);
        assert_eq!(s.records().unwrap(), vec![record.clone()]);
        // A torn record (not possible through save_record) is left out, not fatal.
        fs::write(
            dir.path()
                .join("torrents")
                .join(format!("{}.json", "cd".repeat(20))),
            b"{",
        )
        .unwrap();
        assert_eq!(s.records().unwrap(), vec![record]);
        fs::write(dir.path().join("state.json"), b"{not json").unwrap();
        let err = s.load().unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
        assert_eq!(
            fs::read(dir.path().join("state.json")).unwrap(),
            b"{not json"
        );
    }
}
