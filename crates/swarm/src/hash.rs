//! Piece hashing for `swarm create`: the SHA-1 of every piece of the content
//! (BEP 3 `pieces`), computed on all cores.
//!
//! The content is the concatenation of its files in torrent order, so a piece
//! may span several files (and a file of zero bytes spans nothing). Each
//! worker thread takes the next piece index from a shared counter, reads that
//! piece with positional reads (`read_exact_at`, no shared file cursor) in
//! 64 KiB chunks into its own buffer and feeds each chunk to SHA-1 while it is
//! still in cache (a little faster here than one read per piece). Why this
//! shape:
//! - pieces are handed out in order, so the threads together read the content
//!   front to back, which suits the kernel's readahead and a cold disk;
//! - a worker does its own reading: handing a piece to another thread costs a
//!   cross-core wake-up (30-40 µs here) for ~130 µs of hashing;
//! - memory is bounded: one 64 KiB buffer per thread, 20 bytes per piece.
//!
//! SHA-1 comes from the RustCrypto `sha1` crate, which detects SHA-NI at run
//! time (~2 GB/s per core on this machine; see the ignored throughput test).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Context, Result, bail, ensure};
use sha1::{Digest, Sha1};

/// Bytes per read: small enough that the data is still in L1/L2 cache when
/// SHA-1 reads it right after the copy.
const READ_CHUNK: u64 = 64 * 1024;

/// One file of the content, in torrent order.
#[derive(Debug, Clone)]
pub struct ContentFile {
    /// Where to read it.
    pub path: PathBuf,
    /// Its length when the content was listed; a file that changed since then
    /// fails the hashing (the torrent would not match the data).
    pub length: u64,
}

/// What [`hash_pieces`] needs besides the files.
#[derive(Debug, Clone, Copy)]
pub struct HashConfig {
    /// Bytes per piece (the last piece may be shorter).
    pub piece_length: u64,
    /// Worker threads (at least 1).
    pub threads: usize,
}

/// The SHA-1 of each piece of `files` concatenated, in piece order.
///
/// `progress` is called after each piece with its length in bytes, from the
/// worker threads.
pub fn hash_pieces(
    files: &[ContentFile],
    config: HashConfig,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<[u8; 20]>> {
    assert!(config.piece_length > 0, "piece length must be positive");
    let layout = Layout::new(files);
    let total = layout.total;
    let num_pieces = total.div_ceil(config.piece_length);
    let num_pieces_usize = usize::try_from(num_pieces).context("too many pieces")?;
    let threads = config.threads.clamp(1, num_pieces_usize.max(1));

    let next_piece = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let mut hashes = vec![[0u8; 20]; num_pieces_usize];

    let results: Vec<Vec<(u64, [u8; 20])>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut worker = Worker::new(&layout, config.piece_length);
                    let mut done = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let index = next_piece.fetch_add(1, Ordering::Relaxed);
                        if index >= num_pieces {
                            break;
                        }
                        match worker.hash_piece(index) {
                            Ok((hash, len)) => {
                                done.push((index, hash));
                                progress(len);
                            }
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                let mut slot =
                                    first_error.lock().unwrap_or_else(|p| p.into_inner());
                                slot.get_or_insert(e);
                                break;
                            }
                        }
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });

    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut filled = 0usize;
    for (index, hash) in results.into_iter().flatten() {
        hashes[index as usize] = hash;
        filled += 1;
    }
    assert_eq!(filled, num_pieces_usize, "every piece hashed exactly once");
    Ok(hashes)
}

/// The files with their offsets in the concatenated content.
struct Layout<'a> {
    files: &'a [ContentFile],
    /// `starts[i]` = offset of file i; non-decreasing.
    starts: Vec<u64>,
    total: u64,
}

impl<'a> Layout<'a> {
    fn new(files: &'a [ContentFile]) -> Layout<'a> {
        let mut starts = Vec::with_capacity(files.len());
        let mut total = 0u64;
        for f in files {
            starts.push(total);
            total = total
                .checked_add(f.length)
                .expect("content length overflows u64");
        }
        Layout {
            files,
            starts,
            total,
        }
    }

    /// Index of the first non-empty file containing byte `offset` (< total).
    fn file_at(&self, offset: u64) -> usize {
        debug_assert!(offset < self.total);
        // The last file whose start is <= offset, skipping empty files that
        // share a start with the next one.
        let i = self.starts.partition_point(|&s| s <= offset) - 1;
        debug_assert!(offset < self.starts[i] + self.files[i].length);
        i
    }
}

/// A worker's buffer and its most recently opened file (consecutive pieces
/// usually come from the same file).
struct Worker<'a> {
    layout: &'a Layout<'a>,
    piece_length: u64,
    buf: Vec<u8>,
    open: Option<(usize, File)>,
}

