//! `resurrect` refuses, before starting anything, when the home is not ready
//! or nothing valid can be started. A fake `pm2` records every call, so
//! "nothing was started" is checked, not assumed.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct Lab {
    tmp: tempfile::TempDir,
    home: PathBuf,
    fake_pm2: PathBuf,
    calls: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        fs::create_dir_all(&home).unwrap();
        let calls = tmp.path().join("pm2-calls.txt");
        let fake_pm2 = tmp.path().join("pm2");
        fs::write(
            &fake_pm2,
            format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display()),
        )
        .unwrap();
        fs::set_permissions(&fake_pm2, fs::Permissions::from_mode(0o755)).unwrap();
        Lab {
            tmp,
            home,
            fake_pm2,
            calls,
        }
    }

    fn dump(&self, port: Option<u16>) {
        let script = self.tmp.path().join("web.js");
        fs::write(&script, "// app\n").unwrap();
        let mut env = serde_json::json!({"PM2_HOME": self.home});
        if let Some(p) = port {
            env["PORT"] = p.to_string().into();
        }
        let dump = serde_json::json!([{
            "name": "web", "pm_exec_path": script, "pm_pid_path": self.home.join("pids/web-0.pid"),
            "env": env
        }]);
        fs::write(self.home.join("dump.pm2"), dump.to_string()).unwrap();
    }

    fn resurrect(&self, extra: &[&str]) -> (i32, String) {
        let out = Command::cargo_bin("pm2-doctor")
            .unwrap()
            .env_clear()
            .env("HOME", self.tmp.path())
            .args(["resurrect", "--timeout", "0.5", "--watch", "0.1", "--home"])
            .arg(&self.home)
            .arg("--pm2")
            .arg(&self.fake_pm2)
            .arg("--backup-dir")
            .arg(self.tmp.path().join("backups"))
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn pm2_was_run(&self) -> bool {
        Path::new(&self.calls).exists()
    }
}

#[test]
fn refuses_when_no_valid_source_exists() {
    let lab = Lab::new();
    fs::write(lab.home.join("dump.pm2"), "[{\"name\":").unwrap();
    fs::write(lab.home.join("dump.pm2.bak"), "").unwrap();
    let (code, err) = lab.resurrect(&[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no valid source"), "{err}");
    assert!(!lab.pm2_was_run(), "nothing was started");
    // An explicit source that is not valid is refused the same way.
    let (code, err) = lab.resurrect(&["--from", "dump"]);
    assert_eq!(code, 4);
    assert!(err.contains("not a valid app list"), "{err}");
    assert!(!lab.pm2_was_run());
}

#[test]
fn refuses_when_a_stranger_holds_a_port_the_apps_want() {
    let lab = Lab::new();
    // This test process is not the home's: it plays the stranger.
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stranger.local_addr().unwrap().port();
    lab.dump(Some(port));
    let (code, err) = lab.resurrect(&[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&format!("port {port}")), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "names the holder: {err}"
    );
    assert!(!lab.pm2_was_run(), "nothing was started");
    drop(stranger);
}

#[test]
fn refuses_while_an_orphan_of_the_home_is_alive() {
    let lab = Lab::new();
    lab.dump(None);
    let mut orphan = std::process::Command::new("sleep")
        .arg("300")
        .env("PM2_HOME", &lab.home)
        .env("pm_id", "0")
        .env("name", "web")
        .env("unique_id", "u")
        .spawn()
        .unwrap();
    let (code, err) = lab.resurrect(&[]);
    let _ = orphan.kill();
    let _ = orphan.wait();
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("process.orphan"), "{err}");
    assert!(!lab.pm2_was_run());
}

#[test]
fn starts_through_a_validated_copy_never_the_real_dump() {
    let lab = Lab::new();
    lab.dump(None);
    let before = fs::read(lab.home.join("dump.pm2")).unwrap();
    let (code, err) = lab.resurrect(&["--format", "json", "--rearm-guard"]);
    // The fake pm2 starts nothing, so no app is seen: not stable (4).
    assert_eq!(code, 4, "{err}");
    let calls = fs::read_to_string(&lab.calls).unwrap();
    assert_eq!(calls.lines().collect::<Vec<_>>(), vec!["ping", "resurrect"]);
    assert_eq!(
        fs::read(lab.home.join("dump.pm2")).unwrap(),
        before,
        "the real dump is untouched"
    );
    let copies: Vec<_> = walk(&lab.tmp.path().join("backups"))
        .into_iter()
        .filter(|p| p.ends_with("resurrect-dump.json"))
        .collect();
    assert_eq!(copies.len(), 1);
    let copy: serde_json::Value = serde_json::from_slice(&fs::read(&copies[0]).unwrap()).unwrap();
    assert!(
        copy[0].get("created_at").is_none(),
        "--rearm-guard drops created_at"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
