//! The harness the integration tests share: a lab (a private PM2 home in a
//! temp dir and every process a test starts for it), reads of /proc,
//! snapshots of a directory tree, running the built binary, free ports,
//! and waiting with a deadline.
//!
//! The rule every piece keeps: a test only ever signals a process it
//! started, by pid, re-checked as its own right before the signal.

// Cargo builds each tests/*.rs as its own crate, and each uses only part of this.
#![allow(dead_code)]
// Skip notes and cleanup warnings are printed from helpers, which
// `allow-print-in-tests` does not cover.
#![allow(clippy::print_stderr)]

pub mod doctor;
#[cfg(unix)]
pub mod lab;
pub mod net;
#[cfg(unix)]
pub mod pm2;
#[cfg(unix)]
pub mod procfs;
#[cfg(unix)]
pub mod prompt;
pub mod scenario;
#[cfg(unix)]
pub mod tree;
pub mod wait;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A valid one-app dump, as `pm2 save` writes it (reduced).
pub const GOOD_DUMP: &str = r#"[{"name":"web","pm_exec_path":"/bin/true","pm_pid_path":"x","env":{"NODE_ENV":"production"}}]"#;
/// A dump cut off mid-write.
pub const CORRUPT_DUMP: &str = "[{\"name\":";

/// For the tests that share ports, daemons and the process table, or whose
/// load would skew the next one's: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn path_var() -> OsString {
    std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

/// `program` with nothing of the test's environment but PATH: no PM2_HOME,
/// HOME or PM2_DOCTOR_* of the developer's leaks into a test.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", path_var()).stdin(Stdio::null());
    c
}

/// Whether `program` is on PATH (tests that need it skip without it).
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The real python3 interpreter. pyenv-style shims need the user's HOME,
/// which the processes a test starts do not get, so the shim is resolved
/// first.
pub fn python3() -> String {
    let out_file = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .stdout(out_file.reopen().expect("reopen temp file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 is needed for the orphan scenarios");
    let status = wait::wait_bounded(&mut child, Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "python3 did not report its interpreter path"
    );
    let path = std::fs::read_to_string(out_file.path()).expect("read python3 output");
    let path = path.trim().to_string();
    assert!(Path::new(&path).is_file(), "python3 reported {path:?}");
    path
}
