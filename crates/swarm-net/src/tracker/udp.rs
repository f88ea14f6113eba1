//! UDP tracker transport (BEP 15): connection ids, retransmission, matching
//! responses to requests. The packet formats live in
//! [`swarm_wire::tracker::udp`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;
use swarm_wire::InfoHash;
use swarm_wire::tracker::udp::{
    self as wire_udp, ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_SCRAPE, PACKET_LEN_MAX, Request,
    Response,
};
use swarm_wire::tracker::{AnnounceRequest, AnnounceResponse, ScrapeStats};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::TrackerError;

/// How long a connection id stays valid (BEP 15: one minute). We stop using
/// it a little earlier so a request in flight does not arrive with a dead id.
pub const CONNECTION_ID_LIFETIME_MS: u64 = 60_000;
const CONNECTION_ID_MARGIN_MS: u64 = 5_000;
/// First response timeout (BEP 15: 15 s); attempt n waits `base · 2^n`.
pub const UDP_TIMEOUT_BASE_MS: u64 = 15_000;
/// Last retransmission exponent (BEP 15: n up to 8, i.e. 3840 s for the last wait).
pub const UDP_RETRANSMIT_EXPONENT_MAX: u32 = 8;

/// Retransmission schedule: wait `base_timeout · 2^n` for n = 0..=`exponent_max`.
#[derive(Clone, Copy, Debug)]
pub struct UdpRetry {
    pub base_timeout: Duration,
    pub exponent_max: u32,
}

impl Default for UdpRetry {
    fn default() -> Self {
        UdpRetry {
            base_timeout: Duration::from_millis(UDP_TIMEOUT_BASE_MS),
            exponent_max: UDP_RETRANSMIT_EXPONENT_MAX,
        }
    }
}

/// One UDP tracker: its address, socket and current connection id.
#[derive(Debug)]
pub(crate) struct UdpTracker {
    host: String,
    port: u16,
    addr: Option<SocketAddr>,
    socket: Option<UdpSocket>,
    connection: Option<(u64, Instant)>,
}

impl UdpTracker {
    pub(crate) fn new(host: String, port: u16) -> Self {
        UdpTracker {
            host,
            port,
            addr: None,
            socket: None,
            connection: None,
        }
    }

    pub(crate) async fn announce(
        &mut self,
        request: &AnnounceRequest,
        retry: UdpRetry,
        local_ip: Option<IpAddr>,
        rng: &mut StdRng,
    ) -> Result<AnnounceResponse, TrackerError> {
        let is_v6 = self.ensure_socket(local_ip).await?.is_ipv6();
        let response = self
            .transact(
                retry,
                rng,
                ACTION_ANNOUNCE,
                |connection_id, transaction_id| {
                    Request::Announce {
                        connection_id,
                        transaction_id,
                        request,
                    }
                    .to_bytes()
                },
                is_v6,
            )
            .await?;
        match response {
            Response::Announce { response, .. } => Ok(response),
            other => Err(TrackerError::Malformed(format!("unexpected {other:?}"))),
        }
    }

    pub(crate) async fn scrape(
        &mut self,
        info_hash: InfoHash,
        retry: UdpRetry,
        local_ip: Option<IpAddr>,
        rng: &mut StdRng,
    ) -> Result<ScrapeStats, TrackerError> {
        let is_v6 = self.ensure_socket(local_ip).await?.is_ipv6();
        let hashes = [info_hash];
        let response = self
            .transact(
                retry,
                rng,
                ACTION_SCRAPE,
                |connection_id, transaction_id| {
                    Request::Scrape {
                        connection_id,
                        transaction_id,
                        info_hashes: &hashes,
                    }
                    .to_bytes()
                },
                is_v6,
            )
            .await?;
        match response {
            Response::Scrape { stats, .. } if stats.len() == 1 => Ok(stats[0]),
            Response::Scrape { stats, .. } => Err(TrackerError::Malformed(format!(
                "scrape of 1 torrent answered with {} records",
                stats.len()
            ))),
            other => Err(TrackerError::Malformed(format!("unexpected {other:?}"))),
        }
    }

