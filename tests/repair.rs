//! `repair`, `undo` and `backups` through the real binary on temp homes,
//! with real processes the tests start themselves (no PM2 needed): orphans
//! carrying PM2's markers, their session mates, and decoys that must
//! survive. Every process a test starts is killed by pid when it ends.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Lab {
    tmp: tempfile::TempDir,
    home: PathBuf,
    backups: PathBuf,
    children: Vec<Child>,
    /// Grandchildren started for a test (not our children, not findable
    /// by environment): killed by pid.
    strays: Vec<u32>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in &self.strays {
            if alive(*pid) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
        }
        // Processes that escaped into their own session (sh → python).
        for pid in pids_with_env(&format!("PM2_HOME={}", self.home.display())) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}

fn pids_with_env(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(env) = fs::read(e.path().join("environ")) {
            if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                out.push(pid);
            }
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, r)| !r.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        fs::create_dir_all(home.join("pids")).unwrap();
        fs::create_dir_all(home.join("logs")).unwrap();
        Lab {
            backups: tmp.path().join("backups"),
            home,
            tmp,
            children: Vec::new(),
            strays: Vec::new(),
        }
    }

    fn write(&self, rel: &str, content: &str) {
        fs::write(self.home.join(rel), content).unwrap();
    }

    /// A process carrying PM2's app markers for this home, in its own
    /// session (as PM2 starts fork apps), listening on `port`, with a child
    /// `sleep` in the same session whose environment is scrubbed.
    fn orphan(&mut self, name: &str, pm_id: u32, port: u16) -> (u32, u32) {
        let script = format!(
            "env -i sleep 300 & echo $! > {dir}/{name}.child; exec python3 -m http.server {port} --bind 127.0.0.1",
            dir = self.tmp.path().display()
        );
        let child = std::process::Command::new("setsid")
            .args(["sh", "-c", &script])
            .env("PM2_HOME", &self.home)
            .env("pm_id", pm_id.to_string())
            .env("name", name)
            .env("unique_id", format!("u-{name}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !port_open(port) {
            assert!(Instant::now() < deadline, "orphan never listened on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let child_pid = fs::read_to_string(self.tmp.path().join(format!("{name}.child")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        self.strays.push(child_pid);
        (pid, child_pid)
    }

    /// A process that only exports PM2_HOME (someone's shell): never ours.
    fn decoy(&mut self) -> u32 {
        let child = std::process::Command::new("sleep")
            .arg("300")
            .env("PM2_HOME", &self.home)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    fn stale_socket(&self, rel: &str) {
        drop(std::os::unix::net::UnixListener::bind(self.home.join(rel)).unwrap());
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("pm2-doctor").unwrap();
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.tmp.path())
            .args(args)
            .arg("--home")
            .arg(&self.home)
            .arg("--backup-dir")
            .arg(&self.backups);
        c
    }

    fn run(&self, args: &[&str]) -> (i32, Value) {
        let mut full = args.to_vec();
        full.extend(["--format", "json"]);
        let out = self.cmd(&full).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap(), json)
    }

    fn diagnose_checks(&self) -> Vec<String> {
        let out = Command::cargo_bin("pm2-doctor")
            .unwrap()
            .env_clear()
            .args(["diagnose", "--format", "json", "--timeout", "0.5", "--home"])
            .arg(&self.home)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["check"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Every path under the home with its kind, mode and content hash.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mode = m.permissions().mode() & 0o7777;
            let desc = if m.is_dir() {
                walk(root, &p, out);
                format!("dir {mode:o}")
            } else if m.file_type().is_symlink() {
                format!("link {}", fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                format!("file {mode:o} {:?}", fs::read(&p).unwrap())
            } else {
                format!("special {mode:o}")
            };
            out.insert(rel, desc);
        }
    }
    walk(root, root, &mut out);
    out
}

const GOOD_DUMP: &str = r#"[{"name":"web","pm_exec_path":"/bin/true","pm_pid_path":"x","env":{"NODE_ENV":"production"}}]"#;

/// The state a SIGKILLed daemon leaves: stale pm2.pid and sockets, pid
/// files, an orphan with a session mate holding a port, a decoy, a pid file
/// naming the decoy (reused pid), and logs that must never be touched.
fn broken_home(lab: &mut Lab) -> (u32, u32, u16, u32) {
    let port = free_port();
    let (orphan, mate) = lab.orphan("web", 0, port);
    let decoy = lab.decoy();
    lab.write("pm2.pid", "999999");
    lab.stale_socket("rpc.sock");
    lab.stale_socket("pub.sock");
    lab.write("pids/web-0.pid", &orphan.to_string());
    lab.write("pids/ticker-1.pid", "999998");
    lab.write("pids/api-2.pid", &decoy.to_string());
    lab.write("dump.pm2", GOOD_DUMP);
    lab.write("logs/web-error.log", "Error: listen EADDRINUSE\n");
    (orphan, mate, port, decoy)
}

#[test]
fn repair_yes_kills_exactly_the_orphans_and_cleans_stale_state() {
    let mut lab = Lab::new();
    let (orphan, mate, port, decoy) = broken_home(&mut lab);
    let before = tree(&lab.home);
    let (code, rep) = lab.run(&["repair", "--yes", "--grace", "1", "--timeout", "0.5"]);
    assert_eq!(code & 1, 1, "fixed: {rep:#}");
    assert_eq!(code & 2, 2, "processes stopped: restart recommended");
    assert_eq!(code & 4, 0, "nothing left: {:#}", rep["after"]["findings"]);
    assert!(!alive(orphan), "the orphan is gone");
    assert!(!alive(mate), "its session mate is gone");
    assert!(!port_open(port), "the port is free");
    assert!(
        alive(decoy),
        "a process that only exports PM2_HOME survives"
    );
    for gone in [
        "pm2.pid",
        "rpc.sock",
        "pub.sock",
        "pids/web-0.pid",
        "pids/ticker-1.pid",
        "pids/api-2.pid",
    ] {
        assert!(!lab.home.join(gone).exists(), "{gone} moved aside");
    }
    let after = tree(&lab.home);
    for kept in ["dump.pm2", "logs/web-error.log"] {
        assert_eq!(before[kept], after[kept], "{kept} untouched");
    }
    // The decoy was named by a pid file: it was quarantined, never signalled.
    let results = rep["results"].as_array().unwrap();
    let signalled: Vec<u64> = results
        .iter()
        .flat_map(|r| r["processes"].as_array().cloned().unwrap_or_default())
        .filter(|p| !p["signals"].as_array().unwrap().is_empty())
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert!(signalled.contains(&u64::from(orphan)) && signalled.contains(&u64::from(mate)));
    assert!(!signalled.contains(&u64::from(decoy)));
    // The backup is owner-only, outside the home, with a manifest per file.
    let run_dir = PathBuf::from(rep["backup_dir"].as_str().unwrap());
    assert!(!run_dir.starts_with(&lab.home));
    assert_eq!(
        fs::metadata(&run_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let manifest: Value =
        serde_json::from_slice(&fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["state"], "complete");
    let pid_file = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["original"].as_str().unwrap().ends_with("pm2.pid"))
        .unwrap();
    assert_eq!(pid_file["size"], 6);
    assert!(pid_file["sha256"].as_str().unwrap().len() == 64);
    assert!(fs::read(run_dir.join(pid_file["backup"].as_str().unwrap())).unwrap() == b"999999");
    let orphan_rec = manifest["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"]["pid"] == u64::from(orphan))
        .unwrap();
    assert_eq!(orphan_rec["processes"][0]["signals"][0], "TERM");
    assert!(orphan_rec["processes"][0]["start_time"].as_u64().unwrap() > 0);

    // Idempotent: a second repair finds nothing to do.
    let (again, rep2) = lab.run(&["repair", "--yes", "--grace", "1", "--timeout", "0.5"]);
    assert_eq!(again, 0, "{rep2:#}");
    assert!(rep2["plan"].as_array().unwrap().is_empty());
}

#[test]
fn undo_puts_every_byte_and_mode_back() {
    let mut lab = Lab::new();
    broken_home(&mut lab);
    lab.write("dump.pm2", "[{\"name\":");
    lab.write("dump.pm2.bak", GOOD_DUMP);
    fs::set_permissions(lab.home.join("dump.pm2"), fs::Permissions::from_mode(0o640)).unwrap();
    let before = tree(&lab.home);
    let (code, rep) = lab.run(&["repair", "--yes", "--grace", "1", "--timeout", "0.5"]);
    assert_eq!(code & 1, 1, "{rep:#}");
    assert_eq!(
        fs::read_to_string(lab.home.join("dump.pm2")).unwrap(),
        GOOD_DUMP,
        "restored from .bak"
    );
    assert_ne!(tree(&lab.home), before);
    let (code, undo) = lab.run(&["undo"]);
    assert_eq!(code, 0, "{undo:#}");
    assert_eq!(
        tree(&lab.home),
        before,
        "home byte for byte as before the repair"
    );
    assert!(
        !undo["killed"].as_array().unwrap().is_empty(),
        "says what cannot be undone"
    );
    let (code, again) = lab.run(&["undo"]);
    assert_eq!(code, 0);
    assert_eq!(again["already_undone"], true);
}

#[test]
fn undo_refuses_files_changed_since_unless_forced() {
    let lab = Lab::new();
    lab.write("pm2.pid", "999999");
    lab.write("pids/api-0.pid", "999998");
    let (code, _) = lab.run(&["repair", "--safe-only", "--timeout", "0.5"]);
    assert_eq!(code & 1, 1);
    // A new daemon wrote its pid file after the repair.
    lab.write("pm2.pid", "12345");
    let (code, undo) = lab.run(&["undo"]);
    assert_eq!(code, 4, "{undo:#}");
    assert_eq!(undo["refused"], true);
    assert_eq!(
        fs::read_to_string(lab.home.join("pm2.pid")).unwrap(),
        "12345"
    );
    assert!(
        !lab.home.join("pids/api-0.pid").exists(),
        "refused as a whole"
    );
    let (code, _) = lab.run(&["undo", "--force"]);
    assert_eq!(code, 0);
    assert_eq!(
        fs::read_to_string(lab.home.join("pm2.pid")).unwrap(),
        "999999"
    );
    assert_eq!(
        fs::read_to_string(lab.home.join("pids/api-0.pid")).unwrap(),
        "999998"
    );
}

#[test]
fn dry_run_safe_only_and_no_terminal_modes() {
    let mut lab = Lab::new();
    let (orphan, _, _, _) = broken_home(&mut lab);
    let before = tree(&lab.home);

    let (code, rep) = lab.run(&["repair", "--dry-run", "--timeout", "0.5"]);
    assert_eq!(code, 4, "problems left");
    assert!(rep["plan"].as_array().unwrap().len() >= 5);
    assert_eq!(tree(&lab.home), before, "dry run changes nothing");
    assert!(!lab.backups.exists(), "not even a backup folder");

    // No terminal, no --yes: refused with a clear message, nothing changed.
    let out = lab.cmd(&["repair", "--timeout", "0.5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(16));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(tree(&lab.home), before);

    let (code, rep) = lab.run(&["repair", "--safe-only", "--timeout", "0.5"]);
    assert_eq!(code & 1, 1, "safe fixes applied");
    assert_eq!(code & 4, 4, "the orphan is left: {rep:#}");
    assert!(alive(orphan), "--safe-only never kills");
    assert!(!lab.home.join("pm2.pid").exists());
    assert!(rep["held_back"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["action"]["kind"] == "terminate"));
    assert!(
        lab.home.join("pids/web-0.pid").exists(),
        "the orphan's pid file is not stale"
    );
}

#[test]
fn backup_failure_refuses_and_changes_nothing() {
    let mut lab = Lab::new();
    broken_home(&mut lab);
    let before = tree(&lab.home);
    // A regular file where the backup folder should go: nothing can be
    // created under it, even by root.
    fs::write(&lab.backups, "not a folder").unwrap();
    let out = lab
        .cmd(&["repair", "--yes", "--timeout", "0.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was changed"));
    assert_eq!(tree(&lab.home), before);

    // A backup folder inside the home is refused too.
    let inside = lab.home.join("backups");
    let out = Command::cargo_bin("pm2-doctor")
        .unwrap()
        .args(["repair", "--yes", "--home"])
        .arg(&lab.home)
        .arg("--backup-dir")
        .arg(&inside)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the PM2 home"));
    assert_eq!(tree(&lab.home), before);
}

/// Starts a repair that pauses after action `n`; returns it once paused.
fn paused_repair(lab: &Lab, n: usize) -> Child {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("pm2-doctor"));
    cmd.env_clear()
        .env("HOME", lab.tmp.path())
        .env("PM2_DOCTOR_TEST_PAUSE_AFTER", n.to_string())
        .args([
            "repair",
            "--yes",
            "--grace",
            "1",
            "--timeout",
            "0.5",
            "--home",
        ])
        .arg(&lab.home)
        .arg("--backup-dir")
        .arg(&lab.backups)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("paused after action") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("repair never paused");
    child
}

#[test]
fn a_repair_killed_midway_can_be_undone_or_finished() {
    for stop_after in [1, 3, 5] {
        let mut lab = Lab::new();
        broken_home(&mut lab);
        lab.write("dump.pm2", "[{\"name\":");
        lab.write("dump.pm2.bak", GOOD_DUMP);
        let before = tree(&lab.home);
        let mut child = paused_repair(&lab, stop_after);
        // While it holds the lock, a second repair is turned away.
        let out = lab
            .cmd(&["repair", "--yes", "--timeout", "0.5"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(8), "after {stop_after}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("in progress"));
        child.kill().unwrap();
        child.wait().unwrap();

        if stop_after == 3 {
            // Straight to a new repair: it takes over the dead lock and
            // finishes the job the killed one started.
            let (code, rep) = lab.run(&["repair", "--yes", "--grace", "1", "--timeout", "0.5"]);
            assert_eq!(code & 4, 0, "after {stop_after}: {rep:#}");
            assert!(rep["notes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n.as_str().unwrap().contains("lock")));
            // The killed run stays undoable on its own.
            let runs = lab.run(&["backups"]).1["runs"].as_array().unwrap().len();
            assert_eq!(runs, 2);
        } else {
            // Undo (which takes over the dead lock) restores the home...
            let (code, undo) = lab.run(&["undo"]);
            assert_eq!(code, 0, "after {stop_after}: {undo:#}");
            assert_eq!(
                tree(&lab.home),
                before,
                "after {stop_after}: undo restores the home"
            );
            // ...and a new repair then does the whole job.
            let (code, rep) = lab.run(&["repair", "--yes", "--grace", "1", "--timeout", "0.5"]);
            assert_eq!(code & 4, 0, "after {stop_after}: {rep:#}");
        }
        assert!(
            lab.diagnose_checks().is_empty(),
            "after {stop_after}: clean"
        );
        let (again, _) = lab.run(&["repair", "--yes", "--timeout", "0.5"]);
        assert_eq!(again, 0);
    }
}

#[test]
fn backups_lists_and_prunes_runs() {
    let lab = Lab::new();
    for i in 0..3 {
        lab.write("pm2.pid", &format!("99999{i}"));
        let (code, _) = lab.run(&["repair", "--safe-only", "--timeout", "0.5"]);
        assert_eq!(code & 1, 1);
        std::thread::sleep(Duration::from_millis(1100));
    }
    let (_, list) = lab.run(&["backups"]);
    assert_eq!(list["runs"].as_array().unwrap().len(), 3);
    let (_, pruned) = lab.run(&["backups", "--prune", "--keep", "1"]);
    assert_eq!(pruned["pruned"].as_array().unwrap().len(), 2);
    assert_eq!(pruned["runs"].as_array().unwrap().len(), 1);
    // The newest run is the one kept: undo restores its pm2.pid.
    let (code, _) = lab.run(&["undo"]);
    assert_eq!(code, 0);
    assert_eq!(
        fs::read_to_string(lab.home.join("pm2.pid")).unwrap(),
        "999992"
    );
}
