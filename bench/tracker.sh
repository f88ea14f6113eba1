#!/usr/bin/env bash
# Tracker benchmark on loopback, side by side in one run, interleaved rounds:
#   UDP:  aquatic_udp_load_test against swarm's UDP tracker and aquatic_udp,
#         the same load config, everything on 127.0.0.1 sharing the cores;
#   HTTP: wrk announcing (a fresh peer id and port per request, one
#         whitelisted info-hash) against swarm's HTTP tracker and opentracker.
# Reports responses/s (min/median/max over the rounds, and the ratio of the
# medians), each tracker's peak RSS (GNU time), and for swarm the peers it
# held at the end (/stats), hence bytes per peer.
#
#   bench/tracker.sh                       # 3 rounds of 20 s each
#   ROUNDS=5 SECONDS_EACH=30 bench/tracker.sh
#
# The UDP load simulates PEERS peers (default 1,000,000) over TORRENTS
# torrents (default 100,000), 50% connects, 50% announces (30 peers wanted),
# 1% scrapes: after ~20 s nearly every simulated peer has announced, so the
# peak RSS is that of a tracker holding about PEERS peers.
#
# Environment: ROUNDS (3), SECONDS_EACH (20), PEERS (1000000), TORRENTS
# (100000), LOAD_WORKERS (1), WRK_CONNECTIONS (64), SWARM (target/release/swarm,
# built here unless given), AQUATIC_UDP / AQUATIC_LOAD (~/.cargo/bin/...),
# BENCH_DIR (a temp dir, removed unless KEEP=1).
# The memory of each tracker holding 1,000,000 distinct peers is measured
# by bench/tracker-memory.sh (the load test above concentrates on few peers).
# Installs (minutes of CPU): cargo install aquatic_udp_load_test --locked;
# cargo install aquatic_udp.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-20}
PEERS=${PEERS:-1000000}
TORRENTS=${TORRENTS:-100000}
LOAD_WORKERS=${LOAD_WORKERS:-1}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-64}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AQUATIC_UDP=${AQUATIC_UDP:-$HOME/.cargo/bin/aquatic_udp}
AQUATIC_LOAD=${AQUATIC_LOAD:-$HOME/.cargo/bin/aquatic_udp_load_test}
CORES=$(nproc)

die() { echo "bench: $*" >&2; exit 1; }
for p in /usr/bin/time "$AQUATIC_UDP" "$AQUATIC_LOAD" "$(command -v wrk)" "$(command -v opentracker)" "$(command -v curl)"; do
  [[ -x $p ]] || die "missing $p"
done
if [[ -z ${SWARM:-} ]]; then
  echo "building swarm (release)..." >&2
  (cd "$ROOT" && cargo build --release -p swarm >&2)
  SWARM="$ROOT/target/release/swarm"
fi
[[ -x $SWARM ]] || die "missing $SWARM"

