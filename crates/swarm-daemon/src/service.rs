//! The daemon's torrents: what the user asked for (kept in the state
//! folder) and what runs (torrents of one [`swarm_net::Client`]).
//!
//! Every policy decision lives here, none in the HTTP layers: the API and
//! the Transmission RPC only translate requests into these calls.
//!
//! The user's wishes are the records (`paused`, the folder, ...); one
//! function, [`Daemon::reconcile`], makes the running torrents match them:
//! it stops what is paused, starts what is not, keeps at most
//! `download_queue_size` torrents downloading (the rest are queued), and
//! notes completions. It runs after every request that changes something
//! and once a second.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use swarm_engine::Priority;
use swarm_net::{
    AddOptions, Client, OpenMode, TorrentHandle, TorrentSpec, TorrentState, TorrentStatus,
};
use swarm_wire::metainfo::Metainfo;
use tokio::sync::Mutex;

use crate::DaemonError;
use crate::state::{
    SEED_IDLE_DEFAULT_MIN, SEED_RATIO_DEFAULT, Settings, StateDir, StateFile, TorrentRecord,
};

/// How often the running torrents' byte counts (uploaded and downloaded
/// ever) are saved in their records, besides when a run ends: what a
/// SIGKILL can lose of them (Transmission saves every 5 minutes too).
pub const EVER_SAVE_INTERVAL: Duration = Duration::from_secs(300);

/// How often [`Daemon::reconcile`] runs on its own.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(1);

/// At most this many torrents in one daemon (each costs its metainfo, a
/// status and, running, a session task).
pub const TORRENTS_MAX: usize = 10_000;

/// What one more torrent held seeding and asleep may cost in heap bytes
/// (as requested from the allocator): its metainfo, record, status,
/// sleeping session, storage and its entries in the maps (ARCHITECTURE.md
/// has the measured breakdown). `tests/idle_heap.rs` counts it.
pub const IDLE_TORRENT_HEAP_MAX_BYTES: usize = 6 * 1024;

/// What the metainfo says beyond what the drivers need (for `-i` and the UI).
#[derive(Clone, Debug, Serialize)]
pub struct MetaExtras {
    pub comment: Option<String>,
    pub creator: Option<String>,
    pub created_unix: Option<i64>,
    pub private: bool,
    /// 0 until a magnet's metadata is known.
    pub piece_length: u32,
    pub magnet: String,
    /// Announce tiers.
    pub trackers: Vec<Vec<String>>,
}

struct Entry {
    record: TorrentRecord,
    /// None: a magnet link whose metadata is not known yet.
    spec: Option<Arc<TorrentSpec>>,
    extras: Arc<MetaExtras>,
    /// The torrent in the client (running, or stopping: its status says).
    handle: Option<TorrentHandle>,
    /// The status to show while there is no handle (none while there is
    /// one: the handle's is the one shown; boxed, so a running torrent
    /// does not hold an empty one: 280 bytes).
    last: Option<Box<TorrentStatus>>,
    /// Waiting for a download slot.
    queued: bool,
    /// Started only for a check (verify of a paused torrent): stop once
    /// checked.
    stop_after_check: bool,
    /// Check all the data at the next start (verify).
    verify_next: bool,
    /// Complete and running, no traffic since then (idle seeding limit).
    idle_since: Option<std::time::Instant>,
    /// Bytes (uploaded, downloaded) before the current (or last) run of
    /// this process: what its status counts starts from there.
    ever_base: (u64, u64),
    /// Time spent downloading and seeding over every run, counted up to
    /// `counted_at` (by [`Entry::count_time`], at each reconcile).
    active: (Duration, Duration),
    counted_at: Option<std::time::Instant>,
}

/// What an entry without a handle and without a last status shows.
static NO_STATUS: std::sync::LazyLock<TorrentStatus> =
    std::sync::LazyLock::new(TorrentStatus::default);

impl Entry {
    /// The status shown while there is no handle.
    fn last(&self) -> &TorrentStatus {
        self.last.as_deref().unwrap_or(&NO_STATUS)
    }

    fn last_mut(&mut self) -> &mut TorrentStatus {
        self.last.get_or_insert_with(Box::default)
    }

    fn status(&self) -> TorrentStatus {
        match &self.handle {
            Some(h) => h.status(),
            None => self.last().clone(),
        }
    }

    /// (state, complete) without copying the status.
    fn state(&self) -> (TorrentState, bool) {
        match &self.handle {
            Some(h) => {
                let s = h.status_ref();
                (s.state, s.complete)
            }
            None => (self.last().state, self.last().complete),
        }
    }

    /// Running and not ending.
    fn is_running(&self) -> bool {
        self.handle.is_some() && !self.state().0.is_final()
    }

    /// Bytes (uploaded, downloaded) over every run: the record's from
    /// before this run, and this run's.
    fn ever(&self) -> (u64, u64) {
        let (up, down) = match &self.handle {
            Some(h) => {
                let s = h.status_ref();
                (s.uploaded, s.downloaded)
            }
            None => (self.last().uploaded, self.last().downloaded),
        };
        (self.ever_base.0 + up, self.ever_base.1 + down)
    }

    /// Notes the counts so far in the record (to be saved): whether the
    /// byte counts changed (the times alone do not make a save worth it:
    /// an idle seed's time moves every second).
    fn note_ever(&mut self) -> bool {
        let (up, down) = self.ever();
        let changed = (up, down) != (self.record.uploaded_ever, self.record.downloaded_ever);
        (self.record.uploaded_ever, self.record.downloaded_ever) = (up, down);
        self.record.seconds_downloading = self.active.0.as_secs();
        self.record.seconds_seeding = self.active.1.as_secs();
        changed
    }

    /// Adds the time since it was last counted to its downloading or
    /// seeding time, as its state says (Transmission counts a torrent's
    /// seconds in the state it runs in; stopped, queued or checking count
    /// for neither).
    fn count_time(&mut self, now: std::time::Instant) {
        let since = self.counted_at.take();
        if !self.is_running() {
            return;
        }
        self.counted_at = Some(now);
        let Some(since) = since else { return };
        let spent = now.saturating_duration_since(since);
        match self.state().0 {
            TorrentState::Downloading | TorrentState::Metadata => self.active.0 += spent,
            TorrentState::Seeding => self.active.1 += spent,
            _ => {}
        }
        // Whenever the record is saved, it has them.
        self.record.seconds_downloading = self.active.0.as_secs();
        self.record.seconds_seeding = self.active.1.as_secs();
    }

