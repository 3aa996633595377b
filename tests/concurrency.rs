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
//! (`serial()`) so the load of one does not skew the next.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Notes and measurements are printed from helpers too.
#![allow(clippy::print_stderr)]

mod common;

use common::doctor::Out;
use common::lab::Lab;
use common::pm2::{self, app};
use common::procfs::{self, alive, cmdline, stat, wait_for_exec};
use common::prompt::Prompted;
use common::wait::{wait_bounded, wait_until};
use common::{command, serial, CORRUPT_DUMP, GOOD_DUMP};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest one pm2-doctor or pm2 command may run before it is killed.
const DEADLINE: Duration = Duration::from_secs(60);

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
// harness
// ---------------------------------------------------------------------------

fn new_lab() -> Lab {
    let lab = Lab::new("pm2doctor-conc-", &["pids", "logs"]);
    // Marks the home as used before for a real PM2 (no first-run banner).
    lab.write("touch", "0");
    lab
}

/// Waits until every pid runs `sleep` (its environment is final).
fn wait_exec(pids: &[u32]) {
    for &pid in pids {
        wait_for_exec(pid, "sleep");
    }
}

impl Lab {
    /// A `sleep` carrying the markers (exec'd: one process per orphan).
    fn orphan(&mut self, name: &str, pm_id: u32) -> u32 {
        self.app_process(name, pm_id, "exec sleep 300")
    }

    /// `pm2-doctor <args>` as a command, not yet started; output goes to
    /// `<root>/<tag>.out|.err`, so that many can run at once without a
    /// reader thread each.
    fn logged_cmd(&self, args: &[&str], tag: &str) -> Command {
        let mut c = self.doctor_cmd(args);
        c.stdout(fs::File::create(self.root().join(format!("{tag}.out"))).unwrap())
            .stderr(fs::File::create(self.root().join(format!("{tag}.err"))).unwrap());
        c
    }

    /// Waits for a started [`Lab::logged_cmd`] (killed and failed past
    /// [`DEADLINE`]).
    fn collect(&self, mut child: Child, tag: &str) -> Out {
        let status = wait_bounded(&mut child, DEADLINE);
        let read = |ext: &str| {
            fs::read_to_string(self.root().join(format!("{tag}.{ext}"))).unwrap_or_default()
        };
        let (stdout, stderr) = (read("out"), read("err"));
        let status = status
            .unwrap_or_else(|| panic!("pm2-doctor {tag} hung or was killed\nstderr:\n{stderr}"));
        Out::from_parts(status, stdout, stderr, tag)
    }

    /// `n` runs of `pm2-doctor <args>`, started `gap` apart (tagged
    /// `<tag>-<i>`), all waited for.
    fn at_once(&self, args: &[&str], tag: &str, n: usize, gap: Duration) -> Vec<Out> {
        let mut children = Vec::new();
        for i in 0..n {
            let tag = format!("{tag}-{i}");
            children.push((self.logged_cmd(args, &tag).spawn().unwrap(), tag));
            std::thread::sleep(gap);
        }
        children
            .into_iter()
            .map(|(c, tag)| self.collect(c, &tag))
            .collect()
    }

    fn diagnose(&self) -> (Out, Duration) {
        let started = Instant::now();
        let r = self.doctor(&["diagnose", "--timeout", "2", "--color", "never"]);
        (r, started.elapsed())
    }

    /// Run folders that hold a manifest, with their manifests.
    fn manifests(&self) -> Vec<(PathBuf, Value)> {
        self.run_dirs()
            .into_iter()
            .filter_map(|run| {
                let b = fs::read(run.join("manifest.json")).ok()?;
                Some((run, serde_json::from_slice(&b).unwrap()))
            })
            .collect()
    }
}

/// What must be identical between two diagnoses of an unchanged home.
fn verdict(r: &Out) -> (i32, Value, BTreeMap<String, String>) {
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
    wait_exec(&orphans);
    lab.write("pm2.pid", "999999");
    lab.stale_socket("rpc.sock");
    lab.stale_socket("pub.sock");
    lab.write("pids/web-0.pid", &orphans[0].to_string());
    lab.write("pids/ticker-3.pid", "999998");
    lab.write("dump.pm2", CORRUPT_DUMP);
    lab.write("dump.pm2.bak", GOOD_DUMP);
    orphans
}

// ---------------------------------------------------------------------------
// many diagnoses at once
// ---------------------------------------------------------------------------

