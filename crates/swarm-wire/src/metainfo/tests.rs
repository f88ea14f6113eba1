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

use swarm_testkit::raw_bencode::{B, bytes, s};

const PIECE: i128 = 16384;

fn single_raw(name: B, length: i128, piece: i128, pieces_len: usize) -> Vec<u8> {
    bytes(&B::D(vec![(
        "info",
        B::D(vec![
            ("length", B::I(length)),
            ("name", name),
            ("piece length", B::I(piece)),
            ("pieces", B::S(vec![1; pieces_len])),
        ]),
    )]))
}

fn single(name: &str, length: i128, piece: i128, pieces_len: usize) -> Vec<u8> {
    single_raw(s(name), length, piece, pieces_len)
}

fn multi_raw(files: Vec<(B, i128)>, piece: i128) -> Vec<u8> {
    let total: i128 = files.iter().map(|f| f.1.max(0)).sum();
    let n = if piece > 0 {
        (total + piece - 1) / piece
    } else {
        1
    };
    let n = n.clamp(0, 1000) as usize;
    bytes(&B::D(vec![(
        "info",
        B::D(vec![
            (
                "files",
                B::L(
                    files
                        .into_iter()
                        .map(|(path, len)| B::D(vec![("length", B::I(len)), ("path", path)]))
                        .collect(),
                ),
            ),
            ("name", s("top")),
            ("piece length", B::I(piece)),
            ("pieces", B::S(vec![7; 20 * n])),
        ]),
    )]))
}

fn path(components: &[&str]) -> B {
    B::L(components.iter().map(|c| s(c)).collect())
}

fn multi(files: &[(&[&str], i128)], piece: i128) -> Vec<u8> {
    multi_raw(files.iter().map(|(p, l)| (path(p), *l)).collect(), piece)
}

fn refused(label: &str, input: &[u8], check: impl Fn(&MetainfoError) -> bool) {
    match Metainfo::from_bytes(input) {
        Ok(m) => panic!("{label}: accepted {m:?}"),
        Err(e) => assert!(check(&e), "{label}: {e:?} ({e})"),
    }
}

fn is_unsafe(e: &MetainfoError) -> bool {
    matches!(e, MetainfoError::UnsafePath { .. })
}

#[test]
fn well_formed_single_file() {
    let m = Metainfo::from_bytes(&single("a.iso", 3 * PIECE + 5, PIECE, 80)).unwrap();
    assert!(m.is_single_file());
    assert_eq!(m.name(), "a.iso");
    assert_eq!(m.files().len(), 1);
    assert_eq!(m.files()[0].path, ["a.iso"]);
    assert_eq!(m.total_length(), 3 * 16384 + 5);
    assert_eq!(m.lengths().num_pieces(), 4);
    assert_eq!(m.piece_hashes().len(), 4);
    assert!(m.tracker_tiers().is_empty());
}

#[test]
fn info_hash_is_of_the_raw_info_bytes() {
    let input = single("a", 5, PIECE, 20);
    let m = Metainfo::from_bytes(&input).unwrap();
    let start = input.windows(6).position(|w| w == b"4:info").unwrap() + 6;
    let info = &input[start..input.len() - 1];
    assert_eq!(m.info_bytes(), info);
    assert_eq!(m.info_hash(), InfoHash::of_info(info));
    let from_info = Metainfo::from_info_bytes(info).unwrap();
    assert_eq!(from_info.info_hash(), m.info_hash());
}

#[test]
fn unknown_keys_are_kept_in_the_hash() {
    // An extra info key (`source`, as private trackers add) changes the hash.
    let plain = single("a", 5, PIECE, 20);
    let with_source = bytes(&B::D(vec![(
        "info",
        B::D(vec![
            ("length", B::I(5)),
            ("name", s("a")),
            ("piece length", B::I(PIECE)),
            ("pieces", B::S(vec![1; 20])),
            ("source", s("XYZ")),
        ]),
    )]));
    let a = Metainfo::from_bytes(&plain).unwrap();
    let b = Metainfo::from_bytes(&with_source).unwrap();
    assert_ne!(a.info_hash(), b.info_hash());
    assert!(
        b.info_bytes()
            .windows(b"6:source".len())
            .any(|w| w == b"6:source")
    );
}

