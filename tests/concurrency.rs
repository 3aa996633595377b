//! pm2-doctor under concurrency and load: many diagnoses of one home at
//! once, several repairs racing for one home's lock, a big home with many
//! live orphans, and diagnoses next to a real PM2 daemon that keeps
//! restarting its apps.
//!
//! The `soak_*` tests are the reduced, CI-sized runs of `bench/soak.sh`;
//! their sizes come from environment variables (`SOAK_APPS`, `SOAK_LIVE`,
//! `SOAK_DIAGNOSES`, `SOAK_RESTART_MS`, `SOAK_GAP_MS`), and with `SOAK_OUT=<file>` each
//! appends one JSON line of measurements to that file. Timings are recorded,
//! never asserted.
//!
//! Every process a test starts is killed by pid when the test ends, even on
//! panic ([`Lab`]'s `Drop`): its own children, then every process whose
//! environment holds exactly `PM2_HOME=<its home>` (daemons first), each
//! re-checked right before the signal. The tests run one at a time
//! ([`SERIAL`]) so the load of one does not skew the next.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Notes and measurements are printed from helpers too.
#![allow(clippy::print_stderr)]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pm2-doctor");
/// Longest one pm2-doctor or pm2 command may run before it is killed.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

const GOOD_DUMP: &str = r#"[{"name":"web","pm_exec_path":"/bin/true","pm_pid_path":"x","env":{"NODE_ENV":"production"}}]"#;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn path_var() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
}

/// Appends one JSON line of measurements to `$SOAK_OUT`, if set.
fn record(v: &Value) {
    eprintln!("soak: {v}");
    if let Some(p) = std::env::var_os("SOAK_OUT") {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        writeln!(f, "{v}").unwrap();
    }
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn has_env(pid: u32, entry: &str) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|kv| kv == entry.as_bytes()))
        .unwrap_or(false)
}

fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches('\0')
                .replace('\0', " ")
        })
        .unwrap_or_default()
}

/// State letter and ppid.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    Some((f.next()?.chars().next()?, f.next()?.parse().ok()?))
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(s, _)| s != 'Z' && s != 'X')
}

fn is_daemon(pid: u32) -> bool {
    let c = cmdline(pid);
    c.starts_with("PM2 v") && c.contains("God Daemon")
}

