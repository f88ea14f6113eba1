//! The session's tracker task: announces `started`, then on the tracker's
//! interval, `completed` when told and `stopped` at the end, and hands every
//! peer list to the endpoint driver (source: tracker). Its own task, so a slow or dead tracker (UDP
//! retries take minutes) never holds up the core's owner task.

use std::time::Duration;

use swarm_wire::tracker::Event;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use swarm_engine::PeerSource;

use super::Input;
use crate::client::DriverLink;
use crate::tracker::{AnnounceStats, TrackerClient};

pub(crate) struct TrackerTask {
    pub(super) tx: mpsc::UnboundedSender<TrackerCommand>,
    pub(super) task: JoinHandle<()>,
}

pub(crate) enum TrackerCommand {
    Completed,
    Stop,
}

/// Announces `started`, then regularly, `completed` when told, and `stopped`
/// when stopped; hands every peer list to the endpoint driver and each
/// announce's outcome (per tracker) to the session, for its status.
pub(crate) async fn tracker_task(
    mut client: TrackerClient,
    mut commands: mpsc::UnboundedReceiver<TrackerCommand>,
    stats: watch::Receiver<AnnounceStats>,
    out: DriverLink,
) {
    let mut event = Event::Started;
    let mut announced = false;
    let mut due_now = true;
    loop {
        if !due_now {
            // The tracker's interval after a success, a growing back-off
            // after failures; `completed` cuts the wait short.
            let wait = client
                .next_announce_in()
                .unwrap_or(Duration::from_secs(1800));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                cmd = commands.recv() => match cmd {
                    Some(TrackerCommand::Completed) => event = Event::Completed,
                    Some(TrackerCommand::Stop) | None => break,
                },
            }
        }
        due_now = false;
        let current = *stats.borrow();
        let result = if event == Event::Completed {
            // Not raced with a stop: the session stops right after
            // completing, and `completed` must still reach the tracker (the
            // session bounds how long it waits for this task).
            client.announce(event, current).await
        } else {
            tokio::select! {
                result = client.announce(event, current) => result,
                cmd = commands.recv() => {
                    match cmd {
                        Some(TrackerCommand::Completed) => {
                            event = Event::Completed;
                            due_now = true;
                            continue;
                        }
                        Some(TrackerCommand::Stop) | None => break,
                    }
                }
            }
        };
        // Through the driver: it wakes the session if it sleeps.
        out.input(Input::Trackers(client.statuses()));
        match result {
            Ok(r) => {
                announced = true;
                tracing::info!(peers = r.peers.len(), ?event, "tracker answered");
                out.peers(PeerSource::Tracker, r.peers);
                event = Event::None;
            }
            Err(e) => tracing::warn!(error = %e, ?event, "announce failed"),
        }
    }
    if announced {
        let current = *stats.borrow();
        if let Err(e) = client.announce(Event::Stopped, current).await {
            tracing::info!(error = %e, "stopped announce failed");
        }
    }
}