#[test]
fn outer_dict_may_be_unsorted_but_not_repeated() {
    let info = B::D(vec![
        ("length", B::I(5)),
        ("name", s("a")),
        ("piece length", B::I(PIECE)),
        ("pieces", B::S(vec![1; 20])),
    ]);
    let unsorted = bytes(&B::D(vec![
        ("info", info),
        ("announce", s("http://t/announce")),
        ("comment", B::S(vec![0xff, b'x'])),
    ]));
    let m = Metainfo::from_bytes(&unsorted).unwrap();
    assert_eq!(m.announce(), Some("http://t/announce"));
    assert_eq!(m.tracker_tiers(), [vec!["http://t/announce".to_string()]]);
    assert_eq!(m.comment(), Some("\u{fffd}x"), "free text is lossy");

    let mut twice = b"d4:info".to_vec();
    twice.extend_from_slice(&single("a", 5, PIECE, 20)[7..]);
    twice.pop();
    twice.extend_from_slice(&single("b", 5, PIECE, 20)[1..]);
    refused(
        "two info dicts",
        &twice,
        |e| matches!(e, MetainfoError::DuplicateKey(k) if k == "info"),
    );
}

#[test]
fn announce_list_wins_over_announce() {
    let input = bytes(&B::D(vec![
        ("announce", s("http://a/")),
        (
            "announce-list",
            B::L(vec![
                B::L(vec![s("http://b/"), s("udp://c:1")]),
                B::L(vec![]),
                B::L(vec![s("http://a/")]),
            ]),
        ),
        (
            "info",
            B::D(vec![
                ("length", B::I(5)),
                ("name", s("a")),
                ("piece length", B::I(PIECE)),
                ("pieces", B::S(vec![1; 20])),
                ("private", B::I(1)),
            ]),
        ),
    ]));
    let m = Metainfo::from_bytes(&input).unwrap();
    assert!(m.is_private());
    assert_eq!(
        m.tracker_tiers(),
        [
            vec!["http://b/".to_string(), "udp://c:1".into()],
            vec!["http://a/".into()]
        ]
    );
}

#[test]
fn non_canonical_info_is_refused_with_its_offset() {
    let input = bytes(&B::D(vec![(
        "info",
        B::D(vec![
            ("name", s("a")),
            ("length", B::I(5)),
            ("piece length", B::I(PIECE)),
            ("pieces", B::S(vec![0; 20])),
        ]),
    )]));
    match Metainfo::from_bytes(&input) {
        Err(MetainfoError::Bencode(DecodeError::UnsortedKey { offset, .. })) => {
            // Offset in the whole file: `d4:info` (7) + `d` + `4:name1:a` (9).
            assert_eq!(offset, 17);
        }
        other => panic!("{other:?}"),
    }
    let leading_zero = bytes(&B::D(vec![(
        "info",
        B::D(vec![
            ("length", B::Raw(b"i05e")),
            ("name", s("a")),
            ("piece length", B::I(PIECE)),
            ("pieces", B::S(vec![0; 20])),
        ]),
    )]));
    refused("leading zero", &leading_zero, |e| {
        matches!(e, MetainfoError::Bencode(DecodeError::LeadingZero { .. }))
    });
}

#[test]
fn hostile_names() {
    for name in [
        "..",
        ".",
        "",
        "../etc",
        "/etc/passwd",
        "/",
        "a\\b",
        "..\\..",
        "a\0b",
    ] {
        refused(
            &format!("name {name:?}"),
            &single(name, 5, PIECE, 20),
            is_unsafe,
        );
    }
    refused(
        "non-UTF-8 name",
        &single_raw(B::S(vec![b'a', 0xff]), 5, PIECE, 20),
        is_unsafe,
    );
    // Names that only look odd are fine.
    for name in ["...", "..a", "a..", ".hidden", "données", "a b"] {
        assert!(
            Metainfo::from_bytes(&single(name, 5, PIECE, 20)).is_ok(),
            "{name:?}"
        );
    }
}

