//! Transmission's RPC at `/transmission/rpc` (the protocol of Transmission
//! 3.00, `rpc-version` 16): what `transmission-remote`, Sonarr, Radarr,
//! FlexGet and the phone apps speak.
//!
//! Every request needs the `X-Transmission-Session-Id` header of this run:
//! without it (or with a stale one) the answer is 409 carrying the id, and
//! the client retries with it. A cross-site page cannot read that answer,
//! so it cannot forge requests.
//!
//! Methods: `session-get`, `session-set`, `session-stats`, `torrent-get`,
//! `torrent-add` (`metainfo`, `download-dir`, `paused`), `torrent-start`,
//! `torrent-start-now`, `torrent-stop`, `torrent-remove`
//! (`delete-local-data`), `torrent-verify`, `torrent-set`
//! (`downloadLimit`/`uploadLimit`, `*Limited`), `torrent-set-location`
//! (`location`, `move`). The fields of
//! `torrent-get` are listed in [`torrent_field`]. Anything else answers
//! `method name not recognized`, as Transmission does.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Map, Value, json};

use crate::DaemonError;
use crate::http::AppState;
use crate::service::{
    AddRequest, AddSource, FileChanges, IdRef, Ids, SeedChanges, TorrentView, now_unix,
};
use crate::state::{SEED_IDLE_DEFAULT_MIN, SEED_RATIO_DEFAULT, Settings};
use swarm_net::TorrentState;

/// The header of the session-id handshake.
pub const SESSION_ID_HEADER: &str = "X-Transmission-Session-Id";
/// The protocol version we speak (Transmission 3.00's).
pub const RPC_VERSION: u32 = 16;
/// At most this many ids in one request.
const IDS_MAX: usize = 100_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/transmission/rpc", post(rpc).get(rpc_get))
        // transmission-remote posts to `/transmission/rpc/`.
        .route("/transmission/rpc/", post(rpc).get(rpc_get))
}

fn conflict(app: &AppState) -> Response {
    (
        StatusCode::CONFLICT,
        [(SESSION_ID_HEADER, app.session_id.to_string())],
        format!(
            "<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p>\
             <p><code>{SESSION_ID_HEADER}: {}</code></p>",
            app.session_id
        ),
    )
        .into_response()
}

/// A GET (a browser, a client probing): the session id handshake only.
async fn rpc_get(State(app): State<AppState>) -> Response {
    conflict(&app)
}

async fn rpc(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let id_ok = headers
        .get(SESSION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == &*app.session_id);
    if !id_ok {
        return conflict(&app);
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"result": format!("request is not JSON: {e}")})),
            )
                .into_response();
        }
    };
    let tag = request.get("tag").cloned();
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let empty = Value::Object(Map::new());
    let args = request.get("arguments").unwrap_or(&empty);
    // `torrent-get` writes its arguments straight to bytes; the others
    // make a `Value`.
    let answer = if method == "torrent-get" && args.is_object() {
        torrent_get(&app, args).await
    } else {
        call(&app, method, args)
            .await
            .map(|a| serde_json::to_vec(&a).unwrap_or_default())
    };
    let (result, arguments) = match answer {
        Ok(a) => ("success".to_string(), a),
        Err(RpcError(why, arguments)) => (why, serde_json::to_vec(&arguments).unwrap_or_default()),
    };
    // `{"arguments":…,"result":…,"tag":…}`, the keys in the order a
    // `Value` would have.
    let mut out = Vec::with_capacity(arguments.len() + 64);
    out.extend_from_slice(b"{\"arguments\":");
    out.extend_from_slice(&arguments);
    out.extend_from_slice(b",\"result\":");
    let _ = serde_json::to_writer(&mut out, &result);
    if let Some(tag) = tag {
        out.extend_from_slice(b",\"tag\":");
        let _ = serde_json::to_writer(&mut out, &tag);
    }
    out.push(b'}');
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

/// Why a call failed: the text goes into `result` (and some failures
/// still carry arguments, as a duplicate add does).
#[derive(Debug)]
struct RpcError(String, Value);

impl RpcError {
    fn with(why: &str, arguments: Value) -> Self {
        RpcError(why.to_string(), arguments)
    }
}

impl From<DaemonError> for RpcError {
    fn from(e: DaemonError) -> Self {
        bad(e.to_string())
    }
}

