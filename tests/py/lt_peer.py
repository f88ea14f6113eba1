#!/usr/bin/python3
"""A libtorrent peer for swarm's interop tests and benchmark.

Run it with Debian's interpreter (/usr/bin/python3): python3-libtorrent imports
only there. Subcommands:

  create --content PATH --out FILE.torrent --piece-size BYTES [--tracker URL]... [--hybrid]
      Make a v1-only torrent (Transmission 3.00 cannot read v1+v2 hybrids) without
      pad files; with --hybrid, what libtorrent's default create_torrent makes
      (v1+v2 hybrid, BEP 47 pad files). Prints one JSON line: {"info_hash": HEX
      (v1), "info_hash_v2": HEX or null, "pad_files": N, "name": NAME, ...}.

  seed  --torrent T --dir DIR --port P [--peer HOST:PORT]... [--seed-mode] [--fast]
  leech --torrent T --dir DIR --port P [--peer HOST:PORT]... [--exit-on-complete] [--fast]
      Run one session on 127.0.0.1:P (TCP only: uTP crawls on loopback) and print
      a JSON status line every --interval seconds and at every state change:
      {"state", "progress", "downloaded", "uploaded", "peers", "complete"}.
      `--peer` addresses are (re)dialled every 2 s until complete (they may not be
      listening yet). A seeder whose data fails its check exits with status 3.
      --aio-threads N sets libtorrent's disk I/O threads (default 10); a leech
      that is sent corrupt pieces needs 1 (see the option's help).

Environment: LT_PEER_DEBUG=1 writes every libtorrent alert (peer and torrent
logs included) and, with each status line, the download queue's block states
(0 none, 1 requested, 2 writing, 3 finished) to stderr.
"""

import argparse
import json
import os
import sys
import time

import libtorrent as lt

DEBUG = bool(os.environ.get("LT_PEER_DEBUG"))


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def cmd_create(args):
    content = os.path.abspath(args.content)
    fs = lt.file_storage()
    lt.add_files(fs, content)
    if fs.num_files() == 0:
        sys.exit("no files under " + content)
    if args.hybrid:
        t = lt.create_torrent(fs, args.piece_size)
    else:
        t = lt.create_torrent(fs, args.piece_size, flags=lt.create_torrent.v1_only)
    for tier, url in enumerate(args.tracker):
        t.add_tracker(url, tier)
    t.set_creator("swarm interop tests (libtorrent %s)" % lt.__version__)
    lt.set_piece_hashes(t, os.path.dirname(content))
    entry = t.generate()
    data = lt.bencode(entry)
    with open(args.out, "wb") as f:
        f.write(data)
    info = lt.torrent_info(data)
    files = info.files()
    pads = [files.file_path(i) for i in range(files.num_files()) if files.file_flags(i) & 1]
    if pads and not args.hybrid:
        sys.exit("unexpected pad files: %r" % pads)
    hashes = info.info_hashes()
    emit(
        {
            "info_hash": str(hashes.v1),
            "info_hash_v2": str(hashes.v2) if hashes.has_v2() else None,
            "pad_files": len(pads),
            "name": info.name(),
            "total_size": info.total_size(),
            "piece_size": info.piece_length(),
            "num_pieces": info.num_pieces(),
            "num_files": files.num_files(),
        }
    )


def parse_peer(s):
    host, _, port = s.rpartition(":")
    return (host.strip("[]"), int(port))


def make_session(ip, port, fast, aio_threads):
    settings = {
        "listen_interfaces": "%s:%d" % (ip or "127.0.0.1", port),
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification,
        # Loopback tests have few peers: do not let a choker round delay them.
        "unchoke_slots_limit": -1,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "min_reconnect_time": 1,
    }
    if ip:
        # Dial from the IP it listens on (a peer of its own on loopback).
        settings["outgoing_interfaces"] = ip
    if fast:
        perf = lt.high_performance_seed()
        perf.update(settings)
        settings = perf
    if aio_threads:
        settings["aio_threads"] = aio_threads
    if DEBUG:
        settings["alert_mask"] = lt.alert.category_t.all_categories
        settings["alert_queue_size"] = 1000000
    return lt.session(settings)


