//! `.torrent` metainfo files (BEP 3, with BEP 12 tracker tiers and the BEP 27
//! private flag): parsing with every check a hostile file needs, the v1
//! info-hash, the file list and the piece ↔ file-span layout storage uses,
//! and a builder that writes new torrents canonically.
//!
//! Parsing rules, and why:
//! - The **info dict is strict** (canonical bencode, see [`crate::bencode`]):
//!   its raw bytes define the torrent (the info-hash is their SHA-1, taken
//!   from the bytes as received, never re-encoded), and every tool that
//!   writes torrents (mktorrent, transmission, libtorrent) writes it
//!   canonically; a non-canonical info dict is either broken or crafted.
//! - The **outer dict may have unsorted keys** (it is not hashed, and some
//!   sites rewrite it carelessly), but not repeated ones: two `info` keys
//!   would make the torrent ambiguous. Nothing may follow it.
//! - **Paths are safe by construction**: the name and every path component
//!   must be non-empty UTF-8, not `.` or `..`, and hold no `/`, `\` or NUL
//!   (so none is absolute and none climbs out of the download folder); two
//!   files may not share a path, and a file may not also be a folder of
//!   another. Non-UTF-8 names are refused with an error (BEP 3 says UTF-8;
//!   a lossy conversion could make two names equal or hide a `..`).
//! - **Lengths are checked**: piece length in `1..=`[`PIECE_LENGTH_MAX`],
//!   file lengths non-negative, their sum within `u64`, `pieces` a multiple
//!   of 20 bytes holding exactly `ceil(total / piece length)` hashes.
//! - Free text outside the info dict (`comment`, `created by`) is decoded
//!   lossily: old torrents hold other encodings there and nothing depends on
//!   it. Tracker URLs must be UTF-8. Unknown keys are ignored, but the raw
//!   info dict is kept whole ([`Metainfo::info_bytes`]), for BEP 9.
//!
//! File paths in [`FileEntry::path`] start with the torrent's name, so they
//! are where each file lands under the download folder, for both shapes.
//!
//! **BEP 47** (file attributes): `p` marks a pad file (so does a name
//! starting with `_____padding_file_`, BitComet's pads): it stays in
//! [`Metainfo::files`], where it takes its bytes of the layout, but is
//! virtual (zeros, never created; [`Metainfo::real_files`] leaves it out)
//! and exempt from the unique-path rule (libtorrent names every pad
//! `.pad/<size>`), not from path safety. `x` and `h` are kept; `l` with a
//! `symlink path` is a symlink whose target must stay inside the torrent's
//! folder (safe components, like any path) and whose length must be 0,
//! else the torrent is refused. Unknown letters are ignored.
//!
//! **Hybrid and v2** (BEP 52): swarm speaks v1. A hybrid torrent (`meta
//! version` 2 with v1 `pieces`) is used through its v1 half; its v2
//! info-hash (SHA-256 of the same info bytes) is kept for display. A
//! v2-only torrent (no `pieces`) is refused with [`MetainfoError::V2Only`].

use std::collections::BTreeSet;

use sha1::Digest;

use crate::bencode::{self, DecodeError, OwnedValue, Value};
pub use crate::ids::InfoHash;
use crate::layout::{Extent, PAD_FILE_PREFIX, Spans};
pub use crate::layout::{FileAttr, FileSpan};
use crate::lengths::{Lengths, LengthsError, ValidPieceIndex};

/// Largest piece length accepted. Real torrents use up to 16 or 32 MiB;
/// above this, one piece in memory becomes a hazard.
pub const PIECE_LENGTH_MAX: u32 = 256 * 1024 * 1024;
/// Length of one SHA-1 piece hash.
pub const PIECE_HASH_LEN: usize = 20;

