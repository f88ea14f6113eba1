#!/usr/bin/python3
"""Fills a UDP tracker (BEP 15) with PEERS distinct peers, for its memory.

    bench/tracker_fill.py --port 6969 --peers 1000000 --torrents 100000

Each peer is a distinct (source IP, port, peer id): the announces come from
--ips source addresses 127.0.1.1, 127.0.1.2, ... (a tracker keys peers by
address and port, or by peer id: both are unique), spread round robin over
--torrents info-hashes, 75% seeders, `event=started`, `numwant=0` (replies
stay small). Sends in windows of --window datagrams and reads the replies
before the next window, so the tracker's socket buffer never drops a burst.
Prints one JSON line: peers sent, announce replies, errors, seconds.
Loopback only; every loop is bounded by --peers and a timeout per window.
"""

import argparse
import hashlib
import json
import socket
import struct
import sys
import time

PROTOCOL_ID = 0x41727101980
CONNECT, ANNOUNCE, ERROR = 0, 1, 3


def info_hash(i):
    return hashlib.sha1(b"swarm-bench-torrent-%d" % i).digest()


def connect(sock, addr):
    for _ in range(10):
        tid = int(time.time() * 1e6) & 0xFFFFFFFF
        sock.sendto(struct.pack(">QII", PROTOCOL_ID, CONNECT, tid), addr)
        sock.settimeout(1.0)
        try:
            while True:
                data, _ = sock.recvfrom(2048)
                if len(data) >= 16:
                    action, rtid, cid = struct.unpack(">IIQ", data[:16])
                    if action == CONNECT and rtid == tid:
                        return cid
        except socket.timeout:
            continue
    sys.exit("tracker_fill: no connect reply from %s:%d" % addr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--peers", type=int, default=1_000_000)
    ap.add_argument("--torrents", type=int, default=100_000)
    ap.add_argument("--ips", type=int, default=20)
    ap.add_argument("--window", type=int, default=2000)
    args = ap.parse_args()
    addr = (args.host, args.port)
    per_ip = -(-args.peers // args.ips)
    if per_ip > 64000:
        sys.exit("tracker_fill: more than 64,000 ports per source IP: raise --ips")
    hashes = [info_hash(i) for i in range(args.torrents)]
    sent = replies = errors = 0
    t0 = time.time()
    for ip_index in range(args.ips):
        src = "127.0.1.%d" % (ip_index + 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind((src, 0))
        cid = connect(sock, addr)
        cid_at = time.time()
        n_here = min(per_ip, args.peers - sent)
        port = 1
        while n_here > 0:
            if time.time() - cid_at > 50:  # connection ids live ~2 minutes
                cid = connect(sock, addr)
                cid_at = time.time()
            batch = min(args.window, n_here)
            for _ in range(batch):
                n = sent
                peer_id = b"-FL0001-" + struct.pack(">IQ", ip_index, n)
                left = 0 if n % 4 else 1000
                pkt = struct.pack(
                    ">QII20s20sQQQIIIiH",
                    cid, ANNOUNCE, n & 0xFFFFFFFF, hashes[n % args.torrents], peer_id,
                    0, left, 0, 2, 0, n & 0xFFFFFFFF, 0, port,
                )
                sock.sendto(pkt, addr)
                sent += 1
                port += 1
            n_here -= batch
            # Read this window's replies (bounded by a timeout).
            got = 0
            sock.settimeout(2.0)
            try:
                while got < batch:
                    data, _ = sock.recvfrom(2048)
                    action = struct.unpack(">I", data[:4])[0]
                    got += 1
                    if action == ANNOUNCE:
                        replies += 1
                    elif action == ERROR:
                        errors += 1
            except socket.timeout:
                pass
        sock.close()
    print(json.dumps({"sent": sent, "replies": replies, "errors": errors,
                      "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
