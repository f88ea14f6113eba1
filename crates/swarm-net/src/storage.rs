//! Storage: a torrent's files on disk, addressed as one byte range.
//!
//! Files are created sparse at their final size (`set_len`), folders made,
//! empty files created too. A piece maps to one span per file it touches
//! ([`Storage::spans`]); reads and writes are positional (`pread`/`pwrite`
//! through [`FileExt`]), so jobs on different pieces never contend for a file
//! cursor and the whole type is `Sync`: the session shares it with its
//! blocking jobs through an `Arc`.
//!
//! Everything here is synchronous and meant to run on tokio's blocking pool
//! (`spawn_blocking`), one job per piece: hash the blocks, then, if the hash
//! matched, write the piece with one `pwritev` per file span, straight from
//! the received blocks. A piece is
//! reported verified only once its bytes are written (the engine's *have*
//! invariant).

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use swarm_engine::{Bitfield, StorageDone};
use swarm_wire::lengths::{BlockInfo, Lengths, ValidPieceIndex};

use crate::NetError;
use crate::spec::TorrentSpec;

/// Bytes read and hashed at once by the full check (a piece may be larger:
/// a 16 MiB piece is hashed in chunks, so memory stays bounded per thread).
pub const CHECK_CHUNK_LEN: usize = 1 << 20;
/// Threads the full check uses at most.
pub const CHECK_THREADS_MAX: usize = 8;

/// How [`Storage::open`] treats the files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Make missing folders and files; grow files to their final size (sparse).
    Create,
    /// The files must exist (seeding): a missing one is an error. Opened for
    /// reading and writing when allowed, read-only otherwise.
    Existing,
}

/// A piece's or block's share of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Index in the torrent's file list.
    pub file: usize,
    /// Offset inside that file.
    pub offset: u64,
    pub len: usize,
}

struct StoredFile {
    path: PathBuf,
    /// Offset of the file's first byte in the torrent.
    start: u64,
    length: u64,
    file: File,
    /// It existed, non-empty, before we opened it: worth checking.
    had_data: bool,
}

/// The files of one torrent. See the module docs.
pub struct Storage {
    lengths: Lengths,
    piece_hashes: Vec<[u8; 20]>,
    files: Vec<StoredFile>,
}

fn io_err(path: &Path, source: io::Error) -> NetError {
    NetError::Storage {
        path: path.to_path_buf(),
        source,
    }
}

