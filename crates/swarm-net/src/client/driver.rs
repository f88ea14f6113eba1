//! The endpoint driver: the one task that owns the process's [`Endpoint`]
//! and its listener. It executes the endpoint's actions and feeds it what
//! happens; it decides nothing (the endpoint owns the connection policy):
//!
//! - accept → [`Endpoint::handle_accept`] → (if let in) read the peer's
//!   handshake in a task, within the endpoint's deadline →
//!   [`Endpoint::handle_handshake`] → answer with ours and hand the
//!   connection to that torrent's session, or drop it (refused);
//! - `Action::Dial` → connect and handshake in a task → `handle_handshake`
//!   → hand to the session; a failure → [`Endpoint::handle_closed`];
//! - `Action::Close` → abort the connection's setup task, or tell its
//!   session to close it;
//! - `Action::Announce { Started }` → the session starts its tracker task
//!   (`Stopped` is announced by the session as it ends);
//! - peers from trackers, `--peer`, and any [`super::PeerFeed`] (DHT, PEX)
//!   → [`Endpoint::handle_peers`]; a closed connection →
//!   `handle_closed`; a core's ban → [`Endpoint::ban`]; the torrent
//!   seeding, a peer that has every piece → [`Endpoint::set_seeding`],
//!   [`Endpoint::handle_peer_seed`].
//!
//! Only connection setup and teardown pass through here: established
//! connections' messages go from their reader tasks straight to their
//! session.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use swarm_engine::endpoint::{Action, AddError, AnnounceEvent};
use swarm_engine::{
    Endpoint, InfoHash, Instant as CoreInstant, PeerId, PeerKey, PeerSource, Refusal,
};
use swarm_wire::peer::Handshake;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::{Duration, Instant};

use crate::conn::{self, ConnError, Handshaken};
use crate::listener::Acceptor;
use crate::session::{self, Dormant, Figures, Input};

/// A candidate that fails this many dials in a row is reported once at the
/// default log level, with the reason.
pub const DIAL_FAILURES_REPORT: u32 = 3;
/// How often each session gets its connection figures.
const FIGURES_INTERVAL: Duration = Duration::from_secs(1);

/// What the driver is told.
pub(crate) enum DriverCmd {
    /// A torrent was added: its inputs go to `session` (they wait there
    /// while it checks) until it leaves (`Remove`).
    Register {
        info_hash: InfoHash,
        session: mpsc::UnboundedSender<Input>,
    },
    /// An input for this torrent's session (from its handle, its tracker
    /// task): woken first if it sleeps.
    Input {
        info_hash: InfoHash,
        input: Input,
    },
    Add {
        info_hash: InfoHash,
        session: mpsc::UnboundedSender<Input>,
        peers: Vec<SocketAddr>,
        reply: oneshot::Sender<Result<(), AddError>>,
    },
    Remove {
        info_hash: InfoHash,
    },
    Peers {
        info_hash: InfoHash,
        source: PeerSource,
        addrs: Vec<SocketAddr>,
    },
    /// A session closed one of its connections.
    Closed {
        conn: PeerKey,
    },
    Ban {
        ip: IpAddr,
    },
    /// A session goes to sleep (see [`Dormant`]), with its input channel
    /// (and what came since it decided to: then it wakes at once; else the
    /// channel is dropped, and a new one made when it wakes).
    Sleep {
        dormant: Box<Dormant>,
    },
    /// Wake this torrent's session if it sleeps (it was asked to stop, or
    /// an input waits in its channel).
    Wake {
        info_hash: InfoHash,
    },
    /// A new cap on connections in all (`Client::set_connections_max`).
    SetConnectionsMax {
        n: usize,
    },
    /// A torrent's own cap (`Client::set_torrent_connections_max`).
    SetTorrentConnectionsMax {
        info_hash: InfoHash,
        n: Option<usize>,
    },
    /// These connections made progress (see [`Endpoint::handle_progress`]).
    Progress {
        conns: Vec<PeerKey>,
    },
    /// Whether the torrent seeds ([`Endpoint::set_seeding`]).
    Seeding {
        info_hash: InfoHash,
        seeding: bool,
    },
    /// This connection's peer has every piece ([`Endpoint::handle_peer_seed`]).
    PeerSeed {
        conn: PeerKey,
    },
    Dialled {
        conn: PeerKey,
        torrent: InfoHash,
        addr: SocketAddr,
        result: Result<Handshaken, ConnError>,
    },
    Incoming {
        conn: PeerKey,
        addr: SocketAddr,
        result: Result<(TcpStream, Handshake, BytesMut), ConnError>,
    },
    /// Our handshake went out on an accepted incoming connection.
    Answered {
        conn: PeerKey,
        torrent: InfoHash,
        result: Result<Handshaken, ConnError>,
    },
    Shutdown,
}

