//! Access lists: `--whitelist FILE` (only these info-hashes are tracked) or
//! `--blacklist FILE` (these are refused). One info-hash a line, 40 hex
//! digits; blank lines and `#` comments are skipped. Re-read on SIGHUP: the
//! new list goes to every worker as a message (each holds its own `Arc`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use swarm_wire::metainfo::InfoHash;

/// Most info-hashes read from one list file.
pub const ACCESS_LIST_LEN_MAX: usize = 10_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessMode {
    Whitelist,
    Blacklist,
}

/// Where an access list comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessSource {
    pub mode: AccessMode,
    pub path: PathBuf,
}

/// A loaded access list (or none: everything allowed).
#[derive(Clone, Debug, Default)]
pub struct AccessList {
    list: Option<(AccessMode, HashSet<InfoHash>)>,
}

impl AccessList {
    /// Everything allowed.
    pub fn open() -> Self {
        AccessList::default()
    }

    pub fn load(source: &AccessSource) -> Result<Self, String> {
        let text = std::fs::read_to_string(&source.path)
            .map_err(|e| format!("{}: {e}", source.path.display()))?;
        Ok(AccessList {
            list: Some((source.mode.clone(), parse(&text, &source.path)?)),
        })
    }

    /// `None` if `info_hash` may be tracked, else the failure reason.
    pub fn refusal(&self, info_hash: &InfoHash) -> Option<&'static str> {
        match &self.list {
            None => None,
            Some((AccessMode::Whitelist, set)) if !set.contains(info_hash) => {
                Some("torrent not registered with this tracker")
            }
            Some((AccessMode::Blacklist, set)) if set.contains(info_hash) => {
                Some("torrent is blacklisted on this tracker")
            }
            Some(_) => None,
        }
    }

    pub fn len(&self) -> usize {
        self.list.as_ref().map_or(0, |(_, s)| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn parse(text: &str, path: &Path) -> Result<HashSet<InfoHash>, String> {
    let mut set = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || format!("{}:{}: not a 40-digit hex info-hash", path.display(), n + 1);
        if line.len() != 40 || !line.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut h = [0u8; 20];
        for (i, byte) in h.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&line[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        if set.len() == ACCESS_LIST_LEN_MAX {
            return Err(format!(
                "{}: more than {ACCESS_LIST_LEN_MAX} info-hashes",
                path.display()
            ));
        }
        set.insert(InfoHash(h));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_lines_and_refuses_garbage() {
        let p = Path::new("list");
        let set = parse(
            "# comment\n\nAAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  # tail\n",
            p,
        )
        .expect("ok");
        assert!(set.contains(&InfoHash([0xaa; 20])));
        assert!(parse("abc\n", p).is_err());
        assert!(parse(&"zz".repeat(20), p).is_err());
        assert!(parse(&"é".repeat(20), p).is_err());
        assert!(
            parse(&format!("a{}a", "é".repeat(19)), p).is_err(),
            "refused, not sliced mid-char"
        );
    }
}
