//! Test content: deterministic pseudo-random bytes, single files and trees of
//! odd sizes, and the byte comparison of a download with its original.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Deterministic pseudo-random bytes (splitmix64): the same `(seed, len)` always
/// gives the same bytes, and different seeds give unrelated bytes, so a block
/// served from the wrong offset or the wrong file fails the comparison.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut state = seed ^ 0x5157_4152_4d5f_5445; // "SWARM_TE"
    while out.len() < len {
        out.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The next number of the splitmix64 sequence at `state` (advanced): the
/// reproducible generator behind test data and a test's seeded choices.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes `len` pseudo-random bytes to `path` in 1 MiB chunks (the benchmark
/// writes 1 GiB files: do not hold them in memory). Creates parent dirs.
pub fn write_file(path: &Path, seed: u64, len: u64) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent dirs");
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create data file"));
    const CHUNK: u64 = 1 << 20;
    let mut written = 0u64;
    let mut chunk_seed = seed;
    while written < len {
        let n = CHUNK.min(len - written);
        f.write_all(&pseudo_random_bytes(chunk_seed, n as usize))
            .expect("write data");
        written += n;
        chunk_seed = chunk_seed.wrapping_add(1);
    }
    f.flush().expect("flush data");
}

/// A single-file torrent's content: `dir/name` of `len` bytes. Returns its path.
pub fn single_file(dir: &Path, name: &str, len: u64, seed: u64) -> PathBuf {
    let path = dir.join(name);
    write_file(&path, seed, len);
    path
}

/// A multi-file torrent's content: `dir/name/` holding `files` (relative path,
/// length). Each file gets its own seed. Returns the root `dir/name`.
pub fn tree(dir: &Path, name: &str, files: &[(&str, u64)], seed: u64) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).expect("create tree root");
    for (i, (rel, len)) in files.iter().enumerate() {
        write_file(
            &root.join(rel),
            seed.wrapping_mul(1000).wrapping_add(i as u64),
            *len,
        );
    }
    root
}

/// A tree with odd sizes that crosses piece boundaries in every way at 16 KiB
/// and 256 KiB pieces: tiny files inside one piece, a file ending one byte
/// before a boundary, nested directories. About 2.3 MiB. No empty file
/// (Transmission 3.00 does not create empty files).
pub const ODD_TREE: &[(&str, u64)] = &[
    ("a/first.bin", 300_001),
    ("a/one-byte", 1),
    ("a/b/deep.bin", 16_383),
    ("middle.dat", 1_048_577),
    ("c/d/e/nested.bin", 262_143),
    ("c/three.bin", 3),
    ("z-last.bin", 700_777),
];

/// A larger tree for 4 MiB pieces: files span several pieces and pieces span
/// several files. About 9.6 MiB.
pub const BIG_PIECE_TREE: &[(&str, u64)] = &[
    ("part1.bin", 3_000_017),
    ("sub/part2.bin", 4_194_305),
    ("sub/small.txt", 777),
    ("part3.bin", 2_500_001),
];

/// The relative paths and sizes of every regular file under `root` (a file or
/// a directory), sorted.
pub fn list_files(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    if root.is_file() {
        let len = std::fs::metadata(root).map(|m| m.len()).unwrap_or(0);
        out.push((PathBuf::new(), len));
        return out;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path.strip_prefix(root).expect("under root").to_path_buf();
                out.push((rel, meta.len()));
            }
        }
    }
    out.sort();
    out
}

/// Compares every file of `expected` (a file or a tree) with the file at the
/// same relative path under `actual`, byte for byte. Extra files in `actual`
/// are an error too (a client that wrote a stray `.part` file did not finish).
pub fn compare_tree(expected: &Path, actual: &Path) -> Result<(), String> {
    let want = list_files(expected);
    if want.is_empty() {
        return Err(format!("nothing to compare under {}", expected.display()));
    }
    for (rel, len) in &want {
        let (e, a) = if rel.as_os_str().is_empty() {
            (expected.to_path_buf(), actual.to_path_buf())
        } else {
            (expected.join(rel), actual.join(rel))
        };
        let got_len = std::fs::metadata(&a)
            .map_err(|err| format!("{}: {err}", a.display()))?
            .len();
        if got_len != *len {
            return Err(format!("{}: {got_len} bytes, expected {len}", a.display()));
        }
        if !same_bytes(&e, &a)? {
            return Err(format!(
                "{}: content differs from {}",
                a.display(),
                e.display()
            ));
        }
    }
    if actual.is_dir() {
        let got = list_files(actual);
        let extra: Vec<_> = got
            .iter()
            .filter(|(rel, _)| !want.iter().any(|(w, _)| w == rel))
            .map(|(rel, _)| rel.display().to_string())
            .collect();
        if !extra.is_empty() {
            return Err(format!(
                "unexpected files under {}: {extra:?}",
                actual.display()
            ));
        }
    }
    Ok(())
}

/// Panics with a clear message unless [`compare_tree`] passes.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    if let Err(e) = compare_tree(expected, actual) {
        panic!("download differs from the original: {e}");
    }
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool, String> {
    use std::io::Read;
    let open = |p: &Path| std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| format!("{}: {e}", a.display()))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| format!("{}: {e}", b.display()))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }

    fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_deterministic_and_seed_dependent() {
        assert_eq!(pseudo_random_bytes(7, 1001), pseudo_random_bytes(7, 1001));
        assert_ne!(pseudo_random_bytes(7, 64), pseudo_random_bytes(8, 64));
        assert_eq!(
            pseudo_random_bytes(7, 13),
            pseudo_random_bytes(7, 1001)[..13]
        );
    }

    #[test]
    fn tree_compares_equal_to_a_copy_and_detects_a_flip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = tree(dir.path(), "a", ODD_TREE, 1);
        let b = tree(&dir.path().join("copy"), "a", ODD_TREE, 1);
        compare_tree(&a, &b).expect("identical trees");
        let victim = b.join("c/d/e/nested.bin");
        let mut bytes = std::fs::read(&victim).expect("read");
        bytes[262_142] ^= 1;
        std::fs::write(&victim, &bytes).expect("write");
        let err = compare_tree(&a, &b).expect_err("one bit flipped");
        assert!(err.contains("nested.bin"), "{err}");
    }

    #[test]
    fn compare_reports_missing_short_and_extra_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = single_file(dir.path(), "one.bin", 5000, 3);
        let missing = dir.path().join("nope.bin");
        assert!(compare_tree(&a, &missing).is_err());
        std::fs::write(&missing, b"short").expect("write");
        assert!(
            compare_tree(&a, &missing)
                .expect_err("short")
                .contains("5 bytes")
        );

        let t = tree(dir.path(), "t", &[("x", 10)], 4);
        let u = tree(&dir.path().join("u"), "t", &[("x", 10), ("y", 1)], 4);
        assert!(
            compare_tree(&t, &u)
                .expect_err("extra")
                .contains("unexpected")
        );
    }
}
