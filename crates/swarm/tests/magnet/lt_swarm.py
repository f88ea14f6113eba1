#!/usr/bin/python3
"""libtorrent peers for swarm's trackerless, magnet and PEX tests (loopback).

Run with Debian's interpreter (/usr/bin/python3). One process, several
sessions, each on a loopback address (IP:PORT, or a PORT on 127.0.0.1)
with TCP only (uTP crawls on loopback):

  --helper ADDR        a DHT-only session (repeatable): the DHT the others use
  --seed ADDR          a session that seeds every --torrent (repeatable)
                       from --dir (repeatable)
  --magnet-leech ADDR  a session that downloads --magnet into --out
  --leech ADDR         a session that downloads every --torrent into --out
                       (repeatable; each its own folder under --out) at
                       --leech-rate bytes/s, so it stays a leecher a while
  --quiet-leech ADDR   the same, with peer exchange off (it neither tells
                       nor learns addresses: it can only be found by those
                       that know it)
  --dht                seeders and the magnet leech run the DHT too; every
                       session is told of every other one's DHT node
  --peer HOST:PORT     seeders and leeches dial it (every 2 s)
  --connect-seeds      the seeders dial each other (every 2 s)
  --seeds-dial-leeches the seeders dial the leeches (every 2 s)

Settings for a DHT on loopback are DESIGN.md's (and dht_block_ratelimit
raised: every node is 127.0.0.1). Prints one JSON line when ready
({"ready": true}) and then a status line a second:
{"t", "seeds": [{"port", "peers", "state"}], "leech": {"progress", "complete",
"peers", "has_metadata"}, "leeches": [{"addr", "peers": [{"addr", "pex"}]}]}
("pex": libtorrent learnt that peer by peer exchange). Every session's
outgoing connections leave from its own IP (outgoing_interfaces), so its
address as others see it is where it listens. Runs until killed (or
--timeout seconds).
"""

import argparse
import json
import os
import sys
import time

import libtorrent as lt


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def parse_peer(s):
    host, _, port = s.rpartition(":")
    return (host.strip("[]"), int(port))


def parse_addr(s):
    """IP:PORT, or a PORT on 127.0.0.1."""
    if ":" not in s:
        return ("127.0.0.1", int(s))
    return parse_peer(s)


def session(addr, dht):
    return lt.session({
        "listen_interfaces": "%s:%d" % addr,
        "outgoing_interfaces": addr[0],
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "enable_dht": dht,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "dht_block_ratelimit": 100000,
        "unchoke_slots_limit": -1,
        "min_reconnect_time": 1,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification,
    })


def add(ses, atp):
    flags = atp.flags
    flags &= ~lt.torrent_flags.auto_managed
    flags &= ~lt.torrent_flags.paused
    atp.flags = flags
    return ses.add_torrent(atp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--helper", type=parse_addr, action="append", default=[])
    ap.add_argument("--seed", type=parse_addr, action="append", default=[])
    ap.add_argument("--magnet-leech", type=parse_addr)
    ap.add_argument("--leech", type=parse_addr, action="append", default=[])
    ap.add_argument("--quiet-leech", type=parse_addr, action="append", default=[])
    ap.add_argument("--leech-rate", type=int, default=50000)
    ap.add_argument("--seeds-dial-leeches", action="store_true")
    ap.add_argument("--torrent", action="append", default=[])
    ap.add_argument("--dir")
    ap.add_argument("--magnet")
    ap.add_argument("--out")
    ap.add_argument("--dht", action="store_true")
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--connect-seeds", action="store_true")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    helpers = [(p, session(p, True)) for p in args.helper]
    seeds = [(p, session(p, args.dht)) for p in args.seed]
    leech = (args.magnet_leech, session(args.magnet_leech, args.dht)) if args.magnet_leech else None
    leeches = [(p, session(p, args.dht), False) for p in args.leech]
    leeches += [(p, session(p, args.dht), True) for p in args.quiet_leech]
    everyone = helpers + seeds + ([leech] if leech else []) + [(p, s) for p, s, _ in leeches]
    time.sleep(0.3)
    if args.dht:
        for p, s in everyone:
            for q, _ in everyone:
                if q != p:
                    s.add_dht_node(q)
    seed_handles = []
    for p, s in seeds:
        for t in args.torrent:
            atp = lt.add_torrent_params()
            atp.ti = lt.torrent_info(t)
            atp.save_path = os.path.abspath(args.dir)
            seed_handles.append((p, add(s, atp)))
    leech_handles = []
    for p, s, quiet in leeches:
        for t in args.torrent:
            atp = lt.add_torrent_params()
            atp.ti = lt.torrent_info(t)
            atp.save_path = os.path.join(os.path.abspath(args.out), "%s-%d" % p)
            if quiet:
                atp.flags |= lt.torrent_flags.disable_pex
            h = add(s, atp)
            h.set_download_limit(args.leech_rate)
            leech_handles.append((p, h))
    leech_handle = None
    if leech:
        atp = lt.parse_magnet_uri(args.magnet)
        atp.save_path = os.path.abspath(args.out)
        leech_handle = add(leech[1], atp)
    peers = [parse_peer(p) for p in args.peer]
    emit({"ready": True})
    start = time.monotonic()
    last_dial = -10.0
    last_emit = -10.0
    while time.monotonic() - start < args.timeout:
        now = time.monotonic()
        for _, s in everyone:
            for a in s.pop_alerts():
                if a.category() & lt.alert.category_t.error_notification:
                    emit({"alert": a.what(), "message": a.message()})
        if now - last_dial >= 2.0:
            last_dial = now
            for p, h in seed_handles:
                for q in peers:
                    h.connect_peer(q)
                if args.connect_seeds:
                    for q, _ in seeds:
                        if q != p:
                            h.connect_peer(q)
                if args.seeds_dial_leeches:
                    for q, _ in leech_handles:
                        h.connect_peer(q)
                if args.dht:
                    h.force_dht_announce()
            for p, h in leech_handles:
                for q in peers:
                    h.connect_peer(q)
            if leech_handle is not None and not leech_handle.status().is_seeding:
                for q in peers:
                    leech_handle.connect_peer(q)
        if now - last_emit >= 1.0:
            last_emit = now
            out = {"t": round(now - start, 1), "seeds": []}
            for p, h in seed_handles:
                st = h.status()
                out["seeds"].append({"port": p[1], "peers": st.num_peers,
                                     "state": str(st.state).split(".")[-1]})
            if leech_handle is not None:
                st = leech_handle.status()
                out["leech"] = {"progress": st.progress, "complete": st.is_seeding,
                                "peers": st.num_peers, "has_metadata": st.has_metadata}
            if leech_handles:
                out["leeches"] = []
                for p, h in leech_handles:
                    ps = [{"addr": "%s:%d" % i.ip, "pex": bool(i.source & lt.peer_info.pex)}
                          for i in h.get_peer_info()]
                    out["leeches"].append({"addr": "%s:%d" % p, "peers": ps})
            emit(out)
        time.sleep(0.1)


main()
