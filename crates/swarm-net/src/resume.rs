//! The crash-safe resume record: which pieces of a torrent are verified on
//! disk, and the size and modification time of every file when that was so.
//!
//! On start the session trusts a piece of the record only if every file the
//! piece touches still has exactly the recorded size and mtime
//! ([`trusted_pieces`]); everything else is re-verified (or downloaded). A
//! record that cannot be used at all — corrupt, truncated, another version,
//! another torrent's — is a [`ResumeError`] from [`load`], and the caller
//! treats it exactly like a missing record: no piece is trusted, all are
//! checked. A resume record can make start-up faster, never wrong.
//!
//! # Writing
//! [`ResumeStore::save`] (`store.rs`), driven by the session's
//! `ResumeSaver` (`saver.rs`) at least every [`RESUME_SAVE_INTERVAL`]
//! while pieces complete, and at exit: (1) snapshot the core's `have`
//! bitfield, (2) `sync_data` the files, (3) stat them through the storage's
//! open handles ([`FileStamp::from_metadata`]), (4) [`write_atomically`]. A
//! write that lands after (3) changes a file's mtime, which on the next start
//! only untrusts pieces (safe); a piece already in `have` is never rewritten.
//! These are blocking calls: they run on tokio's blocking pool.
//!
//! # Format
//! A small binary layout, little-endian, ending in the SHA-1 of everything
//! before it:
//! `"SWRESUME"`, version `u32`, info-hash `[u8; 20]`, piece length `u32`,
//! piece count `u32`, bitfield length `u32` + bytes (BEP 3 bit order),
//! file count `u32`, then per file: path length `u32` + UTF-8 path
//! (relative, `/`-separated, as in the metainfo), size `u64`, mtime `i64`
//! (nanoseconds since the Unix epoch). Hand-written rather than JSON or
//! bencode: it is a few fixed fields read only by us (`version` allows
//! change), and the checksum catches what a parser alone would not (a
//! flipped digit in a JSON or bencode size still parses).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use sha1::{Digest, Sha1};
use swarm_engine::{Bitfield, InfoHash};

/// The format version this code writes and reads.
pub const RESUME_VERSION: u32 = 1;
/// First bytes of every record.
pub const RESUME_MAGIC: &[u8; 8] = b"SWRESUME";
/// The driver saves the record at least this often while pieces complete.
pub const RESUME_SAVE_INTERVAL: Duration = Duration::from_secs(30);
/// Largest record file we read, in bytes (a 1 PiB torrent of 16 KiB pieces
/// has an 8 MiB bitfield); a larger file is refused before it is read.
pub const RESUME_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Longest file path in a record, in bytes.
pub const RESUME_PATH_MAX: usize = 4096;

const CHECKSUM_LEN: usize = 20;

/// Why a record cannot be used. Every variant means the same to the
/// caller: start without a record and verify everything.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("resume record io: {0}")]
    Io(#[from] io::Error),
    #[error("resume record corrupt: {0}")]
    Corrupt(&'static str),
    #[error("resume record version {0}, this build reads {RESUME_VERSION}")]
    Version(u32),
    #[error("resume record belongs to another torrent")]
    Foreign,
}

/// A file's size and modification time, by its path in the torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStamp {
    /// Relative, `/`-separated, as in the metainfo.
    pub path: String,
    pub size: u64,
    /// Nanoseconds since the Unix epoch (negative before it).
    pub mtime_ns: i64,
}

impl FileStamp {
    /// Stats `root/path` (`path` as in the torrent, `/`-separated).
    /// `Ok(None)` if the file does not exist. The driver stamps through its
    /// open handles instead; tests stamp files by path.
    #[cfg(test)]
    pub fn of(root: &Path, path: &str) -> io::Result<Option<FileStamp>> {
        let full = path.split('/').fold(root.to_path_buf(), |p, c| p.join(c));
        let meta = match fs::metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        FileStamp::from_metadata(path, &meta).map(Some)
    }

