//! One torrent's resume record on disk: where it lives, which pieces it lets
//! a new run trust, and saving it in the crash-safe order.
//!
//! # Where
//! `<download or data folder>/.swarm/<info-hash hex>.resume`: beside the
//! torrent's content, never inside it (a torrent's files all start with its
//! name, so only a torrent *named* `.swarm` could put files in that folder;
//! for such a torrent there is no record, see [`ResumeStore::new`]). One
//! folder serves every torrent downloaded into the same place. A folder we
//! cannot write (a read-only seed folder) costs a warning, never the run.
//!
//! # Why a saved record never lies
//! [`ResumeStore::save`] receives `have`, the core's verified pieces, taken
//! *before* it runs. The engine puts a piece in `have` only after its
//! storage job wrote it, and we never write a piece again once we have it.
//! So every piece of the record was written before step 1 below:
//!
//! 1. `sync_data` every file: the record's pieces are now on the disk;
//! 2. stat every file (size, mtime) *after* the sync;
//! 3. write the record atomically (temporary file, fsync, rename, fsync
//!    the folder): a crash leaves the old record or the new one.
//!
//! Pieces written after the `have` snapshot (the session keeps writing while
//! a save runs) are not in the record; if they land after step 2 they change
//! the file's mtime, so at the next start the record's pieces of that file
//! are re-verified (read and hashed, not downloaded again): slower, never
//! wrong. If they land before step 2, the stamp already includes them.
//!
//! Coarse mtime granularity (1 s on some file systems; ext4 advances its
//! timestamps by the kernel's coarse clock tick, a few ms) means a write
//! right after step 2 may leave the mtime unchanged. For our own writes this
//! is harmless: a piece written then is absent from the record, so it is
//! never trusted, and the pieces that are present were written before the
//! sync and are not rewritten. What the mtime guards against is *another*
//! program changing the data between runs; a change in the same clock tick
//! as our stat would go unseen — the race every mtime-based tool (make,
//! rsync, git's "racy" entries) accepts. `sync_data` does not force the
//! mtime itself to disk: after a power cut the file may show an older mtime
//! than recorded, which only makes its pieces re-verified.

use std::path::{Path, PathBuf};

use swarm_engine::{Bitfield, InfoHash};

use super::{FileStamp, ResumeRecord, load, record_path, trusted_pieces, write_atomically};
use crate::storage::Storage;
use crate::{NetError, TorrentSpec};

/// The folder, inside the download (or data) folder, that holds the records.
pub const RESUME_DIR: &str = ".swarm";

/// The resume record of one torrent. See the module docs.
#[derive(Debug)]
pub struct ResumeStore {
    path: PathBuf,
    info_hash: InfoHash,
    piece_length: u32,
    num_pieces: u32,
    /// Each file's path as the record names it (`/`-separated, torrent order).
    file_paths: Vec<String>,
}

impl ResumeStore {
    /// The record of `spec` downloaded into (or seeded from) `dir`:
    /// `dir/.swarm/<info-hash hex>.resume`. `None` for a torrent whose
    /// content itself goes into `dir/.swarm` (its name is `.swarm`): its
    /// files could be named like a record, so it gets none (every start
    /// checks the data).
    pub fn new(dir: &Path, spec: &TorrentSpec) -> Option<ResumeStore> {
        let collides = spec.files.iter().any(|f| {
            f.path.components().next() == Some(std::path::Component::Normal(RESUME_DIR.as_ref()))
        });
        if collides {
            return None;
        }
        Some(Self::in_folder(&dir.join(RESUME_DIR), spec))
    }

