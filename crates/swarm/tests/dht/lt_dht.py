"""libtorrent DHT sessions on loopback, driven by JSON lines on stdin.

Usage: lt_dht.py PORT1 PORT2 ... -- BOOTSTRAP_PORT ...
Starts one libtorrent session per PORT (DHT only, loopback settings from
DESIGN.md), each told of every other session and of the BOOTSTRAP_PORTs.
Prints {"ready": [ports]} and then answers one JSON line per command:
  {"op": "put_imm", "s": 0, "value": "text"}          -> {"target": hex, "ok": n}
  {"op": "get_imm", "s": 1, "target": hex}            -> {"value": text or null}
  {"op": "put_mut", "s": 0, "seed": hex, "pub": hex, "salt": s, "value": v} -> {"ok": n}
  {"op": "get_mut", "s": 1, "pub": hex, "salt": s}    -> {"value": text or null, "seq": n}
  {"op": "announce", "s": 2, "ih": hex, "dir": d}     -> {"done": true} (at once)
  {"op": "get_peers", "s": 1, "ih": hex}              -> {"peers": ["ip:port", ...]}
  {"op": "nodes"}                                     -> {"nodes": [n per session]}
Every wait is bounded (TIMEOUT seconds).
"""
import hashlib
import json
import sys
import time

import libtorrent as lt

TIMEOUT = 30.0

args = sys.argv[1:]
sep = args.index("--")
ports = [int(p) for p in args[:sep]]
boot = [int(p) for p in args[sep + 1:]]

sessions = []
for port in ports:
    s = lt.session({
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_dht": True,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "allow_multiple_connections_per_ip": True,
        # Every node here is 127.0.0.1: libtorrent's per-IP block (5
        # queries/s by default) would shut out the others.
        "dht_block_ratelimit": 100000,
        "alert_mask": lt.alert.category_t.all_categories,
    })
    sessions.append(s)

time.sleep(0.5)
for i, s in enumerate(sessions):
    for j, port in enumerate(ports):
        if i != j:
            s.add_dht_node(("127.0.0.1", port))
    for port in boot:
        s.add_dht_node(("127.0.0.1", port))


def wait_alert(s, pred):
    end = time.time() + TIMEOUT
    while time.time() < end:
        s.wait_for_alert(200)
        for a in s.pop_alerts():
            r = pred(a)
            if r is not None:
                return r
    return None


def text(e):
    if isinstance(e, dict) and "value" in e:
        e = e["value"]
    if isinstance(e, bytes):
        return e.decode("utf-8", "replace")
    return e if isinstance(e, str) else json.dumps(str(e))


def secret_from_seed(seed):
    # libtorrent's ed25519 secret key: SHA-512 of the seed, clamped (ref10).
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 63
    h[31] |= 64
    return bytes(h)


def nodes_of(s):
    s.post_dht_stats()
    r = wait_alert(s, lambda a: a if isinstance(a, lt.dht_stats_alert) else None)
    if r is None:
        return -1
    return sum(b["num_nodes"] for b in r.routing_table)


print(json.dumps({"ready": ports}), flush=True)
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    cmd = json.loads(line)
    op = cmd["op"]
    out = {}
    if op == "nodes":
        out = {"nodes": [nodes_of(s) for s in sessions]}
    else:
        s = sessions[cmd["s"]]
        if op == "put_imm":
            target = s.dht_put_immutable_item(cmd["value"].encode())
            n = wait_alert(s, lambda a: a.num_success if isinstance(a, lt.dht_put_alert) else None)
            out = {"target": str(target), "ok": n}
        elif op == "get_imm":
            s.dht_get_immutable_item(lt.sha1_hash(bytes.fromhex(cmd["target"])))
            v = wait_alert(s, lambda a: [a.item] if isinstance(a, lt.dht_immutable_item_alert) else None)
            out = {"value": None if v is None or v[0] is None else text(v[0])}
        elif op == "put_mut":
            seed = bytes.fromhex(cmd["seed"])
            s.dht_put_mutable_item(secret_from_seed(seed), bytes.fromhex(cmd["pub"]),
                                   cmd["value"].encode(), cmd["salt"].encode())
            n = wait_alert(s, lambda a: a.num_success if isinstance(a, lt.dht_put_alert) else None)
            out = {"ok": n}
        elif op == "get_mut":
            s.dht_get_mutable_item(bytes.fromhex(cmd["pub"]), cmd["salt"].encode())
            # The last alert is the authoritative one (all nodes asked).
            got = {"value": None, "seq": None}

            def pred(a):
                if isinstance(a, lt.dht_mutable_item_alert):
                    got["value"] = text(a.item)
                    got["seq"] = a.seq
                    if a.authoritative:
                        return True
                return None
            wait_alert(s, pred)
            out = got
        elif op == "announce":
            # The Python bindings do not expose dht_announce's flags: add the
            # torrent by magnet instead, which libtorrent announces to the
            # DHT with its listen port. No alert marks the end: the caller polls.
            p = lt.parse_magnet_uri("magnet:?xt=urn:btih:" + cmd["ih"])
            p.save_path = cmd["dir"]
            s.add_torrent(p)
            out = {"done": True}
        elif op == "get_peers":
            s.dht_get_peers(lt.sha1_hash(bytes.fromhex(cmd["ih"])))
            peers = wait_alert(s, lambda a: [str(p[0]) + ":" + str(p[1]) for p in a.peers()]
                               if isinstance(a, lt.dht_get_peers_reply_alert) else None)
            out = {"peers": peers or []}
    print(json.dumps(out), flush=True)
