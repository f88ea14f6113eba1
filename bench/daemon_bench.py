#!/usr/bin/python3
"""Benchmark: `swarm daemon` against `transmission-daemon`, 1,000 small
torrents seeding with no peers, in one run (see bench/daemon.sh).

1. Makes N small files (16-64 KiB, pseudo-random) and a v1-only torrent of
   each with libtorrent (Transmission 3.00 reads those), once, reused.
2. Starts both daemons on loopback (fresh state each run; no DHT, LPD, uTP,
   port mapping; no trackers in the torrents, so no peers).
3. Adds every torrent to each over Transmission's RPC (both speak it; the
   same client code), download folder = the data, and waits until all are
   seeding (each daemon checks the data).
   Both check the data of each torrent as it is added (fresh state, no
   resume record: Transmission verifies a torrent whose files exist, swarm
   checks every piece that has data on disk), so "add" compares like with
   like: the torrent-add calls, then until all are seeding.
4. Lets both settle, then over the same WINDOW seconds reads each one's
   CPU time (utime+stime, /proc/PID/stat), its wake-ups (voluntary context
   switches summed over its threads, /proc/PID/task/*/status) and at the
   end its RSS and peak RSS (/proc/PID/status).
5. Times `torrent-get` of all N torrents (the fields transmission-remote -l
   asks for) ROUNDS times, interleaved, on each daemon.

Prints min/median/max and ratios (swarm / transmission). Run it on an idle
machine: both daemons are measured at the same time.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
import http.client

import libtorrent as lt

FIELDS_LIST = ["error", "errorString", "eta", "id", "isFinished", "leftUntilDone", "name",
               "peersGettingFromUs", "peersSendingToUs", "rateDownload", "rateUpload",
               "sizeWhenDone", "status", "uploadRatio"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Rpc:
    """A Transmission RPC client with the session-id handshake."""

    def __init__(self, port):
        self.port = port
        self.sid = ""

    def call(self, method, arguments):
        body = json.dumps({"method": method, "arguments": arguments})
        for _ in range(3):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            c.request("POST", "/transmission/rpc", body,
                      {"X-Transmission-Session-Id": self.sid, "Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if r.status == 409:
                self.sid = r.getheader("X-Transmission-Session-Id")
                continue
            if r.status != 200:
                raise RuntimeError(f"{method}: HTTP {r.status}: {data[:200]!r}")
            out = json.loads(data)
            if out.get("result") != "success":
                raise RuntimeError(f"{method}: {out.get('result')}")
            return out["arguments"]
        raise RuntimeError("no session id")


def make_data(root, n):
    data, tdir = os.path.join(root, "data"), os.path.join(root, "torrents")
    marker = os.path.join(root, f"made-{n}")
    if os.path.exists(marker):
        print(f"data: {n} files and torrents in {root} (existing, reused)")
        return data, tdir
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(data)
    os.makedirs(tdir)
    rng = random.Random(1000)
    for i in range(n):
        name = f"small-{i:04d}.bin"
        size = rng.randrange(16 * 1024, 64 * 1024)
        with open(os.path.join(data, name), "wb") as f:
            f.write(rng.randbytes(size))
        fs = lt.file_storage()
        lt.add_files(fs, os.path.join(data, name))
        t = lt.create_torrent(fs, 16 * 1024, flags=lt.create_torrent.v1_only)
        lt.set_piece_hashes(t, data)
        with open(os.path.join(tdir, f"{i:04d}.torrent"), "wb") as f:
            f.write(lt.bencode(t.generate()))
    open(marker, "w").close()
    print(f"data: {n} files and torrents made in {root}")
    return data, tdir


def wait_port(port, proc, what):
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} does not listen on {port}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_ns(pid):
    """CPU time of the process's live threads in ns (/proc/PID/task/*/
    schedstat): the clock-tick figure of /proc/PID/stat moves in 10 ms
    steps, too coarse for an idle daemon's minute. A thread that ends
    within the window takes its time with it (the tick figure keeps it)."""
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                n += int(f.read().split()[0])
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return n


def rss_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def wakeups(pid):
    """Voluntary context switches of all the process's threads: each is a
    sleep, so each is one wake-up."""
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        n += int(line.split()[1])
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return n


def add_all(name, rpc, tdir, data):
    """Seconds the torrent-add calls took."""
    t0 = time.monotonic()
    for fn in sorted(os.listdir(tdir)):
        with open(os.path.join(tdir, fn), "rb") as f:
            meta = base64.b64encode(f.read()).decode()
        rpc.call("torrent-add", {"metainfo": meta, "download-dir": data})
    took = time.monotonic() - t0
    print(f"{name}: added {len(os.listdir(tdir))} torrents in {took:.1f} s")
    return took


def wait_seeding(name, rpc, n, timeout, t0):
    """Seconds from t0 until all n torrents are seeding."""
    seeding = 0
    while time.monotonic() - t0 < timeout:
        ts = rpc.call("torrent-get", {"fields": ["id", "status", "percentDone"]})["torrents"]
        seeding = sum(1 for t in ts if t["status"] == 6 and t["percentDone"] == 1)
        if len(ts) == n and seeding == n:
            took = time.monotonic() - t0
            print(f"{name}: all {n} seeding {took:.1f} s after the first add")
            return took
        time.sleep(0.2)
    sys.exit(f"{name}: only {seeding} of {n} seeding after {timeout} s")


def stats(xs):
    return min(xs), statistics.median(xs), max(xs)


def main():
    sys.stdout.reconfigure(line_buffering=True)
    p = argparse.ArgumentParser()
    p.add_argument("--swarm", required=True)
    p.add_argument("--dir", default="/tmp/swarm-bench-daemon")
    p.add_argument("--torrents", type=int, default=1000)
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=20)
    a = p.parse_args()

    data, tdir = make_data(os.path.join(a.dir, "content"), a.torrents)
    run = os.path.join(a.dir, "run")
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(run)

    sw_http, sw_peer = free_port(), free_port()
    tr_rpc, tr_peer = free_port(), free_port()
    logs = {k: open(os.path.join(run, f"{k}.log"), "w") for k in ("swarm", "transmission")}
    swarm = subprocess.Popen(
        [a.swarm, "daemon", "--http", f"127.0.0.1:{sw_http}", "--listen", f"127.0.0.1:{sw_peer}",
         "--state", os.path.join(run, "swarm-state"), "--download-dir", data],
        stdout=logs["swarm"], stderr=subprocess.STDOUT)
    tr = subprocess.Popen(
        ["transmission-daemon", "-f", "-g", os.path.join(run, "tr-config"), "-w", data,
         "-p", str(tr_rpc), "-P", str(tr_peer), "-T", "-O", "-Y", "--no-utp", "-M",
         "-r", "127.0.0.1", "-i", "127.0.0.1", "-L", "2000", "--log-error"],
        stdout=logs["transmission"], stderr=subprocess.STDOUT)
    try:
        wait_port(sw_http, swarm, "swarm daemon")
        wait_port(tr_rpc, tr, "transmission-daemon")
        rpcs = {"swarm": Rpc(sw_http), "transmission": Rpc(tr_rpc)}
        pids = {"swarm": swarm.pid, "transmission": tr.pid}
        # Transmission queues downloads, not seeds; its verify queue checks
        # one torrent at a time: allow it.
        # One daemon after the other (each alone on the machine while it
        # adds and checks).
        added, seeding = {}, {}
        for name, rpc in rpcs.items():
            t0 = time.monotonic()
            added[name] = add_all(name, rpc, tdir, data)
            seeding[name] = wait_seeding(name, rpc, a.torrents, 1800, t0)
        print(f"settling {a.settle:.0f} s, then measuring {a.window:.0f} s of both at once ...")
        time.sleep(a.settle)
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        ns0 = {k: cpu_ns(p) for k, p in pids.items()}
        wake0 = {k: wakeups(p) for k, p in pids.items()}
        time.sleep(a.window)
        cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
        cpu_ms = {k: (cpu_ns(p) - ns0[k]) / 1e6 for k, p in pids.items()}
        wake = {k: (wakeups(p) - wake0[k]) / a.window for k, p in pids.items()}
        mem = {k: rss_kib(p) for k, p in pids.items()}
        times = {k: [] for k in rpcs}
        for _ in range(a.rounds):
            for name, rpc in rpcs.items():
                t0 = time.perf_counter()
                ts = rpc.call("torrent-get", {"fields": FIELDS_LIST})["torrents"]
                times[name].append((time.perf_counter() - t0) * 1000)
                assert len(ts) == a.torrents, (name, len(ts))
    finally:
        for proc in (swarm, tr):
            proc.terminate()
        for proc in (swarm, tr):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()

    print()
    print(f"{a.torrents} torrents seeding, no peers; CPU over the same {a.window:.0f} s window; "
          f"torrent-get of all ({len(FIELDS_LIST)} fields, {a.rounds} rounds, interleaved)")
    print(f"{'':28} {'swarm':>14} {'transmission':>14} {'ratio':>8}")
    def row(label, s, t, fmt):
        ratio = f"{s / t:8.2f}" if t else f"{'-':>8}"
        print(f"{label:28} {s:14{fmt}} {t:14{fmt}} {ratio}")

    row("add (torrent-add calls, s)", added["swarm"], added["transmission"], ".1f")
    row("add until all seeding (s)", seeding["swarm"], seeding["transmission"], ".1f")
    row(f"CPU-seconds / {int(a.window)} s", cpu["swarm"], cpu["transmission"], ".2f")
    row(f"CPU-ms / {int(a.window)} s (threads)", cpu_ms["swarm"], cpu_ms["transmission"], ".1f")
    row("wake-ups / s", wake["swarm"], wake["transmission"], ".1f")
    for k, label in (("VmRSS", "RSS (MiB)"), ("VmHWM", "peak RSS (MiB)")):
        row(label, mem["swarm"][k] / 1024, mem["transmission"][k] / 1024, ".1f")
    for i, label in enumerate(("torrent-get min (ms)", "torrent-get median (ms)", "torrent-get max (ms)")):
        row(label, stats(times["swarm"])[i], stats(times["transmission"])[i], ".1f")


if __name__ == "__main__":
    main()