/// Why a .torrent was refused. Keys are named as in the file
/// (`info.piece length`), file paths as the torrent spells them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    #[error(transparent)]
    Bencode(#[from] DecodeError),
    #[error("the torrent is not a dictionary")]
    NotADictionary,
    #[error("key `{0}` appears twice in the torrent")]
    DuplicateKey(String),
    #[error("missing `{0}`")]
    Missing(&'static str),
    #[error("`{key}` is not {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("`{0}` is not UTF-8")]
    NotUtf8(String),
    #[error("info has both `length` and `files`")]
    LengthAndFiles,
    #[error("info has neither `length` nor `files`")]
    NoLength,
    #[error("`info.files` is empty")]
    NoFiles,
    #[error("piece length {0} is not between 1 and {PIECE_LENGTH_MAX} bytes")]
    BadPieceLength(i64),
    #[error("`{key}` is negative ({value})")]
    NegativeLength { key: String, value: i64 },
    #[error("the file lengths add up past 2^64 bytes")]
    TotalLengthOverflow,
    #[error("`info.pieces` is {0} bytes long, not a multiple of 20")]
    PiecesNotMultipleOf20(usize),
    #[error(
        "`info.pieces` holds {found} hashes, but {total} bytes in pieces of {piece_length} need {expected}"
    )]
    WrongPieceCount {
        found: usize,
        expected: u64,
        total: u64,
        piece_length: u32,
    },
    #[error(transparent)]
    Lengths(#[from] LengthsError),
    #[error("unsafe {what} {name:?}: {why}")]
    UnsafePath {
        what: String,
        name: String,
        why: &'static str,
    },
    #[error("two files have the path {0:?}")]
    DuplicatePath(String),
    #[error("{0:?} is both a file and a folder")]
    FileAndFolder(String),
    #[error(
        "this is a v2-only torrent (BitTorrent v2, BEP 52): v2-only torrents are not supported yet"
    )]
    V2Only,
    #[error("`meta version` {0} is not 1 or 2")]
    UnknownVersion(i64),
    #[error("the symlink {path:?} points outside the torrent's folder ({target:?}): refused")]
    SymlinkOutside { path: String, target: String },
    #[error("the symlink {0:?} has a length: a symlink holds no data")]
    SymlinkWithData(String),
}

/// One file of a torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Where the file lands under the download folder, as safe components:
    /// the torrent's name, then (multi-file torrents) its path in `files`.
    pub path: Vec<String>,
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
    /// BEP 47 attributes (pad, executable, hidden, symlink).
    pub attr: FileAttr,
}

impl FileEntry {
    /// The path joined with `/` (for display and logs).
    pub fn display_path(&self) -> String {
        self.path.join("/")
    }
}

impl Extent for FileEntry {
    fn start(&self) -> u64 {
        self.offset
    }
    fn length(&self) -> u64 {
        self.length
    }
}

/// Which BitTorrent version a torrent is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaVersion {
    /// BEP 3 only.
    V1,
    /// v1 and v2 (BEP 52) in one info dict; swarm uses the v1 half.
    Hybrid,
}

/// A parsed, validated .torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metainfo {
    announce: Option<String>,
    announce_list: Vec<Vec<String>>,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    name: String,
    private: bool,
    single_file: bool,
    files: Vec<FileEntry>,
    piece_hashes: Vec<[u8; 20]>,
    lengths: Lengths,
    info_hash: InfoHash,
    /// SHA-256 of the info dict, for a hybrid torrent.
    info_hash_v2: Option<[u8; 32]>,
    info_bytes: Vec<u8>,
}

fn wrong_type(key: impl Into<String>, expected: &'static str) -> MetainfoError {
    MetainfoError::WrongType {
        key: key.into(),
        expected,
    }
}

fn utf8<'a>(bytes: &'a [u8], key: &str) -> Result<&'a str, MetainfoError> {
    std::str::from_utf8(bytes).map_err(|_| MetainfoError::NotUtf8(key.to_owned()))
}

