//! Metainfo unit tests: well-formed torrents, the hostile corpus and the
//! piece ↔ file-span layout.

use super::*;

/// A multi-file torrent of `files` (components inside `top`, length).
fn build_multi(files: &[(&[&str], u64)], piece_length: u32) -> (Vec<u8>, InfoHash) {
    let total: u64 = files.iter().map(|f| f.1).sum();
    let n = total.div_ceil(u64::from(piece_length)) as usize;
    let files = files
        .iter()
        .map(|(p, l)| (p.iter().map(|c| c.to_string()).collect(), *l))
        .collect();
    TorrentBuilder::new(
        "top",
        piece_length,
        NewContent::Folder { files },
        (0..n).map(|i| [i as u8; 20]).collect(),
    )
    .build()
    .unwrap()
}

#[test]
fn builder_output_parses_back() {
    let (bytes, hash) = build_multi(&[(&["a", "x"], 3), (&["b"], 70_000)], 16384);
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.info_hash(), hash);
    assert_eq!(m.name(), "top");
    assert_eq!(m.total_length(), 70_003);
    assert_eq!(m.lengths().num_pieces(), 5);
    assert_eq!(m.files()[1].path, ["top", "b"]);
    assert_eq!(m.files()[1].offset, 3);
    assert!(!m.is_single_file());
    assert_eq!(crate::bencode::decode(&bytes).unwrap().raw(), &bytes[..]);
}
