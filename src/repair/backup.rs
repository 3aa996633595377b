//! Where runs are kept, and the copy/compare/restore primitives on paths.
//!
//! Runs live outside the PM2 home, under the platform data folder
//! (`~/.local/share/pm2-doctor/<home-id>/runs/<run-id>/` on Linux), created
//! owner-only: a backup of `dump.pm2` holds the same secrets the dump does.

use super::journal::{FileKind, FileRecord};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// `<base>/<home-id>`: one folder per PM2 home, holding `runs/` and the lock.
pub fn home_dir_for(base: &Path, home: &Path) -> PathBuf {
    base.join(home_id(home))
}

/// A readable, collision-free folder name for a home: its last component
/// plus a hash of the whole path.
pub fn home_id(home: &Path) -> String {
    let canonical = fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let tail: String = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("{}-{hex}", tail.trim_matches('-'))
}

/// The default base: `$PM2_DOCTOR_BACKUP_DIR`, else the platform data folder.
pub fn default_base(env_override: Option<&str>) -> Option<PathBuf> {
    match env_override.filter(|s| !s.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => dirs::data_local_dir().map(|d| d.join("pm2-doctor")),
    }
}

/// `--backup-dir`, else `$PM2_DOCTOR_BACKUP_DIR`, else the platform data folder.
pub fn base_for(flag: Option<&PathBuf>, env: &crate::home::EnvMap) -> Option<PathBuf> {
    flag.cloned()
        .or_else(|| default_base(env.get("PM2_DOCTOR_BACKUP_DIR").map(String::as_str)))
}

/// Creates a folder and its missing parents, owner-only on Unix.
pub fn create_private_dir(p: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(p)
    }
}

pub fn sha256_file(p: &Path) -> io::Result<String> {
    let mut f = fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

pub fn sha256_bytes(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn mode_of(m: &fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Some(m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        None
    }
}

fn kind_of(m: &fs::Metadata) -> FileKind {
    let ft = m.file_type();
    if ft.is_symlink() {
        return FileKind::Symlink;
    }
    if ft.is_dir() {
        return FileKind::Dir;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_socket() {
            return FileKind::Socket;
        }
        if ft.is_fifo() {
            return FileKind::Fifo;
        }
    }
    if ft.is_file() {
        FileKind::File
    } else {
        FileKind::Special
    }
}

fn owner_of(m: &fs::Metadata) -> (Option<u32>, Option<u32>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (Some(m.uid()), Some(m.gid()))
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        (None, None)
    }
}

/// Gives a rewritten file back to its owner (a repair run by root on a
/// user's home must not leave root-owned files PM2 can no longer write).
pub fn chown_like(p: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    #[cfg(unix)]
    {
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::lchown(p, uid, gid)?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = (p, uid, gid);
        Ok(())
    }
}

/// What is at a path now, for comparing with a record. Never follows links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub kind: FileKind,
    pub sha256: Option<String>,
    pub mode: Option<u32>,
}

pub fn observe(p: &Path) -> io::Result<Observed> {
    let m = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Observed {
                kind: FileKind::Absent,
                sha256: None,
                mode: None,
            })
        }
        Err(e) => return Err(e),
    };
    let kind = kind_of(&m);
    let sha256 = match kind {
        FileKind::File => Some(sha256_file(p)?),
        _ => None,
    };
    Ok(Observed {
        kind,
        sha256,
        mode: mode_of(&m),
    })
}