#[test]
fn path_traversal_in_every_spelling() {
    let hostile: &[&[&str]] = &[
        &["..", "..", "etc", "passwd"],
        &["a", "..", "..", "b"],
        &["a/../../b"],
        &["../b"],
        &["/etc/passwd"],
        &["/"],
        &["..\\..\\windows"],
        &["a\\b"],
        &["a", "", "b"],
        &["", "b"],
        &[".", "b"],
        &["a", "."],
        &["a\0"],
    ];
    for p in hostile {
        refused(
            &format!("path {p:?}"),
            &multi(&[(&["ok"], 10), (p, 10)], PIECE),
            is_unsafe,
        );
    }
    refused("empty path list", &multi(&[(&[], 10)], PIECE), is_unsafe);
    refused(
        "non-UTF-8 component",
        &multi_raw(vec![(B::L(vec![B::S(vec![0xc3])]), 10)], PIECE),
        is_unsafe,
    );
    refused(
        "path component not a string",
        &multi_raw(vec![(B::L(vec![B::I(1)]), 10)], PIECE),
        |e| matches!(e, MetainfoError::WrongType { .. }),
    );
}

#[test]
fn colliding_paths() {
    refused(
        "same path twice",
        &multi(&[(&["a"], 10), (&["a"], 10)], PIECE),
        |e| matches!(e, MetainfoError::DuplicatePath(p) if p == "top/a"),
    );
    refused(
        "a file and a folder of the same name",
        &multi(&[(&["a"], 10), (&["a", "b"], 10)], PIECE),
        |e| matches!(e, MetainfoError::FileAndFolder(p) if p == "top/a"),
    );
    refused(
        "a folder, then a file of the same name",
        &multi(&[(&["a", "b", "c"], 10), (&["a", "b"], 10)], PIECE),
        |e| matches!(e, MetainfoError::FileAndFolder(_)),
    );
}

#[test]
fn hostile_lengths() {
    let bad_piece = |e: &MetainfoError| matches!(e, MetainfoError::BadPieceLength(_));
    refused("zero piece length", &single("a", 5, 0, 20), bad_piece);
    refused(
        "negative piece length",
        &single("a", 5, -PIECE, 20),
        bad_piece,
    );
    refused("huge piece length", &single("a", 5, 1 << 40, 20), bad_piece);
    refused(
        "piece length just past the max",
        &single("a", 5, i128::from(PIECE_LENGTH_MAX) + 1, 20),
        bad_piece,
    );
    assert!(
        Metainfo::from_bytes(&single("a", 5, i128::from(PIECE_LENGTH_MAX), 20)).is_ok(),
        "the max itself is fine"
    );
    refused(
        "pieces not a multiple of 20",
        &single("a", 5, PIECE, 21),
        |e| matches!(e, MetainfoError::PiecesNotMultipleOf20(21)),
    );
    refused("too few pieces", &single("a", 3 * PIECE, PIECE, 40), |e| {
        matches!(
            e,
            MetainfoError::WrongPieceCount {
                found: 2,
                expected: 3,
                ..
            }
        )
    });
    refused("too many pieces", &single("a", 5, PIECE, 60), |e| {
        matches!(
            e,
            MetainfoError::WrongPieceCount {
                found: 3,
                expected: 1,
                ..
            }
        )
    });
    refused("negative length", &single("a", -5, PIECE, 20), |e| {
        matches!(e, MetainfoError::NegativeLength { value: -5, .. })
    });
    refused(
        "length past i64",
        &single("a", i128::from(u64::MAX) * 4, PIECE, 20),
        |e| {
            matches!(
                e,
                MetainfoError::Bencode(DecodeError::IntegerOverflow { .. })
            )
        },
    );
    refused(
        "negative file length",
        &multi(&[(&["a"], 10), (&["b"], -10)], PIECE),
        |e| matches!(e, MetainfoError::NegativeLength { .. }),
    );
    refused(
        "files summing past u64",
        &multi(
            &[
                (&["a"], (1 << 63) - 1),
                (&["b"], (1 << 63) - 1),
                (&["c"], 5),
            ],
            1 << 22,
        ),
        |e| matches!(e, MetainfoError::TotalLengthOverflow),
    );
    refused(
        "more pieces than u32 holds",
        &single("a", i128::from(i64::MAX), 1, 0),
        |e| matches!(e, MetainfoError::Lengths(_)),
    );
    refused("no files", &multi(&[], PIECE), |e| {
        matches!(e, MetainfoError::NoFiles)
    });
}

