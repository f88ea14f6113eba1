//! A torrent's stop flag: set once, by its handle or the client, read and
//! awaited by its start task and then its session.
//!
//! A `tokio::sync::watch<bool>` did this before, at ~344 bytes a torrent
//! (its channel holds eight `Notify`s for its receivers): with the daemon's
//! thousands of torrents asleep, that was the second largest thing each
//! one held. This is one `Notify` and one flag, ~64 bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    stopped: AtomicBool,
    notify: Notify,
}

/// Cloned to every task that must see the stop; [`StopFlag::stop`] is
/// seen by all of them, now and later.
#[derive(Clone, Default)]
pub(crate) struct StopFlag(Arc<Inner>);

impl StopFlag {
    /// Sets the flag and wakes every task waiting in [`StopFlag::stopped`].
    pub(crate) fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Returns once the flag is set (at once if it is). Cancel-safe.
    pub(crate) async fn stopped(&self) {
        loop {
            // Registered before the flag is read: a `stop` between the
            // read and the wait still wakes this one.
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stop_wakes_a_waiter_and_is_seen_by_later_ones() {
        let flag = StopFlag::default();
        let waiter = tokio::spawn({
            let flag = flag.clone();
            async move { flag.stopped().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "not stopped yet: it waits");
        assert!(!flag.is_stopped());
        flag.stop();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter woke")
            .unwrap();
        // A clone made or awaited after the stop returns at once.
        let later = flag.clone();
        assert!(later.is_stopped());
        tokio::time::timeout(Duration::from_secs(5), later.stopped())
            .await
            .expect("already stopped");
    }
}
