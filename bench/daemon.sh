#!/usr/bin/env bash
# Benchmark: `swarm daemon` against `transmission-daemon` (Debian's
# transmission-daemon, 3.00) with 1,000 small torrents seeding and no peers,
# both in the same run (bench/daemon_bench.py does the work):
#   - the time to add the 1,000 (the torrent-add calls, and until all are
#     seeding: both check each torrent's data as it is added);
#   - CPU-seconds each daemon uses over the same minute (/proc/PID/stat,
#     in 10 ms ticks; and in ms from its threads' /proc/PID/task/*/schedstat),
#     and its wake-ups a second (voluntary context switches of its threads);
#   - RSS and peak RSS at the end of it (/proc/PID/status);
#   - the time of `torrent-get` of all 1,000 (the fields transmission-remote
#     -l asks for), 20 rounds interleaved, min/median/max.
# Goal (issue 13): swarm below Transmission on each; torrent-get < 100 ms.
#
#   bench/daemon.sh
#   TORRENTS=1000 WINDOW=60 ROUNDS=20 BENCH_DIR=/tmp/swarm-bench-daemon bench/daemon.sh
#
# The 1,000 files (16-64 KiB each) and their v1-only torrents (made with
# libtorrent) are made once under BENCH_DIR/content and reused; each run
# starts both daemons with fresh state. Run it on an idle machine: after the
# release build, about 3 minutes (the first run makes the data: ~1 more).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v transmission-daemon >/dev/null || { echo "transmission-daemon not found (apt-get install transmission-daemon)" >&2; exit 1; }
/usr/bin/python3 -c 'import libtorrent' 2>/dev/null || { echo "python3-libtorrent not found (apt-get install python3-libtorrent)" >&2; exit 1; }

echo "building swarm (release)..." >&2
cargo build --release -q -p swarm

exec /usr/bin/python3 bench/daemon_bench.py \
    --swarm "$PWD/target/release/swarm" \
    --dir "${BENCH_DIR:-/tmp/swarm-bench-daemon}" \
    --torrents "${TORRENTS:-1000}" \
    --window "${WINDOW:-60}" \
    --settle "${SETTLE:-10}" \
    --rounds "${ROUNDS:-20}"