impl Storage {
    /// Opens (or creates) the files of `spec` under `root`.
    pub fn open(root: &Path, spec: &TorrentSpec, mode: OpenMode) -> Result<Storage, NetError> {
        spec.validate()?;
        let mut files = Vec::with_capacity(spec.files.len());
        let mut start = 0u64;
        for f in &spec.files {
            let path = root.join(&f.path);
            let before = std::fs::metadata(&path).ok();
            let had_data = before.as_ref().is_some_and(|m| m.len() > 0);
            let file = match mode {
                OpenMode::Create => {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
                    }
                    let file = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(&path)
                        .map_err(|e| io_err(&path, e))?;
                    if before.is_none_or(|m| m.len() < f.length) {
                        // Sparse: no block is allocated until written.
                        file.set_len(f.length).map_err(|e| io_err(&path, e))?;
                    }
                    file
                }
                OpenMode::Existing => {
                    if before.is_none() {
                        return Err(io_err(
                            &path,
                            io::Error::new(io::ErrorKind::NotFound, "missing data file"),
                        ));
                    }
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&path)
                        .or_else(|_| File::open(&path))
                        .map_err(|e| io_err(&path, e))?
                }
            };
            files.push(StoredFile {
                path,
                start,
                length: f.length,
                file,
                had_data,
            });
            start += f.length;
        }
        Ok(Storage {
            lengths: spec.lengths,
            piece_hashes: spec.piece_hashes.clone(),
            files,
        })
    }

    pub fn lengths(&self) -> &Lengths {
        &self.lengths
    }

    /// Whether any file held data before we opened it (then a check is worth it).
    pub fn has_existing_data(&self) -> bool {
        self.files.iter().any(|f| f.had_data)
    }

    /// The file spans of the torrent byte range `start..start + len`, in
    /// order, skipping empty files.
    pub fn spans(&self, start: u64, len: u64) -> Vec<Span> {
        let mut out = Vec::new();
        let first = self.files.partition_point(|f| f.start + f.length <= start);
        let (mut pos, end) = (start, start + len);
        for (i, f) in self.files.iter().enumerate().skip(first) {
            if pos >= end {
                break;
            }
            if f.length == 0 {
                continue;
            }
            let take = (f.start + f.length).min(end) - pos;
            out.push(Span {
                file: i,
                offset: pos - f.start,
                len: take as usize,
            });
            pos += take;
        }
        debug_assert_eq!(
            pos,
            end.min(self.lengths.total_length()),
            "spans cover the range"
        );
        out
    }

    fn piece_spans(&self, piece: ValidPieceIndex) -> Vec<Span> {
        let start = self.lengths.piece_offset(piece);
        self.spans(start, u64::from(self.lengths.piece_len(piece)))
    }

    /// The engine's `VerifyPiece` job: hash `blocks` (the piece, in order);
    /// on a match write it, one `pwritev` per file span.
    pub fn verify_and_write(&self, piece: ValidPieceIndex, blocks: &[Bytes]) -> StorageDone {
        let piece_len = self.lengths.piece_len(piece) as usize;
        let total: usize = blocks.iter().map(Bytes::len).sum();
        assert_eq!(total, piece_len, "the engine hands whole pieces");
        let mut hasher = Sha1::new();
        for b in blocks {
            hasher.update(b);
        }
        let digest: [u8; 20] = hasher.finalize().into();
        if digest != self.piece_hashes[piece.as_usize()] {
            return StorageDone::PieceVerified { piece, ok: false };
        }
        match self.write_piece(piece, blocks) {
            Ok(()) => StorageDone::PieceVerified { piece, ok: true },
            Err(error) => StorageDone::WriteFailed {
                piece,
                error: error.to_string(),
            },
        }
    }

    /// Writes a verified piece: one `pwritev` per file span, straight from
    /// the received blocks (no copy into a piece buffer).
    fn write_piece(&self, piece: ValidPieceIndex, blocks: &[Bytes]) -> Result<(), NetError> {
        // Where the next span starts: block index and offset inside it.
        let (mut block, mut within) = (0usize, 0usize);
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(blocks.len() + 1);
        for span in self.piece_spans(piece) {
            slices.clear();
            let mut need = span.len;
            while need > 0 {
                let b = &blocks[block][within..];
                let take = b.len().min(need);
                slices.push(IoSlice::new(&b[..take]));
                need -= take;
                if take == b.len() {
                    block += 1;
                    within = 0;
                } else {
                    within += take;
                }
            }
            let f = &self.files[span.file];
            pwrite_all_vectored(&f.file, &mut slices, span.offset)
                .map_err(|e| io_err(&f.path, e))?;
        }
        Ok(())
    }

    /// The engine's `ReadBlock` job.
    pub fn read_block(&self, block: BlockInfo) -> Result<Bytes, NetError> {
        let start = self.lengths.piece_offset(block.piece) + u64::from(block.offset);
        let mut buf = vec![0u8; block.length as usize];
        self.read_range(start, &mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// Reads `buf.len()` bytes at torrent offset `start`. A file shorter than
    /// the torrent says is an `UnexpectedEof` error.
    fn read_range(&self, start: u64, buf: &mut [u8]) -> Result<(), NetError> {
        let mut at = 0usize;
        for span in self.spans(start, buf.len() as u64) {
            let f = &self.files[span.file];
            f.file
                .read_exact_at(&mut buf[at..at + span.len], span.offset)
                .map_err(|e| io_err(&f.path, e))?;
            at += span.len;
        }
        Ok(())
    }

    /// Whether the piece on disk matches its hash (false on read errors).
    pub fn check_piece(&self, piece: ValidPieceIndex, buf: &mut Vec<u8>) -> bool {
        let start = self.lengths.piece_offset(piece);
        let len = u64::from(self.lengths.piece_len(piece));
        let mut hasher = Sha1::new();
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(CHECK_CHUNK_LEN as u64) as usize;
            buf.resize(n, 0);
            if self.read_range(start + done, buf).is_err() {
                return false;
            }
            hasher.update(&buf[..]);
            done += n as u64;
        }
        let digest: [u8; 20] = hasher.finalize().into();
        digest == self.piece_hashes[piece.as_usize()]
    }

    /// Hashes every piece on disk, on several threads, and returns the ones
    /// that match. `only_existing`: pieces touching a file that was created
    /// empty by [`Storage::open`] are not read (they cannot match).
    /// `progress(bytes)` is called after each piece, from the worker threads.
    pub fn check(&self, only_existing: bool, progress: &(dyn Fn(u64) + Sync)) -> Bitfield {
        let none = Bitfield::empty(self.lengths.num_pieces());
        self.check_except(&none, only_existing, progress)
    }

    /// [`Storage::check`] that never reads the pieces in `skip` (trusted from
    /// a resume record): they are neither read, nor in the result, nor
    /// reported to `progress`. Nor are pieces that lie wholly in holes of
    /// sparse files (`Storage::may_have_data`): after a crash, the part
    /// of a big download never written costs no reading.
    pub fn check_except(
        &self,
        skip: &Bitfield,
        only_existing: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Bitfield {
        let n = self.lengths.num_pieces();
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .clamp(1, CHECK_THREADS_MAX);
        let next = AtomicU32::new(0);
        let zeros = ZeroPieceHashes::new(&self.lengths);
        let found: Vec<Vec<u32>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut have = Vec::new();
                        let mut buf = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(piece) = self.lengths.validate_piece_index(i) else {
                                break;
                            };
                            let worth = !skip.get(i)
                                && (!only_existing
                                    || self
                                        .piece_spans(piece)
                                        .iter()
                                        .all(|s| self.files[s.file].had_data))
                                && self.may_have_data(piece, &zeros);
                            if worth && self.check_piece(piece, &mut buf) {
                                have.push(i);
                            }
                            if !skip.get(i) {
                                progress(u64::from(self.lengths.piece_len(piece)));
                            }
                        }
                        have
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_default())
                .collect()
        });
        let mut have = Bitfield::empty(n);
        for i in found.into_iter().flatten() {
            have.set(i);
        }
        have
    }

    /// Whether `piece` may hold its data: false only if the file system
    /// reports every byte of it as a hole (`SEEK_DATA`) and the piece is not
    /// all zeros (what a hole reads as: a written all-zero piece may be
    /// stored as a hole by some file systems). Any doubt — an error, a file
    /// system without `SEEK_DATA` support (it reports all data) — says yes.
    fn may_have_data(&self, piece: ValidPieceIndex, zeros: &ZeroPieceHashes) -> bool {
        if zeros.is_zero_piece(self, piece) {
            return true;
        }
        self.piece_spans(piece).iter().any(|s| {
            let f = &self.files[s.file];
            match rustix::fs::seek(&f.file, rustix::fs::SeekFrom::Data(s.offset)) {
                Ok(data_at) => data_at < s.offset + s.len as u64,
                Err(rustix::io::Errno::NXIO) => false, // only a hole from here on
                Err(_) => true,
            }
        })
    }

    // ---- for the resume record (see `resume::ResumeStore`) ----

    /// Indexes of the files piece `piece` touches (empty files never).
    pub fn files_of_piece(&self, piece: u32) -> Vec<usize> {
        self.lengths
            .validate_piece_index(piece)
            .map(|p| self.piece_spans(p).iter().map(|s| s.file).collect())
            .unwrap_or_default()
    }

    /// The metadata of every file, through the handles we read and write
    /// (not the paths: it describes exactly the files our writes went to).
    pub fn file_metadata(&self) -> Vec<io::Result<std::fs::Metadata>> {
        self.files.iter().map(|f| f.file.metadata()).collect()
    }

    /// `fdatasync` every file: whatever was written to them so far is on
    /// the disk when this returns. Files opened read-only are synced too
    /// (harmless; Linux allows it).
    pub fn sync_data(&self) -> Result<(), NetError> {
        for f in &self.files {
            f.file.sync_data().map_err(|e| io_err(&f.path, e))?;
        }
        Ok(())
    }
}

