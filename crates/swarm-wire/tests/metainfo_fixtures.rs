//! Golden fixtures: torrents written by mktorrent and transmission-create,
//! read the way libtorrent reads them (info-hashes and fields from
//! libtorrent 2.0.8, see `fixtures/README.md`).

use sha1::{Digest, Sha1};
use swarm_wire::bencode;
use swarm_wire::metainfo::Metainfo;

#[test]
fn mktorrent_multi_file() {
    let bytes = include_bytes!("fixtures/mktorrent-multi.torrent");
    let m = Metainfo::from_bytes(bytes).unwrap();
    assert_eq!(
        m.info_hash().to_hex(),
        "36ba56a9f40f78b03d1f44442cf7d9f7742a1313"
    );
    assert_eq!(m.name(), "multi");
    assert!(m.is_private());
    assert!(!m.is_single_file());
    assert_eq!(m.comment(), Some("fixture"));
    assert_eq!(m.created_by(), Some("mktorrent 1.1"));
    let files: Vec<(String, u64, u64)> = m
        .files()
        .iter()
        .map(|f| (f.display_path(), f.length, f.offset))
        .collect();
    assert_eq!(
        files,
        [
            ("multi/a".to_string(), 6, 0),
            ("multi/e".into(), 0, 6),
            ("multi/sub/b".into(), 2, 6)
        ]
    );
    assert_eq!(
        m.tracker_tiers(),
        [
            vec![
                "http://a.example/announce".to_string(),
                "udp://b.example:80".into()
            ],
            vec!["udp://c.example:6969/announce".into()]
        ]
    );
    assert_eq!(m.lengths().piece_length(), 32768);
    let piece = m.lengths().validate_piece_index(0).unwrap();
    let want: [u8; 20] = Sha1::digest(b"hello\nx\n").into();
    assert_eq!(m.piece_hash(piece), &want);
    // The file is canonical bencode, as every real tool writes it.
    assert!(bencode::decode(bytes).is_ok());
}

#[test]
fn transmission_single_file() {
    let bytes = include_bytes!("fixtures/transmission-single.torrent");
    let m = Metainfo::from_bytes(bytes).unwrap();
    assert_eq!(
        m.info_hash().to_hex(),
        "581dcf13d922e65a1672f99a4438f26eabfdfa56"
    );
    assert_eq!(m.name(), "single.bin");
    assert!(m.is_single_file());
    assert!(!m.is_private());
    assert_eq!(m.total_length(), 40_000);
    assert_eq!(m.lengths().num_pieces(), 2);
    assert_eq!(
        m.tracker_tiers(),
        [vec!["http://t.example/announce".to_string()]]
    );
    let last = m.lengths().validate_piece_index(1).unwrap();
    let want: [u8; 20] = Sha1::digest([b'q'; 40_000 - 32_768]).into();
    assert_eq!(m.piece_hash(last), &want);
    let spans: Vec<_> = m.file_spans(last).collect();
    assert_eq!(spans.len(), 1);
    assert_eq!((spans[0].offset_in_file, spans[0].len), (32_768, 7_232));
    // The info dict's bytes are the file's own, and hash to the info-hash.
    let start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
    assert_eq!(&bytes[start..start + m.info_bytes().len()], m.info_bytes());
}
