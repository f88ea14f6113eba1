#!/usr/bin/python3
"""libtorrent's view of a .torrent, for swarm's interop tests.

Run with Debian's /usr/bin/python3 (the one with python3-libtorrent).

  lt_torrent.py info FILE.torrent
      Prints one JSON object: what libtorrent reads in the torrent, with the
      keys of `swarm info --json` (name, info_hash, total_size, piece_length,
      num_pieces, private, files [{path, length}], trackers [[...]]).
      A file's path is where it lands under the download folder, "/"-joined
      (the name first for a multi-file torrent).

  lt_torrent.py check FILE.torrent DATA_DIR [--timeout SECONDS]
      Adds the torrent with save_path=DATA_DIR (the folder holding the content,
      not the content itself), lets libtorrent check the data and waits until
      it is seeding or the time runs out. Prints one JSON object: info_hash,
      state, progress, pieces_have, num_pieces, error. Exit 0 if libtorrent
      ended up seeding with progress 1.0, else 1.

  lt_torrent.py create CONTENT OUT --piece-size N [--tracker URL]...
      A v1-only torrent (libtorrent 2.0 makes hybrid v1+v2 by default) without
      pad files. Prints `info` of the result.
"""

import argparse
import json
import os
import sys
import time

import libtorrent as lt


def info_json(ti):
    fs = ti.files()
    files = [
        {"path": fs.file_path(i).replace(os.sep, "/"), "length": fs.file_size(i)}
        for i in range(fs.num_files())
        # pad files (BEP 47) are not content; none are made here, but skip them
        # so a hybrid torrent would still compare.
        if not (fs.file_flags(i) & lt.file_storage.flag_pad_file)
    ]
    tiers = {}
    for t in ti.trackers():
        tiers.setdefault(t.tier, []).append(t.url)
    return {
        "name": ti.name(),
        "info_hash": str(ti.info_hashes().v1),
        "total_size": ti.total_size(),
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "private": ti.priv(),
        "files": files,
        # libtorrent shuffles the URLs inside each tier when it loads a
        # torrent (BEP 12 says to), so their order there means nothing:
        # sorted, for a stable comparison.
        "trackers": [sorted(tiers[k]) for k in sorted(tiers)],
        "comment": ti.comment(),
        "creator": ti.creator(),
    }


def emit(obj):
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def cmd_info(args):
    emit(info_json(lt.torrent_info(args.torrent)))
    return 0


def cmd_create(args):
    fs = lt.file_storage()
    lt.add_files(fs, args.content)
    t = lt.create_torrent(fs, args.piece_size, flags=lt.create_torrent.v1_only)
    for tier, url in enumerate(args.tracker):
        t.add_tracker(url, tier)
    t.set_creator("libtorrent " + lt.__version__)
    lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(args.content)))
    with open(args.out, "wb") as f:
        f.write(lt.bencode(t.generate()))
    emit(info_json(lt.torrent_info(args.out)))
    return 0


def cmd_check(args):
    ti = lt.torrent_info(args.torrent)
    ses = lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "alert_mask": lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification,
        }
    )
    p = lt.add_torrent_params()
    p.ti = ti
    p.save_path = args.dir
    h = ses.add_torrent(p)
    # Wait for libtorrent to say the check of the data on disk is over; its
    # status then says how much of the torrent it found.
    deadline = time.monotonic() + args.timeout
    checked = False
    while not checked and time.monotonic() < deadline:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            if isinstance(a, (lt.torrent_checked_alert, lt.torrent_error_alert, lt.file_error_alert)):
                checked = True
    st = h.status()
    if checked and st.state != lt.torrent_status.seeding and st.errc.value() == 0:
        # Give the state machine a moment to move from checking to seeding.
        end = min(deadline, time.monotonic() + 2.0)
        while time.monotonic() < end and h.status().state != lt.torrent_status.seeding:
            time.sleep(0.05)
        st = h.status()
    ok = (
        checked
        and st.state == lt.torrent_status.seeding
        and st.num_pieces == ti.num_pieces()
        and st.progress >= 1.0
        and st.errc.value() == 0
    )
    emit(
        {
            "info_hash": str(ti.info_hashes().v1),
            "checked": checked,
            "state": str(st.state),
            "progress": st.progress,
            "pieces_have": st.num_pieces,
            "num_pieces": ti.num_pieces(),
            "error": st.errc.message() if st.errc.value() != 0 else None,
        }
    )
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("info")
    i.add_argument("torrent")
    c = sub.add_parser("check")
    c.add_argument("torrent")
    c.add_argument("dir")
    c.add_argument("--timeout", type=float, default=60.0)
    m = sub.add_parser("create")
    m.add_argument("content")
    m.add_argument("out")
    m.add_argument("--piece-size", type=int, required=True)
    m.add_argument("--tracker", action="append", default=[])
    args = ap.parse_args()
    return {"info": cmd_info, "check": cmd_check, "create": cmd_create}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
