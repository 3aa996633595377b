//! The real PM2 pinned in `tests/pm2`, driven for a lab's home only.
//!
//! `pm2` only ever runs with the lab's `PM2_HOME` and `HOME` (every pm2
//! command, even `pm2 --version`, spawns a daemon), a cleared environment
//! and a deadline: a pm2 call that does not finish is killed by pid and the
//! test fails.

use super::lab::{kill9, Lab};
use super::wait::{wait_bounded, wait_until};
use super::{command, procfs, repo};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// The PM2 `tests/pm2/package-lock.json` pins.
pub const VERSION: &str = "7.0.4";
/// Longest any single pm2 command may run before it is killed.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Longest we wait for a state change (a port to listen, a pid to die).
pub const SETTLE: Duration = Duration::from_secs(20);

/// The pinned pm2 CLI, or `None` (with a note) when it is not installed.
/// Under `CI=true` a missing PM2 is a failure, never a silent skip.
pub fn installed() -> Option<PathBuf> {
    let bin = repo().join("tests/pm2/node_modules/pm2/bin/pm2");
    if bin.is_file() {
        return Some(bin);
    }
    let msg = format!(
        "PM2 {VERSION} is not installed at {}; install it with \
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

/// The pinned CLI as npm lays it out (`node_modules/.bin/pm2` is a symlink
/// into the package), for `--pm2`.
pub fn real_cli() -> PathBuf {
    let dot_bin = repo().join("tests/pm2/node_modules/.bin/pm2");
    if dot_bin.exists() {
        dot_bin
    } else {
        repo().join("tests/pm2/node_modules/pm2/bin/pm2")
    }
}

/// A test app from `tests/apps`.
pub fn app(file: &str) -> String {
    repo().join("tests/apps").join(file).display().to_string()
}

/// `pm2` for one home: `HOME` and the working folder `root`, `PM2_HOME`
/// `home`, nothing else of the environment but PATH.
pub fn command_for(pm2: &Path, root: &Path, home: &Path) -> Command {
    let mut c = command(pm2);
    c.env("HOME", root).env("PM2_HOME", home).current_dir(root);
    c
}

impl Lab {
    /// A lab that drives the pinned pm2; `None` (with a note) without it.
    /// Its home holds `touch`, which marks it as used before: no first-run
    /// banner and no version check over the network.
    pub fn with_pm2(prefix: &str) -> Option<Lab> {
        let pm2 = installed()?;
        let mut lab = Lab::new(prefix, &[]);
        lab.write("touch", "0");
        lab.pm2 = Some(pm2);
        Some(lab)
    }

    /// A pm2 command with this home (plus `env`), its output in a file of
    /// its own, not yet waited for.
    pub fn start_pm2(&mut self, args: &[&str], env: &[(&str, &str)]) -> (Child, PathBuf) {
        let pm2 = self.pm2.clone().expect("this test needs pm2");
        self.cli_runs += 1;
        let log = self.root().join(format!("pm2-cli-{}.log", self.cli_runs));
        let out = fs::File::create(&log).expect("create cli log");
        let err = out.try_clone().expect("clone cli log");
        let child = command_for(&pm2, self.root(), &self.home)
            .args(args)
            .envs(env.iter().copied())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn pm2");
        (child, log)
    }

    /// Runs a pm2 command to completion within [`DEADLINE`]; returns its
    /// output. A hang or a failure fails the test.
    pub fn pm2(&mut self, args: &[&str], env: &[(&str, &str)]) -> String {
        let (mut child, log) = self.start_pm2(args, env);
        let status = wait_bounded(&mut child, DEADLINE);
        let output = fs::read_to_string(&log).unwrap_or_default();
        match status {
            Some(s) if s.success() => output,
            Some(s) => panic!("`pm2 {}` failed ({s}):\n{output}", args.join(" ")),
            None => panic!(
                "`pm2 {}` did not finish within {DEADLINE:?} and was killed:\n{output}",
                args.join(" ")
            ),
        }
    }

    /// A pm2 command that is expected to hang: left running, killed at the end.
    pub fn spawn_pm2(&mut self, args: &[&str]) -> u32 {
        let (child, _) = self.start_pm2(args, &[]);
        self.adopt(child)
    }

    fn read_pid(&self, rel: &str) -> u32 {
        let path = self.path(rel);
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{} holds {text:?}", path.display()))
    }

    /// pm2.pid, checked to name a live daemon of this home.
    pub fn daemon_pid(&self) -> u32 {
        let pid = self.read_pid("pm2.pid");
        assert!(
            procfs::is_daemon(pid) && procfs::has_env(pid, &self.home_env()),
            "pm2.pid names {pid} ({}), not a daemon of {}",
            procfs::cmdline(pid),
            self.home.display()
        );
        pid
    }

    /// Whether `pid` runs app `name` of this home.
    pub fn is_app(&self, pid: u32, name: &str) -> bool {
        procfs::alive(pid)
            && procfs::has_env(pid, &self.home_env())
            && procfs::has_env(pid, &format!("name={name}"))
    }

    /// `pids/<name>-<pm_id>.pid`, checked to name that live app of this home.
    pub fn app_pid(&self, name: &str, pm_id: u32) -> u32 {
        let pid = self.read_pid(&format!("pids/{name}-{pm_id}.pid"));
        assert!(
            self.is_app(pid, name),
            "pids/{name}-{pm_id}.pid names {pid} ({}), not app {name} of this home",
            procfs::cmdline(pid)
        );
        pid
    }

    /// SIGKILLs the daemon and waits until it is dead (a zombie counts).
    pub fn sigkill_daemon(&self) -> u32 {
        let pid = self.daemon_pid();
        kill9(pid);
        wait_until("the SIGKILLed daemon to die", SETTLE, || {
            !procfs::alive(pid)
        });
        pid
    }
}
