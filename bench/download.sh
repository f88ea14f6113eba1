#!/usr/bin/env bash
# Download and seed benchmark on loopback: swarm against rqbit and libtorrent.
#
#   bench/download.sh                 # 1 GiB, 5 rounds
#   SIZE_MIB=64 ROUNDS=3 bench/download.sh
#   SWARM_BEFORE=/tmp/swarm-old bench/download.sh   # also an older swarm ("old")
#
# Pairs (seeder -> leecher), each ROUNDS times, one 256 KiB-piece torrent:
#   leech:  libtorrent -> swarm, libtorrent -> rqbit, libtorrent -> libtorrent
#   seed:   swarm -> libtorrent (against libtorrent -> libtorrent above)
#   pairs:  swarm -> swarm, rqbit -> rqbit (and libtorrent -> libtorrent above)
# The time is the leecher's wall time from its start to its exit on completion
# (process start included: a user waits for that too); the seeder is started and
# ready (checked, listening) before the clock starts. Peak RSS comes from GNU
# time (`/usr/bin/time -v`) for both sides. Rounds are interleaved (round 1
# runs every pair, then round 2, ...), so a change in machine load hits every
# pair alike; the table gives min / median / max over the rounds.
# With SWARM_BEFORE, the pairs lt-old and old-old run that binary too, for a
# before/after comparison in one run.
#
# The seeder's file is in the page cache after the first round (it was just
# written); every leecher writes a NEW file in a fresh directory, deleted after
# its round. Other load on the machine (builds) skews the numbers: run it idle.
#
# Environment: SIZE_MIB (1024), ROUNDS (3), PIECE_KIB (256), BENCH_DIR (a new
# temp dir, removed at the end unless KEEP=1), RQBIT (~/.cargo/bin/rqbit),
# SWARM (target/release/swarm, built here unless given), SWARM_BEFORE, PAIRS (space-separated
# subset of the pair names below, e.g. PAIRS="lt-swarm swarm-swarm").
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
ROUNDS=${ROUNDS:-5}
PIECE_KIB=${PIECE_KIB:-256}
PY=/usr/bin/python3 # Debian's: the one with python3-libtorrent
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LT_PEER="$ROOT/tests/py/lt_peer.py"
RQBIT=${RQBIT:-$HOME/.cargo/bin/rqbit}
READY_TIMEOUT_S=300
RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-900}
ALL_PAIRS="lt-swarm lt-rqbit lt-lt swarm-lt swarm-swarm rqbit-rqbit"
if [[ -n ${SWARM_BEFORE:-} ]]; then
  [[ -x $SWARM_BEFORE ]] || { echo "bench: missing $SWARM_BEFORE" >&2; exit 1; }
  ALL_PAIRS="$ALL_PAIRS lt-old old-old"
fi
PAIRS=${PAIRS:-$ALL_PAIRS}

die() { echo "bench: $*" >&2; exit 1; }
for p in /usr/bin/time "$PY"; do [[ -x $p ]] || die "missing $p"; done
[[ $PAIRS != *rqbit* || -x $RQBIT ]] || die "missing $RQBIT (cargo install rqbit --locked)"
"$PY" -c 'import libtorrent' || die "$PY cannot import libtorrent"

if [[ -z ${SWARM:-} ]]; then
  echo "building swarm (release)..." >&2
  (cd "$ROOT" && cargo build --release -p swarm >&2)
  SWARM="$ROOT/target/release/swarm"
fi
[[ -x $SWARM ]] || die "missing $SWARM"

BENCH_DIR=${BENCH_DIR:-$(mktemp -d /tmp/swarm-bench.XXXXXX)}
mkdir -p "$BENCH_DIR"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    pkill -KILL -P "$pid" 2>/dev/null || true # the client under `time`
    kill "$pid" 2>/dev/null || true
  done
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
# Each start_* runs the client under `/usr/bin/time -v -o TIMEFILE` in the
# background and sets PID to the `time` process. A seeder is "ready" when its
# log shows it has checked its data.

swarm_bin() { case $1 in old) echo "$SWARM_BEFORE" ;; *) echo "$SWARM" ;; esac; }
# rqbit runs with --disable-dht, libtorrent's lt_peer.py with the DHT off:
# swarm too, when the binary has the flag (builds before the DHT do not).
swarm_flags() { "$(swarm_bin "$1")" download --help 2>/dev/null | grep -q -- --no-dht && echo --no-dht || true; }