/// A session's way to the driver.
#[derive(Clone)]
pub(crate) struct DriverLink {
    pub(crate) tx: mpsc::UnboundedSender<DriverCmd>,
    pub(crate) info_hash: InfoHash,
}

impl DriverLink {
    pub(crate) fn closed(&self, conn: PeerKey) {
        let _ = self.tx.send(DriverCmd::Closed { conn });
    }

    pub(crate) fn progress(&self, conns: Vec<PeerKey>) {
        if !conns.is_empty() {
            let _ = self.tx.send(DriverCmd::Progress { conns });
        }
    }

    pub(crate) fn seeding(&self, seeding: bool) {
        let _ = self.tx.send(DriverCmd::Seeding {
            info_hash: self.info_hash,
            seeding,
        });
    }

    pub(crate) fn peer_seed(&self, conn: PeerKey) {
        let _ = self.tx.send(DriverCmd::PeerSeed { conn });
    }

    pub(crate) fn ban(&self, ip: IpAddr) {
        let _ = self.tx.send(DriverCmd::Ban { ip });
    }

    /// The torrent leaves the endpoint (its session ended).
    pub(crate) fn remove(&self) {
        let _ = self.tx.send(DriverCmd::Remove {
            info_hash: self.info_hash,
        });
    }

    pub(crate) fn sleep(&self, dormant: Box<Dormant>) {
        let _ = self.tx.send(DriverCmd::Sleep { dormant });
    }

    /// An input for the session, woken first if it sleeps.
    pub(crate) fn input(&self, input: Input) {
        let _ = self.tx.send(DriverCmd::Input {
            info_hash: self.info_hash,
            input,
        });
    }

    pub(crate) fn peers(&self, source: PeerSource, addrs: Vec<SocketAddr>) {
        let _ = self.tx.send(DriverCmd::Peers {
            info_hash: self.info_hash,
            source,
            addrs,
        });
    }
}

/// A torrent's session, as the driver holds it.
pub(crate) enum Slot {
    /// Its task runs (or its start: metadata, check): inputs go down this
    /// channel.
    Awake(mpsc::UnboundedSender<Input>),
    /// It sleeps: plain data without a channel, woken (its task spawned
    /// again, with a new channel) by the first input the driver has for it,
    /// or a `Wake`.
    Asleep(Box<Dormant>),
}

pub(crate) struct Driver {
    pub(crate) endpoint: Endpoint,
    pub(crate) listener: Acceptor,
    /// Where we listen: a specific IP is also the one we dial from.
    pub(crate) listen_addr: SocketAddr,
    pub(crate) our_id: PeerId,
    pub(crate) epoch: Instant,
    pub(crate) rx: mpsc::UnboundedReceiver<DriverCmd>,
    pub(crate) tx: mpsc::UnboundedSender<DriverCmd>,
    pub(crate) sessions: HashMap<InfoHash, Slot>,
    /// The figures each session was last sent.
    pub(crate) figures: HashMap<InfoHash, Figures>,
    /// The endpoint may have changed since the figures were last sent:
    /// every change comes through a command, an accept or a timeout, so an
    /// idle daemon's figures tick reads no torrent (it read all of them
    /// each second: a third of an idle daemon's CPU with 1,000 torrents).
    pub(crate) figures_dirty: bool,
    /// Connections whose setup task (dial, handshake read, answer) runs.
    pub(crate) pending: HashMap<PeerKey, AbortHandle>,
    /// Established connections and the torrent whose session holds them.
    pub(crate) attached: HashMap<PeerKey, InfoHash>,
    /// Torrents' own connection caps, kept while they are stopped or
    /// checking (the endpoint forgets a torrent when it stops): one entry
    /// per torrent given a cap, until it is set back to none.
    pub(crate) torrent_caps: HashMap<InfoHash, usize>,
}

