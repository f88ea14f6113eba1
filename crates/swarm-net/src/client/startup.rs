//! A torrent's start-up: open its files, trust the pieces the resume record
//! vouches for, check the rest that has data on disk (on the blocking pool,
//! progress in the status every second).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use swarm_engine::Bitfield;
use tokio::sync::watch;
use tokio::time::Instant;

use super::AddOptions;
use crate::resume::ResumeStore;
use crate::status::TorrentStatus;
use crate::storage::{Skipping, Storage};
use crate::{NetError, OpenMode, TorrentSpec};

/// How often the check's progress is published.
const CHECK_PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Storage, the resume record's store (for the session to save into) and
/// the pieces on disk.
pub(super) type Started = (Arc<Storage>, Option<Arc<ResumeStore>>, Bitfield);

/// Opens the files and finds the pieces on disk: those the resume record
/// lets us trust (`DIR/.swarm/<info-hash>.resume`), plus those of the rest
/// that check out (only pieces with data on disk are read). Seeding
/// (`OpenMode::Existing`) data of which no piece checks out is an error.
pub(super) async fn open_and_check(
    spec: &TorrentSpec,
    options: &AddOptions,
    status: &watch::Sender<TorrentStatus>,
) -> Result<Started, NetError> {
    let skipping = Skipping {
        skipped: options
            .file_priorities
            .iter()
            .map(|&p| p == swarm_engine::Priority::Skip)
            .collect(),
        parts: options
            .resume_dir
            .clone()
            .unwrap_or_else(|| options.dir.join(crate::resume::RESUME_DIR))
            .join(format!("{}.parts", spec.info_hash_hex())),
    };
    let storage = {
        let (dir, spec, mode) = (options.dir.clone(), spec.clone(), options.mode);
        tokio::task::spawn_blocking(move || {
            Storage::open_skipping(&dir, &spec, mode, Some(&skipping))
        })
        .await
        .map_err(|e| NetError::Fatal(format!("opening the files: {e}")))??
    };
    let storage = Arc::new(storage);
    let n = spec.lengths.num_pieces();
    let resume = if options.resume {
        let store = match &options.resume_dir {
            Some(folder) => Some(ResumeStore::in_folder(folder, spec)),
            None => ResumeStore::new(&options.dir, spec),
        }
        .map(Arc::new);
        if store.is_none() {
            tracing::warn!(
                "a torrent named `.swarm` gets no resume record: every start checks its data"
            );
        }
        store
    } else {
        None
    };
    let trusted = match &resume {
        Some(store) => {
            let (store, storage) = (store.clone(), storage.clone());
            tokio::task::spawn_blocking(move || store.trusted(&storage))
                .await
                .map_err(|e| NetError::Fatal(format!("reading the resume record: {e}")))?
        }
        None => Bitfield::empty(n),
    };
    let must_check = options.mode == OpenMode::Existing || storage.has_existing_data();
    let mut have = if must_check && !trusted.is_all_set() {
        check(
            spec,
            &storage,
            &trusted,
            options.mode == OpenMode::Create,
            status,
        )
        .await?
    } else {
        Bitfield::empty(n)
    };
    let verified = have.count_ones();
    for i in trusted.iter_ones() {
        have.set(i);
    }
    tracing::info!(
        trusted = trusted.count_ones(),
        verified,
        of = n,
        "pieces on disk: trusted (resume record, not read) and verified (read and hashed)"
    );
    if options.mode == OpenMode::Existing {
        let found = have.count_ones();
        if found == 0 && n > 0 {
            return Err(NetError::DataMismatch {
                dir: options.dir.clone(),
            });
        }
        if found < n {
            tracing::warn!("{found} of {n} pieces check out; seeding those, fetching the rest");
        }
    }
    Ok((storage, resume, have))
}

/// Hashes what is on disk except the `trusted` pieces, publishing progress.
async fn check(
    spec: &TorrentSpec,
    storage: &Arc<Storage>,
    trusted: &Bitfield,
    only_existing: bool,
    status: &watch::Sender<TorrentStatus>,
) -> Result<Bitfield, NetError> {
    // The trusted pieces are not read: they count as checked from the start
    // (real bytes only, as the check's progress: pad files left out).
    let checked = Arc::new(AtomicU64::new(spec.pads().real_bytes_present(trusted)));
    let job = {
        let (storage, checked, trusted) = (storage.clone(), checked.clone(), trusted.clone());
        tokio::task::spawn_blocking(move || {
            storage.check_except(&trusted, only_existing, &|n| {
                checked.fetch_add(n, Ordering::Relaxed);
            })
        })
    };
    tokio::pin!(job);
    let started = Instant::now();
    let total = storage.real_total();
    let mut tick = tokio::time::interval(CHECK_PROGRESS_INTERVAL);
    loop {
        tokio::select! {
            have = &mut job => {
                let have = have.map_err(|e| NetError::Fatal(format!("checking the data: {e}")))?;
                status.send_modify(|s| s.checked = Some(total));
                tracing::info!(
                    pieces = have.count_ones(),
                    secs = started.elapsed().as_secs_f64(),
                    "checked the data on disk"
                );
                return Ok(have);
            }
            _ = tick.tick() => {
                let n = checked.load(Ordering::Relaxed);
                status.send_modify(|s| s.checked = Some(n));
            }
        }
    }
}
