//! Running the built `pm2-doctor` and reading what it printed.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::wait::wait_bounded;

pub const BIN: &str = env!("CARGO_BIN_EXE_pm2-doctor");
/// Longest one pm2-doctor run may take before it counts as a hang.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// pm2-doctor with only PATH and `HOME=<home_dir>` in its environment:
/// never the developer's PM2 home, backups or data folder.
pub fn sandboxed(home_dir: &Path) -> Command {
    let mut c = super::command(BIN);
    c.env("HOME", home_dir);
    c
}

/// Runs `cmd` to the end. Past [`DEADLINE`] it is killed (by pid) and the
/// test fails.
pub fn run(cmd: Command, what: &str) -> Out {
    let out = assert_cmd::Command::from_std(cmd)
        .timeout(DEADLINE)
        .output()
        .unwrap_or_else(|e| panic!("run pm2-doctor {what}: {e}"));
    Out::new(&out, what)
}

/// One finished pm2-doctor run. `json` is Null when stdout is not one JSON
/// document.
pub struct Out {
    pub code: i32,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn new(out: &Output, what: &str) -> Out {
        Out::from_parts(
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            what,
        )
    }

    pub fn from_parts(status: ExitStatus, stdout: String, stderr: String, what: &str) -> Out {
        let code = status.code().unwrap_or_else(|| {
            panic!(
                "pm2-doctor {what} did not exit by itself ({status}): killed at the \
                 {DEADLINE:?} deadline?\nstdout:\n{stdout}\nstderr:\n{stderr}"
            )
        });
        Out {
            code,
            json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
            stdout,
            stderr,
        }
    }

    /// Fails unless stdout was one JSON document whose `exit_code` (when it
    /// has one) is the process's.
    pub fn expect_json(self) -> Out {
        if let Err(e) = serde_json::from_str::<Value>(&self.stdout) {
            panic!("pm2-doctor printed no JSON ({e}):\n{self}");
        }
        if let Some(c) = self.json.get("exit_code") {
            assert_eq!(
                c.as_i64(),
                Some(i64::from(self.code)),
                "the JSON exit_code must be the process exit code:\n{self}"
            );
        }
        self
    }

    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(&self.json).unwrap_or_default()
    }

    /// The array at `key`, which must be there.
    pub fn array(&self, key: &str) -> &Vec<Value> {
        self.json[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} is not an array in\n{self}"))
    }

    pub fn findings(&self, check: &str) -> Vec<&Value> {
        self.array("findings")
            .iter()
            .filter(|f| f["check"] == check)
            .collect()
    }

    /// The one finding of `check`.
    pub fn one(&self, check: &str) -> &Value {
        let found = self.findings(check);
        assert_eq!(
            found.len(),
            1,
            "expected exactly one {check} finding in\n{}",
            self.pretty()
        );
        found[0]
    }

    /// The checks that have a finding.
    pub fn checks_found(&self) -> BTreeSet<&str> {
        found_checks(&self.json)
    }

    pub fn errors(&self) -> Vec<&Value> {
        self.array("findings")
            .iter()
            .filter(|f| f["severity"] == "error")
            .collect()
    }

    /// The entry of check `id` in `checks` (`status`, `reason`, …).
    pub fn check(&self, id: &str) -> &Value {
        self.array("checks")
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id} in\n{}", self.pretty()))
    }

    /// The status of check `id` in `checks`.
    pub fn status(&self, id: &str) -> &str {
        self.array("checks")
            .iter()
            .find(|c| c["id"] == id)
            .and_then(|c| c["status"].as_str())
            .unwrap_or_else(|| panic!("no check {id} in\n{}", self.pretty()))
    }

    pub fn notes(&self) -> Vec<String> {
        self.json["notes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect()
    }

    /// The run folder a repair wrote (`backup_dir`).
    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from(
            self.json["backup_dir"]
                .as_str()
                .unwrap_or_else(|| panic!("no backup_dir in\n{}", self.pretty())),
        )
    }

    /// Every JSON document on stdout, in order: for the commands that print
    /// none (a refusal) or two (`repair --resurrect`).
    pub fn docs(&self) -> Vec<Value> {
        serde_json::Deserializer::from_str(&self.stdout)
            .into_iter::<Value>()
            .collect::<Result<Vec<Value>, _>>()
            .unwrap_or_else(|e| panic!("stdout is not a series of JSON documents ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The checks that have a finding in a diagnosis document.
pub fn found_checks(doc: &Value) -> BTreeSet<&str> {
    doc["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings in {doc:#}"))
        .iter()
        .map(|f| f["check"].as_str().expect("a finding names its check"))
        .collect()
}

/// Every process record (`processes[]`) of the given actions that carries
/// at least one signal, by pid.
pub fn signalled(actions: &[Value]) -> BTreeMap<u32, Value> {
    actions
        .iter()
        .flat_map(|a| a["processes"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["signals"].as_array().is_some_and(|s| !s.is_empty()))
        .filter_map(|p| {
            let pid = u32::try_from(p["pid"].as_u64()?).ok()?;
            Some((pid, p))
        })
        .collect()
}

/// A `repair --yes` stopped by the test hook after one action, waiting to
/// be killed or (with a resume file) for that file. Killed by pid when
/// dropped, even on panic: a paused repair holds the home's lock.
pub struct Paused {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Paused {
    /// `repair --yes --grace 1 --timeout 0.5 --format json` of `home` that
    /// pauses after action `n` (`PM2_DOCTOR_TEST_PAUSE_AFTER`) and, given
    /// `resume`, goes on once that file exists. `Err` with its exit status
    /// when it finished first (a plan shorter than `n`); fails when it did
    /// neither within 30 s.
    pub fn repair(
        home_dir: &Path,
        home: &Path,
        backups: &Path,
        n: usize,
        resume: Option<&Path>,
    ) -> Result<Paused, ExitStatus> {
        let mut cmd = sandboxed(home_dir);
        cmd.env("PM2_DOCTOR_TEST_PAUSE_AFTER", n.to_string())
            .args(["repair", "--yes", "--grace", "1", "--timeout", "0.5"])
            .arg("--home")
            .arg(home)
            .arg("--backup-dir")
            .arg(backups)
            .args(["--format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(r) = resume {
            cmd.env("PM2_DOCTOR_TEST_RESUME_FILE", r);
        }
        let mut child = cmd.spawn().expect("spawn pm2-doctor repair");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        let want = format!("paused after action {n}");
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.ends_with(&want) {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut p = Paused {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(()) => Ok(p),
            // The sender is gone: stderr closed, the repair finished.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(p.child.wait().expect("wait for pm2-doctor"))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("repair neither paused after action {n} nor finished in 30 s")
            }
        }
    }

    /// Kills it by pid, as a crash would, and reaps it.
    pub fn kill(mut self) {
        self.child.kill().expect("kill the paused repair");
        self.child.wait().expect("reap the paused repair");
    }

    /// Lets a resumed repair finish, within [`DEADLINE`].
    pub fn finish(mut self) -> Out {
        let status = wait_bounded(&mut self.child, DEADLINE)
            .unwrap_or_else(|| panic!("the resumed repair did not finish within {DEADLINE:?}"));
        let read = |t: Option<JoinHandle<String>>| {
            t.map(|t| t.join().unwrap_or_default()).unwrap_or_default()
        };
        let (stdout, stderr) = (read(self.stdout.take()), read(self.stderr.take()));
        Out::from_parts(status, stdout, stderr, "the resumed repair")
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
