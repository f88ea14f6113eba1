//! Fetching a magnet link's metadata (BEP 9) before the download starts.
//!
//! A short-lived driver of [`Extensions::for_magnet`]: it dials the peers of
//! the magnet (`x.pe`), of its trackers (`tr`) and of the DHT, exchanges
//! handshakes and extension handshakes, and lets the sans-IO fetcher ask
//! them for the info dictionary's pieces. It returns the dictionary (its
//! SHA-1 checked against the info-hash by the fetcher, parsed here) and the
//! addresses that had it, for the download to dial first. It decides
//! nothing itself: whom to ask and what to believe is the engine's call.
//!
//! The connections are closed afterwards and the download dials again: a
//! few handshakes more, in exchange for a download session that always
//! starts with its metadata (the endpoint driver may keep them later).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use swarm_engine::metadata::METADATA_SIZE_MAX;
use swarm_engine::{
    ExtensionEvent, Extensions, ExtensionsConfig, InfoHash, Instant as CoreInstant, PeerHello,
    PeerId, PeerKey,
};
use swarm_wire::metainfo::{Metainfo, PIECE_HASH_LEN};
use swarm_wire::peer::{Message, MessageDecoder};
use swarm_wire::tracker::Event;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::NetError;
use crate::conn::{self, ConnError, Handshaken, PeerInput};
use crate::dht::{DhtHandle, peer_lookups};
use crate::tracker::{AnnounceStats, TrackerClient};

/// Connections (open and being opened) while fetching.
pub const FETCH_CONNECTIONS_MAX: usize = 16;
/// Addresses remembered to dial (more are ignored).
pub const FETCH_CANDIDATES_MAX: usize = 1000;
/// Before dialling an address that failed or closed again.
pub const FETCH_REDIAL_DELAY: Duration = Duration::from_secs(15);

/// What to fetch and where to look.
#[derive(Clone)]
pub struct MetadataFetch {
    pub info_hash: InfoHash,
    /// `x.pe` and `--peer` addresses.
    pub peers: Vec<SocketAddr>,
    /// `tr` URLs (one tier each, in order).
    pub trackers: Vec<String>,
    pub peer_id: PeerId,
    /// Where we listen (the trackers, the DHT and `p` get its port; we dial
    /// from its IP).
    pub listen: SocketAddr,
    /// The DHT node to ask for peers (`None`: `--no-dht`).
    pub dht: Option<DhtHandle>,
}

/// Progress, for the display.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchStatus {
    pub connected: usize,
    /// Pieces received, pieces in all, peers that have the metadata.
    pub pieces: (u32, u32),
    pub sources: usize,
    pub candidates: usize,
}

/// The info dictionary and the peers that served it.
pub struct Fetched {
    pub info: Bytes,
    pub metainfo: Metainfo,
    pub peers: Vec<SocketAddr>,
}

