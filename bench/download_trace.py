#!/usr/bin/python3
"""Where a download's time goes, round by round: libtorrent seeds, a leecher
(swarm, or rqbit to compare) downloads, and every SAMPLE_S seconds this samples,
from /proc, the bytes received on loopback (the transfer, on an idle machine),
the leecher's bytes written (wchar: its file writes), its CPU time, the seeder's
CPU time, and the kernel's dirty and writeback page counts. One table per
round, then a summary line per round (time, mean rates, CPU, peak dirty), so a
slow round can be set beside a fast one.

    bench/download_trace.py [--size-mib 1024] [--rounds 5] [--leecher swarm|rqbit]
                            [--swarm target/release/swarm] [--quiet]

Run it on an idle machine: other load changes what it measures. Timing only,
no assertion: this is a measuring tool, not a test.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"  # Debian's, with python3-libtorrent
LT_PEER = os.path.join(ROOT, "tests", "py", "lt_peer.py")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_io(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                k, v = line.split(":")
                out[k] = int(v)
    except OSError:
        return None
    return out


def threads_cpu(pid):
    """{thread name: CPU seconds} summed over the threads of that name."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
        out[name] = out.get(name, 0.0) + cpu
    return out


def proc_cpu(pid):
    """CPU seconds of the process, its exited threads included."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def loopback_rx():
    """Bytes received on lo so far (all of the machine's loopback traffic)."""
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[0])
    return 0


def meminfo_mib(keys):
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            if k in keys:
                out[k] = int(v.split()[0]) / 1024
    return out


VMSTAT_KEYS = ("pgscan_direct", "pgscan_kswapd", "compact_stall", "allocstall_movable",
               "allocstall_normal")


