//! `swarm daemon` driven by `transmission-remote` (Debian's transmission-cli:
//! a real Transmission RPC client, which does the session-id handshake
//! itself), downloading from a libtorrent seeder on loopback.
//!
//! Needs transmission-remote and /usr/bin/python3 with libtorrent: under
//! CI=true a missing one fails the test, otherwise it skips.

use std::path::PathBuf;
use std::time::Duration;

use swarm_testkit::daemon::{self, DaemonOpts, list_row, start_daemon};
use swarm_testkit::peers::{lt_seed, require_swarm_subcommand};
use swarm_testkit::{data, *};

/// Generous: the transfers take seconds; the bound only stops a hung test.
const DEADLINE: Duration = Duration::from_secs(120);

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn ready() -> bool {
    require_program(daemon::TRANSMISSION_REMOTE)
        && require_python_libtorrent()
        && require_swarm_subcommand(&swarm_bin(), "daemon")
}

/// A daemon on `t`'s `state` and `downloads` folders, peers on a free port.
fn daemon_in(t: &TestDir, name: &str, extra: Vec<String>) -> daemon::Daemon {
    start_daemon(
        &swarm_bin(),
        &t.logs(),
        name,
        &DaemonOpts {
            listen: free_addr(),
            state: &t.sub("state"),
            download_dir: &t.sub("downloads"),
            extra,
            rust_log: None,
        },
    )
}

/// Polls `-l` until torrent `id`'s row satisfies `cond`; panics with the
/// last listing and the daemon's log otherwise.
fn wait_row(d: &daemon::Daemon, id: u32, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let ok = wait_until(DEADLINE, || {
        last = d.remote(&["-l"]).text();
        list_row(&last, id).is_some_and(|r| cond(&r))
    });
    assert!(
        ok,
        "torrent {id} never {what}:\n{last}\n{}",
        d.proc.log_tail()
    );
    list_row(&last, id).unwrap_or_default()
}

#[test]
fn transmission_remote_adds_stops_starts_verifies_and_removes_a_torrent() {
    if !ready() {
        return;
    }
    let t = TestDir::new("daemon-tr");
    let content = data::tree(&t.sub("seed"), "odd-tree", data::ODD_TREE, 61);
    // A tracker, as users have: after -v the daemon finds the seeder
    // through it (libtorrent, seeding, does not dial a peer it saw
    // complete).
    let tracker_addr = free_addr();
    let torrent = make_torrent(
        &content,
        &t.path().join("tree.torrent"),
        PIECE_16_KIB,
        &[format!("http://{tracker_addr}/announce")],
    );
    let _tracker =
        Opentracker::start_at(&t.sub("tracker"), tracker_addr, &[&torrent.info_hash_hex]);
    let d = daemon_in(&t, "daemon", vec![]);
    // The seeder dials the daemon every 2 s (the endpoint refuses it until
    // the torrent is added).
    let _seeder = lt_seed(
        &t.logs(),
        "lt-seed",
        &torrent,
        &t.sub("seed"),
        free_addr(),
        &[d.peers],
    );
    let added = d.remote(&["-a", &torrent.path.display().to_string()]);
    assert!(
        added.ok && added.text().contains("success"),
        "-a: {added:?}"
    );
    // Adding it again says so and changes nothing.
    let again = d.remote(&["-a", &torrent.path.display().to_string()]);
    assert!(
        again.text().contains("duplicate"),
        "a second -a names the duplicate: {again:?}"
    );
    let row = wait_row(&d, 1, "reached 100%", |r| r.contains("100%"));
    assert!(row.contains(&torrent.name), "{row}");
    let downloaded = d.download_dir.join(&torrent.name);
    assert_same_tree(&content, &downloaded);

    // -S stops it, -s starts it again.
    assert!(d.remote(&["-t", "1", "-S"]).ok);
    wait_row(&d, 1, "stopped", |r| {
        r.contains("Stopped") || r.contains("Finished")
    });
    assert!(d.remote(&["-t", "1", "-s"]).ok);
    wait_row(&d, 1, "restarted", |r| {
        r.contains("Seeding") || r.contains("Idle")
    });

    // -i shows it.
    let info = d.remote(&["-t", "1", "-i"]).text();
    for want in [
        format!("Name: {}", torrent.name),
        format!("Hash: {}", torrent.info_hash_hex),
        "Percent Done: 100%".to_string(),
        format!("Piece Count: {}", torrent.num_pieces),
    ] {
        assert!(info.contains(&want), "-i shows {want:?}:\n{info}");
    }

    // -v reads the data again: a byte changed behind the daemon's back (the
    // file's size and time kept, so only reading finds it) is found, its
    // piece fetched again, and the files end identical.
    let victim = downloaded.join("middle.dat");
    let mtime = std::fs::metadata(&victim).unwrap().modified().unwrap();
    {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&victim)
            .unwrap();
        f.seek(SeekFrom::Start(500_000)).unwrap();
        let mut b = [0u8; 1];
        f.read_exact(&mut b).unwrap();
        f.seek(SeekFrom::Start(500_000)).unwrap();
        f.write_all(&[b[0] ^ 0xff]).unwrap();
        f.set_modified(mtime).unwrap();
    }
    assert!(compare_tree(&content, &downloaded).is_err());
    assert!(d.remote(&["-t", "1", "-v"]).ok);
    let healed = wait_until(DEADLINE, || compare_tree(&content, &downloaded).is_ok());
    assert!(
        healed,
        "after -v the changed piece is fetched again\n{}",
        d.proc.log_tail()
    );
    wait_row(&d, 1, "back at 100%", |r| r.contains("100%"));

    // SIGTERM stops it cleanly; a new daemon on the same state folder
    // lists the torrent again, under the same id, complete (its resume
    // record trusted: nothing fetched again).
    let mut d = d;
    assert!(
        d.terminate().is_some_and(|s| s.success()),
        "{}",
        d.proc.log_tail()
    );
    let d = daemon_in(&t, "daemon-again", vec![]);
    wait_row(&d, 1, "listed complete after a restart", |r| {
        r.contains("100%")
    });
    assert!(
        d.proc.stderr().contains("trusted=143 verified=0"),
        "the resume record vouched for every piece\n{}",
        d.proc.log_tail()
    );

    // --move puts the data elsewhere (under an allowed folder) and the
    // torrent carries on there; a folder outside the allowed ones is
    // refused with the reason.
    let outside = d.remote(&["-t", "1", "--move", "/tmp/not-allowed-for-swarm"]);
    assert!(
        outside.text().contains("refused"),
        "a folder outside the allowed roots: {outside:?}"
    );
    let moved_dir = d.download_dir.join("moved");
    let moved = d.remote(&["-t", "1", "--move", &moved_dir.display().to_string()]);
    assert!(
        moved.ok && moved.text().contains("success"),
        "--move: {moved:?}"
    );
    assert_same_tree(&content, &moved_dir.join(&torrent.name));
    assert!(!downloaded.exists(), "nothing left at the old place");
    wait_row(&d, 1, "100% at the new place", |r| r.contains("100%"));
    let info = d.remote(&["-t", "1", "-i"]).text();
    assert!(
        info.contains(&format!("Location: {}", moved_dir.display())),
        "-i shows the new location:\n{info}"
    );
    let downloaded = moved_dir.join(&torrent.name);

    // --remove-and-delete removes it and its data.
    assert!(d.remote(&["-t", "1", "--remove-and-delete"]).ok);
    let gone = wait_until(DEADLINE, || {
        list_row(&d.remote(&["-l"]).text(), 1).is_none()
    });
    assert!(gone, "the torrent left the list");
    assert!(
        !downloaded.exists(),
        "its data is deleted: {:?}",
        data::list_files(&d.download_dir)
    );
    assert!(
        !d.state
            .join("torrents")
            .join(format!("{}.torrent", torrent.info_hash_hex))
            .exists()
    );
}