fn bad(why: impl Into<String>) -> RpcError {
    RpcError(why.into(), Value::Object(Map::new()))
}

async fn call(app: &AppState, method: &str, args: &Value) -> Result<Value, RpcError> {
    if !args.is_object() {
        return Err(bad("arguments must be an object"));
    }
    let d = &app.daemon;
    match method {
        "session-get" => session_get(app, args).await,
        "session-set" => session_set(app, args).await,
        "session-stats" => session_stats(app).await,
        // "torrent-get": answered by `torrent_get`, straight to bytes.
        "torrent-add" => torrent_add(app, args).await,
        "torrent-start" | "torrent-start-now" => {
            d.set_paused(&ids(args)?, false).await?;
            Ok(json!({}))
        }
        "torrent-stop" => {
            d.set_paused(&ids(args)?, true).await?;
            Ok(json!({}))
        }
        "torrent-verify" => {
            d.verify(&ids(args)?).await?;
            Ok(json!({}))
        }
        "torrent-remove" => {
            let delete = match args.get("delete-local-data") {
                None => false,
                Some(v) => bool_arg(v).ok_or_else(|| bad("delete-local-data must be a boolean"))?,
            };
            d.remove(&ids(args)?, delete).await?;
            Ok(json!({}))
        }
        "torrent-set" => torrent_set(app, args).await,
        "torrent-set-location" => {
            let location = args
                .get("location")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("torrent-set-location needs location"))?;
            let move_data = match args.get("move") {
                None => false,
                Some(v) => bool_arg(v).ok_or_else(|| bad("move must be a boolean"))?,
            };
            d.set_location(&ids(args)?, location, move_data).await?;
            Ok(json!({}))
        }
        "torrent-reannounce" => {
            // Trackers are announced to on their own schedule; accepted so
            // that clients that send it do not fail.
            ids(args)?;
            Ok(json!({}))
        }
        _ => Err(bad("method name not recognized")),
    }
}

/// Transmission clients send booleans as `true`/`false` and sometimes 0/1.
fn bool_arg(v: &Value) -> Option<bool> {
    v.as_bool().or_else(|| v.as_i64().map(|n| n != 0))
}

/// The `ids` argument: absent (all), one id, one hash, `recently-active`
/// (all: we do not track recency), or a list of ids and hashes.
fn ids(args: &Value) -> Result<Ids, RpcError> {
    let one = |v: &Value| -> Result<IdRef, RpcError> {
        if let Some(n) = v.as_u64() {
            return u32::try_from(n)
                .map(IdRef::Id)
                .map_err(|_| bad(format!("torrent id {n} out of range")));
        }
        match v.as_str() {
            Some(s) if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(IdRef::Hash(s.to_ascii_lowercase()))
            }
            _ => Err(bad(format!("invalid torrent id {v}"))),
        }
    };
    match args.get("ids") {
        None => Ok(Ids::All),
        Some(Value::String(s)) if s == "recently-active" => Ok(Ids::All),
        Some(Value::Array(list)) => {
            if list.len() > IDS_MAX {
                return Err(bad(format!("more than {IDS_MAX} ids")));
            }
            Ok(Ids::Some(list.iter().map(one).collect::<Result<_, _>>()?))
        }
        Some(v) => Ok(Ids::Some(vec![one(v)?])),
    }
}

async fn torrent_add(app: &AppState, args: &Value) -> Result<Value, RpcError> {
    let download_dir = match args.get("download-dir") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("download-dir must be a string")),
    };
    let paused = match args.get("paused") {
        None => false,
        Some(v) => bool_arg(v).ok_or_else(|| bad("paused must be a boolean"))?,
    };
    let source = match (args.get("metainfo"), args.get("filename")) {
        (Some(Value::String(b64)), _) => {
            let cleaned: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            AddSource::Metainfo(
                base64::engine::general_purpose::STANDARD
                    .decode(cleaned)
                    .map_err(|e| bad(format!("metainfo is not base64: {e}")))?,
            )
        }
        (Some(_), _) => return Err(bad("metainfo must be a base64 string")),
        (None, Some(Value::String(f))) if f.starts_with("magnet:") => AddSource::Magnet(f.clone()),
        (None, Some(Value::String(f))) => {
            return Err(bad(format!(
                "filename {f}: give the torrent's contents (metainfo) or a magnet link; this daemon does not fetch URLs or read paths on its host"
            )));
        }
        _ => return Err(bad("torrent-add needs metainfo or filename")),
    };
    let added = app
        .daemon
        .add(AddRequest {
            source,
            download_dir,
            paused,
        })
        .await?;
    let torrent = json!({"id": added.id, "name": added.name, "hashString": added.info_hash});
    if added.duplicate {
        // As Transmission 3.00: the result says so, the arguments name it.
        return Err(RpcError::with(
            "duplicate torrent",
            json!({ "torrent-duplicate": torrent }),
        ));
    }
    Ok(json!({ "torrent-added": torrent }))
}

