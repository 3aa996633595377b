//! `pm2-doctor wizard` driven through a pseudo-terminal (expectrl), on temp
//! homes broken by hand: a stale pm2.pid, a stale rpc.sock, a stale app pid
//! file, a corrupt dump.pm2 next to a valid dump.pm2.bak, and an orphan (a
//! `sleep` carrying PM2's app markers for the home). No PM2 is needed: step
//! 4 is answered "skip", or runs a fake `pm2` that records its calls. Every
//! process a test starts is killed by pid when the test ends.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use expectrl::process::unix::WaitStatus;
use expectrl::Session;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GOOD_DUMP: &str = r#"[{"name":"web","pm_exec_path":"/bin/true","pm_pid_path":"x","env":{"NODE_ENV":"production"}}]"#;
const DEADLINE: Duration = Duration::from_secs(20);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pm2-doctor")
}

struct Lab {
    tmp: tempfile::TempDir,
    home: PathBuf,
    backups: PathBuf,
    orphan: Child,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // By pid (Child::kill), and reaped so no zombie is left.
        let _ = self.orphan.kill();
        let _ = self.orphan.wait();
    }
}

impl Lab {
    /// The state a SIGKILLed daemon leaves behind, plus an orphan.
    fn broken() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        fs::create_dir_all(home.join("pids")).unwrap();
        fs::write(home.join("pm2.pid"), "999999").unwrap();
        drop(std::os::unix::net::UnixListener::bind(home.join("rpc.sock")).unwrap());
        fs::write(home.join("pids/ticker-1.pid"), "999998").unwrap();
        fs::write(home.join("dump.pm2"), "[{\"name\":").unwrap();
        fs::write(home.join("dump.pm2.bak"), GOOD_DUMP).unwrap();
        let orphan = Command::new("sleep")
            .arg("300")
            .env("PM2_HOME", &home)
            .env("pm_id", "0")
            .env("name", "web")
            .env("unique_id", "u")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Lab {
            backups: tmp.path().join("backups"),
            home,
            tmp,
            orphan,
        }
    }

    fn wizard_cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env_clear()
            .env("HOME", self.tmp.path())
            .env("TERM", "xterm")
            .arg("wizard")
            .arg("--home")
            .arg(&self.home)
            .arg("--backup-dir")
            .arg(&self.backups)
            .args(["--timeout", "0.5", "--grace", "1"]);
        c
    }

    fn wizard(&self) -> Screen {
        Screen::spawn(self.wizard_cmd())
    }

    /// The orphan exited (it is our child: a zombie until reaped).
    fn orphan_dead(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.orphan.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `pm2-doctor diagnose --format json`: the checks of error findings.
    fn errors_left(&self) -> Vec<String> {
        let out = Command::new(bin())
            .env_clear()
            .env("HOME", self.tmp.path())
            .args(["diagnose", "--format", "json", "--timeout", "0.5", "--home"])
            .arg(&self.home)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "error")
            .map(|f| f["check"].as_str().unwrap().to_string())
            .collect()
    }

    /// The id of the only repair run of this home.
    fn run_id(&self) -> String {
        let homes: Vec<_> = fs::read_dir(&self.backups).unwrap().flatten().collect();
        let runs: Vec<String> = homes
            .iter()
            .filter_map(|h| fs::read_dir(h.path().join("runs")).ok())
            .flatten()
            .flatten()
            .map(|r| r.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(runs.len(), 1, "one run: {runs:?}");
        runs[0].clone()
    }
}

