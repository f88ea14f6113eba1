//! What the drivers need to know about a torrent, independent of how the
//! metainfo was parsed: info-hash, lengths, piece hashes, the file list and
//! the trackers. The CLI builds a [`TorrentSpec`] from a parsed `.torrent` in
//! one small function; tests build one by hand.

use std::path::PathBuf;

use swarm_engine::{Bitfield, Priority};
use swarm_wire::InfoHash;
use swarm_wire::layout::FileAttr;
use swarm_wire::lengths::Lengths;
use swarm_wire::metainfo::Metainfo;

use crate::NetError;

/// One file of the torrent, in torrent order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// Relative to the download folder, torrent name included
    /// (`name` for a single-file torrent, `name/dir/file` otherwise).
    /// Already validated: no `..`, no absolute part, no empty component.
    pub path: PathBuf,
    pub length: u64,
    /// BEP 47: a pad file (`attr.pad`) takes its bytes of the layout but is
    /// never created; `executable`; a `symlink` inside the torrent's folder.
    pub attr: FileAttr,
}

impl FileSpec {
    /// A plain file (no BEP 47 attribute).
    pub fn new(path: impl Into<PathBuf>, length: u64) -> FileSpec {
        FileSpec {
            path: path.into(),
            length,
            attr: FileAttr::default(),
        }
    }
}

/// A torrent as the drivers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentSpec {
    pub info_hash: InfoHash,
    pub name: String,
    pub lengths: Lengths,
    /// One SHA-1 per piece.
    pub piece_hashes: Vec<[u8; 20]>,
    pub files: Vec<FileSpec>,
    /// Announce tiers (BEP 12), or `[[announce]]`.
    pub trackers: Vec<Vec<String>>,
}

/// The byte ranges of a torrent's pad files (BEP 47), for counting the
/// real bytes a set of pieces holds. Costs 16 bytes per pad file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PadRanges {
    /// `(start, length)` in the torrent, in order, none empty.
    ranges: Vec<(u64, u64)>,
    lengths: Lengths,
}

impl PadRanges {
    /// Bytes of pad files in all.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|r| r.1).sum()
    }

    /// The torrent's size without its pads: what the user gets.
    pub fn real_total(&self) -> u64 {
        self.lengths.total_length() - self.total()
    }

    /// The real (non-pad) bytes in the pieces of `have`: their bytes minus
    /// the pad bytes inside them. O(pad files + the pieces pads cover).
    pub fn real_bytes_present(&self, have: &Bitfield) -> u64 {
        let all = have.bytes_present(&self.lengths);
        let piece_length = u64::from(self.lengths.piece_length());
        let mut pads = 0u64;
        for &(start, len) in &self.ranges {
            let end = start + len;
            for p in start / piece_length..=(end - 1) / piece_length {
                if u32::try_from(p).is_ok_and(|p| have.get(p)) {
                    let (ps, pe) = (p * piece_length, (p + 1) * piece_length);
                    pads += end.min(pe) - start.max(ps);
                }
            }
        }
        all - pads
    }

    /// The real bytes in the pieces of `have` that are also in `wanted`
    /// (none: every piece is wanted).
    pub fn real_bytes_wanted(&self, have: &Bitfield, wanted: Option<&Bitfield>) -> u64 {
        let Some(w) = wanted else {
            return self.real_bytes_present(have);
        };
        let mut both = Bitfield::empty(have.len());
        for i in have.iter_ones().filter(|&i| w.get(i)) {
            both.set(i);
        }
        self.real_bytes_present(&both)
    }
}

impl TorrentSpec {
    /// The drivers' view of a parsed `.torrent` (its paths are already safe:
    /// the parser refuses `..`, absolute parts and empty components).
    pub fn from_metainfo(m: &Metainfo) -> TorrentSpec {
        TorrentSpec {
            info_hash: m.info_hash(),
            name: m.name().to_string(),
            lengths: m.lengths(),
            piece_hashes: m.piece_hashes().to_vec(),
            files: m
                .files()
                .iter()
                .map(|f| FileSpec {
                    path: f.path.iter().collect(),
                    length: f.length,
                    attr: f.attr.clone(),
                })
                .collect(),
            trackers: m.tracker_tiers(),
        }
    }

    /// Checks that the parts agree: one hash per piece, file lengths summing
    /// to the total, relative paths.
    pub fn validate(&self) -> Result<(), NetError> {
        let bad = |why: String| Err(NetError::BadTorrent(why));
        if self.piece_hashes.len() != self.lengths.num_pieces() as usize {
            return bad(format!(
                "{} piece hashes for {} pieces",
                self.piece_hashes.len(),
                self.lengths.num_pieces()
            ));
        }
        let mut total = 0u64;
        for f in &self.files {
            total = match total.checked_add(f.length) {
                Some(t) => t,
                None => return bad("file lengths overflow".into()),
            };
            let safe = f
                .path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !safe || f.path.as_os_str().is_empty() {
                return bad(format!("unsafe file path {}", f.path.display()));
            }
        }
        if total != self.lengths.total_length() {
            return bad(format!(
                "files hold {total} bytes, the torrent {}",
                self.lengths.total_length()
            ));
        }
        if self.files.is_empty() {
            return bad("no files".into());
        }
        Ok(())
    }