/// The SHA-1 of an all-zero piece, for the two piece lengths of a torrent.
struct ZeroPieceHashes {
    full: [u8; 20],
    last: [u8; 20],
}

impl ZeroPieceHashes {
    fn new(lengths: &Lengths) -> Self {
        let zeros = |len: u32| -> [u8; 20] {
            let mut h = Sha1::new();
            let chunk = [0u8; 64 * 1024];
            let mut left = len as usize;
            while left > 0 {
                let n = left.min(chunk.len());
                h.update(&chunk[..n]);
                left -= n;
            }
            h.finalize().into()
        };
        let last = lengths
            .num_pieces()
            .checked_sub(1)
            .and_then(|i| lengths.validate_piece_index(i))
            .map_or(0, |p| lengths.piece_len(p));
        ZeroPieceHashes {
            full: zeros(lengths.piece_length()),
            last: zeros(last),
        }
    }

    fn is_zero_piece(&self, storage: &Storage, piece: ValidPieceIndex) -> bool {
        let want = &storage.piece_hashes[piece.as_usize()];
        let zero = if storage.lengths.piece_len(piece) == storage.lengths.piece_length() {
            &self.full
        } else {
            &self.last
        };
        want == zero
    }
}

/// Slices handed to one `pwritev` at most (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;