/// Checks one name or path component (see the module docs).
fn safe_component(bytes: &[u8], what: &str) -> Result<String, MetainfoError> {
    let lossy = || String::from_utf8_lossy(bytes).into_owned();
    let unsafe_path = |why| MetainfoError::UnsafePath {
        what: what.to_owned(),
        name: lossy(),
        why,
    };
    let s = std::str::from_utf8(bytes).map_err(|_| unsafe_path("not UTF-8"))?;
    if s.is_empty() {
        return Err(unsafe_path("empty"));
    }
    if s == "." || s == ".." {
        return Err(unsafe_path("a relative folder reference"));
    }
    if s.contains('/') || s.contains('\\') {
        return Err(unsafe_path("holds a path separator"));
    }
    if s.contains('\0') {
        return Err(unsafe_path("holds a NUL byte"));
    }
    Ok(s.to_owned())
}

fn length(v: &Value<'_>, key: &str) -> Result<u64, MetainfoError> {
    let n = v.as_int().ok_or_else(|| wrong_type(key, "an integer"))?;
    u64::try_from(n).map_err(|_| MetainfoError::NegativeLength {
        key: key.to_owned(),
        value: n,
    })
}

impl Metainfo {
    /// Parses and validates a .torrent file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        let root = bencode::decode_lenient(bytes)?;
        let dict = root.as_dict().ok_or(MetainfoError::NotADictionary)?;
        let mut keys: Vec<&[u8]> = dict.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(MetainfoError::DuplicateKey(
                String::from_utf8_lossy(w[0]).into_owned(),
            ));
        }

        let info = root.get(b"info").ok_or(MetainfoError::Missing("info"))?;
        if info.as_dict().is_none() {
            return Err(wrong_type("info", "a dictionary"));
        }
        // The info dict must be canonical: decode its bytes again, strictly.
        let base = info.span().start;
        let info = bencode::decode(info.raw()).map_err(|e| e.shifted(base))?;
        let mut m = Self::from_info(&info)?;

        m.announce = match root.get(b"announce") {
            None => None,
            Some(v) => {
                let b = v
                    .as_bytes()
                    .ok_or_else(|| wrong_type("announce", "a string"))?;
                Some(utf8(b, "announce")?.to_owned()).filter(|s| !s.is_empty())
            }
        };
        if let Some(list) = root.get(b"announce-list") {
            let tiers = list
                .as_list()
                .ok_or_else(|| wrong_type("announce-list", "a list of lists"))?;
            for tier in tiers {
                let urls = tier
                    .as_list()
                    .ok_or_else(|| wrong_type("announce-list", "a list of lists"))?;
                let mut t = Vec::new();
                for url in urls {
                    let b = url
                        .as_bytes()
                        .ok_or_else(|| wrong_type("announce-list", "a list of lists of strings"))?;
                    let s = utf8(b, "announce-list")?;
                    if !s.is_empty() {
                        t.push(s.to_owned());
                    }
                }
                if !t.is_empty() {
                    m.announce_list.push(t);
                }
            }
        }
        let text = |key: &str| -> Result<Option<String>, MetainfoError> {
            match root.get(key.as_bytes()) {
                None => Ok(None),
                Some(v) => {
                    let b = v.as_bytes().ok_or_else(|| wrong_type(key, "a string"))?;
                    Ok(Some(String::from_utf8_lossy(b).into_owned()))
                }
            }
        };
        m.comment = text("comment")?;
        m.created_by = text("created by")?;
        m.creation_date = match root.get(b"creation date") {
            None => None,
            Some(v) => Some(
                v.as_int()
                    .ok_or_else(|| wrong_type("creation date", "an integer"))?,
            ),
        };
        Ok(m)
    }

    /// Parses and validates an info dictionary alone (what BEP 9 fetches from
    /// peers for a magnet link). It must be canonical bencode.
    pub fn from_info_bytes(info_bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        let info = bencode::decode(info_bytes)?;
        Self::from_info(&info)
    }

    /// `info` was decoded strictly from exactly its own raw bytes.
    fn from_info(info: &Value<'_>) -> Result<Metainfo, MetainfoError> {
        if info.as_dict().is_none() {
            return Err(wrong_type("info", "a dictionary"));
        }
        let version = match info.get(b"meta version") {
            None => 1,
            Some(v) => v
                .as_int()
                .ok_or_else(|| wrong_type("info.meta version", "an integer"))?,
        };
        let hybrid = match version {
            1 => false,
            2 if info.get(b"pieces").is_none() => return Err(MetainfoError::V2Only),
            2 => true,
            n => return Err(MetainfoError::UnknownVersion(n)),
        };
        let name_bytes = info
            .get(b"name")
            .ok_or(MetainfoError::Missing("info.name"))?
            .as_bytes()
            .ok_or_else(|| wrong_type("info.name", "a string"))?;
        let name = safe_component(name_bytes, "name")?;

        let piece_length = info
            .get(b"piece length")
            .ok_or(MetainfoError::Missing("info.piece length"))?
            .as_int()
            .ok_or_else(|| wrong_type("info.piece length", "an integer"))?;
        let piece_length = u32::try_from(piece_length)
            .ok()
            .filter(|&p| p > 0 && p <= PIECE_LENGTH_MAX)
            .ok_or(MetainfoError::BadPieceLength(piece_length))?;

        let pieces = info
            .get(b"pieces")
            .ok_or(MetainfoError::Missing("info.pieces"))?
            .as_bytes()
            .ok_or_else(|| wrong_type("info.pieces", "a string"))?;
        if pieces.len() % PIECE_HASH_LEN != 0 {
            return Err(MetainfoError::PiecesNotMultipleOf20(pieces.len()));
        }

        let private = match info.get(b"private") {
            None => false,
            Some(v) => {
                v.as_int()
                    .ok_or_else(|| wrong_type("info.private", "an integer"))?
                    != 0
            }
        };

        let (single_file, files) = match (info.get(b"length"), info.get(b"files")) {
            (Some(_), Some(_)) => return Err(MetainfoError::LengthAndFiles),
            (None, None) => return Err(MetainfoError::NoLength),
            (Some(len), None) => {
                let length = length(len, "info.length")?;
                let mut attr = file_attr(info, std::slice::from_ref(&name), length)?;
                // One file that is padding, or a link, would be no content.
                attr.pad = false;
                attr.symlink = None;
                (
                    true,
                    vec![FileEntry {
                        path: vec![name.clone()],
                        length,
                        offset: 0,
                        attr,
                    }],
                )
            }
            (None, Some(list)) => (false, Self::parse_files(list, &name)?),
        };
        let total = files.last().map_or(0, |f| f.offset + f.length);

        let lengths = Lengths::new(total, piece_length)?;
        let expected = u64::from(lengths.num_pieces());
        let found = pieces.len() / PIECE_HASH_LEN;
        if found as u64 != expected {
            return Err(MetainfoError::WrongPieceCount {
                found,
                expected,
                total,
                piece_length,
            });
        }
        let piece_hashes = pieces
            .chunks_exact(PIECE_HASH_LEN)
            .map(|c| {
                let mut h = [0u8; 20];
                h.copy_from_slice(c);
                h
            })
            .collect();

        Ok(Metainfo {
            announce: None,
            announce_list: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
            name,
            private,
            single_file,
            files,
            piece_hashes,
            lengths,
            info_hash: InfoHash::of_info(info.raw()),
            info_hash_v2: hybrid.then(|| sha2::Sha256::digest(info.raw()).into()),
            info_bytes: info.raw().to_vec(),
        })
    }

    /// `info.files` → entries with safe paths and offsets.
    fn parse_files(list: &Value<'_>, name: &str) -> Result<Vec<FileEntry>, MetainfoError> {
        let list = list
            .as_list()
            .ok_or_else(|| wrong_type("info.files", "a list"))?;
        if list.is_empty() {
            return Err(MetainfoError::NoFiles);
        }
        let mut files = Vec::with_capacity(list.len());
        let mut offset: u64 = 0;
        for (i, entry) in list.iter().enumerate() {
            let key = |k: &str| format!("info.files[{i}].{k}");
            if entry.as_dict().is_none() {
                return Err(wrong_type(format!("info.files[{i}]"), "a dictionary"));
            }
            let length = length(
                entry
                    .get(b"length")
                    .ok_or(MetainfoError::Missing("info.files[].length"))?,
                &key("length"),
            )?;
            let components = entry
                .get(b"path")
                .ok_or(MetainfoError::Missing("info.files[].path"))?
                .as_list()
                .ok_or_else(|| wrong_type(key("path"), "a list of strings"))?;
            if components.is_empty() {
                return Err(MetainfoError::UnsafePath {
                    what: key("path"),
                    name: String::new(),
                    why: "empty",
                });
            }
            let mut path = Vec::with_capacity(components.len() + 1);
            path.push(name.to_owned());
            for c in components {
                let b = c
                    .as_bytes()
                    .ok_or_else(|| wrong_type(key("path"), "a list of strings"))?;
                path.push(safe_component(b, "path component")?);
            }
            let attr = file_attr(entry, &path, length)?;
            files.push(FileEntry {
                path,
                length,
                offset,
                attr,
            });
            offset = offset
                .checked_add(length)
                .ok_or(MetainfoError::TotalLengthOverflow)?;
        }
        // No two files at one place: equal paths, or a file where another
        // needs a folder. Pads are never created, so they are exempt.
        let mut seen: BTreeSet<&[String]> = BTreeSet::new();
        for f in files.iter().filter(|f| !f.attr.pad) {
            if !seen.insert(&f.path) {
                return Err(MetainfoError::DuplicatePath(f.display_path()));
            }
        }
        for f in files.iter().filter(|f| !f.attr.pad) {
            for end in 2..f.path.len() {
                if seen.contains(&f.path[..end]) {
                    return Err(MetainfoError::FileAndFolder(f.path[..end].join("/")));
                }
            }
        }
        Ok(files)
    }

    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The v2 info-hash (SHA-256 of the info dict) of a hybrid torrent.
    pub fn info_hash_v2(&self) -> Option<[u8; 32]> {
        self.info_hash_v2
    }

    pub fn version(&self) -> MetaVersion {
        if self.info_hash_v2.is_some() {
            MetaVersion::Hybrid
        } else {
            MetaVersion::V1
        }
    }

    /// The info dictionary's bytes, exactly as received (BEP 9 serves them).
    pub fn info_bytes(&self) -> &[u8] {
        &self.info_bytes
    }

    /// The torrent's name: the file's name (single file) or the top folder's.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn announce(&self) -> Option<&str> {
        self.announce.as_deref()
    }

    /// BEP 12 `announce-list` as written (empty tiers and URLs dropped).
    pub fn announce_list(&self) -> &[Vec<String>] {
        &self.announce_list
    }

    /// The trackers to use, in tiers (BEP 12): `announce-list` when it holds
    /// any URL, otherwise `announce` alone.
    pub fn tracker_tiers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            return self.announce_list.clone();
        }
        self.announce.iter().map(|a| vec![a.clone()]).collect()
    }

    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    pub fn created_by(&self) -> Option<&str> {
        self.created_by.as_deref()
    }

    /// Unix seconds, as written.
    pub fn creation_date(&self) -> Option<i64> {
        self.creation_date
    }

    /// BEP 27: peers from trackers only.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// True for a torrent with `info.length` (one file, named `name`).
    pub fn is_single_file(&self) -> bool {
        self.single_file
    }

    /// The files in torrent order (never empty), pad files included: this
    /// is the byte layout that [`Metainfo::spans`] indexes.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// The files a user sees and storage creates: all but the pads.
    pub fn real_files(&self) -> impl Iterator<Item = &FileEntry> {
        self.files.iter().filter(|f| !f.attr.pad)
    }

    /// How many pad files there are and the bytes they take.
    pub fn pad_files(&self) -> (usize, u64) {
        self.files
            .iter()
            .filter(|f| f.attr.pad)
            .fold((0, 0), |(n, b), f| (n + 1, b + f.length))
    }

    pub fn lengths(&self) -> Lengths {
        self.lengths
    }

    pub fn total_length(&self) -> u64 {
        self.lengths.total_length()
    }

    pub fn piece_hashes(&self) -> &[[u8; 20]] {
        &self.piece_hashes
    }

    pub fn piece_hash(&self, piece: ValidPieceIndex) -> &[u8; 20] {
        // A ValidPieceIndex comes from `lengths()`, whose piece count equals
        // the number of hashes (checked at parse time).
        &self.piece_hashes[piece.as_usize()]
    }

    /// The parts of files that piece `piece` covers, in order. Empty files
    /// cover no byte and never appear (storage creates them on its own).
    pub fn file_spans(&self, piece: ValidPieceIndex) -> FileSpans<'_> {
        let offset = self.lengths.piece_offset(piece);
        let len = u64::from(self.lengths.piece_len(piece));
        self.spans(offset, len)
    }

    /// The parts of files that the byte range `offset..offset + len` of the
    /// torrent covers (a block, say). Bytes past the end are ignored. Pads
    /// appear like any file (see [`crate::layout`]).
    pub fn spans(&self, offset: u64, len: u64) -> FileSpans<'_> {
        crate::layout::spans(&self.files, offset, len)
    }
}

