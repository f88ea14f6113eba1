//! Tracker client: announces a torrent to its trackers over HTTP (BEP 3,
//! BEP 23) and UDP (BEP 15), walking the announce-list tiers of BEP 12.
//!
//! Shape: a small state (tiers in their current order, connection ids,
//! tracker ids, the last interval) plus one async [`TrackerClient::announce`]
//! that the session driver awaits on its own schedule, asking
//! [`TrackerClient::next_announce_in`] when the next regular announce is due.
//! The client spawns no task and owns no timer; a caller that cannot wait
//! long (the `stopped` announce at exit) wraps the call in a timeout.
//!
//! Tier order (BEP 12): each tier is shuffled once, with a seeded RNG so a run
//! can be replayed; trackers are tried tier by tier, in order, and one that
//! answers moves to the front of its tier so it is tried first next time.

use std::net::IpAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use swarm_wire::text::Escaped;
use swarm_wire::tracker::{
    AnnounceRequest, AnnounceResponse, Event, ScrapeStats, TrackerResponseError,
};
use swarm_wire::{InfoHash, PeerId};
use tokio::time::Instant;

use crate::status::TrackerStatus;

mod http;
mod udp;

pub use http::{
    HTTP_REDIRECTS_MAX, HTTP_RESPONSE_LEN_MAX, HTTP_TIMEOUT_MS, is_local_host, redirect_allowed,
};
pub use udp::{
    CONNECTION_ID_LIFETIME_MS, UDP_RETRANSMIT_EXPONENT_MAX, UDP_TIMEOUT_BASE_MS, UdpRetry,
};

/// Shortest re-announce interval we accept from a tracker, in seconds: a
/// tracker saying 0 must not make us hammer it.
pub const ANNOUNCE_INTERVAL_MIN_S: u32 = 10;
/// Longest interval we honour, in seconds (one day).
pub const ANNOUNCE_INTERVAL_MAX_S: u32 = 24 * 3600;
/// Interval used when a tracker sends none, in seconds.
pub const ANNOUNCE_INTERVAL_DEFAULT_S: u32 = 1800;
/// After every tracker failed, retry after this many seconds, doubled per
/// further failure up to [`ANNOUNCE_RETRY_MAX_S`].
pub const ANNOUNCE_RETRY_BASE_S: u64 = 30;
pub const ANNOUNCE_RETRY_MAX_S: u64 = 1800;
/// Trackers kept from a torrent's announce-list, over all tiers.
pub const TRACKERS_MAX: usize = 100;

/// What to do about a failed announce or scrape.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// The torrent lists no tracker we can speak to.
    #[error("no usable tracker")]
    NoTrackers,
    /// A regular announce before the tracker's `min interval` passed: wait.
    #[error("announce too soon: wait {wait:?} (tracker's min interval)")]
    TooSoon { wait: Duration },
    /// Every tracker of every tier failed; the errors in the order tried.
    #[error("all {} trackers failed; last: {}", .0.len(), .0.last().map_or(String::new(), |(u, e)| format!("{}: {e}", Escaped(u))))]
    AllFailed(Vec<(String, TrackerError)>),
    /// The tracker refused (`failure reason`, BEP 15 error): try another.
    /// The tracker's text, shown escaped (it is remote input).
    #[error("tracker failure: {}", Escaped(.0))]
    Failure(String),
    /// The tracker answered bytes the protocol does not allow.
    #[error("malformed tracker response: {0}")]
    Malformed(String),
    /// No answer after all retransmissions (UDP) or the request timeout (HTTP).
    #[error("tracker did not answer in time")]
    Timeout,
    #[error("cannot resolve tracker {0}")]
    Resolve(String),
    #[error("http: {0}")]
    Http(String),
    #[error("tracker has no scrape URL")]
    ScrapeUnsupported,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<TrackerResponseError> for TrackerError {
    fn from(e: TrackerResponseError) -> Self {
        match e {
            TrackerResponseError::Failure(why) => TrackerError::Failure(why),
            TrackerResponseError::Malformed(why) => TrackerError::Malformed(why),
        }
    }
}

