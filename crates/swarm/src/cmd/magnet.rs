//! `swarm download MAGNET`: the metadata of a magnet link, from the
//! `.torrent` saved by an earlier run, or fetched from peers (BEP 9) and
//! saved beside the resume record (`DIR/.swarm/<info-hash>.torrent`), so a
//! restart does not fetch it again.

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use swarm_net::dht::DhtHandle;
use swarm_net::magnet::{FetchStatus, MetadataFetch, fetch_metadata, torrent_file};
use swarm_wire::Magnet;
use swarm_wire::metainfo::Metainfo;
use swarm_wire::text::Escaped;
use tokio::sync::watch;

use super::bad_input;
use super::peer::{Loaded, NetArgs};

/// Where the metadata of `magnet` is kept under the download folder `dir`.
pub fn saved_torrent_path(dir: &Path, magnet: &Magnet) -> PathBuf {
    dir.join(".swarm")
        .join(format!("{}.torrent", magnet.info_hash.to_hex()))
}

/// The torrent of `magnet` and the addresses worth dialling first (`x.pe`,
/// `--peer`, and the peers that gave the metadata). `listen`: the client's
/// address (we dial from its IP; trackers and the DHT hear its port).
pub async fn resolve(
    magnet: &Magnet,
    dir: &Path,
    net: &NetArgs,
    peers: &[SocketAddr],
    listen: SocketAddr,
    dht: Option<DhtHandle>,
) -> Result<(Loaded, Vec<SocketAddr>)> {
    let mut first: Vec<SocketAddr> = peers.to_vec();
    for p in &magnet.peers {
        match p.to_socket_addrs().ok().and_then(|mut a| a.next()) {
            Some(a) => first.push(a),
            None => tracing::warn!("magnet peer `{p}` is not a reachable HOST:PORT; skipped"),
        }
    }
    let path = saved_torrent_path(dir, magnet);
    if let Ok(bytes) = std::fs::read(&path) {
        match Metainfo::from_bytes(&bytes) {
            Ok(meta) if meta.info_hash() == magnet.info_hash => {
                tracing::info!(path = %path.display(), "metadata from the saved .torrent");
                return Ok((Loaded::from_metainfo(&meta), first));
            }
            Ok(_) => tracing::warn!("{} is another torrent's; fetching again", path.display()),
            Err(e) => tracing::warn!("{}: {e}; fetching again", path.display()),
        }
    }
    if first.is_empty() && magnet.trackers.is_empty() && dht.is_none() {
        return Err(bad_input(
            "the magnet link has no tracker (tr=) and no peer (x.pe=), no --peer was given \
             and the DHT is off: nowhere to find the metadata",
        ));
    }
    let fetched = fetch(magnet, net, &first, listen, dht).await?;
    let bytes = torrent_file(&fetched.info, &magnet.trackers);
    let meta = Metainfo::from_bytes(&bytes)
        .map_err(|e| bad_input(format!("the fetched metadata is not a valid torrent: {e}")))?;
    if let Err(e) = save(&path, &bytes) {
        tracing::warn!(
            "cannot save the metadata to {}: {e}; a restart will fetch it again",
            path.display()
        );
    } else {
        tracing::info!(path = %path.display(), "metadata saved");
    }
    first.extend(fetched.peers);
    first.sort();
    first.dedup();
    Ok((Loaded::from_metainfo(&meta), first))
}

async fn fetch(
    magnet: &Magnet,
    net: &NetArgs,
    peers: &[SocketAddr],
    listen: SocketAddr,
    dht: Option<DhtHandle>,
) -> Result<swarm_net::magnet::Fetched> {
    let (tx, mut rx) = watch::channel(FetchStatus::default());
    let job = fetch_metadata(
        MetadataFetch {
            info_hash: magnet.info_hash,
            peers: peers.to_vec(),
            trackers: magnet.trackers.clone(),
            peer_id: swarm_net::new_peer_id(),
            listen,
            dht,
        },
        tx,
    );
    tokio::pin!(job);
    let name = magnet
        .name
        .clone()
        .unwrap_or_else(|| magnet.info_hash.to_hex());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            r = &mut job => {
                if !net.json {
                    eprintln!();
                }
                let fetched = r?;
                tracing::info!(bytes = fetched.info.len(), "metadata fetched and checked against the info-hash");
                return Ok(fetched);
            }
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted while fetching the metadata"),
            _ = sigterm.recv() => anyhow::bail!("terminated while fetching the metadata"),
            _ = tick.tick() => {
                let s = rx.borrow_and_update().clone();
                if net.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "state": "metadata",
                            "info_hash": magnet.info_hash.to_hex(),
                            "metadata_pieces": s.pieces.0,
                            "metadata_pieces_total": s.pieces.1,
                            "peers": s.connected,
                        })
                    );
                } else {
                    eprint!(
                        "\r{}: fetching metadata: {}/{} pieces, {} peers connected ({} have it, {} known)",
                        Escaped(&name),
                        s.pieces.0, s.pieces.1, s.connected, s.sources, s.candidates
                    );
                    let _ = std::io::stderr().flush();
                }
            }
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn save(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = path.with_extension("torrent.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
