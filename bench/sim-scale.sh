#!/usr/bin/env bash
# The simulator's scale benchmark (issue 12): one homogeneous flash crowd
# (one seed, N leechers, 1 MiB/s up, 4 MiB/s down, 256 KiB pieces of 16 KiB
# blocks, every peer a real swarm TorrentCore) per size, reporting wall and
# CPU time (and how long the run waited for a core: the machine's load),
# events per CPU-second, CPU time per block delivered, peak RSS and the
# simulated figures (last completion against the P2P bound, upload
# utilisation). A run is deterministic: two builds that print different
# simulated lines do not simulate the same thing. The example links
# mimalloc for its transparent huge pages (see examples/scale.rs): a build
# before session 9 ran on glibc's malloc, 16-26% slower on the same code.
#
#   bench/sim-scale.sh                       # 100x100, 1000x1000, 10000x1000
#   SIZES="200x200 1000x1000" bench/sim-scale.sh
#   BEFORE=/tmp/scale-old bench/sim-scale.sh # also an older build, same sizes
#
# Run it on an idle machine: it is single-threaded, and a loaded core makes
# the wall times meaningless (the CPU time less so; the simulated figures do
# not change). ROUNDS (1) repeats each size, interleaving the builds.
#
# The cost of an event grows with the swarm's state, not with its code
# path: `cargo run --release -p swarm-sim --example memlat` prints what a
# dependent cache miss costs here by working-set size (ARCHITECTURE.md,
# "Session 11"); `SIZES="30x1000 100x1000 300x1000 1000x1000"` shows the
# same engines at the same events per block getting dearer as they grow.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"100x100 1000x1000 10000x1000"}
SUPER=${SUPER:-0}    # 1: the seed super-seeds
ROUNDS=${ROUNDS:-1}
cargo build --release -q -p swarm-sim --example scale
NEW=target/release/examples/scale
BINS=("$NEW")
[ -n "${BEFORE:-}" ] && BINS+=("$BEFORE")
for r in $(seq "$ROUNDS"); do
  for size in $SIZES; do
    n=${size%x*}
    p=${size#*x}
    for bin in "${BINS[@]}"; do
      echo "== round $r, $n leechers x $p pieces, $bin"
      # sed, not head: head exits after five lines and the run dies of
      # a broken pipe (pipefail then stops the script).
      "$bin" "$n" "$p" 256 1 "$SUPER" | sed -n 1,5p
    done
  done
done