async fn torrent_set(app: &AppState, args: &Value) -> Result<Value, RpcError> {
    let ids = ids(args)?;
    let limit = |name: &str, enabled: &str| -> Result<Option<Option<u64>>, RpcError> {
        let on = match args.get(enabled) {
            None => None,
            Some(v) => {
                Some(bool_arg(v).ok_or_else(|| bad(format!("{enabled} must be a boolean")))?)
            }
        };
        let kb = match args.get(name) {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| bad(format!("{name} must be a number (KB/s)")))?,
            ),
        };
        Ok(match (on, kb) {
            (Some(false), _) => Some(None),
            (_, Some(kb)) if kb > 0 => Some(Some(kb * 1000)),
            _ => None,
        })
    };
    let down = limit("downloadLimit", "downloadLimited")?;
    let up = limit("uploadLimit", "uploadLimited")?;
    // File indexes (an empty list: every file, as Transmission reads it).
    let files = |name: &str| -> Result<Option<Vec<u32>>, RpcError> {
        let Some(v) = args.get(name) else {
            return Ok(None);
        };
        let list = v
            .as_array()
            .ok_or_else(|| bad(format!("{name} must be an array of file indexes")))?;
        list.iter()
            .map(|i| {
                i.as_u64()
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or_else(|| bad(format!("{name} must be an array of file indexes")))
            })
            .collect::<Result<Vec<u32>, _>>()
            .map(Some)
    };
    let changes = FileChanges {
        wanted: files("files-wanted")?,
        unwanted: files("files-unwanted")?,
        high: files("priority-high")?,
        normal: files("priority-normal")?,
        low: files("priority-low")?,
    };
    if args.get("location").is_some() {
        return Err(bad(
            "torrent-set location is not supported: use torrent-set-location",
        ));
    }
    let seeding = SeedChanges {
        ratio_limit: ratio_arg(args)?,
        ratio_mode: mode(args, "seedRatioMode")?,
        idle_limit_min: match args.get("seedIdleLimit") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .ok_or_else(|| bad("seedIdleLimit must be a number of minutes"))?,
            ),
        },
        idle_mode: mode(args, "seedIdleMode")?,
    };
    if let Some(v) = args.get("peer-limit") {
        let n = v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n >= 1)
            .ok_or_else(|| bad("peer-limit must be a number of connections, at least 1"))?;
        app.daemon.set_peer_limit(&ids, n).await?;
    }
    app.daemon.set_seeding(&ids, &seeding).await?;
    app.daemon.set_files(&ids, &changes).await?;
    app.daemon.set_limits(&ids, down, up).await?;
    Ok(json!({}))
}

