//! What one cache miss costs on this machine, by working-set size: a
//! dependent random walk (each load's address comes from the one before,
//! so nothing overlaps) over one cache line per step, in working sets from
//! 1 MiB to 1 GiB, with the simulator's allocator (mimalloc, transparent
//! huge pages). The scale benchmark's cost per event follows this curve:
//! at a thousand peers every event reads a few records scattered over a
//! few hundred MiB (see `bench/sim-scale.sh`).
//!
//! `cargo run --release -p swarm-sim --example memlat [MIB ...]`

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Nanoseconds per dependent load in a working set of `mib` MiB.
fn ns_per_load(mib: usize) -> f64 {
    const LINE_WORDS: usize = 8; // 64-byte lines of u64
    let lines = mib * 1024 * 1024 / 64;
    // A random cyclic order of the lines (Sattolo's shuffle: one cycle
    // through all of them), from a fixed xorshift seed.
    let mut order: Vec<usize> = (0..lines).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..lines).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % i as u64) as usize;
        order.swap(i, j);
    }
    let mut next = vec![0u64; lines * LINE_WORDS];
    for k in 0..lines {
        next[order[k] * LINE_WORDS] = (order[(k + 1) % lines] * LINE_WORDS) as u64;
    }
    drop(order);
    // Warm up (pages faulted in, TLB), then time.
    let mut p = 0usize;
    for _ in 0..lines.min(1 << 20) {
        p = next[p] as usize;
    }
    let steps = 20_000_000usize;
    let t = std::time::Instant::now();
    for _ in 0..steps {
        p = next[p] as usize;
    }
    let ns = t.elapsed().as_nanos() as f64 / steps as f64;
    std::hint::black_box(p);
    ns
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1, 4, 16, 32, 64, 128, 256, 512, 1024]
    } else {
        sizes
    };
    println!("working set MiB, ns per dependent load");
    for mib in sizes {
        println!("{mib:>6} {:>8.1}", ns_per_load(mib.max(1)));
    }
}