/// Knobs of the tracker client; `Default` follows the BEPs.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// UDP retransmission schedule (BEP 15: 15 s · 2^n, n ≤ 8). Tests shorten it.
    pub udp_retry: UdpRetry,
    /// Whole-request timeout for HTTP trackers.
    pub http_timeout: Duration,
    /// Peers to ask for; `None` lets the tracker choose.
    pub numwant: Option<u32>,
    /// Seeds the tier shuffle, the announce `key` and UDP transaction ids.
    pub rng_seed: u64,
    /// Announce from this local IP (HTTP and UDP), so a tracker sees the
    /// address we listen on; `None`: the kernel chooses. Ignored for a
    /// tracker it cannot reach (another family, or loopback to a
    /// non-loopback tracker).
    pub local_ip: Option<IpAddr>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            udp_retry: UdpRetry::default(),
            http_timeout: Duration::from_millis(HTTP_TIMEOUT_MS),
            numwant: None,
            rng_seed: 0,
            local_ip: None,
        }
    }
}

/// Byte counts reported in an announce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnnounceStats {
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
}

enum Transport {
    Http,
    Udp(udp::UdpTracker),
}

struct Tracker {
    url: String,
    /// Its tier in the announce-list as given (tiers keep their order).
    tier: usize,
    transport: Transport,
    /// `tracker id` from this tracker's last response, sent back as `trackerid`.
    tracker_id: Option<Vec<u8>>,
    /// Its last announce (none before the first): what the user sees.
    last: Option<TrackerStatus>,
}

impl Tracker {
    /// `None` for URLs we cannot announce to (wss, unknown schemes, bad URLs).
    fn parse(url: &str, tier: usize) -> Option<Tracker> {
        let parsed = url::Url::parse(url).ok()?;
        let transport = match parsed.scheme() {
            "http" | "https" => Transport::Http,
            "udp" => {
                let host = parsed.host_str()?;
                // IPv6 literals come bracketed in URLs; lookup wants them bare.
                let host = host.trim_start_matches('[').trim_end_matches(']');
                Transport::Udp(udp::UdpTracker::new(host.to_owned(), parsed.port()?))
            }
            _ => return None,
        };
        Some(Tracker {
            url: url.to_owned(),
            tier,
            transport,
            tracker_id: None,
            last: None,
        })
    }
}

/// Announces one torrent to its trackers. See the module docs.
pub struct TrackerClient {
    tiers: Vec<Vec<Tracker>>,
    info_hash: InfoHash,
    peer_id: PeerId,
    port: u16,
    key: u32,
    config: TrackerConfig,
    rng: StdRng,
    http: Option<reqwest::Client>,
    /// Interval and min interval of the last successful announce.
    interval: Duration,
    min_interval: Option<Duration>,
    last_success: Option<Instant>,
    last_attempt: Option<Instant>,
    failures_in_a_row: u32,
    stopped: bool,
}

impl TrackerClient {
    /// `tiers`: the announce-list (BEP 12), or `[[announce]]`. Unusable URLs
    /// are dropped with a log line; empty tiers vanish.
    pub fn new(tiers: Vec<Vec<String>>, info_hash: InfoHash, peer_id: PeerId, port: u16) -> Self {
        Self::with_config(tiers, info_hash, peer_id, port, TrackerConfig::default())
    }

    pub fn with_config(
        tiers: Vec<Vec<String>>,
        info_hash: InfoHash,
        peer_id: PeerId,
        port: u16,
        config: TrackerConfig,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(config.rng_seed);
        let mut kept = 0usize;
        let tiers: Vec<Vec<Tracker>> = tiers
            .iter()
            .enumerate()
            .map(|(tier_index, tier)| {
                let mut trackers: Vec<Tracker> = tier
                    .iter()
                    .filter_map(|url| {
                        let t = Tracker::parse(url, tier_index);
                        if t.is_none() {
                            tracing::info!(%url, "tracker URL not usable; skipped");
                        }
                        t
                    })
                    .filter(|_| {
                        kept += 1;
                        kept <= TRACKERS_MAX
                    })
                    .collect();
                trackers.shuffle(&mut rng);
                trackers
            })
            .filter(|tier| !tier.is_empty())
            .collect();
        let key = rng.random();
        TrackerClient {
            tiers,
            info_hash,
            peer_id,
            port,
            key,
            config,
            rng,
            http: None,
            interval: Duration::from_secs(ANNOUNCE_INTERVAL_DEFAULT_S.into()),
            min_interval: None,
            last_success: None,
            last_attempt: None,
            failures_in_a_row: 0,
            stopped: false,
        }
    }

