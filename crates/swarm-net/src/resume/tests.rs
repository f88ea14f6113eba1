use std::time::SystemTime;

use swarm_testkit::TestDir;

use super::*;

const HASH: InfoHash = InfoHash([7; 20]);

fn sample() -> ResumeRecord {
    let mut have = Bitfield::empty(11);
    for i in [0, 3, 4, 10] {
        have.set(i);
    }
    ResumeRecord::new(
        HASH,
        16_384,
        &have,
        vec![
            FileStamp {
                path: "dir/a.bin".into(),
                size: 100_000,
                mtime_ns: 1_700_000_000_123_456_789,
            },
            FileStamp {
                path: "b".into(),
                size: 80_224,
                mtime_ns: -5,
            },
        ],
    )
}

#[test]
fn round_trip_through_a_file() {
    let dir = TestDir::new("resume-roundtrip");
    let path = record_path(dir.path(), &HASH);
    assert_eq!(load(&path, &HASH).unwrap(), None, "no record yet");
    let r = sample();
    assert_eq!(ResumeRecord::decode(&r.encode()).unwrap(), r);
    write_atomically(&path, &r).unwrap();
    assert_eq!(load(&path, &HASH).unwrap(), Some(r.clone()));
    assert_eq!(
        r.have().unwrap().iter_ones().collect::<Vec<_>>(),
        [0, 3, 4, 10]
    );
    // A newer record replaces it; no temporary file stays behind.
    let mut r2 = r.clone();
    r2.have = vec![0xff, 0xe0];
    write_atomically(&path, &r2).unwrap();
    assert_eq!(load(&path, &HASH).unwrap(), Some(r2));
    assert!(!temp_path(&path).exists());
}

#[test]
fn truncated_garbage_and_foreign_records_are_rejected() {
    let bytes = sample().encode();
    // Every truncation, including the empty file.
    for n in 0..bytes.len() {
        assert!(
            ResumeRecord::decode(&bytes[..n]).is_err(),
            "truncated to {n}"
        );
    }
    // Every single flipped bit.
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            assert!(ResumeRecord::decode(&b).is_err(), "byte {i} bit {bit}");
        }
    }
    // Garbage of various lengths, from a fixed seed.
    let mut rng = swarm_engine::rng::Rng::new(5);
    for len in [0usize, 1, 27, 28, 100, 4096] {
        let g: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        assert!(ResumeRecord::decode(&g).is_err(), "garbage of {len}");
    }
    // Well-formed but unusable: another version, another torrent, bad spare bits.
    let mut v2 = sample();
    v2.version = 2;
    assert!(matches!(
        ResumeRecord::decode(&v2.encode()),
        Err(ResumeError::Version(2))
    ));
    let mut spare = sample();
    spare.have[1] |= 0x01;
    assert!(matches!(
        ResumeRecord::decode(&spare.encode()),
        Err(ResumeError::Corrupt(_))
    ));
    let dir = TestDir::new("resume-reject");
    let path = record_path(dir.path(), &HASH);
    write_atomically(&path, &sample()).unwrap();
    assert!(matches!(
        load(&path, &InfoHash([8; 20])),
        Err(ResumeError::Foreign)
    ));
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(load(&path, &HASH), Err(ResumeError::Corrupt(_))));
}

/// Files of `sizes` laid end to end, cut into pieces of `piece_len`: the
/// file indexes each piece overlaps.
fn layout(sizes: &[u64], piece_len: u64) -> Vec<Vec<usize>> {
    let total: u64 = sizes.iter().sum();
    let pieces = total.div_ceil(piece_len);
    (0..pieces)
        .map(|p| {
            let (lo, hi) = (p * piece_len, ((p + 1) * piece_len).min(total));
            let mut start = 0;
            let mut touched = Vec::new();
            for (i, &s) in sizes.iter().enumerate() {
                if s > 0 && start < hi && lo < start + s {
                    touched.push(i);
                }
                start += s;
            }
            touched
        })
        .collect()
}