#[test]
fn structural_errors() {
    refused("a list", b"l4:spame", |e| {
        matches!(e, MetainfoError::NotADictionary)
    });
    refused("no info", &bytes(&B::D(vec![("announce", s("x"))])), |e| {
        matches!(e, MetainfoError::Missing("info"))
    });
    refused(
        "info a list",
        &bytes(&B::D(vec![("info", B::L(vec![]))])),
        |e| matches!(e, MetainfoError::WrongType { .. }),
    );
    let both = bytes(&B::D(vec![(
        "info",
        B::D(vec![
            ("files", B::L(vec![])),
            ("length", B::I(5)),
            ("name", s("a")),
            ("piece length", B::I(PIECE)),
            ("pieces", B::S(vec![0; 20])),
        ]),
    )]));
    refused("length and files", &both, |e| {
        matches!(e, MetainfoError::LengthAndFiles)
    });
    let mut trailing = single("a", 5, PIECE, 20);
    trailing.extend_from_slice(b"junk");
    refused("trailing data", &trailing, |e| {
        matches!(e, MetainfoError::Bencode(DecodeError::TrailingData { .. }))
    });
}

// -- the piece ↔ file-span layout --

fn layout(files: &[u64], piece_length: u32) -> Metainfo {
    let names: Vec<String> = (0..files.len()).map(|i| format!("f{i}")).collect();
    let content = NewContent::Folder {
        files: names
            .iter()
            .zip(files)
            .map(|(n, l)| (vec![n.clone()], *l))
            .collect(),
    };
    let total: u64 = files.iter().sum();
    let n = total.div_ceil(u64::from(piece_length)) as usize;
    let (bytes, _) = TorrentBuilder::new("t", piece_length, content, vec![[0; 20]; n])
        .build()
        .unwrap();
    Metainfo::from_bytes(&bytes).unwrap()
}

fn spans(m: &Metainfo, piece: u32) -> Vec<(usize, u64, u64)> {
    let p = m.lengths().validate_piece_index(piece).unwrap();
    m.file_spans(p)
        .map(|s| (s.file_index, s.offset_in_file, s.len))
        .collect()
}

#[test]
fn file_boundaries_inside_pieces() {
    // f0 5 bytes, f1 empty, f2 10, f3 3: 18 bytes in pieces of 4.
    let m = layout(&[5, 0, 10, 3], 4);
    assert_eq!(m.lengths().num_pieces(), 5);
    assert_eq!(spans(&m, 0), [(0, 0, 4)]);
    assert_eq!(spans(&m, 1), [(0, 4, 1), (2, 0, 3)], "empty f1 skipped");
    assert_eq!(spans(&m, 2), [(2, 3, 4)]);
    assert_eq!(spans(&m, 3), [(2, 7, 3), (3, 0, 1)]);
    assert_eq!(spans(&m, 4), [(3, 1, 2)], "last piece is short");
    assert_eq!(m.files()[2].offset, 5);
    assert_eq!(m.files()[3].offset, 15);
}

#[test]
fn empty_files_at_both_ends_and_one_piece_many_files() {
    let m = layout(&[0, 1, 1, 0, 1, 0], 16384);
    assert_eq!(m.lengths().num_pieces(), 1);
    assert_eq!(spans(&m, 0), [(1, 0, 1), (2, 0, 1), (4, 0, 1)]);
}

#[test]
fn block_spans() {
    let m = layout(&[5, 0, 10, 3], 4);
    let got: Vec<_> = m
        .spans(3, 14)
        .map(|s| (s.file_index, s.offset_in_file, s.len))
        .collect();
    assert_eq!(got, [(0, 3, 2), (2, 0, 10), (3, 0, 2)]);
    assert_eq!(m.spans(18, 5).count(), 0, "past the end");
    assert_eq!(m.spans(17, u64::MAX).count(), 1, "clipped at the end");
}