/// Copies `original` into `run_dir/files/<n>-<name>` and describes it.
/// Every byte is read back through the hash, so a short write is caught.
pub fn back_up(original: &Path, run_dir: &Path, n: usize) -> io::Result<FileRecord> {
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", original.display()));
    let m = match fs::symlink_metadata(original) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(FileRecord {
                original: original.to_path_buf(),
                kind: FileKind::Absent,
                backup: None,
                size: 0,
                mode: None,
                mtime: None,
                sha256: None,
                link_target: None,
                uid: None,
                gid: None,
            })
        }
        Err(e) => return Err(ctx(e)),
    };
    let (uid, gid) = owner_of(&m);
    let kind = kind_of(&m);
    let name = original
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let rel = PathBuf::from("files").join(format!("{n:03}-{name}"));
    let dest = run_dir.join(&rel);
    create_private_dir(&run_dir.join("files")).map_err(ctx)?;
    let mut rec = FileRecord {
        original: original.to_path_buf(),
        kind,
        backup: None,
        size: m.len(),
        mode: mode_of(&m),
        mtime: m
            .modified()
            .ok()
            .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339()),
        sha256: None,
        link_target: None,
        uid,
        gid,
    };
    match kind {
        FileKind::File => {
            fs::copy(original, &dest).map_err(ctx)?;
            let copied = sha256_file(&dest).map_err(ctx)?;
            let source = sha256_file(original).map_err(ctx)?;
            if copied != source {
                return Err(io::Error::other(format!(
                    "{} changed while it was being backed up",
                    original.display()
                )));
            }
            fs::File::open(&dest)
                .and_then(|f| f.sync_all())
                .map_err(ctx)?;
            rec.sha256 = Some(source);
            rec.backup = Some(rel);
        }
        FileKind::Dir => {
            let opts = fs_extra::dir::CopyOptions::new().copy_inside(true);
            fs_extra::dir::copy(original, &dest, &opts)
                .map_err(|e| io::Error::other(format!("{}: {e}", original.display())))?;
            rec.backup = Some(rel);
        }
        FileKind::Symlink => {
            rec.link_target = Some(fs::read_link(original).map_err(ctx)?);
        }
        // A socket has no content; undo recreates an unbound one. A fifo or
        // device is never opened: reading one can block forever. (What a
        // fifo held in transit is not the home's state.)
        FileKind::Socket | FileKind::Fifo | FileKind::Special | FileKind::Absent => {}
    }
    Ok(rec)
}

/// Puts a recorded path back exactly as it was: content, mode, mtime.
pub fn restore(rec: &FileRecord, run_dir: &Path) -> io::Result<()> {
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", rec.original.display()));
    remove_path(&rec.original).map_err(ctx)?;
    match rec.kind {
        FileKind::Absent => Ok(()),
        FileKind::File => {
            let src = run_dir.join(rec.backup.as_deref().unwrap_or(Path::new("")));
            let bytes = fs::read(&src).map_err(ctx)?;
            super::journal::write_atomic(&rec.original, &bytes, rec.mode).map_err(ctx)?;
            chown_like(&rec.original, rec.uid, rec.gid).map_err(ctx)?;
            if let Some(t) = rec
                .mtime
                .as_deref()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(&rec.original)
                    .map_err(ctx)?;
                let _ = f.set_modified(std::time::SystemTime::from(t));
            }
            Ok(())
        }
        FileKind::Dir => {
            let src = run_dir.join(rec.backup.as_deref().unwrap_or(Path::new("")));
            let opts = fs_extra::dir::CopyOptions::new().copy_inside(true);
            fs_extra::dir::copy(&src, &rec.original, &opts)
                .map(drop)
                .map_err(|e| io::Error::other(format!("{}: {e}", rec.original.display())))?;
            chown_like(&rec.original, rec.uid, rec.gid).map_err(ctx)
        }
        FileKind::Symlink => {
            #[cfg(unix)]
            {
                let target = rec.link_target.as_deref().unwrap_or(Path::new(""));
                std::os::unix::fs::symlink(target, &rec.original).map_err(ctx)?;
                chown_like(&rec.original, rec.uid, rec.gid).map_err(ctx)
            }
            #[cfg(not(unix))]
            {
                Err(io::Error::other("restoring symlinks is not supported here"))
            }
        }
        FileKind::Fifo => {
            #[cfg(target_os = "linux")]
            {
                use rustix::fs::{FileType, Mode, CWD};
                let mode = Mode::from_raw_mode(rec.mode.unwrap_or(0o600) & 0o7777);
                rustix::fs::mknodat(CWD, &rec.original, FileType::Fifo, mode, 0)
                    .map_err(|e| ctx(io::Error::from_raw_os_error(e.raw_os_error())))?;
                // mknod applies the umask: set the recorded mode exactly.
                if let Some(m) = rec.mode {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&rec.original, fs::Permissions::from_mode(m & 0o7777))
                        .map_err(ctx)?;
                }
                chown_like(&rec.original, rec.uid, rec.gid).map_err(ctx)
            }
            #[cfg(not(target_os = "linux"))]
            {
                Err(io::Error::other(format!(
                    "{} was a fifo: pm2-doctor cannot recreate it on this platform (mkfifo it by hand)",
                    rec.original.display()
                )))
            }
        }
        FileKind::Special => Err(io::Error::other(format!(
            "{} was a device file: pm2-doctor cannot recreate it",
            rec.original.display()
        ))),
        FileKind::Socket => {
            #[cfg(unix)]
            {
                // Bound and dropped: the same unbound socket file as before.
                drop(std::os::unix::net::UnixListener::bind(&rec.original).map_err(ctx)?);
                chown_like(&rec.original, rec.uid, rec.gid).map_err(ctx)?;
                Ok(())
            }
            #[cfg(not(unix))]
            {
                Ok(())
            }
        }
    }
}

