//! One repair (or undo) per home at a time.
//!
//! The lock is an OS file lock (`flock` on Unix, `LockFileEx` on Windows)
//! on a file next to the runs, not the file's existence: the kernel drops it
//! when its holder dies, however it dies, so there is no stale lock to take
//! over and no window in which two processes both think they took it over.
//! The file itself is never deleted (deleting a locked file lets a second
//! process lock a new file of the same name); it only carries who holds it,
//! for the message a second repair prints.

use crate::process::ProcessControl;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    start_time: u64,
    run_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("a repair or undo of this home is already in progress (pid {pid}, {run_id}); wait for it to finish")]
    Busy { pid: u32, run_id: String },
    #[error("a repair or undo of this home is already in progress; wait for it to finish")]
    BusyUnknown,
    #[error("cannot create the lock {path}: {err}; nothing was changed")]
    Io { path: PathBuf, err: io::Error },
}

/// Held while a repair runs; released on drop (and by the OS on death).
#[derive(Debug)]
pub struct RepairLock {
    /// Always `Some` outside tests (a test takes it to play a death).
    file: Option<fs::File>,
    /// A repair that died while holding the lock, named for the report.
    pub took_over: Option<String>,
}

impl Drop for RepairLock {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            // Emptied so the next holder does not report us as having died.
            let _ = file.set_len(0);
            let _ = file.unlock();
        }
    }
}

fn read_holder(f: &mut fs::File) -> Option<Holder> {
    let mut text = String::new();
    f.seek(io::SeekFrom::Start(0)).ok()?;
    f.take(4096).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn acquire(
    dir: &Path,
    run_id: &str,
    ctl: &mut dyn ProcessControl,
) -> Result<RepairLock, LockError> {
    let path = dir.join("repair.lock");
    let io_err = |err| LockError::Io {
        path: path.clone(),
        err,
    };
    super::backup::create_private_dir(dir).map_err(io_err)?;
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(match read_holder(&mut file) {
                Some(h) => LockError::Busy {
                    pid: h.pid,
                    run_id: h.run_id,
                },
                None => LockError::BusyUnknown,
            })
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err(e)),
    }
    // We hold it. Whatever the file still says is a holder that died.
    let took_over = read_holder(&mut file)
        .map(|h| format!("{} (pid {}) died without finishing", h.run_id, h.pid));
    let me = std::process::id();
    let holder = Holder {
        pid: me,
        start_time: ctl.inspect(me).map(|p| p.start_time).unwrap_or(0),
        run_id: run_id.to_string(),
    };
    let body = serde_json::to_vec(&holder).map_err(|e| io_err(io::Error::other(e)))?;
    file.set_len(0)
        .and_then(|_| file.seek(io::SeekFrom::Start(0)))
        .and_then(|_| file.write_all(&body))
        .and_then(|_| file.sync_all())
        .map_err(io_err)?;
    Ok(RepairLock {
        file: Some(file),
        took_over,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repair::kill::fake::FakeControl;

    #[test]
    fn second_holder_is_refused_and_a_dead_holder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctl = FakeControl::default();
        let first = acquire(dir.path(), "run-a", &mut ctl).unwrap();
        assert!(first.took_over.is_none());
        let err = acquire(dir.path(), "run-b", &mut ctl).unwrap_err();
        assert!(err.to_string().contains("run-a"), "{err}");
        // A holder that dies leaves its name in the file, not the lock:
        // its handle closes without the release that empties the file.
        let path = dir.path().join("repair.lock");
        let mut first = first;
        drop(first.file.take());
        let second = acquire(dir.path(), "run-c", &mut ctl).unwrap();
        assert!(second.took_over.as_deref().unwrap_or("").contains("run-a"));
        drop(second);
        assert!(path.exists(), "the lock file is never deleted");
        let third = acquire(dir.path(), "run-d", &mut ctl).unwrap();
        assert!(third.took_over.is_none(), "a clean release names nobody");
    }
}
