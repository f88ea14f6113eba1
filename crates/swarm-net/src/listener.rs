//! The accept loop's one rule for errors: running out of file descriptors
//! (`EMFILE`, `ENFILE`) or kernel memory (`ENOBUFS`, `ENOMEM`) on accept
//! pauses accepting for [`ACCEPT_PAUSE`] and logs once per episode (a
//! warning at most once per [`ACCEPT_WARN_INTERVAL`]); it never spins (the
//! pending connection stays in the kernel's backlog, so retrying at once
//! fails at once) and never ends the caller. Other accept errors
//! (`ECONNABORTED`: the peer gave up before we took it) cost that one
//! connection and accepting goes on (but
//! [`OTHER_ERRORS_IN_A_ROW_MAX`] of them in a row pause it too).
//!
//! [`Acceptor::accept`] is cancel-safe (its pause is state, not a sleep
//! that a `select!` would forget), so a driver puts it in a `select!` arm
//! beside its other inputs, which go on during a pause.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// How long accepting pauses after a resource error.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(500);
/// At most one warning per this, however many episodes.
pub const ACCEPT_WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Counts of what the accept loop met, for tests and status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptStats {
    pub accepted: u64,
    /// Accepts that failed for want of descriptors or memory.
    pub resource_errors: u64,
    /// Other failed accepts (one connection lost each).
    pub other_errors: u64,
    /// Warnings logged.
    pub warnings: u64,
}

/// A listener whose `accept` survives resource exhaustion. See the module docs.
pub struct Acceptor {
    listener: TcpListener,
    paused_until: Option<Instant>,
    /// In an episode of resource errors (since the last success).
    exhausted: bool,
    last_warning: Option<Instant>,
    /// Other errors since the last success.
    other_in_a_row: u32,
    stats: AcceptStats,
}

/// Other errors in a row past which the listener pauses too (an error
/// that is not one connection's, repeating, must not spin either).
pub const OTHER_ERRORS_IN_A_ROW_MAX: u32 = 16;

/// `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`: retrying at once cannot help.
pub fn is_resource_error(e: &io::Error) -> bool {
    // Linux errno values; other Unixes share EMFILE/ENFILE/ENOMEM, and
    // ENOBUFS only differs in number (an unknown code is "other": no pause).
    const ENOMEM: i32 = 12;
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const ENOBUFS: i32 = 105;
    matches!(e.raw_os_error(), Some(ENOMEM | ENFILE | EMFILE | ENOBUFS))
}

impl Acceptor {
    pub fn new(listener: TcpListener) -> Self {
        Acceptor {
            listener,
            paused_until: None,
            exhausted: false,
            last_warning: None,
            other_in_a_row: 0,
            stats: AcceptStats::default(),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stats(&self) -> AcceptStats {
        self.stats
    }

    /// The next connection. Waits out a pause first; never returns an error.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            if let Some(until) = self.paused_until {
                tokio::time::sleep_until(until).await;
                self.paused_until = None;
            }
            match self.listener.accept().await {
                Ok(accepted) => {
                    self.stats.accepted += 1;
                    self.other_in_a_row = 0;
                    if self.exhausted {
                        self.exhausted = false;
                        tracing::info!(
                            failed = self.stats.resource_errors,
                            "accepting connections again"
                        );
                    }
                    return accepted;
                }
                Err(e) if is_resource_error(&e) => {
                    self.stats.resource_errors += 1;
                    let now = Instant::now();
                    if !self.exhausted {
                        self.exhausted = true;
                        let quiet = self
                            .last_warning
                            .is_some_and(|t| now.duration_since(t) < ACCEPT_WARN_INTERVAL);
                        if !quiet {
                            self.last_warning = Some(now);
                            self.stats.warnings += 1;
                            tracing::warn!(
                                error = %e,
                                pause_ms = ACCEPT_PAUSE.as_millis() as u64,
                                "cannot accept connections (out of file descriptors or memory); pausing the listener"
                            );
                        }
                    }
                    self.paused_until = Some(now + ACCEPT_PAUSE);
                }
                Err(e) => {
                    // One connection lost (it went away before we took it).
                    self.stats.other_errors += 1;
                    self.other_in_a_row += 1;
                    tracing::debug!(error = %e, "accept failed");
                    if self.other_in_a_row >= OTHER_ERRORS_IN_A_ROW_MAX {
                        self.other_in_a_row = 0;
                        tracing::warn!(error = %e, "accept keeps failing; pausing the listener");
                        self.paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    }
                }
            }
        }
    }
}
