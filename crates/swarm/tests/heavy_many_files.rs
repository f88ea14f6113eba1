//! A torrent of 1,500 files, seeded and downloaded with `ulimit -n 256`:
//! storage opens files on demand through a bounded pool of handles, so the
//! number of files is not limited by the descriptors a process may hold
//! (before the pool, every file was held open: `Too many open files`).
//! Heavy (thousands of files, two processes): runs in the serial group.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use swarm_testkit::peers::{SwarmOpts, swarm_download, swarm_seed, wait_all_complete};
use swarm_testkit::proc::{free_addr, free_port};
use swarm_testkit::torrent::TorrentFile;
use swarm_testkit::{TestDir, data};

const FILES: usize = 1500;
const FD_LIMIT: u32 = 256;

/// A wrapper that runs swarm under `ulimit -n FD_LIMIT` (exec keeps the pid,
/// so the test's process handle kills swarm itself).
fn limited_swarm(dir: &Path) -> PathBuf {
    let bin = swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"));
    let script = dir.join("swarm-ulimit.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nulimit -n {FD_LIMIT} || exit 99\nexec '{}' \"$@\"\n",
            bin.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn heavy_1500_files_seed_and_download_under_ulimit_256() {
    let t = TestDir::new("many-files");
    let names: Vec<(String, u64)> = (0..FILES)
        .map(|i| (format!("d{}/f{i:04}", i % 7), 1 + (i as u64 * 7919) % 3000))
        .collect();
    let files: Vec<(&str, u64)> = names.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let src = t.sub("src");
    let content = data::tree(&src, "many", &files, 11);
    let bin = swarm_testkit::peers::swarm_bin(env!("CARGO_BIN_EXE_swarm"));
    let torrent_path = t.path().join("many.torrent");
    let o = Command::new(&bin)
        .arg("create")
        .arg(&content)
        .arg("-o")
        .arg(&torrent_path)
        .args(["--piece-size", "16K"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let total: u64 = files.iter().map(|f| f.1).sum();
    let torrent = TorrentFile {
        path: torrent_path,
        info_hash_hex: String::new(),
        name: "many".into(),
        total_size: total,
        piece_size: 16 * 1024,
        num_pieces: total.div_ceil(16 * 1024) as u32,
        num_files: FILES as u32,
        info_hash_v2_hex: None,
        pad_files: 0,
    };

    let limited = limited_swarm(t.path());
    let logs = t.logs();
    let seed_port = free_port();
    let mut seeder = swarm_seed(
        &limited,
        &logs,
        "seed",
        &torrent,
        &src,
        seed_port,
        &SwarmOpts::default(),
    );
    let out = t.sub("out");
    let mut leecher = swarm_download(
        &limited,
        &logs,
        "leech",
        &torrent,
        &out,
        free_addr(),
        &SwarmOpts {
            peers: vec![seeder.listen],
            ..SwarmOpts::default()
        },
    );
    wait_all_complete(&mut [&mut leecher], Duration::from_secs(120));
    assert!(seeder.check_alive().is_ok(), "{}", seeder.proc.log_tail());
    data::assert_same_tree(&content, &out.join("many"));
    // The limit was in force: the wrapper refuses to run otherwise, and the
    // seeder, which checks every file, did not run out of descriptors.
    let pid = seeder.proc.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(line.contains(&format!(" {FD_LIMIT} ")), "{line}");
    seeder.proc.kill();
}