async fn session_get(app: &AppState, args: &Value) -> Result<Value, RpcError> {
    let s = app.daemon.settings().await;
    let kb = |v: Option<u64>| v.map_or(100, |b| b / 1000);
    let (up_now, down_now) = app.daemon.client().rate_limits();
    let all = json!({
        "version": format!("3.00 (swarm {})", env!("CARGO_PKG_VERSION")),
        "rpc-version": RPC_VERSION,
        "rpc-version-minimum": 1,
        "session-id": &*app.session_id,
        "download-dir": app.daemon.default_download_dir().display().to_string(),
        "download-dir-free-space": free_space(app.daemon.default_download_dir()),
        "peer-port": app.daemon.client().listen_addr().port(),
        "peer-port-random-on-start": false,
        "port-forwarding-enabled": false,
        "peer-limit-global": s.peer_limit_global.unwrap_or(500),
        "peer-limit-per-torrent": 50,
        "dht-enabled": false,
        "pex-enabled": false,
        "lpd-enabled": false,
        "utp-enabled": false,
        "encryption": "tolerated",
        // What the client enforces now (the settings, applied at once).
        "speed-limit-down": kb(down_now.or(s.download_limit_value)),
        "speed-limit-down-enabled": down_now.is_some(),
        "speed-limit-up": kb(up_now.or(s.upload_limit_value)),
        "speed-limit-up-enabled": up_now.is_some(),
        "alt-speed-enabled": false,
        "alt-speed-down": 50,
        "alt-speed-up": 50,
        "download-queue-enabled": s.download_queue_size.is_some(),
        "download-queue-size": s.download_queue_size.unwrap_or(5),
        "seed-queue-enabled": false,
        "seed-queue-size": 10,
        "queue-stalled-enabled": false,
        "seedRatioLimit": s.seed_ratio_limit.or(s.seed_ratio_value).unwrap_or(SEED_RATIO_DEFAULT),
        "seedRatioLimited": s.seed_ratio_limit.is_some(),
        "idle-seeding-limit": s.idle_seeding_limit_min.or(s.idle_seeding_value_min).unwrap_or(SEED_IDLE_DEFAULT_MIN),
        "idle-seeding-limit-enabled": s.idle_seeding_limit_min.is_some(),
        "start-added-torrents": true,
        "rename-partial-files": false,
        "incomplete-dir-enabled": false,
        "incomplete-dir": app.daemon.default_download_dir().display().to_string(),
        "trash-original-torrent-files": false,
        "config-dir": "",
        "units": {
            "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"], "speed-bytes": 1000,
            "size-units": ["kB", "MB", "GB", "TB"], "size-bytes": 1000,
            "memory-units": ["KiB", "MiB", "GiB", "TiB"], "memory-bytes": 1024
        },
    });
    Ok(filter_fields(all, args.get("fields")))
}

