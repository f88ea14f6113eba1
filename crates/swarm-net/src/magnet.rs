//! A magnet link's first phase: its metadata (BEP 9), before the download.
//!
//! The torrent is registered with the endpoint under its info-hash from the
//! start, so the endpoint's connection policy runs this phase as it runs a
//! download: it dials the magnet's peers (`x.pe`, `--peer`), those of its
//! trackers (`tr`), of the DHT and of peer exchange, with its caps and
//! back-off, and routes incoming handshakes for the info-hash here. This
//! task is a thin driver of the sans-IO [`Extensions::for_magnet`]: it
//! starts each attached connection's reader and writer, feeds the
//! extensions its messages and sends theirs. Whom to ask for which piece
//! and what to believe (the SHA-1 of the whole against the info-hash) is
//! the engine's call.
//!
//! When the metadata is complete the connections close and the torrent
//! leaves the endpoint; [`crate::Client`] saves the metadata as
//! `DIR/.swarm/<info-hash>.torrent` (so a restart does not fetch it again),
//! checks the data and adds the torrent anew, dialling first the peers that
//! had the metadata. (Handing the live connections to the download session
//! would save a handshake each; not done.)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use swarm_engine::metadata::METADATA_SIZE_MAX;
use swarm_engine::{
    ExtensionEvent, Extensions, ExtensionsConfig, InfoHash, Instant as CoreInstant, PeerHello,
    PeerKey, PeerSource,
};
use swarm_wire::metainfo::PIECE_HASH_LEN;
use swarm_wire::peer::{Message, MessageDecoder};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::client::DriverLink;
use crate::conn::{self, Handshaken, PeerInput};
use crate::session::{Input, announce};
use crate::status::TorrentStatus;
use crate::tracker::{AnnounceStats, TrackerClient, TrackerConfig};

/// How often the phase publishes its status and reports progress.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// Messages buffered from the connections' readers.
const PEER_CHANNEL_LEN: usize = 64;

/// What the metadata phase needs.
pub(crate) struct MetadataPhase {
    pub(crate) info_hash: InfoHash,
    /// `tr` URLs, one tier each, in order.
    pub(crate) trackers: Vec<String>,
    pub(crate) peer_id: swarm_engine::PeerId,
    pub(crate) listen_port: u16,
    pub(crate) tracker: TrackerConfig,
    /// Our DHT node's port, for the extension handshake (BEP 5).
    pub(crate) dht_port: Option<u16>,
    /// `--no-pex`.
    pub(crate) no_pex: bool,
}

/// The info dictionary, and the peers that were connected when it was
/// complete (dialled first by the download).
pub(crate) struct Fetched {
    pub(crate) info: Bytes,
    pub(crate) peers: Vec<SocketAddr>,
}

struct Conn {
    addr: SocketAddr,
    tx: mpsc::UnboundedSender<Message>,
    tasks: [tokio::task::JoinHandle<()>; 2],
    /// A message came since the last status tick (progress, for the
    /// endpoint's idle-connection rule).
    active: bool,
}