/// Iterator of [`Metainfo::spans`].
pub type FileSpans<'m> = Spans<'m, FileEntry>;

/// The BEP 47 `attr` (and `symlink path`) of a file dict (or of the info
/// dict of a single-file torrent). `path` is the file's path, name first.
fn file_attr(dict: &Value<'_>, path: &[String], length: u64) -> Result<FileAttr, MetainfoError> {
    let mut attr = FileAttr::default();
    if let Some(v) = dict.get(b"attr") {
        let letters = v.as_bytes().ok_or_else(|| wrong_type("attr", "a string"))?;
        for &c in letters {
            match c {
                b'p' => attr.pad = true,
                b'x' => attr.executable = true,
                b'h' => attr.hidden = true,
                b'l' => attr.symlink = Some(Vec::new()),
                _ => {} // unknown letters are ignored (BEP 47)
            }
        }
    }
    if path.last().is_some_and(|n| n.starts_with(PAD_FILE_PREFIX)) {
        attr.pad = true;
    }
    if attr.symlink.is_some() {
        let shown = path.join("/");
        let outside = |target: String| MetainfoError::SymlinkOutside {
            path: shown.clone(),
            target,
        };
        let list = dict
            .get(b"symlink path")
            .and_then(|v| v.as_list())
            .ok_or_else(|| outside(String::new()))?;
        let mut target = Vec::with_capacity(list.len());
        for c in list {
            let b = c.as_bytes().ok_or_else(|| outside(String::new()))?;
            let lossy = String::from_utf8_lossy(b).into_owned();
            target.push(safe_component(b, "symlink path").map_err(|_| outside(lossy))?);
        }
        if target.is_empty() {
            return Err(outside(String::new()));
        }
        if length != 0 {
            return Err(MetainfoError::SymlinkWithData(shown));
        }
        attr.symlink = Some(target);
    }
    Ok(attr)
}

