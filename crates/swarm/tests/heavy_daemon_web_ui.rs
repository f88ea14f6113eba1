//! The daemon's web UI in a real browser: headless Chromium (Debian's
//! `chromium`, driven through `chromedriver` over WebDriver) opens the UI,
//! adds a torrent (paused) through the page's file input, skips one of its
//! files on the torrent's page (the daemon's RPC then says it is not
//! wanted), starts it from the list, opens the torrent's page
//! while it downloads from a rate-capped libtorrent seeder (a libtorrent
//! leecher joins too), finds the
//! neighbour table with a choke state and its reason and the piece map
//! with live values (the count of pieces had grows without a reload), and
//! sees the torrent complete: the wanted files identical, the skipped one
//! not on disk. The screenshot it takes mid-download is
//! written to the test folder; with SWARM_UPDATE_DOCS=1 also to
//! docs/daemon-ui.png (the README shows that one).
//!
//! Heavy (a browser, a daemon, a seeder): in the serial test group. Needs
//! chromium, chromedriver and python3-libtorrent (CI=true: missing fails).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use swarm_testkit::daemon::{self, DaemonOpts, start_daemon};
use swarm_testkit::peers::{lt_leech, lt_seed_capped, require_swarm_subcommand};
use swarm_testkit::webdriver::{self, Browser};
use swarm_testkit::{data, *};

const DEADLINE: Duration = Duration::from_secs(120);
/// The torrent's files: the big one to watch, and one the page skips.
const FILES: &[(&str, u64)] = &[
    ("disc.iso", 5 * 1024 * 1024 + 777),
    ("extras.bin", 700_000),
    ("readme.txt", 5_000),
];
/// The file the page skips.
const SKIPPED: &str = "extras.bin";
/// The seeder's cap: the download takes ~10 s, time to watch it.
const SEED_RATE: u64 = 512 * 1024;

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

/// Polls a script's value in the page until `ok` accepts it.
fn wait_js(b: &Browser, what: &str, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let done = wait_until(DEADLINE, || {
        last = b.execute(script, vec![]);
        ok(&last)
    });
    assert!(done, "the page never showed {what}; last: {last}");
    last
}

