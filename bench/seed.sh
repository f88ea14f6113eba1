#!/usr/bin/env bash
# Seeding benchmark on loopback: swarm and libtorrent each seed one torrent to
# Transmission, libtorrent, aria2 and rqbit, in one run.
#
#   bench/seed.sh                          # 256 MiB, 3 rounds
#   SIZE_MIB=64 ROUNDS=1 LEECHERS="transmission lt" bench/seed.sh
#   SWARM_BEFORE=/tmp/swarm-old bench/seed.sh   # also an older swarm binary
#
# Rounds are interleaved: round 1 runs every (seeder, leecher) pair, then
# round 2, and so on, so a change in machine load hits every pair alike.
# Each run: the leecher starts first with an empty folder, listening on a
# free port (Transmission takes data only from peers that connect to it: a
# tracker's 127.x addresses are ignored); then the seeder starts with the
# data and dials it. The time is from the seeder's start (its start-up and
# check included: swarm trusts its resume record after round 1, libtorrent
# runs in seed mode) to the leecher's completion (its exit, or Transmission's
# completion script). The bytes are compared after every run.
#
# The torrent is v1-only (Transmission 3.00 cannot open hybrid ones), one
# file, PIECE_KIB pieces. The seeder's file is in the page cache after the
# first round; every leecher writes a new file, deleted after its run.
#
# Environment: SIZE_MIB (256), ROUNDS (3), PIECE_KIB (256), LEECHERS
# ("transmission lt aria2 rqbit"), SWARM (target/release/swarm, built here
# unless given), SWARM_BEFORE (another swarm binary, shown as seeder
# "swarm-before"), RQBIT (~/.cargo/bin/rqbit), BENCH_DIR, KEEP=1.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-256}
ROUNDS=${ROUNDS:-3}
PIECE_KIB=${PIECE_KIB:-256}
LEECHERS=${LEECHERS:-transmission lt aria2 rqbit}
PY=/usr/bin/python3 # Debian's: the one with python3-libtorrent
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LT_PEER="$ROOT/tests/py/lt_peer.py"
RQBIT=${RQBIT:-$HOME/.cargo/bin/rqbit}
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-600}

die() { echo "bench: $*" >&2; exit 1; }
"$PY" -c 'import libtorrent' || die "$PY cannot import libtorrent"
for l in $LEECHERS; do
  case $l in
    transmission) command -v transmission-cli >/dev/null || die "missing transmission-cli" ;;
    aria2) command -v aria2c >/dev/null || die "missing aria2c" ;;
    rqbit) [[ -x $RQBIT ]] || die "missing $RQBIT (cargo install rqbit --locked)" ;;
    lt) ;;
    *) die "unknown leecher $l" ;;
  esac
done

if [[ -z ${SWARM:-} ]]; then
  echo "building swarm (release)..." >&2
  (cd "$ROOT" && cargo build --release -p swarm >&2)
  SWARM="$ROOT/target/release/swarm"
fi
[[ -x $SWARM ]] || die "missing $SWARM"
SEEDERS="swarm lt"
if [[ -n ${SWARM_BEFORE:-} ]]; then
  [[ -x $SWARM_BEFORE ]] || die "missing $SWARM_BEFORE"
  SEEDERS="swarm-before swarm lt"
fi

BENCH_DIR=${BENCH_DIR:-$(mktemp -d /tmp/swarm-seed-bench.XXXXXX)}
mkdir -p "$BENCH_DIR"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$BENCH_DIR"; else echo "kept $BENCH_DIR" >&2; fi
}
trap cleanup EXIT

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# --- data and torrent -------------------------------------------------------
DATA="$BENCH_DIR/data"
mkdir -p "$DATA"
FILE="$DATA/bench.bin"
echo "writing ${SIZE_MIB} MiB of random data..." >&2
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$FILE"
TORRENT="$BENCH_DIR/bench.torrent"
"$PY" "$LT_PEER" create --content "$FILE" --out "$TORRENT" --piece-size $((PIECE_KIB * 1024)) >/dev/null

# --- peers ------------------------------------------------------------------
start_leecher() { # kind port out log -> LPID, DONE (a file that appears on completion, or "")
  local kind=$1 port=$2 out=$3 log=$4
  mkdir -p "$out"
  DONE=""
  case $kind in
    transmission)
      mkdir -p "$log.tr"
      DONE="$log.tr/done"
      printf '#!/bin/sh\ntouch %q\n' "$DONE" >"$log.tr/on-done.sh"
      chmod +x "$log.tr/on-done.sh"
      transmission-cli -M -et -D -U -p "$port" -g "$log.tr/config" -w "$out" \
        -f "$log.tr/on-done.sh" "$TORRENT" >"$log.out" 2>"$log.err" & ;;
    lt) "$PY" "$LT_PEER" leech --fast --exit-on-complete --torrent "$TORRENT" --dir "$out" \
          --port "$port" >"$log.out" 2>"$log.err" & ;;
    aria2) aria2c --enable-dht=false --enable-dht6=false --bt-enable-lpd=false \
          --enable-peer-exchange=false --file-allocation=none --seed-time=0 \
          --listen-port="$port" --dir="$out" --console-log-level=warn "$TORRENT" \
          >"$log.out" 2>"$log.err" & ;;
    rqbit) "$RQBIT" --disable-dht --disable-upnp-port-forward --disable-lsd --listen-port "$port" \
          download -o "$out" --exit-on-finish --disable-http-api "$TORRENT" \
          >"$log.out" 2>"$log.err" & ;;
  esac
  LPID=$!
  PIDS+=("$LPID")
}