    /// Each tracker's last announce (those never announced to left out),
    /// in the order they will be tried next.
    pub fn statuses(&self) -> Vec<TrackerStatus> {
        let next = self.next_announce_in().map(|d| now_unix() + d.as_secs());
        self.tiers
            .iter()
            .flatten()
            .filter_map(|t| {
                let mut s = t.last.clone()?;
                s.next_announce_unix = next;
                Some(s)
            })
            .collect()
    }

    /// The tiers' URLs in the order they will be tried next.
    pub fn tiers(&self) -> Vec<Vec<String>> {
        self.tiers
            .iter()
            .map(|tier| tier.iter().map(|t| t.url.clone()).collect())
            .collect()
    }

    /// How long until the next regular announce is due: `Duration::ZERO`
    /// before the first one, the tracker's interval after a success, a
    /// growing back-off after failures, `None` after `stopped`.
    pub fn next_announce_in(&self) -> Option<Duration> {
        if self.stopped {
            return None;
        }
        let now = Instant::now();
        let due = if self.failures_in_a_row > 0 {
            let exp = (self.failures_in_a_row - 1).min(16);
            let backoff = (ANNOUNCE_RETRY_BASE_S << exp).min(ANNOUNCE_RETRY_MAX_S);
            self.last_attempt? + Duration::from_secs(backoff)
        } else {
            let last = self.last_success?;
            last + self.interval.max(self.min_interval.unwrap_or_default())
        };
        Some(due.saturating_duration_since(now))
    }

    /// Announces `event` with `stats`, trying the tiers in BEP 12 order, and
    /// returns the first tracker's answer.
    ///
    /// A regular announce (`Event::None`) sooner than the last tracker's
    /// `min interval` is refused with [`TrackerError::TooSoon`]; events
    /// (started, completed, stopped) always go out.
    pub async fn announce(
        &mut self,
        event: Event,
        stats: AnnounceStats,
    ) -> Result<AnnounceResponse, TrackerError> {
        if self.tiers.is_empty() {
            return Err(TrackerError::NoTrackers);
        }
        if event == Event::None
            && let (Some(last), Some(min)) = (self.last_success, self.min_interval)
        {
            let since = last.elapsed();
            if since < min {
                return Err(TrackerError::TooSoon { wait: min - since });
            }
        }
        if self.http.is_none() && self.has_http_tracker() {
            self.http = Some(http::build_client(
                self.config.http_timeout,
                self.http_local_ip(),
            )?);
        }
        let mut request = AnnounceRequest {
            info_hash: self.info_hash,
            peer_id: self.peer_id,
            port: self.port,
            uploaded: stats.uploaded,
            downloaded: stats.downloaded,
            left: stats.left,
            event,
            numwant: self.config.numwant,
            key: self.key,
            tracker_id: None,
        };
        self.last_attempt = Some(Instant::now());
        let mut errors = Vec::new();
        for tier in 0..self.tiers.len() {
            for i in 0..self.tiers[tier].len() {
                let tracker = &mut self.tiers[tier][i];
                request.tracker_id.clone_from(&tracker.tracker_id);
                let result = match &mut tracker.transport {
                    Transport::Http => {
                        let client = self.http.as_ref().ok_or(TrackerError::NoTrackers)?;
                        http::announce(client, &tracker.url, &request).await
                    }
                    Transport::Udp(udp) => {
                        udp.announce(
                            &request,
                            self.config.udp_retry,
                            self.config.local_ip,
                            &mut self.rng,
                        )
                        .await
                    }
                };
                tracker.last = Some(outcome(&tracker.url, tracker.tier, &result));
                match result {
                    Ok(response) => {
                        if let Some(id) = &response.tracker_id {
                            tracker.tracker_id = Some(id.clone());
                        }
                        tracing::debug!(url = %Escaped(&tracker.url), peers = response.peers.len(), ?event, "announced");
                        if let Some(warning) = &response.warning {
                            tracing::warn!(url = %Escaped(&tracker.url), warning = %Escaped(warning), "tracker warning");
                        }
                        // BEP 12: a tracker that answers moves to the front of its tier.
                        let working = self.tiers[tier].remove(i);
                        self.tiers[tier].insert(0, working);
                        self.record_success(event, &response);
                        return Ok(response);
                    }
                    Err(e) => {
                        tracing::info!(url = %Escaped(&tracker.url), error = %e, ?event, "announce failed");
                        errors.push((tracker.url.clone(), e));
                    }
                }
            }
        }
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        Err(TrackerError::AllFailed(errors))
    }

