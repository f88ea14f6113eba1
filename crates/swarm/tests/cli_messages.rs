//! What `download` and `seed` tell the user, from the outside: magnet links,
//! inputs that are not torrents (bounded memory), a tracker's text (escaped),
//! a peer that keeps failing the handshake, and logs and the progress bar
//! sharing one terminal (through a pseudo-terminal, with `script`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use swarm_testkit::{TestDir, data, proc::require_program};

/// Every wait in these tests ends by then.
const DEADLINE: Duration = Duration::from_secs(30);
const MAGNET: &str = "magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056&dn=cosmos";
/// What a non-torrent may cost at most.
const RSS_MAX_KB: u64 = 200 * 1024;

fn swarm() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

fn run(dir: &Path, args: &[&str]) -> Output {
    swarm_testkit::cli::run(&swarm(), dir, args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_magnet_link_with_nowhere_to_look_or_to_seed_is_refused_in_one_line_with_exit_2() {
    let t = TestDir::new("cli-msg-magnet");
    for (args, says) in [
        (
            &["download", MAGNET, "-o", "out", "--no-dht"][..],
            "error: the magnet link has no tracker (tr=) and no peer (x.pe=), no --peer was given \
             and the DHT is off: nowhere to find its metadata",
        ),
        (
            &["seed", MAGNET, "-d", "."],
            "error: a magnet link gives no data to seed: give the .torrent file",
        ),
    ] {
        let o = run(t.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(says), "{err}");
    }
    assert!(!t.path().join("out").exists(), "nothing is created");
}

/// `swarm download FILE` under `/usr/bin/time`: its output and peak RSS (KiB).
fn download_measured(dir: &Path, file: &str) -> (Output, u64) {
    let rss_file = dir.join("rss");
    let o = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(swarm())
        .args(["download", file, "-o", "out", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run /usr/bin/time");
    let rss = std::fs::read_to_string(&rss_file).expect("time's output");
    let kb = rss
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("peak RSS from {rss:?}"));
    (o, kb)
}

#[test]
fn a_huge_file_or_an_endless_stream_is_refused_with_bounded_memory() {
    if !require_program("/usr/bin/time") {
        return;
    }
    let t = TestDir::new("cli-msg-huge");
    // 1 GiB, sparse: refused on its size, before reading.
    let iso = t.path().join("some.iso");
    std::fs::File::create(&iso)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    // /dev/zero has no size: refused after the cap, read through a bound.
    for file in ["some.iso", "/dev/zero"] {
        let (o, rss_kb) = download_measured(t.path(), file);
        assert_eq!(o.status.code(), Some(2), "{file}: {o:?}");
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!(
                "error: {file} is larger than 64 MiB: not a .torrent"
            )),
            "{err}"
        );
        assert!(rss_kb < RSS_MAX_KB, "{file}: peak RSS {rss_kb} KiB");
    }
    assert!(!t.path().join("out").exists(), "nothing is created");
}

/// A one-file torrent of `len` bytes announcing to `tracker`, made by
/// `swarm create`; returns its path.
fn torrent(t: &TestDir, tracker: &str, len: u64) -> PathBuf {
    let content = data::single_file(&t.sub("src"), "payload.bin", len, 7);
    let out = t.path().join("payload.torrent");
    let o = run(
        t.path(),
        &[
            "create",
            content.to_str().unwrap(),
            "-t",
            tracker,
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{o:?}");
    out
}

/// An HTTP tracker on loopback that answers every announce with `body`
/// after `delay`. Serves until the test process ends or 30 s pass.
fn fake_tracker(body: Vec<u8>, delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/announce", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let hits2 = hits.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            hits2.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            std::thread::sleep(delay);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    (url, hits)
}

/// A bencoded tracker answer refusing with `why`.
fn failure(why: &str) -> Vec<u8> {
    format!("d14:failure reason{}:{why}e", why.len()).into_bytes()
}

/// A running `swarm`, killed on drop; stderr read line by line.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(dir: &Path, args: &[&str]) -> Running {
        let mut child = Command::new(swarm())
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start swarm");
        let err = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).split(b'\n') {
                let Ok(line) = line else { return };
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    return;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; panics with what was seen.
    fn wait_for(&mut self, needle: &str) -> String {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        panic!("no `{needle}` on stderr; saw:\n{}", self.seen.join("\n"));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_tracker_failure_reason_is_shown_escaped() {
    let t = TestDir::new("cli-msg-escape");
    let why = "\x1b]0;pwned\x07\x1b[2J\n2026-01-01T00:00:00Z  INFO download complete";
    let (url, _) = fake_tracker(failure(why), Duration::ZERO);
    let file = torrent(&t, &url, 100_000);
    let mut swarm = Running::start(
        t.path(),
        &[
            "download",
            file.to_str().unwrap(),
            "-o",
            "out",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let line = swarm.wait_for("announce failed");
    assert!(
        line.contains(
            "tracker failure: \\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\n2026-01-01T00:00:00Z  INFO download complete"
        ),
        "{line:?}"
    );
    assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line:?}");
}

#[test]
fn a_failed_announce_names_the_cause() {
    let t = TestDir::new("cli-msg-refused");
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let file = torrent(&t, &format!("http://127.0.0.1:{port}/announce"), 1000);
    let mut swarm = Running::start(
        t.path(),
        &[
            "download",
            file.to_str().unwrap(),
            "-o",
            "out",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let line = swarm.wait_for("announce failed");
    assert!(
        line.contains("cannot connect") && line.contains("onnection refused"),
        "{line}"
    );
    assert!(!line.contains("error sending request"), "{line}");
}

#[test]
fn a_peer_that_keeps_failing_the_handshake_is_reported_once_with_the_reason() {
    let t = TestDir::new("cli-msg-handshake");
    // A peer that serves another torrent: it answers our handshake with
    // another info-hash.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let attempts2 = attempts.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            attempts2.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_nonblocking(false);
            let mut theirs = [0u8; 68];
            if s.read_exact(&mut theirs).is_ok() {
                let mut ours = theirs;
                ours[28..48].copy_from_slice(&[0xee; 20]); // another info-hash
                ours[48..68].copy_from_slice(b"-XX0001-otherTorrent");
                let _ = s.write_all(&ours);
            }
        }
    });
    let file = torrent(&t, "http://127.0.0.1:9/announce", 1000);
    let mut swarm = Running::start(
        t.path(),
        &[
            "download",
            file.to_str().unwrap(),
            "-o",
            "out",
            "--listen",
            "127.0.0.1:0",
            "--peer",
            &peer.to_string(),
        ],
    );
    let line = swarm.wait_for("keeps failing");
    assert!(
        line.contains(&format!(
            "peer {peer} keeps failing: handshake for another torrent"
        )),
        "{line}"
    );
    assert_eq!(
        swarm
            .seen
            .iter()
            .filter(|l| l.contains("keeps failing"))
            .count(),
        1
    );
    assert!(attempts.load(Ordering::SeqCst) >= 3);
}

/// `text` as a terminal would show it, one string per screen line: `\r`
/// returns to the line's start (later text overwrites), `ESC [ 2K` / `ESC [
/// K` clear the line, `ESC [ nA` moves up; other escape sequences (colours,
/// cursor visibility) draw nothing.
fn screen(text: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                row += 1;
                col = 0;
                if lines.len() <= row {
                    lines.push(Vec::new());
                }
            }
            '\r' => col = 0,
            '\x1b' => {
                if chars.peek() != Some(&'[') {
                    chars.next();
                    continue;
                }
                chars.next();
                let mut arg = String::new();
                let mut end = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() || c == '~' {
                        end = c;
                        break;
                    }
                    arg.push(c);
                }
                match end {
                    'K' => {
                        if arg == "2" {
                            lines[row].clear();
                        } else {
                            lines[row].truncate(col);
                        }
                    }
                    'A' => row = row.saturating_sub(arg.parse().unwrap_or(1)),
                    'J' => {
                        lines[row].truncate(col);
                        lines.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            c if c.is_control() => {}
            c => {
                let line = &mut lines[row];
                if line.len() <= col {
                    line.resize(col, ' ');
                    line.push(c);
                } else {
                    line[col] = c;
                }
                col += 1;
            }
        }
    }
    lines
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_owned())
        .collect()
}

#[test]
fn logs_and_the_progress_bar_share_a_terminal() {
    if !require_program("script") || !require_program("timeout") {
        return;
    }
    let t = TestDir::new("cli-msg-pty");
    // The tracker answers after the bar is up (it is drawn at once).
    let (url, hits) = fake_tracker(failure("go away"), Duration::from_millis(1500));
    let file = torrent(&t, &url, 100_000);
    // `script` gives swarm a pseudo-terminal and copies what it draws to
    // stdout; SIGINT after 4 s ends the run as Ctrl-C would.
    let command = format!(
        "timeout -s INT 4 {} download {} -o out --listen 127.0.0.1:0",
        swarm().display(),
        file.display()
    );
    let o = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(t.path())
        .stdin(Stdio::null())
        .env("COLUMNS", "120")
        .env("TERM", "xterm")
        .output()
        .expect("run script");
    let raw = String::from_utf8_lossy(&o.stdout);
    assert!(hits.load(Ordering::SeqCst) >= 1, "the tracker was asked");
    let lines = screen(&raw);
    let shown = lines.join("\n");
    // The warning is a line of its own, whole: no bar before or after it.
    let warn: Vec<&String> = lines.iter().filter(|l| l.contains("go away")).collect();
    assert_eq!(warn.len(), 1, "{shown}\n--- raw:\n{raw:?}");
    assert!(
        warn[0].contains("WARN") && !warn[0].contains("downloading") && !warn[0].contains('%'),
        "the warning shares its line with the bar: {:?}\n--- raw:\n{raw:?}",
        warn[0]
    );
    assert!(
        warn[0].starts_with(char::is_numeric)
            && warn[0]
                .trim_end()
                .ends_with("tracker failure: go away event=Started"),
        "the warning was cut: {:?}",
        warn[0]
    );
    // And the bar was drawn, and is whole where it is seen.
    assert!(
        raw.contains("downloading"),
        "no bar drawn:\n--- raw:\n{raw:?}"
    );
    for l in lines.iter().filter(|l| l.contains("downloading")) {
        assert!(
            l.trim_start().starts_with("downloading") && l.contains("0%"),
            "a broken bar line: {l:?}\n{shown}"
        );
    }
}

#[test]
fn a_download_that_completes_says_complete_never_seeding() {
    if !require_program("script") {
        return;
    }
    let t = TestDir::new("cli-msg-complete");
    // The data is already there: checked, complete, exit 0.
    let file = torrent(&t, "http://127.0.0.1:9/announce", 3_000_000);
    let command = format!(
        "{} download {} -o src --listen 127.0.0.1:0",
        swarm().display(),
        file.display()
    );
    let o = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(t.path())
        .stdin(Stdio::null())
        .env("COLUMNS", "120")
        .env("TERM", "xterm")
        .output()
        .expect("run script");
    assert!(o.status.success(), "{o:?}");
    let raw = String::from_utf8_lossy(&o.stdout);
    assert!(
        !raw.contains("seeding"),
        "a download says seeding:\n{raw:?}"
    );
    let lines = screen(&raw);
    let last = lines.iter().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert!(last.starts_with("complete: 12 of 12 pieces"), "{lines:?}");
}
