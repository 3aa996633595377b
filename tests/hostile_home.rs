//! Hostile homes: what `diagnose` and `repair` do with a PM2 home that
//! points out of itself, shares inodes with outside files, changes under a
//! running repair, cannot be written, or belongs to another user.
//!
//! The invariant every test checks: `repair --yes` never writes, chmods,
//! chowns or deletes anything outside the home and its backup folder. Each
//! outside target is fingerprinted (kind, bytes, mode, owner, mtime) before
//! and after, and must not move.
//!
//! Every process a test starts is its own child and is killed by pid when
//! the test ends, even on panic ([`Lab`]'s `Drop`). Mounts are unmounted by
//! a guard. Tests that need root, `mount`, `setpriv` or `script` skip with a
//! note when those are missing.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Skip notes are printed from helpers, which `allow-print-in-tests` does not cover.
#![allow(clippy::print_stderr)]

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pm2-doctor");
/// Longest any pm2-doctor run may take before it counts as a hang.
const DEADLINE: Duration = Duration::from_secs(60);

const GOOD_DUMP: &str = r#"[{"name":"web","pm_exec_path":"/bin/true","pm_pid_path":"x","env":{"NODE_ENV":"production"}}]"#;
/// A valid dump holding a key named like a secret: mode 644 makes it a
/// `dump.secrets-exposed` finding, whose fix is `chmod 600`.
const SECRET_DUMP: &str = r#"[{"name":"web","pm_exec_path":"/bin/true","pm_pid_path":"x","env":{"NODE_ENV":"production","SECRET_TOKEN":"hunter2"}}]"#;
const CORRUPT_DUMP: &str = "[{\"name\":";

// ---------------------------------------------------------------------------
// harness
// ---------------------------------------------------------------------------

/// A temp dir holding `home/`, `outside/` (the targets links point to) and
/// `backups/`, plus every child process the test started.
struct Lab {
    tmp: tempfile::TempDir,
    home: PathBuf,
    out: PathBuf,
    backups: PathBuf,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One pm2-doctor run.
struct Out {
    code: i32,
    json: Value,
    stdout: String,
    stderr: String,
}

impl Out {
    fn findings(&self, check: &str) -> Vec<&Value> {
        self.json["findings"]
            .as_array()
            .map(|a| a.iter().filter(|f| f["check"] == check).collect())
            .unwrap_or_default()
    }

