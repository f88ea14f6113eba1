//! Storage: a torrent's files on disk, addressed as one byte range.
//!
//! Files are created sparse at their final size (`set_len`), folders made,
//! empty files created too. A piece maps to one span per file it touches
//! (swarm-wire's [`swarm_wire::layout`], the one piece ↔ file mapping);
//! reads and writes are positional (`pread`/`pwrite` through [`FileExt`]),
//! so jobs on different pieces never contend for a file cursor and the whole
//! type is `Sync`: the session shares it with its blocking jobs through an
//! `Arc`.
//!
//! **Handles are opened on demand** through a pool of at most
//! [`FILE_HANDLES_MAX`] (libtorrent's file pool is the model): the least
//! recently used handle is closed first, so a torrent of any number of
//! files works under the usual `ulimit -n 1024`. A handle in use by a job
//! is an `Arc`: evicting it only drops the pool's reference, and the file
//! closes when the job is done (so at most `FILE_HANDLES_MAX` + one per
//! running job are open). A file written since the last sync is marked
//! dirty; [`Storage::sync_data`] reopens and syncs only those (`fsync` on
//! any handle flushes the file).
//!
//! **BEP 47 pad files** are part of the layout but never created, opened
//! or written: their range reads as zeros (what the piece hashes were made
//! over) and the bytes received for them are hashed with the piece and
//! dropped. A `symlink` entry is created as a relative link inside the
//! torrent's folder (the parser refuses any other target); `executable`
//! sets the x bits of a file we create.
//!
//! **Skipped files and the parts file** (libtorrent's `.parts`): a
//! download may skip files ([`Skipping`]). A skipped file that is not on
//! disk is never created; the bytes of it that share a piece with a wanted
//! file (such a piece is fetched: [`crate::TorrentSpec::piece_priorities`])
//! go to the parts file beside the resume record, never into the skipped
//! file, and are read back from there (uploads, checks). Its layout is
//! fixed by the torrent: one slot of a piece length for each piece that
//! touches two real files or more (at most two a file), piece `slots[k]`
//! at offset `k × piece length`, a sparse file, no header; so it needs no
//! index of its own to survive a crash. A file un-skipped later is created
//! at the next open (or [`Storage::rechoose`], for a running download) and
//! its bytes moved out of the parts file into it
//! (synced before the parts file is deleted, once no file is in it). The
//! move is redone at every open, byte by byte where the file reads zero
//! and the parts file does not (both hold only verified bytes or holes),
//! so a kill anywhere in it loses nothing: the restart finishes it. A
//! skipped file already on disk keeps its bytes there. Costs 4 bytes a
//! shared piece and one handle.
//!
//! **Lengths on disk**: downloading (`Create`), a file longer than the
//! torrent says is truncated to its size before the check (a log line says
//! so: its tail could never be right). Seeding (`Existing`) never changes
//! the user's data: a longer file is an error naming it. Before anything is
//! created, every path is checked against the file system's limits (a name
//! longer than its `NAME_MAX`, a path longer than `PATH_MAX`), so a path it
//! would refuse fails up front and leaves nothing behind.
//!
//! Everything here is synchronous and meant to run on tokio's blocking pool
//! (`spawn_blocking`), one job per piece: hash the blocks, then, if the hash
//! matched, write the piece with one `pwritev` per file span, straight from
//! the received blocks. A piece is reported verified only once its bytes
//! are written (the engine's *have* invariant).
//!
//! **One hasher.** [`Storage::check_except`] (is the data on disk right?)
//! and [`Storage::piece_hashes`] (`swarm create`: what are the hashes?)
//! are the same parallel loop: up to [`CHECK_THREADS_MAX`] threads take the
//! next piece index from a shared counter (so together they read the data
//! front to back, which suits readahead), read it in [`HASH_CHUNK_LEN`]
//! chunks into their own buffer and hash each chunk while it is in cache.
//! A worker does its own reading: handing a piece to another thread costs a
//! cross-core wake-up (30–40 µs here) for ~130 µs of hashing.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use swarm_engine::{Bitfield, StorageDone};
use swarm_wire::layout::{self, Extent, FileAttr};
use swarm_wire::lengths::{BlockInfo, Lengths, ValidPieceIndex};

use crate::NetError;
use crate::spec::{FileSpec, TorrentSpec};

/// Bytes read and hashed at once (a piece may be larger: a 16 MiB piece is
/// hashed in chunks, so memory stays bounded per thread). Small enough that
/// the data is still in L1/L2 cache when SHA-1 reads it after the copy.
pub const HASH_CHUNK_LEN: usize = 64 * 1024;
/// Threads the full check uses at most.
pub const CHECK_THREADS_MAX: usize = 8;
/// File handles one [`Storage`] keeps open at most (libtorrent's default
/// file pool holds 40). Each costs a descriptor and ~1 KiB of kernel memory.
pub const FILE_HANDLES_MAX: usize = 64;
/// Bytes written to a file after which a write starts that file's
/// write-back (`sync_file_range(SYNC_FILE_RANGE_WRITE)`: queue its dirty
/// pages for the disk, do not wait). Without it a download's data stays
/// dirty in the page cache until the kernel's 30 s expiry or its
/// background threshold (10% of RAM: gigabytes), so the `fdatasync` of the
/// resume record after completion had the whole download still to write:
/// 1 GiB at this disk's ~290 MB/s is 3.5 s after the last piece. Started
/// every 16 MiB, the disk writes while the network transfers, and the
/// final sync waits only for the last ones. Small enough to keep the disk
/// busy, large enough that each call covers many pieces (the kernel walks
/// only the file's dirty pages, in file order).
pub const WRITEBACK_START_BYTES: u64 = 16 << 20;
/// Linux's `PATH_MAX`, NUL included: a longer path is refused by every
/// path system call.
const PATH_MAX_BYTES: usize = 4096;
/// A name's limit when the file system does not say (`NAME_MAX`).
const NAME_MAX_BYTES_DEFAULT: u64 = 255;

/// How [`Storage::open`] treats the files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Make missing folders and files; grow files to their final size
    /// (sparse), truncate longer ones (downloading).
    Create,
    /// The files must exist (seeding): a missing or longer one is an error.
    /// Opened for reading and writing when allowed, read-only otherwise.
    Existing,
    /// Read only, and the files must keep the size they were listed with
    /// (`swarm create` hashing a folder: a file that changes size is an
    /// error, not a wrong hash).
    ReadOnly,
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
    /// Skipped and not on disk: its bytes live in the parts file.
    in_parts: bool,
    /// Offset of the file's first byte in the torrent.
    start: u64,
    length: u64,
    attr: FileAttr,
    /// It existed, non-empty, before we opened it: worth checking.
    had_data: bool,
    /// Written since the last [`Storage::sync_data`].
    dirty: AtomicBool,
    /// Bytes written since its write-back was last started
    /// ([`WRITEBACK_START_BYTES`]).
    unstarted: AtomicU64,
}

impl Extent for StoredFile {
    fn start(&self) -> u64 {
        self.start
    }
    fn length(&self) -> u64 {
        self.length
    }
}

/// The open handles, by file index, least recently used closed first.
struct FilePool {
    mode: OpenMode,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// File index → handle and the tick of its last use.
    open: HashMap<usize, (Arc<File>, u64)>,
    tick: u64,
}

impl PoolState {
    /// Keeps `file`, just opened, as file `index`'s handle and returns the
    /// one kept: if another job opened the same file meanwhile, its handle
    /// stays (either is right) and nothing is evicted; otherwise the least
    /// recently used handle goes when the pool is full. (Evicting before
    /// looking left the pool one short of full each time two jobs opened
    /// the same file at once: a parallel check ended with 63 of 64.)
    fn insert(&mut self, index: usize, file: Arc<File>) -> Arc<File> {
        let tick = self.tick;
        if let Some((kept, used)) = self.open.get_mut(&index) {
            *used = tick;
            return kept.clone();
        }
        if self.open.len() >= FILE_HANDLES_MAX
            && let Some(lru) = self
                .open
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(i, _)| *i)
        {
            self.open.remove(&lru);
        }
        self.open.insert(index, (file.clone(), tick));
        file
    }
}