    /// The stamp of `meta` (from `stat` or `fstat`) for the torrent path `path`.
    pub fn from_metadata(path: &str, meta: &fs::Metadata) -> io::Result<FileStamp> {
        let mtime = meta.modified()?;
        let mtime_ns = match mtime.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
        };
        Ok(FileStamp {
            path: path.to_owned(),
            size: meta.len(),
            mtime_ns,
        })
    }
}

/// One torrent's resume state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeRecord {
    pub version: u32,
    pub info_hash: InfoHash,
    pub piece_length: u32,
    pub num_pieces: u32,
    /// Verified pieces, BEP 3 bitfield bytes (`ceil(num_pieces / 8)`, spare bits zero).
    pub have: Vec<u8>,
    /// Every file of the torrent, in metainfo order.
    pub files: Vec<FileStamp>,
}

impl ResumeRecord {
    pub fn new(
        info_hash: InfoHash,
        piece_length: u32,
        have: &Bitfield,
        files: Vec<FileStamp>,
    ) -> Self {
        ResumeRecord {
            version: RESUME_VERSION,
            info_hash,
            piece_length,
            num_pieces: have.len(),
            have: have.as_bytes().to_vec(),
            files,
        }
    }

    /// The verified pieces as recorded (not yet checked against the files).
    pub fn have(&self) -> Result<Bitfield, ResumeError> {
        Bitfield::from_wire(&self.have, self.num_pieces)
            .map_err(|_| ResumeError::Corrupt("bitfield length or spare bits"))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.have.len() + self.files.len() * 48);
        b.extend_from_slice(RESUME_MAGIC);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(self.info_hash.as_bytes());
        b.extend_from_slice(&self.piece_length.to_le_bytes());
        b.extend_from_slice(&self.num_pieces.to_le_bytes());
        put_bytes(&mut b, &self.have);
        put_len(&mut b, self.files.len());
        for f in &self.files {
            put_bytes(&mut b, f.path.as_bytes());
            b.extend_from_slice(&f.size.to_le_bytes());
            b.extend_from_slice(&f.mtime_ns.to_le_bytes());
        }
        let sum = Sha1::digest(&b);
        b.extend_from_slice(&sum);
        b
    }

    /// Decodes a record; any damage is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, ResumeError> {
        let body_len = bytes
            .len()
            .checked_sub(CHECKSUM_LEN)
            .ok_or(ResumeError::Corrupt("too short"))?;
        let (body, sum) = bytes.split_at(body_len);
        if !bytes.starts_with(RESUME_MAGIC) {
            return Err(ResumeError::Corrupt("not a resume record"));
        }
        if Sha1::digest(body).as_slice() != sum {
            return Err(ResumeError::Corrupt(
                "checksum mismatch (truncated or damaged)",
            ));
        }
        let mut r = Reader(&body[RESUME_MAGIC.len()..]);
        let version = r.u32()?;
        if version != RESUME_VERSION {
            return Err(ResumeError::Version(version));
        }
        let info_hash = InfoHash(
            r.take(20)?
                .try_into()
                .map_err(|_| ResumeError::Corrupt("info-hash"))?,
        );
        let piece_length = r.u32()?;
        let num_pieces = r.u32()?;
        let have = r.bytes()?.to_vec();
        let count = r.u32()?;
        let mut files = Vec::new();
        for _ in 0..count {
            let path = r.bytes()?;
            if path.len() > RESUME_PATH_MAX {
                return Err(ResumeError::Corrupt("path too long"));
            }
            let path = std::str::from_utf8(path)
                .map_err(|_| ResumeError::Corrupt("path not UTF-8"))?
                .to_owned();
            let size = r.u64()?;
            let mtime_ns = r.u64()? as i64;
            files.push(FileStamp {
                path,
                size,
                mtime_ns,
            });
        }
        if !r.0.is_empty() {
            return Err(ResumeError::Corrupt("trailing bytes"));
        }
        let record = ResumeRecord {
            version,
            info_hash,
            piece_length,
            num_pieces,
            have,
            files,
        };
        record.have()?;
        Ok(record)
    }
}

