//! Snapshots of a directory tree, to prove what a run changed and what it
//! did not: every path with its kind, bytes (as a hash), mode, owner and
//! link target, read without following links.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub sha256: Option<String>,
    pub link: Option<PathBuf>,
    pub mtime: Option<(i64, i64)>,
}

/// Relative path ("" for the root itself) to what is there.
pub type Tree = BTreeMap<String, Entry>;

/// `root` and everything under it. Without mtimes: undo puts a file's
/// mtime back, but a socket it recreates is new.
pub fn tree(root: &Path) -> Tree {
    snapshot(root, false)
}

/// [`tree`] with mtimes too: for what nothing may even touch.
pub fn tree_with_mtimes(root: &Path) -> Tree {
    snapshot(root, true)
}

/// The paths whose entry differs between two snapshots.
pub fn changed_paths(a: &Tree, b: &Tree) -> Vec<String> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect()
}

fn entry(p: &Path, with_mtime: bool) -> Entry {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special"
    };
    Entry {
        kind,
        mode: m.permissions().mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        sha256: ft.is_file().then(|| {
            let bytes = fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }),
        link: ft
            .is_symlink()
            .then(|| fs::read_link(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))),
        mtime: with_mtime.then(|| (m.mtime(), m.mtime_nsec())),
    }
}

fn snapshot(root: &Path, with_mtime: bool) -> Tree {
    fn walk(root: &Path, dir: &Path, with_mtime: bool, out: &mut Tree) {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        paths.sort();
        for p in paths {
            let e = entry(&p, with_mtime);
            if e.kind == "dir" {
                walk(root, &p, with_mtime, out);
            }
            let rel = p.strip_prefix(root).expect("under the root");
            out.insert(rel.display().to_string(), e);
        }
    }
    let mut out = Tree::new();
    out.insert(String::new(), entry(root, with_mtime));
    walk(root, root, with_mtime, &mut out);
    out
}
