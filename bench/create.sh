#!/usr/bin/env bash
# Benchmark: `swarm create` against `mktorrent` hashing the same 2 GiB file
# with the same piece size, in one run.
#
#   bench/create.sh            # 3 rounds of each, alternating
#   ROUNDS=5 BENCH_DIR=/data/bench bench/create.sh
#
# The file: BENCH_DIR/bench-2GiB.bin (default BENCH_DIR: /tmp/swarm-bench).
# It is created once with pseudo-random bytes and then reused: the script
# says which. Before timing, the file is read once and each tool runs once
# untimed, so every timed run hashes from the page cache (memory the VM has
# not touched lately is slow on first write; a warm-up takes that out).
# Both tools use 256 KiB pieces (mktorrent -l 18) and 2 hashing threads
# (mktorrent -t 2; swarm uses one per core and this machine has 2).
# Prints each run, both medians, the ratio, and checks that both tools made
# the same info-hash.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/swarm-bench}
SIZE=$((2 * 1024 * 1024 * 1024))
PIECE_LOG2=18 # 256 KiB
THREADS=${THREADS:-$(nproc)}

command -v mktorrent >/dev/null || { echo "mktorrent not found (apt-get install mktorrent)" >&2; exit 1; }

echo "building swarm (release)..." >&2
cargo build --release -q -p swarm
SWARM=$PWD/target/release/swarm

mkdir -p "$BENCH_DIR"
FILE=$BENCH_DIR/bench-2GiB.bin
if [ -f "$FILE" ] && [ "$(stat -c %s "$FILE")" -eq "$SIZE" ]; then
    echo "file: $FILE (existing, reused)"
else
    echo "file: $FILE (new: writing 2 GiB of pseudo-random bytes)"
    # AES-CTR keystream from openssl if present (fast), else /dev/urandom.
    if command -v openssl >/dev/null; then
        # (openssl dies of SIGPIPE when head has enough: not a failure)
        { openssl enc -aes-128-ctr -nosalt -pass pass:swarm-bench -in /dev/zero 2>/dev/null || true; } \
            | head -c "$SIZE" >"$FILE.tmp"
    else
        head -c "$SIZE" /dev/urandom >"$FILE.tmp" # head closes the file itself
    fi
    mv "$FILE.tmp" "$FILE"
fi

OUT=$BENCH_DIR/out
mkdir -p "$OUT"

run_swarm() { "$SWARM" create "$FILE" --piece-size 256K -o "$OUT/swarm.torrent" --force >/dev/null 2>&1; }
run_mktorrent() {
    rm -f "$OUT/mktorrent.torrent"
    mktorrent -l "$PIECE_LOG2" -t "$THREADS" -o "$OUT/mktorrent.torrent" "$FILE" >/dev/null
}
now_ns() { date +%s%N; }

echo "warm-up (read the file, run each tool once untimed)..." >&2
cat "$FILE" >/dev/null
run_swarm
run_mktorrent

swarm_times=()
mk_times=()
for ((i = 1; i <= ROUNDS; i++)); do
    t0=$(now_ns); run_swarm; t1=$(now_ns)
    swarm_times+=("$(((t1 - t0) / 1000000))")
    t0=$(now_ns); run_mktorrent; t1=$(now_ns)
    mk_times+=("$(((t1 - t0) / 1000000))")
    echo "round $i: swarm ${swarm_times[-1]} ms, mktorrent ${mk_times[-1]} ms"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ms=$(median "${swarm_times[@]}")
mm=$(median "${mk_times[@]}")
awk -v s="$ms" -v m="$mm" -v size="$SIZE" -v r="$ROUNDS" -v th="$THREADS" 'BEGIN {
    printf "\n2 GiB file, 256 KiB pieces, %d threads, %d rounds (median):\n", th, r
    printf "  swarm create  %6d ms  %5.2f GB/s\n", s, size / (s / 1000) / 1e9
    printf "  mktorrent     %6d ms  %5.2f GB/s\n", m, size / (m / 1000) / 1e9
    printf "  ratio mktorrent/swarm: %.2fx (above 1: swarm is faster)\n", m / s
}'

# Same content, same piece size, no tracker: the info dicts must match.
ih() { "$SWARM" info --json "$1" 2>/dev/null | sed -n 's/.*"info_hash": *"\([0-9a-f]*\)".*/\1/p'; }
a=$(ih "$OUT/swarm.torrent"); b=$(ih "$OUT/mktorrent.torrent")
if [ -n "$a" ] && [ "$a" = "$b" ]; then
    echo "  same info-hash: $a"
elif [ -n "$a" ]; then
    echo "  DIFFERENT info-hashes: swarm $a, mktorrent $b" >&2
    exit 1
fi