impl Driver {
    fn now(&self) -> CoreInstant {
        CoreInstant(
            Instant::now()
                .saturating_duration_since(self.epoch)
                .as_micros() as u64,
        )
    }

    pub(crate) async fn run(mut self) {
        let mut figures = tokio::time::interval(FIGURES_INTERVAL);
        figures.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // No timer without a deadline: the endpoint has nothing timed.
            let deadline = self
                .endpoint
                .poll_timeout()
                .map(|t| self.epoch + Duration::from_micros(t.0));
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    None | Some(DriverCmd::Shutdown) => break,
                    Some(cmd) => {
                        self.figures_dirty = true;
                        self.on_cmd(cmd);
                    }
                },
                // Pauses on EMFILE (crate::listener); other inputs go on.
                (stream, addr) = self.listener.accept() => {
                    self.figures_dirty = true;
                    self.on_accept(stream, addr);
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.figures_dirty = true;
                    let now = self.now();
                    self.endpoint.handle_timeout(now);
                }
                _ = figures.tick() => {
                    if std::mem::take(&mut self.figures_dirty) {
                        self.send_figures();
                    }
                }
            }
            self.execute();
        }
        for (_, task) in self.pending.drain() {
            task.abort();
        }
    }

    /// Sends each session its figures if they changed since the last it
    /// got (an idle torrent is not woken for nothing, a sleeping one not
    /// at all: its status is updated in place).
    fn send_figures(&mut self) {
        let banned = self.endpoint.bans();
        for (hash, slot) in &mut self.sessions {
            let connecting = self
                .endpoint
                .torrent_connections(hash)
                .map_or(0, |c| c.dialling);
            let figures = Figures { connecting, banned };
            if self.figures.get(hash) != Some(&figures) {
                self.figures.insert(*hash, figures);
                match slot {
                    Slot::Awake(session) => {
                        let _ = session.send(Input::Figures(figures));
                    }
                    Slot::Asleep(d) => d.set_figures(figures),
                }
            }
        }
    }

    /// The input channel of `torrent`'s session, woken first if it sleeps.
    fn session(&mut self, torrent: &InfoHash) -> Option<&mpsc::UnboundedSender<Input>> {
        let slot = self.sessions.get_mut(torrent)?;
        if let Slot::Asleep(_) = slot {
            let (tx, rx) = mpsc::unbounded_channel();
            if let Slot::Asleep(d) = std::mem::replace(slot, Slot::Awake(tx.clone())) {
                session::wake(d, (tx, rx));
            }
        }
        match slot {
            Slot::Awake(tx) => Some(tx),
            Slot::Asleep(_) => None,
        }
    }

    fn on_accept(&mut self, stream: TcpStream, addr: SocketAddr) {
        let now = self.now();
        match self.endpoint.handle_accept(now, addr) {
            Ok(conn) => {
                let tx = self.tx.clone();
                let task = tokio::spawn(async move {
                    let result = conn::read_incoming(stream).await;
                    let _ = tx.send(DriverCmd::Incoming { conn, addr, result });
                });
                self.pending.insert(conn, task.abort_handle());
            }
            Err(refusal) => tracing::debug!(peer = %addr, %refusal, "refused"),
        }
    }

    fn on_cmd(&mut self, cmd: DriverCmd) {
        let now = self.now();
        match cmd {
            DriverCmd::Register { info_hash, session } => {
                self.sessions.insert(info_hash, Slot::Awake(session));
                self.figures.insert(info_hash, Figures::default());
            }
            DriverCmd::Input { info_hash, input } => {
                if let Some(s) = self.session(&info_hash) {
                    let _ = s.send(input);
                }
            }
            DriverCmd::Add {
                info_hash,
                session,
                peers,
                reply,
            } => {
                let added = self.endpoint.add_torrent(now, info_hash);
                if added.is_ok() {
                    self.sessions.insert(info_hash, Slot::Awake(session));
                    // What the session starts with.
                    self.figures.insert(info_hash, Figures::default());
                    if let Some(&n) = self.torrent_caps.get(&info_hash) {
                        self.endpoint
                            .set_torrent_connections_max(now, info_hash, Some(n));
                    }
                    self.endpoint
                        .handle_peers(now, info_hash, PeerSource::Cli, peers);
                }
                let _ = reply.send(added);
            }
            DriverCmd::Remove { info_hash } => {
                self.endpoint.remove_torrent(now, info_hash);
                self.sessions.remove(&info_hash);
                self.figures.remove(&info_hash);
            }
            DriverCmd::Peers {
                info_hash,
                source,
                addrs,
            } => self.endpoint.handle_peers(now, info_hash, source, addrs),
            DriverCmd::Closed { conn } => {
                self.attached.remove(&conn);
                self.endpoint.handle_closed(now, conn);
            }
            DriverCmd::Sleep { dormant } => {
                let info_hash = dormant.info_hash();
                let Some(slot) = self.sessions.get_mut(&info_hash) else {
                    // Cannot be: only the session itself leaves.
                    tracing::warn!(%info_hash, "a session slept after leaving the endpoint");
                    return;
                };
                // Counted asleep even if it wakes at once (the wake counts).
                dormant.asleep();
                // An input came after it decided to sleep, or it was
                // stopped meanwhile: it goes on, with its channel (and the
                // sender kept in the slot).
                match dormant.into_sleep() {
                    // Asleep: the slot's sender was the channel's last.
                    Ok(dormant) => *slot = Slot::Asleep(dormant),
                    Err((dormant, rx)) => match slot {
                        Slot::Awake(tx) => session::wake(dormant, (tx.clone(), rx)),
                        // Cannot be: a session sleeps from its task.
                        Slot::Asleep(_) => tracing::warn!(%info_hash, "a session slept twice"),
                    },
                }
            }
            DriverCmd::Wake { info_hash } => {
                self.session(&info_hash);
            }
            DriverCmd::Ban { ip } => self.endpoint.ban(now, ip),
            DriverCmd::SetConnectionsMax { n } => self.endpoint.set_connections_max(now, n),
            DriverCmd::SetTorrentConnectionsMax { info_hash, n } => {
                match n {
                    Some(n) => self.torrent_caps.insert(info_hash, n),
                    None => self.torrent_caps.remove(&info_hash),
                };
                self.endpoint.set_torrent_connections_max(now, info_hash, n);
            }
            DriverCmd::Progress { conns } => {
                for conn in conns {
                    self.endpoint.handle_progress(now, conn);
                }
            }
            DriverCmd::Seeding { info_hash, seeding } => {
                self.endpoint.set_seeding(now, info_hash, seeding);
            }
            DriverCmd::PeerSeed { conn } => self.endpoint.handle_peer_seed(now, conn),
            DriverCmd::Dialled {
                conn,
                torrent,
                addr,
                result,
            } => {
                if self.pending.remove(&conn).is_none() {
                    return; // the endpoint gave up on it (its deadline)
                }
                match result {
                    Ok(h) => {
                        let verdict = self.endpoint.handle_handshake(
                            now,
                            conn,
                            h.remote.info_hash,
                            h.remote.peer_id,
                        );
                        self.attach_or_drop(conn, torrent, h, verdict);
                    }
                    Err(ConnError::SelfConnection) => {
                        // The endpoint judges it (and forgets the address).
                        let _ = self
                            .endpoint
                            .handle_handshake(now, conn, torrent, self.our_id);
                    }
                    Err(error) => {
                        self.endpoint.handle_closed(now, conn);
                        self.report_failure(torrent, addr, &error);
                    }
                }
            }
            DriverCmd::Incoming { conn, addr, result } => {
                if self.pending.remove(&conn).is_none() {
                    return;
                }
                let (mut stream, remote, leftover) = match result {
                    Ok(r) => r,
                    Err(error) => {
                        tracing::debug!(peer = %addr, %error, "incoming handshake failed");
                        self.endpoint.handle_closed(now, conn);
                        return;
                    }
                };
                let (info_hash, our_id) = (remote.info_hash, self.our_id);
                match self
                    .endpoint
                    .handle_handshake(now, conn, info_hash, remote.peer_id)
                {
                    Ok(()) => {
                        let tx = self.tx.clone();
                        let task = tokio::spawn(async move {
                            let result =
                                conn::answer(&mut stream, info_hash, our_id)
                                    .await
                                    .map(|()| Handshaken {
                                        stream,
                                        addr,
                                        remote,
                                        leftover,
                                        outgoing: false,
                                    });
                            let _ = tx.send(DriverCmd::Answered {
                                conn,
                                torrent: info_hash,
                                result,
                            });
                        });
                        self.pending.insert(conn, task.abort_handle());
                    }
                    Err(Refusal::SelfConnection) => {
                        // Answered anyway, so our dialling side sees its own
                        // id and forgets that address.
                        tokio::spawn(async move {
                            let _ = conn::answer(&mut stream, info_hash, our_id).await;
                        });
                    }
                    Err(refusal) => {
                        tracing::debug!(peer = %addr, %refusal, "handshake refused");
                    }
                }
            }
            DriverCmd::Answered {
                conn,
                torrent,
                result,
            } => {
                if self.pending.remove(&conn).is_none() {
                    return;
                }
                match result {
                    Ok(h) => self.attach(conn, torrent, h),
                    Err(error) => {
                        tracing::debug!(%error, "answering a handshake failed");
                        self.endpoint.handle_closed(now, conn);
                    }
                }
            }
            DriverCmd::Shutdown => {}
        }
    }

    fn attach_or_drop(
        &mut self,
        conn: PeerKey,
        torrent: InfoHash,
        h: Handshaken,
        verdict: Result<(), Refusal>,
    ) {
        match verdict {
            Ok(()) => {
                // A duplicate's `Close` goes to the session before the newcomer.
                self.execute();
                self.attach(conn, torrent, h);
            }
            Err(refusal) => tracing::debug!(peer = %h.addr, %refusal, "connection refused"),
        }
    }

    fn attach(&mut self, conn: PeerKey, torrent: InfoHash, h: Handshaken) {
        let sent = self
            .session(&torrent)
            .is_some_and(|s| s.send(Input::Attach(conn, Box::new(h))).is_ok());
        if sent {
            self.attached.insert(conn, torrent);
        } else {
            let now = self.now();
            self.endpoint.handle_closed(now, conn);
        }
    }

    /// Logs, once per run of failures, a candidate that keeps failing.
    fn report_failure(&self, torrent: InfoHash, addr: SocketAddr, error: &ConnError) {
        let failures = self.endpoint.candidate_failures(&torrent, addr);
        if failures == Some(DIAL_FAILURES_REPORT) {
            let hint = match error {
                ConnError::WrongInfoHash | ConnError::ClosedDuringHandshake => {
                    " (it does not seem to serve this torrent)"
                }
                _ => "",
            };
            tracing::warn!(
                "peer {addr} keeps failing: {error}{hint}; {DIAL_FAILURES_REPORT} attempts, still retrying with back-off"
            );
        }
        tracing::info!(peer = %addr, %error, "could not connect");
    }

    /// Executes the endpoint's actions.
    fn execute(&mut self) {
        while let Some(action) = self.endpoint.poll_action() {
            match action {
                Action::Dial {
                    conn,
                    torrent,
                    addr,
                } => {
                    let (tx, our_id) = (self.tx.clone(), self.our_id);
                    let local = conn::dial_source(self.listen_addr, addr);
                    let task = tokio::spawn(async move {
                        let result = conn::connect_from(local, addr, torrent, our_id).await;
                        let _ = tx.send(DriverCmd::Dialled {
                            conn,
                            torrent,
                            addr,
                            result,
                        });
                    });
                    self.pending.insert(conn, task.abort_handle());
                }
                Action::Close { conn, reason } => {
                    if let Some(task) = self.pending.remove(&conn) {
                        tracing::debug!(?conn, %reason, "connection setup ended");
                        task.abort();
                    } else if let Some(torrent) = self.attached.remove(&conn) {
                        tracing::debug!(?conn, %reason, "closing");
                        if let Some(s) = self.session(&torrent) {
                            let _ = s.send(Input::Close(conn));
                        }
                    }
                }
                Action::Announce { torrent, event } => match event {
                    AnnounceEvent::Started => {
                        if let Some(s) = self.session(&torrent) {
                            let _ = s.send(Input::AnnounceStarted);
                        }
                    }
                    // The session announces `stopped` as it ends (its
                    // tracker task holds the trackers' state).
                    AnnounceEvent::Stopped => {}
                },
            }
        }
    }
}
