//! The live-update stream (`GET /api/v1/events`) as a client sees it: the
//! whole list at connect, then only what changed: a torrent added (whole),
//! a field changed (that field alone, with the id), a torrent removed (its
//! id). A real daemon (`swarm_daemon::run`) on loopback, a raw HTTP client.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use swarm_wire::{NewContent, TorrentBuilder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Bounds each wait for an event (they come once a second).
const EVENT_WAIT: Duration = Duration::from_secs(20);

/// A one-file torrent of `len` bytes that no one has (it stays paused).
fn torrent(name: &str, len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let hashes = data
        .chunks(16_384)
        .map(|c| Sha1::digest(c).into())
        .collect();
    TorrentBuilder::new(
        name.to_string(),
        16_384,
        NewContent::File { length: len as u64 },
        hashes,
    )
    .build()
    .expect("build torrent")
    .0
}

/// One request (Connection: close): status and body.
async fn request(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut out = String::new();
    tokio::time::timeout(EVENT_WAIT, s.read_to_string(&mut out))
        .await
        .expect("an answer in time")
        .expect("read");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The event stream, read event by event.
struct Events {
    lines: tokio::io::Lines<BufReader<TcpStream>>,
}

impl Events {
    async fn open(addr: std::net::SocketAddr) -> Events {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("send");
        let mut lines = BufReader::new(s).lines();
        // The head, up to its blank line.
        loop {
            let line = lines.next_line().await.expect("read").expect("a head");
            if line.is_empty() {
                break;
            }
        }
        Events { lines }
    }

    /// The next event: its name and data. The body is chunked: lines that
    /// are chunk sizes or keep-alive comments are skipped.
    async fn next(&mut self) -> (String, Value) {
        let read = async {
            let (mut name, mut data) = (String::new(), None);
            loop {
                let line = self.lines.next_line().await.expect("read").expect("open");
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).expect("JSON data"));
                } else if line.is_empty()
                    && let Some(d) = data.take()
                {
                    return (std::mem::take(&mut name), d);
                }
            }
        };
        tokio::time::timeout(EVENT_WAIT, read)
            .await
            .expect("an event in time")
    }

    /// The next `diff` event that `matches`; panics after 20 of them.
    async fn diff_where(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..20 {
            let (name, data) = self.next().await;
            assert_eq!(
                name, "diff",
                "after the first, every event is a diff: {data}"
            );
            if matches(&data) {
                return data;
            }
        }
        panic!("no diff with {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_the_list_then_an_add_a_change_and_a_remove_as_diffs() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = swarm_daemon::DaemonConfig {
        http: "127.0.0.1:0".parse().expect("addr"),
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        state_dir: tmp.path().join("state"),
        download_dir: tmp.path().join("downloads"),
        allow_dirs: Vec::new(),
        auth_file: None,
        watch_dir: None,
        download_limit: None,
        upload_limit: None,
        max_connections: None,
    };
    let daemon = tokio::spawn(swarm_daemon::run(
        config,
        async move {
            let _ = stop_rx.await;
        },
        move |http, _| {
            let _ = addr_tx.send(http);
        },
    ));
    let addr = addr_rx.await.expect("the daemon listens");
    let add = |name: &str| {
        let metainfo = base64::engine::general_purpose::STANDARD.encode(torrent(name, 50_000));
        json!({"metainfo": metainfo, "paused": true}).to_string()
    };
    let (code, first) = request(addr, "POST", "/api/v1/torrents", &add("first.bin")).await;
    assert_eq!(code, 201, "{first}");

    // At connect: the whole list.
    let mut events = Events::open(addr).await;
    let (name, list) = events.next().await;
    assert_eq!(name, "torrents", "{list}");
    let torrents = list["torrents"].as_array().expect("a list");
    assert_eq!(torrents.len(), 1, "{list}");
    assert_eq!(torrents[0]["id"], first["id"]);
    assert_eq!(torrents[0]["status"]["name"], "first.bin");
    assert!(
        torrents[0]["status"].get("elapsed_s").is_none(),
        "no field that changes every second: {list}"
    );

    // An add: the new torrent, whole, and nothing about the other.
    let (code, second) = request(addr, "POST", "/api/v1/torrents", &add("second.bin")).await;
    assert_eq!(code, 201, "{second}");
    let d = events
        .diff_where("the add", |d| {
            !d["added"].as_array().is_none_or(Vec::is_empty)
        })
        .await;
    assert_eq!(d["added"].as_array().map(Vec::len), Some(1), "{d}");
    let added = &d["added"][0];
    assert_eq!(added["id"], second["id"], "{d}");
    assert_eq!(added["status"]["name"], "second.bin", "whole: {d}");
    assert!(added["download_dir"].is_string(), "whole: {d}");
    assert_eq!(d["removed"], json!([]), "{d}");
    assert!(
        d["changed"]
            .as_array()
            .is_some_and(|c| c.iter().all(|t| t["id"] != first["id"])),
        "the first did not change: {d}"
    );

    // A change: the first torrent's file skipped; only what changed comes.
    let path = format!("/api/v1/torrents/{}/files", first["id"]);
    let (code, ok) = request(addr, "POST", &path, r#"{"skipped":[0]}"#).await;
    assert_eq!(code, 200, "{ok}");
    let d = events
        .diff_where("the change", |d| {
            d["changed"]
                .as_array()
                .is_some_and(|c| c.iter().any(|t| t["id"] == first["id"]))
        })
        .await;
    let changed = d["changed"]
        .as_array()
        .and_then(|c| c.iter().find(|t| t["id"] == first["id"]))
        .expect("the first changed");
    assert_eq!(changed["files_unwanted"], json!([0]), "{d}");
    for unchanged in ["download_dir", "added_unix", "paused", "files_high"] {
        assert!(
            changed.get(unchanged).is_none(),
            "{unchanged} did not change: {d}"
        );
    }
    // Of the status, only its fields that changed (what is wanted).
    let status = changed["status"].as_object().expect("status fields");
    assert!(status.contains_key("wanted_length"), "{d}");
    assert!(
        !status.contains_key("name") && !status.contains_key("info_hash"),
        "{d}"
    );
    assert_eq!(d["added"], json!([]), "{d}");

    // A remove: its id.
    let path = format!("/api/v1/torrents/{}", second["id"]);
    let (code, _) = request(addr, "DELETE", &path, "").await;
    assert_eq!(code, 200);
    let d = events
        .diff_where("the remove", |d| {
            !d["removed"].as_array().is_none_or(Vec::is_empty)
        })
        .await;
    assert_eq!(d["removed"], json!([second["id"]]), "{d}");
    assert_eq!(d["added"], json!([]), "{d}");

    let _ = stop_tx.send(());
    drop(events);
    tokio::time::timeout(EVENT_WAIT, daemon)
        .await
        .expect("the daemon stops")
        .expect("joined")
        .expect("a clean stop");
}
