//! A repair in ask mode on a terminal, stopped at its prompt.

use super::doctor::{BIN, DEADLINE};
use super::lab::Lab;
use super::wait::wait_bounded;
use super::{command, have};
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

/// `repair` without `--yes` under `script` (util-linux), which gives it the
/// terminal it asks on. Killed (by pid) when dropped, even on panic.
pub struct Prompted {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Option<JoinHandle<String>>,
}

impl Drop for Prompted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prompted {
    /// Starts it and returns once it asks. `None` (with a note) without
    /// `script`.
    pub fn start(lab: &Lab) -> Option<Prompted> {
        if !have("script") {
            eprintln!("note: skipping: `script` (util-linux) is needed for a terminal");
            return None;
        }
        let cmdline = format!(
            "'{BIN}' repair --home '{}' --backup-dir '{}' --timeout 0.5 --color never",
            lab.home.display(),
            lab.backups.display()
        );
        let mut child = command("script")
            .args(["-qec", &cmdline, "/dev/null"])
            .env("HOME", lab.root())
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn script");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take().expect("piped stdin");
        let (tx, rx) = std::sync::mpsc::channel();
        let output = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 4096];
            let mut told = false;
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                if !told && String::from_utf8_lossy(&all).contains("[y/N]") {
                    told = true;
                    let _ = tx.send(());
                }
            }
            String::from_utf8_lossy(&all).into_owned()
        });
        let p = Prompted {
            child,
            stdin: Some(stdin),
            output: Some(output),
        };
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!("the prompted repair never asked");
        }
        Some(p)
    }

    /// Answers yes; returns the exit code and the transcript.
    pub fn yes(&mut self) -> (i32, String) {
        let mut stdin = self.stdin.take().expect("asked once");
        stdin.write_all(b"y").expect("answer the prompt");
        stdin.flush().expect("answer the prompt");
        let status = wait_bounded(&mut self.child, DEADLINE);
        drop(stdin);
        let transcript = self
            .output
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        let code = status
            .and_then(|s| s.code())
            .unwrap_or_else(|| panic!("the prompted repair hung:\n{transcript}"));
        (code, transcript)
    }
}