#[test]
fn heavy_web_ui_adds_a_torrent_skips_a_file_and_shows_neighbours_and_a_live_piece_map() {
    if !(require_program(webdriver::CHROMIUM)
        && require_program(webdriver::CHROMEDRIVER)
        && require_python_libtorrent()
        && require_swarm_subcommand(&swarm_bin(), "daemon"))
    {
        return;
    }
    let t = TestDir::new("daemon-ui");
    let content = data::tree(&t.sub("seed"), "ubuntu-like", FILES, 97);
    let torrent = make_torrent(
        &content,
        &t.path().join("ubuntu-like.torrent"),
        PIECE_16_KIB,
        &[],
    );
    let d = start_daemon(
        &swarm_bin(),
        &t.logs(),
        "daemon",
        &DaemonOpts {
            listen: free_addr(),
            state: &t.sub("state"),
            download_dir: &t.sub("downloads"),
            extra: vec![],
            rust_log: None,
        },
    );
    let _seeder = lt_seed_capped(
        &t.logs(),
        "lt-seed",
        &torrent,
        &t.sub("seed"),
        free_addr(),
        &[d.peers],
        SEED_RATE,
    );
    // A libtorrent leecher too: the daemon has two neighbours (one it
    // uploads to), and the piece map's heat varies with what each holds.
    let seeder_at = _seeder.listen;
    let _leech = lt_leech(
        &t.logs(),
        "lt-leech",
        &torrent,
        &t.sub("leech"),
        free_addr(),
        &[d.peers, seeder_at],
    );
    let b = Browser::start(&t.logs(), &t.sub("chromium"), 1280, 900);
    b.goto(&format!("http://{}/", d.http));
    wait_js(
        &b,
        "the live connection",
        "return document.querySelector('#conn').textContent",
        |v| v == "live",
    );

    // Add the torrent through the page's form, paused.
    let input = b.find("#add-file").expect("the file input");
    b.send_keys(&input, &torrent.path.display().to_string());
    b.click(&b.find("#add-paused").expect("the paused box"));
    b.click(&b.find("#add-submit").expect("the Add button"));
    wait_js(
        &b,
        "the torrent in the list, stopped",
        "const r = document.querySelector('#torrents tbody tr'); \
         return r ? [r.querySelector('a.name').textContent, r.dataset.state] : null",
        |v| v[0] == torrent.name.as_str() && v[1] == "stopped",
    );

    // On its page, skip a file: the daemon says so, and the page too.
    b.click(
        &b.find("#torrents tbody tr a.name")
            .expect("the torrent's link"),
    );
    // Its index in the torrent (libtorrent chose the order), as the RPC
    // and the page number files.
    let rpc_files = |fields: &str| {
        daemon::rpc(
            d.http,
            &serde_json::json!({"method": "torrent-get", "arguments": {"ids": [1], "fields": [fields]}}),
        )["arguments"]["torrents"][0][fields]
            .clone()
    };
    let names = rpc_files("files");
    let skipped = (0..FILES.len())
        .find(|&i| {
            names[i]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(SKIPPED))
        })
        .unwrap_or_else(|| panic!("{SKIPPED} in {names}"));
    let file_row = format!("#files tbody tr[data-index='{skipped}']");
    wait_js(
        &b,
        "the file list",
        &format!(
            "const r = document.querySelector(\"{file_row}\"); return r ? r.dataset.wanted : null"
        ),
        |v| v == "true",
    );
    b.click(
        &b.find(&format!("{file_row} input.want"))
            .expect("the file's wanted box"),
    );
    let mut stats = Value::Null;
    let done = wait_until(DEADLINE, || {
        stats = rpc_files("fileStats");
        stats[skipped]["wanted"] == false
    });
    assert!(done, "the daemon skips the file: {stats}");
    assert!(
        (0..FILES.len()).all(|i| (stats[i]["wanted"] == true) == (i != skipped)),
        "only that one: {stats}"
    );
    wait_js(
        &b,
        "the file skipped on the page",
        &format!(
            "const r = document.querySelector(\"{file_row}\"); return r ? r.dataset.wanted : null"
        ),
        |v| v == "false",
    );

    // Started from the list; its page, while it downloads.
    b.goto(&format!("http://{}/#/", d.http));
    b.click(
        &b.find("#torrents tbody tr button.start")
            .expect("the Start button"),
    );
    b.click(
        &b.find("#torrents tbody tr a.name")
            .expect("the torrent's link"),
    );
    let neighbour = wait_js(
        &b,
        "a neighbour with a choke state and a reason",
        "const r = document.querySelector('#neighbours tbody tr'); \
         return r ? [r.querySelector('.choke').textContent, r.querySelector('.reason').textContent] : null",
        |v| {
            v[0].as_str()
                .is_some_and(|c| ["unchoked", "optimistic", "choked", "snubbed"].contains(&c))
                && v[1].as_str().is_some_and(|r| !r.trim().is_empty())
        },
    );
    eprintln!("neighbour: {neighbour}");
    let stats = "const s = document.querySelector('#piece-stats').dataset; \
                 return s.have === undefined ? null : [Number(s.have), Number(s.total), Number(s.availabilityMax)]";
    let first = wait_js(&b, "the piece map's figures", stats, |v| {
        v[0].as_u64()
            .is_some_and(|h| h > 0 && h < u64::from(torrent.num_pieces))
    });
    assert_eq!(first[1].as_u64(), Some(u64::from(torrent.num_pieces)));
    assert!(
        first[2].as_u64().is_some_and(|a| a >= 1),
        "the seeder holds every piece: availability >= 1: {first}"
    );
    let painted = b.execute(
        "const c = document.querySelector('#piece-map'); \
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
         let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) n++; return n",
        vec![],
    );
    assert!(
        painted.as_u64().is_some_and(|n| n > 100),
        "the piece map is drawn: {painted}"
    );
    // The picture is better with both neighbours in it (not asserted: the
    // download may end first).
    wait_until(Duration::from_secs(10), || {
        b.execute(
            "return document.querySelectorAll('#neighbours tbody tr').length",
            vec![],
        )
        .as_u64()
        .is_some_and(|n| n >= 2)
    });
    let png = b.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
    std::fs::write(t.path().join("daemon-ui.png"), &png).unwrap();
    if std::env::var("SWARM_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(workspace_root().join("docs/daemon-ui.png"), &png).unwrap();
    }
    // Live: more pieces later, without a reload.
    let have0 = first[0].as_u64().unwrap_or(0);
    wait_js(&b, "the piece count grow", stats, |v| {
        v[0].as_u64().is_some_and(|h| h > have0)
    });

    // And it completes: the list says seeding.
    b.goto(&format!("http://{}/#/", d.http));
    wait_js(
        &b,
        "the torrent seeding",
        "const r = document.querySelector('#torrents tbody tr'); return r ? r.dataset.state : null",
        |v| v == "seeding",
    );
    let got = t.sub("downloads").join(&torrent.name);
    for (name, _) in FILES {
        if *name == SKIPPED {
            assert!(
                !got.join(name).exists(),
                "the skipped {name} is not on disk"
            );
        } else {
            assert_eq!(
                std::fs::read(got.join(name)).unwrap(),
                std::fs::read(content.join(name)).unwrap(),
                "{name} is identical"
            );
        }
    }
}