impl Conn {
    fn close(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs the phase until the metadata is complete (`Some`) or the torrent is
/// stopped (`None`). The torrent is registered with the endpoint by the
/// caller, with `inputs` as its session channel.
pub(crate) async fn fetch(
    phase: MetadataPhase,
    link: &DriverLink,
    inputs: &mut mpsc::UnboundedReceiver<Input>,
    status_tx: &watch::Sender<TorrentStatus>,
    stop: &crate::stop::StopFlag,
    added: Instant,
) -> Option<Fetched> {
    let epoch = Instant::now();
    let now = move || CoreInstant(epoch.elapsed().as_micros() as u64);
    let config = ExtensionsConfig {
        private: false,
        no_pex: phase.no_pex,
        listen_port: Some(phase.listen_port),
        dht_port: phase.dht_port,
        client: Some(format!("swarm {}", env!("CARGO_PKG_VERSION"))),
        reqq: None,
    };
    let mut ext = Extensions::for_magnet(phase.info_hash, config);
    let (peer_tx, mut peer_rx) = mpsc::channel::<PeerInput>(PEER_CHANNEL_LEN);
    let mut conns: BTreeMap<PeerKey, Conn> = BTreeMap::new();
    let mut tracker: Option<(mpsc::UnboundedSender<announce::TrackerCommand>, _)> = None;
    // The size is unknown until the metadata is: announce as a leecher
    // missing one byte.
    let (_stats_tx, stats_rx) = watch::channel(AnnounceStats {
        left: 1,
        ..AnnounceStats::default()
    });
    let mut connecting = 0;
    let mut tick = tokio::time::interval(STATUS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A bitfield of the largest torrent whose metadata we accept.
    let bitfield_max = (METADATA_SIZE_MAX as usize / PIECE_HASH_LEN).div_ceil(8);
    let fetched = loop {
        let deadline = ext
            .poll_timeout()
            .map(|t| epoch + Duration::from_micros(t.0))
            .unwrap_or_else(|| Instant::now() + STATUS_INTERVAL);
        tokio::select! {
            () = stop.stopped() => break None,
            input = inputs.recv() => match input {
                None => break None,
                Some(Input::Attach(key, h)) => {
                    let Handshaken { stream, addr, remote, leftover, outgoing } = *h;
                    let hello = PeerHello {
                        addr,
                        outgoing,
                        extension_protocol: remote.supports_extension_protocol(),
                        dht: remote.supports_dht(),
                    };
                    if !hello.extension_protocol {
                        tracing::info!(peer = %addr, "no extension protocol (BEP 10): it cannot give the metadata");
                        link.closed(key);
                        continue;
                    }
                    let (rd, wr) = stream.into_split();
                    let (tx, rx) = mpsc::unbounded_channel();
                    let reader = tokio::spawn(conn::read_loop(
                        key, rd, leftover, MessageDecoder::new(bitfield_max), peer_tx.clone(), Vec::new(),
                    ));
                    let writer = tokio::spawn(conn::write_loop(
                        key, wr, rx, Arc::new(AtomicUsize::new(0)), peer_tx.clone(), Vec::new(),
                    ));
                    tracing::info!(peer = %addr, outgoing, client = %remote.peer_id.client_name(), "connected for metadata");
                    conns.insert(key, Conn { addr, tx, tasks: [reader, writer], active: true });
                    ext.peer_connected(now(), key, hello);
                }
                Some(Input::Close(key)) => {
                    if let Some(c) = conns.remove(&key) {
                        c.close();
                        ext.peer_disconnected(now(), key);
                    }
                }
                Some(Input::AnnounceStarted) => {
                    if tracker.is_none() && !phase.trackers.is_empty() {
                        let tiers = phase.trackers.iter().map(|t| vec![t.clone()]).collect();
                        let client = TrackerClient::with_config(
                            tiers,
                            phase.info_hash,
                            phase.peer_id,
                            phase.listen_port,
                            phase.tracker.clone(),
                        );
                        let (tx, rx) = mpsc::unbounded_channel();
                        // Its outcomes come here (`Input::Trackers`): shown
                        // in the status while the metadata is fetched.
                        let task = tokio::spawn(announce::tracker_task(client, rx, stats_rx.clone(), link.clone()));
                        tracker = Some((tx, AbortOnDrop(task)));
                    }
                }
                Some(Input::Figures(f)) => connecting = f.connecting,
                Some(Input::Trackers(t)) => status_tx.send_modify(|s| s.trackers = t),
                Some(
                    Input::Storage(_)
                    | Input::SetPriorities(_)
                    | Input::Rechosen(_),
                ) => {}
            },
            Some(input) = peer_rx.recv() => match input {
                PeerInput::Messages(key, msgs) => {
                    if let Some(c) = conns.get_mut(&key) {
                        c.active = true;
                    }
                    for m in &msgs {
                        ext.handle_message(now(), key, m);
                    }
                }
                PeerInput::Closed(key, reason) => {
                    if let Some(c) = conns.remove(&key) {
                        tracing::info!(peer = %c.addr, %reason, "closed");
                        c.close();
                        link.closed(key);
                        ext.peer_disconnected(now(), key);
                    }
                }
                PeerInput::Drained(_) => {}
            },
            () = tokio::time::sleep_until(deadline) => ext.handle_timeout(now()),
            _ = tick.tick() => {
                let active: Vec<PeerKey> = conns
                    .iter_mut()
                    .filter_map(|(k, c)| std::mem::take(&mut c.active).then_some(*k))
                    .collect();
                link.progress(active);
                let (got, all, _) = ext.metadata_progress().unwrap_or((0, 0, 0));
                status_tx.send_modify(|s| {
                    s.peers = conns.len();
                    s.connecting = connecting;
                    s.metadata_pieces = Some((got, all));
                    s.elapsed_s = added.elapsed().as_secs_f64();
                });
            }
        }
        let mut complete = None;
        while let Some(ev) = ext.poll_event() {
            match ev {
                ExtensionEvent::MetadataComplete(info) => complete = Some(info),
                ExtensionEvent::Disconnect { peer, reason, ban } => {
                    if let Some(c) = conns.remove(&peer) {
                        tracing::warn!(peer = %c.addr, %reason, "dropped");
                        c.close();
                        link.closed(peer);
                        if ban {
                            link.ban(c.addr.ip());
                        }
                    }
                }
                ExtensionEvent::Peers(addrs) => link.peers(PeerSource::Pex, addrs),
                ExtensionEvent::DhtNode(_) | ExtensionEvent::PeerExtensions { .. } => {}
            }
        }
        if let Some(info) = complete {
            break Some(Fetched {
                info,
                peers: conns.values().map(|c| c.addr).collect(),
            });
        }
        while let Some((key, msg)) = ext.poll_transmit() {
            if let Some(c) = conns.get(&key) {
                let _ = c.tx.send(msg);
            }
        }
    };
    for (key, c) in conns {
        c.close();
        link.closed(key);
    }
    if let Some((tx, mut task)) = tracker {
        if fetched.is_some() {
            // Stops it without a `stopped` announce racing the download's
            // `started` (the task is aborted when `task` drops).
            drop(tx);
        } else {
            // Stopped: `stopped`, as any torrent that announced, and its
            // outcome in the final status. Bounded as the session's.
            let _ = tx.send(announce::TrackerCommand::Stop);
            if let Ok(Ok(last)) =
                tokio::time::timeout(crate::session::STOP_ANNOUNCE_TIMEOUT, &mut task.0).await
            {
                status_tx.send_modify(|s| s.trackers = last);
            }
        }
    }
    fetched
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a magnet link's metadata is kept once fetched: beside the resume
/// records, `DIR/.swarm/<info-hash>.torrent`.
pub fn saved_torrent_path(dir: &Path, info_hash: InfoHash) -> PathBuf {
    dir.join(".swarm")
        .join(format!("{}.torrent", info_hash.to_hex()))
}

/// The `.torrent` file for fetched metadata: the info dictionary as
/// received (so its hash is the info-hash) and the magnet's trackers.
pub fn torrent_file(info: &[u8], trackers: &[String]) -> Vec<u8> {
    use swarm_wire::bencode::put_bytes;
    let mut out = Vec::with_capacity(info.len() + 256);
    out.push(b'd');
    if let Some(first) = trackers.first() {
        put_bytes(&mut out, b"announce");
        put_bytes(&mut out, first.as_bytes());
        if trackers.len() > 1 {
            put_bytes(&mut out, b"announce-list");
            out.push(b'l');
            for t in trackers {
                out.push(b'l');
                put_bytes(&mut out, t.as_bytes());
                out.push(b'e');
            }
            out.push(b'e');
        }
    }
    put_bytes(&mut out, b"info");
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

/// Writes `bytes` to `path` through a temporary file and a rename (a crash
/// leaves the old file or the new one, never half of one).
pub(crate) fn save(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = path.with_extension("torrent.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_wire::metainfo::Metainfo;

    #[test]
    fn a_torrent_file_of_fetched_metadata_keeps_the_info_hash_and_the_trackers() {
        let info = b"d6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let trackers = vec!["http://a/announce".to_string(), "udp://b:1".to_string()];
        let bytes = torrent_file(info, &trackers);
        let meta = Metainfo::from_bytes(&bytes).unwrap();
        let alone = Metainfo::from_info_bytes(info).unwrap();
        assert_eq!(meta.info_hash(), alone.info_hash());
        assert_eq!(
            meta.tracker_tiers(),
            vec![vec![trackers[0].clone()], vec![trackers[1].clone()]]
        );
        let none = Metainfo::from_bytes(&torrent_file(info, &[])).unwrap();
        assert!(none.tracker_tiers().is_empty());
        assert_eq!(none.info_hash(), alone.info_hash());
    }
}