BENCH_DIR=${BENCH_DIR:-$(mktemp -d /tmp/swarm-tracker-bench.XXXXXX)}
mkdir -p "$BENCH_DIR"
PID=
cleanup() {
  if [[ -n $PID ]]; then pkill -INT -P "$PID" 2>/dev/null || true; kill "$PID" 2>/dev/null || true; fi
  if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$BENCH_DIR"; else echo "kept $BENCH_DIR" >&2; fi
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts "$@" under GNU time (peak RSS into $BENCH_DIR/$1.time), sets PID.
start() {
  local name=$1; shift
  /usr/bin/time -v -o "$BENCH_DIR/$name.time" "$@" >"$BENCH_DIR/$name.out" 2>"$BENCH_DIR/$name.err" &
  PID=$!
}
# Stops the tracker under time (SIGINT to the child, then waits); prints peak RSS KiB.
stop() {
  local name=$1
  pkill -INT -P "$PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  pkill -KILL -P "$PID" 2>/dev/null || true
  # Called in $(...), a subshell that cannot `wait` for the parent's child:
  # poll for GNU time's report instead.
  for _ in $(seq 100); do grep -q 'Maximum resident' "$BENCH_DIR/$name.time" 2>/dev/null && break; sleep 0.1; done
  awk -F': ' '/Maximum resident set size/ {print $2}' "$BENCH_DIR/$name.time"
}
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
wait_udp() { sleep 1; }

load_config() { # port
  cat <<EOF
server_address = "127.0.0.1:$1"
log_level = "error"
workers = $LOAD_WORKERS
duration = $SECONDS_EACH
summarize_last = 0
extra_statistics = false
[network]
multiple_client_ipv4s = true
sockets_per_worker = 4
recv_buffer = 8000000
[requests]
number_of_torrents = $TORRENTS
number_of_peers = $PEERS
scrape_max_torrents = 10
announce_peers_wanted = 30
weight_connect = 50
weight_announce = 50
weight_scrape = 1
peer_seeder_probability = 0.75
EOF
}

# Runs the UDP load against port; prints responses/s.
udp_load() {
  local port=$1 name=$2
  load_config "$port" >"$BENCH_DIR/load.toml"
  "$AQUATIC_LOAD" -c "$BENCH_DIR/load.toml" >"$BENCH_DIR/$name.load" 2>&1 || true
  # "Responses in: 123456/second" (last summary line)
  grep -o 'Responses in: *[0-9.]*' "$BENCH_DIR/$name.load" | tail -1 | grep -o '[0-9.]*$'
}

aquatic_config() { # port
  # Same address, one socket worker per core; everything else aquatic's
  # defaults (it hands out at most 30 peers: the load asks for 30).
  "$AQUATIC_UDP" -p | sed -e "s/^socket_workers = .*/socket_workers = $CORES/" \
      -e "s|^address = .*|address = \"127.0.0.1:$1\"|" \
      -e "s/^print_to_stdout = .*/print_to_stdout = true/"
}

declare -A UDP_RPS UDP_RSS HTTP_RPS HTTP_RSS
SWARM_PEERS=()

IH_HEX=0123456789abcdef0123456789abcdef01234567
IH_PCT=$(echo "$IH_HEX" | sed 's/../%&/g')
cat >"$BENCH_DIR/announce.lua" <<EOF
-- A fresh peer (id and port) per request; one whitelisted info-hash.
local n = 0
local chars = "abcdefghijklmnopqrstuvwxyz0123456789"
request = function()
  n = n + 1
  local id = "-WK0001-"
  for i = 1, 12 do
    local k = math.random(1, #chars)
    id = id .. chars:sub(k, k)
  end
  local port = math.random(1024, 65535)
  local left = (math.random() < 0.75) and 0 or 1000
  local path = "/announce?info_hash=$IH_PCT&peer_id=" .. id .. "&port=" .. port
    .. "&uploaded=0&downloaded=0&left=" .. left .. "&compact=1&numwant=50"
  return wrk.format("GET", path)
end
EOF
echo "$IH_HEX" >"$BENCH_DIR/whitelist"

http_load() { # port name; prints requests/s
  wrk -t1 -c"$WRK_CONNECTIONS" -d"${SECONDS_EACH}s" -s "$BENCH_DIR/announce.lua" "http://127.0.0.1:$1" >"$BENCH_DIR/$2.wrk" 2>&1 || true
  awk '/Requests\/sec/ {print $2}' "$BENCH_DIR/$2.wrk"
}

for round in $(seq "$ROUNDS"); do
  echo "== round $round/$ROUNDS" >&2
  # UDP, alternating which tracker goes first.
  order="swarm aquatic"; (( round % 2 == 0 )) && order="aquatic swarm"
  for who in $order; do
    port=$(free_port)
    peers=
    if [[ $who == swarm ]]; then
      hport=$(free_port)
      start "udp-swarm-$round" "$SWARM" tracker --udp "127.0.0.1:$port" --http "127.0.0.1:$hport" --workers "$CORES"
      wait_port "$hport" || die "swarm tracker did not start"
    else
      aquatic_config "$port" >"$BENCH_DIR/aquatic.toml"
      start "udp-aquatic-$round" "$AQUATIC_UDP" -c "$BENCH_DIR/aquatic.toml"
      wait_udp
    fi
    rps=$(udp_load "$port" "udp-$who-$round")
    if [[ $who == swarm ]]; then
      peers=$(curl -s "http://127.0.0.1:$hport/stats" | grep -o '"peers":[0-9]*' | grep -o '[0-9]*$')
      SWARM_PEERS+=("$peers")
    fi
    rss=$(stop "udp-$who-$round")
    wait 2>/dev/null || true
    UDP_RPS[$who]+="$rps "; UDP_RSS[$who]+="$rss "
    echo "udp $who: ${rps:-?} responses/s, peak RSS ${rss:-?} KiB ${peers:+(holding $peers peers)}" >&2
  done
  # HTTP.
  order="swarm opentracker"; (( round % 2 == 0 )) && order="opentracker swarm"
  for who in $order; do
    port=$(free_port)
    if [[ $who == swarm ]]; then
      start "http-swarm-$round" "$SWARM" tracker --http "127.0.0.1:$port" --whitelist "$BENCH_DIR/whitelist" --workers "$CORES"
    else
      printf 'listen.tcp 127.0.0.1:%s\naccess.whitelist %s\n' "$port" "$BENCH_DIR/whitelist" >"$BENCH_DIR/ot.conf"
      start "http-opentracker-$round" opentracker -f "$BENCH_DIR/ot.conf"
    fi
    wait_port "$port" || die "$who did not start"
    rps=$(http_load "$port" "http-$who-$round")
    rss=$(stop "http-$who-$round")
    wait 2>/dev/null || true
    HTTP_RPS[$who]+="$rps "; HTTP_RSS[$who]+="$rss "
    echo "http $who: ${rps:-?} requests/s, peak RSS ${rss:-?} KiB" >&2
  done
done

stats() { # numbers... -> "min median max"
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.0f %.0f %.0f", a[1], a[int((NR+1)/2)], a[NR]}'
}
table() { # title unit ours theirs ours_name theirs_name
  local -n rps=$1 rss=$2
  local ours=$3 theirs=$4
  read -r omin omed omax <<<"$(stats ${rps[$ours]})"
  read -r tmin tmed tmax <<<"$(stats ${rps[$theirs]})"
  read -r _ orss _ <<<"$(stats ${rss[$ours]})"
  read -r _ trss _ <<<"$(stats ${rss[$theirs]})"
  printf '| %-12s | %10s | %10s | %10s | %12s |\n' tracker "min/s" "median/s" "max/s" "peak RSS MiB"
  printf '|--------------|------------|------------|------------|--------------|\n'
  printf '| %-12s | %10s | %10s | %10s | %12s |\n' "$ours" "$omin" "$omed" "$omax" "$((orss / 1024))"
  printf '| %-12s | %10s | %10s | %10s | %12s |\n' "$theirs" "$tmin" "$tmed" "$tmax" "$((trss / 1024))"
  awk -v a="$omed" -v b="$tmed" -v n="$ours" -v m="$theirs" 'BEGIN {printf "ratio %s / %s (medians): %.2f\n", n, m, a / b}'
}

echo
echo "UDP (aquatic_udp_load_test, $PEERS peers over $TORRENTS torrents, ${SECONDS_EACH}s x $ROUNDS rounds, $CORES cores shared):"
table UDP_RPS UDP_RSS swarm aquatic
echo "swarm held ${SWARM_PEERS[*]} peers at the end of its rounds"
last_rss=$(stats ${UDP_RSS[swarm]} | awk '{print $2}')
last_peers=$(stats "${SWARM_PEERS[@]}" | awk '{print $2}')
awk -v r="$last_rss" -v p="$last_peers" 'BEGIN {if (p > 0) printf "swarm: %.0f bytes of peak RSS per peer held (whole process)\n", r * 1024 / p}'
echo
echo "HTTP (wrk, $WRK_CONNECTIONS connections, a new peer per announce, ${SECONDS_EACH}s x $ROUNDS rounds):"
table HTTP_RPS HTTP_RSS swarm opentracker
