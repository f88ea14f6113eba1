//! The piece ↔ file layout: a torrent's files laid end to end form one byte
//! range, and a piece (or a block, or any range) of it maps to one span per
//! file it touches. This is the one place that mapping is written; the
//! metainfo ([`crate::metainfo::Metainfo::spans`]) and the storage driver
//! (`swarm-net`) both walk it.
//!
//! BEP 47 pad files are files of the layout like any other (they take their
//! bytes of the range), so a span may lie in a pad: the caller tells them
//! apart by [`FileAttr::pad`] (storage reads a pad's range as zeros and never
//! writes it). Empty files cover no byte and never appear in spans.

/// BEP 47 file attributes (the `attr` string of a file: letters, unknown
/// ones ignored) plus the `symlink path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileAttr {
    /// `p`, or a name starting with [`PAD_FILE_PREFIX`] (BitComet's pads,
    /// which carry no attribute): virtual zeros, never created or listed.
    pub pad: bool,
    /// `x`: the downloaded file gets the executable bit.
    pub executable: bool,
    /// `h`: hidden (nothing to do on Linux; kept for display).
    pub hidden: bool,
    /// `l`: a symlink to this path, relative to the torrent's folder, as
    /// safe components (so it never leaves the folder). Its length is 0.
    pub symlink: Option<Vec<String>>,
}

/// The name prefix of BitComet's pad files (libtorrent treats such files
/// as pads whether or not they carry the `p` attribute).
pub const PAD_FILE_PREFIX: &str = "_____padding_file_";

/// A file's place in the torrent's byte range.
pub trait Extent {
    /// Offset of the file's first byte in the torrent.
    fn start(&self) -> u64;
    fn length(&self) -> u64;
}

/// A contiguous part of a range that lies in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSpan {
    /// Index into the file list the spans were taken from.
    pub file_index: usize,
    pub offset_in_file: u64,
    pub len: u64,
}

/// The parts of `files` (laid end to end, in order, each starting where the
/// previous one ends) that the range `offset..offset + len` covers, in
/// order. Bytes past the last file are ignored. Finds the first file by
/// binary search, so a span walk costs O(log files + spans).
pub fn spans<E: Extent>(files: &[E], offset: u64, len: u64) -> Spans<'_, E> {
    let total = files.last().map_or(0, |f| f.start() + f.length());
    let end = offset.saturating_add(len).min(total);
    // First file ending after `offset`.
    let first = files.partition_point(|f| f.start() + f.length() <= offset);
    Spans {
        files,
        next: first,
        pos: offset,
        end,
    }
}

/// Iterator of [`spans`].
#[derive(Clone, Debug)]
pub struct Spans<'f, E> {
    files: &'f [E],
    next: usize,
    pos: u64,
    end: u64,
}

impl<E: Extent> Iterator for Spans<'_, E> {
    type Item = FileSpan;

    fn next(&mut self) -> Option<FileSpan> {
        while self.pos < self.end {
            let index = self.next;
            let f = self.files.get(index)?;
            self.next += 1;
            let file_end = f.start() + f.length();
            if file_end <= self.pos {
                continue; // an empty file (or one before pos)
            }
            let span_end = file_end.min(self.end);
            let span = FileSpan {
                file_index: index,
                offset_in_file: self.pos - f.start(),
                len: span_end - self.pos,
            };
            self.pos = span_end;
            return Some(span);
        }
        None
    }
}

impl Extent for (u64, u64) {
    fn start(&self) -> u64 {
        self.0
    }
    fn length(&self) -> u64 {
        self.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(start, length)` extents of files of these lengths.
    fn extents(lengths: &[u64]) -> Vec<(u64, u64)> {
        let mut at = 0;
        lengths
            .iter()
            .map(|&l| {
                let e = (at, l);
                at += l;
                e
            })
            .collect()
    }

    fn walk(files: &[(u64, u64)], off: u64, len: u64) -> Vec<(usize, u64, u64)> {
        spans(files, off, len)
            .map(|s| (s.file_index, s.offset_in_file, s.len))
            .collect()
    }

    #[test]
    fn ranges_split_at_file_boundaries_and_skip_empty_files() {
        let f = extents(&[5, 0, 10, 3]);
        assert_eq!(walk(&f, 0, 4), [(0, 0, 4)]);
        assert_eq!(walk(&f, 4, 4), [(0, 4, 1), (2, 0, 3)]);
        assert_eq!(walk(&f, 3, 14), [(0, 3, 2), (2, 0, 10), (3, 0, 2)]);
        assert_eq!(walk(&f, 18, 5), [], "past the end");
        assert_eq!(walk(&f, 17, u64::MAX), [(3, 2, 1)], "clipped at the end");
        assert_eq!(walk(&[], 0, 10), []);
    }
}
