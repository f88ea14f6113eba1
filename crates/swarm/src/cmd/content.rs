//! Listing the content of a new torrent: one file, or every file under a
//! folder in a stable order.
//!
//! Order: at each level, entries sorted by the bytes of their names, so the
//! whole list is sorted by path components compared as bytes (`a/z` before
//! `a.txt`, because `a` < `a.txt`). The same folder gives the same torrent on
//! every machine and file system.
//!
//! Nothing is skipped silently. Hidden files are included. Symbolic links are
//! refused (not followed): following them could leave the folder, loop, or
//! share one file twice; the error names the link. Sockets, FIFOs and devices
//! are refused too. File names must be UTF-8 (BEP 3 paths are UTF-8). Empty
//! folders cannot be represented in a torrent: they are reported on stderr.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::bad_input;

/// One file of the content, in torrent order.
#[derive(Debug, Clone)]
pub struct ContentFile {
    /// Where to read it.
    pub path: PathBuf,
    /// Its length when the content was listed; a file that changed since then
    /// fails the hashing (the torrent would not match the data).
    pub length: u64,
}

/// Files a new torrent may hold at most (a limit against runaway walks; the
/// metainfo of 1 M files is already ~100 MB).
pub const FILES_MAX: usize = 1_000_000;
/// Folder depth at most (a limit on recursion).
pub const DEPTH_MAX: usize = 64;

/// The content of a new torrent.
#[derive(Debug)]
pub struct Content {
    /// The torrent's name: the file's or the folder's own name.
    pub name: String,
    /// True for a folder (a multi-file torrent, even with one file inside).
    pub is_dir: bool,
    /// The files in torrent order with their paths inside the folder (empty
    /// for a single file).
    pub files: Vec<(Vec<String>, ContentFile)>,
    /// Empty folders found (not representable; reported).
    pub empty_dirs: Vec<PathBuf>,
}

impl Content {
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|(_, f)| f.length).sum()
    }
}

/// Lists `path`: a regular file or a folder.
pub fn list(path: &Path) -> Result<Content> {
    let meta =
        fs::symlink_metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    // The path given on the command line may itself be a link (`swarm create
    // latest/`): that one is followed, as the user named it explicitly.
    let meta = if meta.file_type().is_symlink() {
        fs::metadata(path).with_context(|| format!("cannot follow {}", path.display()))?
    } else {
        meta
    };
    let name = top_name(path)?;
    if meta.is_file() {
        return Ok(Content {
            name,
            is_dir: false,
            files: vec![(
                Vec::new(),
                ContentFile {
                    path: path.to_path_buf(),
                    length: meta.len(),
                },
            )],
            empty_dirs: Vec::new(),
        });
    }
    if !meta.is_dir() {
        return Err(bad_input(format!(
            "{} is neither a regular file nor a folder",
            path.display()
        )));
    }
    let mut content = Content {
        name,
        is_dir: true,
        files: Vec::new(),
        empty_dirs: Vec::new(),
    };
    walk(path, &mut Vec::new(), &mut content)?;
    Ok(content)
}

/// The torrent name for `path`: its last component, after resolving `.`/`..`
/// (so `swarm create .` is named after the current folder).
fn top_name(path: &Path) -> Result<String> {
    let canonical =
        fs::canonicalize(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let name = canonical.file_name().ok_or_else(|| {
        bad_input(format!(
            "{} has no name to give the torrent",
            path.display()
        ))
    })?;
    utf8(name, &canonical)
}

fn utf8(name: &std::ffi::OsStr, full: &Path) -> Result<String> {
    name.to_str().map(str::to_owned).ok_or_else(|| {
        bad_input(format!(
            "{} is not valid UTF-8; torrent paths must be UTF-8 (rename it)",
            full.display()
        ))
    })
}

fn walk(dir: &Path, rel: &mut Vec<String>, content: &mut Content) -> Result<()> {
    if rel.len() >= DEPTH_MAX {
        return Err(bad_input(format!(
            "{} is nested deeper than {DEPTH_MAX} folders",
            dir.display()
        )));
    }
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        entries.push(entry);
    }
    entries.sort_by(|a, b| {
        a.file_name()
            .as_encoded_bytes()
            .cmp(b.file_name().as_encoded_bytes())
    });
    if entries.is_empty() {
        content.empty_dirs.push(dir.to_path_buf());
    }
    for entry in entries {
        let path = entry.path();
        let name = utf8(&entry.file_name(), &path)?;
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", path.display()))?;
        rel.push(name);
        if kind.is_symlink() {
            return Err(bad_input(format!(
                "{} is a symbolic link; swarm create does not follow links inside the folder \
                 (replace it with a copy or remove it)",
                path.display()
            )));
        } else if kind.is_dir() {
            walk(&path, rel, content)?;
        } else if kind.is_file() {
            if content.files.len() >= FILES_MAX {
                return Err(bad_input(format!("more than {FILES_MAX} files")));
            }
            let length = entry
                .metadata()
                .with_context(|| format!("cannot stat {}", path.display()))?
                .len();
            content
                .files
                .push((rel.clone(), ContentFile { path, length }));
        } else {
            return Err(bad_input(format!(
                "{} is not a regular file (socket, FIFO or device); remove it from the folder",
                path.display()
            )));
        }
        rel.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_order_is_by_component_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("top");
        for p in ["a.txt", "a/z", "B", "a/b/c", "é", "e", ".hidden"] {
            let p = root.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, b"x").unwrap();
        }
        fs::create_dir_all(root.join("empty")).unwrap();
        let c = list(&root).unwrap();
        assert_eq!(c.name, "top");
        assert!(c.is_dir);
        let paths: Vec<String> = c.files.iter().map(|(p, _)| p.join("/")).collect();
        assert_eq!(paths, [".hidden", "B", "a/b/c", "a/z", "a.txt", "e", "é"]);
        assert_eq!(c.empty_dirs, [root.join("empty")]);
        assert_eq!(c.total_size(), 7);
    }

    #[test]
    fn symlinks_inside_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("top");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("real"), b"x").unwrap();
        std::os::unix::fs::symlink("real", root.join("link")).unwrap();
        let err = list(&root).unwrap_err();
        assert!(err.is::<super::super::BadInput>());
        assert!(format!("{err:#}").contains("link"), "{err:#}");
    }

    #[test]
    fn single_file_keeps_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("movie.mkv");
        fs::write(&p, b"abc").unwrap();
        let c = list(&p).unwrap();
        assert_eq!(c.name, "movie.mkv");
        assert!(!c.is_dir);
        assert_eq!(c.total_size(), 3);
    }
}