/// Every path under the home: kind, mode, mtime and a hash of the content.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mode = m.permissions().mode() & 0o7777;
            let mtime = m
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let kind = if m.is_dir() {
                walk(root, &p, out);
                "dir".to_string()
            } else if m.is_file() {
                let digest = Sha256::digest(fs::read(&p).unwrap());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("file {hex}")
            } else if m.file_type().is_socket() {
                "socket".to_string()
            } else {
                "other".to_string()
            };
            out.insert(rel, format!("{kind} {mode:o} {mtime}"));
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Removes ANSI escape sequences and carriage returns.
fn strip_ansi(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    for c in chars.by_ref() {
                        if c == '\x07' {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// The wizard on a pseudo-terminal, and everything it has drawn so far.
struct Screen {
    session: expectrl::session::OsSession,
    raw: Vec<u8>,
    /// Text before this offset (of the stripped screen) has been matched.
    seen: usize,
    eof: bool,
}

impl Screen {
    fn spawn(cmd: Command) -> Screen {
        let mut session = Session::spawn(cmd).unwrap();
        // Wide enough that no line wraps: redraws then erase exactly.
        session.get_process_mut().set_window_size(250, 60).unwrap();
        Screen {
            session,
            raw: Vec::new(),
            seen: 0,
            eof: false,
        }
    }

    fn pump(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.session.try_read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => self.raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // EIO: the wizard closed the terminal.
                Err(_) => {
                    self.eof = true;
                    return;
                }
            }
        }
    }

    fn text(&self) -> String {
        strip_ansi(&self.raw)
    }

    /// Waits until one of `needles` is drawn after what was matched last;
    /// returns its index and moves past it.
    fn wait_any(&mut self, needles: &[&str]) -> usize {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.pump();
            let text = self.text();
            let rest = &text[self.seen.min(text.len())..];
            let hit = needles
                .iter()
                .enumerate()
                .filter_map(|(i, n)| rest.find(n).map(|at| (at, i, n.len())))
                .min();
            if let Some((at, i, len)) = hit {
                self.seen += at + len;
                return i;
            }
            assert!(
                !self.eof && Instant::now() < deadline,
                "never saw {needles:?}; screen:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for(&mut self, needle: &str) {
        self.wait_any(&[needle]);
    }

    /// Keys, once the question is surely reading them: a question is drawn
    /// just before the terminal goes raw, and a Ctrl-C typed in between
    /// would be a real SIGINT.
    fn keys(&mut self, keys: &str) {
        std::thread::sleep(Duration::from_millis(150));
        use expectrl::Expect;
        self.session.send(keys).unwrap();
    }

    /// Reads to the end; returns the exit code and the whole screen.
    fn finish(mut self) -> (i32, String) {
        let deadline = Instant::now() + DEADLINE;
        while !self.eof {
            assert!(
                Instant::now() < deadline,
                "the wizard did not exit; screen:\n{}",
                self.text()
            );
            self.pump();
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = self.session.get_process().wait().unwrap();
        let text = self.text();
        match status {
            WaitStatus::Exited(_, code) => (code, text),
            other => panic!("the wizard ended with {other:?}; screen:\n{text}"),
        }
    }
}

/// The yes/no question asked for each problem in "one by one".
const QUESTION: &str = " now? (y/n)";
/// The key that moves the list cursor down.
const DOWN: &str = "j";
/// Up from the first item wraps to the last ("skip" in step 4).
const UP: &str = "k";

#[test]
fn fix_everything_cleans_the_home_and_prints_the_undo_command() {
    let mut lab = Lab::broken();
    let orphan = lab.orphan.id();
    let mut w = lab.wizard();
    w.wait_for("What should be fixed?");
    let screen = w.text();
    for shown in [
        "Step 1/5",
        "✗ 3 errors",
        "process.orphan",
        "dump.corrupt",
        "daemon.pid-stale",
        "! 2 warnings",
        "socket.stale",
        "pidfile.stale",
        "Fix everything (5 actions)",
    ] {
        assert!(screen.contains(shown), "{shown:?} missing:\n{screen}");
    }
    w.keys("\r");
    w.wait_for("Apply these 5 actions?");
    let screen = w.text();
    assert!(
        screen.contains(&format!("terminate orphan {orphan}")),
        "{screen}"
    );
    assert!(
        screen.contains(&format!(
            "every file is copied to {}",
            lab.backups.display()
        )),
        "the run folder is named before anything changes:\n{screen}"
    );
    w.keys("y");
    w.wait_for("Start the apps again from?");
    w.keys(&format!("{UP}\r"));
    let (code, screen) = w.finish();
    assert_eq!(code & 1, 1, "fixed; exit {code}:\n{screen}");
    assert_eq!(
        code & (4 | 8 | 32),
        0,
        "nothing left; exit {code}:\n{screen}"
    );
    assert!(
        screen.contains(&format!("✓  1. terminate orphan {orphan}")),
        "{screen}"
    );
    assert!(screen.contains("Skip: start nothing now"), "{screen}");
    assert!(lab.orphan_dead(), "the orphan was stopped");
    assert_eq!(lab.errors_left(), Vec::<String>::new());
    for gone in ["pm2.pid", "rpc.sock", "pids/ticker-1.pid"] {
        assert!(
            fs::symlink_metadata(lab.home.join(gone)).is_err(),
            "{gone} moved aside"
        );
    }
    assert_eq!(
        fs::read_to_string(lab.home.join("dump.pm2")).unwrap(),
        GOOD_DUMP
    );
    let undo = format!(
        "pm2-doctor undo {} --home {}",
        lab.run_id(),
        lab.home.display()
    );
    assert!(screen.contains(&undo), "{undo:?} missing:\n{screen}");
}

#[test]
fn one_by_one_leaves_what_was_declined() {
    let mut lab = Lab::broken();
    let mut w = lab.wizard();
    w.wait_for("What should be fixed?");
    w.keys(&format!("{DOWN}{DOWN}{DOWN}\r"));
    w.wait_for("Choose one by one");
    let mut asked = Vec::new();
    loop {
        if w.wait_any(&[QUESTION, "Apply these"]) == 1 {
            break;
        }
        // The question is "Fix <check> now? (y/n)", under the explanation.
        let text = w.text();
        let upto = &text[..w.seen - QUESTION.len()];
        let check = upto.rsplit("Fix ").next().unwrap().to_string();
        let block = &upto[upto.rfind(&format!("{check}  (")).unwrap()..];
        for part in [
            "what it is:",
            "found here:",
            "evidence:\n      ",
            "what pm2-doctor will do:",
        ] {
            assert!(block.contains(part), "{part:?} missing:\n{block}");
        }
        w.keys(if check == "socket.stale" { "n" } else { "y" });
        asked.push(check);
    }
    assert_eq!(asked.len(), 5, "one question per problem: {asked:?}");
    assert!(asked.contains(&"socket.stale".to_string()));
    let text = w.text();
    assert!(text.contains("Apply these 4 actions?"), "{text}");
    w.keys("y");
    w.wait_for("Start the apps again from?");
    w.keys(&format!("{UP}\r"));
    let (code, screen) = w.finish();
    assert_eq!(code & 1, 1, "fixed; exit {code}:\n{screen}");
    assert_eq!(code & (8 | 32), 0, "exit {code}:\n{screen}");
    assert!(screen.contains("socket.stale now? · no"), "{screen}");
    assert!(
        fs::symlink_metadata(lab.home.join("rpc.sock"))
            .unwrap()
            .file_type()
            .is_socket(),
        "the declined socket is still there"
    );
    for gone in ["pm2.pid", "pids/ticker-1.pid"] {
        assert!(
            fs::symlink_metadata(lab.home.join(gone)).is_err(),
            "{gone} moved aside"
        );
    }
    assert_eq!(
        fs::read_to_string(lab.home.join("dump.pm2")).unwrap(),
        GOOD_DUMP
    );
    assert!(lab.orphan_dead(), "the orphan was stopped");
    assert_eq!(lab.errors_left(), Vec::<String>::new());
}

#[test]
fn cancelling_at_any_question_changes_nothing() {
    let mut lab = Lab::broken();
    let before = tree(&lab.home);

    // Esc at the first question.
    let mut w = lab.wizard();
    w.wait_for("What should be fixed?");
    w.keys("\x1b");
    let (code, screen) = w.finish();
    assert_eq!(code, 32, "{screen}");
    assert!(
        screen.contains("cancelled: nothing was changed"),
        "{screen}"
    );
    assert_eq!(tree(&lab.home), before);

    // Esc at the first yes/no of "one by one".
    let mut w = lab.wizard();
    w.wait_for("What should be fixed?");
    w.keys(&format!("{DOWN}{DOWN}{DOWN}\r"));
    w.wait_for(QUESTION);
    w.keys("\x1b");
    let (code, screen) = w.finish();
    assert_eq!(code, 32, "{screen}");
    assert!(
        screen.contains("cancelled: nothing was changed"),
        "{screen}"
    );
    assert_eq!(tree(&lab.home), before);

    // Ctrl-C (a key in raw mode, not a signal) at the last question.
    let mut w = lab.wizard();
    w.wait_for("What should be fixed?");
    w.keys("\r");
    w.wait_for("Apply these 5 actions?");
    w.keys("\x03");
    let (code, screen) = w.finish();
    assert_eq!(code, 32, "{screen}");
    assert!(
        screen.contains("cancelled: nothing was changed"),
        "{screen}"
    );
    assert_eq!(tree(&lab.home), before);

    assert!(
        lab.orphan.try_wait().unwrap().is_none(),
        "the orphan is still running"
    );
    // The lock file may exist (it is taken before the diagnosis a repair
    // acts on); no run was recorded.
    let runs: Vec<_> = walk_dirs(&lab.backups)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "runs"))
        .collect();
    assert!(runs.is_empty(), "no run folder was made: {runs:?}");
}

fn walk_dirs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push(p.clone());
            out.extend(walk_dirs(&p));
        }
    }
    out
}