    /// The record of `spec` kept in `folder` (a folder of records apart
    /// from the data, as the daemon's state folder keeps them):
    /// `folder/<info-hash hex>.resume`.
    pub fn in_folder(folder: &Path, spec: &TorrentSpec) -> ResumeStore {
        let file_paths = spec
            .files
            .iter()
            .map(|f| {
                f.path
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        ResumeStore {
            path: record_path(folder, &spec.info_hash),
            info_hash: spec.info_hash,
            piece_length: spec.lengths.piece_length(),
            num_pieces: spec.lengths.num_pieces(),
            file_paths,
        }
    }

    /// The record's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files' stamps now, through `storage`'s handles (`None`: unknown).
    fn stamps(&self, storage: &Storage) -> Vec<Option<FileStamp>> {
        storage
            .file_metadata()
            .into_iter()
            .zip(&self.file_paths)
            .map(|(meta, path)| match meta {
                // A pad file: virtual, the same in every run.
                None => Some(FileStamp {
                    path: path.clone(),
                    size: 0,
                    mtime_ns: 0,
                }),
                Some(meta) => meta.and_then(|m| FileStamp::from_metadata(path, &m)).ok(),
            })
            .collect()
    }

    /// Blocking. The pieces the record lets a new run trust without reading
    /// them, given the files as `storage` opened them. Never fails: no
    /// record, an unusable one (a warning says why) or a file that cannot be
    /// stat'ed trusts nothing there, and those pieces are checked instead.
    pub fn trusted(&self, storage: &Storage) -> Bitfield {
        let none = Bitfield::empty(self.num_pieces);
        let record = match load(&self.path, &self.info_hash) {
            Ok(Some(r)) => r,
            Ok(None) => return none,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "resume record ignored: checking the data instead");
                return none;
            }
        };
        let current = self.stamps(storage);
        trusted_pieces(
            &record,
            self.piece_length,
            self.num_pieces,
            |i| storage.files_of_piece(i),
            &current,
        )
    }