/// SIGKILL to one explicit pid.
fn kill9(pid: u32) {
    assert!(
        pid > 1 && pid != std::process::id(),
        "refusing to signal {pid}"
    );
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .env_clear()
        .env("PATH", path_var())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits for a child within `deadline`; on the deadline it is killed by pid.
fn wait_bounded(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if started.elapsed() < deadline => std::thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// harness
// ---------------------------------------------------------------------------

struct Lab {
    tmp: tempfile::TempDir,
    home: PathBuf,
    home_env: String,
    backups: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::Builder::new()
            .prefix("pm2doctor-conc-")
            .tempdir()
            .unwrap();
        let home = tmp.path().join("home");
        fs::create_dir_all(home.join("pids")).unwrap();
        fs::create_dir_all(home.join("logs")).unwrap();
        // Marks the home as used before for a real PM2 (no first-run banner).
        fs::write(home.join("touch"), "0").unwrap();
        Lab {
            home_env: format!("PM2_HOME={}", home.display()),
            backups: tmp.path().join("backups"),
            home,
            tmp,
            children: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    fn write(&self, rel: &str, content: &str) {
        fs::write(self.path(rel), content).unwrap();
    }

    fn stale_socket(&self, rel: &str) {
        drop(std::os::unix::net::UnixListener::bind(self.path(rel)).unwrap());
    }

    /// A process with PM2's app markers for this home: `sh -c <script>`.
    fn app_process(&mut self, name: &str, pm_id: usize, script: &str) -> u32 {
        let child = Command::new("sh")
            .args(["-c", script])
            .env_clear()
            .env("PATH", path_var())
            .env("PM2_HOME", &self.home)
            .env("pm_id", pm_id.to_string())
            .env("name", name)
            .env("unique_id", format!("u-{name}-{pm_id}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// A `sleep` carrying the markers (exec'd: one process per orphan).
    fn orphan(&mut self, name: &str, pm_id: usize) -> u32 {
        self.app_process(name, pm_id, "exec sleep 300")
    }

    /// A process that only exports PM2_HOME (someone's shell): never ours.
    fn decoy(&mut self) -> u32 {
        let child = Command::new("sleep")
            .arg("300")
            .env_clear()
            .env("PM2_HOME", &self.home)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Waits until every pid runs `sleep` (its environment is final).
    fn wait_exec(&self, pids: &[u32]) {
        let started = Instant::now();
        for &pid in pids {
            while !cmdline(pid).starts_with("sleep") {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{pid} never became sleep"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// `pm2-doctor <args> --home <home> [--backup-dir <backups>]` as a
    /// command, not yet started; output goes to `<tmp>/<tag>.out|.err`.
    fn doctor_cmd(&self, args: &[&str], tag: &str) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", path_var())
            .env("HOME", self.tmp.path())
            .args(args)
            .arg("--home")
            .arg(&self.home);
        if args[0] != "diagnose" {
            c.arg("--backup-dir").arg(&self.backups);
        }
        c.stdin(Stdio::null())
            .stdout(fs::File::create(self.tmp.path().join(format!("{tag}.out"))).unwrap())
            .stderr(fs::File::create(self.tmp.path().join(format!("{tag}.err"))).unwrap());
        c
    }

    /// Waits for a started pm2-doctor (killed and failed past [`DEADLINE`]).
    fn collect(&self, mut child: Child, tag: &str) -> Run {
        let status = wait_bounded(&mut child, DEADLINE);
        let read = |ext: &str| {
            fs::read_to_string(self.tmp.path().join(format!("{tag}.{ext}"))).unwrap_or_default()
        };
        let (stdout, stderr) = (read("out"), read("err"));
        let code = status
            .and_then(|s| s.code())
            .unwrap_or_else(|| panic!("pm2-doctor {tag} hung or was killed\nstderr:\n{stderr}"));
        Run {
            code,
            json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
            stdout,
            stderr,
        }
    }

    fn doctor(&self, args: &[&str], tag: &str) -> Run {
        let child = self.doctor_cmd(args, tag).spawn().unwrap();
        self.collect(child, tag)
    }

    fn diagnose(&self, tag: &str) -> (Run, Duration) {
        let started = Instant::now();
        let r = self.doctor(
            &[
                "diagnose",
                "--format",
                "json",
                "--timeout",
                "2",
                "--color",
                "never",
            ],
            tag,
        );
        (r, started.elapsed())
    }

    /// Live processes whose environment holds exactly `PM2_HOME=<home>`.
    fn home_procs(&self) -> Vec<u32> {
        let me = std::process::id();
        all_pids()
            .into_iter()
            .filter(|&p| p > 1 && p != me && alive(p) && has_env(p, &self.home_env))
            .collect()
    }

    /// Run folders that hold a manifest, with their manifests.
    fn manifests(&self) -> Vec<(PathBuf, Value)> {
        let mut out = Vec::new();
        for home_dir in fs::read_dir(&self.backups).into_iter().flatten().flatten() {
            for run in fs::read_dir(home_dir.path().join("runs"))
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(b) = fs::read(run.path().join("manifest.json")) {
                    out.push((run.path(), serde_json::from_slice(&b).unwrap()));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn cleanup(&mut self) -> Vec<String> {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for _ in 0..100 {
            let procs = self.home_procs();
            if procs.is_empty() {
                return Vec::new();
            }
            // Daemons first, so they cannot restart the apps killed next.
            let (daemons, others): (Vec<u32>, Vec<u32>) =
                procs.into_iter().partition(|&p| is_daemon(p));
            for pid in daemons.into_iter().chain(others) {
                if has_env(pid, &self.home_env) {
                    kill9(pid);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.home_procs()
            .into_iter()
            .map(|p| format!("{p} {}", cmdline(p)))
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let left = self.cleanup();
        if !left.is_empty() {
            eprintln!(
                "warning: processes of {} survived the cleanup: {left:?}",
                self.home.display()
            );
        }
    }
}

struct Run {
    code: i32,
    json: Value,
    stdout: String,
    stderr: String,
}

impl Run {
    fn findings(&self, check: &str) -> Vec<&Value> {
        self.json["findings"]
            .as_array()
            .map(|a| a.iter().filter(|f| f["check"] == check).collect())
            .unwrap_or_default()
    }

    fn notes(&self) -> Vec<String> {
        self.json["notes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// What must be identical between two diagnoses of an unchanged home.
fn verdict(r: &Run) -> (i32, Value, BTreeMap<String, String>) {
    let checks = r.json["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks:\n{r}"))
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (r.code, r.json["findings"].clone(), checks)
}

/// The state a SIGKILLed daemon leaves, plus three orphans and a decoy.
fn broken_home(lab: &mut Lab) -> Vec<u32> {
    let orphans = vec![
        lab.orphan("web", 0),
        lab.orphan("api", 1),
        lab.orphan("worker", 2),
    ];
    lab.decoy();
    lab.wait_exec(&orphans);
    lab.write("pm2.pid", "999999");
    lab.stale_socket("rpc.sock");
    lab.stale_socket("pub.sock");
    lab.write("pids/web-0.pid", &orphans[0].to_string());
    lab.write("pids/ticker-3.pid", "999998");
    lab.write("dump.pm2", "[{\"name\":");
    lab.write("dump.pm2.bak", GOOD_DUMP);
    orphans
}

// ---------------------------------------------------------------------------
// many diagnoses at once
// ---------------------------------------------------------------------------

#[test]
fn twenty_concurrent_diagnoses_agree() {
    let _serial = serial();
    let mut lab = Lab::new();
    let orphans = broken_home(&mut lab);
    let started = Instant::now();
    let children: Vec<(Child, String)> = (0..20)
        .map(|i| {
            let tag = format!("diag-{i}");
            let c = lab
                .doctor_cmd(
                    &[
                        "diagnose",
                        "--format",
                        "json",
                        "--timeout",
                        "2",
                        "--color",
                        "never",
                    ],
                    &tag,
                )
                .spawn()
                .unwrap();
            (c, tag)
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|(c, tag)| lab.collect(c, &tag))
        .collect();
    let elapsed = started.elapsed();
    let first = verdict(&runs[0]);
    assert_eq!(
        first.0, 4,
        "errors found, every check finished:\n{}",
        runs[0]
    );
    let found: BTreeSet<u64> = runs[0]
        .findings("process.orphan")
        .iter()
        .filter_map(|f| f["evidence"]["pid"].as_u64())
        .collect();
    assert_eq!(
        found,
        orphans.iter().map(|&p| u64::from(p)).collect(),
        "{}",
        runs[0]
    );
    for (i, r) in runs.iter().enumerate() {
        assert!(r.json.is_object(), "run {i} printed no JSON:\n{r}");
        assert_eq!(
            verdict(r),
            first,
            "run {i} differs from run 0:\n{r}\n--- run 0:\n{}",
            runs[0]
        );
    }
    eprintln!("20 concurrent diagnoses: {elapsed:?} in all");
}

// ---------------------------------------------------------------------------
// repairs racing for the lock
// ---------------------------------------------------------------------------

#[test]
fn concurrent_repairs_one_runs_the_others_exit_8() {
    let _serial = serial();
    let mut lab = Lab::new();
    lab.write("pm2.pid", "999999");
    lab.write("pids/api-1.pid", "999997");
    lab.stale_socket("rpc.sock");
    lab.write("dump.pm2", "[{\"name\":");
    lab.write("dump.pm2.bak", GOOD_DUMP);
    // An orphan that ignores SIGTERM: the repair that wins holds the lock
    // for a whole grace period while the others arrive.
    let stubborn = lab.app_process("web", 0, "trap '' TERM; exec sleep 300");
    lab.wait_exec(&[stubborn]);
    // Started 25 ms apart, all within the winner's first second.
    let mut children = Vec::new();
    for i in 0..5 {
        let tag = format!("repair-{i}");
        let c = lab
            .doctor_cmd(
                &[
                    "repair",
                    "--yes",
                    "--grace",
                    "2",
                    "--timeout",
                    "0.5",
                    "--format",
                    "json",
                ],
                &tag,
            )
            .spawn()
            .unwrap();
        children.push((c, tag));
        std::thread::sleep(Duration::from_millis(25));
    }
    let runs: Vec<Run> = children
        .into_iter()
        .map(|(c, tag)| lab.collect(c, &tag))
        .collect();
    let winners: Vec<&Run> = runs.iter().filter(|r| r.code & 1 == 1).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one repair runs:\n{}",
        runs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    let w = winners[0];
    assert_eq!(w.code & (4 | 8), 0, "the winner fixes everything:\n{w}");
    for r in runs.iter().filter(|r| r.code & 1 == 0) {
        assert_eq!(r.code, 8, "{r}");
        assert!(r.stderr.contains("already in progress"), "{r}");
    }
    assert!(
        !alive(stubborn),
        "the orphan was killed (SIGKILL after grace)"
    );
    let (d, _) = lab.diagnose("after");
    assert_eq!(d.json["findings"], serde_json::json!([]), "clean:\n{d}");
    let b = lab.doctor(&["backups", "--format", "json"], "backups");
    let listed = b.json["runs"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "one run in `backups`:\n{b}");
    assert_eq!(listed[0]["state"], "complete");
    assert_eq!(
        Some(listed[0]["run_id"].as_str().unwrap()),
        w.json["run_id"].as_str()
    );
}

/// Starts `n` repairs at the same instant on a fresh home; returns them.
fn simultaneous_repairs(lab: &Lab, n: usize, round: usize) -> Vec<Run> {
    let children: Vec<(Child, String)> = (0..n)
        .map(|i| {
            let tag = format!("r{round}-{i}");
            let mut c = lab.doctor_cmd(
                &["repair", "--yes", "--timeout", "0.5", "--format", "json"],
                &tag,
            );
            (c.spawn().unwrap(), tag)
        })
        .collect();
    children
        .into_iter()
        .map(|(c, tag)| lab.collect(c, &tag))
        .collect()
}

/// Two run windows that overlap in time: two repairs held the lock at once.
fn overlapping(manifests: &[(PathBuf, Value)]) -> Option<String> {
    let span = |m: &Value| {
        (
            m["started_at"].as_str().unwrap_or("").to_string(),
            m["finished_at"].as_str().unwrap_or("~").to_string(),
        )
    };
    for (i, (pa, a)) in manifests.iter().enumerate() {
        for (pb, b) in &manifests[i + 1..] {
            let ((sa, fa), (sb, fb)) = (span(a), span(b));
            if sa < fb && sb < fa {
                return Some(format!(
                    "{} [{sa} .. {fa}] and {} [{sb} .. {fb}]",
                    pa.display(),
                    pb.display()
                ));
            }
        }
    }
    None
}

fn fresh_stale_home(lab: &Lab) {
    let _ = fs::remove_dir_all(&lab.backups);
    lab.write("pm2.pid", "999999");
    lab.write("pids/a-0.pid", "999998");
    lab.write("pids/b-1.pid", "999997");
}

#[test]
fn simultaneous_repairs_never_hold_the_lock_together() {
    let _serial = serial();
    let lab = Lab::new();
    let rounds = knob("LOCK_ROUNDS", 200);
    for round in 0..rounds {
        fresh_stale_home(&lab);
        let runs = simultaneous_repairs(&lab, 5, round);
        for r in &runs {
            let notes = r.notes();
            assert!(
                !notes.iter().any(|n| n.contains("took over")),
                "round {round}: no lock was stale, yet a repair took it over: {notes:?}"
            );
        }
        if let Some(o) = overlapping(&lab.manifests()) {
            panic!("round {round}: two repairs ran at once: {o}");
        }
        // Each one ran, was turned away, or diagnosed after the winner had
        // finished and found nothing to do.
        for r in &runs {
            assert!(
                r.code & 1 == 1
                    || r.code == 0
                    || r.code == 8 && r.stderr.contains("already in progress"),
                "round {round}: {r}"
            );
        }
    }
}

#[test]
fn a_stale_lock_is_taken_over_by_one_repair_only() {
    let _serial = serial();
    let lab = Lab::new();
    let rounds = knob("LOCK_ROUNDS", 200);
    let b = lab.doctor(&["backups", "--format", "json"], "where");
    let home_dir = PathBuf::from(b.json["backup_dir"].as_str().unwrap());
    for round in 0..rounds {
        fresh_stale_home(&lab);
        fs::create_dir_all(&home_dir).unwrap();
        // A repair that died: pid 999999 is never running.
        fs::write(
            home_dir.join("repair.lock"),
            r#"{"pid":999999,"start_time":1,"run_id":"dead"}"#,
        )
        .unwrap();
        let runs = simultaneous_repairs(&lab, 5, round);
        let took_over = runs
            .iter()
            .filter(|r| r.notes().iter().any(|n| n.contains("took over")))
            .count();
        assert!(
            took_over <= 1,
            "round {round}: {took_over} repairs took over the same dead lock"
        );
        if let Some(o) = overlapping(&lab.manifests()) {
            panic!("round {round}: two repairs ran at once: {o}");
        }
    }
}

/// A repair in ask mode, on a terminal (`script` from util-linux), stopped
/// at its prompt. `None` (with a note) without `script`.
/// Killed (by pid) when dropped, even on panic.
struct Prompted {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    output: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Prompted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prompted {
    fn start(lab: &Lab) -> Option<Prompted> {
        let have_script = Command::new("sh")
            .args(["-c", "command -v script"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have_script {
            eprintln!("note: skipping: `script` (util-linux) is needed for a terminal");
            return None;
        }
        let cmdline = format!(
            "'{BIN}' repair --home '{}' --backup-dir '{}' --timeout 0.5 --color never",
            lab.home.display(),
            lab.backups.display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &cmdline, "/dev/null"])
            .env_clear()
            .env("PATH", path_var())
            .env("HOME", lab.tmp.path())
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let output = std::thread::spawn(move || {
            use std::io::Read;
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
        let mut p = Prompted {
            child,
            stdin: Some(stdin),
            output: Some(output),
        };
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = p.child.kill();
            let _ = p.child.wait();
            panic!("the prompted repair never asked");
        }
        Some(p)
    }

    /// Answers yes; returns the exit code and the transcript.
    fn yes(&mut self) -> (i32, String) {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(b"y").unwrap();
        stdin.flush().unwrap();
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

#[test]
fn a_repair_confirmed_after_another_one_finished_does_not_replay_its_plan() {
    let _serial = serial();
    let lab = Lab::new();
    fresh_stale_home(&lab);
    // B diagnoses and waits at its prompt; A fixes everything meanwhile.
    let Some(mut b) = Prompted::start(&lab) else {
        return;
    };
    // B holds the lock while it asks, so A is turned away...
    let a = lab.doctor(
        &["repair", "--yes", "--timeout", "0.5", "--format", "json"],
        "first",
    );
    assert_eq!(a.code, 8, "{a}");
    assert!(lab.path("pm2.pid").exists(), "A changed nothing");
    // ...and B, confirmed, does the work once.
    let (code, transcript) = b.yes();
    assert_eq!(code & 1, 1, "B fixed the home:\n{transcript}");
    assert!(!lab.path("pm2.pid").exists());
    // One run recorded: B's. The turned-away A left no run behind.
    let m = lab.manifests();
    assert_eq!(m.len(), 1, "{m:#?}\n{transcript}");
}

// ---------------------------------------------------------------------------
// a daemon caught forking an app
// ---------------------------------------------------------------------------

#[test]
fn a_daemon_forking_an_app_is_not_a_duplicate() {
    let _serial = serial();
    let mut lab = Lab::new();
    // A stand-in daemon (PM2's title, this PM2_HOME) holding a forked child
    // that never execs: the moment, frozen, between fork and exec.
    let title = format!("PM2 v7.0.4: God Daemon ({})", lab.home.display());
    let child = Command::new("bash")
        .args([
            "-c",
            &format!("exec -a '{title}' bash -c '(while :; do sleep 1; done) & wait'"),
        ])
        .env_clear()
        .env("PATH", path_var())
        .env("PM2_HOME", &lab.home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = child.id();
    lab.children.push(child);
    let started = Instant::now();
    let fork = loop {
        let kids: Vec<u32> = all_pids()
            .into_iter()
            .filter(|&p| stat(p).is_some_and(|s| s.1 == daemon) && cmdline(p).starts_with("PM2 v"))
            .collect();
        if let Some(&k) = kids.first() {
            break k;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no fork appeared"
        );
        std::thread::sleep(POLL);
    };
    let (d, _) = lab.diagnose("fork");
    let dup = d.findings("daemon.duplicate");
    assert!(
        dup.is_empty(),
        "process {fork}, a fork of daemon {daemon}, was counted as a second daemon:\n{}",
        serde_json::to_string_pretty(&dup).unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------
// soak: a big home with many live orphans
// ---------------------------------------------------------------------------

/// A dump entry the way `bench/gen_home.py` keeps it small: every field the
/// checks read.
fn dump_entry(home: &Path, i: usize) -> Value {
    let name = format!("app-{i}");
    serde_json::json!({
        "name": name,
        "pm_id": i,
        "exec_mode": "fork_mode",
        "pm_exec_path": "/bin/sleep",
        "pm_cwd": "/tmp",
        "pm_pid_path": home.join(format!("pids/{name}-{i}.pid")),
        "pm_out_log_path": home.join(format!("logs/{name}-out.log")),
        "pm_err_log_path": home.join(format!("logs/{name}-error.log")),
        "autorestart": true,
        "restart_time": 0,
        "status": "online",
        "env": {"NODE_ENV": "production", "PM2_HOME": home, "name": name, "pm_id": i},
    })
}

#[test]
fn soak_big_home_reports_each_live_orphan_once() {
    let _serial = serial();
    let apps = knob("SOAK_APPS", 5_000);
    let live = knob("SOAK_LIVE", 50).min(apps);
    let mut lab = Lab::new();
    let setup = Instant::now();
    let dump: Vec<Value> = (0..apps).map(|i| dump_entry(&lab.home, i)).collect();
    fs::write(lab.path("dump.pm2"), serde_json::to_vec(&dump).unwrap()).unwrap();
    let mut pids = Vec::with_capacity(live);
    for i in 0..live {
        pids.push(lab.orphan(&format!("app-{i}"), i));
    }
    lab.wait_exec(&pids);
    for i in 0..apps {
        // Beyond pid_max (at most 2^22): never a running process.
        let pid = pids.get(i).copied().unwrap_or(5_000_000 + i as u32);
        lab.write(&format!("pids/app-{i}-{i}.pid"), &pid.to_string());
    }
    let setup = setup.elapsed();

    let (d, elapsed) = lab.diagnose("big");
    assert!(d.json.is_object(), "{d}");
    assert_eq!(d.code & 8, 0, "every check finished:\n{}", d.stderr);
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for f in d.findings("process.orphan") {
        *seen
            .entry(f["evidence"]["pid"].as_u64().unwrap())
            .or_default() += 1;
    }
    let expected: BTreeMap<u64, usize> = pids.iter().map(|&p| (u64::from(p), 1)).collect();
    assert_eq!(seen, expected, "each live orphan exactly once");
    let stale = d.findings("pidfile.stale").len();
    assert_eq!(stale, apps - live, "every dead pid file, once");
    let (d2, elapsed2) = lab.diagnose("big-again");
    assert_eq!(
        d2.json["findings"], d.json["findings"],
        "a second run agrees"
    );
    record(&serde_json::json!({
        "soak": "big-home",
        "apps": apps,
        "pid_files": apps,
        "live_orphans": live,
        "setup_ms": setup.as_millis(),
        "diagnose_ms": [elapsed.as_millis(), elapsed2.as_millis()],
        "orphan_findings": seen.len(),
        "stale_findings": stale,
        "release": !cfg!(debug_assertions),
    }));
}

// ---------------------------------------------------------------------------
// soak: diagnoses beside a real PM2 daemon that keeps restarting apps
// ---------------------------------------------------------------------------

const PM2_VERSION: &str = "7.0.4";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pinned pm2 CLI, or `None` with a note (a failure under `CI=true`).
fn installed_pm2() -> Option<PathBuf> {
    let bin = repo().join("tests/pm2/node_modules/pm2/bin/pm2");
    if bin.is_file() {
        return Some(bin);
    }
    let msg = format!(
        "PM2 {PM2_VERSION} is not installed at {}; install it with \
         `cd tests/pm2 && npm ci --prefer-offline --no-audit --no-fund`",
        bin.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg} (CI=true: the real-PM2 tests must run)"
    );
    eprintln!("note: skipping a real-PM2 test: {msg}");
    None
}

/// Runs `pm2 <args>` with this home, a cleared environment and a deadline.
fn pm2(pm2: &Path, lab_root: &Path, home: &Path, args: &[&str]) -> Result<(), String> {
    let log = lab_root.join("pm2-cli.log");
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut child = Command::new(pm2)
        .args(args)
        .env_clear()
        .env("PATH", path_var())
        .env("HOME", lab_root)
        .env("PM2_HOME", home)
        .current_dir(lab_root)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .map_err(|e| e.to_string())?;
    match wait_bounded(&mut child, Duration::from_secs(30)) {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("`pm2 {}` failed: {s}", args.join(" "))),
        None => Err(format!("`pm2 {}` hung and was killed", args.join(" "))),
    }
}

/// The `pm2 restart all` loop; stopped and joined when dropped, even on panic.
struct Restarter {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Restarter {
    fn start(pm2_bin: PathBuf, root: PathBuf, home: PathBuf, every: Duration) -> Restarter {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let (s, d) = (stop.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match pm2(&pm2_bin, &root, &home, &["restart", "all"]) {
                    Ok(()) => {
                        d.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => errors.push(e),
                }
                std::thread::sleep(every);
            }
            errors
        });
        Restarter {
            stop,
            done,
            thread: Some(thread),
        }
    }

    fn finish(&mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Restarter {
    fn drop(&mut self) {
        self.finish();
    }
}

#[test]
fn soak_no_false_orphans_beside_a_restarting_daemon() {
    let _serial = serial();
    let Some(pm2_bin) = installed_pm2() else {
        return;
    };
    let runs = knob("SOAK_DIAGNOSES", 15);
    let every = Duration::from_millis(knob("SOAK_RESTART_MS", 200) as u64);
    // Spread the diagnoses over several restarts rather than one.
    let gap = Duration::from_millis(knob("SOAK_GAP_MS", 250) as u64);
    let lab = Lab::new();
    let root = lab.tmp.path().to_path_buf();
    // An app that exits every second (autorestarted, never marked errored)
    // and two that run until restarted.
    let flappy = root.join("flappy.js");
    fs::write(
        &flappy,
        "console.log('up', process.pid); setTimeout(() => process.exit(1), 1000);\n",
    )
    .unwrap();
    let ticker = repo().join("tests/apps/ticker.js");
    let eco = root.join("soak.config.js");
    let apps = serde_json::json!([
        {"name": "flappy", "script": flappy, "min_uptime": 100, "max_restarts": 1_000_000},
        {"name": "t1", "script": ticker},
        {"name": "t2", "script": ticker},
    ]);
    fs::write(&eco, format!("module.exports = {{ apps: {apps} }};\n")).unwrap();
    pm2(
        &pm2_bin,
        &root,
        &lab.home,
        &["start", eco.to_str().unwrap()],
    )
    .unwrap();
    let daemon: u32 = fs::read_to_string(lab.path("pm2.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(is_daemon(daemon), "pm2.pid names the daemon");

    let mut restarter = Restarter::start(pm2_bin.clone(), root.clone(), lab.home.clone(), every);
    let mut times = Vec::new();
    let mut false_orphans: Vec<Value> = Vec::new();
    let mut other: BTreeMap<String, usize> = BTreeMap::new();
    let mut unknown: BTreeMap<String, usize> = BTreeMap::new();
    let mut examples: Vec<Value> = Vec::new();
    let mut duplicates: Vec<Value> = Vec::new();
    let mut runs_with_orphans = 0;
    for i in 0..runs {
        std::thread::sleep(gap);
        let (d, t) = lab.diagnose(&format!("soak-{i}"));
        times.push(t.as_millis());
        assert!(d.json.is_object(), "run {i}:\n{d}");
        let orphans = d.findings("process.orphan");
        if !orphans.is_empty() {
            runs_with_orphans += 1;
        }
        for f in orphans {
            // Every process of this home is the live daemon's: its apps and
            // their restarts. Note what the flagged one is now.
            let pid = f["evidence"]["pid"].as_u64().unwrap_or(0) as u32;
            let now = stat(pid);
            false_orphans.push(serde_json::json!({
                "run": i,
                "pid": pid,
                "evidence_ppid": f["evidence"]["ppid"],
                "cmdline": f["evidence"]["cmdline"],
                "belongs_because": f["evidence"]["belongs_because"],
                "ppid_now": now.map(|s| s.1),
                "alive_now": alive(pid),
            }));
        }
        for f in d.json["findings"].as_array().unwrap() {
            let id = f["check"].as_str().unwrap();
            if id == "daemon.duplicate" {
                // Which "daemons" were these? Looked at right after the run.
                for p in f["evidence"]["daemons"].as_array().into_iter().flatten() {
                    let pid = p["pid"].as_u64().unwrap_or(0) as u32;
                    if pid != daemon {
                        duplicates.push(serde_json::json!({
                            "run": i,
                            "pid": pid,
                            "cmdline_then": p["cmdline"],
                            "ppid_now": stat(pid).map(|s| s.1),
                            "cmdline_now": cmdline(pid),
                            "child_of_the_daemon": stat(pid).is_some_and(|s| s.1 == daemon),
                        }));
                    }
                }
            }
            if id != "process.orphan" {
                let n = other.entry(id.to_string()).or_default();
                *n += 1;
                if *n <= 3 {
                    examples
                        .push(serde_json::json!({"run": i, "check": id, "summary": f["summary"]}));
                }
            }
        }
        for c in d.json["checks"].as_array().unwrap() {
            if c["status"] == "unknown" {
                *unknown
                    .entry(c["id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    let errors = restarter.finish();
    let restarts = restarter.done.load(Ordering::SeqCst);
    assert!(alive(daemon), "the daemon lived through the soak");
    times.sort_unstable();
    record(&serde_json::json!({
        "soak": "restarting-daemon",
        "diagnoses": runs,
        "restart_every_ms": every.as_millis(),
        "gap_ms": gap.as_millis(),
        "pm2_restart_all_done": restarts,
        "pm2_restart_errors": errors,
        "false_orphan_findings": false_orphans.len(),
        "runs_with_false_orphans": runs_with_orphans,
        "false_orphans": false_orphans,
        "other_findings": other,
        "other_examples": examples,
        "duplicate_daemons_seen": duplicates,
        "unknown_checks": unknown,
        "diagnose_ms_median": times[times.len() / 2],
        "diagnose_ms_max": times.last(),
        "release": !cfg!(debug_assertions),
    }));
    assert!(restarts > 0, "the restart loop ran: {errors:?}");
    assert!(
        false_orphans.is_empty(),
        "process.orphan for processes of the live daemon: {false_orphans:#?}"
    );
}