/// Removes whatever is at `p` (a quarantined path is already in the backup).
pub fn remove_path(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
    }
}

/// Total bytes under a folder (for `backups`).
pub fn dir_size(p: &Path) -> u64 {
    fs_extra::dir::get_size(p).unwrap_or(0)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_every_kind() {
        let home = tempfile::tempdir().unwrap();
        let run = tempfile::tempdir().unwrap();
        let file = home.path().join("pm2.pid");
        fs::write(&file, "66696").unwrap();
        let dir = home.path().join("rpc.sock");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("x"), "y").unwrap();
        let sock = home.path().join("pub.sock");
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let link = home.path().join("link.pid");
        std::os::unix::fs::symlink("pm2.pid", &link).unwrap();
        let missing = home.path().join("nothing");
        let recs: Vec<FileRecord> = [&file, &dir, &sock, &link, &missing]
            .iter()
            .enumerate()
            .map(|(i, p)| back_up(p, run.path(), i).unwrap())
            .collect();
        let before: Vec<Observed> = recs.iter().map(|r| observe(&r.original).unwrap()).collect();
        for r in &recs {
            remove_path(&r.original).unwrap();
        }
        fs::write(&missing, "created later").unwrap();
        for r in &recs {
            restore(r, run.path()).unwrap();
        }
        let after: Vec<Observed> = recs.iter().map(|r| observe(&r.original).unwrap()).collect();
        assert_eq!(before, after);
        assert_eq!(fs::read_to_string(dir.join("x")).unwrap(), "y");
        assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from("pm2.pid"));
    }

    /// A fifo squatting on a PM2 path is recorded without being opened
    /// (a read would block) and recreated by undo with its mode.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_fifo_is_recreated_with_its_mode() {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let home = tempfile::tempdir().unwrap();
        let run = tempfile::tempdir().unwrap();
        let fifo = home.path().join("rpc.sock");
        let made = std::process::Command::new("mkfifo")
            .args(["-m", "640"])
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo");
        let rec = back_up(&fifo, run.path(), 0).unwrap();
        assert_eq!(rec.kind, FileKind::Fifo);
        assert_eq!(rec.backup, None, "nothing was read from it");
        let before = observe(&fifo).unwrap();
        remove_path(&fifo).unwrap();
        restore(&rec, run.path()).unwrap();
        let m = fs::symlink_metadata(&fifo).unwrap();
        assert!(m.file_type().is_fifo());
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        assert_eq!(observe(&fifo).unwrap(), before);
    }

    #[test]
    fn home_ids_are_stable_and_distinct() {
        assert_eq!(home_id(Path::new("/x/.pm2")), home_id(Path::new("/x/.pm2")));
        assert_ne!(home_id(Path::new("/x/.pm2")), home_id(Path::new("/y/.pm2")));
        assert!(home_id(Path::new("/x/.pm2")).starts_with("pm2-"));
    }
}