impl<'a> Worker<'a> {
    fn new(layout: &'a Layout<'a>, piece_length: u64) -> Worker<'a> {
        let cap = usize::try_from(piece_length.min(layout.total).min(READ_CHUNK))
            .expect("at most READ_CHUNK");
        Worker {
            layout,
            piece_length,
            buf: vec![0; cap],
            open: None,
        }
    }

    /// Reads and hashes piece `index`; returns its hash and length.
    fn hash_piece(&mut self, index: u64) -> Result<([u8; 20], u64)> {
        let start = index * self.piece_length;
        let end = (start + self.piece_length).min(self.layout.total);
        let len = end - start;
        let mut hasher = Sha1::new();
        let mut offset = start;
        let mut file_index = self.layout.file_at(start);
        while offset < end {
            let file_start = self.layout.starts[file_index];
            let file_len = self.layout.files[file_index].length;
            let mut in_file = offset - file_start;
            let mut n = (file_len - in_file).min(end - offset);
            while n > 0 {
                let chunk = n.min(self.buf.len() as u64);
                let file = open_file(self.layout, &mut self.open, file_index)?;
                let dst = &mut self.buf[..chunk as usize];
                if let Err(e) = file.read_exact_at(dst, in_file) {
                    let path = &self.layout.files[file_index].path;
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        bail!("{} shrank while it was being hashed", path.display());
                    }
                    return Err(e).with_context(|| format!("read {}", path.display()));
                }
                hasher.update(&*dst);
                in_file += chunk;
                offset += chunk;
                n -= chunk;
            }
            file_index += 1;
        }
        let hash: [u8; 20] = hasher.finalize().into();
        Ok((hash, len))
    }
}

/// The file at `index`, from `open` if it is the one cached there, else opened
/// (replacing the cached one) after checking its size.
fn open_file<'f>(
    layout: &Layout<'_>,
    open: &'f mut Option<(usize, File)>,
    index: usize,
) -> Result<&'f File> {
    if open.as_ref().is_none_or(|(i, _)| *i != index) {
        let cf = &layout.files[index];
        let file = File::open(&cf.path).with_context(|| format!("open {}", cf.path.display()))?;
        let now = file
            .metadata()
            .with_context(|| format!("stat {}", cf.path.display()))?
            .len();
        ensure!(
            now == cf.length,
            "{} changed size while swarm create was running ({} bytes, then {now})",
            cf.path.display(),
            cf.length
        );
        *open = Some((index, file));
    }
    Ok(&open.as_ref().expect("just opened").1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> ContentFile {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        ContentFile {
            path,
            length: bytes.len() as u64,
        }
    }

    fn reference(all: &[u8], piece: usize) -> Vec<[u8; 20]> {
        all.chunks(piece).map(|c| Sha1::digest(c).into()).collect()
    }

    fn bytes(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    #[test]
    fn pieces_span_files_and_skip_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let parts = [
            bytes(1, 1000),
            vec![],
            bytes(2, 1),
            bytes(3, 4096),
            vec![],
            vec![],
            bytes(4, 5000),
            vec![],
        ];
        let files: Vec<_> = parts
            .iter()
            .enumerate()
            .map(|(i, b)| write(dir.path(), &format!("f{i}"), b))
            .collect();
        let all = parts.concat();
        for piece in [1usize, 7, 1024, 4096, 10_097, 16384] {
            for threads in [1, 2, 5] {
                let config = HashConfig {
                    piece_length: piece as u64,
                    threads,
                };
                let got = hash_pieces(&files, config, &|_| {}).unwrap();
                assert_eq!(
                    got,
                    reference(&all, piece),
                    "piece {piece} threads {threads}"
                );
            }
        }
    }

    #[test]
    fn progress_counts_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![write(dir.path(), "a", &bytes(9, 100_001))];
        let seen = AtomicU64::new(0);
        let config = HashConfig {
            piece_length: 16384,
            threads: 2,
        };
        let got = hash_pieces(&files, config, &|n| {
            seen.fetch_add(n, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(got.len(), 7);
        assert_eq!(seen.load(Ordering::Relaxed), 100_001);
    }

    #[test]
    fn a_file_that_changed_size_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = write(dir.path(), "a", &bytes(1, 5000));
        f.length = 6000;
        let config = HashConfig {
            piece_length: 4096,
            threads: 1,
        };
        let err = hash_pieces(&[f], config, &|_| {}).unwrap_err();
        assert!(format!("{err:#}").contains("changed size"), "{err:#}");
    }

    /// Throughput of one core's SHA-1: `cargo test -p swarm --release -- --ignored sha1_throughput --nocapture`.
    /// Expect ~2 GB/s with SHA-NI, under 1 GB/s without.
    #[test]
    #[ignore = "measurement, not a check"]
    fn sha1_throughput() {
        let buf = bytes(5, 256 * 1024);
        let rounds = 8192u64; // 2 GiB
        let t = std::time::Instant::now();
        let mut acc = 0u8;
        for _ in 0..rounds {
            acc ^= Sha1::digest(&buf)[0];
        }
        let secs = t.elapsed().as_secs_f64();
        let gbs = (rounds * buf.len() as u64) as f64 / secs / 1e9;
        println!("sha1: {gbs:.2} GB/s on one core ({acc})");
    }
}