start_seeder() { # kind port logbase
  local kind=$1 port=$2 log=$3
  case $kind in
    lt) /usr/bin/time -v -o "$log.time" "$PY" "$LT_PEER" seed --fast --seed-mode \
          --torrent "$TORRENT" --dir "$DATA" --port "$port" >"$log.out" 2>"$log.err" & ;;
    swarm | old) /usr/bin/time -v -o "$log.time" "$(swarm_bin "$kind")" seed "$TORRENT" -d "$DATA" \
          $(swarm_flags "$kind") --listen "127.0.0.1:$port" --json >"$log.out" 2>"$log.err" & ;;
    rqbit) /usr/bin/time -v -o "$log.time" "$RQBIT" --disable-dht --disable-upnp-port-forward \
          --disable-lsd --listen-port "$port" download --overwrite -o "$DATA" --disable-http-api \
          "$TORRENT" >"$log.out" 2>"$log.err" & ;;
  esac
  PID=$!
  PIDS+=("$PID")
}

seeder_ready() { # kind logbase (its files may not exist yet)
  case $1 in
    lt) grep -q '"complete": true' "$2.out" ;;
    swarm | old) grep -Eq '"state" *: *"(seeding|complete|completed)"|"complete" *: *true' "$2.out" ;;
    rqbit) grep -q 'Initial check results' "$2.out" "$2.err" ;;
  esac
}

run_leecher() { # kind seeder_port out_dir logbase -> exit status
  local kind=$1 sport=$2 out=$3 log=$4 port
  port=$(free_port)
  mkdir -p "$out"
  case $kind in
    lt) timeout "$RUN_TIMEOUT_S" /usr/bin/time -v -o "$log.time" "$PY" "$LT_PEER" leech --fast \
          --exit-on-complete --torrent "$TORRENT" --dir "$out" --port "$port" \
          --peer "127.0.0.1:$sport" >"$log.out" 2>"$log.err" ;;
    swarm | old) timeout "$RUN_TIMEOUT_S" /usr/bin/time -v -o "$log.time" "$(swarm_bin "$kind")" download "$TORRENT" \
          $(swarm_flags "$kind") -o "$out" --peer "127.0.0.1:$sport" --listen "127.0.0.1:$port" --json \
          >"$log.out" 2>"$log.err" ;;
    rqbit) timeout "$RUN_TIMEOUT_S" /usr/bin/time -v -o "$log.time" "$RQBIT" --disable-dht \
          --disable-upnp-port-forward --disable-lsd --listen-port "$port" download -o "$out" \
          --exit-on-finish --disable-http-api --initial-peers "127.0.0.1:$sport" "$TORRENT" \
          >"$log.out" 2>"$log.err" ;;
  esac
}

stop_time_child() { # time_pid: SIGTERM its child so `time` writes its report
  local tpid=$1 child
  child=$(pgrep -P "$tpid" || true)
  [[ -n $child ]] && kill -TERM "$child" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.1; done
  [[ -n $child ]] && kill -KILL "$child" 2>/dev/null || true
  wait "$tpid" 2>/dev/null || true
}

peak_rss_mib() { # timefile
  awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); printf "%.1f", $2/1024}' "$1" 2>/dev/null || echo "?"
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