#[test]
fn single_file_spans() {
    let m = Metainfo::from_bytes(&single("a", 2 * PIECE + 1, PIECE, 60)).unwrap();
    assert_eq!(spans(&m, 1), [(0, 16384, 16384)]);
    assert_eq!(spans(&m, 2), [(0, 32768, 1)]);
}

proptest::proptest! {
    /// Walking every piece's spans visits every byte of every file exactly
    /// once, in order, and each span stays inside its piece and its file.
    #[test]
    fn spans_tile_the_files(
        files in proptest::collection::vec(0u64..5000, 1..12),
        piece_length in 1u32..3000,
    ) {
        proptest::prop_assume!(files.iter().sum::<u64>().div_ceil(u64::from(piece_length)) < 20_000);
        let m = layout(&files, piece_length);
        let mut expect_file = 0usize;
        let mut expect_offset = 0u64;
        for piece in m.lengths().pieces() {
            let mut in_piece = 0u64;
            for s in m.file_spans(piece) {
                while files[expect_file] == expect_offset {
                    expect_file += 1;
                    expect_offset = 0;
                }
                proptest::prop_assert_eq!((s.file_index, s.offset_in_file), (expect_file, expect_offset));
                proptest::prop_assert!(s.len > 0);
                proptest::prop_assert!(s.offset_in_file + s.len <= files[s.file_index]);
                expect_offset += s.len;
                in_piece += s.len;
            }
            proptest::prop_assert_eq!(in_piece, u64::from(m.lengths().piece_len(piece)));
        }
        let total: u64 = files.iter().sum();
        let done: u64 = files[..expect_file].iter().sum::<u64>() + expect_offset;
        proptest::prop_assert_eq!(done, total);
    }
}

// ---- BEP 47 attributes, pad files, hybrid and v2 ----

/// A multi-file info dict of `(path, length, attr)` (attr "" for none),
/// with `extra` info keys (sorted among the others by the caller's names).
fn attr_torrent(files: &[(&[&str], i128, &str)], piece: i128, version: Option<i128>) -> Vec<u8> {
    let total: i128 = files.iter().map(|f| f.1).sum();
    let n = ((total + piece - 1) / piece) as usize;
    let files = files
        .iter()
        .map(|(p, l, a)| {
            let mut d = Vec::new();
            if !a.is_empty() {
                d.push(("attr", s(a)));
            }
            d.push(("length", B::I(*l)));
            d.push(("path", path(p)));
            B::D(d)
        })
        .collect();
    let mut info = vec![("files", B::L(files))];
    if let Some(v) = version {
        info.push(("meta version", B::I(v)));
    }
    info.push(("name", s("top")));
    info.push(("piece length", B::I(piece)));
    info.push(("pieces", B::S(vec![7; 20 * n])));
    bytes(&B::D(vec![("info", B::D(info))]))
}

fn span_walk(m: &Metainfo, off: u64, len: u64) -> Vec<(usize, u64, u64, bool)> {
    m.spans(off, len)
        .map(|s| {
            let pad = m.files()[s.file_index].attr.pad;
            (s.file_index, s.offset_in_file, s.len, pad)
        })
        .collect()
}

#[test]
fn libtorrent_pads_share_a_path_and_are_not_listed() {
    // libtorrent's layout: each file but the last padded to a piece
    // boundary, every pad named `.pad/<size>` (two of size 6 here).
    let m = Metainfo::from_bytes(&attr_torrent(
        &[
            (&["a"], 10, ""),
            (&[".pad", "6"], 6, "p"),
            (&["b"], 10, "x"),
            (&[".pad", "6"], 6, "p"),
            (&["c"], 3, "hz?"),
        ],
        16,
        None,
    ))
    .unwrap();
    assert_eq!(m.files().len(), 5, "pads stay in the layout");
    let real: Vec<String> = m.real_files().map(|f| f.display_path()).collect();
    assert_eq!(real, ["top/a", "top/b", "top/c"]);
    assert_eq!(m.pad_files(), (2, 12));
    assert!(m.files()[2].attr.executable);
    assert!(
        m.files()[4].attr.hidden,
        "unknown letters ignored, known kept"
    );
    assert_eq!(m.total_length(), 35);
    // A pad at a piece's end, then one a piece wholly of a real file.
    assert_eq!(span_walk(&m, 0, 16), [(0, 0, 10, false), (1, 0, 6, true)]);
    assert_eq!(span_walk(&m, 32, 3), [(4, 0, 3, false)]);
}

