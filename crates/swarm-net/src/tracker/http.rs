//! HTTP tracker transport (BEP 3): one GET per announce or scrape, the body
//! read up to a hard limit, then parsed by [`swarm_wire::tracker::http`].

use std::time::Duration;

use swarm_wire::InfoHash;
use swarm_wire::tracker::http as wire_http;
use swarm_wire::tracker::{AnnounceRequest, AnnounceResponse, ScrapeStats};

use super::TrackerError;

/// Longest response body we read. A compact list of 2000 peers is 12 KB;
/// anything near this limit is not a tracker answer.
pub const HTTP_RESPONSE_LEN_MAX: usize = 1024 * 1024;
/// Default time for a whole HTTP request, connect to last byte.
pub const HTTP_TIMEOUT_MS: u64 = 30_000;

/// Builds the shared HTTP client. TLS uses rustls with the *ring* provider
/// (no cmake or C toolchain beyond the C compiler ring needs).
pub(crate) fn build_client(timeout: Duration) -> Result<reqwest::Client, TrackerError> {
    // reqwest is built without a bundled crypto provider: install ring's as
    // the process default, unless the application already installed one.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first: fine either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("swarm/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TrackerError::Http(e.to_string()))
}

pub(crate) async fn announce(
    client: &reqwest::Client,
    announce_url: &str,
    request: &AnnounceRequest,
) -> Result<AnnounceResponse, TrackerError> {
    let url = wire_http::announce_url(announce_url, request);
    let body = get(client, &url).await?;
    Ok(wire_http::parse_announce_response(&body)?)
}

pub(crate) async fn scrape(
    client: &reqwest::Client,
    announce_url: &str,
    info_hash: InfoHash,
) -> Result<ScrapeStats, TrackerError> {
    let url =
        wire_http::scrape_url(announce_url, &[info_hash]).ok_or(TrackerError::ScrapeUnsupported)?;
    let body = get(client, &url).await?;
    Ok(wire_http::parse_scrape_response(&body, &info_hash)?)
}

/// GETs `url` and returns its body, at most [`HTTP_RESPONSE_LEN_MAX`] bytes.
///
/// A non-200 status is still parsed when the body looks bencoded: some
/// trackers send `failure reason` with a 4xx status.
async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, TrackerError> {
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| TrackerError::Http(e.without_url().to_string()))?;
    let status = response.status();
    if let Some(len) = response.content_length()
        && len > HTTP_RESPONSE_LEN_MAX as u64
    {
        return Err(TrackerError::Malformed(format!(
            "response of {len} bytes exceeds {HTTP_RESPONSE_LEN_MAX}"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| TrackerError::Http(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > HTTP_RESPONSE_LEN_MAX {
            return Err(TrackerError::Malformed(format!(
                "response exceeds {HTTP_RESPONSE_LEN_MAX} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() && !body.starts_with(b"d") {
        return Err(TrackerError::Http(format!("HTTP status {status}")));
    }
    Ok(body)
}