/// `pwritev` until every byte of `slices` is written at `offset` onwards.
fn pwrite_all_vectored(file: &File, slices: &mut [IoSlice<'_>], mut offset: u64) -> io::Result<()> {
    let mut slices = slices;
    while !slices.is_empty() {
        let n = slices.len().min(IOV_MAX);
        let written = match rustix::io::pwritev(file, &slices[..n], offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(w) => w,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        offset += written as u64;
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::FileSpec;

    fn sha1(data: &[u8]) -> [u8; 20] {
        Sha1::digest(data).into()
    }

    /// A torrent of `sizes` files (one empty) over `data`, pieces of `piece_len`.
    fn spec(sizes: &[u64], piece_len: u32, data: &[u8]) -> TorrentSpec {
        let lengths = Lengths::new(data.len() as u64, piece_len).unwrap();
        let piece_hashes = data.chunks(piece_len as usize).map(sha1).collect();
        let files = sizes
            .iter()
            .enumerate()
            .map(|(i, &length)| FileSpec {
                path: PathBuf::from(format!("t/d{}/f{i}", i % 2)),
                length,
            })
            .collect();
        TorrentSpec {
            info_hash: swarm_wire::InfoHash([1; 20]),
            name: "t".into(),
            lengths,
            piece_hashes,
            files,
            trackers: vec![],
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn blocks_of(piece: &[u8]) -> Vec<Bytes> {
        piece
            .chunks(16 * 1024)
            .map(Bytes::copy_from_slice)
            .collect()
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn spans_split_pieces_across_files_and_skip_empty_ones() {
        let d = data(100_000);
        let spec = spec(&[10_000, 0, 50_000, 40_000], 32 * 1024, &d);
        let dir = tempdir();
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        assert_eq!(
            s.spans(0, 32768),
            vec![
                Span {
                    file: 0,
                    offset: 0,
                    len: 10_000
                },
                Span {
                    file: 2,
                    offset: 0,
                    len: 22_768
                }
            ]
        );
        assert_eq!(
            s.spans(3 * 32768, 100_000 - 3 * 32768),
            vec![Span {
                file: 3,
                offset: 40_000 - 1_696,
                len: 1_696
            }]
        );
        // Every file exists at its final size, the empty one too.
        for (i, len) in [10_000u64, 0, 50_000, 40_000].into_iter().enumerate() {
            let p = dir.path().join(format!("t/d{}/f{i}", i % 2));
            assert_eq!(std::fs::metadata(&p).unwrap().len(), len, "{p:?}");
        }
    }

    #[test]
    fn verified_pieces_land_in_the_right_files_and_read_back() {
        let d = data(100_000);
        let sizes = [10_000, 0, 50_000, 40_000];
        let spec = spec(&sizes, 32 * 1024, &d);
        let dir = tempdir();
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        for (i, piece) in d.chunks(32 * 1024).enumerate() {
            let vp = spec.lengths.validate_piece_index(i as u32).unwrap();
            assert_eq!(
                s.verify_and_write(vp, &blocks_of(piece)),
                StorageDone::PieceVerified {
                    piece: vp,
                    ok: true
                }
            );
        }
        let mut at = 0;
        for (i, len) in sizes.into_iter().enumerate() {
            let p = dir.path().join(format!("t/d{}/f{i}", i % 2));
            assert_eq!(std::fs::read(&p).unwrap(), &d[at..at + len as usize]);
            at += len as usize;
        }
        // A block that straddles two files reads back whole.
        let vp = spec.lengths.validate_piece_index(0).unwrap();
        let b = spec.lengths.validate_block(0, 0, 16384).unwrap();
        assert_eq!(&s.read_block(b).unwrap()[..], &d[..16384]);
        let b = spec.lengths.block(vp, 1).unwrap();
        assert_eq!(&s.read_block(b).unwrap()[..], &d[16384..32768]);
        // And the full check finds every piece, reopening as a seeder would.
        drop(s);
        let s = Storage::open(dir.path(), &spec, OpenMode::Existing).unwrap();
        assert!(s.has_existing_data());
        assert!(s.check(false, &|_| {}).is_all_set());
    }

    #[test]
    fn a_bad_hash_writes_nothing_and_check_finds_the_damage() {
        let d = data(70_000);
        let spec = spec(&[70_000], 16 * 1024, &d);
        let dir = tempdir();
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        let vp = spec.lengths.validate_piece_index(1).unwrap();
        let mut bad = d[16384..32768].to_vec();
        bad[5] ^= 1;
        assert_eq!(
            s.verify_and_write(vp, &blocks_of(&bad)),
            StorageDone::PieceVerified {
                piece: vp,
                ok: false
            }
        );
        let on_disk = std::fs::read(dir.path().join("t/d0/f0")).unwrap();
        assert!(
            on_disk[16384..32768].iter().all(|&b| b == 0),
            "nothing written"
        );
        for i in [0u32, 2, 3, 4] {
            let vp = spec.lengths.validate_piece_index(i).unwrap();
            let range = i as usize * 16384..((i as usize + 1) * 16384).min(d.len());
            s.verify_and_write(vp, &blocks_of(&d[range]));
        }
        let checked = std::sync::atomic::AtomicU64::new(0);
        let have = s.check(false, &|n| {
            checked.fetch_add(n, Ordering::Relaxed);
        });
        assert_eq!(have.iter_ones().collect::<Vec<_>>(), vec![0, 2, 3, 4]);
        assert_eq!(checked.load(Ordering::Relaxed), 70_000);
    }

    #[test]
    fn a_short_or_missing_file_fails_only_its_pieces() {
        let d = data(64 * 1024);
        let spec = spec(&[32 * 1024, 32 * 1024], 16 * 1024, &d);
        let dir = tempdir();
        std::fs::create_dir_all(dir.path().join("t/d0")).unwrap();
        std::fs::write(dir.path().join("t/d0/f0"), &d[..20_000]).unwrap();
        // Seeding needs every file.
        assert!(matches!(
            Storage::open(dir.path(), &spec, OpenMode::Existing),
            Err(NetError::Storage { .. })
        ));
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        let have = s.check(true, &|_| {});
        assert_eq!(have.iter_ones().collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn a_piece_of_more_blocks_than_iov_max_is_written_whole() {
        let piece_len = (IOV_MAX as u32 + 2) * 16 * 1024;
        let d = data(piece_len as usize + 100);
        let spec = spec(&[1000, piece_len as u64 - 1000, 100], piece_len, &d);
        let dir = tempdir();
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        let vp = spec.lengths.validate_piece_index(0).unwrap();
        let done = s.verify_and_write(vp, &blocks_of(&d[..piece_len as usize]));
        assert_eq!(
            done,
            StorageDone::PieceVerified {
                piece: vp,
                ok: true
            }
        );
        let mut back = vec![0u8; piece_len as usize];
        s.read_range(0, &mut back).unwrap();
        assert!(back == d[..piece_len as usize]);
    }

    #[test]
    fn pieces_in_holes_of_a_sparse_file_are_not_read_unless_all_zero() {
        // 8 pieces of 16 KiB; piece 6 is all zeros. Only 0 and 3 are written.
        let mut d = data(8 * 16384);
        d[6 * 16384..7 * 16384].fill(0);
        let spec = spec(&[d.len() as u64], 16 * 1024, &d);
        let dir = tempdir();
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        for i in [0usize, 3] {
            let vp = spec.lengths.validate_piece_index(i as u32).unwrap();
            s.verify_and_write(vp, &blocks_of(&d[i * 16384..(i + 1) * 16384]));
        }
        let zeros = ZeroPieceHashes::new(&spec.lengths);
        let may: Vec<u32> = spec
            .lengths
            .pieces()
            .filter(|&p| s.may_have_data(p, &zeros))
            .map(|p| p.get())
            .collect();
        // ext4, xfs, btrfs, tmpfs report holes; the never-written all-zero
        // piece reads as zeros, so it is checked, and matches.
        assert_eq!(may, vec![0, 3, 6]);
        drop(s);
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        let have = s.check(true, &|_| {});
        assert_eq!(have.iter_ones().collect::<Vec<_>>(), vec![0, 3, 6]);
    }

    #[test]
    fn a_failed_write_is_reported_not_verified() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let d = data(32 * 1024);
        let spec = spec(&[32 * 1024], 16 * 1024, &d);
        let dir = tempdir();
        std::fs::create_dir_all(dir.path().join("t/d0")).unwrap();
        std::os::unix::fs::symlink("/dev/full", dir.path().join("t/d0/f0")).unwrap();
        let s = Storage::open(dir.path(), &spec, OpenMode::Existing).unwrap();
        let vp = spec.lengths.validate_piece_index(0).unwrap();
        match s.verify_and_write(vp, &blocks_of(&d[..16384])) {
            StorageDone::WriteFailed { piece, error } => {
                assert_eq!(piece, vp);
                assert!(error.contains("f0"), "{error}");
            }
            other => panic!("expected WriteFailed, got {other:?}"),
        }
    }

    #[test]
    fn an_unwritable_folder_is_a_clear_error() {
        let d = data(16 * 1024);
        let spec = spec(&[16 * 1024], 16 * 1024, &d);
        let dir = tempdir();
        // A file where a folder must go: create_dir_all fails even for root.
        std::fs::write(dir.path().join("t"), b"x").unwrap();
        let err = Storage::open(dir.path(), &spec, OpenMode::Create)
            .err()
            .expect("cannot create under a file");
        assert!(err.to_string().contains("t"), "{err}");
    }
}
