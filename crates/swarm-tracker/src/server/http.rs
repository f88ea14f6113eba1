//! The HTTP front end (BEP 3, 23, 7, 48) on hyper's HTTP/1.1 server,
//! keep-alive on: `/announce`, `/scrape`, `/stats` (JSON), `/metrics`
//! (Prometheus). Tracker errors are bencoded `failure reason`s with status
//! 200, as clients expect; unknown paths are 404.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use swarm_wire::tracker::server::http::{self as codec, AnnounceNumbers, PeerList, ScrapeEntry};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::worker::{ScrapeJob, ScrapeReply, ShardMsg, Worker, shard_of};
use crate::registry::{Announce, SwarmCounts};

pub(super) async fn serve(worker: Rc<Worker>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: pause, then go on.
                tracing::warn!("tracker: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let w = worker.clone();
        tokio::task::spawn_local(async move {
            let service = service_fn(move |req| {
                let w = w.clone();
                async move { Ok::<_, Infallible>(w.http_request(peer, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

fn bencoded(body: Vec<u8>) -> Response<Full<Bytes>> {
    response(StatusCode::OK, "text/plain", body)
}

fn failure(reason: &str) -> Response<Full<Bytes>> {
    let mut body = Vec::with_capacity(32 + reason.len());
    codec::encode_failure(reason, &mut body);
    bencoded(body)
}

/// The client's address from the trusted proxy header: its last entry.
fn real_ip(headers: &HeaderMap, name: &str) -> Option<IpAddr> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

impl Worker {
    async fn http_request(
        &self,
        peer: SocketAddr,
        req: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        let query = req.uri().query().unwrap_or("").as_bytes();
        match req.uri().path() {
            "/announce" => self.http_announce(peer, req.headers(), query).await,
            "/scrape" => self.http_scrape(query).await,
            "/stats" => self.http_stats(false),
            "/metrics" => self.http_stats(true),
            _ => response(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }

    fn http_stats(&self, prometheus: bool) -> Response<Full<Bytes>> {
        // Summed over every worker's published numbers.
        let counters = super::Counters::sum(self.published.iter().map(|p| &**p));
        let uptime = self.started.elapsed().as_secs();
        if prometheus {
            response(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                counters.to_prometheus(uptime).into_bytes(),
            )
        } else {
            let bound = self.state.borrow().registry.config().memory_bound_bytes() as u64
                * self.shards as u64;
            response(
                StatusCode::OK,
                "application/json",
                counters.to_json(uptime, self.shards, bound).into_bytes(),
            )
        }
    }

    async fn http_announce(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        query: &[u8],
    ) -> Response<Full<Bytes>> {
        let ip = match &self.real_ip_header {
            None => peer.ip(),
            Some(name) => match real_ip(headers, name) {
                Some(ip) => ip,
                None => {
                    self.state.borrow_mut().counters.http_errors += 1;
                    return failure(&format!("missing or invalid {name} header"));
                }
            },
        };
        let parsed = match codec::parse_announce_query(query) {
            Ok(p) => p,
            Err(e) => {
                self.state.borrow_mut().counters.http_errors += 1;
                return failure(&e.to_string());
            }
        };
        let info_hash = parsed.request.info_hash;
        let refusal = self.state.borrow().access.refusal(&info_hash);
        if let Some(reason) = refusal {
            self.state.borrow_mut().counters.refused += 1;
            return failure(reason);
        }
        let announce = Announce {
            info_hash,
            peer_id: parsed.request.peer_id,
            addr: SocketAddr::new(ip, parsed.request.port),
            left: parsed.request.left,
            event: parsed.request.event,
            numwant: parsed.request.numwant,
        };
        let with_peer_ids = !parsed.compact && !parsed.no_peer_id;
        self.state.borrow_mut().counters.http_announces += 1;
        let shard = shard_of(&info_hash, self.shards);
        let result = if shard == self.index {
            self.announce_local(self.now(), &announce, with_peer_ids)
        } else {
            let (tx, rx) = oneshot::channel();
            let msg = ShardMsg::HttpAnnounce {
                announce,
                with_peer_ids,
                reply: tx,
            };
            if self.inboxes[shard].send(msg).await.is_err() {
                return failure("tracker shutting down");
            }
            match rx.await {
                Ok(r) => r,
                Err(_) => return failure("tracker shutting down"),
            }
        };
        let (reply, peers) = match result {
            Ok(r) => r,
            Err(refusal) => return failure(&refusal.to_string()),
        };
        let numbers = AnnounceNumbers {
            interval: reply.interval_s,
            min_interval: reply.min_interval_s,
            complete: reply.complete,
            incomplete: reply.incomplete,
            downloaded: reply.downloaded,
        };
        let ids: Vec<[u8; 20]>;
        let list = if parsed.compact {
            PeerList::Compact {
                v6: peers.is_v6(),
                records: peers.compact(),
            }
        } else {
            ids = peers.peer_ids().iter().map(|p| p.0).collect();
            PeerList::Dictionary {
                v6: peers.is_v6(),
                records: peers.compact(),
                peer_ids: with_peer_ids.then_some(&ids[..]),
            }
        };
        let mut body = Vec::with_capacity(128 + peers.compact().len());
        codec::encode_announce_response(&numbers, list, &mut body);
        bencoded(body)
    }

    async fn http_scrape(&self, query: &[u8]) -> Response<Full<Bytes>> {
        let hashes = match codec::parse_scrape_query(query) {
            Ok(h) => h,
            Err(e) => {
                self.state.borrow_mut().counters.http_errors += 1;
                return failure(&e.to_string());
            }
        };
        self.state.borrow_mut().counters.http_scrapes += 1;
        let (tx, rx) = oneshot::channel();
        let counts = vec![SwarmCounts::default(); hashes.len()];
        self.scrape_step(ScrapeJob {
            origin: self.index,
            hashes,
            counts,
            reply: ScrapeReply::Http(tx),
        });
        let Ok(done) = rx.await else {
            return failure("tracker busy, try again");
        };
        let entries: Vec<ScrapeEntry> = done
            .into_iter()
            .map(|(info_hash, c)| ScrapeEntry {
                info_hash,
                complete: c.complete,
                downloaded: c.downloaded,
                incomplete: c.incomplete,
            })
            .collect();
        let mut body = Vec::with_capacity(16 + 80 * entries.len());
        codec::encode_scrape_response(&entries, &mut body);
        bencoded(body)
    }
}