fn filter_fields(all: Value, fields: Option<&Value>) -> Value {
    let Some(fields) = fields.and_then(Value::as_array) else {
        return all;
    };
    let mut out = Map::new();
    for f in fields.iter().filter_map(Value::as_str) {
        if let Some(v) = all.get(f) {
            out.insert(f.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

fn free_space(path: &std::path::Path) -> i64 {
    rustix::fs::statvfs(path).map_or(-1, |s| (s.f_bavail * s.f_frsize) as i64)
}

async fn session_set(app: &AppState, args: &Value) -> Result<Value, RpcError> {
    let num = |k: &str| -> Result<Option<u64>, RpcError> {
        match args.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(format!("{k} must be a number"))),
        }
    };
    let flag = |k: &str| -> Result<Option<bool>, RpcError> {
        match args.get(k) {
            None => Ok(None),
            Some(v) => bool_arg(v)
                .map(Some)
                .ok_or_else(|| bad(format!("{k} must be a boolean"))),
        }
    };
    let (queue_on, queue_size) = (flag("download-queue-enabled")?, num("download-queue-size")?);
    // Speeds in kB/s (`units`: 1000 bytes), as Transmission's.
    let kb =
        |k: &str| -> Result<Option<u64>, RpcError> { Ok(num(k)?.map(|v| v.saturating_mul(1000))) };
    let (down, down_on) = (kb("speed-limit-down")?, flag("speed-limit-down-enabled")?);
    let (up, up_on) = (kb("speed-limit-up")?, flag("speed-limit-up-enabled")?);
    let peers = num("peer-limit-global")?.map(|n| u32::try_from(n).unwrap_or(u32::MAX).max(1));
    let ratio = ratio_arg(args)?;
    let ratio_on = flag("seedRatioLimited")?;
    let idle = num("idle-seeding-limit")?.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let idle_on = flag("idle-seeding-limit-enabled")?;
    let queue_size = queue_size.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    app.daemon
        .set_settings(|s| {
            match (queue_on, queue_size) {
                (Some(false), _) => s.download_queue_size = None,
                (_, Some(n)) => s.download_queue_size = Some(n.max(1)),
                (Some(true), None) => {
                    s.download_queue_size = Some(s.download_queue_size.unwrap_or(5))
                }
                (None, None) => {}
            }
            Settings::set_limit(
                &mut s.download_limit,
                &mut s.download_limit_value,
                down,
                down_on,
                100_000,
            );
            Settings::set_limit(
                &mut s.upload_limit,
                &mut s.upload_limit_value,
                up,
                up_on,
                100_000,
            );
            Settings::set_limit(
                &mut s.seed_ratio_limit,
                &mut s.seed_ratio_value,
                ratio,
                ratio_on,
                SEED_RATIO_DEFAULT,
            );
            Settings::set_limit(
                &mut s.idle_seeding_limit_min,
                &mut s.idle_seeding_value_min,
                idle,
                idle_on,
                SEED_IDLE_DEFAULT_MIN,
            );
            if peers.is_some() {
                s.peer_limit_global = peers;
            }
        })
        .await?;
    Ok(json!({}))
}

async fn session_stats(app: &AppState) -> Result<Value, RpcError> {
    let list = app.daemon.list().await;
    let active = list.iter().filter(|t| is_active(t)).count();
    let (down, up) = list.iter().fold((0.0, 0.0), |(d, u), t| {
        (d + t.status.download_rate, u + t.status.upload_rate)
    });
    let (dl, ul) = list.iter().fold((0u64, 0u64), |(d, u), t| {
        (d + t.status.downloaded, u + t.status.uploaded)
    });
    let secs = now_unix().saturating_sub(app.daemon.started_unix());
    let stats = json!({
        "uploadedBytes": ul, "downloadedBytes": dl, "filesAdded": list.len(),
        "sessionCount": 1, "secondsActive": secs
    });
    Ok(json!({
        "activeTorrentCount": active,
        "pausedTorrentCount": list.len() - active,
        "torrentCount": list.len(),
        "downloadSpeed": down as u64,
        "uploadSpeed": up as u64,
        "cumulative-stats": stats.clone(),
        "current-stats": stats,
    }))
}

fn is_active(t: &TorrentView) -> bool {
    !t.paused && !t.status.state.is_final()
}

/// `torrent-get`'s arguments, written as JSON as each value is made: no
/// tree of every torrent's fields first (for 1,000 torrents, building that
/// tree of maps, serializing it and dropping it was most of the call's
/// time: perf), one buffer sized once.
async fn torrent_get(app: &AppState, args: &Value) -> Result<Vec<u8>, RpcError> {
    let fields: Vec<&str> = args
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("torrent-get needs fields"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let ids = ids(args)?;
    let views = match ids {
        Ids::All => app.daemon.list().await,
        ids => app.daemon.get(&ids).await,
    };
    let table = args.get("format").and_then(Value::as_str) == Some("table");
    let now = now_unix();
    // Field names as JSON strings, once.
    let keys: Vec<String> = fields
        .iter()
        .map(|f| serde_json::to_string(f).unwrap_or_default())
        .collect();
    let mut out = Vec::with_capacity(64 + views.len() * (16 + 24 * fields.len()));
    out.extend_from_slice(b"{\"torrents\":[");
    if table {
        let _ = serde_json::to_writer(&mut out, &fields);
    }
    for (i, t) in views.iter().enumerate() {
        if i > 0 || table {
            out.push(b',');
        }
        out.push(if table { b'[' } else { b'{' });
        let mut first = true;
        for (f, key) in fields.iter().zip(&keys) {
            let v = torrent_field(t, f, now);
            if v.is_none() && !table {
                continue; // not a field we serve: left out
            }
            if !first {
                out.push(b',');
            }
            first = false;
            if !table {
                out.extend_from_slice(key.as_bytes());
                out.push(b':');
            }
            let _ = serde_json::to_writer(&mut out, &v.unwrap_or(Value::Null));
        }
        out.push(if table { b']' } else { b'}' });
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Transmission's status codes.
fn status_code(t: &TorrentView) -> u8 {
    if t.queued {
        return 3; // download wait
    }
    if t.paused && t.status.state != TorrentState::Checking {
        return 0;
    }
    match t.status.state {
        TorrentState::Checking => 2,
        // Transmission says "downloading" while it fetches a magnet's metadata.
        TorrentState::Metadata | TorrentState::Downloading => 4,
        TorrentState::Seeding => 6,
        TorrentState::Completed | TorrentState::Stopped | TorrentState::Failed => 0,
    }
}

/// One field of `torrent-get`; `None`: a field we do not serve (left out
/// of the answer, as Transmission does with unknown keys).
pub fn torrent_field(t: &TorrentView, field: &str, now: u64) -> Option<Value> {
    let s = &t.status;
    let total = s.total_length;
    // Of what is wanted (Transmission's sizeWhenDone - leftUntilDone).
    let done = s.wanted_length - s.left.min(s.wanted_length);
    // Built only for the fields that need it (torrent-get asks each field
    // of each torrent).
    let files = || -> Vec<&swarm_net::FileSpec> {
        t.spec
            .iter()
            .flat_map(|s| s.files.iter())
            .filter(|f| !f.attr.pad)
            .collect()
    };
    let eta = || -> i64 {
        if s.left == 0 {
            return -1;
        }
        if s.download_rate < 1.0 {
            return -2;
        }
        (s.left as f64 / s.download_rate) as i64
    };
    let v = match field {
        "id" => json!(t.id),
        "name" => json!(s.name),
        "hashString" => json!(s.info_hash),
        "status" => json!(status_code(t)),
        "error" => json!(if s.error.is_some() { 3 } else { 0 }),
        "errorString" => json!(s.error.clone().unwrap_or_default()),
        "totalSize" => json!(total),
        "sizeWhenDone" => json!(s.wanted_length),
        "leftUntilDone" => json!(s.left),
        "desiredAvailable" => json!(if s.peers > 0 { s.left } else { 0 }),
        "haveValid" => json!(s.have_length),
        "haveUnchecked" => json!(0),
        "percentDone" => json!(if s.wanted_length == 0 {
            1.0
        } else {
            done as f64 / s.wanted_length as f64
        }),
        "metadataPercentComplete" => json!(if t.spec.is_some() { 1.0 } else { 0.0 }),
        "recheckProgress" => json!(match (s.state, s.checked) {
            (TorrentState::Checking, Some(c)) if total > 0 => c as f64 / total as f64,
            _ => 0.0,
        }),
        "isFinished" => json!(s.complete && t.paused),
        "isStalled" => json!(false),
        "isPrivate" => json!(t.extras.private),
        "rateDownload" => json!(s.download_rate as u64),
        "rateUpload" => json!(s.upload_rate as u64),
        "eta" => json!(eta()),
        "etaIdle" => json!(-1),
        "uploadRatio" => json!(if t.downloaded_ever == 0 && done == 0 {
            -1.0
        } else {
            t.uploaded_ever as f64 / (done.max(t.downloaded_ever).max(1)) as f64
        }),
        "downloadedEver" => json!(t.downloaded_ever),
        "uploadedEver" => json!(t.uploaded_ever),
        "corruptEver" => json!(s.wasted),
        "peersConnected" => json!(s.peers),
        "peersGettingFromUs" => json!(s.neighbours.iter().filter(|n| n.upload_rate > 0.0).count()),
        "peersSendingToUs" => json!(s.neighbours.iter().filter(|n| n.download_rate > 0.0).count()),
        "webseedsSendingToUs" => json!(0),
        "downloadDir" => json!(t.download_dir.display().to_string()),
        "addedDate" => json!(t.added_unix),
        "doneDate" => json!(t.done_unix.unwrap_or(0)),
        "startDate" => json!(t.added_unix),
        "activityDate" => json!(if is_active(t) { now } else { 0 }),
        "dateCreated" => json!(t.extras.created_unix.unwrap_or(0)),
        "comment" => json!(t.extras.comment.clone().unwrap_or_default()),
        "creator" => json!(t.extras.creator.clone().unwrap_or_default()),
        "magnetLink" => json!(t.extras.magnet),
        "pieceCount" => json!(s.pieces_total),
        "pieceSize" => json!(t.extras.piece_length),
        "secondsDownloading" => json!(t.seconds_downloading),
        "secondsSeeding" => json!(t.seconds_seeding),
        "queuePosition" => json!(t.id),
        "bandwidthPriority" => json!(0),
        "honorsSessionLimits" => json!(true),
        "downloadLimit" => json!(t.download_limit.map_or(0, |b| b / 1000)),
        "downloadLimited" => json!(t.download_limit.is_some()),
        "uploadLimit" => json!(t.upload_limit.map_or(0, |b| b / 1000)),
        "uploadLimited" => json!(t.upload_limit.is_some()),
        "peer-limit" => json!(t.peer_limit),
        "seedRatioLimit" => json!(t.seed_ratio_limit),
        "seedRatioMode" => json!(t.seed_ratio_mode),
        "seedIdleLimit" => json!(t.seed_idle_limit_min),
        "seedIdleMode" => json!(t.seed_idle_mode),
        "fileCount" => json!(files().len()),
        "labels" => json!([]),
        "webseeds" => json!([]),
        "source" => json!(""),
        "files" => Value::Array({
            let done_by_file = files_done(t);
            files()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    json!({
                        "name": f.path.to_string_lossy(),
                        "length": f.length,
                        "bytesCompleted": done_by_file[i],
                    })
                })
                .collect()
        }),
        "fileStats" => Value::Array({
            files_done(t)
                .iter()
                .enumerate()
                .map(|(i, done)| {
                    json!({
                        "bytesCompleted": done,
                        "wanted": t.files_unwanted.binary_search(&(i as u32)).is_err(),
                        "priority": priority(t, i as u32),
                    })
                })
                .collect()
        }),
        "wanted" => Value::Array(
            (0..files().len())
                .map(|i| json!(u8::from(t.files_unwanted.binary_search(&(i as u32)).is_err())))
                .collect(),
        ),
        "priorities" => Value::Array(
            (0..files().len())
                .map(|i| json!(priority(t, i as u32)))
                .collect(),
        ),
        "trackers" => Value::Array(trackers(t).collect()),
        "trackerStats" => Value::Array(trackers(t).map(|tr| tracker_stats(t, tr)).collect()),
        "peers" => Value::Array(
            s.neighbours
                .iter()
                .map(|n| {
                    json!({
                        "address": n.addr.ip().to_string(),
                        "port": n.addr.port(),
                        "clientName": n.client,
                        "progress": if s.pieces_total == 0 { 0.0 } else { f64::from(n.pieces) / f64::from(s.pieces_total) },
                        "rateToClient": n.download_rate as u64,
                        "rateToPeer": n.upload_rate as u64,
                        "isDownloadingFrom": n.download_rate > 0.0,
                        "isUploadingTo": n.upload_rate > 0.0,
                        "clientIsChoked": !n.unchokes_us,
                        "clientIsInterested": n.we_are_interested,
                        "peerIsChoked": matches!(n.choke, "choked" | "snubbed"),
                        "peerIsInterested": n.interested,
                        "isIncoming": !n.outgoing,
                        "isEncrypted": false,
                        "isUTP": false,
                        "flagStr": flag_str(n),
                    })
                })
                .collect(),
        ),
        _ => return None,
    };
    Some(v)
}

/// Each file's bytes in verified pieces (pad files left out, as the
/// file list): from the status's piece map (none for a torrent of more
/// than `PIECE_MAP_PIECES_MAX` pieces: then all or nothing, by whether
/// every piece is there). O(pieces + files).
fn files_done(t: &TorrentView) -> Vec<u64> {
    let Some(spec) = &t.spec else {
        return Vec::new();
    };
    let s = &t.status;
    let have = s.piece_map.as_ref().and_then(|m| hex::decode(&m.have).ok());
    let pl = u64::from(spec.lengths.piece_length()).max(1);
    let has = |p: u64| match &have {
        Some(bits) => bits
            .get((p / 8) as usize)
            .is_some_and(|b| b & (0x80 >> (p % 8)) != 0),
        None => s.pieces_total > 0 && s.pieces_have == s.pieces_total,
    };
    let mut out = Vec::new();
    let mut start = 0u64;
    for f in &spec.files {
        let end = start + f.length;
        if !f.attr.pad {
            let mut done = 0;
            if f.length > 0 {
                for p in start / pl..=(end - 1) / pl {
                    if has(p) {
                        done += end.min((p + 1) * pl) - start.max(p * pl);
                    }
                }
            }
            out.push(done);
        }
        start = end;
    }
    out
}

/// `seedRatioLimit`: a ratio, at least 0.
fn ratio_arg(args: &Value) -> Result<Option<f64>, RpcError> {
    match args.get("seedRatioLimit") {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|r| *r >= 0.0)
            .map(Some)
            .ok_or_else(|| bad("seedRatioLimit must be a number >= 0")),
    }
}

/// A seeding mode (`seedRatioMode`, `seedIdleMode`): 0 global, 1 own, 2 none.
fn mode(args: &Value, name: &str) -> Result<Option<u8>, RpcError> {
    match args.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|m| *m <= 2)
            .map(|m| Some(m as u8))
            .ok_or_else(|| {
                bad(format!(
                    "{name} must be 0 (global), 1 (this torrent's) or 2 (none)"
                ))
            }),
    }
}