    /// A run ended with `last`, its final status: its counts go to the
    /// record (to be saved).
    fn end_run(&mut self, last: TorrentStatus) {
        self.last = Some(Box::new(last));
        self.note_ever();
    }
}

/// One torrent as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TorrentView {
    pub id: u32,
    pub download_dir: PathBuf,
    pub paused: bool,
    pub queued: bool,
    pub added_unix: u64,
    pub done_unix: Option<u64>,
    pub files_unwanted: Vec<u32>,
    pub files_high: Vec<u32>,
    pub files_low: Vec<u32>,
    pub download_limit: Option<u64>,
    pub upload_limit: Option<u64>,
    /// Connections this torrent may have (its own cap, or the endpoint's
    /// per-torrent cap).
    pub peer_limit: usize,
    /// Payload bytes over every run (Transmission's `uploadedEver`,
    /// `downloadedEver`); the status's are this run's.
    pub uploaded_ever: u64,
    pub downloaded_ever: u64,
    /// Seconds spent downloading and seeding over every run
    /// (Transmission's `secondsDownloading`, `secondsSeeding`).
    pub seconds_downloading: u64,
    pub seconds_seeding: u64,
    /// Seeding limits as Transmission shows them: mode 0 the session's, 1
    /// the torrent's own, 2 none; the limit in force or that would be.
    pub seed_ratio_mode: u8,
    pub seed_ratio_limit: f64,
    pub seed_idle_mode: u8,
    pub seed_idle_limit_min: u32,
    /// The library's status (state, progress, rates, neighbours).
    pub status: TorrentStatus,
    /// None: a magnet link whose metadata is not known yet.
    #[serde(skip)]
    pub spec: Option<Arc<TorrentSpec>>,
    #[serde(skip)]
    pub extras: Arc<MetaExtras>,
}

/// A change of files' wishes (`torrent-set`'s `files-wanted`,
/// `files-unwanted`, `priority-high/normal/low`): file indexes without pad
/// files; `Some(empty)` means every file, as in Transmission's RPC.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileChanges {
    pub wanted: Option<Vec<u32>>,
    pub unwanted: Option<Vec<u32>>,
    pub high: Option<Vec<u32>>,
    pub normal: Option<Vec<u32>>,
    pub low: Option<Vec<u32>>,
}

impl FileChanges {
    pub fn is_empty(&self) -> bool {
        *self == FileChanges::default()
    }
}

/// Each file's priority for swarm-net, by index in the torrent (pads
/// included: the record numbers files without them).
pub fn file_priorities(spec: &TorrentSpec, record: &TorrentRecord) -> Vec<Priority> {
    let mut visible = 0u32;
    spec.files
        .iter()
        .map(|f| {
            if f.attr.pad {
                return Priority::Normal;
            }
            let i = visible;
            visible += 1;
            if record.files_unwanted.binary_search(&i).is_ok() {
                Priority::Skip
            } else if record.files_high.binary_search(&i).is_ok() {
                Priority::High
            } else if record.files_low.binary_search(&i).is_ok() {
                Priority::Low
            } else {
                Priority::Normal
            }
        })
        .collect()
}

/// Applies `ch` to a record of a torrent of `count` files (pads left
/// out); an index past the last file is an error naming it.
fn apply_file_changes(
    record: &mut TorrentRecord,
    count: u32,
    ch: &FileChanges,
) -> Result<(), DaemonError> {
    let pick = |list: &Option<Vec<u32>>| -> Result<Option<Vec<u32>>, DaemonError> {
        let Some(list) = list else { return Ok(None) };
        if let Some(bad) = list.iter().find(|&&i| i >= count) {
            return Err(DaemonError::BadRequest(format!(
                "no file {bad} in {} (it has {count}, numbered from 0)",
                record.name
            )));
        }
        Ok(Some(if list.is_empty() {
            (0..count).collect()
        } else {
            list.clone()
        }))
    };
    let set = |v: &mut Vec<u32>, add: &[u32], remove: &[u32]| {
        v.retain(|i| !remove.contains(i));
        v.extend(add.iter().filter(|i| !remove.contains(i)));
        v.sort_unstable();
        v.dedup();
    };
    if let Some(w) = pick(&ch.wanted)? {
        set(&mut record.files_unwanted, &[], &w);
    }
    if let Some(u) = pick(&ch.unwanted)? {
        set(&mut record.files_unwanted, &u, &[]);
    }
    if let Some(h) = pick(&ch.high)? {
        set(&mut record.files_low, &[], &h);
        set(&mut record.files_high, &h, &[]);
    }
    if let Some(n) = pick(&ch.normal)? {
        set(&mut record.files_low, &[], &n);
        set(&mut record.files_high, &[], &n);
    }
    if let Some(l) = pick(&ch.low)? {
        set(&mut record.files_high, &[], &l);
        set(&mut record.files_low, &l, &[]);
    }
    Ok(())
}

/// A change of seeding limits (`torrent-set`'s `seedRatioLimit`,
/// `seedRatioMode`, `seedIdleLimit`, `seedIdleMode`); `None`: unchanged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeedChanges {
    pub ratio_limit: Option<f64>,
    pub ratio_mode: Option<u8>,
    pub idle_limit_min: Option<u32>,
    pub idle_mode: Option<u8>,
}

/// The seed ratio and idle time (seconds) a complete torrent stops at.
fn seed_limits(r: &TorrentRecord, s: &Settings) -> (Option<f64>, Option<u64>) {
    let ratio = match r.seed_ratio_mode {
        1 => Some(r.seed_ratio_limit.unwrap_or(SEED_RATIO_DEFAULT)),
        2 => None,
        _ => s.seed_ratio_limit,
    };
    let idle_min = match r.seed_idle_mode {
        1 => Some(r.seed_idle_limit_min.unwrap_or(SEED_IDLE_DEFAULT_MIN)),
        2 => None,
        _ => s.idle_seeding_limit_min,
    };
    (ratio, idle_min.map(|m| u64::from(m) * 60))
}

