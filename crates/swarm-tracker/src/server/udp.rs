//! The UDP front end (BEP 15): read bursts of datagrams, answer what this
//! shard owns, forward the rest in one batch per shard.
//!
//! A datagram that is not a request is answered with an error when it
//! carries a transaction id and dropped otherwise; an announce or scrape
//! with a forged or expired connection id gets an error. Nothing panics and
//! nothing reaches the registry before it is checked.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;

use swarm_engine::Instant;
use swarm_wire::metainfo::InfoHash;
use swarm_wire::tracker::server::udp::{self as codec, UdpRequest};
use tokio::net::UdpSocket;

use super::UDP_BATCH_MAX;
use super::worker::{ScrapeJob, ScrapeReply, ShardMsg, UdpJob, Worker, shard_of};
use crate::registry::{Announce, SwarmCounts};

/// Longest datagram read; longer ones are cut (and then usually refused).
const DATAGRAM_LEN_MAX: usize = 2048;

pub(super) async fn serve(worker: Rc<Worker>, sock: Rc<UdpSocket>) {
    let mut buf = vec![0u8; DATAGRAM_LEN_MAX];
    let mut out = Vec::with_capacity(4096);
    let mut forward: Vec<Vec<UdpJob>> = (0..worker.shards).map(|_| Vec::new()).collect();
    loop {
        if sock.readable().await.is_err() {
            tokio::task::yield_now().await;
            continue;
        }
        let now = worker.now();
        for _ in 0..UDP_BATCH_MAX {
            match sock.try_recv_from(&mut buf) {
                Ok((n, src)) => worker.udp_datagram(now, &buf[..n], src, &mut out, &mut forward),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // ICMP errors of earlier sends surface here: not ours to act on.
                Err(_) => continue,
            }
        }
        for (shard, jobs) in forward.iter_mut().enumerate() {
            if jobs.is_empty() {
                continue;
            }
            let batch = std::mem::take(jobs);
            let n = batch.len() as u64;
            if worker.inboxes[shard]
                .try_send(ShardMsg::Udp(batch))
                .is_err()
            {
                worker.state.borrow_mut().counters.udp_dropped += n;
            }
        }
        tokio::task::yield_now().await;
    }
}

impl Worker {
    fn udp_datagram(
        &self,
        now: Instant,
        packet: &[u8],
        src: SocketAddr,
        out: &mut Vec<u8>,
        forward: &mut [Vec<UdpJob>],
    ) {
        out.clear();
        let now_s = now.0 / 1_000_000;
        let request = match codec::parse_request(packet) {
            Ok(r) => r,
            Err(e) => {
                self.state.borrow_mut().counters.udp_errors += 1;
                if let Some(tid) = e.transaction_id {
                    codec::write_error(out, tid, &e.kind.to_string());
                    self.udp_send(out, src);
                }
                return;
            }
        };
        match request {
            UdpRequest::Connect { transaction_id } => {
                self.state.borrow_mut().counters.udp_connects += 1;
                codec::write_connect(out, transaction_id, self.conn_ids.make(src.ip(), now_s));
                self.udp_send(out, src);
            }
            UdpRequest::Announce {
                connection_id,
                transaction_id,
                request,
            } => {
                if !self.udp_admit(
                    connection_id,
                    transaction_id,
                    src,
                    now_s,
                    &request.info_hash,
                    out,
                ) {
                    return;
                }
                let job = UdpJob {
                    src,
                    transaction_id,
                    announce: Announce {
                        info_hash: request.info_hash,
                        peer_id: request.peer_id,
                        addr: SocketAddr::new(src.ip(), request.port),
                        left: request.left,
                        event: request.event,
                        numwant: request.numwant,
                    },
                };
                let shard = shard_of(&job.announce.info_hash, self.shards);
                if shard == self.index {
                    self.udp_announce(now, &job, out);
                    self.udp_send(out, src);
                } else {
                    forward[shard].push(job);
                }
            }
            UdpRequest::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                if !self.conn_ids.is_valid(connection_id, src.ip(), now_s) {
                    self.refuse_connection_id(transaction_id, src, out);
                    return;
                }
                let hashes: Vec<InfoHash> = info_hashes.iter().collect();
                let counts = vec![SwarmCounts::default(); hashes.len()];
                self.scrape_step(ScrapeJob {
                    origin: self.index,
                    hashes,
                    counts,
                    reply: ScrapeReply::Udp {
                        src,
                        transaction_id,
                    },
                });
            }
        }
    }

    fn refuse_connection_id(&self, transaction_id: u32, src: SocketAddr, out: &mut Vec<u8>) {
        self.state.borrow_mut().counters.udp_errors += 1;
        codec::write_error(out, transaction_id, "invalid or expired connection id");
        self.udp_send(out, src);
    }

    /// Checks the connection id and the access list; answers the error itself.
    fn udp_admit(
        &self,
        connection_id: u64,
        transaction_id: u32,
        src: SocketAddr,
        now_s: u64,
        info_hash: &InfoHash,
        out: &mut Vec<u8>,
    ) -> bool {
        if !self.conn_ids.is_valid(connection_id, src.ip(), now_s) {
            self.refuse_connection_id(transaction_id, src, out);
            return false;
        }
        let refusal = self.state.borrow().access.refusal(info_hash);
        if let Some(reason) = refusal {
            self.state.borrow_mut().counters.refused += 1;
            codec::write_error(out, transaction_id, reason);
            self.udp_send(out, src);
            return false;
        }
        true
    }

    /// Announces into this shard and writes the response datagram.
    pub(super) fn udp_announce(&self, now: Instant, job: &UdpJob, out: &mut Vec<u8>) {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        st.counters.udp_announces += 1;
        st.peers.set_with_peer_ids(false);
        match st.registry.announce(now, &job.announce, &mut st.peers) {
            Ok(r) => codec::write_announce(
                out,
                job.transaction_id,
                r.interval_s,
                r.incomplete,
                r.complete,
                st.peers.compact(),
            ),
            Err(refusal) => {
                st.counters.refused += 1;
                codec::write_error(out, job.transaction_id, &refusal.to_string());
            }
        }
    }
}