def cmd_run(args, seeding):
    ses = make_session(args.ip, args.port, args.fast, args.aio_threads)
    info = lt.torrent_info(args.torrent)
    atp = lt.add_torrent_params()
    atp.ti = info
    atp.save_path = os.path.abspath(args.dir)
    flags = atp.flags
    flags &= ~lt.torrent_flags.auto_managed
    flags &= ~lt.torrent_flags.paused
    if seeding and args.seed_mode:
        flags |= lt.torrent_flags.seed_mode
    atp.flags = flags
    if args.upload_limit > 0:
        # The torrent's own limit: the session's exempts loopback peers
        # (libtorrent's local peer class).
        atp.upload_limit = args.upload_limit
    h = ses.add_torrent(atp)
    peers = [parse_peer(p) for p in args.peer]
    start = time.monotonic()
    last_emit = 0.0
    last_dial = -10.0
    last_state = None
    completed_at = None
    while True:
        now = time.monotonic()
        for a in ses.pop_alerts():
            cat = a.category()
            if cat & lt.alert.category_t.error_notification:
                emit({"alert": a.what(), "message": a.message()})
            elif DEBUG:
                sys.stderr.write("%.3f %s: %s\n" % (now - start, a.what(), a.message()))
        st = h.status()
        state = str(st.state).split(".")[-1]
        complete = st.is_seeding
        if peers and not complete and now - last_dial >= 2.0:
            for p in peers:
                h.connect_peer(p)
            last_dial = now
        if seeding and peers and now - last_dial >= 2.0:
            # A seeder keeps dialling leechers that only accept incoming peers
            # (Transmission ignores 127.x addresses from trackers).
            for p in peers:
                h.connect_peer(p)
            last_dial = now
        if complete and completed_at is None:
            completed_at = now
        changed = state != last_state
        if changed or now - last_emit >= args.interval:
            if DEBUG:
                queue = [(d["piece_index"], [b["state"] for b in d["blocks"]]) for d in h.get_download_queue()]
                sys.stderr.write("%.3f download queue %r\n" % (now - start, queue))
            emit(
                {
                    "t": round(now - start, 3),
                    "state": state,
                    "progress": st.progress,
                    "downloaded": st.total_wanted_done,
                    "payload_download": st.total_payload_download,
                    "uploaded": st.total_payload_upload,
                    "peers": st.num_peers,
                    "complete": complete,
                }
            )
            last_emit = now
            last_state = state
        if seeding and not complete and state == "downloading" and not args.seed_mode:
            # The check finished and found pieces missing: a seeder without its data.
            emit({"error": "seed data failed its check", "progress": st.progress})
            sys.exit(3)
        if not seeding and complete and args.exit_on_complete:
            emit({"done": True, "seconds": round(completed_at - start, 3)})
            return
        if args.exit_after and now - start > args.exit_after:
            return
        time.sleep(0.05 if args.fast else 0.1)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--content", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--piece-size", type=int, required=True)
    c.add_argument("--tracker", action="append", default=[])
    c.add_argument("--hybrid", action="store_true", help="libtorrent's defaults: v1+v2, pad files")
    for name in ("seed", "leech"):
        r = sub.add_parser(name)
        r.add_argument("--torrent", required=True)
        r.add_argument("--dir", required=True)
        r.add_argument("--port", type=int, required=True)
        r.add_argument("--ip", default=None, help="listen on and dial from this IP (default: listen on 127.0.0.1)")
        r.add_argument("--peer", action="append", default=[])
        r.add_argument("--interval", type=float, default=1.0)
        r.add_argument("--fast", action="store_true", help="high_performance_seed settings")
        r.add_argument("--exit-after", type=float, default=0.0)
        r.add_argument("--upload-limit", type=int, default=0, help="bytes/s up (0: none)")
        r.add_argument(
            "--aio-threads",
            type=int,
            default=0,
            help="disk I/O threads (0: libtorrent's 10). 1 for a leech sent corrupt pieces: with "
            "several, libtorrent 2.0.8 can hash a piece before its last block's write completes, "
            "and when the piece fails, that write's completion can reach the network thread after "
            "the piece was reset, marking the stale corrupt block finished again; a one-block "
            "piece then never completes (no hash check is started again, nothing is left to request)",
        )
        if name == "seed":
            r.add_argument("--seed-mode", action="store_true", help="skip the initial check")
        else:
            r.add_argument("--exit-on-complete", action="store_true")
    args = p.parse_args()
    if args.cmd == "create":
        cmd_create(args)
    else:
        cmd_run(args, args.cmd == "seed")


if __name__ == "__main__":
    main()
