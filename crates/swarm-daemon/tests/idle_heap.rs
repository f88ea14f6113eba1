//! What a sleeping torrent costs the daemon in heap bytes, counted by a
//! counting global allocator in this test binary: the heap in use with
//! `FIRST` torrents seeding and asleep, then with `MORE` more; the
//! difference over `MORE` is one more idle torrent's cost (its metainfo,
//! record, status, sleeping session, storage, the maps' entries), which
//! must stay within `IDLE_TORRENT_HEAP_MAX_BYTES`. Bytes, not time: nothing
//! here is timed. One test in this binary (the allocator counts the whole
//! process).
#![allow(unsafe_code)] // the counting allocator (forwards to `System`)

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::{add_seeding, settle, start_daemon};
use swarm_daemon::service::IDLE_TORRENT_HEAP_MAX_BYTES;

/// Heap bytes in use (as requested, without the allocator's own overhead)
/// and allocations live.
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_ALLOCS: AtomicI64 = AtomicI64::new(0);

struct Counting;

// SAFETY: every call forwards to `System` with the caller's arguments
// unchanged (so `System`'s guarantees are the caller's); the counters are
// atomics, touched only after the call, and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Torrents held before the first reading (the maps and pools that grow
/// once are grown), and torrents added between the two readings.
const FIRST: usize = 30;
const MORE: usize = 90;

/// Waits until every torrent sleeps and nothing moves (checks, resume
/// records, blocking threads done), then reads the heap: (bytes, allocations).
async fn idle_heap(daemon: &swarm_daemon::Daemon, torrents: usize) -> (i64, i64) {
    let client = daemon.client();
    for _ in 0..600 {
        if client.counters().sessions_asleep() == torrents as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        client.counters().sessions_asleep(),
        torrents as u64,
        "every idle torrent sleeps"
    );
    settle(client, Duration::from_secs(1), 30).await;
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_ALLOCS.load(Ordering::Relaxed),
    )
}

/// The blocking pool's threads (the checks run there) are kept for a
/// minute, so both readings see the same threads.
#[test]
fn a_sleeping_torrent_costs_at_most_its_heap_bound() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_keep_alive(Duration::from_secs(60))
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tmp = tempfile::tempdir().expect("temp dir");
        let daemon = start_daemon(tmp.path(), true).await;
        add_seeding(&daemon, tmp.path(), 0..FIRST).await;
        let (bytes0, allocs0) = idle_heap(&daemon, FIRST).await;
        add_seeding(&daemon, tmp.path(), FIRST..FIRST + MORE).await;
        let (bytes1, allocs1) = idle_heap(&daemon, FIRST + MORE).await;
        let per_torrent = (bytes1 - bytes0) / MORE as i64;
        let allocs = (allocs1 - allocs0) as f64 / MORE as f64;
        eprintln!(
            "a sleeping torrent: {per_torrent} heap bytes in {allocs:.1} allocations \
             ({FIRST} torrents: {bytes0} bytes; {}: {bytes1})",
            FIRST + MORE
        );
        assert!(
            per_torrent <= IDLE_TORRENT_HEAP_MAX_BYTES as i64,
            "a sleeping torrent costs {per_torrent} heap bytes, more than {IDLE_TORRENT_HEAP_MAX_BYTES}"
        );
        daemon.shutdown().await;
    });
}