/// Which torrents a request names.
#[derive(Clone, Debug, PartialEq)]
pub enum Ids {
    All,
    Some(Vec<IdRef>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum IdRef {
    Id(u32),
    /// A v1 info-hash, hex (either case).
    Hash(String),
}

/// What to add: a .torrent or a magnet link.
#[derive(Clone, Debug)]
pub enum AddSource {
    /// The .torrent's bytes.
    Metainfo(Vec<u8>),
    /// A `magnet:?xt=urn:btih:...` link.
    Magnet(String),
}

/// What to add.
#[derive(Clone, Debug)]
pub struct AddRequest {
    pub source: AddSource,
    /// None: the daemon's default folder.
    pub download_dir: Option<String>,
    pub paused: bool,
}

/// The result of an add.
#[derive(Clone, Debug, Serialize)]
pub struct Added {
    pub id: u32,
    pub name: String,
    pub info_hash: String,
    /// It was there already: nothing changed.
    pub duplicate: bool,
}

/// The daemon's configuration that is not a setting (fixed at start).
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The default download folder.
    pub download_dir: PathBuf,
    /// Folders (besides `download_dir`) the API may name as a download folder.
    pub allow_dirs: Vec<PathBuf>,
    /// A `.torrent` dropped here is added (then renamed `NAME.torrent.added`,
    /// or `NAME.torrent.invalid` if it cannot be).
    pub watch_dir: Option<PathBuf>,
}

/// How often the watch folder is looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// At most this many `.torrent` files are taken from the watch folder per
/// look (the rest at the next).
pub const WATCH_BATCH_MAX: usize = 100;
/// A file in the watch folder larger than this is not read.
pub const WATCH_FILE_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// The daemon's torrents. One per process.
pub struct Daemon {
    client: Client,
    state: StateDir,
    config: ServiceConfig,
    inner: Mutex<Inner>,
    started_unix: u64,
    /// Shutting down: nothing starts any more.
    closing: std::sync::atomic::AtomicBool,
}

struct Inner {
    next_id: u32,
    settings: Settings,
    /// Boxed: a B-tree's nodes hold 11 slots, about half of them empty,
    /// and an entry is ~0.7 KB.
    torrents: BTreeMap<u32, Box<Entry>>,
    /// When the running torrents' byte counts were last saved.
    ever_saved: std::time::Instant,
}

/// A record's downloading and seeding times.
fn active_of(r: &TorrentRecord) -> (Duration, Duration) {
    (
        Duration::from_secs(r.seconds_downloading),
        Duration::from_secs(r.seconds_seeding),
    )
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn parse_metainfo(bytes: &[u8]) -> Result<(TorrentSpec, MetaExtras), DaemonError> {
    let meta = Metainfo::from_bytes(bytes)
        .map_err(|e| DaemonError::BadRequest(format!("not a torrent file: {e}")))?;
    let spec = TorrentSpec::from_metainfo(&meta);
    spec.validate()
        .map_err(|e| DaemonError::BadRequest(e.to_string()))?;
    let mut magnet = format!("magnet:?xt=urn:btih:{}", spec.info_hash_hex());
    magnet.push_str("&dn=");
    magnet.push_str(&percent_encode(&spec.name));
    for tier in &spec.trackers {
        for t in tier {
            magnet.push_str("&tr=");
            magnet.push_str(&percent_encode(t));
        }
    }
    let extras = MetaExtras {
        comment: meta.comment().map(str::to_string),
        creator: meta.created_by().map(str::to_string),
        created_unix: meta.creation_date(),
        private: meta.is_private(),
        piece_length: spec.lengths.piece_length(),
        magnet,
        trackers: spec.trackers.clone(),
    };
    Ok((spec, extras))
}

/// A magnet link, checked; its extras (what the link says).
fn parse_magnet(link: &str) -> Result<(swarm_wire::Magnet, MetaExtras), DaemonError> {
    let m = swarm_wire::Magnet::parse(link)
        .map_err(|e| DaemonError::BadRequest(format!("not a magnet link: {e}")))?;
    let extras = MetaExtras {
        comment: None,
        creator: None,
        created_unix: None,
        private: false,
        piece_length: 0,
        magnet: link.to_string(),
        trackers: m.trackers.iter().map(|t| vec![t.clone()]).collect(),
    };
    Ok((m, extras))
}

/// The status of a magnet link that never ran in this process.
fn magnet_status(info_hash: &str, name: &str) -> TorrentStatus {
    TorrentStatus {
        info_hash: info_hash.to_string(),
        name: name.to_string(),
        state: TorrentState::Stopped,
        ..TorrentStatus::default()
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The status of a torrent that never ran in this process: its pieces from
/// the resume record, if there is one.
fn idle_status(spec: &TorrentSpec, state: &StateDir, record: &TorrentRecord) -> TorrentStatus {
    let pads = spec.pads();
    let total = pads.real_total();
    // The wanted pieces (skipped files' own pieces left out).
    let wanted = spec.wanted_pieces(&file_priorities(spec, record));
    let wanted_length = wanted
        .as_ref()
        .map_or(total, |w| pads.real_bytes_present(w));
    let mut s = TorrentStatus {
        info_hash: spec.info_hash_hex(),
        name: spec.name.clone(),
        state: TorrentState::Stopped,
        pieces_total: spec.lengths.num_pieces(),
        total_length: total,
        wanted_length,
        left: wanted_length,
        ..TorrentStatus::default()
    };
    let path = swarm_net::resume::record_path(&state.resume_dir(), &spec.info_hash);
    if let Ok(Some(resume)) = swarm_net::resume::load(&path, &spec.info_hash)
        && let Ok(have) = resume.have()
    {
        s.pieces_have = have.count_ones();
        s.have_length = pads.real_bytes_present(&have);
        // What each file holds (`bytesCompleted`), while it does not run.
        s.piece_map = Some(Arc::new(swarm_net::status::PieceMap {
            have: hex::encode(have.as_bytes()),
            downloading: Vec::new(),
            availability: Vec::new(),
        }));
        s.left = wanted_length
            - pads
                .real_bytes_wanted(&have, wanted.as_ref())
                .min(wanted_length);
        s.complete = s.left == 0;
    }
    s
}

impl Daemon {
    /// Loads the state folder's torrents and starts those not paused.
    pub async fn start(
        client: Client,
        state: StateDir,
        config: ServiceConfig,
    ) -> Result<Arc<Daemon>, DaemonError> {
        let file = state.load()?;
        let records = state.records()?;
        let next_id = records.last().map_or(1, |r| r.id + 1);
        let mut torrents = BTreeMap::new();
        for record in records {
            let path = state.torrent_path(&record.info_hash);
            let entry = if !path.exists()
                && let Some(link) = &record.magnet
            {
                // A magnet link whose metadata had not come yet.
                parse_magnet(link).map(|(_, extras)| Entry {
                    last: Some(Box::new(magnet_status(&record.info_hash, &record.name))),
                    record: record.clone(),
                    spec: None,
                    extras: Arc::new(extras),
                    handle: None,
                    queued: false,
                    stop_after_check: false,
                    verify_next: false,
                    idle_since: None,
                    ever_base: (record.uploaded_ever, record.downloaded_ever),
                    active: active_of(&record),
                    counted_at: None,
                })
            } else {
                std::fs::read(&path)
                    .map_err(|e| DaemonError::State(format!("{}: {e}", path.display())))
                    .and_then(|bytes| parse_metainfo(&bytes))
                    .map(|(spec, extras)| Entry {
                        last: Some(Box::new(idle_status(&spec, &state, &record))),
                        record: record.clone(),
                        spec: Some(Arc::new(spec)),
                        extras: Arc::new(extras),
                        handle: None,
                        queued: false,
                        stop_after_check: false,
                        verify_next: false,
                        idle_since: None,
                        ever_base: (record.uploaded_ever, record.downloaded_ever),
                        active: active_of(&record),
                        counted_at: None,
                    })
            };
            match entry {
                Ok(e) => {
                    torrents.insert(record.id, Box::new(e));
                }
                // One unreadable torrent must not keep the others down: it
                // is left out (and its record kept on disk until the next
                // save drops it).
                Err(e) => tracing::error!(id = record.id, name = %record.name, "cannot load: {e}"),
            }
        }
        tracing::info!(torrents = torrents.len(), state = %state.root().display(), "state loaded");
        apply_settings(&client, &file.settings);
        let daemon = Arc::new(Daemon {
            client,
            state,
            config,
            inner: Mutex::new(Inner {
                next_id,
                settings: file.settings,
                torrents,
                ever_saved: std::time::Instant::now(),
            }),
            started_unix: now_unix(),
            closing: Default::default(),
        });
        daemon.reconcile().await;
        let weak = Arc::downgrade(&daemon);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RECONCILE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(d) = weak.upgrade() else { return };
                d.reconcile().await;
            }
        });
        if let Some(dir) = daemon.config.watch_dir.clone() {
            let weak = Arc::downgrade(&daemon);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(WATCH_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(d) = weak.upgrade() else { return };
                    d.scan_watch_dir(&dir).await;
                }
            });
        }
        Ok(daemon)
    }

    /// Adds the `.torrent` files in the watch folder (see
    /// [`ServiceConfig::watch_dir`]).
    async fn scan_watch_dir(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "torrent") && p.is_file())
            .take(WATCH_BATCH_MAX)
            .collect();
        for path in files {
            let rename = |suffix: &str| {
                let mut to = path.clone().into_os_string();
                to.push(suffix);
                if let Err(e) = std::fs::rename(&path, &to) {
                    tracing::warn!("watch folder: cannot rename {}: {e}", path.display());
                }
            };
            let bytes = match std::fs::metadata(&path) {
                Ok(m) if m.len() > WATCH_FILE_MAX_BYTES => {
                    Err(format!("larger than {WATCH_FILE_MAX_BYTES} bytes"))
                }
                Ok(_) => std::fs::read(&path).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let added = match bytes {
                Ok(metainfo) => self
                    .add(AddRequest {
                        source: AddSource::Metainfo(metainfo),
                        download_dir: None,
                        paused: false,
                    })
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match added {
                Ok(a) => {
                    tracing::info!(file = %path.display(), id = a.id, duplicate = a.duplicate, "watch folder: added");
                    rename(".added");
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), "watch folder: not added: {e}");
                    rename(".invalid");
                }
            }
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn started_unix(&self) -> u64 {
        self.started_unix
    }

    pub fn default_download_dir(&self) -> &Path {
        &self.config.download_dir
    }

    pub async fn settings(&self) -> Settings {
        self.inner.lock().await.settings.clone()
    }

    /// Changes settings; saved at once, rate limits and the connection cap
    /// applied to the running client at once.
    pub async fn set_settings(&self, f: impl FnOnce(&mut Settings)) -> Result<(), DaemonError> {
        {
            let mut inner = self.inner.lock().await;
            f(&mut inner.settings);
            self.save_settings(&inner)?;
            apply_settings(&self.client, &inner.settings);
        }
        self.reconcile().await;
        Ok(())
    }

    fn save_settings(&self, inner: &Inner) -> Result<(), DaemonError> {
        self.state.save(&StateFile {
            settings: inner.settings.clone(),
            ..StateFile::default()
        })
    }

    /// Saves the records of `ids`.
    fn save_records(&self, inner: &Inner, ids: &[u32]) -> Result<(), DaemonError> {
        for id in ids {
            if let Some(e) = inner.torrents.get(id) {
                self.state.save_record(&e.record)?;
            }
        }
        Ok(())
    }

    /// A download folder the API named, if it lies under an allowed root
    /// (lexically: absolute, no `..`); created if missing.
    pub fn checked_dir(&self, dir: &str) -> Result<PathBuf, DaemonError> {
        let path = PathBuf::from(dir);
        let refuse = |why: &str| {
            DaemonError::BadRequest(format!(
                "download folder {dir} refused: {why} (allowed: {})",
                self.allowed_roots()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        };
        if !path.is_absolute() {
            return Err(refuse("not an absolute path"));
        }
        if path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(refuse("it contains . or .."));
        }
        if !self
            .allowed_roots()
            .iter()
            .any(|root| path.starts_with(root))
        {
            return Err(refuse("not under an allowed folder"));
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| DaemonError::BadRequest(format!("cannot create {dir}: {e}")))?;
        Ok(path)
    }

    fn allowed_roots(&self) -> Vec<PathBuf> {
        std::iter::once(&self.config.download_dir)
            .chain(&self.config.allow_dirs)
            .cloned()
            .collect()
    }

    /// Adds a torrent (started unless `paused`, or queued). A torrent that
    /// is there already is reported as a duplicate and nothing changes.
    pub async fn add(&self, req: AddRequest) -> Result<Added, DaemonError> {
        let (spec, extras, metainfo, magnet) = match &req.source {
            AddSource::Metainfo(bytes) => {
                let (spec, extras) = parse_metainfo(bytes)?;
                (Some(spec), extras, Some(bytes), None)
            }
            AddSource::Magnet(link) => {
                let (m, extras) = parse_magnet(link)?;
                (None, extras, None, Some(m))
            }
        };
        let (hex, name) = match (&spec, &magnet) {
            (Some(s), _) => (s.info_hash_hex(), s.name.clone()),
            (None, Some(m)) => (
                m.info_hash.to_hex(),
                m.name.clone().unwrap_or_else(|| m.info_hash.to_hex()),
            ),
            (None, None) => unreachable!("a source is a torrent or a magnet"),
        };
        let download_dir = match &req.download_dir {
            Some(d) => self.checked_dir(d)?,
            None => self.config.download_dir.clone(),
        };
        let mut inner = self.inner.lock().await;
        if let Some(e) = inner.torrents.values().find(|e| e.record.info_hash == hex) {
            return Ok(Added {
                id: e.record.id,
                name: e.record.name.clone(),
                info_hash: hex,
                duplicate: true,
            });
        }
        if inner.torrents.len() >= TORRENTS_MAX {
            return Err(DaemonError::BadRequest(format!(
                "the daemon holds {TORRENTS_MAX} torrents, its limit"
            )));
        }
        if let Some(bytes) = metainfo {
            self.state.save_torrent(&hex, bytes)?;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let record = TorrentRecord {
            id,
            info_hash: hex.clone(),
            name: name.clone(),
            download_dir,
            paused: req.paused,
            added_unix: now_unix(),
            done_unix: None,
            files_unwanted: Vec::new(),
            files_high: Vec::new(),
            files_low: Vec::new(),
            download_limit: None,
            upload_limit: None,
            seed_ratio_mode: 0,
            seed_ratio_limit: None,
            seed_idle_mode: 0,
            seed_idle_limit_min: None,
            magnet: magnet.as_ref().map(|_| extras.magnet.clone()),
            peer_limit: None,
            uploaded_ever: 0,
            downloaded_ever: 0,
            seconds_downloading: 0,
            seconds_seeding: 0,
        };
        let last = match &spec {
            Some(spec) => idle_status(spec, &self.state, &record),
            None => magnet_status(&hex, &name),
        };
        inner.torrents.insert(
            id,
            Box::new(Entry {
                record,
                spec: spec.map(Arc::new),
                extras: Arc::new(extras),
                handle: None,
                last: Some(Box::new(last)),
                queued: false,
                stop_after_check: false,
                verify_next: false,
                idle_since: None,
                ever_base: (0, 0),
                active: (Duration::ZERO, Duration::ZERO),
                counted_at: None,
            }),
        );
        if let Err(e) = self.save_records(&inner, &[id]) {
            inner.torrents.remove(&id);
            self.state.remove_torrent(&hex);
            return Err(e);
        }
        tracing::info!(id, %name, info_hash = %hex, magnet = magnet.is_some(), "added");
        drop(inner);
        self.reconcile().await;
        Ok(Added {
            id,
            name,
            info_hash: hex,
            duplicate: false,
        })
    }

    fn select(inner: &Inner, ids: &Ids) -> Vec<u32> {
        match ids {
            Ids::All => inner.torrents.keys().copied().collect(),
            Ids::Some(refs) => inner
                .torrents
                .values()
                .filter(|e| {
                    refs.iter().any(|r| match r {
                        IdRef::Id(id) => *id == e.record.id,
                        IdRef::Hash(h) => h.eq_ignore_ascii_case(&e.record.info_hash),
                    })
                })
                .map(|e| e.record.id)
                .collect(),
        }
    }

    /// Applies `edit` to each torrent `ids` selects, under the lock, saves
    /// their records and lets [`Daemon::reconcile`] act: how many were
    /// selected. An error from `edit` ends it before anything is saved.
    async fn edit_records(
        &self,
        ids: &Ids,
        mut edit: impl FnMut(&mut Entry) -> Result<(), DaemonError>,
    ) -> Result<usize, DaemonError> {
        let n = {
            let mut inner = self.inner.lock().await;
            let chosen = Self::select(&inner, ids);
            for id in &chosen {
                if let Some(e) = inner.torrents.get_mut(id) {
                    edit(e)?;
                }
            }
            self.save_records(&inner, &chosen)?;
            chosen.len()
        };
        self.reconcile().await;
        Ok(n)
    }

    /// Marks torrents to run (or not) and lets [`Daemon::reconcile`] act.
    pub async fn set_paused(&self, ids: &Ids, paused: bool) -> Result<usize, DaemonError> {
        self.edit_records(ids, |e| {
            e.record.paused = paused;
            e.stop_after_check = false;
            e.verify_next = false;
            Ok(())
        })
        .await
    }

    /// Checks the data again: the torrent stops, its resume record is
    /// dropped and it starts again, so every piece on disk is read and
    /// hashed. A paused torrent is checked and stays stopped.
    pub async fn verify(&self, ids: &Ids) -> Result<usize, DaemonError> {
        let n = {
            let mut inner = self.inner.lock().await;
            let chosen = Self::select(&inner, ids);
            for id in &chosen {
                if let Some(e) = inner.torrents.get_mut(id) {
                    if let Some(h) = &e.handle {
                        h.stop();
                    }
                    e.verify_next = true;
                    e.stop_after_check = e.record.paused;
                }
            }
            chosen.len()
        };
        self.reconcile().await;
        Ok(n)
    }

    /// Sets torrents' own rate limits (bytes/s; `Some(None)`: no limit,
    /// `None`: unchanged), applied to a running torrent at once (its
    /// connections take from its buckets: no restart).
    pub async fn set_limits(
        &self,
        ids: &Ids,
        download: Option<Option<u64>>,
        upload: Option<Option<u64>>,
    ) -> Result<usize, DaemonError> {
        if download.is_none() && upload.is_none() {
            return Ok(0);
        }
        self.edit_records(ids, |e| {
            let before = (e.record.download_limit, e.record.upload_limit);
            if let Some(d) = download {
                e.record.download_limit = d;
            }
            if let Some(u) = upload {
                e.record.upload_limit = u;
            }
            if before != (e.record.download_limit, e.record.upload_limit)
                && let Some(h) = &e.handle
            {
                h.set_rate_limits(e.record.upload_limit, e.record.download_limit);
            }
            Ok(())
        })
        .await
    }

    /// Sets torrents' own cap on connections (Transmission's `peer-limit`),
    /// in force at once for running ones (the connections idle longest
    /// close) and kept in the record.
    pub async fn set_peer_limit(&self, ids: &Ids, n: u32) -> Result<usize, DaemonError> {
        let n = n.max(1);
        self.edit_records(ids, |e| {
            e.record.peer_limit = Some(n);
            if let Some(ih) = swarm_wire::InfoHash::from_hex(&e.record.info_hash) {
                self.client
                    .set_torrent_connections_max(&ih, Some(n as usize));
            }
            Ok(())
        })
        .await
    }

    /// Sets torrents' seeding limits (kept in the record; acted on by
    /// [`Daemon::reconcile`]).
    pub async fn set_seeding(&self, ids: &Ids, ch: &SeedChanges) -> Result<usize, DaemonError> {
        if *ch == SeedChanges::default() {
            return Ok(0);
        }
        self.edit_records(ids, |e| {
            let r = &mut e.record;
            if let Some(l) = ch.ratio_limit {
                r.seed_ratio_limit = Some(l);
            }
            if let Some(m) = ch.ratio_mode {
                r.seed_ratio_mode = m;
            }
            if let Some(l) = ch.idle_limit_min {
                r.seed_idle_limit_min = Some(l);
            }
            if let Some(m) = ch.idle_mode {
                r.seed_idle_mode = m;
            }
            Ok(())
        })
        .await
    }

    /// Chooses files: skips them, wants them again, sets their priority
    /// (kept in the record). A running torrent applies a new choice without
    /// a restart (its peers and counters stay; a file wanted again is
    /// created and takes its bytes back from the parts file: see
    /// `TorrentHandle::set_file_priorities`). A magnet link without its
    /// metadata yet has no files: an error.
    pub async fn set_files(&self, ids: &Ids, ch: &FileChanges) -> Result<usize, DaemonError> {
        if ch.is_empty() {
            return Ok(0);
        }
        self.edit_records(ids, |e| {
            let Some(spec) = &e.spec else {
                return Err(DaemonError::BadRequest(format!(
                    "{} has no file list yet (its metadata is being fetched)",
                    e.record.name
                )));
            };
            let count = spec.files.iter().filter(|f| !f.attr.pad).count() as u32;
            let before = e.record.clone();
            apply_file_changes(&mut e.record, count, ch)?;
            if e.record != before {
                tracing::info!(id = e.record.id, skipped = ?e.record.files_unwanted, high = ?e.record.files_high, low = ?e.record.files_low, "files chosen");
                match &e.handle {
                    Some(h) => h.set_file_priorities(file_priorities(spec, &e.record)),
                    None => e.last = Some(Box::new(idle_status(spec, &self.state, &e.record))),
                }
            }
            Ok(())
        })
        .await
    }

    /// Points torrents at another folder (`location`, under an allowed
    /// root); with `move_data` their files are moved there first (renamed,
    /// or copied and deleted across file systems; times kept, so the
    /// resume record still vouches for them). Running torrents stop for the
    /// move and start again. The daemon's other requests wait meanwhile.
    pub async fn set_location(
        &self,
        ids: &Ids,
        location: &str,
        move_data: bool,
    ) -> Result<usize, DaemonError> {
        let to = self.checked_dir(location)?;
        let mut inner = self.inner.lock().await;
        let chosen = Self::select(&inner, ids);
        for id in &chosen {
            let Some(e) = inner.torrents.get_mut(id) else {
                continue;
            };
            if e.record.download_dir == to {
                continue;
            }
            if let Some(h) = e.handle.take() {
                h.stop();
                // Its final status (a failed one too: `join` says why).
                let last = h.watch();
                let _ = h.join().await;
                e.end_run(last.borrow().clone());
            }
            if move_data && let Some(spec) = &e.spec {
                move_data_files(&e.record.download_dir, &to, spec).map_err(|err| {
                    DaemonError::BadRequest(format!(
                        "moving {} to {}: {err}",
                        e.record.name,
                        to.display()
                    ))
                })?;
            }
            tracing::info!(id, from = %e.record.download_dir.display(), to = %to.display(), move_data, "new location");
            e.record.download_dir = to.clone();
        }
        self.save_records(&inner, &chosen)?;
        drop(inner);
        self.reconcile().await;
        Ok(chosen.len())
    }

    /// Removes torrents; with `delete_data` their files too.
    pub async fn remove(&self, ids: &Ids, delete_data: bool) -> Result<usize, DaemonError> {
        let removed: Vec<Box<Entry>> = {
            let mut inner = self.inner.lock().await;
            let chosen = Self::select(&inner, ids);
            let removed: Vec<Box<Entry>> = chosen
                .iter()
                .filter_map(|id| inner.torrents.remove(id))
                .collect();
            // Forgotten on disk before the answer (its record first).
            for e in &removed {
                self.state.remove_torrent(&e.record.info_hash);
            }
            removed
        };
        let n = removed.len();
        for e in removed {
            if let Some(h) = e.handle {
                h.stop();
                let _ = h.join().await;
            }
            if let Some(ih) = swarm_wire::InfoHash::from_hex(&e.record.info_hash) {
                self.client.remove(&ih).await;
            }
            if delete_data && let Some(spec) = &e.spec {
                delete_data_files(&e.record.download_dir, spec);
            }
            tracing::info!(id = e.record.id, name = %e.record.name, delete_data, "removed");
        }
        self.reconcile().await;
        Ok(n)
    }

    /// Every torrent, by id.
    pub async fn list(&self) -> Vec<TorrentView> {
        let inner = self.inner.lock().await;
        let peers = self.client.torrent_connections_max();
        inner
            .torrents
            .values()
            .map(|e| view(e, &inner.settings, peers))
            .collect()
    }

    /// The torrents `ids` names.
    pub async fn get(&self, ids: &Ids) -> Vec<TorrentView> {
        let inner = self.inner.lock().await;
        Self::select(&inner, ids)
            .iter()
            .filter_map(|id| {
                let e = inner.torrents.get(id)?;
                Some(view(
                    e,
                    &inner.settings,
                    self.client.torrent_connections_max(),
                ))
            })
            .collect()
    }

    /// Starts `e` in the client (its data checked; all of it with `verify`).
    fn launch(&self, e: &mut Entry, verify: bool) {
        let options = AddOptions {
            upload_limit: e.record.upload_limit,
            download_limit: e.record.download_limit,
            resume_dir: Some(self.state.resume_dir()),
            file_priorities: e
                .spec
                .as_ref()
                .map(|s| file_priorities(s, &e.record))
                .unwrap_or_default(),
            ..AddOptions::new(&e.record.download_dir, OpenMode::Create)
        };
        if verify {
            self.state.remove_resume(&e.record.info_hash);
        }
        let added = match (&e.spec, &e.record.magnet) {
            (Some(spec), _) => self.client.add_torrent(spec.clone(), options),
            (None, Some(link)) => match swarm_wire::Magnet::parse(link) {
                Ok(m) => self.client.add_magnet(m, options),
                Err(err) => Err(swarm_net::NetError::BadTorrent(err.to_string())),
            },
            (None, None) => Err(swarm_net::NetError::BadTorrent("no metainfo".into())),
        };
        match added {
            Ok(h) => {
                if let Some(n) = e.record.peer_limit {
                    self.client
                        .set_torrent_connections_max(&h.info_hash(), Some(n as usize));
                }
                e.ever_base = (e.record.uploaded_ever, e.record.downloaded_ever);
                e.handle = Some(h);
                e.queued = false;
                // The handle's status is shown from now on (its strings
                // and piece map would be a second copy).
                e.last = None;
            }
            Err(err) => {
                tracing::error!(id = e.record.id, "cannot start: {err}");
                e.last_mut().state = TorrentState::Failed;
                e.last_mut().error = Some(err.to_string());
            }
        }
    }

    /// Makes the running torrents match the records (see the module docs).
    pub async fn reconcile(&self) {
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut inner = self.inner.lock().await;
        let inner = &mut *inner;
        let mut changed = Vec::new();
        let now = std::time::Instant::now();
        // Stops and completions first: they free download slots.
        for e in inner.torrents.values_mut() {
            e.count_time(now);
            let (state, complete) = e.state();
            if complete && e.record.done_unix.is_none() && e.handle.is_some() {
                e.record.done_unix = Some(now_unix());
                changed.push(e.record.id);
            }
            if complete
                && e.is_running()
                && !e.record.paused
                && seed_limit_reached(e, &inner.settings)
            {
                // Stopped as Transmission does: paused, finished.
                e.record.paused = true;
                changed.push(e.record.id);
            }
            let check_done = e.stop_after_check
                && e.handle.is_some()
                && !e.verify_next
                && state != TorrentState::Checking;
            let paused = e.record.paused && !e.stop_after_check;
            if (paused || check_done) && e.is_running() {
                if let Some(h) = &e.handle {
                    h.stop();
                }
                e.stop_after_check = false;
            }
            if e.handle.is_some()
                && e.state().0.is_final()
                && let Some(h) = e.handle.take()
            {
                e.end_run(h.status());
                changed.push(e.record.id);
                // The task ends right after its final status (it leaves the
                // endpoint first): wait for it, so that a restart of the
                // same torrent cannot race its removal.
                let _ = h.join().await;
            }
            if e.record.paused {
                e.queued = false;
            }
        }
        // A magnet link's metadata, once fetched, is saved beside its resume
        // record: keep it as the torrent's metainfo.
        for e in inner.torrents.values_mut().filter(|e| e.spec.is_none()) {
            let path = self
                .state
                .resume_dir()
                .join(format!("{}.torrent", e.record.info_hash));
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            match parse_metainfo(&bytes) {
                Ok((spec, mut extras)) if spec.info_hash_hex() == e.record.info_hash => {
                    if let Err(err) = self.state.save_torrent(&e.record.info_hash, &bytes) {
                        tracing::error!("keeping a magnet's metadata: {err}");
                        continue;
                    }
                    if let Some(link) = &e.record.magnet {
                        extras.magnet = link.clone();
                    }
                    e.record.name = spec.name.clone();
                    e.spec = Some(Arc::new(spec));
                    e.extras = Arc::new(extras);
                    changed.push(e.record.id);
                    tracing::info!(id = e.record.id, name = %e.record.name, "metadata of the magnet link kept");
                }
                _ => tracing::warn!(path = %path.display(), "not this magnet's metadata"),
            }
        }
        if inner.ever_saved.elapsed() >= EVER_SAVE_INTERVAL {
            inner.ever_saved = std::time::Instant::now();
            for e in inner.torrents.values_mut().filter(|e| e.handle.is_some()) {
                if e.note_ever() {
                    changed.push(e.record.id);
                }
            }
        }
        let limit = inner.settings.download_queue_size.map(|k| k as usize);
        let mut downloading = inner
            .torrents
            .values()
            .filter(|e| e.is_running() && !e.state().1)
            .count();
        for e in inner.torrents.values_mut() {
            if e.handle.is_some() || (e.record.paused && !e.verify_next) {
                continue;
            }
            let is_download = !e.last().complete;
            if is_download && !e.verify_next && limit.is_some_and(|k| downloading >= k) {
                e.queued = true;
                continue;
            }
            let verify = std::mem::take(&mut e.verify_next);
            self.launch(e, verify);
            if is_download {
                downloading += 1;
            }
        }
        if let Err(err) = self.save_records(inner, &changed) {
            tracing::error!("saving the state: {err}");
        }
    }

    /// Stops every torrent (each saves its resume record and announces
    /// `stopped`) and waits for them; nothing starts again after this.
    pub async fn shutdown(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let handles: Vec<(u32, TorrentHandle)> = {
            let mut inner = self.inner.lock().await;
            inner
                .torrents
                .values_mut()
                .filter_map(|e| Some((e.record.id, e.handle.take()?)))
                .collect()
        };
        for (_, h) in &handles {
            h.stop();
        }
        let mut ended = Vec::new();
        for (id, h) in handles {
            if let Ok(last) = h.join().await {
                ended.push((id, last));
            }
        }
        // Their byte counts, for the seed ratio of the next run.
        let mut inner = self.inner.lock().await;
        let mut changed = Vec::new();
        for (id, last) in ended {
            if let Some(e) = inner.torrents.get_mut(&id) {
                e.end_run(last);
                changed.push(id);
            }
        }
        if let Err(err) = self.save_records(&inner, &changed) {
            tracing::error!("saving the state: {err}");
        }
    }
}

/// The settings that act on the running client: global rate limits and
/// the connection cap.
fn apply_settings(client: &Client, s: &Settings) {
    client.set_rate_limits(s.upload_limit, s.download_limit);
    if let Some(n) = s.peer_limit_global {
        client.set_connections_max(n as usize);
    }
}

/// Whether a complete, running torrent reached its seed ratio or idle
/// time (the ratio: uploaded over downloaded over every run, or over what
/// it has if it downloaded nothing, as Transmission's). Notes when it went idle.
fn seed_limit_reached(e: &mut Entry, settings: &Settings) -> bool {
    let (ratio_max, idle_max) = seed_limits(&e.record, settings);
    let Some(h) = &e.handle else {
        return false;
    };
    let (up, down) = e.ever();
    let (ratio, active) = {
        let s = h.status_ref();
        let base = if down > 0 { down } else { s.have_length };
        let ratio = if base == 0 {
            0.0
        } else {
            up as f64 / base as f64
        };
        (ratio, s.upload_rate >= 1.0 || s.download_rate >= 1.0)
    };
    if active {
        e.idle_since = None;
    }
    let idle = e
        .idle_since
        .get_or_insert_with(std::time::Instant::now)
        .elapsed();
    let by_ratio = ratio_max.is_some_and(|m| ratio >= m);
    let by_idle = idle_max.is_some_and(|m| idle.as_secs() >= m);
    if by_ratio || by_idle {
        tracing::info!(
            id = e.record.id,
            ratio,
            idle_s = idle.as_secs(),
            by_ratio,
            by_idle,
            "seeding limit reached: stopped"
        );
    }
    by_ratio || by_idle
}

fn view(e: &Entry, settings: &Settings, peer_limit: usize) -> TorrentView {
    let (ratio, idle) = seed_limits(&e.record, settings);
    let ratio = match e.record.seed_ratio_mode {
        1 | 2 => e.record.seed_ratio_limit,
        _ => ratio.or(settings.seed_ratio_value),
    };
    let idle_min = match e.record.seed_idle_mode {
        1 | 2 => e.record.seed_idle_limit_min,
        _ => idle
            .map(|s| (s / 60) as u32)
            .or(settings.idle_seeding_value_min),
    };
    TorrentView {
        id: e.record.id,
        download_dir: e.record.download_dir.clone(),
        paused: e.record.paused,
        queued: e.queued,
        added_unix: e.record.added_unix,
        done_unix: e.record.done_unix,
        files_unwanted: e.record.files_unwanted.clone(),
        files_high: e.record.files_high.clone(),
        files_low: e.record.files_low.clone(),
        download_limit: e.record.download_limit,
        upload_limit: e.record.upload_limit,
        peer_limit: e.record.peer_limit.map_or(peer_limit, |n| n as usize),
        uploaded_ever: e.ever().0,
        downloaded_ever: e.ever().1,
        seconds_downloading: e.active.0.as_secs(),
        seconds_seeding: e.active.1.as_secs(),
        seed_ratio_mode: e.record.seed_ratio_mode,
        seed_ratio_limit: ratio.unwrap_or(SEED_RATIO_DEFAULT),
        seed_idle_mode: e.record.seed_idle_mode,
        seed_idle_limit_min: idle_min.unwrap_or(SEED_IDLE_DEFAULT_MIN),
        status: e.status(),
        spec: e.spec.clone(),
        extras: e.extras.clone(),
    }
}

/// Moves the torrent's files from `from` to `to` (same relative paths),
/// then removes the folders they leave empty under `from`.
fn move_data_files(from: &Path, to: &Path, spec: &TorrentSpec) -> std::io::Result<()> {
    for f in spec.files.iter().filter(|f| !f.attr.pad) {
        let (src, dst) = (from.join(&f.path), to.join(&f.path));
        if !src.exists() {
            continue;
        }
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::rename(&src, &dst).is_err() {
            // Another file system: copy (times kept), then delete.
            std::fs::copy(&src, &dst)?;
            let meta = std::fs::metadata(&src)?;
            std::fs::File::options()
                .write(true)
                .open(&dst)?
                .set_modified(meta.modified()?)?;
            std::fs::remove_file(&src)?;
        }
    }
    remove_empty_folders(from, spec);
    Ok(())
}

/// Deletes the torrent's files under `dir` and then the folders they leave
/// empty (the torrent's own folder included), nothing else.
fn delete_data_files(dir: &Path, spec: &TorrentSpec) {
    for f in &spec.files {
        let path = dir.join(&f.path);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot delete {}: {e}", path.display()),
        }
    }
    remove_empty_folders(dir, spec);
}

/// Removes the torrent's folders under `dir` that are empty, deepest
/// first; a folder that still holds something stays.
fn remove_empty_folders(dir: &Path, spec: &TorrentSpec) {
    let mut folders = std::collections::BTreeSet::new();
    for f in &spec.files {
        let mut p = f.path.parent();
        while let Some(parent) = p {
            if parent.as_os_str().is_empty() {
                break;
            }
            folders.insert(parent.to_path_buf());
            p = parent.parent();
        }
    }
    for folder in folders.iter().rev() {
        let _ = std::fs::remove_dir(dir.join(folder));
    }
}