/// A file's priority as Transmission numbers it: -1 low, 0 normal, 1 high.
fn priority(t: &TorrentView, file: u32) -> i8 {
    if t.files_high.binary_search(&file).is_ok() {
        1
    } else if t.files_low.binary_search(&file).is_ok() {
        -1
    } else {
        0
    }
}

fn trackers(t: &TorrentView) -> impl Iterator<Item = Value> + '_ {
    t.extras
        .trackers
        .iter()
        .enumerate()
        .flat_map(|(tier, urls)| urls.iter().map(move |u| (tier, u)))
        .enumerate()
        .map(|(id, (tier, url))| {
            json!({
                "id": id,
                "announce": url,
                "scrape": url.replacen("/announce", "/scrape", 1),
                "tier": tier,
            })
        })
}

/// One tracker's `trackerStats` entry: `tr` (its `trackers` entry) with
/// what the tracker task last reported for its URL (Transmission 3.00's
/// fields; counts are -1 and times 0 until it answers).
fn tracker_stats(t: &TorrentView, mut tr: Value) -> Value {
    let url = tr["announce"].as_str().unwrap_or_default();
    let last = t.status.trackers.iter().find(|s| s.url == url);
    let running = matches!(
        t.status.state,
        TorrentState::Downloading | TorrentState::Seeding
    );
    let count = |n: Option<u32>| n.map_or(-1, i64::from);
    // Scheme, host and port, as Transmission shows it.
    tr["host"] = json!(match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => url.to_string(),
    });
    tr["isBackup"] = json!(false);
    tr["hasAnnounced"] = json!(last.is_some());
    tr["lastAnnounceSucceeded"] = json!(last.is_some_and(|l| l.last_announce_succeeded));
    tr["lastAnnounceResult"] = json!(last.map_or("", |l| l.last_announce_result.as_str()));
    tr["lastAnnounceTime"] = json!(last.map_or(0, |l| l.last_announce_unix));
    tr["lastAnnounceStartTime"] = tr["lastAnnounceTime"].clone();
    tr["lastAnnounceTimedOut"] = json!(last.is_some_and(|l| l.last_announce_timed_out));
    tr["lastAnnouncePeerCount"] = json!(last.map_or(0, |l| l.last_announce_peers));
    tr["seederCount"] = json!(count(last.and_then(|l| l.seeders)));
    tr["leecherCount"] = json!(count(last.and_then(|l| l.leechers)));
    tr["downloadCount"] = json!(-1);
    // 0 inactive, 1 waiting for its time (Transmission's tr_tracker_state).
    tr["announceState"] = json!(u8::from(running));
    tr["nextAnnounceTime"] = json!(if running {
        last.and_then(|l| l.next_announce_unix).unwrap_or(0)
    } else {
        0
    });
    tr["hasScraped"] = json!(false);
    tr["scrapeState"] = json!(0);
    tr["lastScrapeSucceeded"] = json!(false);
    tr["lastScrapeResult"] = json!("");
    tr["lastScrapeTime"] = json!(0);
    tr["lastScrapeTimedOut"] = json!(false);
    tr["lastScrapeStartTime"] = json!(0);
    tr["nextScrapeTime"] = json!(0);
    tr
}

/// Transmission's peer flags: D downloading from it, U uploading to it,
/// d/u interested but choked, O optimistic, K it unchoked us but we are
/// not interested, ? we unchoked it but it is not interested, I incoming.
fn flag_str(n: &swarm_net::NeighbourStatus) -> String {
    let mut f = String::new();
    if n.choke == "optimistic" {
        f.push('O');
    }
    if n.we_are_interested {
        f.push(if n.unchokes_us { 'D' } else { 'd' });
    } else if n.unchokes_us {
        f.push('K');
    }
    if n.interested {
        f.push(if matches!(n.choke, "choked" | "snubbed") {
            'u'
        } else {
            'U'
        });
    } else if !matches!(n.choke, "choked" | "snubbed") {
        f.push('?');
    }
    if !n.outgoing {
        f.push('I');
    }
    f
}