/// Errors of [`TorrentBuilder::build`]: the builder checks what it is given
/// with the same rules the parser applies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the new torrent would be invalid: {0}")]
    Invalid(#[from] MetainfoError),
    #[error("a file length of {0} bytes does not fit in a bencode integer")]
    LengthTooLarge(u64),
}

/// What a new torrent holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewContent {
    /// One file, named by the torrent's name (`info.length`).
    File { length: u64 },
    /// A folder, named by the torrent's name, holding these files in this
    /// order: path components inside the folder, and length (`info.files`).
    Folder { files: Vec<(Vec<String>, u64)> },
}

/// A new torrent, encoded canonically. What `swarm create` writes.
///
/// Keys written: `announce` (first URL of the first tier) and, when there
/// is more than one URL, `announce-list`; `comment`, `created by`,
/// `creation date` when given; info: `files` (or `length`), `name`,
/// `piece length`, `pieces`, `private` (only when set).
#[derive(Clone, Debug)]
pub struct TorrentBuilder {
    pub name: String,
    pub piece_length: u32,
    pub content: NewContent,
    /// One SHA-1 per piece, in order.
    pub piece_hashes: Vec<[u8; 20]>,
    /// Tracker tiers (BEP 12).
    pub tiers: Vec<Vec<String>>,
    /// BEP 27.
    pub private: bool,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    /// Unix seconds.
    pub creation_date: Option<i64>,
}

