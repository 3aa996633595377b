//! A private PM2 home in a temp dir, and every process a test starts for it.

use super::doctor::{self, Out, Paused};
use super::{command, procfs};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The commands that keep repair runs, and so take `--backup-dir`.
const KEEPS_RUNS: &[&str] = &["repair", "undo", "backups", "resurrect", "wizard"];

/// `kill -<sig> <pid>` to one explicit pid: the only way the tests signal.
pub fn send_signal(pid: u32, sig: &str) {
    assert!(
        pid > 1 && pid != std::process::id(),
        "refusing to signal pid {pid}"
    );
    let _ = command("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn kill9(pid: u32) {
    send_signal(pid, "KILL");
}

/// Writes `path` (and the folders above it) with `mode`.
pub fn write_mode(path: &Path, content: &str, mode: u32) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A temp dir holding `home/` (the PM2 home), `backups/` (kept outside the
/// home, never in the real user's data folder) and whatever else a test
/// puts there, plus every process the test started for it.
///
/// Dropping it kills, by pid: the children the test spawned; the processes
/// it remembered (an app's grandchild), while their start time still
/// matches; then every process whose environment holds exactly
/// `PM2_HOME=<home>`, daemons first so they cannot restart their apps, each
/// re-checked right before the signal. Nothing else is ever signalled.
pub struct Lab {
    tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub backups: PathBuf,
    /// The pm2 CLI the test drives, if any.
    pub pm2: Option<PathBuf>,
    children: Vec<Child>,
    /// Processes started indirectly that may lose the markers the cleanup
    /// looks for: (pid, start ticks).
    strays: Vec<(u32, u64)>,
    /// Numbers each pm2 call's log.
    pub(super) cli_runs: usize,
}

impl Lab {
    /// A lab in a temp dir named `<prefix>…`, with `home/<dir>` for each of
    /// `dirs`.
    pub fn new(prefix: &str, dirs: &[&str]) -> Lab {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("temp dir");
        let home = tmp.path().join("home");
        fs::create_dir(&home).expect("create home");
        for d in dirs {
            fs::create_dir_all(home.join(d)).expect("create a folder in the home");
        }
        Lab {
            backups: tmp.path().join("backups"),
            home,
            tmp,
            pm2: None,
            children: Vec::new(),
            strays: Vec::new(),
            cli_runs: 0,
        }
    }

    /// The temp dir: HOME of every command the lab runs.
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// `PM2_HOME=<home>`, exactly as it appears in an environ.
    pub fn home_env(&self) -> String {
        format!("PM2_HOME={}", self.home.display())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    pub fn chmod(&self, rel: &str, mode: u32) {
        let p = self.path(rel);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
    }

    /// A socket file nobody listens on: what a SIGKILLed daemon leaves.
    pub fn stale_socket(&self, rel: &str) {
        drop(std::os::unix::net::UnixListener::bind(self.path(rel)).expect("bind a socket"));
    }

    /// The environment PM2 gives an app of this home: what makes a process
    /// left running without its daemon an orphan of this home.
    pub fn markers(&self, name: &str, pm_id: u32) -> [(&'static str, String); 4] {
        [
            ("PM2_HOME", self.home.display().to_string()),
            ("pm_id", pm_id.to_string()),
            ("name", name.to_string()),
            ("unique_id", format!("u-{name}-{pm_id}")),
        ]
    }

    /// Starts `cmd` (stdio closed) as a child the lab kills at the end.
    pub fn spawn(&mut self, cmd: &mut Command) -> u32 {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        self.adopt(child)
    }

    /// Makes `child` one the lab kills at the end.
    pub fn adopt(&mut self, child: Child) -> u32 {
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// `sh -c <script>` carrying PM2's app markers for this home.
    pub fn app_process(&mut self, name: &str, pm_id: u32, script: &str) -> u32 {
        let markers = self.markers(name, pm_id);
        self.spawn(command("sh").args(["-c", script]).envs(markers))
    }

    /// A process that only exports PM2_HOME (someone's shell): never an
    /// app of this home.
    pub fn decoy(&mut self) -> u32 {
        let home = self.home.clone();
        self.spawn(command("sleep").arg("300").env("PM2_HOME", home))
    }

    /// Remembers a process the test started indirectly, to kill it by pid
    /// at the end.
    pub fn remember(&mut self, pid: u32) {
        let ticks =
            procfs::start_ticks(pid).unwrap_or_else(|| panic!("process {pid} to remember is gone"));
        self.strays.push((pid, ticks));
    }

    /// A [`Paused`] repair of this home; fails if it finished instead.
    pub fn paused_repair(&self, n: usize, resume: Option<&Path>) -> Paused {
        Paused::repair(self.root(), &self.home, &self.backups, n, resume).unwrap_or_else(|s| {
            panic!("the repair finished ({s}) instead of pausing after action {n}")
        })
    }

    /// Whether a child the test spawned is still running (a killed child
    /// stays a zombie until we reap it, so this cannot be fooled).
    pub fn child_running(&mut self, pid: u32) -> bool {
        let child = self
            .children
            .iter_mut()
            .find(|c| c.id() == pid)
            .expect("not our child");
        matches!(child.try_wait(), Ok(None)) && procfs::alive(pid)
    }

    pub fn stop_child(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.swap_remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Live processes whose environment says `PM2_HOME=<this home>`.
    pub fn home_procs(&self) -> Vec<u32> {
        let me = std::process::id();
        let home_env = self.home_env();
        procfs::pids()
            .into_iter()
            .filter(|&p| p > 1 && p != me)
            .filter(|&p| procfs::has_env(p, &home_env))
            .filter(|&p| procfs::alive(p))
            .collect()
    }

    /// Live PM2 daemons of this home.
    pub fn daemons(&self) -> Vec<u32> {
        self.home_procs()
            .into_iter()
            .filter(|&p| procfs::is_daemon(p))
            .collect()
    }

    /// `pm2-doctor <args> --home <home>`, plus `--backup-dir <backups>` for
    /// the commands that keep runs (unless `args` name one), sandboxed in
    /// the lab; not yet run.
    pub fn doctor_cmd(&self, args: &[&str]) -> Command {
        let mut c = doctor::sandboxed(self.root());
        c.args(args).arg("--home").arg(&self.home);
        if KEEPS_RUNS.contains(&args[0]) && !args.contains(&"--backup-dir") {
            c.arg("--backup-dir").arg(&self.backups);
        }
        c
    }

    /// [`Lab::doctor_cmd`] run to the end, output as printed.
    pub fn doctor_raw(&self, args: &[&str]) -> Out {
        doctor::run(self.doctor_cmd(args), &args.join(" "))
    }

    /// [`Lab::doctor_raw`] with `--format json`.
    pub fn doctor(&self, args: &[&str]) -> Out {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        self.doctor_raw(&all)
    }

    /// [`Lab::doctor`], failing unless it printed one JSON document.
    pub fn doctor_json(&self, args: &[&str]) -> Out {
        self.doctor(args).expect_json()
    }

    /// Run folders under this lab's backups, any home.
    pub fn run_dirs(&self) -> BTreeSet<PathBuf> {
        let mut out = BTreeSet::new();
        for home_dir in fs::read_dir(&self.backups).into_iter().flatten().flatten() {
            for run in fs::read_dir(home_dir.path().join("runs"))
                .into_iter()
                .flatten()
                .flatten()
            {
                out.insert(run.path());
            }
        }
        out
    }

    /// Kills everything this lab started. Returns what would not die.
    pub fn cleanup(&mut self) -> Vec<String> {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (pid, ticks) in std::mem::take(&mut self.strays) {
            // Re-checked right before the signal: never a reused pid.
            if procfs::alive(pid) && procfs::start_ticks(pid) == Some(ticks) {
                kill9(pid);
            }
        }
        let home_env = self.home_env();
        for _ in 0..100 {
            let procs = self.home_procs();
            if procs.is_empty() {
                return Vec::new();
            }
            // Daemons first, so they cannot restart the apps killed next.
            let (daemons, others): (Vec<u32>, Vec<u32>) =
                procs.into_iter().partition(|&p| procfs::is_daemon(p));
            for pid in daemons.into_iter().chain(others) {
                // Re-checked right before the signal: never a reused pid.
                if procfs::has_env(pid, &home_env) {
                    kill9(pid);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.home_procs()
            .into_iter()
            .map(|p| format!("{p} {}", procfs::cmdline(p)))
            .collect()
    }

    /// Cleans up and asserts nothing of this home survived.
    pub fn finish(mut self) {
        let left = self.cleanup();
        assert!(left.is_empty(), "processes survived the cleanup: {left:?}");
        assert!(self.daemons().is_empty());
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