    /// Blocking. Saves `have`, the core's verified pieces taken *before*
    /// this call: sync the files, stamp them, write the record atomically
    /// (the order and why it is safe: module docs).
    pub fn save(&self, storage: &Storage, have: &Bitfield) -> Result<(), NetError> {
        storage.sync_data()?;
        let stamps = self.stamps(storage);
        let Some(stamps) = stamps.into_iter().collect::<Option<Vec<_>>>() else {
            return Err(self.error(std::io::Error::other("cannot stat a data file")));
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| NetError::Storage {
                path: dir.to_path_buf(),
                error: e,
            })?;
        }
        let record = ResumeRecord::new(self.info_hash, self.piece_length, have, stamps);
        write_atomically(&self.path, &record).map_err(|e| self.error(e))
    }

    fn error(&self, error: std::io::Error) -> NetError {
        NetError::Storage {
            path: self.path.clone(),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::os::unix::fs::FileExt;
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use sha1::{Digest, Sha1};
    use swarm_wire::lengths::Lengths;

    use super::*;
    use crate::spec::FileSpec;
    use crate::storage::OpenMode;

    const PIECE: u32 = 16 * 1024;

    /// Two files of 40 000 and 60 000 bytes under `name/`, pieces of 16 KiB
    /// (piece 2 straddles them).
    fn torrent(name: &str) -> (TorrentSpec, Vec<u8>) {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 13 + i / 977) as u8).collect();
        let spec = TorrentSpec {
            info_hash: InfoHash([7; 20]),
            name: name.into(),
            lengths: Lengths::new(data.len() as u64, PIECE).unwrap(),
            piece_hashes: data
                .chunks(PIECE as usize)
                .map(|c| Sha1::digest(c).into())
                .collect(),
            files: [("a", 40_000), ("b/c", 60_000)]
                .into_iter()
                .map(|(p, length)| FileSpec::new(PathBuf::from(name).join(p), length))
                .collect(),
            trackers: vec![],
        };
        (spec, data)
    }

    fn write_all(storage: &Storage, spec: &TorrentSpec, data: &[u8]) {
        for (i, chunk) in data.chunks(PIECE as usize).enumerate() {
            let p = spec.lengths.validate_piece_index(i as u32).unwrap();
            storage.verify_and_write(p, &[Bytes::copy_from_slice(chunk)]);
        }
    }

    /// What a check that skips `skip` finds, and how many bytes it reads.
    fn check_counting(storage: &Storage, skip: &Bitfield) -> (Bitfield, u64) {
        let read = std::sync::atomic::AtomicU64::new(0);
        let found = storage.check_except(skip, true, &|n| {
            read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        });
        (found, read.into_inner())
    }

    #[test]
    fn a_matching_record_trusts_every_piece_without_reading_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, data) = torrent("t");
        let storage = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        write_all(&storage, &spec, &data);
        let store = ResumeStore::new(dir.path(), &spec).unwrap();
        assert_eq!(
            store.path(),
            dir.path()
                .join(".swarm")
                .join(format!("{}.resume", "07".repeat(20)))
        );
        let have = Bitfield::full(spec.lengths.num_pieces());
        store.save(&storage, &have).unwrap();
        drop(storage);

        // Damage the data behind the record's back, restoring the mtime:
        // a piece that were read would fail its hash. It is trusted, so it
        // is not read.
        let path = dir.path().join("t/a");
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"XXXX", 100).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);

        let storage = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        let trusted = store.trusted(&storage);
        assert!(trusted.is_all_set(), "every piece trusted");
        let (checked, read) = check_counting(&storage, &trusted);
        assert_eq!(read, 0, "nothing read");
        assert!(checked.is_none_set());
        // Whereas a check that trusts nothing reads it all and sees the
        // damage: piece 0 fails.
        let (checked, read) = check_counting(&storage, &Bitfield::empty(trusted.len()));
        assert_eq!(read, data.len() as u64);
        assert!(!checked.get(0) && checked.get(1));
    }

    #[test]
    fn a_file_written_after_the_save_is_re_verified_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, data) = torrent("t");
        let storage = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        // Pieces 0..=2 written and saved (piece 2 straddles a and b/c) ...
        for i in 0..3u32 {
            let p = spec.lengths.validate_piece_index(i).unwrap();
            let r = i as usize * PIECE as usize..(i as usize + 1) * PIECE as usize;
            storage.verify_and_write(p, &[Bytes::copy_from_slice(&data[r])]);
        }
        let store = ResumeStore::new(dir.path(), &spec).unwrap();
        let mut have = Bitfield::empty(spec.lengths.num_pieces());
        (0..3).for_each(|i| {
            have.set(i);
        });
        store.save(&storage, &have).unwrap();
        // ... then piece 4 written into b/c after the save, its mtime moved
        // on (as a later tick of a coarse clock would).
        let p = spec.lengths.validate_piece_index(4).unwrap();
        storage.verify_and_write(p, &[Bytes::copy_from_slice(&data[4 * 16384..5 * 16384])]);
        let later = SystemTime::now() + Duration::from_secs(2);
        let f = OpenOptions::new()
            .write(true)
            .open(dir.path().join("t/b/c"))
            .unwrap();
        f.set_modified(later).unwrap();
        drop((f, storage));

        let storage = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        let trusted = store.trusted(&storage);
        // a is unchanged: 0 and 1 trusted; 2 touches b/c: not trusted.
        assert_eq!(trusted.iter_ones().collect::<Vec<_>>(), vec![0, 1]);
        let (checked, read) = check_counting(&storage, &trusted);
        // 2 is re-verified, 4 found on disk; neither downloaded again. Only
        // the untrusted pieces were read.
        assert_eq!(checked.iter_ones().collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(read, 100_000 - 2 * u64::from(PIECE));
    }

    #[test]
    fn a_damaged_record_trusts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, data) = torrent("t");
        let storage = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        write_all(&storage, &spec, &data);
        let store = ResumeStore::new(dir.path(), &spec).unwrap();
        store
            .save(&storage, &Bitfield::full(spec.lengths.num_pieces()))
            .unwrap();
        let mut bytes = std::fs::read(store.path()).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(store.path(), &bytes).unwrap();
        assert!(store.trusted(&storage).is_none_set());
        std::fs::write(store.path(), &bytes[..mid]).unwrap();
        assert!(store.trusted(&storage).is_none_set());
    }

    #[test]
    fn an_unwritable_record_folder_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, data) = torrent("t");
        let storage = Storage::open(dir.path(), &spec, OpenMode::Create).unwrap();
        write_all(&storage, &spec, &data);
        // A file where the folder must go: fails even for root.
        std::fs::write(dir.path().join(RESUME_DIR), b"x").unwrap();
        let store = ResumeStore::new(dir.path(), &spec).unwrap();
        let err = store
            .save(&storage, &Bitfield::full(spec.lengths.num_pieces()))
            .unwrap_err();
        assert!(err.to_string().contains(RESUME_DIR), "{err}");
        assert!(store.trusted(&storage).is_none_set());
    }

    #[test]
    fn a_torrent_named_like_the_record_folder_gets_no_record() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ResumeStore::new(dir.path(), &torrent(RESUME_DIR).0).is_none());
        assert!(ResumeStore::new(dir.path(), &torrent(".swarm2").0).is_some());
    }
}
