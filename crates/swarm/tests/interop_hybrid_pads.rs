//! Interop on what libtorrent makes by default: v1+v2 hybrid torrents with
//! BEP 47 pad files (`.pad/<size>`, several of one size). A folder of odd
//! sizes (1 byte, exactly one piece, one piece plus one byte, an empty file,
//! several MiB) with non-ASCII names, in 16 KiB and 4 MiB pieces:
//! - libtorrent seeds, swarm downloads: the tree is byte-identical and no
//!   `.pad` folder is written;
//! - swarm seeds the data libtorrent downloaded (libtorrent writes no pad
//!   files), and a second libtorrent downloads it from swarm, complete;
//! - `swarm info --json` gives libtorrent's v1 and v2 info-hashes.
//!
//! Needs /usr/bin/python3 with libtorrent: under CI=true a missing one fails
//! the test, otherwise it skips.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use swarm_testkit::peers::{
    self, lt_leech, lt_seed, require_swarm_subcommand, swarm_download, swarm_seed,
};
use swarm_testkit::{data, *};

const DEADLINE: Duration = Duration::from_secs(120);

fn swarm_bin() -> PathBuf {
    swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"))
}

/// The folder: odd sizes around `piece`, non-ASCII names, an empty file.
fn files(piece: u64) -> Vec<(String, u64)> {
    vec![
        ("un octet".into(), 1),
        ("exactement une pièce.bin".into(), piece),
        ("une pièce et un octet.bin".into(), piece + 1),
        ("vide".into(), 0),
        ("数据/ファイル.dat".into(), 5 * 1024 * 1024 + 3),
        ("Ünïcødé/ẞ.txt".into(), 777),
        ("z".into(), 2),
    ]
}

fn round_trip(piece: u32, label: &str) {
    if !(require_python_libtorrent() && require_swarm_subcommand(&swarm_bin(), "seed")) {
        return;
    }
    let t = TestDir::new(label);
    let src = t.sub("src");
    let owned = files(u64::from(piece));
    let list: Vec<(&str, u64)> = owned.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let content = data::tree(&src, "données", &list, 47);
    let torrent = make_hybrid_torrent(&content, &t.path().join("t.torrent"), piece);
    assert!(
        torrent.pad_files >= 2,
        "libtorrent padded the files: {torrent:?}"
    );

    // swarm info --json: libtorrent's v1 and v2 info-hashes, real files only.
    let o = Command::new(swarm_bin())
        .args(["info", "--json"])
        .arg(&torrent.path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["info_hash"], torrent.info_hash_hex.as_str());
    assert_eq!(
        v["info_hash_v2"],
        torrent.info_hash_v2_hex.as_deref().unwrap()
    );
    assert_eq!(v["version"], "hybrid");
    assert_eq!(v["files"].as_array().unwrap().len(), owned.len());
    assert_eq!(v["pad_files"]["count"], torrent.pad_files);
    let total_real: u64 = owned.iter().map(|f| f.1).sum();
    let pad_bytes = v["pad_files"]["bytes"].as_u64().unwrap();
    assert_eq!(total_real + pad_bytes, torrent.total_size);
    assert_eq!(v["total_size"], total_real, "the size a user gets");

    // libtorrent seeds; swarm and a libtorrent leecher download.
    let mut lt_seeder = lt_seed(&t.logs(), "lt-seed", &torrent, &src, free_addr(), &[]);
    assert!(
        proc::wait_listening(lt_seeder.listen, Duration::from_secs(20)),
        "libtorrent listens"
    );
    let swarm_out = t.sub("swarm-out");
    let mut swarm_leech = swarm_download(
        &swarm_bin(),
        &t.logs(),
        "swarm-leech",
        &torrent,
        &swarm_out,
        free_addr(),
        &SwarmOpts {
            peers: vec![lt_seeder.listen],
            ..SwarmOpts::default()
        },
    );
    let lt_out = t.sub("lt-out");
    let mut lt_a = lt_leech(
        &t.logs(),
        "lt-a",
        &torrent,
        &lt_out,
        free_addr(),
        &[lt_seeder.listen],
    );
    wait_all_complete(&mut [&mut swarm_leech, &mut lt_a], DEADLINE);
    peers::assert_alive(&mut lt_seeder);
    assert_same_tree(&content, &swarm_out.join("données"));
    assert!(
        !swarm_out.join("données/.pad").exists(),
        "no pad folder written"
    );
    lt_seeder.proc.kill();
    lt_a.proc.kill();
    assert!(
        !lt_out.join("données/.pad").exists(),
        "libtorrent writes no pads either"
    );

    // swarm seeds what libtorrent downloaded; another libtorrent fetches it.
    let mut swarm_seeder = swarm_seed(
        &swarm_bin(),
        &t.logs(),
        "swarm-seed",
        &torrent,
        &lt_out,
        free_addr(),
        &SwarmOpts::default(),
    );
    assert!(
        proc::wait_listening(swarm_seeder.listen, Duration::from_secs(30)),
        "swarm seeds:\n{}",
        swarm_seeder.proc.log_tail()
    );
    let lt_b_out = t.sub("lt-b-out");
    let mut lt_b = lt_leech(
        &t.logs(),
        "lt-b",
        &torrent,
        &lt_b_out,
        free_addr(),
        &[swarm_seeder.listen],
    );
    wait_all_complete(&mut [&mut lt_b], DEADLINE);
    peers::assert_alive(&mut swarm_seeder);
    for (name, len) in &owned {
        let got = std::fs::read(lt_b_out.join("données").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = std::fs::read(content.join(name)).unwrap();
        assert_eq!(got.len() as u64, *len, "{name}");
        assert!(got == want, "{name} differs");
    }
}

#[test]
fn hybrid_padded_16k_pieces_both_ways_with_libtorrent() {
    round_trip(PIECE_16_KIB, "hybrid-16k");
}

#[test]
fn hybrid_padded_4m_pieces_both_ways_with_libtorrent() {
    round_trip(PIECE_4_MIB, "hybrid-4m");
}