struct Conn {
    addr: SocketAddr,
    tx: mpsc::UnboundedSender<Message>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

/// Fetches until it has the metadata (no time limit: the caller's).
pub async fn fetch_metadata(
    fetch: MetadataFetch,
    status: watch::Sender<FetchStatus>,
) -> Result<Fetched, NetError> {
    let epoch = Instant::now();
    let now = move || CoreInstant(epoch.elapsed().as_micros() as u64);
    let config = ExtensionsConfig {
        private: false,
        listen_port: Some(fetch.listen.port()),
        dht_port: fetch.dht.as_ref().map(|d| d.local_addr().port()),
        client: Some(format!("swarm {}", env!("CARGO_PKG_VERSION"))),
        reqq: None,
    };
    let mut ext = Extensions::for_magnet(fetch.info_hash, config);
    let (found_tx, mut found_rx) = mpsc::unbounded_channel::<Vec<SocketAddr>>();
    let _ = found_tx.send(fetch.peers.clone());
    let mut side_tasks = Vec::new();
    if !fetch.trackers.is_empty() {
        let tiers = fetch.trackers.iter().map(|t| vec![t.clone()]).collect();
        let mut client =
            TrackerClient::new(tiers, fetch.info_hash, fetch.peer_id, fetch.listen.port());
        let tx = found_tx.clone();
        side_tasks.push(tokio::spawn(async move {
            // Left is unknown until the metadata is: say 1 (a leecher).
            let stats = AnnounceStats {
                left: 1,
                ..AnnounceStats::default()
            };
            let mut event = Event::Started;
            loop {
                match client.announce(event, stats).await {
                    Ok(r) => {
                        event = Event::None;
                        if tx.send(r.peers).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "announce failed"),
                }
                let wait = client.next_announce_in().unwrap_or(Duration::from_secs(60));
                tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
            }
        }));
    }
    if let Some(dht) = &fetch.dht {
        side_tasks.push(tokio::spawn(peer_lookups(
            dht.clone(),
            fetch.info_hash,
            fetch.listen.port(),
            found_tx.clone(),
        )));
    }
    let _abort = AbortOnDrop(side_tasks);

    let (hs_tx, mut hs_rx) =
        mpsc::unbounded_channel::<(SocketAddr, Result<Handshaken, ConnError>)>();
    let (peer_tx, mut peer_rx) = mpsc::channel::<PeerInput>(64);
    let mut candidates: BTreeMap<SocketAddr, Instant> = BTreeMap::new();
    let mut dialling: BTreeSet<SocketAddr> = BTreeSet::new();
    let mut conns: BTreeMap<PeerKey, Conn> = BTreeMap::new();
    let mut next_key = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    // A bitfield of the largest torrent whose metadata we accept.
    let bitfield_max = (METADATA_SIZE_MAX as usize / PIECE_HASH_LEN).div_ceil(8);
    loop {
        let deadline = ext
            .poll_timeout()
            .map(|t| epoch + Duration::from_micros(t.0))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            Some(addrs) = found_rx.recv() => {
                let t = Instant::now();
                for a in addrs {
                    if candidates.len() >= FETCH_CANDIDATES_MAX { break; }
                    candidates.entry(a).or_insert(t);
                }
            }
            Some((addr, result)) = hs_rx.recv() => {
                dialling.remove(&addr);
                match result {
                    Ok(h) => {
                        let key = PeerKey(next_key);
                        next_key += 1;
                        let hello = PeerHello {
                            addr,
                            outgoing: true,
                            extension_protocol: h.remote.supports_extension_protocol(),
                            dht: h.remote.supports_dht(),
                        };
                        if !hello.extension_protocol {
                            tracing::info!(peer = %addr, "no extension protocol: cannot give metadata");
                            continue;
                        }
                        let (rd, wr) = h.stream.into_split();
                        let (tx, rx) = mpsc::unbounded_channel();
                        let reader = tokio::spawn(conn::read_loop(
                            key, rd, h.leftover, MessageDecoder::new(bitfield_max), peer_tx.clone(), Vec::new(),
                        ));
                        let writer = tokio::spawn(conn::write_loop(
                            key, wr, rx, Arc::new(AtomicUsize::new(0)), peer_tx.clone(), Vec::new(),
                        ));
                        conns.insert(key, Conn { addr, tx, tasks: [reader, writer] });
                        ext.peer_connected(now(), key, hello);
                        tracing::info!(peer = %addr, "connected for metadata");
                    }
                    Err(e) => {
                        tracing::info!(peer = %addr, error = %e, "could not connect");
                        candidates.insert(addr, Instant::now() + FETCH_REDIAL_DELAY);
                    }
                }
            }
            Some(input) = peer_rx.recv() => match input {
                PeerInput::Messages(key, msgs) => {
                    for m in &msgs {
                        ext.handle_message(now(), key, m);
                    }
                }
                PeerInput::Closed(key, reason) => {
                    if let Some(c) = conns.remove(&key) {
                        tracing::info!(peer = %c.addr, %reason, "closed");
                        close(&c);
                        candidates.insert(c.addr, Instant::now() + FETCH_REDIAL_DELAY);
                        ext.peer_disconnected(now(), key);
                    }
                }
                PeerInput::Drained(_) => {}
            },
            () = tokio::time::sleep_until(deadline) => ext.handle_timeout(now()),
            _ = tick.tick() => {
                let t = Instant::now();
                let ready: Vec<SocketAddr> = candidates
                    .iter()
                    .filter(|(a, at)| **at <= t && !dialling.contains(a) && !conns.values().any(|c| c.addr == **a))
                    .map(|(a, _)| *a)
                    .take(FETCH_CONNECTIONS_MAX.saturating_sub(dialling.len() + conns.len()))
                    .collect();
                for addr in ready {
                    candidates.insert(addr, t + FETCH_REDIAL_DELAY);
                    dialling.insert(addr);
                    let (tx, ih, id) = (hs_tx.clone(), fetch.info_hash, fetch.peer_id);
                    let from = conn::dial_source(fetch.listen, addr);
                    tokio::spawn(async move {
                        let _ = tx.send((addr, conn::connect_from(from, addr, ih, id).await));
                    });
                }
                let (got, all, sources) = ext.metadata_progress().unwrap_or((0, 0, 0));
                let _ = status.send(FetchStatus {
                    connected: conns.len(),
                    pieces: (got, all),
                    sources,
                    candidates: candidates.len(),
                });
            }
        }
        while let Some(ev) = ext.poll_event() {
            match ev {
                ExtensionEvent::MetadataComplete(info) => {
                    let peers = conns.values().map(|c| c.addr).collect();
                    for c in conns.values() {
                        close(c);
                    }
                    let metainfo = Metainfo::from_info_bytes(&info).map_err(|e| {
                        NetError::BadTorrent(format!(
                            "the metadata peers gave for this info-hash is not a valid torrent: {e}"
                        ))
                    })?;
                    return Ok(Fetched {
                        info,
                        metainfo,
                        peers,
                    });
                }
                ExtensionEvent::Disconnect { peer, reason, ban } => {
                    if let Some(c) = conns.remove(&peer) {
                        tracing::warn!(peer = %c.addr, %reason, "dropped");
                        close(&c);
                        if ban {
                            candidates.remove(&c.addr);
                        }
                    }
                }
                ExtensionEvent::Peers(addrs) => {
                    let t = Instant::now();
                    for a in addrs {
                        if candidates.len() >= FETCH_CANDIDATES_MAX {
                            break;
                        }
                        candidates.entry(a).or_insert(t);
                    }
                }
                ExtensionEvent::DhtNode(_) | ExtensionEvent::PeerExtensions { .. } => {}
            }
        }
        while let Some((key, msg)) = ext.poll_transmit() {
            if let Some(c) = conns.get(&key) {
                let _ = c.tx.send(msg);
            }
        }
    }
}

fn close(c: &Conn) {
    for t in &c.tasks {
        t.abort();
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
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