    /// Each piece's priority from its files' (`files`: by file index,
    /// pads included; a missing entry is `Normal`): the highest of the real
    /// files it touches, so a piece shared by a wanted and a skipped file is
    /// fetched; a piece of pad files only is `Normal`. O(pieces + files).
    pub fn piece_priorities(&self, files: &[Priority]) -> Vec<Priority> {
        let n = self.lengths.num_pieces() as usize;
        if files.iter().all(|&p| p == Priority::Normal) {
            return vec![Priority::Normal; n];
        }
        let mut out = vec![None::<Priority>; n];
        let piece_length = u64::from(self.lengths.piece_length());
        let mut start = 0u64;
        for (i, f) in self.files.iter().enumerate() {
            if !f.attr.pad && f.length > 0 {
                let prio = files.get(i).copied().unwrap_or_default();
                let end = start + f.length;
                for p in start / piece_length..=(end - 1) / piece_length {
                    let slot = &mut out[p as usize];
                    *slot = Some(slot.map_or(prio, |q| q.max(prio)));
                }
            }
            start += f.length;
        }
        out.into_iter().map(Option::unwrap_or_default).collect()
    }

    /// The pieces not skipped, given the files' priorities; `None` when
    /// no piece is skipped (nothing to compute).
    pub fn wanted_pieces(&self, files: &[Priority]) -> Option<Bitfield> {
        if !files.contains(&Priority::Skip) {
            return None;
        }
        let mut w = Bitfield::empty(self.lengths.num_pieces());
        for (i, p) in self.piece_priorities(files).iter().enumerate() {
            if *p != Priority::Skip {
                w.set(i as u32);
            }
        }
        Some(w)
    }

    /// Where the pad files lie: progress and totals count real bytes only.
    pub fn pads(&self) -> PadRanges {
        let mut ranges = Vec::new();
        let mut start = 0u64;
        for f in &self.files {
            if f.attr.pad && f.length > 0 {
                ranges.push((start, f.length));
            }
            start += f.length;
        }
        PadRanges {
            ranges,
            lengths: self.lengths,
        }
    }

    /// The info-hash as 40 lowercase hex digits.
    pub fn info_hash_hex(&self) -> String {
        self.info_hash.to_hex()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_wire::metainfo::{NewContent, TorrentBuilder};

    #[test]
    fn a_multi_file_metainfo_becomes_a_spec_with_the_name_in_every_path() {
        let files = vec![
            (vec!["a.bin".to_string()], 20_000),
            (vec!["sub".to_string(), "empty".to_string()], 0),
            (vec!["sub".to_string(), "b".to_string()], 12_768),
        ];
        let mut b = TorrentBuilder::new(
            "tree",
            16 * 1024,
            NewContent::Folder { files },
            vec![[7; 20], [8; 20]],
        );
        b.tiers = vec![vec!["udp://t.example:1/announce".into()]];
        let (bytes, info_hash) = b.build().unwrap();
        let m = Metainfo::from_bytes(&bytes).unwrap();
        let spec = TorrentSpec::from_metainfo(&m);
        spec.validate().unwrap();
        assert_eq!(spec.info_hash, info_hash);
        assert_eq!(spec.name, "tree");
        assert_eq!(spec.piece_hashes, vec![[7; 20], [8; 20]]);
        let paths: Vec<(PathBuf, u64)> = spec
            .files
            .iter()
            .map(|f| (f.path.clone(), f.length))
            .collect();
        assert_eq!(
            paths,
            vec![
                (PathBuf::from("tree/a.bin"), 20_000),
                (PathBuf::from("tree/sub/empty"), 0),
                (PathBuf::from("tree/sub/b"), 12_768),
            ]
        );
        assert_eq!(
            spec.trackers,
            vec![vec!["udp://t.example:1/announce".to_string()]]
        );
    }

    #[test]
    fn inconsistent_specs_are_refused() {
        let lengths = Lengths::new(100, 64).unwrap();
        let good = TorrentSpec {
            info_hash: InfoHash([0; 20]),
            name: "x".into(),
            lengths,
            piece_hashes: vec![[0; 20]; 2],
            files: vec![FileSpec::new("x", 100)],
            trackers: vec![],
        };
        good.validate().unwrap();
        let mut bad = good.clone();
        bad.piece_hashes.pop();
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.files[0].length = 99;
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.files[0].path = "../x".into();
        assert!(bad.validate().is_err());
        let mut bad = good;
        bad.files[0].path = "/x".into();
        assert!(bad.validate().is_err());
    }
}