impl FilePool {
    /// The handle of file `index` (opened if it is not): an `Arc`, so a
    /// handle evicted while in use stays valid until its user is done.
    fn get(&self, index: usize, f: &StoredFile) -> io::Result<Arc<File>> {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.tick += 1;
            let tick = st.tick;
            if let Some((file, used)) = st.open.get_mut(&index) {
                *used = tick;
                return Ok(file.clone());
            }
        }
        // Opened outside the lock: an open may block on a slow disk.
        let file = Arc::new(self.open(f)?);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(st.insert(index, file))
    }

    fn open(&self, f: &StoredFile) -> io::Result<File> {
        match self.mode {
            OpenMode::Create => OpenOptions::new().read(true).write(true).open(&f.path),
            OpenMode::Existing => OpenOptions::new()
                .read(true)
                .write(true)
                .open(&f.path)
                .or_else(|_| File::open(&f.path)),
            OpenMode::ReadOnly => {
                let file = File::open(&f.path)?;
                let now = file.metadata()?.len();
                if now != f.length {
                    return Err(io::Error::other(format!(
                        "changed size since it was listed ({} bytes, now {now})",
                        f.length
                    )));
                }
                Ok(file)
            }
        }
    }

    fn open_count(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
            .len()
    }
}

/// A job of [`Storage::each_piece`]: the piece, the thread's buffer.
type PieceJob<'a, T> =
    dyn Fn(ValidPieceIndex, &mut Vec<u8>) -> Result<Option<T>, NetError> + Sync + 'a;

/// The files of one torrent. See the module docs.
pub struct Storage {
    lengths: Lengths,
    piece_hashes: Vec<[u8; 20]>,
    files: Vec<StoredFile>,
    pool: FilePool,
    /// Where skipped files' shared bytes live (none: nothing skipped).
    parts: Option<PartsFile>,
    /// The folder the files lie in, and where the parts file goes (set
    /// when opened with a [`Skipping`]): what [`Storage::rechoose`] needs.
    root: PathBuf,
    parts_path: Option<PathBuf>,
    /// Write-backs started ([`Storage::writebacks_started`]).
    writebacks: AtomicU64,
}

/// The files a download skips, and where the parts file goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipping {
    /// By file index, pads included (missing: wanted).
    pub skipped: Vec<bool>,
    /// The parts file (beside the resume record).
    pub parts: PathBuf,
}

/// The parts file (module docs).
struct PartsFile {
    path: PathBuf,
    /// The pieces touching two real files or more, ascending: piece
    /// `slots[k]` is kept at `k × piece length`.
    slots: Vec<u32>,
    file: File,
    dirty: AtomicBool,
}

/// The pieces touching two real (non-pad, non-empty) files or more,
/// ascending: every file touching a piece has it as its first or last
/// piece, so these are the pieces named by two files' ends.
fn shared_pieces(files: &[StoredFile], lengths: &Lengths) -> Vec<u32> {
    let pl = u64::from(lengths.piece_length());
    let mut ends = Vec::new();
    for f in files.iter().filter(|f| !f.attr.pad && f.length > 0) {
        let (first, last) = (f.start / pl, (f.start + f.length - 1) / pl);
        ends.push(first as u32);
        if last != first {
            ends.push(last as u32);
        }
    }
    ends.sort_unstable();
    let mut out: Vec<u32> = Vec::new();
    for w in ends.windows(2) {
        if w[0] == w[1] && out.last() != Some(&w[0]) {
            out.push(w[0]);
        }
    }
    out
}

fn io_err(path: &Path, error: io::Error) -> NetError {
    NetError::Storage {
        path: path.to_path_buf(),
        error,
    }
}

impl Storage {
    /// Opens (or creates) the files of `spec` under `root`. Holds no handle
    /// when it returns: files are opened on demand.
    pub fn open(root: &Path, spec: &TorrentSpec, mode: OpenMode) -> Result<Storage, NetError> {
        Self::open_skipping(root, spec, mode, None)
    }

    /// [`Storage::open`] for a download that skips files (`Create` only;
    /// other modes ignore `skipping`): a skipped file not on disk is not
    /// created, its shared bytes go to the parts file; a wanted file
    /// created now takes its bytes out of the parts file (module docs).
    pub fn open_skipping(
        root: &Path,
        spec: &TorrentSpec,
        mode: OpenMode,
        skipping: Option<&Skipping>,
    ) -> Result<Storage, NetError> {
        spec.validate()?;
        let mut storage = Self::layout(
            root,
            &spec.files,
            spec.lengths,
            spec.piece_hashes.clone(),
            mode,
        )?;
        storage.parts_path = skipping.map(|sk| sk.parts.clone());
        if mode == OpenMode::Create
            && let Some(sk) = skipping
        {
            storage.open_parts(sk)?;
        }
        match mode {
            OpenMode::Create => {
                check_paths(root, &storage.files)?;
                for f in storage.files.iter() {
                    if f.attr.pad || f.in_parts {
                        continue;
                    }
                    create_file(root, spec, f)?;
                }
                storage.take_from_parts()?;
            }
            OpenMode::Existing | OpenMode::ReadOnly => {
                for f in storage.files.iter().filter(|f| !f.attr.pad) {
                    existing_file(f)?;
                }
            }
        }
        Ok(storage)
    }

    /// A read-only view of files already on disk at `files` (paths as
    /// given: absolute, or relative to the working folder), for hashing
    /// them with [`Storage::piece_hashes`] (`swarm create`).
    pub fn for_hashing(files: &[FileSpec], piece_length: u32) -> Result<Storage, NetError> {
        let total = files.iter().try_fold(0u64, |t, f| t.checked_add(f.length));
        let total = total.ok_or_else(|| NetError::BadTorrent("file lengths overflow".into()))?;
        let lengths =
            Lengths::new(total, piece_length).map_err(|e| NetError::BadTorrent(e.to_string()))?;
        Self::layout(
            Path::new(""),
            files,
            lengths,
            Vec::new(),
            OpenMode::ReadOnly,
        )
    }

    fn layout(
        root: &Path,
        specs: &[FileSpec],
        lengths: Lengths,
        piece_hashes: Vec<[u8; 20]>,
        mode: OpenMode,
    ) -> Result<Storage, NetError> {
        let mut files = Vec::with_capacity(specs.len());
        let mut start = 0u64;
        for f in specs {
            let path = root.join(&f.path);
            let had_data = !f.attr.pad
                && f.attr.symlink.is_none()
                && std::fs::symlink_metadata(&path).is_ok_and(|m| m.len() > 0);
            files.push(StoredFile {
                path,
                in_parts: false,
                start,
                length: f.length,
                attr: f.attr.clone(),
                had_data,
                dirty: AtomicBool::new(false),
                unstarted: AtomicU64::new(0),
            });
            start += f.length;
        }
        Ok(Storage {
            lengths,
            piece_hashes,
            files,
            pool: FilePool {
                mode,
                state: Mutex::new(PoolState::default()),
            },
            parts: None,
            root: root.to_path_buf(),
            parts_path: None,
            writebacks: AtomicU64::new(0),
        })
    }