def vmstat():
    """The kernel's reclaim counters: page scans by direct reclaim (the
    allocating task waits) and by kswapd (in the background), compaction
    stalls and allocation stalls."""
    out = {}
    with open("/proc/vmstat") as f:
        for line in f:
            k, v = line.split()
            if k in VMSTAT_KEYS:
                out[k] = int(v)
    return out


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--leecher", choices=["swarm", "rqbit"], default="swarm")
    ap.add_argument("--swarm", default=os.path.join(ROOT, "target", "release", "swarm"))
    ap.add_argument("--rqbit", default=os.path.expanduser("~/.cargo/bin/rqbit"))
    ap.add_argument("--sample-s", type=float, default=0.25)
    ap.add_argument("--quiet", action="store_true", help="summary lines only")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="swarm-trace.")
    try:
        data = os.path.join(work, "data")
        os.makedirs(data)
        path = os.path.join(data, "bench.bin")
        with open(path, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        torrent = os.path.join(work, "bench.torrent")
        subprocess.run([PY, LT_PEER, "create", "--content", path, "--out", torrent,
                        "--piece-size", str(256 * 1024)], check=True, stdout=subprocess.DEVNULL)
        summaries = []
        for rnd in range(1, args.rounds + 1):
            summaries.append(one_round(args, work, data, torrent, rnd))
        print(f"\n{args.leecher}: {args.size_mib} MiB from libtorrent, {os.cpu_count()} cores")
        print(f"{'round':>5} {'time s':>7} {'net MB/s':>9} {'write MB/s':>10} {'leech CPU s':>11}"
              f" {'seed CPU s':>10} {'max dirty MiB':>13} {'max wb MiB':>10}  leecher threads by name (CPU s)")
        for s in summaries:
            print(s)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def one_round(args, work, data, torrent, rnd):
    sport = free_port()
    seed_log = open(os.path.join(work, f"seed{rnd}.out"), "w")
    seeder = subprocess.Popen([PY, LT_PEER, "seed", "--fast", "--seed-mode", "--torrent", torrent,
                               "--dir", data, "--port", str(sport)], stdout=seed_log,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        with open(seed_log.name) as f:
            if '"complete": true' in f.read():
                break
        time.sleep(0.1)
    out = os.path.join(work, f"out{rnd}")
    os.makedirs(out)
    lport = free_port()
    if args.leecher == "swarm":
        cmd = [args.swarm, "download", torrent, "-o", out, "--peer", f"127.0.0.1:{sport}",
               "--listen", f"127.0.0.1:{lport}", "--json"]
    else:
        cmd = [args.rqbit, "--disable-dht", "--disable-upnp-port-forward", "--disable-lsd",
               "--listen-port", str(lport), "download", "-o", out, "--exit-on-finish",
               "--disable-http-api", "--initial-peers", f"127.0.0.1:{sport}", torrent]
    seed_cpu0 = proc_cpu(seeder.pid)
    vm0 = vmstat()
    t0 = time.time()
    leech = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    leech_cpu = 0.0
    last = (t0, loopback_rx(), 0, 0.0, seed_cpu0)
    max_dirty = max_wb = 0.0
    cpu_by_thread = {}
    while leech.poll() is None and time.time() - t0 < 600:
        time.sleep(args.sample_s)
        now = time.time()
        io = proc_io(leech.pid)
        cpu = proc_cpu(leech.pid)
        th = threads_cpu(leech.pid)
        if io is None or cpu is None:
            break
        for k, v in th.items():  # threads come and go: the most seen
            cpu_by_thread[k] = max(cpu_by_thread.get(k, 0.0), v)
        leech_cpu = cpu
        rx = loopback_rx()
        scpu = proc_cpu(seeder.pid) or last[4]
        mem = meminfo_mib({"Dirty", "Writeback"})
        max_dirty = max(max_dirty, mem["Dirty"])
        max_wb = max(max_wb, mem["Writeback"])
        dt = now - last[0]
        rows.append((now - t0, (rx - last[1]) / dt / 1e6, (io["wchar"] - last[2]) / dt / 1e6,
                     (cpu - last[3]) / dt * 100, (scpu - last[4]) / dt * 100, mem["Dirty"],
                     mem["Writeback"]))
        last = (now, rx, io["wchar"], cpu, scpu)
    leech.wait()
    secs = time.time() - t0
    vm1 = vmstat()
    reclaim = (f"direct scans {vm1['pgscan_direct'] - vm0['pgscan_direct']}, kswapd scans "
               f"{vm1['pgscan_kswapd'] - vm0['pgscan_kswapd']}, compaction stalls "
               f"{vm1['compact_stall'] - vm0['compact_stall']}, allocation stalls "
               f"{vm1['allocstall_movable'] + vm1['allocstall_normal'] - vm0['allocstall_movable'] - vm0['allocstall_normal']}")
    seed_cpu = proc_cpu(seeder.pid) - seed_cpu0
    seeder.send_signal(signal.SIGTERM)
    try:
        seeder.wait(10)
    except subprocess.TimeoutExpired:
        seeder.kill()
    same = subprocess.run(["cmp", "-s", os.path.join(data, "bench.bin"),
                           os.path.join(out, "bench.bin")]).returncode == 0
    shutil.rmtree(out, ignore_errors=True)
    if not args.quiet:
        print(f"\nround {rnd}: {secs:.2f} s{'' if same else ' (WRONG BYTES)'}; {reclaim}")
        print(f"{'t s':>6} {'net MB/s':>9} {'write MB/s':>10} {'leech CPU%':>10} {'seed CPU%':>9}"
              f" {'dirty MiB':>9} {'wb MiB':>7}")
        for r in rows:
            print(f"{r[0]:6.2f} {r[1]:9.0f} {r[2]:10.0f} {r[3]:10.0f} {r[4]:9.0f} {r[5]:9.0f} {r[6]:7.0f}")
    mb = args.size_mib * 1.048576
    threads = ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu_by_thread.items(), key=lambda x: -x[1]))
    return (f"{rnd:>5} {secs:7.2f} {mb / secs:9.0f} {mb / secs:10.0f} {leech_cpu:11.2f}"
            f" {seed_cpu:10.2f} {max_dirty:13.0f} {max_wb:10.0f}  {threads}"
            f"{'' if same else ' WRONG BYTES'}; {reclaim}")


if __name__ == "__main__":
    sys.exit(main())