#[test]
fn pads_inside_a_piece_and_a_whole_piece_of_pad() {
    // Piece 4: a 1-byte file, a 2-byte pad, a 1-byte file. Pieces 1 and 2:
    // one pad, whole.
    let m = Metainfo::from_bytes(&attr_torrent(
        &[
            (&["a"], 4, ""),
            (&[".pad", "8"], 8, "p"),
            (&["b"], 1, ""),
            (&["_____padding_file_0_"], 2, ""),
            (&["c"], 1, ""),
        ],
        4,
        None,
    ))
    .unwrap();
    let piece = |i: u32| {
        let p = m.lengths().validate_piece_index(i).unwrap();
        m.file_spans(p)
            .map(|s| {
                (
                    s.file_index,
                    s.offset_in_file,
                    s.len,
                    m.files()[s.file_index].attr.pad,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(piece(1), [(1, 0, 4, true)]);
    assert_eq!(piece(2), [(1, 4, 4, true)]);
    assert_eq!(
        piece(3),
        [(2, 0, 1, false), (3, 0, 2, true), (4, 0, 1, false)]
    );
    assert_eq!(m.pad_files(), (2, 10), "BitComet's names are pads too");
}

#[test]
fn pad_paths_are_still_checked_for_safety() {
    refused(
        "pad with ..",
        &attr_torrent(&[(&["a"], 4, ""), (&["..", "6"], 6, "p")], 16, None),
        is_unsafe,
    );
    // Real files still may not share a path.
    refused(
        "two real files",
        &attr_torrent(&[(&["a"], 4, ""), (&["a"], 6, "")], 16, None),
        |e| matches!(e, MetainfoError::DuplicatePath(_)),
    );
}

fn symlink_torrent(target: &[&str], length: i128) -> Vec<u8> {
    let files = B::L(vec![
        B::D(vec![("length", B::I(5)), ("path", path(&["real"]))]),
        B::D(vec![
            ("attr", s("l")),
            ("length", B::I(length)),
            ("path", path(&["dir", "link"])),
            ("symlink path", path(target)),
        ]),
    ]);
    bytes(&B::D(vec![(
        "info",
        B::D(vec![
            ("files", files),
            ("name", s("top")),
            ("piece length", B::I(16)),
            ("pieces", B::S(vec![7; 20])),
        ]),
    )]))
}

#[test]
fn symlinks_stay_inside_the_torrent_folder() {
    let m = Metainfo::from_bytes(&symlink_torrent(&["real"], 0)).unwrap();
    assert_eq!(m.files()[1].attr.symlink, Some(vec!["real".to_string()]));
    for target in [&["..", "etc"][..], &["/etc/passwd"], &[""], &[]] {
        refused("symlink out", &symlink_torrent(target, 0), |e| {
            matches!(e, MetainfoError::SymlinkOutside { .. })
        });
    }
    let err = Metainfo::from_bytes(&symlink_torrent(&["..", "x"], 0)).unwrap_err();
    assert!(
        err.to_string().contains("outside the torrent's folder"),
        "{err}"
    );
    refused("link with data", &symlink_torrent(&["real"], 3), |e| {
        matches!(e, MetainfoError::SymlinkWithData(_))
    });
}

#[test]
fn hybrid_torrents_use_the_v1_half_and_v2_only_ones_are_refused() {
    let v1 = attr_torrent(&[(&["a"], 10, "")], 16, None);
    let m = Metainfo::from_bytes(&v1).unwrap();
    assert_eq!((m.version(), m.info_hash_v2()), (MetaVersion::V1, None));

    let hybrid = attr_torrent(&[(&["a"], 10, "")], 16, Some(2));
    let m = Metainfo::from_bytes(&hybrid).unwrap();
    assert_eq!(m.version(), MetaVersion::Hybrid);
    let want: [u8; 32] = sha2::Sha256::digest(m.info_bytes()).into();
    assert_eq!(m.info_hash_v2(), Some(want));
    assert_eq!(m.info_hash(), InfoHash::of_info(m.info_bytes()));

    // v2-only: `meta version` 2, a `file tree`, no `pieces`.
    let v2 = bytes(&B::D(vec![(
        "info",
        B::D(vec![
            ("file tree", B::D(vec![])),
            ("meta version", B::I(2)),
            ("name", s("top")),
            ("piece length", B::I(16384)),
        ]),
    )]));
    let err = Metainfo::from_bytes(&v2).unwrap_err();
    assert_eq!(err, MetainfoError::V2Only);
    assert!(
        err.to_string()
            .contains("v2-only torrents are not supported yet")
    );
    refused(
        "version 3",
        &attr_torrent(&[(&["a"], 10, "")], 16, Some(3)),
        |e| matches!(e, MetainfoError::UnknownVersion(3)),
    );
}

proptest::proptest! {
    /// With pads (libtorrent's: each real file padded to a piece boundary,
    /// plus pads of any size anywhere), the spans still tile the byte
    /// range, and the bytes in pad spans add up to the pads' lengths.
    #[test]
    fn spans_tile_files_with_pads(
        files in proptest::collection::vec((0u64..300, proptest::bool::ANY, 0u64..40), 1..10),
        piece_length in 1u32..200,
    ) {
        let p = u64::from(piece_length);
        let mut list: Vec<(Vec<String>, u64, bool)> = Vec::new();
        let mut at = 0u64;
        for (i, &(len, align, extra_pad)) in files.iter().enumerate() {
            list.push((vec![format!("f{i}")], len, false));
            at += len;
            let to_boundary = (p - at % p) % p;
            let pad = if align { to_boundary } else { extra_pad };
            if pad > 0 {
                list.push((vec![".pad".into(), pad.to_string()], pad, true));
                at += pad;
            }
        }
        proptest::prop_assume!(at > 0 && at.div_ceil(p) < 5000);
        let n = at.div_ceil(p) as usize;
        let enc: Vec<B> = list
            .iter()
            .map(|(path, len, pad)| {
                let mut d = Vec::new();
                if *pad {
                    d.push(("attr", s("p")));
                }
                d.push(("length", B::I(i128::from(*len))));
                d.push(("path", B::L(path.iter().map(|c| s(c)).collect())));
                B::D(d)
            })
            .collect();
        let raw = bytes(&B::D(vec![(
            "info",
            B::D(vec![
                ("files", B::L(enc)),
                ("name", s("top")),
                ("piece length", B::I(i128::from(piece_length))),
                ("pieces", B::S(vec![1; 20 * n])),
            ]),
        )]));
        let m = Metainfo::from_bytes(&raw).unwrap();
        let mut covered = vec![0u64; list.len()];
        let mut pad_bytes = 0u64;
        for piece in m.lengths().pieces() {
            let start = m.lengths().piece_offset(piece);
            let mut pos = start;
            for s in m.file_spans(piece) {
                let f = &m.files()[s.file_index];
                proptest::prop_assert_eq!(f.offset + s.offset_in_file, pos, "contiguous");
                proptest::prop_assert!(s.len > 0 && s.offset_in_file + s.len <= f.length);
                proptest::prop_assert_eq!(f.attr.pad, list[s.file_index].2);
                covered[s.file_index] += s.len;
                if f.attr.pad {
                    pad_bytes += s.len;
                }
                pos += s.len;
            }
            proptest::prop_assert_eq!(pos - start, u64::from(m.lengths().piece_len(piece)));
        }
        let lens: Vec<u64> = list.iter().map(|f| f.1).collect();
        proptest::prop_assert_eq!(covered, lens);
        proptest::prop_assert_eq!(pad_bytes, m.pad_files().1);
    }
}