start_seeder() { # kind leecher_port log -> SPID
  local kind=$1 lport=$2 log=$3 sport
  sport=$(free_port)
  case $kind in
    swarm | swarm-before)
      local bin=$SWARM
      [[ $kind == swarm-before ]] && bin=$SWARM_BEFORE
      "$bin" seed "$TORRENT" -d "$DATA" --listen "127.0.0.1:$sport" --peer "127.0.0.1:$lport" \
        --json >"$log.out" 2>"$log.err" & ;;
    lt) "$PY" "$LT_PEER" seed --fast --seed-mode --torrent "$TORRENT" --dir "$DATA" \
          --port "$sport" --peer "127.0.0.1:$lport" >"$log.out" 2>"$log.err" & ;;
  esac
  SPID=$!
  PIDS+=("$SPID")
}

wait_listening() { # port
  for _ in $(seq 300); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

# --- rounds -----------------------------------------------------------------
RESULTS="$BENCH_DIR/results.tsv" # seeder leecher round seconds
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for leecher in $LEECHERS; do
    for seeder in $SEEDERS; do
      log="$BENCH_DIR/$seeder-$leecher.$round"
      out="$BENCH_DIR/out-$seeder-$leecher-$round"
      lport=$(free_port)
      start_leecher "$leecher" "$lport" "$out" "$log.leech"
      wait_listening "$lport" || { echo "bench: $leecher did not listen" >&2; KEEP=1; }
      t0=$(date +%s.%N)
      start_seeder "$seeder" "$lport" "$log.seed"
      status=0
      for _ in $(seq $((RUN_TIMEOUT_S * 20))); do
        if [[ -n $DONE ]]; then
          [[ -e $DONE ]] && break
          kill -0 "$LPID" 2>/dev/null || { status=1; break; }
        else
          kill -0 "$LPID" 2>/dev/null || { wait "$LPID" || status=$?; break; }
        fi
        sleep 0.05
      done
      t1=$(date +%s.%N)
      kill "$SPID" "$LPID" 2>/dev/null || true
      wait "$SPID" "$LPID" 2>/dev/null || true
      secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b-a}')
      got=$(find "$out" -name bench.bin | head -1)
      if [[ $status != 0 || -z $got ]] || ! cmp -s "$FILE" "$got"; then
        echo "bench: $seeder -> $leecher round $round FAILED (status $status or wrong bytes); logs in $log.*" >&2
        KEEP=1
        secs=nan
      fi
      printf '%s\t%s\t%s\t%s\n' "$seeder" "$leecher" "$round" "$secs" >>"$RESULTS"
      echo "$seeder -> $leecher round $round: ${secs}s" >&2
      rm -rf "$out"
    done
  done
done

# --- table ------------------------------------------------------------------
stat_of() { # seeder leecher -> "min median max"
  local v
  v=$(awk -F'\t' -v s="$1" -v l="$2" '$1==s && $2==l && $4!="nan" {print $4}' "$RESULTS")
  if [[ -z $v ]]; then echo "nan nan nan"; return; fi
  echo "$(echo "$v" | sort -g | head -1) $(echo "$v" | median) $(echo "$v" | sort -g | tail -1)"
}
name() { case $1 in lt) echo libtorrent ;; *) echo "$1" ;; esac; }
echo
echo "swarm seed bench: ${SIZE_MIB} MiB, ${PIECE_KIB} KiB pieces, v1, loopback, ${ROUNDS} interleaved rounds; $(nproc) cores"
printf '%-14s %-14s %8s %8s %8s %8s %10s\n' "seeder" "leecher" "min s" "median" "max s" "MiB/s" "swarm/lt"
for leecher in $LEECHERS; do
  read -r _ lt_med _ <<<"$(stat_of lt "$leecher")"
  for seeder in $SEEDERS; do
    read -r mn md mx <<<"$(stat_of "$seeder" "$leecher")"
    rate=$(awk -v s="$SIZE_MIB" -v t="$md" 'BEGIN {if (t+0>0) printf "%.0f", s/t; else print "-"}')
    ratio=$(awk -v t="$md" -v r="$lt_med" 'BEGIN {if (r+0>0 && t+0>0) printf "%.2f", t/r; else print "-"}')
    printf '%-14s %-14s %8s %8s %8s %8s %10s\n' "$(name "$seeder")" "$(name "$leecher")" "$mn" "$md" "$mx" "$rate" "$ratio"
  done
done
echo "(swarm/lt: the seeder's median time over libtorrent's to the same leecher; goal <= 1.00)"