#[test]
fn an_mtime_change_untrusts_exactly_the_pieces_touching_that_file() {
    // Three files of 10, 6 and 8 bytes in pieces of 4: piece 2 spans files
    // 0 and 1, piece 3 is file 1 alone, pieces 4 and 5 are file 2.
    let sizes = [10u64, 6, 8];
    let map = layout(&sizes, 4);
    assert_eq!(
        map,
        vec![vec![0], vec![0], vec![0, 1], vec![1], vec![2], vec![2]]
    );
    let dir = TestDir::new("resume-trust");
    let names = ["a", "sub/b", "c"];
    fs::create_dir_all(dir.path().join("sub")).unwrap();
    for (n, s) in names.iter().zip(sizes) {
        fs::write(dir.path().join(n), vec![1u8; s as usize]).unwrap();
    }
    let stamps = |dir: &TestDir| -> Vec<Option<FileStamp>> {
        names
            .iter()
            .map(|n| FileStamp::of(dir.path(), n).unwrap())
            .collect()
    };
    let now = stamps(&dir);
    let mut have = Bitfield::full(6);
    have.clear(5);
    let files = now.iter().map(|s| s.clone().unwrap()).collect();
    let record = ResumeRecord::new(HASH, 4, &have, files);
    let trust = |current: &[Option<FileStamp>]| -> Vec<u32> {
        trusted_pieces(&record, 4, 6, |i| map[i as usize].clone(), current)
            .iter_ones()
            .collect()
    };
    // Unchanged: all recorded pieces, and never one the record lacks.
    assert_eq!(trust(&now), [0, 1, 2, 3, 4]);

    // Touch file 1 (one second later): pieces 2 and 3 are no longer trusted.
    let f = File::options()
        .write(true)
        .open(dir.path().join("sub/b"))
        .unwrap();
    let later = SystemTime::UNIX_EPOCH
        + Duration::from_nanos(now[1].as_ref().unwrap().mtime_ns as u64)
        + Duration::from_secs(1);
    f.set_modified(later).unwrap();
    let touched = stamps(&dir);
    assert_ne!(touched[1], now[1]);
    assert_eq!(touched[0], now[0]);
    assert_eq!(trust(&touched), [0, 1, 4]);

    // A size change or a missing file untrusts that file's pieces too.
    let mut resized = now.clone();
    resized[2].as_mut().unwrap().size += 1;
    assert_eq!(trust(&resized), [0, 1, 2, 3]);
    let mut missing = now.clone();
    missing[0] = None;
    assert_eq!(trust(&missing), [3, 4]);
    // Another layout trusts nothing.
    assert!(trusted_pieces(&record, 8, 3, |i| map[i as usize].clone(), &now).is_none_set());
    assert!(trusted_pieces(&record, 4, 6, |i| map[i as usize].clone(), &now[..2]).is_none_set());
}

#[test]
fn a_temp_file_left_by_a_crash_does_not_break_the_next_load() {
    let dir = TestDir::new("resume-crash");
    let path = record_path(dir.path(), &HASH);
    let r = sample();
    write_atomically(&path, &r).unwrap();
    // A crash between "write temp" and "rename": a half-written temp file.
    let half = &r.encode()[..30];
    fs::write(temp_path(&path), half).unwrap();
    assert_eq!(load(&path, &HASH).unwrap(), Some(r.clone()));
    // A crash before the first record ever was renamed: only the temp file.
    let other = record_path(dir.path(), &InfoHash([9; 20]));
    fs::write(temp_path(&other), b"garbage").unwrap();
    assert_eq!(load(&other, &InfoHash([9; 20])).unwrap(), None);
    // The next save overwrites the leftover and succeeds.
    let mut r2 = r.clone();
    r2.have = vec![0, 0];
    write_atomically(&path, &r2).unwrap();
    assert_eq!(load(&path, &HASH).unwrap(), Some(r2));
    assert!(!temp_path(&path).exists());
}
