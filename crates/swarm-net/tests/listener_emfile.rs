//! Running out of file descriptors on accept (`EMFILE`) pauses the
//! listener and logs once; it never spins and the caller lives on. The test
//! lowers its own process's open-file limit (nextest runs each test in its
//! own process; this file holds one test so `cargo test` does too).

use std::fs::File;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use swarm_net::listener::{ACCEPT_PAUSE, Acceptor};
use tokio::net::TcpListener;

/// Upper bound of descriptors the test opens to fill the table.
const FILLERS_MAX: usize = 4096;

#[tokio::test]
async fn emfile_on_accept_pauses_logs_once_and_recovers() {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut acceptor = Acceptor::new(listener);
    // Three connections wait in the kernel's backlog (connect completes
    // without an accept).
    let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();

    // No descriptor left: lower the soft limit to just above the highest
    // one open, then fill every free slot below it.
    let saved = getrlimit(Resource::Nofile);
    let probe = File::open("/dev/null").unwrap();
    let limit = u64::try_from(probe.as_raw_fd()).unwrap() + 1;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: saved.maximum,
        },
    )
    .unwrap();
    let mut fillers = vec![probe];
    while fillers.len() < FILLERS_MAX {
        match File::open("/dev/null") {
            Ok(f) => fillers.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "EMFILE expected: {e}");
                break;
            }
        }
    }

    // Accept for 3 pauses' time while another task ticks: no connection
    // comes out, the listener tried a bounded number of times (no spin),
    // warned once, and the runtime kept running other work.
    let window = ACCEPT_PAUSE * 3 + ACCEPT_PAUSE / 2;
    let ticker = tokio::spawn(async {
        let mut ticks = 0u32;
        let mut every = tokio::time::interval(Duration::from_millis(50));
        let end = tokio::time::Instant::now() + Duration::from_millis(1500);
        while tokio::time::Instant::now() < end {
            every.tick().await;
            ticks += 1;
        }
        ticks
    });
    let got = tokio::time::timeout(window, acceptor.accept()).await;
    assert!(got.is_err(), "accepted with no descriptor left");
    let stats = acceptor.stats();
    assert!(
        (1..=5).contains(&stats.resource_errors),
        "tried {} times in {window:?}: spinning or never tried",
        stats.resource_errors
    );
    assert_eq!(stats.warnings, 1, "one warning per episode");
    assert_eq!(stats.accepted, 0);

    // Descriptors come back: the waiting connections are accepted after
    // the pause, with no second warning.
    drop(fillers);
    setrlimit(Resource::Nofile, saved).unwrap();
    for _ in 0..clients.len() {
        let (_stream, from) = tokio::time::timeout(ACCEPT_PAUSE * 4, acceptor.accept())
            .await
            .expect("accepts again once descriptors are free");
        assert!(from.ip().is_loopback());
    }
    let stats = acceptor.stats();
    assert_eq!(stats.accepted, 3);
    assert_eq!(stats.warnings, 1);
    let ticks = ticker.await.unwrap();
    assert!(
        ticks >= 10,
        "other tasks starved during the pause: {ticks} ticks"
    );
}