#[test]
fn twenty_concurrent_diagnoses_agree() {
    let _serial = serial();
    let mut lab = new_lab();
    let orphans = broken_home(&mut lab);
    let started = Instant::now();
    let runs = lab.at_once(
        &[
            "diagnose",
            "--format",
            "json",
            "--timeout",
            "2",
            "--color",
            "never",
        ],
        "diag",
        20,
        Duration::ZERO,
    );
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
    let mut lab = new_lab();
    lab.write("pm2.pid", "999999");
    lab.write("pids/api-1.pid", "999997");
    lab.stale_socket("rpc.sock");
    lab.write("dump.pm2", CORRUPT_DUMP);
    lab.write("dump.pm2.bak", GOOD_DUMP);
    // An orphan that ignores SIGTERM: the repair that wins holds the lock
    // for a whole grace period while the others arrive.
    let stubborn = lab.app_process("web", 0, "trap '' TERM; exec sleep 300");
    wait_exec(&[stubborn]);
    // Started 25 ms apart, all within the winner's first second.
    let runs = lab.at_once(
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
        "repair",
        5,
        Duration::from_millis(25),
    );
    let winners: Vec<&Out> = runs.iter().filter(|r| r.code & 1 == 1).collect();
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
    let (d, _) = lab.diagnose();
    assert_eq!(d.json["findings"], serde_json::json!([]), "clean:\n{d}");
    let b = lab.doctor(&["backups"]);
    let listed = b.json["runs"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "one run in `backups`:\n{b}");
    assert_eq!(listed[0]["state"], "complete");
    assert_eq!(
        Some(listed[0]["run_id"].as_str().unwrap()),
        w.json["run_id"].as_str()
    );
}

/// Starts `n` repairs at the same instant on a fresh home; returns them.
fn simultaneous_repairs(lab: &Lab, n: usize, round: usize) -> Vec<Out> {
    lab.at_once(
        &["repair", "--yes", "--timeout", "0.5", "--format", "json"],
        &format!("r{round}"),
        n,
        Duration::ZERO,
    )
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
    let lab = new_lab();
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
    let lab = new_lab();
    let rounds = knob("LOCK_ROUNDS", 200);
    let b = lab.doctor(&["backups"]);
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

#[test]
fn a_repair_confirmed_after_another_one_finished_does_not_replay_its_plan() {
    let _serial = serial();
    let lab = new_lab();
    fresh_stale_home(&lab);
    // B diagnoses and waits at its prompt; A fixes everything meanwhile.
    let Some(mut b) = Prompted::start(&lab) else {
        return;
    };
    // B holds the lock while it asks, so A is turned away...
    let a = lab.doctor(&["repair", "--yes", "--timeout", "0.5"]);
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
    let mut lab = new_lab();
    // A stand-in daemon (PM2's title, this PM2_HOME) holding a forked child
    // that never execs: the moment, frozen, between fork and exec.
    let title = format!("PM2 v7.0.4: God Daemon ({})", lab.home.display());
    let home = lab.home.clone();
    let daemon = lab.spawn(
        command("bash")
            .args([
                "-c",
                &format!("exec -a '{title}' bash -c '(while :; do sleep 1; done) & wait'"),
            ])
            .env("PM2_HOME", home),
    );
    let mut fork = 0;
    wait_until("a fork to appear", Duration::from_secs(10), || {
        fork = procfs::pids()
            .into_iter()
            .find(|&p| stat(p).is_some_and(|s| s.1 == daemon) && cmdline(p).starts_with("PM2 v"))
            .unwrap_or(0);
        fork != 0
    });
    let (d, _) = lab.diagnose();
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
    let mut lab = new_lab();
    let setup = Instant::now();
    let dump: Vec<Value> = (0..apps).map(|i| dump_entry(&lab.home, i)).collect();
    fs::write(lab.path("dump.pm2"), serde_json::to_vec(&dump).unwrap()).unwrap();
    let mut pids = Vec::with_capacity(live);
    for i in 0..live {
        pids.push(lab.orphan(&format!("app-{i}"), i as u32));
    }
    wait_exec(&pids);
    for i in 0..apps {
        // Beyond pid_max (at most 2^22): never a running process.
        let pid = pids.get(i).copied().unwrap_or(5_000_000 + i as u32);
        lab.write(&format!("pids/app-{i}-{i}.pid"), &pid.to_string());
    }
    let setup = setup.elapsed();

    let (d, elapsed) = lab.diagnose();
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
    let (d2, elapsed2) = lab.diagnose();
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

/// Runs `pm2 <args>` with this home, a cleared environment and a deadline.
fn pm2(pm2: &Path, lab_root: &Path, home: &Path, args: &[&str]) -> Result<(), String> {
    let log = lab_root.join("pm2-cli.log");
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut child = pm2::command_for(pm2, lab_root, home)
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .map_err(|e| e.to_string())?;
    match wait_bounded(&mut child, pm2::DEADLINE) {
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
    let Some(pm2_bin) = pm2::installed() else {
        return;
    };
    let runs = knob("SOAK_DIAGNOSES", 15);
    let every = Duration::from_millis(knob("SOAK_RESTART_MS", 200) as u64);
    // Spread the diagnoses over several restarts rather than one.
    let gap = Duration::from_millis(knob("SOAK_GAP_MS", 250) as u64);
    let lab = new_lab();
    let root = lab.root().to_path_buf();
    // An app that exits every second (autorestarted, never marked errored)
    // and two that run until restarted.
    let flappy = root.join("flappy.js");
    fs::write(
        &flappy,
        "console.log('up', process.pid); setTimeout(() => process.exit(1), 1000);\n",
    )
    .unwrap();
    let ticker = app("ticker.js");
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
    assert!(procfs::is_daemon(daemon), "pm2.pid names the daemon");

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
        let (d, t) = lab.diagnose();
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