# --- rounds -----------------------------------------------------------------
RESULTS="$BENCH_DIR/results.tsv" # pair round seconds leech_rss seed_rss
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for pair in $PAIRS; do
    seeder=${pair%-*}
    leecher=${pair#*-}
    log="$BENCH_DIR/$pair.$round"
    sport=$(free_port)
    start_seeder "$seeder" "$sport" "$log.seed"
    spid=$PID
    ok=0
    for _ in $(seq $((READY_TIMEOUT_S * 10))); do
      if seeder_ready "$seeder" "$log.seed" 2>/dev/null; then ok=1; break; fi
      kill -0 "$spid" 2>/dev/null || break
      sleep 0.1
    done
    if [[ $ok != 1 ]]; then
      echo "bench: $seeder seeder not ready, see $log.seed.*" >&2
      tail -5 "$log.seed.out" "$log.seed.err" >&2 || true
      stop_time_child "$spid"
      KEEP=1
      continue
    fi
    out="$BENCH_DIR/out-$pair-$round"
    t0=$(date +%s.%N)
    status=0
    run_leecher "$leecher" "$sport" "$out" "$log.leech" || status=$?
    t1=$(date +%s.%N)
    stop_time_child "$spid"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b-a}')
    if [[ $status != 0 ]] || ! cmp -s "$FILE" "$out/bench.bin"; then
      echo "bench: $pair round $round FAILED (exit $status or wrong bytes); logs in $log.leech.*" >&2
      tail -5 "$log.leech.out" "$log.leech.err" >&2 || true
      KEEP=1
      secs=nan
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$pair" "$round" "$secs" "$(peak_rss_mib "$log.leech.time")" \
      "$(peak_rss_mib "$log.seed.time")" >>"$RESULTS"
    echo "$pair round $round: ${secs}s" >&2
    rm -rf "$out"
  done
done

# --- table ------------------------------------------------------------------
name() { case $1 in lt) echo libtorrent ;; old) echo swarm-before ;; *) echo "$1" ;; esac; }
col_of() { awk -F'\t' -v p="$1" -v c="$2" '$1==p && $3!="nan" {print $c}' "$RESULTS"; }
med_of() { col_of "$1" "$2" | median; }
min_of() { col_of "$1" "$2" | sort -g | head -1; }
max_of() { col_of "$1" "$2" | sort -g | tail -1; }
swarm_ref() { # the swarm pair each row is compared with
  case $1 in
    lt-*) echo lt-swarm ;;
    swarm-lt) echo swarm-lt ;;
    *) echo swarm-swarm ;;
  esac
}
echo
echo "swarm bench: ${SIZE_MIB} MiB, ${PIECE_KIB} KiB pieces, loopback, ${ROUNDS} interleaved rounds" \
  "(leecher writes a new file; seeder file in page cache); $(nproc) cores"
printf '%-28s %22s %9s %18s %14s %11s\n' "seeder -> leecher" "time s min/med/max" "MiB/s" \
  "leech RSS MiB max" "seed RSS MiB" "med/swarm"
for pair in $PAIRS; do
  t=$(med_of "$pair" 3)
  ref=$(med_of "$(swarm_ref "$pair")" 3)
  rate=$(awk -v s="$SIZE_MIB" -v t="$t" 'BEGIN {if (t+0>0) printf "%.0f", s/t; else print "-"}')
  ratio=$(awk -v t="$t" -v r="$ref" 'BEGIN {if (r+0>0 && t+0>0) printf "%.2f", t/r; else print "-"}')
  printf '%-28s %22s %9s %18s %14s %11s\n' "$(name "${pair%-*}") -> $(name "${pair#*-}")" \
    "$(min_of "$pair" 3)/$t/$(max_of "$pair" 3)" "$rate" "$(max_of "$pair" 4)" "$(med_of "$pair" 5)" "$ratio"
done
echo "(med/swarm: libtorrent->X rows against libtorrent->swarm; swarm->libtorrent alone; pairs against swarm->swarm)"

summary() {
  local sw rq lt best
  sw=$(med_of lt-swarm 3); rq=$(med_of lt-rqbit 3); lt=$(med_of lt-lt 3)
  best=$(printf '%s\n%s\n' "$rq" "$lt" | grep -v nan | sort -g | head -1)
  echo "goal leech: swarm median ${sw}s <= 0.8 x rqbit median ${rq}s; swarm max $(max_of lt-swarm 3)s < rqbit median;" \
    "swarm peak RSS $(max_of lt-swarm 4) MiB <= rqbit's $(max_of lt-rqbit 4) MiB"
  echo "goal seed: swarm->libtorrent $(med_of swarm-lt 3)s vs libtorrent->libtorrent ${lt}s"
  sw=$(med_of swarm-swarm 3); rq=$(med_of rqbit-rqbit 3)
  echo "goal pair: swarm->swarm median ${sw}s <= 0.8 x rqbit->rqbit ${rq}s; swarm max $(max_of swarm-swarm 3)s"
}
summary