    /// Scrapes the torrent's counts from the first tracker (in tier order)
    /// that answers. Does not reorder the tiers.
    pub async fn scrape(&mut self) -> Result<ScrapeStats, TrackerError> {
        if self.tiers.is_empty() {
            return Err(TrackerError::NoTrackers);
        }
        if self.http.is_none() && self.has_http_tracker() {
            self.http = Some(http::build_client(
                self.config.http_timeout,
                self.http_local_ip(),
            )?);
        }
        let mut errors = Vec::new();
        for tracker in self.tiers.iter_mut().flatten() {
            let result = match &mut tracker.transport {
                Transport::Http => {
                    let client = self.http.as_ref().ok_or(TrackerError::NoTrackers)?;
                    http::scrape(client, &tracker.url, self.info_hash).await
                }
                Transport::Udp(udp) => {
                    udp.scrape(
                        self.info_hash,
                        self.config.udp_retry,
                        self.config.local_ip,
                        &mut self.rng,
                    )
                    .await
                }
            };
            match result {
                Ok(stats) => return Ok(stats),
                Err(e) => errors.push((tracker.url.clone(), e)),
            }
        }
        Err(TrackerError::AllFailed(errors))
    }

    /// `local_ip` for the HTTP client (one for all trackers): a loopback IP
    /// only if every HTTP tracker is on loopback (it could reach no other).
    fn http_local_ip(&self) -> Option<IpAddr> {
        let ip = self.config.local_ip?;
        let all_loopback = || {
            self.tiers
                .iter()
                .flatten()
                .filter(|t| matches!(t.transport, Transport::Http))
                .all(|t| {
                    url::Url::parse(&t.url)
                        .ok()
                        .and_then(|u| u.host().map(|h| h.to_owned()))
                        .is_some_and(|h| match h {
                            url::Host::Ipv4(a) => a.is_loopback() && ip.is_ipv4(),
                            url::Host::Ipv6(a) => a.is_loopback() && ip.is_ipv6(),
                            url::Host::Domain(d) => d == "localhost" && ip.is_ipv4(),
                        })
                })
        };
        (!ip.is_loopback() || all_loopback()).then_some(ip)
    }

    fn has_http_tracker(&self) -> bool {
        self.tiers
            .iter()
            .flatten()
            .any(|t| matches!(t.transport, Transport::Http))
    }

    fn record_success(&mut self, event: Event, response: &AnnounceResponse) {
        let interval = if response.interval == 0 {
            ANNOUNCE_INTERVAL_DEFAULT_S
        } else {
            response.interval
        };
        let clamp = |s: u32| s.clamp(ANNOUNCE_INTERVAL_MIN_S, ANNOUNCE_INTERVAL_MAX_S);
        self.interval = Duration::from_secs(clamp(interval).into());
        self.min_interval = response
            .min_interval
            .map(|s| Duration::from_secs(s.min(ANNOUNCE_INTERVAL_MAX_S).into()));
        self.last_success = Some(Instant::now());
        self.failures_in_a_row = 0;
        self.stopped = event == Event::Stopped;
    }
}

/// Seconds since the Unix epoch (what the user's tracker times are in).
fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the user sees of one tracker's announce `result`.
fn outcome(
    url: &str,
    tier: usize,
    result: &Result<AnnounceResponse, TrackerError>,
) -> TrackerStatus {
    let mut s = TrackerStatus {
        url: url.to_owned(),
        tier,
        last_announce_unix: now_unix(),
        ..TrackerStatus::default()
    };
    match result {
        Ok(r) => {
            s.last_announce_succeeded = true;
            s.last_announce_result = "Success".to_owned();
            s.last_announce_peers = r.peers.len() as u32;
            (s.seeders, s.leechers) = (r.complete, r.incomplete);
        }
        Err(e) => {
            s.last_announce_result = e.to_string();
            s.last_announce_timed_out = matches!(e, TrackerError::Timeout);
        }
    }
    s
}