    fn status(&self, check: &str) -> String {
        self.json["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == check))
            .and_then(|c| c["status"].as_str())
            .unwrap_or_else(|| panic!("no check {check} in {}", self.stdout))
            .to_string()
    }

    /// The `results` of a repair, by the path (or pid) each action names.
    fn result_for(&self, key: &str) -> &Value {
        self.json["results"]
            .as_array()
            .and_then(|a| a.iter().find(|r| action_key(&r["action"]) == key))
            .unwrap_or_else(|| panic!("no result for {key}:\n{self}"))
    }

    /// Every path any planned action names.
    fn planned_paths(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for step in self.json["plan"].as_array().into_iter().flatten() {
            for k in ["path", "from", "to"] {
                if let Some(p) = step["action"][k].as_str() {
                    out.insert(p.to_string());
                }
            }
        }
        out
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

fn action_key(a: &Value) -> String {
    a["path"]
        .as_str()
        .or(a["to"].as_str())
        .map(str::to_string)
        .or_else(|| a["pid"].as_u64().map(|p| p.to_string()))
        .unwrap_or_default()
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::Builder::new()
            .prefix("pm2doctor-hostile-")
            .tempdir()
            .unwrap();
        let home = tmp.path().join("home");
        let out = tmp.path().join("outside");
        fs::create_dir_all(home.join("pids")).unwrap();
        fs::create_dir_all(&out).unwrap();
        Lab {
            backups: tmp.path().join("backups"),
            home,
            out,
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

    fn chmod(&self, rel: &str, mode: u32) {
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A file outside the home, with its mode.
    fn outside(&self, rel: &str, content: &str, mode: u32) -> PathBuf {
        let p = self.out.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn link(&self, rel: &str, target: &Path) {
        std::os::unix::fs::symlink(target, self.path(rel)).unwrap();
    }

    fn stale_socket(&self, rel: &str) {
        drop(std::os::unix::net::UnixListener::bind(self.path(rel)).unwrap());
    }

    fn base_cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new(BIN);
        c.env_clear()
            .env("PATH", path_var())
            .env("HOME", self.tmp.path())
            .timeout(DEADLINE);
        c
    }

    /// `pm2-doctor <args> --home <home> --format json`, plus `--backup-dir`
    /// for the commands that keep runs. A run past [`DEADLINE`] fails.
    fn doctor(&self, args: &[&str]) -> Out {
        let mut c = self.base_cmd();
        c.args(args).arg("--home").arg(&self.home);
        if args[0] != "diagnose" && !args.contains(&"--backup-dir") {
            c.arg("--backup-dir").arg(&self.backups);
        }
        c.args(["--format", "json"]);
        finish(&c.output().unwrap(), args)
    }

    fn diagnose(&self, extra: &[&str]) -> Out {
        let mut args = vec!["diagnose", "--timeout", "0.5", "--color", "never"];
        args.extend_from_slice(extra);
        self.doctor(&args)
    }

    fn repair(&self, extra: &[&str]) -> Out {
        let mut args = vec!["repair", "--yes", "--grace", "1", "--timeout", "0.5"];
        args.extend_from_slice(extra);
        self.doctor(&args)
    }
}

fn finish(out: &std::process::Output, args: &[&str]) -> Out {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or_else(|| {
        panic!(
            "pm2-doctor {args:?} did not exit by itself ({}): killed at the {DEADLINE:?} deadline?\nstderr:\n{stderr}",
            out.status
        )
    });
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    Out {
        code,
        json,
        stdout,
        stderr,
    }
}

fn path_var() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

/// What a path is, read without following it: kind, bytes (as a hash),
/// mode, owner, link target, and optionally its mtime.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Print {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    sha256: Option<String>,
    link: Option<PathBuf>,
    mtime: Option<(i64, i64)>,
}

fn print_of(p: &Path, with_mtime: bool) -> Print {
    let m = fs::symlink_metadata(p).unwrap();
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special"
    };
    Print {
        kind,
        mode: m.permissions().mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        sha256: ft.is_file().then(|| {
            let bytes = fs::read(p).unwrap();
            Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }),
        link: ft.is_symlink().then(|| fs::read_link(p).unwrap()),
        mtime: with_mtime.then(|| (m.mtime(), m.mtime_nsec())),
    }
}

/// `root` itself (as "") and everything under it, never following a link.
fn prints(root: &Path, with_mtime: bool) -> BTreeMap<String, Print> {
    fn walk(root: &Path, dir: &Path, with_mtime: bool, out: &mut BTreeMap<String, Print>) {
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            let print = print_of(&p, with_mtime);
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if print.kind == "dir" {
                walk(root, &p, with_mtime, out);
            }
            out.insert(rel, print);
        }
    }
    let mut out = BTreeMap::new();
    out.insert(String::new(), print_of(root, with_mtime));
    walk(root, root, with_mtime, &mut out);
    out
}

/// Outside targets: everything, mtimes included.
fn outside_prints(lab: &Lab) -> BTreeMap<String, Print> {
    prints(&lab.out, true)
}

/// The home: kind, bytes, mode, owner and link targets (undo puts mtimes
/// of files back, but a recreated socket is new).
fn home_tree(lab: &Lab) -> BTreeMap<String, Print> {
    prints(&lab.home, false)
}

fn symlink_paths(out: &Out) -> BTreeSet<String> {
    out.findings("home.symlink-outside")
        .iter()
        .filter_map(|f| f["evidence"]["path"].as_str().map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------------------
// symlinks out of the home
// ---------------------------------------------------------------------------

#[test]
fn symlinked_files_are_reported_and_repair_never_follows_them() {
    let lab = Lab::new();
    // Outside: every file PM2 uses, each with its own mode; the main dump
    // corrupt (which would call for a restore) and the backup dump valid
    // but world-readable with a secret (which would call for a chmod).
    let targets = [
        ("pm2.pid", lab.outside("pm2.pid", "999999", 0o644)),
        ("dump.pm2", lab.outside("dump.pm2", CORRUPT_DUMP, 0o644)),
        (
            "dump.pm2.bak",
            lab.outside("dump.pm2.bak", SECRET_DUMP, 0o644),
        ),
        ("pids/web-0.pid", lab.outside("web-0.pid", "999998", 0o640)),
    ];
    lab.outside("logs/web-error.log", "Error: listen EADDRINUSE\n", 0o644);
    lab.outside("logs/web-out.log", "hello\n", 0o600);
    for (rel, target) in &targets {
        lab.link(rel, target);
    }
    lab.link("logs", &lab.out.join("logs"));
    // Real breakage beside the links, so repair has work to do.
    lab.stale_socket("rpc.sock");
    lab.write("pids/api-1.pid", "999997");
    let outside = outside_prints(&lab);
    let home_before = home_tree(&lab);

    let d = lab.diagnose(&[]);
    assert_eq!(d.code & 8, 8, "unknown checks make exit bit 8:\n{d}");
    let linked: BTreeSet<String> = targets
        .iter()
        .map(|(rel, _)| lab.path(rel).display().to_string())
        .collect();
    assert!(
        symlink_paths(&d).is_superset(&linked),
        "every link is a home.symlink-outside finding:\n{d}"
    );
    for id in [
        "daemon.pid-stale",
        "daemon.pid-foreign",
        "dump.corrupt",
        "dump.backup-corrupt",
        "pidfile.foreign",
        "pidfile.invalid",
    ] {
        assert_eq!(d.status(id), "unknown", "{id}:\n{d}");
    }
    // The real stale pid file is still found; the linked one is not judged.
    let stale: Vec<&str> = d
        .findings("pidfile.stale")
        .iter()
        .filter_map(|f| f["evidence"]["path"].as_str())
        .collect();
    assert_eq!(
        stale,
        vec![lab.path("pids/api-1.pid").to_str().unwrap()],
        "{d}"
    );
    assert!(d.findings("dump.secrets-exposed").is_empty(), "{d}");
    assert_eq!(outside, outside_prints(&lab), "diagnose changed nothing");

    let r = lab.repair(&[]);
    assert_eq!(r.code & 1, 1, "the real breakage is fixed:\n{r}");
    assert_eq!(r.code & 8, 0, "no step failed:\n{r}");
    let planned = r.planned_paths();
    for p in &linked {
        assert!(!planned.contains(p), "a step names the link {p}:\n{r}");
    }
    assert!(!lab.path("rpc.sock").exists() && !lab.path("pids/api-1.pid").exists());
    assert_eq!(
        outside,
        outside_prints(&lab),
        "repair changed something outside the home"
    );
    for (rel, target) in &targets {
        assert_eq!(&fs::read_link(lab.path(rel)).unwrap(), target, "{rel}");
    }
    assert_eq!(
        fs::read_link(lab.path("logs")).unwrap(),
        lab.out.join("logs")
    );

    let u = lab.doctor(&["undo"]);
    assert_eq!(u.code, 0, "{u}");
    assert_eq!(home_tree(&lab), home_before, "undo restores the home");
    assert_eq!(outside, outside_prints(&lab), "undo stays in the home too");
}

#[test]
fn a_symlinked_pids_folder_is_not_followed() {
    let lab = Lab::new();
    fs::remove_dir(lab.path("pids")).unwrap();
    lab.outside("pids/web-0.pid", "999998", 0o644);
    lab.outside("pids/api-1.pid", "not a pid", 0o600);
    lab.outside("pids/ticker-2.pid", &std::process::id().to_string(), 0o644);
    lab.link("pids", &lab.out.join("pids"));
    lab.write("pm2.pid", "999999");
    let outside = outside_prints(&lab);

    let d = lab.diagnose(&[]);
    assert_eq!(
        symlink_paths(&d),
        BTreeSet::from([lab.path("pids").display().to_string()]),
        "{d}"
    );
    for id in ["pidfile.stale", "pidfile.foreign", "pidfile.invalid"] {
        assert_eq!(d.status(id), "unknown", "{id}:\n{d}");
    }
    assert_eq!(d.findings("daemon.pid-stale").len(), 1, "{d}");

    let r = lab.repair(&[]);
    assert_eq!(r.code & 1, 1, "{r}");
    assert_eq!(r.code & 8, 0, "{r}");
    assert!(
        !lab.path("pm2.pid").exists(),
        "the real stale pm2.pid is moved"
    );
    assert!(
        r.planned_paths()
            .iter()
            .all(|p| !p.starts_with(lab.path("pids").to_str().unwrap())),
        "{r}"
    );
    assert_eq!(outside, outside_prints(&lab), "the outside pids untouched");
    assert_eq!(
        fs::read_link(lab.path("pids")).unwrap(),
        lab.out.join("pids")
    );
}

#[test]
fn a_symlinked_logs_folder_is_reported_not_followed() {
    let lab = Lab::new();
    let big = lab.outside("logs/web-out.log", "", 0o644);
    // 2 MiB without writing them (sparse), over a 1 MiB threshold.
    fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(2 * 1024 * 1024)
        .unwrap();
    lab.link("logs", &lab.out.join("logs"));

    let d = lab.diagnose(&["--log-size-limit", "1"]);
    let outside_named: Vec<&Value> = d
        .findings("log.oversized")
        .into_iter()
        .filter(|f| {
            f["evidence"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with(lab.path("logs").to_str().unwrap()))
        })
        .collect();
    assert!(
        outside_named.is_empty(),
        "a log reached through a link out of the home was judged: {outside_named:?}"
    );
    assert!(
        symlink_paths(&d).contains(lab.path("logs").to_str().unwrap()),
        "logs/ links out of the home: expected a home.symlink-outside finding:\n{d}"
    );
}

#[test]
fn dump_steps_never_reach_through_a_symlinked_backup_dump() {
    // A world-readable dump with a secret: chmod 600 applies to dump.pm2,
    // and must not follow the dump.pm2.bak link out of the home (the
    // "Cautions" of docs/repair.md say it does; it does not).
    let lab = Lab::new();
    lab.write("dump.pm2", SECRET_DUMP);
    lab.chmod("dump.pm2", 0o644);
    lab.link(
        "dump.pm2.bak",
        &lab.outside("dump.pm2.bak", SECRET_DUMP, 0o644),
    );
    let outside = outside_prints(&lab);
    let r = lab.repair(&[]);
    assert_eq!(r.code & 1, 1, "{r}");
    assert_eq!(
        fs::metadata(lab.path("dump.pm2"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(outside, outside_prints(&lab), "the linked backup keeps 644");

    // A corrupt dump whose only valid copy is behind the link: nothing to
    // restore from (the link is not followed), so nothing is rewritten.
    let lab = Lab::new();
    lab.write("dump.pm2", CORRUPT_DUMP);
    lab.link(
        "dump.pm2.bak",
        &lab.outside("dump.pm2.bak", GOOD_DUMP, 0o600),
    );
    let outside = outside_prints(&lab);
    let before = home_tree(&lab);
    let r = lab.repair(&[]);
    assert!(
        !r.planned_paths()
            .contains(lab.path("dump.pm2.bak").to_str().unwrap()),
        "{r}"
    );
    assert_eq!(
        fs::read_to_string(lab.path("dump.pm2")).unwrap(),
        CORRUPT_DUMP,
        "not restored from a file outside the home:\n{r}"
    );
    assert_eq!(home_tree(&lab), before);
    assert_eq!(outside, outside_prints(&lab));
}

#[test]
fn a_backup_dir_that_links_into_the_home_is_refused() {
    let lab = Lab::new();
    lab.write("pm2.pid", "999999");
    lab.write("pids/web-0.pid", "999998");

    // The link's target exists inside the home.
    fs::create_dir(lab.path("kept")).unwrap();
    let link = lab.tmp.path().join("backups-link");
    std::os::unix::fs::symlink(lab.path("kept"), &link).unwrap();
    let before = home_tree(&lab);
    let link_s = link.to_str().unwrap();
    let r = lab.doctor(&[
        "repair",
        "--yes",
        "--timeout",
        "0.5",
        "--backup-dir",
        link_s,
    ]);
    assert_eq!(r.code, 8, "{r}");
    assert!(r.stderr.contains("inside the PM2 home"), "{r}");
    assert_eq!(home_tree(&lab), before, "nothing changed, nothing created");

    // The same through PM2_DOCTOR_BACKUP_DIR.
    let out = lab
        .base_cmd()
        .env("PM2_DOCTOR_BACKUP_DIR", &link)
        .args(["repair", "--yes", "--timeout", "0.5", "--home"])
        .arg(&lab.home)
        .output()
        .unwrap();
    let r = finish(&out, &["repair"]);
    assert_eq!(r.code, 8, "{r}");
    assert!(r.stderr.contains("inside the PM2 home"), "{r}");
    assert_eq!(home_tree(&lab), before);

    // The link dangles into the home: the folder must not be created there.
    fs::remove_dir(lab.path("kept")).unwrap();
    let before = home_tree(&lab);
    let r = lab.doctor(&[
        "repair",
        "--yes",
        "--timeout",
        "0.5",
        "--backup-dir",
        link_s,
    ]);
    assert_eq!(r.code, 8, "{r}");
    assert_eq!(home_tree(&lab), before, "nothing created in the home:\n{r}");
    assert!(lab.path("pm2.pid").exists() && lab.path("pids/web-0.pid").exists());
}

// ---------------------------------------------------------------------------
// hard links
// ---------------------------------------------------------------------------

#[test]
fn a_hard_linked_pid_file_is_unlinked_and_the_outside_file_kept() {
    let lab = Lab::new();
    let daemon = lab.outside("daemon.pid", "999999", 0o640);
    let app = lab.outside("shared.pid", "999998", 0o604);
    fs::hard_link(&daemon, lab.path("pm2.pid")).unwrap();
    fs::hard_link(&app, lab.path("pids/web-0.pid")).unwrap();
    let outside = outside_prints(&lab);
    let before = home_tree(&lab);

    let r = lab.repair(&[]);
    assert_eq!(r.code & 1, 1, "{r}");
    assert!(!lab.path("pm2.pid").exists() && !lab.path("pids/web-0.pid").exists());
    assert_eq!(
        outside,
        outside_prints(&lab),
        "the outside names keep bytes, mode and mtime"
    );
    assert_eq!(fs::metadata(&app).unwrap().nlink(), 1);

    let u = lab.doctor(&["undo"]);
    assert_eq!(u.code, 0, "{u}");
    assert_eq!(home_tree(&lab), before, "undo puts the content back");
    assert_eq!(outside, outside_prints(&lab));
}

#[test]
fn chmod_of_a_hard_linked_dump_leaves_the_outside_name_alone() {
    let lab = Lab::new();
    let shared = lab.outside("shared-dump", SECRET_DUMP, 0o644);
    fs::hard_link(&shared, lab.path("dump.pm2")).unwrap();
    let outside = outside_prints(&lab);
    let r = lab.repair(&[]);
    assert_eq!(
        outside,
        outside_prints(&lab),
        "a file outside the home changed mode:\n{r}"
    );
}

// ---------------------------------------------------------------------------
// the home changes under a running repair
// ---------------------------------------------------------------------------

/// A repair that pauses after action `n` until `resume` exists. Returns the
/// child once it says it paused.
fn paused_repair(lab: &Lab, n: usize, resume: &Path) -> Child {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("PATH", path_var())
        .env("HOME", lab.tmp.path())
        .env("PM2_DOCTOR_TEST_PAUSE_AFTER", n.to_string())
        .env("PM2_DOCTOR_TEST_RESUME_FILE", resume)
        .args(["repair", "--yes", "--grace", "1", "--timeout", "0.5"])
        .arg("--home")
        .arg(&lab.home)
        .arg("--backup-dir")
        .arg(&lab.backups)
        .args(["--format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&format!("paused after action {n}")) {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("repair never paused after action {n}");
    }
    child
}

/// Waits for a child with a deadline; kills it (by pid) and fails on a hang.
fn wait_output(mut child: Child, what: &str) -> (i32, String) {
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code().unwrap_or(-1), reader.join().unwrap())
}

#[test]
fn a_pid_file_rewritten_between_two_actions_is_left_alone() {
    let lab = Lab::new();
    lab.write("pm2.pid", "999999"); // action 1
    lab.write("pids/api-1.pid", "999997"); // action 2
    lab.write("pids/web-0.pid", "999998"); // action 3
    let resume = lab.tmp.path().join("resume");
    let child = paused_repair(&lab, 1, &resume);
    assert!(!lab.path("pm2.pid").exists(), "action 1 ran");
    assert!(lab.path("pids/web-0.pid").exists(), "action 3 did not");
    // Between action 1 and action 3, somebody writes the pid file again.
    lab.write("pids/web-0.pid", "424242");
    fs::write(&resume, "").unwrap();
    let (code, stdout) = wait_output(child, "the resumed repair");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let r = Out {
        code,
        json,
        stdout,
        stderr: String::new(),
    };
    let web = r.result_for(lab.path("pids/web-0.pid").to_str().unwrap());
    assert_eq!(web["state"], "skipped", "{r}");
    assert!(
        web["result"]
            .as_str()
            .unwrap()
            .contains("changed after the backup"),
        "{r}"
    );
    assert_eq!(
        fs::read_to_string(lab.path("pids/web-0.pid")).unwrap(),
        "424242",
        "the new content is kept (not moved, not overwritten)"
    );
    // The other actions ran; the run does not count the skip as a failure.
    assert!(!lab.path("pids/api-1.pid").exists());
    assert_eq!(code & 1, 1, "{r}");
    assert_eq!(code & 8, 0, "{r}");
    // The journal agrees, and no later pass moved the file either.
    let run_dir = PathBuf::from(r.json["backup_dir"].as_str().unwrap());
    let manifest: Value =
        serde_json::from_slice(&fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["state"], "complete");
    assert!(manifest["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| action_key(&a["action"]) == lab.path("pids/web-0.pid").to_str().unwrap())
        .all(|a| a["state"] == "skipped"));
}

#[test]
fn a_pid_file_rewritten_while_the_prompt_waits_is_left_alone() {
    if !have("script") {
        eprintln!("note: skipping: `script` (util-linux) is needed for a terminal");
        return;
    }
    let mut lab = Lab::new();
    lab.write("pm2.pid", "999999");
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
    let mut stdin = child.stdin.take().unwrap();
    lab.children.push(child);
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
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
    rx.recv_timeout(Duration::from_secs(30))
        .expect("repair never asked");
    // While the person reads the plan, a new daemon starts and writes its pid.
    let daemon = Command::new("sleep")
        .arg("300")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let new_pid = daemon.id().to_string();
    lab.children.push(daemon);
    lab.write("pm2.pid", &new_pid);
    stdin.write_all(b"y").unwrap();
    stdin.flush().unwrap();
    let started = Instant::now();
    while lab.children[0].try_wait().unwrap().is_none() {
        assert!(started.elapsed() < DEADLINE, "repair hung after the answer");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let transcript = reader.join().unwrap();
    assert_eq!(
        fs::read_to_string(lab.path("pm2.pid")).ok().as_deref(),
        Some(new_pid.as_str()),
        "pm2.pid changed after the diagnosis (it names live pid {new_pid} now) and was still moved:\n{transcript}"
    );
}

// ---------------------------------------------------------------------------
// a read-only home
// ---------------------------------------------------------------------------

/// A tmpfs mounted for one test; unmounted when dropped, even on panic.
struct Mount(PathBuf);

impl Mount {
    /// `None` (with a note) when mounting is not permitted here.
    fn tmpfs(at: &Path) -> Option<Mount> {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m,mode=755", "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "note: skipping the read-only home test: `mount -t tmpfs` is not permitted here"
            );
            return None;
        }
        Some(Mount(at.to_path_buf()))
    }

    fn remount_ro(&self) -> bool {
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn a_read_only_home_is_diagnosed_and_repair_fails_cleanly() {
    let mut lab = Lab::new();
    let Some(mount) = Mount::tmpfs(&lab.tmp.path().join("mnt")) else {
        return;
    };
    lab.home = mount.0.join("home");
    fs::create_dir_all(lab.path("pids")).unwrap();
    lab.write("pm2.pid", "999999");
    lab.write("pids/web-0.pid", "999998");
    lab.write("dump.pm2", SECRET_DUMP);
    lab.chmod("dump.pm2", 0o644);
    lab.stale_socket("rpc.sock");
    if !mount.remount_ro() {
        eprintln!("note: skipping the read-only home test: `mount -o remount,ro` failed");
        return;
    }
    assert!(
        fs::write(lab.path("probe"), "x").is_err(),
        "the mount is read-only"
    );
    let before = home_tree(&lab);

    let d = lab.diagnose(&[]);
    assert_eq!(d.code, 4, "diagnose works on a read-only home:\n{d}");
    for id in [
        "daemon.pid-stale",
        "socket.stale",
        "pidfile.stale",
        "dump.secrets-exposed",
    ] {
        assert_eq!(d.findings(id).len(), 1, "{id}:\n{d}");
    }

    // Backups outside, on a writable disk: every step fails, cleanly.
    let r = lab.repair(&[]);
    assert_eq!(r.code & 8, 8, "a failed step is an operational error:\n{r}");
    assert_eq!(r.code & 1, 0, "nothing was fixed:\n{r}");
    let results = r.json["results"].as_array().unwrap();
    assert!(!results.is_empty(), "{r}");
    for a in results {
        assert_eq!(a["state"], "failed", "{a}");
        assert!(
            a["result"]
                .as_str()
                .unwrap()
                .contains("Read-only file system"),
            "{a}"
        );
    }
    assert_eq!(home_tree(&lab), before);
    let u = lab.doctor(&["undo"]);
    assert_eq!(u.code, 0, "nothing to put back:\n{u}");
    assert_eq!(u.json["restored"], 0, "{u}");

    // Backups on the read-only disk: refused before anything is touched.
    let ro_backups = mount.0.join("backups");
    let r = lab.doctor(&[
        "repair",
        "--yes",
        "--timeout",
        "0.5",
        "--backup-dir",
        ro_backups.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 8, "{r}");
    assert!(r.stderr.contains("nothing was changed"), "{r}");
    assert!(r.stderr.contains("Read-only file system"), "{r}");
    assert_eq!(home_tree(&lab), before);
    drop(mount);
}

// ---------------------------------------------------------------------------
// a home owned by another user, repaired by root
// ---------------------------------------------------------------------------

const OTHER: u32 = 12345;

fn chown_tree(root: &Path, uid: u32) {
    std::os::unix::fs::lchown(root, Some(uid), Some(uid)).unwrap();
    for e in fs::read_dir(root).unwrap().flatten() {
        let p = e.path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            chown_tree(&p, uid);
        } else {
            std::os::unix::fs::lchown(&p, Some(uid), Some(uid)).unwrap();
        }
    }
}

/// `sleep 300` carrying PM2's app markers for `home`, as the given user
/// (`None`: as ourselves).
fn marked_sleep(lab: &mut Lab, uid: Option<u32>) -> u32 {
    let mut cmd = match uid {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={u}"),
                &format!("--regid={u}"),
                "--clear-groups",
                "env",
            ]);
            c
        }
        None => Command::new("env"),
    };
    let child = cmd
        .arg(format!("PM2_HOME={}", lab.home.display()))
        .args(["pm_id=0", "name=web", "unique_id=u", "sleep", "300"])
        .env_clear()
        .env("PATH", path_var())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    lab.children.push(child);
    // Wait for the exec chain to reach `sleep` with its final environment.
    let started = Instant::now();
    loop {
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmd.starts_with(b"sleep\0") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{pid} never became sleep"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    pid
}

fn owners(lab: &Lab) -> BTreeMap<String, (u32, u32)> {
    home_tree(lab)
        .into_iter()
        .map(|(k, p)| (k, (p.uid, p.gid)))
        .collect()
}

#[test]
fn another_users_home_repaired_by_root_keeps_its_owner() {
    if !is_root() || !have("setpriv") {
        eprintln!("note: skipping: needs root and setpriv");
        return;
    }
    let mut lab = Lab::new();
    // Only the home changes owner; its parent stays root's and private.
    lab.write("pm2.pid", "999999");
    lab.write("pids/api-1.pid", "999997");
    lab.write("dump.pm2", CORRUPT_DUMP);
    lab.chmod("dump.pm2", 0o640);
    lab.write("dump.pm2.bak", GOOD_DUMP);
    lab.chmod("dump.pm2.bak", 0o600);
    lab.stale_socket("rpc.sock");
    chown_tree(&lab.home, OTHER);
    let users = marked_sleep(&mut lab, Some(OTHER));
    let roots = marked_sleep(&mut lab, None);
    let before = home_tree(&lab);
    assert!(owners(&lab).values().all(|o| *o == (OTHER, OTHER)));

    let d = lab.diagnose(&[]);
    let orphans: BTreeSet<u64> = d
        .findings("process.orphan")
        .iter()
        .filter_map(|f| f["evidence"]["pid"].as_u64())
        .collect();
    assert_eq!(
        orphans,
        BTreeSet::from([u64::from(users), u64::from(roots)]),
        "{d}"
    );

    let r = lab.repair(&[]);
    assert!(!alive(users), "the home owner's orphan is stopped:\n{r}");
    assert!(alive(roots), "root's process is never signalled:\n{r}");
    let skipped = r.result_for(&roots.to_string());
    assert_eq!(skipped["state"], "skipped", "{r}");
    let why = skipped["result"].as_str().unwrap();
    assert!(
        why.contains("uid 0") && why.contains(&format!("uid {OTHER}")),
        "the reason names both uids: {why}"
    );
    assert!(skipped["processes"][0]["signals"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(r.result_for(&users.to_string())["state"], "done", "{r}");

    // The restored dump keeps its owner and mode; so does everything else.
    assert_eq!(
        fs::read_to_string(lab.path("dump.pm2")).unwrap(),
        GOOD_DUMP,
        "{r}"
    );
    let m = fs::metadata(lab.path("dump.pm2")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (OTHER, OTHER, 0o640));
    for (path, owner) in owners(&lab) {
        assert_eq!(owner, (OTHER, OTHER), "{path} after repair");
    }

    // Undo: every file back, with the user's ownership.
    let u = lab.doctor(&["undo"]);
    assert_eq!(u.code, 0, "{u}");
    assert_eq!(home_tree(&lab), before, "undo round trip, owners included");
}