fn put_len(b: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("resume record field over 4 GiB");
    b.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(b: &mut Vec<u8>, bytes: &[u8]) {
    put_len(b, bytes.len());
    b.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ResumeError> {
        if self.0.len() < n {
            return Err(ResumeError::Corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, ResumeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, ResumeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8], ResumeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Where the record of `info_hash` lives in `dir`: `<hex info-hash>.resume`.
pub fn record_path(dir: &Path, info_hash: &InfoHash) -> PathBuf {
    let hex = info_hash.to_hex();
    dir.join(format!("{hex}.resume"))
}

/// The temporary file [`write_atomically`] writes before the rename:
/// `.<name>.tmp` in the same folder (a rename is atomic only within one
/// file system). A crash may leave it behind; the next write truncates it
/// and [`load`] never reads it.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "resume".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces the record at `path` so that a crash at any moment leaves
/// either the old record or the new one: write a temporary file in the same
/// folder, fsync it, rename it over `path`, fsync the folder (so the rename
/// itself survives a power cut).
pub fn write_atomically(path: &Path, record: &ResumeRecord) -> io::Result<()> {
    let tmp = temp_path(path);
    let bytes = record.encode();
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().filter(|p| !p.as_os_str().is_empty()))
}

#[cfg(unix)]
fn sync_dir(dir: Option<&Path>) -> io::Result<()> {
    File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: Option<&Path>) -> io::Result<()> {
    // Windows cannot open a directory as a file; NTFS journals the rename.
    Ok(())
}

/// Reads the record at `path` for the torrent `info_hash`. `Ok(None)`: no
/// record (a fresh start). `Err`: a record exists but cannot be used
/// (corrupt, truncated, another version or another torrent's); the caller
/// logs it and proceeds as with `None`, verifying every piece.
pub fn load(path: &Path, info_hash: &InfoHash) -> Result<Option<ResumeRecord>, ResumeError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    f.take(RESUME_BYTES_MAX + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > RESUME_BYTES_MAX {
        return Err(ResumeError::Corrupt("larger than RESUME_BYTES_MAX"));
    }
    let record = ResumeRecord::decode(&bytes)?;
    if &record.info_hash != info_hash {
        return Err(ResumeError::Foreign);
    }
    Ok(Some(record))
}

/// The pieces of `record` that may be trusted without re-verification.
///
/// `piece_length`/`num_pieces` are the torrent's; `files_of_piece(i)` lists
/// the indexes (metainfo order) of the files piece `i` overlaps; `current`
/// is each file's stamp now, in the same order (`None`: missing). A piece is
/// trusted iff the record has it and every file it touches has exactly the
/// recorded path, size and mtime. A record whose layout differs (piece
/// length, piece count, file count) trusts nothing.
pub fn trusted_pieces<I>(
    record: &ResumeRecord,
    piece_length: u32,
    num_pieces: u32,
    files_of_piece: impl Fn(u32) -> I,
    current: &[Option<FileStamp>],
) -> Bitfield
where
    I: IntoIterator<Item = usize>,
{
    let mut trusted = Bitfield::empty(num_pieces);
    if record.piece_length != piece_length
        || record.num_pieces != num_pieces
        || record.files.len() != current.len()
    {
        return trusted;
    }
    let Ok(have) = record.have() else {
        return trusted;
    };
    let unchanged: Vec<bool> = record
        .files
        .iter()
        .zip(current)
        .map(|(was, now)| now.as_ref() == Some(was))
        .collect();
    for i in have.iter_ones() {
        let all_match = files_of_piece(i)
            .into_iter()
            .all(|f| unchanged.get(f).copied().unwrap_or(false));
        if all_match {
            trusted.set(i);
        }
    }
    trusted
}

mod saver;
mod store;
pub(crate) use saver::ResumeSaver;
pub use store::{RESUME_DIR, ResumeStore};

#[cfg(test)]
mod tests;
