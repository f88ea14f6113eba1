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
/// Redirects followed per request (reqwest's default is 10, libtorrent's 5).
pub const HTTP_REDIRECTS_MAX: usize = 3;

/// Builds the shared HTTP client. TLS uses rustls with the *ring* provider
/// (no cmake or C toolchain beyond the C compiler ring needs).
/// `local_ip`: the address to connect from (`None`: the kernel chooses).
pub(crate) fn build_client(
    timeout: Duration,
    local_ip: Option<std::net::IpAddr>,
) -> Result<reqwest::Client, TrackerError> {
    // reqwest is built without a bundled crypto provider: install ring's as
    // the process default, unless the application already installed one.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first: fine either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .timeout(timeout)
        .local_address(local_ip)
        .user_agent(concat!("swarm/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let from = attempt.previous().first().cloned();
            if attempt.previous().len() > HTTP_REDIRECTS_MAX {
                attempt.error(format!("more than {HTTP_REDIRECTS_MAX} redirects"))
            } else if let Some(from) = from
                && !redirect_allowed(&from, attempt.url())
            {
                let to = attempt.url().host_str().unwrap_or("").to_owned();
                attempt.error(format!(
                    "redirect from a public tracker to the local address {to} refused"
                ))
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| TrackerError::Http(describe(e)))
}

/// libtorrent's SSRF rule: a tracker at a public address may not redirect
/// us to a loopback, private or link-local one (a torrent would otherwise
/// make us GET `http://127.0.0.1:PORT/admin?...` or a router's page). A
/// tracker that is itself local may redirect anywhere. Only literal
/// addresses and `localhost` are recognised: a public name that resolves
/// to a private address is not caught here.
pub fn redirect_allowed(from: &url::Url, to: &url::Url) -> bool {
    let local = |u: &url::Url| u.host().is_some_and(|h| is_local_host(&h));
    local(from) || !local(to)
}

/// Loopback, private (RFC 1918, RFC 4193), link-local, unspecified,
/// shared-address (RFC 6598) addresses and `localhost`.
pub fn is_local_host(host: &url::Host<&str>) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    let v4 = |ip: Ipv4Addr| {
        ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64)
    };
    let ip = match host {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            return d == "localhost" || d.ends_with(".localhost");
        }
        url::Host::Ipv4(ip) => IpAddr::V4(*ip),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip),
    };
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => {
            if let Some(m) = ip.to_ipv4_mapped() {
                return v4(m);
            }
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// What went wrong, naming the cause: reqwest's own text ("error sending
/// request") says nothing, the cause is at the end of its source chain
/// (connection refused, a DNS failure, a refused redirect).
fn describe(e: reqwest::Error) -> String {
    let mut causes: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        // hyper's wrappers add nothing: "client error (Connect)".
        if !text.starts_with("client error") && !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        source = s.source();
    }
    let what = if e.is_connect() {
        "cannot connect"
    } else if e.is_redirect() {
        "redirect"
    } else if e.is_body() || e.is_decode() {
        "reading the answer"
    } else {
        "request failed"
    };
    if causes.is_empty() {
        format!("{what}: {}", e.without_url())
    } else {
        format!("{what}: {}", causes.join(": "))
    }
}

/// A reqwest error as ours: a timeout is [`TrackerError::Timeout`].
fn http_error(e: reqwest::Error) -> TrackerError {
    if e.is_timeout() {
        TrackerError::Timeout
    } else {
        TrackerError::Http(describe(e))
    }
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
    let mut response = client.get(url).send().await.map_err(http_error)?;
    let status = response.status();
    if let Some(len) = response.content_length()
        && len > HTTP_RESPONSE_LEN_MAX as u64
    {
        return Err(TrackerError::Malformed(format!(
            "response of {len} bytes exceeds {HTTP_RESPONSE_LEN_MAX}"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http_error)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(from: &str, to: &str) -> bool {
        redirect_allowed(
            &url::Url::parse(from).unwrap(),
            &url::Url::parse(to).unwrap(),
        )
    }

    #[test]
    fn a_public_tracker_may_not_redirect_to_a_local_address() {
        let public = "http://tracker.example.org/announce";
        for local in [
            "http://127.0.0.1:7303/internal/admin?secret=1",
            "http://127.8.9.10/",
            "http://localhost:8080/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(!allowed(public, local), "{public} -> {local}");
            assert!(!allowed("http://203.0.113.7/announce", local), "-> {local}");
        }
        // Public to public, and local to anywhere, are fine.
        assert!(allowed(public, "https://other.example.net/announce"));
        assert!(allowed(public, "http://198.51.100.1/announce"));
        assert!(allowed(public, "http://[2001:db8::1]/announce"));
        assert!(allowed(public, "http://172.32.0.1/announce"));
        assert!(allowed(
            "http://127.0.0.1:6969/announce",
            "http://127.0.0.1:7000/"
        ));
        assert!(allowed("http://192.168.1.2/announce", "http://10.1.1.1/"));
    }
}
