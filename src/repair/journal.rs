//! The run manifest: a write-ahead journal of one repair.
//!
//! It is rewritten atomically (temp file, fsync, rename, fsync of the folder)
//! before and after every action, so whatever instant pm2-doctor is killed
//! at, the manifest on disk says which files were backed up and which
//! actions had started. `undo` and the next `repair` work from it.

use super::plan::Action;
use crate::findings::{CheckId, Safety};
use crate::process::Sig;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    BackingUp,
    Applying,
    Complete,
    /// Refused before changing anything (backup failed, cancelled).
    Aborted,
    Undone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    File,
    Dir,
    Socket,
    Symlink,
    /// A named pipe: never opened (that could block), recreated empty by
    /// undo with its mode (Linux).
    Fifo,
    /// A device file: never opened, only recorded; undo cannot recreate it.
    Special,
    Absent,
}

/// One path as it was before the run touched it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub original: PathBuf,
    pub kind: FileKind,
    /// Relative to the run folder; for files and folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<PathBuf>,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<PathBuf>,
    /// Owner, so a file rewritten by root for another user keeps its owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionState {
    Planned,
    Started,
    Done,
    Skipped,
    Failed,
}

/// What a path looks like after an action of ours, so `undo` can tell our
/// change from somebody else's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AfterState {
    Absent,
    File {
        sha256: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRecord {
    pub pid: u32,
    pub start_time: u64,
    pub cmdline: String,
    pub signals: Vec<Sig>,
    pub outcome: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub seq: usize,
    pub check: CheckId,
    pub safety: Safety,
    pub action: Action,
    pub description: String,
    pub state: ActionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The state of each path this action changed, keyed by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<(PathBuf, AfterState)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<SignalRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub run_id: String,
    pub home: PathBuf,
    pub tool_version: String,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub state: RunState,
    pub files: Vec<FileRecord>,
    pub actions: Vec<ActionRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write {path}: {err}")]
    Write { path: PathBuf, err: std::io::Error },
    #[error("cannot read {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path} is not a pm2-doctor manifest: {err}")]
    Parse {
        path: PathBuf,
        err: serde_json::Error,
    },
    #[error("{path} has schema version {found}, this pm2-doctor reads {SCHEMA_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Writes `bytes` to `path` so that readers see the old or the new content,
/// never a mix: a temp file beside it, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.pm2-doctor-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        #[cfg(unix)]
        if let Some(m) = mode {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(m))?;
        }
        #[cfg(not(unix))]
        let _ = mode;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes a rename durable. Best effort: not every platform or file system
/// can open a folder for syncing.
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

impl Manifest {
    pub fn save(&self, run_dir: &Path) -> Result<(), JournalError> {
        let path = run_dir.join(MANIFEST);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| JournalError::Write {
            path: path.clone(),
            err: std::io::Error::other(e),
        })?;
        write_atomic(&path, &bytes, Some(0o600)).map_err(|err| JournalError::Write { path, err })
    }

    pub fn load(run_dir: &Path) -> Result<Manifest, JournalError> {
        let path = run_dir.join(MANIFEST);
        let (bytes, _) = crate::home::read_capped(&path, 64 * 1024 * 1024).map_err(|err| {
            JournalError::Read {
                path: path.clone(),
                err,
            }
        })?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|err| JournalError::Parse {
            path: path.clone(),
            err,
        })?;
        if m.schema_version != SCHEMA_VERSION {
            return Err(JournalError::Version {
                path,
                found: m.schema_version,
            });
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dump.pm2");
        fs::write(&p, "old").unwrap();
        write_atomic(&p, b"new", Some(0o600)).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn garbage_manifests_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Manifest::load(dir.path()),
            Err(JournalError::Read { .. })
        ));
        fs::write(dir.path().join(MANIFEST), "{not json").unwrap();
        let e = Manifest::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("not a pm2-doctor manifest"), "{e}");
    }
}
