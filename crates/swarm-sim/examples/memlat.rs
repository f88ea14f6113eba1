//! What one cache miss costs on this machine, by working-set size: a
//! dependent random walk (each load's address comes from the one before,
//! so nothing overlaps) over one cache line per step, in working sets from
//! 1 MiB to 1 GiB. The memory comes from mimalloc in 256 KiB blocks, as
//! the simulator's records do, so it lands on the same transparent huge
//! pages (a 1,000-peer run has 96% of its resident memory on them; one
//! big block would be mapped on its own, on 4 KiB pages, and the walk
//! would pay a TLB miss a step too). The scale benchmark's cost per event
//! follows this curve: at a thousand peers every event reads a few
//! records scattered over a few hundred MiB (see `bench/sim-scale.sh`).
//!
//! `cargo run --release -p swarm-sim --example memlat [MIB ...]`

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 64-byte lines of `u64`s.
const LINE_WORDS: usize = 8;
/// Lines per block: 256 KiB.
const BLOCK_LINES: usize = 4096;

/// Nanoseconds per dependent load in a working set of `mib` (≥ 1) MiB.
fn ns_per_load(mib: usize) -> f64 {
    let blocks = mib * 1024 * 1024 / 64 / BLOCK_LINES;
    let lines = blocks * BLOCK_LINES;
    // A random cyclic order of the lines (Sattolo's shuffle: one cycle
    // through all of them), from a fixed xorshift seed.
    let mut order: Vec<u32> = (0..lines as u32).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..lines).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % i as u64) as usize;
        order.swap(i, j);
    }
    let mut mem: Vec<Box<[u64]>> = (0..blocks)
        .map(|_| vec![0u64; BLOCK_LINES * LINE_WORDS].into_boxed_slice())
        .collect();
    for k in 0..lines {
        let from = order[k] as usize;
        let to = order[(k + 1) % lines];
        mem[from / BLOCK_LINES][(from % BLOCK_LINES) * LINE_WORDS] = u64::from(to);
    }
    drop(order);
    let step = |p: usize| mem[p / BLOCK_LINES][(p % BLOCK_LINES) * LINE_WORDS] as usize;
    // Warm up (pages faulted in, TLB), then time.
    let mut p = 0usize;
    for _ in 0..lines.min(1 << 20) {
        p = step(p);
    }
    let steps = 20_000_000usize;
    let t = std::time::Instant::now();
    for _ in 0..steps {
        p = step(p);
    }
    let ns = t.elapsed().as_nanos() as f64 / steps as f64;
    std::hint::black_box(p);
    ns
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .filter(|&mib| mib > 0)
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1, 4, 16, 32, 64, 128, 256, 512, 1024]
    } else {
        sizes
    };
    println!("working set MiB, ns per dependent load");
    for mib in sizes {
        println!("{mib:>6} {:>8.1}", ns_per_load(mib));
    }
}
