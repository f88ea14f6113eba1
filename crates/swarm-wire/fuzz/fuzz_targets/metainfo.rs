//! Metainfo: no panic on any input; an accepted torrent has safe paths, one
//! hash per piece, and file spans that cover every piece exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_wire::metainfo::Metainfo;

fuzz_target!(|data: &[u8]| {
    let _ = Metainfo::from_info_bytes(data);
    let Ok(m) = Metainfo::from_bytes(data) else {
        return;
    };
    assert_eq!(
        m.piece_hashes().len() as u64,
        u64::from(m.lengths().num_pieces())
    );
    for f in m.files() {
        for c in &f.path {
            assert!(!c.is_empty() && c != "." && c != "..");
            assert!(!c.contains(['/', '\\', '\0']));
        }
    }
    for p in m.lengths().pieces().take(1024) {
        let covered: u64 = m.file_spans(p).map(|s| s.len).sum();
        assert_eq!(covered, u64::from(m.lengths().piece_len(p)));
    }
});
