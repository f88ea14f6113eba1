//! Bencode memory: what a decoded tree costs for hostile shapes (many tiny
//! values), and that real torrents with many files still decode.
//!
//! `tree_bytes` is the heap the tree holds (every list and dict buffer, by
//! capacity); the ignored `report` also prints the growth of the process's
//! peak RSS around each decode (Linux; an underestimate once earlier decodes
//! left freed heap behind): run it with
//! `cargo test -p swarm-wire --test bencode_memory -- --ignored --nocapture --test-threads=1`.

use std::mem::size_of;

use swarm_wire::bencode::{DecodeError, Kind, VALUES_MAX, Value, decode, decode_lenient};
use swarm_wire::metainfo::{Metainfo, NewContent, TorrentBuilder};

/// Heap bytes held by the tree under `v` (buffers by capacity; not counting
/// the allocator's own overhead).
fn tree_bytes(v: &Value<'_>) -> usize {
    match v.kind() {
        Kind::List(items) => {
            items.capacity() * size_of::<Value<'_>>() + items.iter().map(tree_bytes).sum::<usize>()
        }
        Kind::Dict(entries) => {
            entries.capacity() * size_of::<(&[u8], Value<'_>)>()
                + entries.iter().map(|(_, v)| tree_bytes(v)).sum::<usize>()
        }
        _ => 0,
    }
}

fn count_values(v: &Value<'_>) -> usize {
    1 + match v.kind() {
        Kind::List(items) => items.iter().map(count_values).sum(),
        Kind::Dict(entries) => entries.iter().map(|(_, v)| count_values(v)).sum(),
        _ => 0,
    }
}

/// `open` + `item` × n + `close`.
fn repeated(open: &[u8], item: &[u8], n: usize, close: &[u8]) -> Vec<u8> {
    let mut out = open.to_vec();
    for _ in 0..n {
        out.extend_from_slice(item);
    }
    out.extend_from_slice(close);
    out
}

/// A list of `n` chains of `depth` nested lists (`ll…le…e`).
fn chains(depth: usize, n: usize) -> Vec<u8> {
    let chain = [vec![b'l'; depth], vec![b'e'; depth]].concat();
    repeated(b"l", &chain, n, b"e")
}

/// Hostile shapes (tiny values) holding about `values` values each (exactly,
/// for the first three), by name. Each is one value per 2 to 4 bytes.
fn hostile_shapes(values: usize) -> Vec<(&'static str, Vec<u8>)> {
    let n = values - 1;
    vec![
        ("sibling empty lists (le)", repeated(b"l", b"le", n, b"e")),
        ("sibling zeros (i0e)", repeated(b"l", b"i0e", n, b"e")),
        ("sibling empty strings (0:)", repeated(b"l", b"0:", n, b"e")),
        ("chains of 2 lists (llee)", chains(2, n / 2)),
        ("chains of 63 lists", chains(63, n / 63)),
        (
            "lenient dict of empty lists (0:le)",
            repeated(b"d", b"0:le", n, b"e"),
        ),
    ]
}

/// Peak resident set of this process (VmHWM), in bytes; resettable by
/// writing 5 to /proc/self/clear_refs.
fn peak_rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[test]
#[ignore = "a measurement: prints, asserts nothing"]
fn report() {
    const MIB: usize = 1024 * 1024;
    println!(
        "size_of Value {} B, dict entry {} B",
        size_of::<Value<'_>>(),
        size_of::<(&[u8], Value<'_>)>()
    );
    // 8 Mi values (16 to 31 MiB of input: refused), then the most accepted.
    for values in [8 * MIB, VALUES_MAX] {
        for (name, input) in hostile_shapes(values) {
            reset_peak_rss();
            let before = peak_rss().unwrap_or(0);
            let result = decode_lenient(&input);
            let after = peak_rss().unwrap_or(0);
            match result {
                Ok(v) => {
                    let values = count_values(&v);
                    let tree = tree_bytes(&v);
                    println!(
                        "{name}: input {} MiB, {values} values, tree {} MiB ({:.1} B/value, {:.1}x input), peak RSS +{} MiB",
                        input.len() / MIB,
                        tree / MIB,
                        tree as f64 / values as f64,
                        tree as f64 / input.len() as f64,
                        after.saturating_sub(before) / MIB
                    );
                }
                Err(e) => println!(
                    "{name}: input {} MiB: {e}, peak RSS +{} MiB",
                    input.len() / MIB,
                    after.saturating_sub(before) / MIB
                ),
            }
        }
    }
}

/// Most tree bytes one value may cost: a dict entry (key slice and value).
const TREE_BYTES_PER_VALUE_MAX: usize = size_of::<(&[u8], Value<'static>)>();

#[test]
fn many_tiny_values_are_refused_past_the_budget() {
    for (name, input) in hostile_shapes(VALUES_MAX + 64) {
        for (mode, result) in [
            ("strict", decode(&input)),
            ("lenient", decode_lenient(&input)),
        ] {
            match result {
                Err(DecodeError::TooManyValues { offset, limit }) => {
                    assert_eq!(limit, VALUES_MAX, "{name}");
                    assert!(offset < input.len(), "{name}");
                }
                // The dict shape repeats its key: strict refuses that first.
                Err(DecodeError::DuplicateKey { .. }) if mode == "strict" => {}
                other => panic!("{name}, {mode}: {other:?}"),
            }
        }
    }
    let e = decode(&hostile_shapes(VALUES_MAX + 1)[0].1).unwrap_err();
    // The first value past the budget: `l`, then VALUES_MAX - 1 times `le`.
    let offset = 1 + 2 * (VALUES_MAX - 1);
    assert_eq!(
        e,
        DecodeError::TooManyValues {
            offset,
            limit: VALUES_MAX
        }
    );
    let msg = e.to_string();
    assert!(msg.contains(&format!("byte {offset}")), "{msg}");
    assert!(msg.contains(&VALUES_MAX.to_string()), "{msg}");
    assert_eq!(e.shifted(10).offset(), offset + 10);
}

#[test]
fn the_budget_bounds_the_tree() {
    for (name, input) in hostile_shapes(VALUES_MAX) {
        let v = decode_lenient(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        let values = count_values(&v);
        assert!(values <= VALUES_MAX, "{name}: {values}");
        let tree = tree_bytes(&v);
        // Buffers are shrunk to their length: exactly one slot per value
        // below the root.
        assert!(
            tree <= (values - 1) * TREE_BYTES_PER_VALUE_MAX,
            "{name}: {tree} bytes for {values} values"
        );
        assert!(tree <= VALUES_MAX * TREE_BYTES_PER_VALUE_MAX, "{name}");
    }
}

#[test]
fn a_torrent_of_100_000_files_decodes() {
    const FILES: usize = 100_000;
    let files = (0..FILES)
        .map(|i| {
            (
                vec![format!("dir{:03}", i / 1000), format!("file{i:06}.bin")],
                1000,
            )
        })
        .collect();
    let piece_length = 256 * 1024;
    let total = FILES as u64 * 1000;
    let pieces = total.div_ceil(u64::from(piece_length)) as usize;
    let builder = TorrentBuilder::new(
        "many",
        piece_length,
        NewContent::Folder { files },
        vec![[7; 20]; pieces],
    );
    let (bytes, _) = builder.build().unwrap();
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.files().len(), FILES);
    let values = count_values(&decode(&bytes).unwrap());
    // 5 values per file (dict, length, path list, two components).
    assert!(values > 5 * FILES && values < 5 * FILES + 100, "{values}");
    assert!(values * 3 < VALUES_MAX, "{values}: close to the budget");
}
