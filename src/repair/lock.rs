//! One repair per home at a time: an exclusive lock file next to the runs.

use crate::process::{ProcState, ProcessControl};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    start_time: u64,
    run_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("a repair of this home is already in progress (pid {pid}, run {run_id}); wait for it to finish")]
    Busy { pid: u32, run_id: String },
    #[error("cannot create the lock {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Held while a repair runs; removed on drop (also when unwinding).
#[derive(Debug)]
pub struct RepairLock {
    path: PathBuf,
    /// A lock left by a repair that died, taken over.
    pub took_over: Option<String>,
}

impl Drop for RepairLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

pub fn acquire(
    dir: &Path,
    run_id: &str,
    ctl: &mut dyn ProcessControl,
) -> Result<RepairLock, LockError> {
    let path = dir.join("repair.lock");
    let me = std::process::id();
    let my_start = ctl.inspect(me).map(|p| p.start_time).unwrap_or(0);
    let io_err = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut took_over = None;
    for _ in 0..2 {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let h = Holder {
                    pid: me,
                    start_time: my_start,
                    run_id: run_id.to_string(),
                };
                let body = serde_json::to_vec(&h).map_err(|e| io_err(io::Error::other(e)))?;
                f.write_all(&body)
                    .and_then(|_| f.sync_all())
                    .map_err(io_err)?;
                return Ok(RepairLock { path, took_over });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let held = fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Holder>(&b).ok());
                if let Some(h) = &held {
                    let alive = ctl.inspect(h.pid).is_some_and(|p| {
                        p.state == ProcState::Alive && p.start_time == h.start_time
                    });
                    if alive {
                        return Err(LockError::Busy {
                            pid: h.pid,
                            run_id: h.run_id.clone(),
                        });
                    }
                }
                // The holder died (or the file is garbage): take it over.
                took_over = Some(match held {
                    Some(h) => format!(
                        "run {} (pid {}) died without releasing the lock",
                        h.run_id, h.pid
                    ),
                    None => "an unreadable lock file was replaced".to_string(),
                });
                fs::remove_file(&path).map_err(io_err)?;
            }
            Err(e) => return Err(io_err(e)),
        }
    }
    Err(io_err(io::Error::other("the lock kept reappearing")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repair::kill::fake::FakeControl;

    fn me(start: u64) -> crate::process::ProcInfo {
        crate::process::ProcInfo {
            pid: std::process::id(),
            ppid: None,
            start_time: start,
            state: ProcState::Alive,
            sid: None,
            uid: None,
            name: "pm2-doctor".into(),
            cmd: vec![],
            env: None,
            listen_ports: vec![],
        }
    }

    #[test]
    fn second_repair_is_refused_and_a_dead_holder_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctl = FakeControl::default();
        ctl.procs.insert(std::process::id(), me(5));
        let first = acquire(dir.path(), "run-a", &mut ctl).unwrap();
        let err = acquire(dir.path(), "run-b", &mut ctl).unwrap_err();
        assert!(err.to_string().contains("already in progress"), "{err}");
        // The holder "dies": same pid, different start time (pid reused).
        std::mem::forget(first);
        ctl.procs.insert(std::process::id(), me(6));
        let second = acquire(dir.path(), "run-c", &mut ctl).unwrap();
        assert!(second.took_over.as_deref().unwrap_or("").contains("run-a"));
        drop(second);
        assert!(!dir.path().join("repair.lock").exists());
    }
}