    /// Resolves the tracker and binds a socket of the same family, once:
    /// on `local_ip` if it can reach the tracker from there.
    async fn ensure_socket(
        &mut self,
        local_ip: Option<IpAddr>,
    ) -> Result<SocketAddr, TrackerError> {
        if let (Some(addr), Some(_)) = (self.addr, &self.socket) {
            return Ok(addr);
        }
        let addr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| TrackerError::Resolve(format!("{}: {e}", self.host)))?
            .next()
            .ok_or_else(|| TrackerError::Resolve(format!("{}: no address", self.host)))?;
        let local = local_ip.filter(|ip| {
            ip.is_ipv4() == addr.is_ipv4() && (!ip.is_loopback() || addr.ip().is_loopback())
        });
        let bind: SocketAddr = if let Some(ip) = local {
            (ip, 0).into()
        } else if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind).await.map_err(TrackerError::Io)?;
        socket.connect(addr).await.map_err(TrackerError::Io)?;
        self.addr = Some(addr);
        self.socket = Some(socket);
        Ok(addr)
    }

    fn valid_connection_id(&self) -> Option<u64> {
        let (id, since) = self.connection?;
        let lifetime = Duration::from_millis(CONNECTION_ID_LIFETIME_MS - CONNECTION_ID_MARGIN_MS);
        (since.elapsed() < lifetime).then_some(id)
    }

    /// Sends the request built by `build(connection_id, transaction_id)`
    /// until a matching response arrives, connecting first when the
    /// connection id is missing or expired. Attempt n (connect and request
    /// share the counter) waits `base · 2^n`; after `exponent_max` it gives up.
    async fn transact(
        &mut self,
        retry: UdpRetry,
        rng: &mut StdRng,
        action: u32,
        build: impl Fn(u64, u32) -> Vec<u8>,
        is_v6: bool,
    ) -> Result<Response, TrackerError> {
        let mut n = 0u32;
        loop {
            let timeout = retry.base_timeout.saturating_mul(1u32 << n.min(31));
            let transaction_id: u32 = rng.random();
            let (packet, expected) = match self.valid_connection_id() {
                Some(connection_id) => (build(connection_id, transaction_id), action),
                None => (
                    Request::Connect { transaction_id }.to_bytes(),
                    ACTION_CONNECT,
                ),
            };
            match self
                .exchange(&packet, transaction_id, expected, timeout, is_v6)
                .await?
            {
                Some(Response::Connect { connection_id, .. }) => {
                    // Connected: send the real request at once, same n.
                    self.connection = Some((connection_id, Instant::now()));
                    continue;
                }
                Some(response) => return Ok(response),
                None => {
                    tracing::debug!(host = %self.host, n, "udp tracker: no response, retransmitting");
                    if n >= retry.exponent_max {
                        return Err(TrackerError::Timeout);
                    }
                    n += 1;
                }
            }
        }
    }

    /// Sends one packet and waits up to `timeout` for the response with
    /// `transaction_id`. Late answers to earlier attempts (other transaction
    /// ids) and garbage are ignored; an error packet for this transaction
    /// fails the request. `Ok(None)`: timed out.
    async fn exchange(
        &mut self,
        packet: &[u8],
        transaction_id: u32,
        action: u32,
        timeout: Duration,
        is_v6: bool,
    ) -> Result<Option<Response>, TrackerError> {
        let socket = self.socket.as_ref().ok_or(TrackerError::Timeout)?;
        socket.send(packet).await.map_err(TrackerError::Io)?;
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; PACKET_LEN_MAX];
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await;
            let len = match received {
                Err(_elapsed) => return Ok(None),
                // ICMP port unreachable surfaces as an error on a connected
                // socket: the tracker is not there; treat like a lost packet.
                Ok(Err(e)) => {
                    tracing::debug!(host = %self.host, error = %e, "udp tracker recv");
                    tokio::time::sleep_until(deadline).await;
                    return Ok(None);
                }
                Ok(Ok(len)) => len,
            };
            let response = match Response::parse(&buf[..len], is_v6) {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(host = %self.host, error = %e, "udp tracker: ignoring packet");
                    continue;
                }
            };
            if response.transaction_id() != transaction_id {
                continue;
            }
            return wire_udp::expect_action(response, transaction_id, action)
                .map(Some)
                .map_err(TrackerError::from);
        }
    }
}
