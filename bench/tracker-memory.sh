#!/usr/bin/env bash
# Tracker memory with 1,000,000 peers held: swarm, aquatic_udp and opentracker
# each get the same UDP announces (bench/tracker_fill.py: PEERS distinct
# peers from 20 source addresses 127.0.1.x, over TORRENTS info-hashes,
# numwant 0), then the process's resident memory is read from
# /proc/PID/status (VmRSS now, VmHWM peak) and divided by the peers held.
# Memory, not time: the figures do not depend on the machine's load.
#
#   bench/tracker-memory.sh                       # 1,000,000 peers, 100,000 torrents
#   PEERS=100000 bench/tracker-memory.sh
#
# Environment: PEERS (1000000), TORRENTS (100000), TRACKERS ("swarm aquatic
# opentracker"), SWARM (target/release/swarm, built here unless given),
# AQUATIC_UDP (~/.cargo/bin/aquatic_udp).
set -euo pipefail

PEERS=${PEERS:-1000000}
TORRENTS=${TORRENTS:-100000}
TRACKERS=${TRACKERS:-swarm aquatic opentracker}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AQUATIC_UDP=${AQUATIC_UDP:-$HOME/.cargo/bin/aquatic_udp}
PY=/usr/bin/python3

die() { echo "bench: $*" >&2; exit 1; }
if [[ -z ${SWARM:-} ]]; then
  echo "building swarm (release)..." >&2
  (cd "$ROOT" && cargo build --release -p swarm >&2)
  SWARM="$ROOT/target/release/swarm"
fi
for t in $TRACKERS; do
  case $t in
    aquatic) [[ -x $AQUATIC_UDP ]] || die "missing $AQUATIC_UDP (cargo install aquatic_udp)" ;;
    opentracker) command -v opentracker >/dev/null || die "missing opentracker (apt-get install opentracker)" ;;
  esac
done

DIR=$(mktemp -d /tmp/swarm-tracker-mem.XXXXXX)
PID=
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kib() { awk -v k="$1:" '$1==k {print $2}' "/proc/$PID/status"; }

# opentracker (Debian's) tracks whitelisted hashes only: list them all.
"$PY" - "$TORRENTS" >"$DIR/whitelist" <<'EOF'
import hashlib, sys
for i in range(int(sys.argv[1])):
    print(hashlib.sha1(b"swarm-bench-torrent-%d" % i).hexdigest())
EOF

printf '| %-12s | %12s | %13s | %14s | %14s |\n' tracker "peers sent" "replies" "peak RSS MiB" "bytes / peer"
printf '|--------------|--------------|---------------|----------------|----------------|\n'
for t in $TRACKERS; do
  port=$(free_port)
  case $t in
    swarm) "$SWARM" tracker --udp "127.0.0.1:$port" >"$DIR/$t.log" 2>&1 & ;;
    aquatic)
      "$AQUATIC_UDP" -p | sed -e "s|^address = .*|address = \"127.0.0.1:$port\"|" >"$DIR/aquatic.toml"
      "$AQUATIC_UDP" -c "$DIR/aquatic.toml" >"$DIR/$t.log" 2>&1 & ;;
    opentracker)
      printf 'listen.udp 127.0.0.1:%s\naccess.whitelist %s\n' "$port" "$DIR/whitelist" >"$DIR/ot.conf"
      opentracker -f "$DIR/ot.conf" >"$DIR/$t.log" 2>&1 & ;;
  esac
  PID=$!
  sleep 2
  kill -0 "$PID" 2>/dev/null || { cat "$DIR/$t.log" >&2; die "$t did not start"; }
  base=$(kib VmRSS)
  fill=$("$PY" "$ROOT/bench/tracker_fill.py" --port "$port" --peers "$PEERS" --torrents "$TORRENTS")
  hwm=$(kib VmHWM)
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  sent=$(echo "$fill" | grep -o '"sent": [0-9]*' | grep -o '[0-9]*$')
  replies=$(echo "$fill" | grep -o '"replies": [0-9]*' | grep -o '[0-9]*$')
  per=$(awk -v h="$hwm" -v b="$base" -v n="$replies" 'BEGIN {if (n > 0) printf "%.0f", (h - b) * 1024 / n; else print "-"}')
  printf '| %-12s | %12s | %13s | %14s | %14s |\n' "$t" "$sent" "$replies" "$((hwm / 1024))" "$per"
done
echo "(bytes / peer: (peak RSS - RSS at start) / announces answered; every peer is distinct, so the tracker holds one per reply)"