#[test]
fn without_a_terminal_it_refuses() {
    let lab = Lab::broken();
    let before = tree(&lab.home);
    let out = lab.wizard_cmd().output().unwrap();
    assert_eq!(out.status.code(), Some(16));
    let err = String::from_utf8_lossy(&out.stderr);
    for hint in [
        "needs a terminal",
        "pm2-doctor diagnose",
        "pm2-doctor repair --yes",
    ] {
        assert!(err.contains(hint), "{hint:?} missing: {err}");
    }

    // A terminal for input but not for standard error: refused too.
    let inner = lab.wizard_cmd();
    let script = format!(
        "exec \"$0\" \"$@\" 2>{}",
        lab.tmp.path().join("stderr.txt").display()
    );
    let mut sh = Command::new("/bin/sh");
    sh.env_clear()
        .env("HOME", lab.tmp.path())
        .env("TERM", "xterm")
        .args(["-c", &script])
        .arg(inner.get_program())
        .args(inner.get_args());
    let (code, _) = Screen::spawn(sh).finish();
    assert_eq!(code, 16);
    let err = fs::read_to_string(lab.tmp.path().join("stderr.txt")).unwrap();
    assert!(err.contains("needs a terminal"), "{err}");
    assert_eq!(tree(&lab.home), before, "nothing changed");
}

