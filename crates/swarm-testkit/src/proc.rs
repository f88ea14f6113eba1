//! Child processes that die with the test, free ports, bounded waits.
//!
//! Every external peer a test starts is a [`Proc`]: its stdout and stderr go to
//! files in the test's temp dir (so a test can read a peer's JSON status lines
//! while it runs), and dropping it kills the process. When the test is already
//! panicking, the drop also prints the tail of both logs: the first thing one
//! wants to see when an interop test fails.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often bounded waits poll their condition.
pub const POLL_INTERVAL_MS: u64 = 150;
/// Bytes of each log printed when a test fails.
const LOG_TAIL_BYTES: usize = 4000;

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
///
/// The OS hands out ephemeral ports in sequence, so the race with another test
/// taking the same port between release and reuse is unlikely, not impossible.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    // Also make sure the UDP port is free: opentracker and libtorrent bind both.
    match std::net::UdpSocket::bind(("127.0.0.1", port)) {
        Ok(_) => port,
        Err(_) => free_port(),
    }
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A free port on `ip` (TCP and UDP), as [`free_port`] does for 127.0.0.1.
pub fn free_port_on(ip: std::net::IpAddr) -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind((ip, 0)).expect("bind a loopback IP, port 0");
        let port = listener.local_addr().expect("local_addr").port();
        if std::net::UdpSocket::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP on {ip}");
}

static FREE_ADDR_NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A loopback IP of its own (127.0.x.10 to 127.0.x.249: a new one per call
/// in this process, from a start that depends on the process id, so tests
/// running side by side, each its own process under nextest, rarely share
/// one) with a free port: where one test peer listens and dials from, so
/// the per-IP connection rules see peers on loopback as distinct machines.
pub fn free_addr() -> SocketAddr {
    let start = (std::process::id() % 200) * 240;
    let n = start + FREE_ADDR_NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (x, y) = (n / 240, 10 + n % 240);
    let ip = std::net::IpAddr::from([127, 0, (x % 256) as u8, y as u8]);
    SocketAddr::new(ip, free_port_on(ip))
}

/// Where a test peer listens: a port on 127.0.0.1 (a `u16`, as older tests
/// pass) or a whole address (from [`free_addr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAt(pub SocketAddr);

impl From<u16> for ListenAt {
    fn from(port: u16) -> Self {
        ListenAt(loopback(port))
    }
}

impl From<SocketAddr> for ListenAt {
    fn from(addr: SocketAddr) -> Self {
        ListenAt(addr)
    }
}

/// True if CI=true: then a missing program is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Checks that `program` (a name on PATH or an absolute path) exists.
///
/// Missing under CI=true: panics with a clear message. Missing otherwise: prints
/// `SKIP` and returns false, and the test returns early.
pub fn require_program(program: &str) -> bool {
    if find_program(program).is_some() {
        return true;
    }
    skip_or_panic(&format!("program `{program}` not found"))
}

/// Checks that Debian's python3 imports libtorrent (see [`crate::PYTHON`]).
pub fn require_python_libtorrent() -> bool {
    if !require_program(crate::PYTHON) {
        return false;
    }
    let ok = Command::new(crate::PYTHON)
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok || skip_or_panic(&format!(
        "{} cannot import libtorrent (python3-libtorrent)",
        crate::PYTHON
    ))
}

fn skip_or_panic(why: &str) -> bool {
    if in_ci() {
        panic!("{why}: required when CI=true; install it (see .github/workflows)");
    }
    eprintln!("SKIP: {why}");
    false
}

fn find_program(program: &str) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Polls `cond` every [`POLL_INTERVAL_MS`] until it is true or `timeout` passed.
/// Returns whether it became true.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) -> bool {
    wait_until(timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
}

/// A child process that is killed when dropped, with its output in log files.
pub struct Proc {
    name: String,
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    exit: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr redirected to `log_dir/NAME.out` and
    /// `log_dir/NAME.err`, stdin closed.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        std::fs::create_dir_all(log_dir).expect("create log dir");
        let stdout_path = log_dir.join(format!("{name}.out"));
        let stderr_path = log_dir.join(format!("{name}.err"));
        let out = File::create(&stdout_path).expect("create stdout log");
        let err = File::create(&stderr_path).expect("create stderr log");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child,
            stdout_path,
            stderr_path,
            exit: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The stdout lines that parse as JSON objects, in order.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        json_objects(&self.stdout())
    }

    /// The exit status, if the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_until(timeout, || self.try_exit().is_some());
        self.exit
    }

    /// Kills the process (SIGKILL) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }

    /// The last `LOG_TAIL_BYTES` of stdout and stderr, labelled, for failure
    /// messages (carriage returns of progress lines shown as line breaks).
    pub fn log_tail(&self) -> String {
        format!(
            "----- {name} stdout (tail) -----\n{out}\n----- {name} stderr (tail) -----\n{err}\n",
            name = self.name,
            out = tail(&self.stdout().replace('\r', "\n"), LOG_TAIL_BYTES),
            err = tail(&self.stderr().replace('\r', "\n"), LOG_TAIL_BYTES),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// The lines of `text` that parse as JSON objects.
pub fn json_objects(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut start = s.len() - n;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).expect("port is free");
    }

    #[test]
    fn proc_captures_output_and_dies_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo '{\"a\": 1}'; echo not json; echo oops >&2; exec sleep 60",
        ]);
        let mut p = Proc::spawn("sh", cmd, dir.path());
        assert!(wait_until(Duration::from_secs(10), || p.json_lines().len() == 1));
        assert_eq!(p.json_lines()[0]["a"], 1);
        assert!(wait_until(Duration::from_secs(10), || p
            .stderr()
            .contains("oops")));
        assert!(p.try_exit().is_none(), "sleep is still running");
        let pid = p.pid();
        drop(p);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "killed and reaped"
        );
    }

    #[test]
    fn wait_until_gives_up() {
        assert!(!wait_until(Duration::from_millis(300), || false));
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("héllo", 3), "llo");
        assert_eq!(tail("hé", 1), "");
        assert_eq!(tail("ab", 5), "ab");
    }
}
