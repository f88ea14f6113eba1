//! Our own JSON API under `/api/v1/` (documented, with an example per
//! route, in docs/daemon-api.md) and the web UI at `/`.
//!
//! Reads are GETs; writes are POST/DELETE whose bodies (when any) are
//! JSON and must say `Content-Type: application/json`: a cross-site HTML
//! form cannot send that, and we answer no CORS preflight.
//! Live updates: `GET /api/v1/events` is a Server-Sent Events stream: the
//! torrent list at connect, then once a second only what changed (see
//! [`diff`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::DaemonError;
use crate::http::AppState;
use crate::service::{AddRequest, AddSource, FileChanges, IdRef, Ids, TorrentView};

/// How often the event stream sends what changed.
pub const EVENTS_INTERVAL: Duration = Duration::from_secs(1);
/// Event streams open at once at most (each holds the list it last sent).
pub const EVENTS_CLIENTS_MAX: usize = 64;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(ui_index))
        .route("/ui/{file}", get(ui_file))
        .route("/api/v1/session", get(session))
        .route("/api/v1/torrents", get(list).post(add))
        .route("/api/v1/torrents/{id}", get(one).delete(remove))
        .route("/api/v1/torrents/{id}/{action}", post(action))
        .route("/api/v1/events", get(events))
}

fn error(code: StatusCode, why: impl Into<String>) -> Response {
    (code, axum::Json(json!({"error": why.into()}))).into_response()
}

impl IntoResponse for DaemonError {
    fn into_response(self) -> Response {
        let code = match &self {
            DaemonError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        error(code, self.to_string())
    }
}

/// A refused request: its status and why.
type Refusal = (StatusCode, String);

fn refused((code, why): Refusal) -> Response {
    error(code, why)
}

fn require_json(headers: &HeaderMap) -> Result<(), Refusal> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if ok {
        Ok(())
    } else {
        Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as Content-Type: application/json".into(),
        ))
    }
}

/// A torrent in the list: the view without the per-file and per-piece
/// detail.
#[derive(Serialize)]
struct Summary<'a> {
    #[serde(flatten)]
    view: &'a TorrentView,
}

async fn session(State(app): State<AppState>) -> Response {
    let s = app.daemon.settings().await;
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "peer_port": app.daemon.client().listen_addr().port(),
        "download_dir": app.daemon.default_download_dir(),
        "settings": s,
    }))
    .into_response()
}

async fn list(State(app): State<AppState>) -> Response {
    let views = app.daemon.list().await;
    let list: Vec<Summary> = views.iter().map(|view| Summary { view }).collect();
    axum::Json(json!({ "torrents": list })).into_response()
}

fn parse_id(id: &str) -> Result<Ids, Refusal> {
    if let Ok(n) = id.parse::<u32>() {
        return Ok(Ids::Some(vec![IdRef::Id(n)]));
    }
    if id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Ids::Some(vec![IdRef::Hash(id.to_ascii_lowercase())]));
    }
    Err((
        StatusCode::BAD_REQUEST,
        format!("{id} is neither a torrent id nor an info-hash"),
    ))
}

/// One torrent with its files and trackers.
async fn one(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let ids = match parse_id(&id) {
        Ok(ids) => ids,
        Err(r) => return refused(r),
    };
    let Some(t) = app.daemon.get(&ids).await.into_iter().next() else {
        return error(StatusCode::NOT_FOUND, format!("no torrent {id}"));
    };
    axum::Json(detail(&t)).into_response()
}

fn detail(t: &TorrentView) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    let files: Vec<Value> = t
        .spec
        .iter()
        .flat_map(|s| s.files.iter())
        .filter(|f| !f.attr.pad)
        .enumerate()
        .map(|(i, f)| {
            json!({
                "index": i,
                "path": f.path.to_string_lossy(),
                "length": f.length,
                "wanted": t.files_unwanted.binary_search(&(i as u32)).is_err(),
                "priority": if t.files_high.binary_search(&(i as u32)).is_ok() {
                    "high"
                } else if t.files_low.binary_search(&(i as u32)).is_ok() {
                    "low"
                } else {
                    "normal"
                },
            })
        })
        .collect();
    v["files"] = Value::Array(files);
    v["trackers"] = json!(t.extras.trackers);
    v["meta"] = serde_json::to_value(&*t.extras).unwrap_or(Value::Null);
    v["piece_map"] = serde_json::to_value(t.status.piece_map.as_deref()).unwrap_or(Value::Null);
    v
}