    /// The same files opened again for a new choice of skipped files
    /// (`skipped`, by file index, pads included), for a running download:
    /// the caller runs no other job on this storage meanwhile and uses the
    /// returned one from then on. What this one wrote is synced first (the
    /// new one starts with nothing dirty). Then as at a start: a newly
    /// skipped file that holds no data is deleted and its shared bytes go
    /// to the parts file; one that holds data keeps it on disk; a file
    /// wanted again is created and takes its bytes back from the parts
    /// file, which is deleted once no file is in it. Only for storage
    /// opened with a [`Skipping`] in `Create` mode.
    pub fn rechoose(&self, spec: &TorrentSpec, skipped: Vec<bool>) -> Result<Storage, NetError> {
        let parts = match (&self.parts_path, self.pool.mode) {
            (Some(p), OpenMode::Create) => p.clone(),
            _ => {
                return Err(NetError::Fatal(
                    "files can be chosen only for a download opened with a parts file".into(),
                ));
            }
        };
        self.sync_data()?;
        Storage::open_skipping(
            &self.root,
            spec,
            OpenMode::Create,
            Some(&Skipping { skipped, parts }),
        )
    }

    /// Marks the skipped files not on disk as kept in the parts file, and
    /// opens it if any is (or if it exists: bytes to move out).
    fn open_parts(&mut self, sk: &Skipping) -> Result<(), NetError> {
        for (i, f) in self.files.iter_mut().enumerate() {
            let skipped = sk.skipped.get(i).copied().unwrap_or(false)
                && !f.attr.pad
                && f.attr.symlink.is_none()
                && f.length > 0;
            if skipped && holds_no_data(&f.path) {
                // Created sparse by an earlier start and never written
                // (skipped after it was added): nothing to lose.
                std::fs::remove_file(&f.path).map_err(|e| io_err(&f.path, e))?;
                f.had_data = false;
            }
            f.in_parts = skipped && std::fs::symlink_metadata(&f.path).is_err();
        }
        let slots = shared_pieces(&self.files, &self.lengths);
        // Only a skipped file that shares a piece needs the parts file.
        let needed = self.needs_parts(&slots);
        if !needed && !sk.parts.exists() {
            return Ok(());
        }
        if let Some(dir) = sk.parts.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&sk.parts)
            .map_err(|e| io_err(&sk.parts, e))?;
        let len = file.metadata().map_err(|e| io_err(&sk.parts, e))?.len();
        let want = slots.len() as u64 * u64::from(self.lengths.piece_length());
        if len < want {
            file.set_len(want).map_err(|e| io_err(&sk.parts, e))?;
        }
        let had_data = len > 0;
        for f in self.files.iter_mut().filter(|f| f.in_parts) {
            f.had_data = had_data;
        }
        self.parts = Some(PartsFile {
            path: sk.parts.clone(),
            slots,
            file,
            dirty: AtomicBool::new(false),
        });
        Ok(())
    }

    /// Moves the bytes of wanted files out of the parts file: a file wanted
    /// again takes its shared bytes back; the parts file is deleted once no
    /// file is in it. Byte by byte, where the file reads zero and the parts
    /// file does not: both hold only bytes of verified pieces or holes, so
    /// this is right whatever a kill interrupted (the file created and
    /// nothing moved, a torn move), and writes nothing when all is moved.
    /// Each file written is synced before the parts file can go.
    fn take_from_parts(&mut self) -> Result<(), NetError> {
        let Some(parts) = &self.parts else {
            return Ok(());
        };
        let pl = u64::from(self.lengths.piece_length());
        let (mut kept, mut here) = (Vec::new(), Vec::new());
        let mut written = Vec::new();
        for (i, f) in self.files.iter().enumerate() {
            if f.attr.pad || f.in_parts || f.attr.symlink.is_some() || f.length == 0 {
                continue;
            }
            let end = f.start + f.length;
            let (first, last) = (f.start / pl, (end - 1) / pl);
            let mut file: Option<File> = None;
            for piece in [first, last]
                .into_iter()
                .take(if first == last { 1 } else { 2 })
            {
                let Ok(k) = parts.slots.binary_search(&(piece as u32)) else {
                    continue;
                };
                let lo = f.start.max(piece * pl);
                let hi = end.min((piece + 1) * pl);
                kept.resize((hi - lo) as usize, 0);
                parts
                    .file
                    .read_exact_at(&mut kept, k as u64 * pl + (lo - piece * pl))
                    .map_err(|e| io_err(&parts.path, e))?;
                if kept.iter().all(|&b| b == 0) {
                    continue; // a hole: nothing kept for this file
                }
                let file = match &mut file {
                    Some(file) => file,
                    None => file.insert(
                        OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(&f.path)
                            .map_err(|e| io_err(&f.path, e))?,
                    ),
                };
                here.resize(kept.len(), 0);
                file.read_exact_at(&mut here, lo - f.start)
                    .map_err(|e| io_err(&f.path, e))?;
                let mut changed = false;
                for (h, &k) in here.iter_mut().zip(&kept) {
                    if *h == 0 && k != 0 {
                        *h = k;
                        changed = true;
                    }
                }
                if changed {
                    file.write_all_at(&here, lo - f.start)
                        .map_err(|e| io_err(&f.path, e))?;
                    if written.last() != Some(&i) {
                        written.push(i);
                    }
                }
            }
            if written.last() == Some(&i)
                && let Some(file) = &file
            {
                file.sync_data().map_err(|e| io_err(&f.path, e))?;
                tracing::info!(file = %f.path.display(), "bytes moved out of the parts file");
            }
        }
        for i in written {
            self.files[i].had_data = true;
        }
        if !self.needs_parts(&parts.slots) {
            let path = parts.path.clone();
            self.parts = None;
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path, e)),
            }
        }
        Ok(())
    }

    /// Whether a file kept in the parts file shares one of the `slots` pieces.
    fn needs_parts(&self, slots: &[u32]) -> bool {
        let pl = u64::from(self.lengths.piece_length());
        self.files.iter().filter(|f| f.in_parts).any(|f| {
            [f.start / pl, (f.start + f.length - 1) / pl]
                .iter()
                .any(|&p| slots.binary_search(&(p as u32)).is_ok())
        })
    }

    /// Where in the parts file the bytes of `span` (of a file kept there,
    /// inside one piece) live; none if its piece has no slot.
    fn parts_offset(&self, f: &StoredFile, span: &Span) -> Option<u64> {
        let parts = self.parts.as_ref()?;
        let pl = u64::from(self.lengths.piece_length());
        let at = f.start + span.offset;
        let piece = at / pl;
        let k = parts
            .slots
            .binary_search(&u32::try_from(piece).ok()?)
            .ok()?;
        Some(k as u64 * pl + (at - piece * pl))
    }

    fn parts_span(&self, f: &StoredFile, span: &Span) -> Result<(&PartsFile, u64), NetError> {
        match (self.parts.as_ref(), self.parts_offset(f, span)) {
            (Some(p), Some(off)) => Ok((p, off)),
            _ => Err(io_err(
                &f.path,
                io::Error::other("a skipped file's bytes outside any shared piece: not stored"),
            )),
        }
    }

    /// Whether file `index` is skipped and kept in the parts file.
    pub fn is_in_parts(&self, index: usize) -> bool {
        self.files.get(index).is_some_and(|f| f.in_parts)
    }

    /// The parts file, if one is open.
    pub fn parts_path(&self) -> Option<&Path> {
        self.parts.as_ref().map(|p| p.path.as_path())
    }

    pub fn lengths(&self) -> &Lengths {
        &self.lengths
    }

    /// Whether any file held data before we opened it (then a check is worth it).
    pub fn has_existing_data(&self) -> bool {
        self.files.iter().any(|f| f.had_data)
    }

    /// Handles open now (at most [`FILE_HANDLES_MAX`]).
    pub fn open_handles(&self) -> usize {
        self.pool.open_count()
    }

    /// The file spans of the torrent byte range `start..start + len`, in
    /// order, skipping empty files (pad files included: see
    /// [`Storage::is_pad`]).
    pub fn spans(&self, start: u64, len: u64) -> Vec<Span> {
        layout::spans(&self.files, start, len)
            .map(|s| Span {
                file: s.file_index,
                offset: s.offset_in_file,
                len: s.len as usize,
            })
            .collect()
    }

    /// The torrent's bytes without its pad files (what progress counts).
    pub fn real_total(&self) -> u64 {
        let pads: u64 = self
            .files
            .iter()
            .filter(|f| f.attr.pad)
            .map(|f| f.length)
            .sum();
        self.lengths.total_length() - pads
    }

    /// The bytes of `piece` that are not in pad files.
    fn real_bytes_of(&self, piece: ValidPieceIndex) -> u64 {
        let start = self.lengths.piece_offset(piece);
        layout::spans(&self.files, start, u64::from(self.lengths.piece_len(piece)))
            .filter(|s| !self.files[s.file_index].attr.pad)
            .map(|s| s.len)
            .sum()
    }

    /// Whether file `index` is a BEP 47 pad (virtual zeros).
    pub fn is_pad(&self, index: usize) -> bool {
        self.files.get(index).is_some_and(|f| f.attr.pad)
    }

    fn piece_spans(&self, piece: ValidPieceIndex) -> Vec<Span> {
        let start = self.lengths.piece_offset(piece);
        self.spans(start, u64::from(self.lengths.piece_len(piece)))
    }

    fn handle(&self, index: usize) -> Result<Arc<File>, NetError> {
        let f = &self.files[index];
        self.pool.get(index, f).map_err(|e| io_err(&f.path, e))
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
    /// the received blocks (no copy into a piece buffer). Pad spans are
    /// skipped: their bytes were hashed, never stored.
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
            if f.attr.pad {
                continue;
            }
            if f.in_parts {
                let (parts, off) = self.parts_span(f, &span)?;
                parts.dirty.store(true, Ordering::Relaxed);
                pwrite_all_vectored(&parts.file, &mut slices, off)
                    .map_err(|e| io_err(&parts.path, e))?;
                continue;
            }
            let file = self.handle(span.file)?;
            f.dirty.store(true, Ordering::Relaxed);
            pwrite_all_vectored(&file, &mut slices, span.offset).map_err(|e| io_err(&f.path, e))?;
            let unstarted = f.unstarted.fetch_add(span.len as u64, Ordering::Relaxed);
            if unstarted + span.len as u64 >= WRITEBACK_START_BYTES {
                f.unstarted.store(0, Ordering::Relaxed);
                self.writebacks.fetch_add(1, Ordering::Relaxed);
                writeback::start(&file);
            }
        }
        Ok(())
    }

    /// How many times a write started its file's write-back
    /// ([`WRITEBACK_START_BYTES`]).
    pub fn writebacks_started(&self) -> u64 {
        self.writebacks.load(Ordering::Relaxed)
    }

    /// The engine's `ReadBlock` job.
    pub fn read_block(&self, block: BlockInfo) -> Result<Bytes, NetError> {
        let start = self.lengths.piece_offset(block.piece) + u64::from(block.offset);
        // A recycled buffer: no page faults or zeroing a block.
        let mut buf = crate::blocks::buffer(block.length as usize);
        self.read_range(start, &mut buf)?;
        Ok(crate::blocks::freeze(buf))
    }

    /// Reads `buf.len()` bytes at torrent offset `start` (pads read as
    /// zeros). A file shorter than the torrent says is an `UnexpectedEof`
    /// error.
    fn read_range(&self, start: u64, buf: &mut [u8]) -> Result<(), NetError> {
        let mut at = 0usize;
        for span in self.spans(start, buf.len() as u64) {
            let f = &self.files[span.file];
            let dst = &mut buf[at..at + span.len];
            if f.attr.pad {
                dst.fill(0);
            } else if f.in_parts {
                let (parts, off) = self.parts_span(f, &span)?;
                parts
                    .file
                    .read_exact_at(dst, off)
                    .map_err(|e| io_err(&parts.path, e))?;
            } else {
                let file = self.handle(span.file)?;
                file.read_exact_at(dst, span.offset)
                    .map_err(|e| io_err(&f.path, e))?;
            }
            at += span.len;
        }
        Ok(())
    }

    /// The SHA-1 of the piece on disk, read in [`HASH_CHUNK_LEN`] chunks.
    fn hash_piece(&self, piece: ValidPieceIndex, buf: &mut Vec<u8>) -> Result<[u8; 20], NetError> {
        let start = self.lengths.piece_offset(piece);
        let len = u64::from(self.lengths.piece_len(piece));
        let mut hasher = Sha1::new();
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(HASH_CHUNK_LEN as u64) as usize;
            buf.resize(n, 0);
            self.read_range(start + done, buf)?;
            hasher.update(&buf[..]);
            done += n as u64;
        }
        Ok(hasher.finalize().into())
    }

    /// Whether the piece on disk matches its hash (false on read errors).
    pub fn check_piece(&self, piece: ValidPieceIndex, buf: &mut Vec<u8>) -> bool {
        self.hash_piece(piece, buf)
            .is_ok_and(|d| d == self.piece_hashes[piece.as_usize()])
    }

    /// The one parallel piece loop (module docs): `job` runs once per piece
    /// on up to `threads` threads, with a buffer per thread; an `Err` stops
    /// every thread and is returned (the first one). `Some` results are
    /// collected, in no particular order.
    fn each_piece<T: Send>(
        &self,
        threads: usize,
        job: &PieceJob<'_, T>,
    ) -> Result<Vec<(u32, T)>, NetError> {
        let threads = threads.clamp(1, (self.lengths.num_pieces() as usize).max(1));
        let next = AtomicU32::new(0);
        let failed = AtomicBool::new(false);
        let results: Vec<Result<Vec<(u32, T)>, NetError>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut out = Vec::new();
                        let mut buf = Vec::new();
                        while !failed.load(Ordering::Relaxed) {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(piece) = self.lengths.validate_piece_index(i) else {
                                break;
                            };
                            match job(piece, &mut buf) {
                                Ok(Some(t)) => out.push((i, t)),
                                Ok(None) => {}
                                Err(e) => {
                                    failed.store(true, Ordering::Relaxed);
                                    return Err(e);
                                }
                            }
                        }
                        Ok(out)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut all = Vec::new();
        for r in results {
            all.extend(r?);
        }
        Ok(all)
    }

    /// The SHA-1 of every piece, in order, on `threads` threads (`swarm
    /// create`). `progress(bytes)` is called after each piece, from the
    /// worker threads. A file that cannot be read, or that changed size
    /// since it was listed, is an error.
    pub fn piece_hashes(
        &self,
        threads: usize,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<[u8; 20]>, NetError> {
        let found = self.each_piece(threads, &|piece, buf| {
            let h = self.hash_piece(piece, buf).map_err(|e| match e {
                NetError::Storage { path, error }
                    if error.kind() == io::ErrorKind::UnexpectedEof =>
                {
                    NetError::Storage {
                        path,
                        error: io::Error::other("shrank while it was being hashed"),
                    }
                }
                e => e,
            })?;
            progress(u64::from(self.lengths.piece_len(piece)));
            Ok(Some(h))
        })?;
        let mut hashes = vec![[0u8; 20]; self.lengths.num_pieces() as usize];
        assert_eq!(found.len(), hashes.len(), "every piece hashed exactly once");
        for (i, h) in found {
            hashes[i as usize] = h;
        }
        Ok(hashes)
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
    /// reported to `progress` (which counts real bytes: pads left out). Nor are pieces that lie wholly in holes of
    /// sparse files (`Storage::may_have_data`): after a crash, the part
    /// of a big download never written costs no reading.
    pub fn check_except(
        &self,
        skip: &Bitfield,
        only_existing: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Bitfield {
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .clamp(1, CHECK_THREADS_MAX);
        let zeros = ZeroPieceHashes::new(&self.lengths);
        let found = self.each_piece(threads, &|piece, buf| {
            let i = piece.get();
            if skip.get(i) {
                return Ok(None);
            }
            let worth = (!only_existing
                || self.piece_spans(piece).iter().all(|s| {
                    let f = &self.files[s.file];
                    f.attr.pad || f.had_data
                }))
                && self.may_have_data(piece, &zeros);
            let ok = worth && self.check_piece(piece, buf);
            progress(self.real_bytes_of(piece));
            Ok(ok.then_some(()))
        });
        let mut have = Bitfield::empty(self.lengths.num_pieces());
        for (i, ()) in found.unwrap_or_default() {
            have.set(i);
        }
        have
    }

    /// Whether `piece` may hold its data: false only if the file system
    /// reports every byte of it as a hole (`SEEK_DATA`; pads count as
    /// holes) and the piece is not all zeros (what a hole reads as: a
    /// written all-zero piece may be stored as a hole by some file systems).
    /// Any doubt — an error, a file system without `SEEK_DATA` support (it
    /// reports all data) — says yes.
    fn may_have_data(&self, piece: ValidPieceIndex, zeros: &ZeroPieceHashes) -> bool {
        if zeros.is_zero_piece(self, piece) {
            return true;
        }
        self.piece_spans(piece).iter().any(|s| {
            let f = &self.files[s.file];
            if f.attr.pad {
                return false;
            }
            if f.in_parts {
                return self.parts_offset(f, s).is_some();
            }
            let Ok(file) = self.handle(s.file) else {
                return true;
            };
            match rustix::fs::seek(&*file, rustix::fs::SeekFrom::Data(s.offset)) {
                Ok(data_at) => data_at < s.offset + s.len as u64,
                Err(rustix::io::Errno::NXIO) => false, // only a hole from here on
                Err(_) => true,
            }
        })
    }

    // ---- for the resume record (see `resume::ResumeStore`) ----

    /// Indexes of the files piece `piece` touches (empty files and pads
    /// never: a pad is never on disk, so nothing about it can change).
    pub fn files_of_piece(&self, piece: u32) -> Vec<usize> {
        self.lengths
            .validate_piece_index(piece)
            .map(|p| {
                self.piece_spans(p)
                    .iter()
                    .filter(|s| !self.files[s.file].attr.pad)
                    .map(|s| s.file)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The metadata of every file, through the handles we read and write
    /// (not the paths: it describes exactly the files our writes went to).
    /// `None` for a pad (virtual: nothing on disk).
    pub fn file_metadata(&self) -> Vec<Option<io::Result<std::fs::Metadata>>> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if f.in_parts {
                    // Its shared bytes are in the parts file: that file's
                    // stamp (a write there untrusts, never trusts); with no
                    // parts file none of its bytes is kept: virtual, as a pad.
                    return self.parts.as_ref().map(|p| p.file.metadata());
                }
                (!f.attr.pad).then(|| {
                    if f.attr.symlink.is_some() {
                        return std::fs::symlink_metadata(&f.path);
                    }
                    self.pool.get(i, f).and_then(|h| h.metadata())
                })
            })
            .collect()
    }

    /// `fdatasync` every file written since the last call: whatever was
    /// written to them so far is on the disk when this returns (an `fsync`
    /// on any handle flushes the file, so one evicted from the pool since is
    /// reopened for it).
    pub fn sync_data(&self) -> Result<(), NetError> {
        if let Some(p) = &self.parts
            && p.dirty.swap(false, Ordering::Relaxed)
            && let Err(e) = p.file.sync_data()
        {
            p.dirty.store(true, Ordering::Relaxed);
            return Err(io_err(&p.path, e));
        }
        for (i, f) in self.files.iter().enumerate() {
            if f.dirty.swap(false, Ordering::Relaxed) {
                let synced = self
                    .handle(i)
                    .and_then(|h| h.sync_data().map_err(|e| io_err(&f.path, e)));
                if let Err(e) = synced {
                    f.dirty.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Whether `path` is a regular file without a byte of data: empty, or all
/// a hole (`SEEK_DATA` finds none). Any doubt (an error, a file system
/// without `SEEK_DATA`, which reports data) says no.
fn holds_no_data(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    if meta.len() == 0 {
        return true;
    }
    let Ok(file) = File::open(path) else {
        return false;
    };
    matches!(
        rustix::fs::seek(&file, rustix::fs::SeekFrom::Data(0)),
        Err(rustix::io::Errno::NXIO)
    )
}

/// Refuses, before anything is created, a path the file system would
/// refuse: a component longer than its `NAME_MAX` (asked of the nearest
/// existing folder of `root`), or a whole path of `PATH_MAX` bytes or more.
fn check_paths(root: &Path, files: &[StoredFile]) -> Result<(), NetError> {
    let existing = root
        .ancestors()
        .find(|a| a.as_os_str().is_empty() || a.is_dir())
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .unwrap_or(Path::new("."));
    let name_max = rustix::fs::statvfs(existing)
        .map(|s| s.f_namemax)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(NAME_MAX_BYTES_DEFAULT);
    for f in files.iter().filter(|f| !f.attr.pad) {
        let bytes = f.path.as_os_str().len();
        if bytes >= PATH_MAX_BYTES {
            return Err(NetError::PathRefused {
                path: f.path.clone(),
                why: format!(
                    "the path is {bytes} bytes long; the file system takes at most {}",
                    PATH_MAX_BYTES - 1
                ),
            });
        }
        if let Some(long) = f
            .path
            .components()
            .map(|c| c.as_os_str())
            .find(|c| c.len() as u64 > name_max)
        {
            return Err(NetError::PathRefused {
                path: f.path.clone(),
                why: format!(
                    "a name in it is {} bytes long ({}...); the file system takes at most {name_max}",
                    long.len(),
                    long.to_string_lossy().chars().take(24).collect::<String>()
                ),
            });
        }
    }
    Ok(())
}

/// Creates one file of a download (`Create`): folders, the file at its
/// final size (sparse; a longer one truncated, with a log line), the x bit,
/// or the symlink.
fn create_file(root: &Path, spec: &TorrentSpec, f: &StoredFile) -> Result<(), NetError> {
    if let Some(parent) = f.path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    if let Some(target) = &f.attr.symlink {
        return create_symlink(root, spec, f, target);
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&f.path)
        .map_err(|e| io_err(&f.path, e))?;
    let len = file.metadata().map_err(|e| io_err(&f.path, e))?.len();
    if len != f.length {
        if len > f.length {
            tracing::info!(
                path = %f.path.display(),
                from = len,
                to = f.length,
                "a file longer than the torrent says: truncated to its size before the check"
            );
        }
        // Growing is sparse: no block is allocated until written.
        file.set_len(f.length).map_err(|e| io_err(&f.path, e))?;
    }
    if f.attr.executable {
        use std::os::unix::fs::PermissionsExt;
        let meta = file.metadata().map_err(|e| io_err(&f.path, e))?;
        let mode = meta.permissions().mode();
        // x wherever r is: what `chmod +x` does under a usual umask.
        let x = (mode & 0o444) >> 2;
        file.set_permissions(std::fs::Permissions::from_mode(mode | x))
            .map_err(|e| io_err(&f.path, e))?;
    }
    Ok(())
}

/// A BEP 47 symlink: `target` is relative to the torrent's folder (safe
/// components, checked by the parser), written as a relative link from the
/// link's own folder, so it stays inside the folder wherever it is moved.
fn create_symlink(
    root: &Path,
    spec: &TorrentSpec,
    f: &StoredFile,
    target: &[String],
) -> Result<(), NetError> {
    let rel = f
        .path
        .strip_prefix(root.join(&spec.name))
        .unwrap_or(&f.path);
    let depth = rel.components().count().saturating_sub(1);
    let mut link = PathBuf::new();
    for _ in 0..depth {
        link.push("..");
    }
    link.extend(target);
    match std::fs::symlink_metadata(&f.path) {
        Ok(m) if m.file_type().is_symlink() => {
            if std::fs::read_link(&f.path).is_ok_and(|t| t == link) {
                return Ok(());
            }
            std::fs::remove_file(&f.path).map_err(|e| io_err(&f.path, e))?;
        }
        Ok(_) => {
            return Err(io_err(
                &f.path,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the torrent makes this a symlink, but a file or folder is there",
                ),
            ));
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(&link, &f.path).map_err(|e| io_err(&f.path, e))
}

/// Checks one file of a seed (`Existing`) or of `create` (`ReadOnly`): it
/// must be there and not longer than the torrent says (shorter ones fail
/// their pieces in the check).
fn existing_file(f: &StoredFile) -> Result<(), NetError> {
    if f.attr.symlink.is_some() {
        return Ok(()); // nothing to read: a link holds no data
    }
    let meta = match std::fs::metadata(&f.path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(NetError::MissingFile {
                path: f.path.clone(),
            });
        }
        Err(e) => return Err(io_err(&f.path, e)),
    };
    if meta.len() > f.length {
        return Err(NetError::LongerFile {
            path: f.path.clone(),
            found: meta.len(),
            expected: f.length,
        });
    }
    Ok(())
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
/// Starting a file's write-back without waiting for it (Linux's
/// `sync_file_range`; neither std nor rustix has it).
mod writeback {
    use std::fs::File;

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub(super) fn start(file: &File) {
        use std::os::fd::AsRawFd;
        // SAFETY: `sync_file_range` reads no memory of ours; the descriptor
        // is borrowed from a `File` that outlives the call. Offset 0 and
        // length 0 mean the whole file. Its result is advice only (the
        // resume record's `fdatasync` is what makes data durable), so an
        // error is ignored.
        let _ =
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn start(_file: &File) {}
}

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
            .map(|(i, &length)| FileSpec::new(format!("t/d{}/f{i}", i % 2), length))
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
    fn every_writeback_start_bytes_written_to_a_file_start_its_write_back() {
        // Two files: 40 MiB then 8 MiB, 1 MiB pieces written out of order.
        let mib = 1 << 20;
        let d = data(48 * mib);
        let spec = spec(&[40 * mib as u64, 8 * mib as u64], mib as u32, &d);
        let dir = tempdir();
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        let order: Vec<usize> = (0..48).map(|i| (i * 29) % 48).collect();
        let mut started = Vec::new();
        for &i in &order {
            let vp = spec.lengths.validate_piece_index(i as u32).unwrap();
            let done = s.verify_and_write(vp, &blocks_of(&d[i * mib..(i + 1) * mib]));
            assert_eq!(
                done,
                StorageDone::PieceVerified {
                    piece: vp,
                    ok: true
                }
            );
            started.push(s.writebacks_started());
        }
        // The first file starts its write-back at its 16th and 32nd MiB
        // written; the second, with 8 MiB, never does.
        let first_file_writes: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|&(_, &p)| p < 40)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(s.writebacks_started(), 2);
        assert_eq!(started[first_file_writes[14]], 0);
        assert_eq!(started[first_file_writes[15]], 1);
        assert_eq!(started[first_file_writes[31]], 2);
        // Starting write-back changes nothing that is read.
        s.sync_data().unwrap();
        drop(s);
        let s = Storage::open(dir.path(), &spec, OpenMode::Existing).unwrap();
        assert!(s.check(false, &|_| {}).is_all_set());
        assert_eq!(
            std::fs::read(dir.path().join("t/d0/f0")).unwrap(),
            &d[..40 * mib]
        );
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
            Err(NetError::MissingFile { .. })
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

    /// A libtorrent-style layout: `a` (10 B), pad to 16, `b` (20 B), pad to
    /// 48, `c` (5 B); pieces of 16 B, so piece 0 ends in a pad, piece 2
    /// holds the tail of `b` then a pad, piece 3 is `c`.
    fn padded_spec(d: &[u8]) -> TorrentSpec {
        let mut s = spec(&[10, 6, 20, 12, 5], 16, d);
        for i in [1, 3] {
            s.files[i].path = PathBuf::from(format!("t/.pad/{}", s.files[i].length));
            s.files[i].attr.pad = true;
        }
        s
    }

    fn padded_data() -> Vec<u8> {
        let mut d = data(53);
        d[10..16].fill(0);
        d[36..48].fill(0);
        d
    }

    #[test]
    fn pad_files_are_never_created_read_as_zeros_and_are_not_written() {
        let d = padded_data();
        let spec = padded_spec(&d);
        let dir = tempdir();
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        assert!(!dir.path().join("t/.pad").exists(), "no pad folder");
        for (i, piece) in d.chunks(16).enumerate() {
            let vp = spec.lengths.validate_piece_index(i as u32).unwrap();
            assert_eq!(
                s.verify_and_write(vp, &[Bytes::copy_from_slice(piece)]),
                StorageDone::PieceVerified {
                    piece: vp,
                    ok: true
                }
            );
        }
        assert!(!dir.path().join("t/.pad").exists(), "still no pad folder");
        assert_eq!(std::fs::read(dir.path().join("t/d0/f0")).unwrap(), &d[..10]);
        assert_eq!(
            std::fs::read(dir.path().join("t/d0/f2")).unwrap(),
            &d[16..36]
        );
        assert_eq!(std::fs::read(dir.path().join("t/d0/f4")).unwrap(), &d[48..]);
        // A block across a pad reads back with the pad's zeros.
        let b = spec.lengths.validate_block(0, 0, 16).unwrap();
        assert_eq!(&s.read_block(b).unwrap()[..], &d[..16]);
        assert_eq!(
            s.files_of_piece(2),
            vec![2],
            "pads are not files of a piece"
        );
        drop(s);
        // A seeder (libtorrent's data: no pad files) checks out whole.
        let s = Storage::open(dir.path(), &spec, OpenMode::Existing).unwrap();
        assert!(s.check(false, &|_| {}).is_all_set());
        let meta = s.file_metadata();
        assert!(meta[1].is_none() && meta[3].is_none());
        assert!(meta[0].as_ref().unwrap().is_ok());
    }

    #[test]
    fn two_jobs_opening_one_file_at_once_keep_the_pool_full() {
        let dir = tempdir();
        let file = || Arc::new(File::create(dir.path().join("f")).unwrap());
        let mut st = PoolState::default();
        for i in 0..FILE_HANDLES_MAX {
            st.tick += 1;
            st.insert(i, file());
        }
        // Both jobs missed file X under the lock and opened it; each then
        // keeps its handle.
        st.tick += 1;
        let first = st.insert(FILE_HANDLES_MAX, file());
        let second = st.insert(FILE_HANDLES_MAX, file());
        assert!(Arc::ptr_eq(&first, &second), "one handle kept for X");
        assert_eq!(st.open.len(), FILE_HANDLES_MAX, "one eviction, not two");
        assert!(!st.open.contains_key(&0), "the least recently used went");
    }

    #[test]
    fn any_number_of_files_through_a_bounded_pool_of_handles() {
        let n = 3 * FILE_HANDLES_MAX + 7;
        let sizes: Vec<u64> = (0..n as u64).map(|i| 1 + i % 5).collect();
        let total: u64 = sizes.iter().sum();
        let d = data(total as usize);
        let spec = spec(&sizes, 16, &d);
        let dir = tempdir();
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        assert_eq!(s.open_handles(), 0, "nothing held open after creating");
        for (i, piece) in d.chunks(16).enumerate() {
            let vp = spec.lengths.validate_piece_index(i as u32).unwrap();
            s.verify_and_write(vp, &blocks_of(piece));
            assert!(s.open_handles() <= FILE_HANDLES_MAX);
        }
        s.sync_data().unwrap();
        drop(s);
        let s = Storage::open(dir.path(), &spec, OpenMode::Existing).unwrap();
        assert!(s.check(false, &|_| {}).is_all_set());
        assert_eq!(s.open_handles(), FILE_HANDLES_MAX);
    }

    #[test]
    fn a_longer_file_is_truncated_by_a_download_and_refused_by_a_seed() {
        let d = data(40_000);
        let spec = spec(&[40_000], 16 * 1024, &d);
        let dir = tempdir();
        let path = dir.path().join("t/d0/f0");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut longer = d.clone();
        longer.extend_from_slice(&[9; 5000]);
        std::fs::write(&path, &longer).unwrap();
        match Storage::open(dir.path(), &spec, OpenMode::Existing) {
            Err(NetError::LongerFile {
                path: p,
                found,
                expected,
            }) => {
                assert_eq!((p, found, expected), (path.clone(), 45_000, 40_000));
            }
            other => panic!("expected LongerFile, got {:?}", other.err()),
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            longer,
            "the seed left it untouched"
        );
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            d,
            "truncated to the torrent's size"
        );
        assert!(s.check(true, &|_| {}).is_all_set());
    }

    #[test]
    fn a_path_the_file_system_refuses_fails_before_anything_is_created() {
        let d = data(100);
        let mut spec = spec(&[50, 50], 16, &d);
        spec.files[1].path = PathBuf::from(format!("t/{}", "n".repeat(300)));
        let dir = tempdir();
        let err = Storage::open(dir.path(), &spec, OpenMode::Create)
            .err()
            .expect("refused");
        assert!(matches!(err, NetError::PathRefused { .. }), "{err}");
        assert!(err.to_string().contains("300 bytes"), "{err}");
        assert!(!dir.path().join("t").exists(), "nothing created");
        let deep: PathBuf = (0..20).map(|_| "d".repeat(250)).collect();
        spec.files[1].path = PathBuf::from("t").join(deep);
        let err = Storage::open(dir.path(), &spec, OpenMode::Create)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("the path is"), "{err}");
        assert!(!dir.path().join("t").exists(), "nothing created");
    }

    #[test]
    fn executable_files_get_the_x_bit_and_symlinks_stay_inside() {
        use std::os::unix::fs::PermissionsExt;
        let d = data(20);
        let mut spec = spec(&[10, 10, 0], 16, &d);
        spec.files[1].attr.executable = true;
        spec.files[2].path = PathBuf::from("t/sub/link");
        spec.files[2].attr.symlink = Some(vec!["d1".into(), "f1".into()]);
        let dir = tempdir();
        let s = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        let mode = std::fs::metadata(dir.path().join("t/d1/f1"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111 & ((mode & 0o444) >> 2));
        assert_ne!(mode & 0o100, 0, "owner may run it");
        let mode0 = std::fs::metadata(dir.path().join("t/d0/f0"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode0 & 0o111, 0);
        let link = dir.path().join("t/sub/link");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from("../d1/f1")
        );
        let vp = spec.lengths.validate_piece_index(0).unwrap();
        s.verify_and_write(vp, &blocks_of(&d[..16]));
        let vp = spec.lengths.validate_piece_index(1).unwrap();
        s.verify_and_write(vp, &blocks_of(&d[16..]));
        assert_eq!(std::fs::read(&link).unwrap(), &d[10..20]);
        // Opening again keeps the link.
        drop(s);
        Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from("../d1/f1")
        );
    }

    fn reference_hashes(all: &[u8], piece: usize) -> Vec<[u8; 20]> {
        all.chunks(piece).map(sha1).collect()
    }

    #[test]
    fn piece_hashes_span_files_and_skip_empty_ones() {
        let dir = tempdir();
        let parts = [
            data(1000),
            vec![],
            data(1),
            data(4096),
            vec![],
            vec![],
            data(HASH_CHUNK_LEN + 5000),
            vec![],
        ];
        let files: Vec<FileSpec> = parts
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, b).unwrap();
                FileSpec::new(path, b.len() as u64)
            })
            .collect();
        let all = parts.concat();
        for piece in [7u32, 1024, 4096, 10_097, 16384, 1 << 20] {
            let s = Storage::for_hashing(&files, piece).unwrap();
            for threads in [1, 2, 5] {
                let seen = std::sync::atomic::AtomicU64::new(0);
                let got = s
                    .piece_hashes(threads, &|n| {
                        seen.fetch_add(n, Ordering::Relaxed);
                    })
                    .unwrap();
                assert_eq!(
                    got,
                    reference_hashes(&all, piece as usize),
                    "piece {piece} threads {threads}"
                );
                assert_eq!(seen.load(Ordering::Relaxed), all.len() as u64);
            }
        }
    }

    #[test]
    fn hashing_a_file_that_changed_size_is_an_error() {
        let dir = tempdir();
        let path = dir.path().join("a");
        std::fs::write(&path, data(5000)).unwrap();
        for listed in [6000u64, 4000] {
            let s = Storage::for_hashing(&[FileSpec::new(&path, listed)], 4096).unwrap();
            let err = s.piece_hashes(1, &|_| {}).unwrap_err();
            assert!(err.to_string().contains("changed size"), "{err}");
        }
    }
    fn skipping(dir: &Path, skipped: &[usize], n: usize) -> Skipping {
        Skipping {
            skipped: (0..n).map(|i| skipped.contains(&i)).collect(),
            parts: dir.join("state/t.parts"),
        }
    }

    fn write_pieces(s: &Storage, spec: &TorrentSpec, d: &[u8], pieces: &[u32]) {
        let pl = spec.lengths.piece_length() as usize;
        for &i in pieces {
            let vp = spec.lengths.validate_piece_index(i).unwrap();
            let piece = &d[i as usize * pl..((i as usize + 1) * pl).min(d.len())];
            assert_eq!(
                s.verify_and_write(vp, &blocks_of(piece)),
                StorageDone::PieceVerified {
                    piece: vp,
                    ok: true
                }
            );
        }
    }

    #[test]
    fn a_piece_spanning_wanted_skipped_wanted_files_keeps_the_skipped_bytes_in_the_parts_file() {
        use swarm_engine::Priority::{Normal, Skip};
        // f0 [0,10) f1 [10,14) f2 [14,24) f3 [24,64), pieces of 16: piece 0
        // is f0|f1|f2, piece 1 f2|f3, pieces 2 and 3 f3 alone.
        let d = data(64);
        let spec = spec(&[10, 4, 10, 40], 16, &d);
        let dir = tempdir();
        let file = |i: usize| dir.path().join(&spec.files[i].path);
        let parts = dir.path().join("state/t.parts");
        let prio = [Normal, Skip, Normal, Skip];
        assert_eq!(
            spec.piece_priorities(&prio),
            vec![Normal, Normal, Skip, Skip]
        );

        let s = Storage::open_skipping(
            dir.path(),
            &spec,
            OpenMode::Create,
            Some(&skipping(dir.path(), &[1, 3], 4)),
        )
        .unwrap();
        assert!(
            !file(1).exists() && !file(3).exists(),
            "skipped files are not created"
        );
        assert!(s.is_in_parts(1) && s.is_in_parts(3) && !s.is_in_parts(0));
        write_pieces(&s, &spec, &d, &[0, 1]);
        assert!(!file(1).exists() && !file(3).exists(), "nor written");
        assert_eq!(std::fs::read(file(0)).unwrap(), &d[0..10]);
        assert_eq!(std::fs::read(file(2)).unwrap(), &d[14..24]);
        assert!(parts.exists(), "the parts file holds the shared bytes");
        // Read back (uploads, checks) through the parts file.
        for i in 0..2u32 {
            let vp = spec.lengths.validate_piece_index(i).unwrap();
            let block = spec.lengths.block(vp, 0).unwrap();
            let got = s.read_block(block).unwrap();
            assert_eq!(&got[..], &d[i as usize * 16..][..16]);
        }
        let have: Vec<u32> = s.check(false, &|_| {}).iter_ones().collect();
        assert_eq!(have, vec![0, 1]);
        // The resume record can stamp every file (the parts file's stamp).
        assert!(
            s.file_metadata()
                .iter()
                .all(|m| m.as_ref().is_some_and(|m| m.is_ok()))
        );
        s.sync_data().unwrap();
        drop(s);

        // f1 wanted again: created, its bytes moved out of the parts file.
        let s = Storage::open_skipping(
            dir.path(),
            &spec,
            OpenMode::Create,
            Some(&skipping(dir.path(), &[3], 4)),
        )
        .unwrap();
        assert_eq!(std::fs::read(file(1)).unwrap(), &d[10..14]);
        assert!(!file(3).exists() && parts.exists());
        let have: Vec<u32> = s.check(true, &|_| {}).iter_ones().collect();
        assert_eq!(have, vec![0, 1], "no verified piece lost");
        drop(s);

        // Everything wanted: f3 takes its first bytes, the parts file goes.
        let s = Storage::open_skipping(
            dir.path(),
            &spec,
            OpenMode::Create,
            Some(&skipping(dir.path(), &[], 4)),
        )
        .unwrap();
        assert_eq!(std::fs::metadata(file(3)).unwrap().len(), 40);
        assert_eq!(&std::fs::read(file(3)).unwrap()[..8], &d[24..32]);
        assert!(!parts.exists(), "no file left in the parts file");
        let have: Vec<u32> = s.check(true, &|_| {}).iter_ones().collect();
        assert_eq!(have, vec![0, 1]);
        write_pieces(&s, &spec, &d, &[2, 3]);
        assert!(s.check(false, &|_| {}).is_all_set());
    }

    #[test]
    fn rechoosing_files_of_an_open_storage_moves_bytes_without_losing_a_verified_piece() {
        // As above: piece 0 is f0|f1|f2, piece 1 f2|f3, pieces 2, 3 f3 alone.
        let d = data(64);
        let spec = spec(&[10, 4, 10, 40], 16, &d);
        let dir = tempdir();
        let file = |i: usize| dir.path().join(&spec.files[i].path);
        let parts = dir.path().join("state/t.parts");
        let sk = skipping(dir.path(), &[], 4);
        // Everything wanted at first: every file created (sparse).
        let s = Storage::open_skipping(dir.path(), &spec, OpenMode::Create, Some(&sk)).unwrap();
        assert!(file(1).exists() && file(3).exists());
        write_pieces(&s, &spec, &d, &[0]);
        // f1 (written) and f3 (holds no data yet) skipped while running.
        let s = s.rechoose(&spec, sk_vec(&[1, 3], 4)).unwrap();
        assert!(file(1).exists(), "a skipped file with data keeps it");
        assert!(!file(3).exists(), "a skipped file without data goes");
        assert!(s.is_in_parts(3) && !s.is_in_parts(1));
        // Piece 1's share of f3 goes to the parts file.
        write_pieces(&s, &spec, &d, &[1]);
        assert!(parts.exists() && !file(3).exists());
        let have: Vec<u32> = s.check(false, &|_| {}).iter_ones().collect();
        assert_eq!(have, vec![0, 1]);
        // f3 wanted again: created with its bytes of piece 1; no parts file.
        let s = s.rechoose(&spec, sk_vec(&[], 4)).unwrap();
        assert_eq!(&std::fs::read(file(3)).unwrap()[..8], &d[24..32]);
        assert!(!parts.exists(), "no file left in the parts file");
        let have: Vec<u32> = s.check(true, &|_| {}).iter_ones().collect();
        assert_eq!(have, vec![0, 1], "no verified piece lost");
        write_pieces(&s, &spec, &d, &[2, 3]);
        assert!(s.check(false, &|_| {}).is_all_set());
        // A storage opened without a parts file cannot choose files.
        let plain = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        assert!(plain.rechoose(&spec, sk_vec(&[1], 4)).is_err());
    }

    #[test]
    fn a_kill_while_a_file_takes_its_bytes_from_the_parts_file_loses_no_verified_piece() {
        // Piece 0 is f0|f1|f2, piece 1 f2|f3, pieces 2, 3 f3 alone; f1 and
        // f3 skipped, pieces 0 and 1 verified: f1's share of piece 0 and
        // f3's of piece 1 are in the parts file.
        let d = data(64);
        let spec = spec(&[10, 4, 10, 40], 16, &d);
        let file = |dir: &Path, i: usize| dir.join(&spec.files[i].path);
        // Where a kill can leave a file wanted again (the daemon's record
        // says wanted, the storage had begun): created at its size and
        // nothing moved yet, or part of its bytes moved (a torn write).
        // A file left as the kill found it: created at its length, and
        // with `torn` the first 3 bytes of its share of a shared piece
        // (`share`) moved.
        let kill = |f: &Path, len: u64, share: &[u8], torn: bool| {
            let file = std::fs::File::create(f).unwrap();
            file.set_len(len).unwrap();
            if torn {
                file.write_all_at(&share[..3], 0).unwrap();
            }
        };
        let kills = [
            ("created, nothing moved", false),
            ("created, 3 of its shared bytes moved", true),
        ];
        for (what, torn) in kills {
            let dir = tempdir();
            let root = dir.path();
            let s = Storage::open_skipping(
                root,
                &spec,
                OpenMode::Create,
                Some(&skipping(root, &[1, 3], 4)),
            )
            .unwrap();
            write_pieces(&s, &spec, &d, &[0, 1]);
            s.sync_data().unwrap();
            drop(s);
            assert!(!file(root, 1).exists() && !file(root, 3).exists());
            std::fs::create_dir_all(file(root, 3).parent().unwrap()).unwrap();
            kill(&file(root, 1), 4, &d[10..14], torn);
            kill(&file(root, 3), 40, &d[24..32], torn);
            // The restart: both wanted now.
            let s = Storage::open_skipping(
                root,
                &spec,
                OpenMode::Create,
                Some(&skipping(root, &[], 4)),
            )
            .unwrap();
            let have: Vec<u32> = s.check(true, &|_| {}).iter_ones().collect();
            assert_eq!(have, vec![0, 1], "{what}: no verified piece lost");
            assert_eq!(
                &std::fs::read(file(root, 3)).unwrap()[..8],
                &d[24..32],
                "{what}"
            );
            assert!(
                !root.join("state/t.parts").exists(),
                "{what}: parts file gone"
            );
        }
    }

    fn sk_vec(skipped: &[usize], n: usize) -> Vec<bool> {
        (0..n).map(|i| skipped.contains(&i)).collect()
    }

    #[test]
    fn a_skipped_file_between_pad_files_shares_no_piece_and_needs_no_parts_file() {
        use swarm_engine::Priority::{Normal, Skip};
        // f0 [0,10) pad [10,16) f2 [16,36) pad [36,48) f4 [48,53): what
        // libtorrent's hybrid torrents look like; skipping f2 skips pieces
        // 1 and 2 and shares nothing.
        let d = padded_data();
        let spec = padded_spec(&d);
        assert_eq!(
            spec.piece_priorities(&[Normal, Normal, Skip, Normal, Normal]),
            vec![Normal, Skip, Skip, Normal]
        );
        let dir = tempdir();
        let s = Storage::open_skipping(
            dir.path(),
            &spec,
            OpenMode::Create,
            Some(&skipping(dir.path(), &[2], 5)),
        )
        .unwrap();
        assert!(!dir.path().join(&spec.files[2].path).exists());
        assert!(s.parts_path().is_none() && !dir.path().join("state/t.parts").exists());
        write_pieces(&s, &spec, &d, &[0, 3]);
        let have: Vec<u32> = s.check(false, &|_| {}).iter_ones().collect();
        assert_eq!(have, vec![0, 3]);
        // Virtual, as a pad: no stamp to take, nothing to lose.
        assert!(s.file_metadata()[2].is_none());
        assert_eq!(
            std::fs::read(dir.path().join(&spec.files[4].path)).unwrap(),
            &d[48..53]
        );
    }
}