#[test]
fn one_by_one_can_decline_one_of_two_files_of_a_check() {
    let mut lab = Lab::broken();
    fs::write(lab.home.join("pids/api-2.pid"), "999997").unwrap();
    let mut w = lab.wizard();
    w.wait_for("What should be fixed?");
    w.keys(&format!("{DOWN}{DOWN}{DOWN}\r"));
    while w.wait_any(&[QUESTION, "Apply these"]) == 0 {
        let text = w.text();
        let block = &text[text[..w.seen].rfind("what it is:").unwrap()..w.seen];
        w.keys(if block.contains("api-2.pid") {
            "n"
        } else {
            "y"
        });
    }
    w.keys("y");
    w.wait_for("Start the apps again from?");
    w.keys(&format!("{UP}\r"));
    let (code, screen) = w.finish();
    assert_eq!(code & (8 | 32), 0, "exit {code}:\n{screen}");
    assert!(lab.home.join("pids/api-2.pid").exists(), "declined: kept");
    assert!(
        !lab.home.join("pids/ticker-1.pid").exists(),
        "chosen: moved"
    );
    assert!(lab.orphan_dead());
}

/// Step 4 started from a dump, with a fake `pm2` that records its calls and
/// keeps a copy of the dump it was pointed at. Returns the wizard's screen,
/// the calls, and that copy.
fn bring_back_from_the_dump(rearm: &str) -> (String, String, serde_json::Value) {
    let mut lab = Lab::broken();
    // A dump as PM2 saves it: created_at set, an hour old.
    let saved = r#"[{"name":"web","pm_exec_path":"/bin/true","pm_pid_path":"x","created_at":1764320000000,"env":{"NODE_ENV":"production"}}]"#;
    fs::write(lab.home.join("dump.pm2.bak"), saved).unwrap();
    let calls = lab.tmp.path().join("pm2-calls.txt");
    let copy = lab.tmp.path().join("dump-pm2-read.json");
    let fake = lab.tmp.path().join("pm2");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$* PM2_DUMP_FILE_PATH=${{PM2_DUMP_FILE_PATH:-}}\" >> {}\n\
             if [ -n \"$PM2_DUMP_FILE_PATH\" ]; then cat \"$PM2_DUMP_FILE_PATH\" > {}; fi\n",
            calls.display(),
            copy.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = lab.wizard_cmd();
    cmd.arg("--pm2").arg(&fake).args(["--watch", "0.2"]);
    let mut w = Screen::spawn(cmd);
    w.wait_for("What should be fixed?");
    w.keys("\r");
    w.wait_for("Apply these 5 actions?");
    w.keys("y");
    w.wait_for("Start the apps again from?");
    // The first source: dump.pm2, just restored from the backup.
    w.keys("\r");
    w.wait_for("Re-arm PM2's restart guard?");
    w.keys(rearm);
    let (code, screen) = w.finish();
    assert_eq!(code & 32, 0, "not cancelled; exit {code}:\n{screen}");
    assert!(lab.orphan_dead(), "the orphan was stopped");
    let calls = fs::read_to_string(&calls).unwrap_or_default();
    let copy: serde_json::Value =
        serde_json::from_slice(&fs::read(&copy).unwrap_or_default()).unwrap_or_default();
    (screen, calls, copy)
}

#[test]
fn bringing_apps_back_from_a_dump_can_rearm_the_restart_guard() {
    let (screen, calls, copy) = bring_back_from_the_dump("y");
    assert!(
        screen.contains("only in the first 16 s after the app's created_at"),
        "the question is explained:\n{screen}"
    );
    assert!(
        calls
            .lines()
            .any(|l| l.starts_with("resurrect PM2_DUMP_FILE_PATH=/")),
        "pm2 resurrect read a copy: {calls}\n{screen}"
    );
    assert_eq!(copy[0]["name"], "web", "{copy}");
    assert!(
        copy[0].get("created_at").is_none(),
        "re-armed: no created_at in what PM2 read: {copy}"
    );
}

#[test]
fn bringing_apps_back_without_rearming_keeps_created_at() {
    let (screen, calls, copy) = bring_back_from_the_dump("n");
    assert!(
        calls.contains("resurrect PM2_DUMP_FILE_PATH=/"),
        "{calls}\n{screen}"
    );
    assert_eq!(copy[0]["created_at"], 1764320000000_u64, "{copy}");
}