#[derive(Deserialize)]
struct AddBody {
    /// The .torrent file, base64.
    metainfo: Option<String>,
    /// Or a magnet link.
    magnet: Option<String>,
    download_dir: Option<String>,
    #[serde(default)]
    paused: bool,
}

async fn add(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = require_json(&headers) {
        return refused(r);
    }
    let body: AddBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
    };
    let source = match (body.metainfo, body.magnet) {
        (Some(b64), None) => match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            Ok(m) => AddSource::Metainfo(m),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("metainfo is not base64: {e}"),
                );
            }
        },
        (None, Some(link)) => AddSource::Magnet(link),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give either metainfo (the .torrent, base64) or magnet",
            );
        }
    };
    match app
        .daemon
        .add(AddRequest {
            source,
            download_dir: body.download_dir,
            paused: body.paused,
        })
        .await
    {
        Ok(added) if added.duplicate => (StatusCode::OK, axum::Json(added)).into_response(),
        Ok(added) => (StatusCode::CREATED, axum::Json(added)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct RemoveQuery {
    #[serde(default)]
    delete_data: bool,
}

async fn remove(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Response {
    let ids = match parse_id(&id) {
        Ok(ids) => ids,
        Err(r) => return refused(r),
    };
    match app.daemon.remove(&ids, q.delete_data).await {
        Ok(0) => error(StatusCode::NOT_FOUND, format!("no torrent {id}")),
        Ok(_) => axum::Json(json!({"removed": id})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/torrents/{id}/files`: file indexes (as in `files`) to
/// want, skip, or give a priority.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesBody {
    wanted: Option<Vec<u32>>,
    skipped: Option<Vec<u32>>,
    high: Option<Vec<u32>>,
    normal: Option<Vec<u32>>,
    low: Option<Vec<u32>>,
}

async fn action(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(r) = require_json(&headers) {
        return refused(r);
    }
    let ids = match parse_id(&id) {
        Ok(ids) => ids,
        Err(r) => return refused(r),
    };
    let d = &app.daemon;
    let done = match action.as_str() {
        "start" => d.set_paused(&ids, false).await,
        "stop" => d.set_paused(&ids, true).await,
        "verify" => d.verify(&ids).await,
        "files" => {
            let b: FilesBody = match serde_json::from_slice(&body) {
                Ok(b) => b,
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
            };
            // Here an empty list means none (not every file, as in the RPC).
            let nonempty = |v: Option<Vec<u32>>| v.filter(|v| !v.is_empty());
            let changes = FileChanges {
                wanted: nonempty(b.wanted),
                unwanted: nonempty(b.skipped),
                high: nonempty(b.high),
                normal: nonempty(b.normal),
                low: nonempty(b.low),
            };
            d.set_files(&ids, &changes).await
        }
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no action {action}: start, stop, verify or files"),
            );
        }
    };
    match done {
        Ok(0) => error(StatusCode::NOT_FOUND, format!("no torrent {id}")),
        Ok(_) => axum::Json(json!({"ok": action})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The torrents as a client of the event stream last saw them, by id.
type Snapshot = BTreeMap<u32, Map<String, Value>>;

/// The torrent list as the event stream sends it (summaries, by id),
/// without the status's `elapsed_s`: it changes every second for every
/// running torrent, so a thousand idle seeds would make a thousand changes
/// a second (`added_unix` gives it).
async fn snapshot(app: &AppState) -> Snapshot {
    app.daemon
        .list()
        .await
        .iter()
        .filter_map(|view| match serde_json::to_value(Summary { view }) {
            Ok(Value::Object(mut m)) => {
                if let Some(Value::Object(status)) = m.get_mut("status") {
                    status.remove("elapsed_s");
                }
                Some((view.id, m))
            }
            _ => None,
        })
        .collect()
}

/// What changed from `before` to `now`: `{"added": [whole torrents],
/// "changed": [{"id", and each field that changed; of "status", only its
/// fields that changed}], "removed": [ids]}` (a field that is gone is
/// null); none if nothing changed.
pub fn diff(before: &Snapshot, now: &Snapshot) -> Option<Value> {
    let removed: Vec<u32> = before
        .keys()
        .filter(|id| !now.contains_key(id))
        .copied()
        .collect();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for (id, t) in now {
        let Some(old) = before.get(id) else {
            added.push(Value::Object(t.clone()));
            continue;
        };
        let mut fields = fields_changed(old, t);
        if let (Some(Value::Object(a)), Some(Value::Object(b))) =
            (old.get("status"), t.get("status"))
        {
            let status = fields_changed(a, b);
            fields.remove("status");
            if !status.is_empty() {
                fields.insert("status".into(), Value::Object(status));
            }
        }
        if !fields.is_empty() {
            fields.insert("id".into(), json!(id));
            changed.push(Value::Object(fields));
        }
    }
    if added.is_empty() && changed.is_empty() && removed.is_empty() {
        return None;
    }
    Some(json!({"added": added, "changed": changed, "removed": removed}))
}

/// The fields of `b` that differ from `a`'s, and `a`'s that `b` lacks (null).
fn fields_changed(a: &Map<String, Value>, b: &Map<String, Value>) -> Map<String, Value> {
    let mut out: Map<String, Value> = b
        .iter()
        .filter(|(k, v)| a.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for k in a.keys().filter(|k| !b.contains_key(*k)) {
        out.insert(k.clone(), Value::Null);
    }
    out
}

/// One place among the [`EVENTS_CLIENTS_MAX`] event streams, given back
/// when the stream ends.
struct EventsSlot(Arc<AtomicUsize>);

impl EventsSlot {
    fn take(count: &Arc<AtomicUsize>) -> Option<EventsSlot> {
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < EVENTS_CLIENTS_MAX).then_some(n + 1)
            })
            .ok()
            .map(|_| EventsSlot(count.clone()))
    }
}

impl Drop for EventsSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One client's stream: what it saw last (see [`diff`]).
struct EventsClient {
    app: AppState,
    seen: Option<Snapshot>,
    tick: Option<tokio::time::Interval>,
    _slot: EventsSlot,
}

/// The torrent list at connect (a `torrents` event), then every
/// [`EVENTS_INTERVAL`] what changed since (a `diff` event; none when
/// nothing did). Each client costs its last snapshot; the stream is
/// pulled, so nothing queues for a slow one: it gets the changes since
/// what it last received.
async fn events(State(app): State<AppState>) -> Response {
    let Some(slot) = EventsSlot::take(&app.events_clients) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{EVENTS_CLIENTS_MAX} event streams are open, the limit: close one"),
        );
    };
    let client = EventsClient {
        app,
        seen: None,
        tick: None,
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(client, |mut c| async move {
        loop {
            c.tick
                .get_or_insert_with(|| tokio::time::interval(EVENTS_INTERVAL))
                .tick()
                .await;
            let now = snapshot(&c.app).await;
            let event = match &c.seen {
                None => {
                    let list: Vec<&Map<String, Value>> = now.values().collect();
                    let data = serde_json::to_string(&json!({ "torrents": list }));
                    Event::default()
                        .event("torrents")
                        .data(data.unwrap_or_default())
                }
                Some(before) => match diff(before, &now) {
                    Some(d) => Event::default().event("diff").data(d.to_string()),
                    None => continue,
                },
            };
            c.seen = Some(now);
            return Some((Ok::<_, Infallible>(event), c));
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn ui_index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        crate::ui::INDEX_HTML,
    )
        .into_response()
}

async fn ui_file(Path(file): Path<String>) -> Response {
    match crate::ui::file(&file) {
        Some((mime, body)) => ([(header::CONTENT_TYPE, mime)], body).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no file {file}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(torrents: &[Value]) -> Snapshot {
        torrents
            .iter()
            .map(|t| {
                let id = t["id"].as_u64().unwrap() as u32;
                (id, t.as_object().unwrap().clone())
            })
            .collect()
    }

    #[test]
    fn a_diff_names_only_what_changed_and_null_for_what_is_gone() {
        let before = snap(&[
            json!({"id": 1, "paused": false, "status": {"state": "checking", "checked": 10, "left": 5}}),
            json!({"id": 2, "paused": true, "status": {"state": "stopped"}}),
        ]);
        assert_eq!(diff(&before, &before), None, "nothing changed: no event");
        let now = snap(&[
            json!({"id": 1, "paused": false, "status": {"state": "downloading", "left": 5}}),
            json!({"id": 3, "paused": false, "status": {"state": "checking"}}),
        ]);
        assert_eq!(
            diff(&before, &now),
            Some(json!({
                "added": [{"id": 3, "paused": false, "status": {"state": "checking"}}],
                "changed": [{"id": 1, "status": {"state": "downloading", "checked": null}}],
                "removed": [2],
            }))
        );
    }
}
