//! The HTTP server: one router for the Transmission RPC, our JSON API and
//! the web UI, behind the same guards:
//!
//! - **credentials**: with `--auth-file` every request needs HTTP basic
//!   auth with one of its `user:password` lines (401 otherwise);
//! - **Host header** (DNS rebinding): on a loopback address only Host names
//!   that are loopback (`localhost`, `127.x.y.z`, `[::1]`) are served (421);
//! - **request bodies** are capped at [`REQUEST_BODY_MAX_BYTES`] (413);
//! - cross-site requests: the RPC needs its session id header (see
//!   [`crate::rpc`]), our API's writes need `Content-Type:
//!   application/json`, which a cross-site form cannot send without CORS
//!   (which we do not answer).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::{DaemonError, SharedDaemon};

/// The largest request body served: a .torrent of 12 MiB, base64-encoded.
pub const REQUEST_BODY_MAX_BYTES: usize = 16 * 1024 * 1024;
/// At most this many credential lines in an auth file.
const CREDENTIALS_MAX: usize = 1000;

/// The `user:password` pairs of `--auth-file`.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The `Authorization` header values that are accepted
    /// (`Basic base64(user:password)`).
    accepted: Vec<String>,
}

impl Credentials {
    /// Reads `user:password` lines (blank lines and `#` comments skipped).
    pub fn load(path: &Path) -> Result<Credentials, DaemonError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DaemonError::Config(format!("--auth-file {}: {e}", path.display())))?;
        let mut accepted = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !line.contains(':') || line.starts_with(':') {
                return Err(DaemonError::Config(format!(
                    "--auth-file {} line {}: expected user:password",
                    path.display(),
                    n + 1
                )));
            }
            accepted.push(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(line)
            ));
        }
        if accepted.is_empty() || accepted.len() > CREDENTIALS_MAX {
            return Err(DaemonError::Config(format!(
                "--auth-file {}: expected 1 to {CREDENTIALS_MAX} user:password lines",
                path.display()
            )));
        }
        Ok(Credentials { accepted })
    }

    fn allows(&self, header: Option<&HeaderValue>) -> bool {
        let Some(given) = header.and_then(|h| h.to_str().ok()) else {
            return false;
        };
        // Compared in full every time (no early exit on the first byte).
        self.accepted.iter().fold(false, |ok, a| {
            ok | constant_time_eq(a.as_bytes(), given.as_bytes())
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub daemon: SharedDaemon,
    auth: Option<Arc<Credentials>>,
    /// The RPC's `X-Transmission-Session-Id`: random per run.
    pub session_id: Arc<str>,
    /// Where the HTTP server listens.
    pub http_addr: SocketAddr,
    /// Event streams open now (at most [`crate::api::EVENTS_CLIENTS_MAX`]).
    pub events_clients: Arc<std::sync::atomic::AtomicUsize>,
}

impl AppState {
    pub fn new(daemon: SharedDaemon, auth: Option<Credentials>, http_addr: SocketAddr) -> Self {
        let session_id: String = (0..48)
            .map(|_| {
                const ALPHABET: &[u8] =
                    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                ALPHABET[(rand::random::<u32>() as usize) % ALPHABET.len()] as char
            })
            .collect();
        AppState {
            daemon,
            auth: auth.map(Arc::new),
            session_id: session_id.into(),
            http_addr,
            events_clients: Arc::default(),
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::rpc::routes())
        .merge(crate::api::routes())
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(REQUEST_BODY_MAX_BYTES))
        .with_state(state)
}

/// Credentials and the Host header, before any route.
async fn guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if app.http_addr.ip().is_loopback() && !host_is_loopback(req.headers()) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this daemon listens on loopback: the Host header must name it (localhost, 127.0.0.1, [::1])\n",
        )
            .into_response();
    }
    if let Some(auth) = &app.auth
        && !auth.allows(req.headers().get(header::AUTHORIZATION))
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"swarm\"")],
            "401: Unauthorized\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// Whether the Host header (port aside) names a loopback host.
fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.0 without Host: nothing a browser would send.
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        m
    }

    #[test]
    fn only_loopback_host_names_pass() {
        for ok in [
            "localhost",
            "localhost:9091",
            "127.0.0.1:9091",
            "127.3.4.5",
            "[::1]:9091",
        ] {
            assert!(host_is_loopback(&host(ok)), "{ok}");
        }
        for bad in [
            "evil.example:9091",
            "192.168.1.2",
            "[2001:db8::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!host_is_loopback(&host(bad)), "{bad}");
        }
    }

    #[test]
    fn credentials_accept_exactly_their_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth");
        std::fs::write(&path, "# users\nalice:s3cret\n\nbob:pw:with:colons\n").unwrap();
        let c = Credentials::load(&path).unwrap();
        let basic = |s: &str| {
            HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            ))
            .unwrap()
        };
        assert!(c.allows(Some(&basic("alice:s3cret"))));
        assert!(c.allows(Some(&basic("bob:pw:with:colons"))));
        assert!(!c.allows(Some(&basic("alice:wrong"))));
        assert!(!c.allows(None));
        std::fs::write(&path, "nocolon\n").unwrap();
        assert!(Credentials::load(&path).is_err());
    }
}
