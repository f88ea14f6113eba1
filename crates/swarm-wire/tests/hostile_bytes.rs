//! Arbitrary and mutated bytes at every decoder of this crate's metainfo
//! side (bencode, metainfo, magnet): errors, never panics. Mutations start
//! from valid torrents, so they reach deep into the parsers instead of
//! failing on the first byte.

use proptest::prelude::*;
use swarm_wire::bencode::{decode, decode_lenient};
use swarm_wire::magnet::Magnet;
use swarm_wire::metainfo::{Metainfo, NewContent, TorrentBuilder};

fn valid_torrent(files: &[(Vec<String>, u64)], piece_length: u32, single: bool) -> Vec<u8> {
    let total: u64 = files.iter().map(|f| f.1).sum();
    let n = total.div_ceil(u64::from(piece_length)) as usize;
    let content = if single {
        NewContent::File { length: total }
    } else {
        NewContent::Folder {
            files: files.to_vec(),
        }
    };
    let mut b = TorrentBuilder::new("name", piece_length, content, vec![[9; 20]; n]);
    b.tiers = vec![vec!["http://a/announce".into(), "udp://b:1".into()]];
    b.comment = Some("c".into());
    b.private = true;
    b.build().unwrap().0
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        Just(b'i'),
        Just(b'e'),
        Just(b'l'),
        Just(b'd'),
        Just(b':'),
        Just(b'-'),
        Just(b'0'),
        Just(b'9'),
        Just(b'/'),
        Just(b'.'),
        any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), interesting.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), interesting).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match *m {
        Mutation::Flip(i, b) => {
            if let Some(x) = bytes.get_mut(i % len) {
                *x ^= b;
            }
        }
        Mutation::Set(i, b) => {
            if let Some(x) = bytes.get_mut(i % len) {
                *x = b;
            }
        }
        Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
        Mutation::Remove(i) => {
            if !bytes.is_empty() {
                bytes.remove(i % len);
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::Duplicate(i, n) => {
            let start = i % len;
            let end = (start + n).min(bytes.len());
            let chunk = bytes[start.min(end)..end].to_vec();
            bytes.splice(end..end, chunk);
        }
    }
}

fn throw_at_everything(bytes: &[u8]) {
    let strict = decode(bytes);
    let lenient = decode_lenient(bytes);
    if let Ok(v) = &strict {
        assert_eq!(v.to_owned_value().encode(), bytes);
        assert_eq!(lenient.as_ref().ok(), Some(v));
    }
    if let Ok(m) = Metainfo::from_bytes(bytes) {
        // Whatever is accepted is consistent.
        assert_eq!(
            m.piece_hashes().len() as u64,
            u64::from(m.lengths().num_pieces())
        );
        let sum: u64 = m.files().iter().map(|f| f.length).sum();
        assert_eq!(sum, m.total_length());
        for f in m.files() {
            for c in &f.path {
                assert!(!c.is_empty() && c != "." && c != "..");
                assert!(!c.contains(['/', '\\', '\0']));
            }
        }
        for p in m.lengths().pieces() {
            let covered: u64 = m.file_spans(p).map(|s| s.len).sum();
            assert_eq!(covered, u64::from(m.lengths().piece_len(p)));
        }
    }
    let _ = Metainfo::from_info_bytes(bytes);
    if let Ok(s) = std::str::from_utf8(bytes) {
        let _ = Magnet::parse(s);
        let _ = Magnet::parse(&format!("magnet:?{s}"));
        let _ = Magnet::parse(&format!("magnet:?xt=urn:btih:{s}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        throw_at_everything(&bytes);
    }

    #[test]
    fn mutated_torrents_never_panic(
        files in prop::collection::vec((prop::collection::vec("[a-z][a-z.]{0,5}", 1..4), 0u64..40_000), 1..5),
        piece_length in prop_oneof![Just(16384u32), Just(32768), 1u32..5000],
        single in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        // Generated paths may collide: keep the sets the builder accepts.
        let total: u64 = files.iter().map(|f| f.1).sum();
        prop_assume!(total.div_ceil(u64::from(piece_length)) < 2000);
        let mut set = std::collections::BTreeSet::new();
        prop_assume!(files.iter().all(|f| set.insert(f.0.clone())));
        prop_assume!(files.iter().all(|f| (1..f.0.len()).all(|k| !set.contains(&f.0[..k]))));
        let mut bytes = valid_torrent(&files, piece_length, single);
        prop_assert!(Metainfo::from_bytes(&bytes).is_ok());
        for m in &mutations {
            apply(&mut bytes, m);
        }
        throw_at_everything(&bytes);
    }

    #[test]
    fn mutated_magnets_never_panic(
        s in "magnet:\\?(xt=urn:btih:[0-9a-fA-FA-Z2-7]{30,42}|dn=[^&]{0,10}|tr=[%0-9a-f:/.]{0,12}|x.pe=[^&]{0,8}|&|=|%|\\+)*",
    ) {
        let _ = Magnet::parse(&s);
        if let Ok(m) = Magnet::parse(&s) {
            // Formatting and parsing again gives the same magnet.
            prop_assert_eq!(Magnet::parse(&m.to_string()), Ok(m));
        }
    }
}
