//! Saving the resume record from a session's owner task (see
//! [`ResumeSaver`]); what is saved and why it is safe: [`super::store`].

use std::sync::Arc;

use swarm_engine::Bitfield;
use tokio::time::Instant;

use super::{RESUME_SAVE_INTERVAL, ResumeStore};
use crate::NetError;
use crate::storage::Storage;

/// Saves the resume record from the owner task: at most one save in flight,
/// on the blocking pool. A save is due every [`RESUME_SAVE_INTERVAL`] if the
/// verified pieces changed since the last one, soon after completion, and at
/// exit ([`ResumeSaver::finish`]).
///
/// Why not more often: a file still being written is untrusted at the next
/// start however recent the record is (every write after the save changes
/// its mtime), so a shorter interval gains nothing for a download killed
/// mid-file — its data is re-verified at ~2 GB/s, not downloaded again —
/// while each save costs an `fdatasync` of everything written since the last
/// one, competing with the download's own writes. What a record buys is a
/// start without reading files that no longer change (finished files, a
/// complete download, a seed), and for those 30 s is soon enough.
pub(crate) struct ResumeSaver {
    store: Arc<ResumeStore>,
    /// The save running: the pieces it saves, and its result.
    running: Option<(
        Bitfield,
        tokio::sync::oneshot::Receiver<Result<(), NetError>>,
    )>,
    /// The pieces of the last record written.
    saved: Option<Bitfield>,
    /// The pieces of the last save that failed (not retried until they
    /// change, or at exit).
    failed: Option<Bitfield>,
    next_due: Instant,
    /// A failure was already logged as a warning (later ones are debug).
    warned: bool,
}

impl ResumeSaver {
    pub(crate) fn new(store: Arc<ResumeStore>) -> Self {
        ResumeSaver {
            store,
            running: None,
            saved: None,
            failed: None,
            // The first tick saves what the start-up check found.
            next_due: Instant::now(),
            warned: false,
        }
    }

    pub(crate) fn save_soon(&mut self) {
        self.next_due = Instant::now();
    }

    /// Saves soon even if the pieces did not change (the files did: one
    /// was created, or left for the parts file).
    pub(crate) fn resave_soon(&mut self) {
        self.saved = None;
        self.failed = None;
        self.next_due = Instant::now();
    }

    /// Collects a finished save's result, if any.
    fn poll(&mut self) {
        use tokio::sync::oneshot::error::TryRecvError;
        let Some((_, rx)) = &mut self.running else {
            return;
        };
        let result = match rx.try_recv() {
            Err(TryRecvError::Empty) => return,
            Ok(r) => r,
            Err(TryRecvError::Closed) => Err(NetError::Fatal("resume save job panicked".into())),
        };
        if let Some((have, _)) = self.running.take() {
            self.record(have, result);
        }
    }

    /// A save runs, or `have` is not saved yet (and its save did not fail):
    /// the owner task must keep calling [`ResumeSaver::maybe_start`].
    pub(crate) fn pending(&self, have: &Bitfield) -> bool {
        self.running.is_some()
            || (self.saved.as_ref() != Some(have) && self.failed.as_ref() != Some(have))
    }

    fn record(&mut self, have: Bitfield, result: Result<(), NetError>) {
        match result {
            Ok(()) => {
                tracing::debug!(pieces = have.count_ones(), path = %self.store.path().display(), "resume record saved");
                self.saved = Some(have);
                self.failed = None;
            }
            Err(e) if !self.warned => {
                self.failed = Some(have);
                self.warned = true;
                tracing::warn!(error = %e, "resume record not saved: the next start checks the data");
            }
            Err(e) => {
                self.failed = Some(have);
                tracing::debug!(error = %e, "resume record not saved");
            }
        }
    }

    /// Starts a save of `have` (the core's, taken now, before the sync) if
    /// one is due, none is running and `have` changed since the last record.
    pub(crate) fn maybe_start(&mut self, have: &Bitfield, storage: &Arc<Storage>) {
        self.poll();
        let now = Instant::now();
        if self.running.is_some() || now < self.next_due {
            return;
        }
        self.next_due = now + RESUME_SAVE_INTERVAL;
        if self.saved.as_ref() == Some(have) {
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (store, storage, snapshot) = (self.store.clone(), storage.clone(), have.clone());
        tokio::task::spawn_blocking(move || {
            let _ = tx.send(store.save(&storage, &snapshot));
        });
        self.running = Some((have.clone(), rx));
    }

    /// A save runs.
    pub(crate) fn running(&self) -> bool {
        self.running.is_some()
    }

    /// Waits for the running save to end (forever if none runs) and
    /// records its result: the owner task learns at once that the record
    /// is written (and may sleep), not at its next tick. Cancel-safe: the
    /// save stays running if this is dropped first.
    pub(crate) async fn finished(&mut self) {
        if self.running.is_none() {
            return std::future::pending().await;
        }
        self.collect().await;
    }

    /// Waits for the running save, if any, and records its result.
    /// Cancel-safe: the save stays running if this is dropped first.
    async fn collect(&mut self) {
        let Some((_, rx)) = &mut self.running else {
            return;
        };
        let result = rx
            .await
            .unwrap_or_else(|_| Err(NetError::Fatal("resume save job panicked".into())));
        if let Some((have, _)) = self.running.take() {
            self.record(have, result);
        }
    }

    /// At exit: waits for a running save, then saves `have` if it changed.
    pub(crate) async fn finish(&mut self, have: Bitfield, storage: &Arc<Storage>) {
        self.collect().await;
        if self.saved.as_ref() == Some(&have) {
            return;
        }
        let (store, storage, snapshot) = (self.store.clone(), storage.clone(), have.clone());
        let result = tokio::task::spawn_blocking(move || store.save(&storage, &snapshot))
            .await
            .unwrap_or_else(|e| Err(NetError::Fatal(format!("resume save job: {e}"))));
        self.record(have, result);
    }
}