#[test]
fn with_an_auth_file_requests_need_credentials_and_a_second_daemon_is_refused() {
    if !require_program(daemon::TRANSMISSION_REMOTE)
        || !require_swarm_subcommand(&swarm_bin(), "daemon")
    {
        return;
    }
    let t = TestDir::new("daemon-auth");
    let auth = t.path().join("auth");
    std::fs::write(&auth, "alice:s3cret\n").unwrap();
    let state = t.sub("state");
    let d = daemon_in(
        &t,
        "daemon",
        vec!["--auth-file".into(), auth.display().to_string()],
    );
    let refused = d.remote(&["-l"]);
    assert!(
        !refused.ok && refused.text().contains("401"),
        "no credentials: refused: {refused:?}"
    );
    let wrong = d.remote(&["-n", "alice:wrong", "-l"]);
    assert!(
        !wrong.ok && wrong.text().contains("401"),
        "wrong password: {wrong:?}"
    );
    let listed = d.remote(&["-n", "alice:s3cret", "-l"]);
    assert!(
        listed.ok && listed.text().contains("Sum:"),
        "right credentials: {listed:?}"
    );

    // A second daemon on the same state folder is refused, clearly.
    let second = std::process::Command::new(swarm_bin())
        .args(["daemon", "--http", "127.0.0.1:0", "--listen"])
        .arg(free_addr().to_string())
        .arg("--state")
        .arg(&state)
        .arg("--download-dir")
        .arg(t.sub("downloads"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another swarm daemon uses the state folder")
            && stderr.contains(&d.proc.pid().to_string()),
        "{stderr}"
    );
}

#[test]
fn a_torrent_dropped_in_the_watch_folder_is_added_and_a_bad_one_is_set_aside() {
    if !(require_program(daemon::TRANSMISSION_REMOTE)
        && require_python_libtorrent()
        && require_swarm_subcommand(&swarm_bin(), "daemon"))
    {
        return;
    }
    let t = TestDir::new("daemon-watch");
    let content = data::single_file(&t.sub("seed"), "watched.bin", 100_000, 7);
    let torrent = make_torrent(&content, &t.path().join("w.torrent"), PIECE_16_KIB, &[]);
    let watch = t.sub("watch");
    std::fs::create_dir_all(&watch).unwrap();
    let d = daemon_in(
        &t,
        "daemon",
        vec!["--watch-dir".into(), watch.display().to_string()],
    );
    std::fs::copy(&torrent.path, watch.join("dropped.torrent")).unwrap();
    std::fs::write(watch.join("broken.torrent"), b"d4:infoi3ee").unwrap();
    let mut last = String::new();
    let listed = wait_until(DEADLINE, || {
        last = d.remote(&["-l"]).text();
        list_row(&last, 1).is_some_and(|r| r.contains(&torrent.name))
    });
    assert!(
        listed,
        "the dropped torrent is listed:\n{last}\n{}",
        d.proc.log_tail()
    );
    let renamed = wait_until(DEADLINE, || {
        watch.join("dropped.torrent.added").exists()
            && watch.join("broken.torrent.invalid").exists()
    });
    assert!(
        renamed,
        "the added one is renamed .added, the broken one .invalid: {:?}",
        std::fs::read_dir(&watch)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    assert!(
        list_row(&last, 2).is_none(),
        "nothing else was added:\n{last}"
    );
}

#[test]
fn transmission_remote_adds_a_magnet_link_whose_metadata_comes_from_libtorrent() {
    if !ready() {
        return;
    }
    let t = TestDir::new("daemon-magnet");
    let content = data::tree(&t.sub("seed"), "magnet-tree", data::ODD_TREE, 62);
    let torrent = make_torrent(&content, &t.path().join("m.torrent"), PIECE_16_KIB, &[]);
    let d = daemon_in(&t, "daemon", vec![]);
    let seeder = lt_seed(
        &t.logs(),
        "lt-seed",
        &torrent,
        &t.sub("seed"),
        free_addr(),
        &[d.peers],
    );
    // The link names the seeder (x.pe): the daemon asks it for the
    // metadata (BEP 9), then downloads.
    let link = format!(
        "magnet:?xt=urn:btih:{}&dn={}&x.pe={}",
        torrent.info_hash_hex, torrent.name, seeder.listen
    );
    let added = d.remote(&["-a", &link]);
    assert!(
        added.ok && added.text().contains("success"),
        "-a MAGNET: {added:?}"
    );
    let row = wait_row(&d, 1, "reached 100%", |r| r.contains("100%"));
    assert!(row.contains(&torrent.name), "{row}");
    assert_same_tree(&content, &d.download_dir.join(&torrent.name));
    let kept = d
        .state
        .join("torrents")
        .join(format!("{}.torrent", torrent.info_hash_hex));
    assert!(
        wait_until(DEADLINE, || kept.exists()),
        "the fetched metadata is kept as the torrent's metainfo"
    );
    let info = d.remote(&["-t", "1", "-i"]).text();
    assert!(
        info.contains(&format!("Piece Count: {}", torrent.num_pieces)),
        "-i knows the pieces once the metadata came:\n{info}"
    );
}

#[test]
fn with_a_download_queue_of_one_the_second_torrent_waits_queued() {
    if !(require_program(daemon::TRANSMISSION_REMOTE)
        && require_python_libtorrent()
        && require_swarm_subcommand(&swarm_bin(), "daemon"))
    {
        return;
    }
    let t = TestDir::new("daemon-queue");
    // No seeder: both downloads stay incomplete, so the queue holds.
    let torrents: Vec<TorrentFile> = (0..2)
        .map(|i| {
            let c = data::single_file(&t.sub("content"), &format!("q{i}.bin"), 50_000, 20 + i);
            make_torrent(
                &c,
                &t.path().join(format!("q{i}.torrent")),
                PIECE_16_KIB,
                &[],
            )
        })
        .collect();
    let d = daemon_in(&t, "daemon", vec![]);
    let set = daemon::rpc(
        d.http,
        &serde_json::json!({"method": "session-set",
            "arguments": {"download-queue-enabled": true, "download-queue-size": 1}}),
    );
    assert_eq!(set["result"], "success", "{set}");
    for tf in &torrents {
        assert!(d.remote(&["-a", &tf.path.display().to_string()]).ok);
    }
    wait_row(&d, 2, "queued", |r| r.contains("Queued"));
    let first = list_row(&d.remote(&["-l"]).text(), 1).unwrap_or_default();
    assert!(!first.contains("Queued"), "the first one runs: {first}");
    // Stopping the first frees the slot: the second starts.
    assert!(d.remote(&["-t", "1", "-S"]).ok);
    wait_row(&d, 2, "started once the slot was free", |r| {
        !r.contains("Queued")
    });
    let got = daemon::rpc(
        d.http,
        &serde_json::json!({"method": "session-get", "arguments": {"fields": ["download-queue-size", "download-queue-enabled"]}}),
    );
    assert_eq!(got["arguments"]["download-queue-size"], 1, "{got}");
    // The table format: the field names, then one row per torrent (an
    // unknown field is null there), and a tag comes back.
    let table = daemon::rpc(
        d.http,
        &serde_json::json!({"method": "torrent-get", "tag": 7, "arguments": {"format": "table", "fields": ["id", "nosuchfield", "name"]}}),
    );
    assert_eq!(table["result"], "success", "{table}");
    assert_eq!(table["tag"], 7, "{table}");
    let rows = table["arguments"]["torrents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), 3, "names and two torrents: {table}");
    assert_eq!(rows[0], serde_json::json!(["id", "nosuchfield", "name"]));
    assert_eq!(rows[1][0], 1, "{table}");
    assert!(rows[1][1].is_null() && rows[2][2].is_string(), "{table}");
    let objects = daemon::rpc(
        d.http,
        &serde_json::json!({"method": "torrent-get", "arguments": {"ids": [2], "fields": ["id", "nosuchfield"]}}),
    );
    assert_eq!(
        objects["arguments"]["torrents"],
        serde_json::json!([{"id": 2}]),
        "an unknown field is left out"
    );
    // Malformed requests get a clear answer, not a crash.
    let unknown = daemon::rpc(d.http, &serde_json::json!({"method": "torrent-frobnicate"}));
    assert_eq!(unknown["result"], "method name not recognized");
    let wrong = daemon::rpc(
        d.http,
        &serde_json::json!({"method": "torrent-get", "arguments": {"fields": ["id"], "ids": [{"no": 1}]}}),
    );
    assert!(
        wrong["result"]
            .as_str()
            .is_some_and(|r| r.contains("invalid torrent id")),
        "{wrong}"
    );
}

/// Files that share pieces at 16 KiB (without pad files): skipping
/// `b.bin` leaves pieces 3 and 4 out and keeps its bytes of pieces 2 and 5
/// in the parts file.
const SKIP_TREE: &[(&str, u64)] = &[("a.bin", 40_000), ("b.bin", 50_000), ("c.bin", 30_001)];

#[test]
fn transmission_remote_skips_a_file_that_is_then_not_on_disk_and_gets_it_later() {
    if !ready() {
        return;
    }
    let t = TestDir::new("daemon-skip");
    let content = data::tree(&t.sub("seed"), "skip-tree", SKIP_TREE, 63);
    // libtorrent's defaults (v1+v2 hybrid: pad files, no piece shared),
    // and a v1 torrent (pieces shared by neighbouring files).
    let torrents = [
        make_hybrid_torrent(&content, &t.path().join("hybrid.torrent"), PIECE_16_KIB),
        make_torrent(&content, &t.path().join("v1.torrent"), PIECE_16_KIB, &[]),
    ];
    let d = daemon_in(&t, "daemon", vec![]);
    let mut seeders = Vec::new();
    for (i, tf) in torrents.iter().enumerate() {
        let id = (i + 1).to_string();
        // Into its own folder: the two torrents have the same name.
        let dir = d.download_dir.join(&id);
        let added = d.remote(&[
            "-a",
            &tf.path.display().to_string(),
            "-w",
            &dir.display().to_string(),
        ]);
        assert!(
            added.ok && added.text().contains("success"),
            "-a: {added:?}"
        );
        let skipped = d.remote(&["-t", &id, "-G", "1"]);
        assert!(
            skipped.ok && skipped.text().contains("success"),
            "-G 1: {skipped:?}"
        );
        // The seeder starts once the choice is made.
        seeders.push(lt_seed(
            &t.logs(),
            &format!("lt-seed-{id}"),
            tf,
            &t.sub("seed"),
            free_addr(),
            &[d.peers],
        ));
    }
    for (i, _) in torrents.iter().enumerate() {
        let id = (i + 1) as u32;
        let row = wait_row(&d, id, "reached 100% of what is wanted", |r| {
            r.contains("100%")
        });
        assert!(!row.contains("Queued"), "{row}");
        let files = daemon::rpc(
            d.http,
            &serde_json::json!({"method": "torrent-get", "arguments": {"ids": [id], "fields": ["id", "files", "fileStats", "sizeWhenDone", "totalSize"]}}),
        );
        let got = &files["arguments"]["torrents"][0];
        assert_eq!(got["files"][1]["name"], "skip-tree/b.bin", "{got}");
        assert_eq!(got["fileStats"][1]["wanted"], false, "{got}");
        // Real bytes per file: a.bin whole; of b.bin, nothing (hybrid: no
        // shared piece) or its bytes in the shared pieces 2 and 5 (v1:
        // 49152 - 40000 + 90000 - 81920).
        assert_eq!(got["fileStats"][0]["bytesCompleted"], 40_000, "{got}");
        let b_done = if i == 0 { 0 } else { 9_152 + 8_080 };
        assert_eq!(got["fileStats"][1]["bytesCompleted"], b_done, "{got}");
        assert!(
            got["sizeWhenDone"].as_u64() < got["totalSize"].as_u64(),
            "{got}"
        );
        let root = d.download_dir.join(id.to_string()).join("skip-tree");
        assert!(
            !root.join("b.bin").exists(),
            "a skipped file is not on disk"
        );
        for name in ["a.bin", "c.bin"] {
            assert_eq!(
                std::fs::read(root.join(name)).unwrap(),
                std::fs::read(content.join(name)).unwrap(),
                "{name} of torrent {id} is identical"
            );
        }
    }
    // The v1 torrent's shared bytes of b.bin wait in its parts file.
    let parts = d
        .state
        .join("resume")
        .join(format!("{}.parts", torrents[1].info_hash_hex));
    assert!(parts.exists(), "the parts file beside the resume record");
    let listing = d.remote(&["-t", "2", "-f"]).text();
    assert!(
        listing.contains("No"),
        "-f shows the skipped file:\n{listing}"
    );

    // -g 1 brings it in, complete; the parts file is gone.
    for (i, _) in torrents.iter().enumerate() {
        let id = (i + 1).to_string();
        let wanted = d.remote(&["-t", &id, "-g", "1"]);
        assert!(
            wanted.ok && wanted.text().contains("success"),
            "-g 1: {wanted:?}"
        );
    }
    for i in 0..torrents.len() {
        let root = d.download_dir.join((i + 1).to_string()).join("skip-tree");
        let whole = wait_until(DEADLINE, || compare_tree(&content, &root).is_ok());
        assert!(
            whole,
            "torrent {} has every file after -g 1: {:?}\n{}",
            i + 1,
            compare_tree(&content, &root),
            d.proc.log_tail()
        );
        wait_row(&d, (i + 1) as u32, "back at 100%", |r| r.contains("100%"));
    }
    assert!(!parts.exists(), "no skipped file left: no parts file");
    // -G and -g applied to the running torrents: neither restarted.
    assert_eq!(
        d.proc.stderr().matches("session started").count(),
        2,
        "{}",
        d.proc.log_tail()
    );
}

/// `torrent-get` fields of torrent 1 (one RPC call).
fn torrent_fields(d: &daemon::Daemon, fields: &[&str]) -> serde_json::Value {
    let got = daemon::rpc(
        d.http,
        &serde_json::json!({"method": "torrent-get", "arguments": {"ids": [1], "fields": fields}}),
    );
    got["arguments"]["torrents"][0].clone()
}

#[test]
fn session_and_torrent_limits_take_effect_on_the_running_daemon_without_a_restart() {
    if !ready() {
        return;
    }
    let t = TestDir::new("daemon-limits");
    // No seeder: the torrent keeps downloading (nothing), so its
    // secondsDownloading grows from its start and would drop to 0 if it
    // were restarted.
    let content = data::single_file(&t.sub("content"), "lim.bin", 50_000, 31);
    let torrent = make_torrent(&content, &t.path().join("l.torrent"), PIECE_16_KIB, &[]);
    let d = daemon_in(&t, "daemon", vec![]);
    assert!(d.remote(&["-a", &torrent.path.display().to_string()]).ok);
    let running = wait_until(DEADLINE, || {
        torrent_fields(&d, &["secondsDownloading"])["secondsDownloading"]
            .as_u64()
            .is_some_and(|s| s >= 2)
    });
    assert!(running, "the torrent runs\n{}", d.proc.log_tail());
    let before = torrent_fields(&d, &["secondsDownloading"])["secondsDownloading"]
        .as_u64()
        .unwrap();

    // Global limits and the connection cap (session-set), read back from
    // what the running client enforces.
    let set = d.remote(&["-d", "300", "-u", "200", "-pr", "20"]);
    assert!(set.ok, "{set:?}");
    let session = |d: &daemon::Daemon| {
        daemon::rpc(d.http, &serde_json::json!({"method": "session-get"}))["arguments"].clone()
    };
    let s = session(&d);
    assert_eq!(s["speed-limit-down"], 300, "{s}");
    assert_eq!(s["speed-limit-down-enabled"], true, "{s}");
    assert_eq!(s["speed-limit-up"], 200, "{s}");
    assert_eq!(s["peer-limit-global"], 20, "{s}");
    // Off again: the value is kept, the limit gone.
    assert!(d.remote(&["-D"]).ok);
    let s = session(&d);
    assert_eq!(s["speed-limit-down-enabled"], false, "{s}");
    assert_eq!(s["speed-limit-down"], 300, "{s}");
    assert_eq!(s["speed-limit-up-enabled"], true, "{s}");

    // The torrent's own limits: applied without a restart.
    assert!(d.remote(&["-t", "1", "-d", "50", "-u", "20"]).ok);
    let got = torrent_fields(
        &d,
        &[
            "downloadLimit",
            "downloadLimited",
            "uploadLimit",
            "uploadLimited",
            "secondsDownloading",
        ],
    );
    assert_eq!(got["downloadLimit"], 50, "{got}");
    assert_eq!(got["downloadLimited"], true, "{got}");
    assert_eq!(got["uploadLimit"], 20, "{got}");
    assert!(
        got["secondsDownloading"].as_u64().unwrap() >= before,
        "not restarted: {got} (was {before} s)"
    );
    assert!(
        !d.proc.stderr().contains("torrent stopped"),
        "{}",
        d.proc.log_tail()
    );
}

#[test]
fn a_torrent_stops_at_its_seed_ratio_or_idle_time_as_transmission_does() {
    if !ready() {
        return;
    }
    let t = TestDir::new("daemon-seedlimits");
    let d = daemon_in(&t, "daemon", vec![]);
    // Two torrents whose data is already in place: complete once checked.
    for i in 0..2u64 {
        let name = format!("s{i}.bin");
        let c = data::single_file(&t.sub("content"), &name, 40_000, 40 + i);
        let tf = make_torrent(
            &c,
            &t.path().join(format!("s{i}.torrent")),
            PIECE_16_KIB,
            &[],
        );
        std::fs::create_dir_all(&d.download_dir).unwrap();
        std::fs::copy(&c, d.download_dir.join(&name)).unwrap();
        assert!(d.remote(&["-a", &tf.path.display().to_string()]).ok);
    }
    for id in [1, 2] {
        wait_row(&d, id, "seeding", |r| {
            r.contains("100%") && (r.contains("Seeding") || r.contains("Idle"))
        });
    }
    let fields = |id: u32| {
        daemon::rpc(
            d.http,
            &serde_json::json!({"method": "torrent-get", "arguments": {"ids": [id],
                "fields": ["seedRatioLimit", "seedRatioMode", "seedIdleLimit", "seedIdleMode", "isFinished", "peer-limit"]}}),
        )["arguments"]["torrents"][0]
            .clone()
    };
    let before = fields(1);
    assert_eq!(before["seedRatioMode"], 0, "{before}");
    assert_eq!(before["seedRatioLimit"], 2.0, "{before}");
    assert_eq!(before["peer-limit"], 50, "{before}");
    // Torrent 1: its own ratio, 0 (reached at once: nothing uploaded,
    // 0 >= 0): transmission-remote -sr.
    assert!(d.remote(&["-t", "1", "-sr", "0"]).ok);
    let row = wait_row(&d, 1, "finished at its seed ratio", |r| {
        r.contains("Finished")
    });
    assert!(row.contains("100%"), "{row}");
    let after = fields(1);
    assert_eq!(after["seedRatioMode"], 1, "{after}");
    assert_eq!(after["seedRatioLimit"], 0.0, "{after}");
    assert_eq!(after["isFinished"], true, "{after}");
    // Torrent 2 seeds on meanwhile; then the session's idle limit (0 min:
    // idle since it completed) stops it too.
    let two = list_row(&d.remote(&["-l"]).text(), 2).unwrap_or_default();
    assert!(!two.contains("Finished"), "{two}");
    let set = daemon::rpc(
        d.http,
        &serde_json::json!({"method": "session-set", "arguments": {"idle-seeding-limit-enabled": true, "idle-seeding-limit": 0}}),
    );
    assert_eq!(set["result"], "success", "{set}");
    wait_row(&d, 2, "finished at the idle limit", |r| {
        r.contains("Finished")
    });
    let s = daemon::rpc(d.http, &serde_json::json!({"method": "session-get"}))["arguments"].clone();
    assert_eq!(s["idle-seeding-limit-enabled"], true, "{s}");
    assert_eq!(s["idle-seeding-limit"], 0, "{s}");
    assert_eq!(fields(2)["seedIdleMode"], 0);
}

#[test]
fn tracker_stats_say_what_opentracker_answered_and_why_an_unreachable_tracker_failed() {
    if !(require_program(daemon::TRANSMISSION_REMOTE)
        && require_program("opentracker")
        && require_swarm_subcommand(&swarm_bin(), "daemon"))
    {
        return;
    }
    let t = TestDir::new("daemon-trackers");
    let tracker_addr = free_addr();
    // Nothing listens on the second tracker's port: its connection is refused.
    let dead = format!("http://{}/announce", free_addr());
    let d = daemon_in(&t, "daemon", vec![]);
    let mut torrents = Vec::new();
    for (i, url) in [format!("http://{tracker_addr}/announce"), dead.clone()]
        .iter()
        .enumerate()
    {
        let name = format!("tr{i}.bin");
        let c = data::single_file(&t.sub("content"), &name, 40_000, 50 + i as u64);
        let tf = make_torrent(
            &c,
            &t.path().join(format!("tr{i}.torrent")),
            PIECE_16_KIB,
            std::slice::from_ref(url),
        );
        // Its data in place: it seeds once checked.
        std::fs::create_dir_all(&d.download_dir).unwrap();
        std::fs::copy(&c, d.download_dir.join(&name)).unwrap();
        torrents.push(tf);
    }
    let _tracker = Opentracker::start_at(
        &t.sub("tracker"),
        tracker_addr,
        &[&torrents[0].info_hash_hex],
    );
    for tf in &torrents {
        assert!(d.remote(&["-a", &tf.path.display().to_string()]).ok);
    }
    let stats = |id: u32| {
        daemon::rpc(
            d.http,
            &serde_json::json!({"method": "torrent-get", "arguments": {"ids": [id], "fields": ["trackerStats"]}}),
        )["arguments"]["torrents"][0]["trackerStats"][0]
            .clone()
    };
    let mut last = serde_json::Value::Null;
    let answered = wait_until(DEADLINE, || {
        last = stats(1);
        last["hasAnnounced"] == true && last["seederCount"].as_i64() >= Some(1)
    });
    assert!(
        answered,
        "opentracker's answer reaches trackerStats: {last}\n{}",
        d.proc.log_tail()
    );
    assert_eq!(last["lastAnnounceSucceeded"], true, "{last}");
    assert_eq!(last["lastAnnounceResult"], "Success", "{last}");
    assert_eq!(last["host"], format!("http://{tracker_addr}"), "{last}");
    assert_eq!(last["leecherCount"], 0, "{last}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = last["lastAnnounceTime"].as_u64().unwrap_or(0);
    assert!(at > 0 && at <= now, "a time of this run: {last}");
    assert!(
        last["nextAnnounceTime"].as_u64() > Some(at),
        "the next announce is due later: {last}"
    );

    let failed = wait_until(DEADLINE, || {
        last = stats(2);
        last["hasAnnounced"] == true
    });
    assert!(failed, "the dead tracker was tried: {last}");
    assert_eq!(last["lastAnnounceSucceeded"], false, "{last}");
    let why = last["lastAnnounceResult"].as_str().unwrap_or_default();
    assert!(!why.is_empty() && why != "Success", "{last}");
    assert_eq!(last["seederCount"], -1, "{last}");
    // transmission-remote shows both.
    let shown = d.remote(&["-t", "1", "-it"]).text();
    assert!(shown.contains("Got a list of"), "{shown}");
    let shown = d.remote(&["-t", "2", "-it"]).text();
    assert!(shown.contains("Got an error"), "{shown}");
}

/// A bigger `SKIP_TREE`: long enough at the test's rate limit to change
/// the choice mid-download.
const RECHOOSE_TREE: &[(&str, u64)] = &[("a.bin", 400_000), ("b.bin", 500_000), ("c.bin", 300_001)];

#[test]
fn changing_the_file_choice_mid_download_does_not_restart_the_torrent() {
    if !ready() {
        return;
    }
    let t = TestDir::new("daemon-rechoose");
    let content = data::tree(&t.sub("seed"), "rechoose-tree", RECHOOSE_TREE, 64);
    let torrent = make_torrent(&content, &t.path().join("r.torrent"), PIECE_16_KIB, &[]);
    let d = daemon_in(&t, "daemon", vec![]);
    // 150 kB/s: the 1.2 MB take ~8 s, long enough to act mid-way.
    assert!(d.remote(&["-d", "150"]).ok);
    let _seeder = lt_seed(
        &t.logs(),
        "lt-seed",
        &torrent,
        &t.sub("seed"),
        free_addr(),
        &[d.peers],
    );
    assert!(d.remote(&["-a", &torrent.path.display().to_string()]).ok);
    let fields = [
        "haveValid",
        "percentDone",
        "secondsDownloading",
        "secondsSeeding",
        "peersConnected",
        "sizeWhenDone",
        "totalSize",
        "downloadedEver",
        "corruptEver",
        "fileStats",
    ];
    // Every poll: what is verified never shrinks.
    let mut have_seen = 0;
    let mut poll = |d: &daemon::Daemon| {
        let got = torrent_fields(d, &fields);
        let have = got["haveValid"].as_u64().unwrap_or(0);
        assert!(have >= have_seen, "a verified piece was lost: {got}");
        have_seen = have;
        got
    };
    let mut got = serde_json::Value::Null;
    let midway = wait_until(DEADLINE, || {
        got = poll(&d);
        got["haveValid"].as_u64() > Some(0) && got["percentDone"].as_f64() < Some(0.5)
    });
    assert!(midway, "the download is under way: {got}");
    let before = got.clone();

    // Skip b.bin mid-download.
    assert!(d.remote(&["-t", "1", "-G", "1"]).ok);
    let mut got = serde_json::Value::Null;
    let applied = wait_until(Duration::from_secs(10), || {
        got = poll(&d);
        got["sizeWhenDone"].as_u64() < got["totalSize"].as_u64()
    });
    assert!(applied, "the running torrent takes the choice: {got}");
    assert!(
        got["secondsDownloading"].as_u64() >= before["secondsDownloading"].as_u64()
            && got["peersConnected"].as_u64() >= Some(1),
        "not restarted: {got} (before: {before})"
    );
    assert!(d.remote(&["-D"]).ok);
    let mut got = serde_json::Value::Null;
    let wanted_done = wait_until(DEADLINE, || {
        got = poll(&d);
        got["percentDone"].as_f64() == Some(1.0)
    });
    assert!(wanted_done, "what is wanted completes: {got}");
    assert_eq!(got["fileStats"][1]["wanted"], false, "{got}");
    let root = d.download_dir.join("rechoose-tree");
    for name in ["a.bin", "c.bin"] {
        assert_eq!(
            std::fs::read(root.join(name)).unwrap(),
            std::fs::read(content.join(name)).unwrap(),
            "{name} is identical"
        );
    }

    // Wanted again: the rest of b.bin comes, still without a restart.
    assert!(d.remote(&["-t", "1", "-g", "1"]).ok);
    let whole = wait_until(DEADLINE, || {
        poll(&d);
        compare_tree(&content, &root).is_ok()
    });
    assert!(
        whole,
        "every file identical: {:?}\n{}",
        compare_tree(&content, &root),
        d.proc.log_tail()
    );
    let got = poll(&d);
    // Complete, its time counts as seeding (the session's time since it
    // started: it would be ~0 after a restart).
    let secs = |v: &serde_json::Value| {
        v["secondsDownloading"].as_u64().unwrap_or(0) + v["secondsSeeding"].as_u64().unwrap_or(0)
    };
    assert!(secs(&got) >= secs(&before), "not restarted: {got}");
    // Nothing fetched twice: this one session downloaded each byte once.
    let total = got["totalSize"].as_u64().unwrap();
    let fetched = got["downloadedEver"].as_u64().unwrap() - got["corruptEver"].as_u64().unwrap();
    assert!(
        fetched <= total,
        "{fetched} bytes fetched for {total}: {got}"
    );
    let log = d.proc.stderr();
    assert_eq!(
        log.matches("session started").count(),
        1,
        "one session from start to end\n{}",
        d.proc.log_tail()
    );
    assert_eq!(
        log.matches("new file choice: applied without a restart")
            .count(),
        2,
        "{}",
        d.proc.log_tail()
    );
}

#[test]
fn a_torrents_peer_limit_caps_its_connections_at_once_and_is_read_back() {
    if !ready() {
        return;
    }
    let t = TestDir::new("daemon-peerlimit");
    let content = data::single_file(&t.sub("seed"), "pl.bin", 2_000_000, 65);
    let torrent = make_torrent(&content, &t.path().join("pl.torrent"), PIECE_16_KIB, &[]);
    let d = daemon_in(&t, "daemon", vec![]);
    assert!(d.remote(&["-a", &torrent.path.display().to_string()]).ok);
    // Slowly (20 kB/s): it keeps downloading, so both seeders stay.
    assert!(d.remote(&["-t", "1", "-d", "20"]).ok);
    let _seeders: Vec<_> = (0..2)
        .map(|i| {
            lt_seed(
                &t.logs(),
                &format!("lt-seed-{i}"),
                &torrent,
                &t.sub("seed"),
                free_addr(),
                &[d.peers],
            )
        })
        .collect();
    let peers = |d: &daemon::Daemon| {
        torrent_fields(d, &["peersConnected"])["peersConnected"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(
        wait_until(DEADLINE, || peers(&d) == 2),
        "both seeders connect\n{}",
        d.proc.log_tail()
    );
    // transmission-remote -t 1 -pr 1: torrent-set peer-limit.
    assert!(d.remote(&["-t", "1", "-pr", "1"]).ok);
    assert_eq!(torrent_fields(&d, &["peer-limit"])["peer-limit"], 1);
    assert!(
        wait_until(Duration::from_secs(10), || peers(&d) == 1),
        "one connection closes at once\n{}",
        d.proc.log_tail()
    );
    // The other seeder redials every 2 s: refused while the cap holds.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(400));
        assert!(peers(&d) <= 1, "the cap holds");
    }
    // Raised again: the second seeder gets back in.
    assert!(d.remote(&["-t", "1", "-pr", "5"]).ok);
    assert_eq!(torrent_fields(&d, &["peer-limit"])["peer-limit"], 5);
    assert!(
        wait_until(DEADLINE, || peers(&d) == 2),
        "both again under the raised cap\n{}",
        d.proc.log_tail()
    );
}

#[test]
fn downloaded_ever_and_the_seed_ratio_count_every_run_across_a_restart() {
    if !ready() {
        return;
    }
    let t = TestDir::new("daemon-ever");
    let content = data::single_file(&t.sub("seed"), "ever.bin", 300_000, 66);
    let torrent = make_torrent(&content, &t.path().join("e.torrent"), PIECE_16_KIB, &[]);
    let d = daemon_in(&t, "daemon", vec![]);
    assert!(d.remote(&["-a", &torrent.path.display().to_string()]).ok);
    let seeder = lt_seed(
        &t.logs(),
        "lt-seed",
        &torrent,
        &t.sub("seed"),
        free_addr(),
        &[d.peers],
    );
    wait_row(&d, 1, "downloaded", |r| r.contains("100%"));
    let ever =
        |d: &daemon::Daemon| torrent_fields(d, &["uploadedEver", "downloadedEver", "uploadRatio"]);
    let mut got = serde_json::Value::Null;
    let counted = wait_until(DEADLINE, || {
        got = ever(&d);
        got["downloadedEver"].as_u64() >= Some(300_000)
    });
    assert!(counted, "{got}");
    drop(seeder);
    let mut d = d;
    assert!(d.terminate().is_some_and(|s| s.success()));

    // After a restart this run has downloaded nothing; the counts over
    // both runs are still there (and the ratio is over them).
    let d = daemon_in(&t, "daemon-again", vec![]);
    wait_row(&d, 1, "seeding again", |r| r.contains("100%"));
    let again = ever(&d);
    assert_eq!(again["downloadedEver"], got["downloadedEver"], "{again}");
    assert_eq!(again["uploadRatio"], got["uploadRatio"], "{again}");
    let record = std::fs::read_to_string(
        d.state
            .join("torrents")
            .join(format!("{}.json", torrent.info_hash_hex)),
    )
    .unwrap();
    assert!(record.contains("\"downloaded_ever\""), "{record}");
}

/// The payload bytes a libtorrent peer received, from its last status
/// line (`total_payload_download`: every payload byte, redundant ones too).
fn lt_payload_received(peer: &Peer) -> u64 {
    peer.proc
        .json_lines()
        .iter()
        .filter_map(|v| v["payload_download"].as_u64())
        .max()
        .unwrap_or(0)
}

/// A libtorrent leecher downloads the whole torrent from the daemon
/// (seeding); what it received, payload only, and once it has stopped.
fn leech_from(t: &TestDir, d: &daemon::Daemon, torrent: &TorrentFile, name: &str) -> u64 {
    let mut leecher = swarm_testkit::peers::lt_leech(
        &t.logs(),
        name,
        torrent,
        &t.sub(name),
        free_addr(),
        &[d.peers],
    );
    wait_all_complete(&mut [&mut leecher], DEADLINE);
    assert_same_tree(
        &d.download_dir.join(&torrent.name),
        &leecher.content(torrent),
    );
    // Its count once complete (it prints a line at the state change and
    // every 0.5 s): a seed with a seed for a neighbour gets nothing more.
    let n = leecher.proc.json_lines().len();
    wait_until(DEADLINE, || leecher.proc.json_lines().len() >= n + 2);
    let got = lt_payload_received(&leecher);
    drop(leecher);
    got
}

/// Above what the leechers received, the daemon may have counted blocks
/// it queued that never reached them (a connection closed under them, an
/// end-game duplicate cancelled): a few blocks at most.
const UPLOAD_SLACK_BYTES: u64 = 4 * 16 * 1024;

#[test]
fn uploaded_ever_counts_what_a_libtorrent_leecher_received_across_a_restart() {
    if !ready() {
        return;
    }
    let t = TestDir::new("daemon-upload");
    let mut d = daemon_in(&t, "daemon", vec![]);
    // The daemon seeds data already in its download folder. Small: the
    // whole upload takes less than the session's status interval (the case
    // that showed 0 uploaded).
    let content = data::single_file(&d.download_dir, "up.bin", 300_000 + 777, 67);
    let torrent = make_torrent(&content, &t.path().join("up.torrent"), PIECE_16_KIB, &[]);
    assert!(d.remote(&["-a", &torrent.path.display().to_string()]).ok);
    wait_row(&d, 1, "seeding what it has", |r| r.contains("100%"));
    // Its resume record saved: the seed has nothing left to do and sleeps,
    // so the leecher wakes it (as idle seeds in a daemon are).
    let record = d
        .state
        .join("resume")
        .join(format!("{}.resume", torrent.info_hash_hex));
    assert!(
        wait_until(DEADLINE, || record.exists()),
        "{}",
        record.display()
    );
    let uploaded =
        |d: &daemon::Daemon| torrent_fields(d, &["uploadedEver"])["uploadedEver"].as_u64();

    let first = leech_from(&t, &d, &torrent, "lt-leech-1");
    assert!(first >= torrent.total_size, "libtorrent received {first}");
    let mut shown = None;
    let counted = wait_until(Duration::from_secs(20), || {
        shown = uploaded(&d);
        shown >= Some(first)
    });
    assert!(
        counted,
        "uploadedEver {shown:?} after libtorrent received {first} payload bytes\n{}",
        d.proc.log_tail()
    );
    let up1 = shown.unwrap_or(0);
    assert!(
        up1 <= first + UPLOAD_SLACK_BYTES,
        "uploadedEver {up1}, libtorrent received {first}"
    );

    // Kept across a restart, and this run's uploads add to it.
    assert!(d.terminate().is_some_and(|s| s.success()));
    let d = daemon_in(&t, "daemon-again", vec![]);
    wait_row(&d, 1, "seeding again", |r| r.contains("100%"));
    assert_eq!(uploaded(&d), Some(up1), "uploadedEver after the restart");
    let second = leech_from(&t, &d, &torrent, "lt-leech-2");
    let counted = wait_until(Duration::from_secs(20), || {
        shown = uploaded(&d);
        shown >= Some(up1 + second)
    });
    assert!(
        counted,
        "uploadedEver {shown:?}: {up1} before the restart, and libtorrent received {second} since\n{}",
        d.proc.log_tail()
    );
    assert!(
        shown.unwrap_or(0) <= up1 + second + UPLOAD_SLACK_BYTES,
        "uploadedEver {shown:?}: {up1} + {second} received"
    );
}

/// `torrent-get`'s `trackerStats[0]` of torrent `id`.
fn tracker_stat(d: &daemon::Daemon, id: u32) -> serde_json::Value {
    daemon::rpc(
        d.http,
        &serde_json::json!({"method": "torrent-get", "arguments": {"ids": [id], "fields": ["trackerStats", "status"]}}),
    )["arguments"]["torrents"][0]["trackerStats"][0]
        .clone()
}

#[test]
fn tracker_stats_show_a_magnets_announces_and_the_final_stopped_one_which_a_magnet_sends_too() {
    if !(require_program(daemon::TRANSMISSION_REMOTE)
        && require_python_libtorrent()
        && require_program("opentracker")
        && require_swarm_subcommand(&swarm_bin(), "daemon"))
    {
        return;
    }
    let t = TestDir::new("daemon-tracker-stop");
    let tracker_addr = free_addr();
    let url = format!("http://{tracker_addr}/announce");
    let d = daemon_in(&t, "daemon", vec![]);
    // 1: seeds (its data in place); 2: a magnet link nobody has the
    // metadata of, so it stays fetching it.
    let seeded = data::single_file(&d.download_dir, "stop.bin", 40_000, 71);
    let seeded = make_torrent(
        &seeded,
        &t.path().join("stop.torrent"),
        PIECE_16_KIB,
        std::slice::from_ref(&url),
    );
    let other = data::single_file(&t.sub("nowhere"), "meta.bin", 40_000, 72);
    let other = make_torrent(&other, &t.path().join("meta.torrent"), PIECE_16_KIB, &[]);
    let tracker = Opentracker::start_at(
        &t.sub("tracker"),
        tracker_addr,
        &[&seeded.info_hash_hex, &other.info_hash_hex],
    );
    assert!(d.remote(&["-a", &seeded.path.display().to_string()]).ok);
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn=meta.bin&tr={}",
        other.info_hash_hex,
        url.replace(':', "%3A").replace('/', "%2F")
    );
    assert!(d.remote(&["-a", &magnet]).ok);

    // The magnet's announces show while its metadata is fetched.
    let mut last = serde_json::Value::Null;
    let shown = wait_until(DEADLINE, || {
        last = tracker_stat(&d, 2);
        last["hasAnnounced"] == true
    });
    assert!(
        shown,
        "the magnet's announce in trackerStats: {last}\n{}",
        d.proc.log_tail()
    );
    assert_eq!(last["lastAnnounceSucceeded"], true, "{last}");
    let meta = torrent_fields_of(&d, 2, &["metadataPercentComplete"]);
    assert_eq!(
        meta["metadataPercentComplete"], 0.0,
        "still fetching: {meta}"
    );
    // Stopped while it fetches: it announces `stopped` as any torrent
    // does, so the tracker forgets it at once.
    assert!(
        tracker.wait_peers(&other.info_hash_hex, 1, DEADLINE),
        "the tracker knows the magnet's peer"
    );
    assert!(d.remote(&["-t", "2", "-S"]).ok);
    let forgotten = wait_until(DEADLINE, || {
        tracker.scrape(&other.info_hash_hex) == Some((0, 0))
    });
    assert!(
        forgotten,
        "after `stopped` the tracker lists no peer: {:?}\n{}",
        tracker.scrape(&other.info_hash_hex),
        d.proc.log_tail()
    );

    // The final `stopped` announce's outcome: the tracker is gone, so it
    // fails, and trackerStats says so once the torrent stopped.
    let answered = wait_until(DEADLINE, || {
        last = tracker_stat(&d, 1);
        last["lastAnnounceSucceeded"] == true
    });
    assert!(answered, "{last}");
    let started_at = last["lastAnnounceTime"].as_u64().unwrap_or(0);
    drop(tracker);
    assert!(d.remote(&["-t", "1", "-S"]).ok);
    let stopped = wait_until(DEADLINE, || {
        last = tracker_stat(&d, 1);
        last["lastAnnounceSucceeded"] == false
    });
    assert!(
        stopped,
        "the stopped announce's failure in trackerStats: {last}\n{}",
        d.proc.log_tail()
    );
    let why = last["lastAnnounceResult"].as_str().unwrap_or_default();
    assert!(!why.is_empty() && why != "Success", "{last}");
    assert!(
        last["lastAnnounceTime"].as_u64() >= Some(started_at),
        "{last}"
    );
    assert_eq!(last["nextAnnounceTime"], 0, "stopped: none due: {last}");
    assert_eq!(
        torrent_fields_of(&d, 1, &["status"])["status"],
        0,
        "stopped"
    );
}

/// `torrent-get` fields of torrent `id`.
fn torrent_fields_of(d: &daemon::Daemon, id: u32, fields: &[&str]) -> serde_json::Value {
    daemon::rpc(
        d.http,
        &serde_json::json!({"method": "torrent-get", "arguments": {"ids": [id], "fields": fields}}),
    )["arguments"]["torrents"][0]
        .clone()
}

#[test]
fn seconds_downloading_and_seeding_add_up_over_runs_and_stay_once_complete() {
    if !ready() {
        return;
    }
    let t = TestDir::new("daemon-seconds");
    let content = data::single_file(&t.sub("seed"), "secs.bin", 300_000, 68);
    let torrent = make_torrent(&content, &t.path().join("s.torrent"), PIECE_16_KIB, &[]);
    let mut d = daemon_in(&t, "daemon", vec![]);
    assert!(d.remote(&["-a", &torrent.path.display().to_string()]).ok);
    let secs = |d: &daemon::Daemon| {
        let v = torrent_fields(d, &["secondsDownloading", "secondsSeeding"]);
        (
            v["secondsDownloading"].as_u64().unwrap_or(0),
            v["secondsSeeding"].as_u64().unwrap_or(0),
        )
    };
    // Downloading (no peer yet) counts as downloading, as in Transmission.
    let mut got = (0, 0);
    let counting = wait_until(DEADLINE, || {
        got = secs(&d);
        got.0 >= 2
    });
    assert!(
        counting,
        "secondsDownloading grows while it downloads: {got:?}"
    );
    assert_eq!(got.1, 0, "not seeding yet");
    let _seeder = lt_seed(
        &t.logs(),
        "lt-seed",
        &torrent,
        &t.sub("seed"),
        free_addr(),
        &[d.peers],
    );
    wait_row(&d, 1, "downloaded", |r| r.contains("100%"));
    // Once complete: the downloading time stays, the seeding time grows.
    let seeding = wait_until(DEADLINE, || {
        got = secs(&d);
        got.1 >= 2
    });
    assert!(seeding, "secondsSeeding grows once complete: {got:?}");
    let downloading = got.0;
    assert!(downloading >= 2, "kept once complete: {got:?}");
    let info = d.remote(&["-t", "1", "-i"]).text();
    assert!(
        info.contains("Downloading Time:") && info.contains("Seeding Time:"),
        "{info}"
    );
    let before = secs(&d);
    assert_eq!(before.0, downloading, "{before:?}");

    // Kept across a restart, and they go on from there.
    assert!(d.terminate().is_some_and(|s| s.success()));
    let d = daemon_in(&t, "daemon-again", vec![]);
    wait_row(&d, 1, "seeding again", |r| r.contains("100%"));
    let again = secs(&d);
    assert_eq!(again.0, downloading, "downloading time kept: {again:?}");
    assert!(
        again.1 >= before.1,
        "seeding time kept: {again:?}, before {before:?}"
    );
    let more = wait_until(DEADLINE, || secs(&d).1 > before.1);
    assert!(more, "and seeding time goes on: {:?}", secs(&d));
}