impl TorrentBuilder {
    /// A builder with no trackers, comment, creator or date, not private.
    pub fn new(
        name: impl Into<String>,
        piece_length: u32,
        content: NewContent,
        piece_hashes: Vec<[u8; 20]>,
    ) -> Self {
        TorrentBuilder {
            name: name.into(),
            piece_length,
            content,
            piece_hashes,
            tiers: Vec::new(),
            private: false,
            comment: None,
            created_by: None,
            creation_date: None,
        }
    }

    /// The .torrent bytes and their info-hash. The result is parsed back
    /// with [`Metainfo::from_bytes`] before it is returned, so a builder
    /// can never write a torrent the parser would refuse.
    pub fn build(&self) -> Result<(Vec<u8>, InfoHash), BuildError> {
        let int = |n: u64| {
            i64::try_from(n)
                .map(OwnedValue::Int)
                .map_err(|_| BuildError::LengthTooLarge(n))
        };
        let key = |k: &str| k.as_bytes().to_vec();
        let mut info = std::collections::BTreeMap::new();
        match &self.content {
            NewContent::File { length } => {
                info.insert(key("length"), int(*length)?);
            }
            NewContent::Folder { files } => {
                let mut list = Vec::with_capacity(files.len());
                for (path, length) in files {
                    let mut f = std::collections::BTreeMap::new();
                    f.insert(key("length"), int(*length)?);
                    f.insert(
                        key("path"),
                        OwnedValue::List(path.iter().map(|c| OwnedValue::text(c)).collect()),
                    );
                    list.push(OwnedValue::Dict(f));
                }
                info.insert(key("files"), OwnedValue::List(list));
            }
        }
        info.insert(key("name"), OwnedValue::text(&self.name));
        info.insert(
            key("piece length"),
            OwnedValue::Int(i64::from(self.piece_length)),
        );
        info.insert(key("pieces"), OwnedValue::Bytes(self.piece_hashes.concat()));
        if self.private {
            info.insert(key("private"), OwnedValue::Int(1));
        }

        let mut root = std::collections::BTreeMap::new();
        if let Some(first) = self.tiers.first().and_then(|t| t.first()) {
            root.insert(key("announce"), OwnedValue::text(first));
            if self.tiers.iter().map(Vec::len).sum::<usize>() > 1 {
                let tiers = self
                    .tiers
                    .iter()
                    .map(|t| OwnedValue::List(t.iter().map(|u| OwnedValue::text(u)).collect()))
                    .collect();
                root.insert(key("announce-list"), OwnedValue::List(tiers));
            }
        }
        if let Some(c) = &self.comment {
            root.insert(key("comment"), OwnedValue::text(c));
        }
        if let Some(by) = &self.created_by {
            root.insert(key("created by"), OwnedValue::text(by));
        }
        if let Some(date) = self.creation_date {
            root.insert(key("creation date"), OwnedValue::Int(date));
        }
        root.insert(key("info"), OwnedValue::Dict(info));
        let bytes = OwnedValue::Dict(root).encode();
        let parsed = Metainfo::from_bytes(&bytes)?;
        Ok((bytes, parsed.info_hash()))
    }
}

#[cfg(test)]
mod tests;
