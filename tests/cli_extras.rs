//! The operator-facing extras: the offline bug report (and that no planted
//! secret survives it), atomic --output, shell completions and the man page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assert_cmd::Command;
use common::doctor::Out;
use std::fs;
use std::path::Path;

fn doctor() -> Command {
    let mut c = Command::cargo_bin("pm2-doctor").unwrap();
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

/// `pm2-doctor diagnose --format json --home HOME [extra]` with `env`, its
/// one JSON document checked.
fn diagnose_json(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = common::doctor::sandboxed(home.parent().unwrap_or(home));
    cmd.args(["diagnose", "--format", "json", "--home"])
        .arg(home)
        .args(extra)
        .envs(env.iter().copied());
    common::doctor::run(cmd, "diagnose").expect_json()
}

const SECRETS: &[&str] = &[
    "ghp_PLANTEDsecret0123456789abcdef",
    "hunter2-planted-password",
    "sk-PLANTED0123456789abcdefghij",
    "planted-url-password",
    "PLANTEDtokenvalue98765432109876543",
];

#[test]
fn report_redacts_every_planted_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir_all(home.join("logs")).unwrap();
    let h = home.display().to_string();
    let dump = serde_json::json!([{
        "name": "api", "pm_exec_path": "/srv/api.js", "pm_pid_path": format!("{h}/pids/api-0.pid"),
        "pm_err_log_path": format!("{h}/logs/api-error.log"), "status": "errored", "restart_time": 99,
        "env": {"PM2_HOME": h, "GITHUB_TOKEN": SECRETS[0], "DB_PASSWORD": SECRETS[1], "PORT": "3000"},
        "GITHUB_TOKEN": SECRETS[0], "DB_PASSWORD": SECRETS[1]
    }]);
    fs::write(home.join("dump.pm2"), dump.to_string()).unwrap();
    fs::write(
        home.join("pm2.log"),
        format!(
            "2026-11-28T08:00:00: PM2 log: App [api:0] starting in -fork mode-\n2026-11-28T08:00:01: PM2 error: export OPENAI_API_KEY={}\n",
            SECRETS[2]
        ),
    )
    .unwrap();
    fs::write(
        home.join("logs/api-error.log"),
        format!(
            "Error: connect postgres://admin:{}@db.internal:5432/app failed\nauth token {}\n",
            SECRETS[3], SECRETS[4]
        ),
    )
    .unwrap();
    let snapshot = serde_json::json!({"processes": [{
        "pid": 4242, "ppid": 1, "start_time": 1_700_000_000, "sid": 4242, "uid": 1000, "name": "node",
        "cmd": ["node", "/srv/api.js", format!("--token={}", SECRETS[2]), format!("--password={}", SECRETS[1])],
        "env": {"home": h, "pm_id": "0", "name": "api", "unique_id": "u"}, "listen_ports": [3000]
    }]});
    let snap = tmp.path().join("procs.json");
    fs::write(&snap, snapshot.to_string()).unwrap();
    let out_file = tmp.path().join("report.md");
    let out = doctor()
        .args(["report", "--timeout", "0.5", "--home"])
        .arg(&home)
        .arg("--process-snapshot")
        .arg(&snap)
        .arg("--output")
        .arg(&out_file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = fs::read_to_string(&out_file).unwrap();
    for s in SECRETS {
        assert!(
            !report.contains(s),
            "secret {s} leaked into the report:\n{report}"
        );
    }
    // The report is still useful: it names the app, the crash and the orphan.
    assert!(report.contains("| api |"), "{report}");
    assert!(report.contains("app.crash-loop"), "{report}");
    assert!(report.contains("| 4242 |"), "{report}");
    assert!(report.contains("[REDACTED]"), "{report}");
    assert!(
        report.contains("db.internal"),
        "only the credential is cut: {report}"
    );
}

#[test]
fn output_is_written_atomically_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    fs::write(home.join("pm2.pid"), "999999").unwrap();
    for (format, probe) in [
        ("prometheus", "# TYPE pm2_doctor_check_status gauge"),
        ("json", "\"schema_version\""),
        ("human", "daemon.pid-stale"),
    ] {
        let file = tmp.path().join(format!("out.{format}"));
        let out = doctor()
            .args(["diagnose", "--timeout", "0.5", "--format", format, "--home"])
            .arg(&home)
            .arg("--output")
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "{format}");
        assert!(
            out.stdout.is_empty(),
            "{format}: nothing on stdout with --output"
        );
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.contains(probe), "{format}: {text}");
        assert!(!text.contains('\u{1b}'), "{format}: no colour in files");
    }
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    // A folder that does not exist is a clear error, not a panic.
    let out = doctor()
        .args([
            "diagnose",
            "--timeout",
            "0.5",
            "--format",
            "prometheus",
            "--home",
        ])
        .arg(&home)
        .arg("--output")
        .arg(tmp.path().join("missing/dir/out.prom"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write"));
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = doctor().args(["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("diagnose") && text.contains("repair"),
            "{shell}"
        );
        if shell == "bash" && std::path::Path::new("/bin/bash").exists() {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("c.bash");
            fs::write(&f, &text).unwrap();
            let ok = std::process::Command::new("bash")
                .arg("-n")
                .arg(&f)
                .status()
                .unwrap();
            assert!(ok.success(), "bash -n rejects the completion script");
        }
    }
    let out = doctor().arg("man").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let man = String::from_utf8(out.stdout).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH"),
        "{}",
        &man[..man.len().min(200)]
    );
    assert!(man.contains("diagnose"));
}

/// The report lints the ecosystem file it is given (evaluated with node for
/// .cjs, as PM2 does), and says why when there is none.
#[test]
fn report_includes_the_ecosystem_lint() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let report = |extra: &[&str]| {
        let out = doctor()
            .args(["report", "--timeout", "0.5", "--home"])
            .arg(&home)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let without = report(&[]);
    assert!(without.contains("## Ecosystem file"), "{without}");
    assert!(
        without.contains("Not linted: no ecosystem file given or found next to the apps"),
        "{without}"
    );
    let eco = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/ecosystem/seed-before/ecosystem.config.cjs"
    );
    let with = report(&["--ecosystem", eco]);
    let section = &with[with.find("## Ecosystem file").expect("section")..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    assert!(
        section.contains("seed-before/ecosystem.config.cjs"),
        "{section}"
    );
    assert!(section.contains("apps: c3-backend"), "{section}");
    for check in ["config.implicit-cluster", "config.restart-policy"] {
        assert!(
            section.contains(&format!("| `{check}` | warning |")),
            "{check} missing:\n{section}"
        );
    }
    assert!(
        section.contains("exec_mode: 'fork'"),
        "the fix is shown:\n{section}"
    );
}

/// The crash-loop thresholds are the operator's: an app that restarts by
/// design (a cron_restart job) need not be an error.
#[test]
fn crash_loop_thresholds_are_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let dump = serde_json::json!([{
        "name": "nightly", "pm_exec_path": "/bin/true", "pm_pid_path": "x",
        "status": "online", "restart_time": 60, "env": {}
    }]);
    fs::write(home.join("dump.pm2"), dump.to_string()).unwrap();
    // Six starts of the app, two minutes apart: 0.5 a minute.
    let log: String = (0..6)
        .map(|i| {
            format!(
                "2026-11-28T08:{:02}:00: PM2 log: App [nightly:0] starting in -fork mode-\n",
                i * 2
            )
        })
        .collect();
    fs::write(home.join("pm2.log"), log).unwrap();
    let loops = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["--only", "app.crash-loop", "--timeout", "0.5"];
        args.extend_from_slice(extra);
        diagnose_json(&home, &args, &[])
            .findings("app.crash-loop")
            .iter()
            .map(|f| f["summary"].as_str().unwrap().to_string())
            .collect()
    };
    let default = loops(&[]);
    assert_eq!(default.len(), 1, "60 restarts >= 50: {default:?}");
    assert!(default[0].contains("has restarted 60 times"), "{default:?}");
    assert!(loops(&["--loop-restarts", "100"]).is_empty());
    // Under a rate of 0.4 a minute the pm2.log starts make it a loop again.
    let by_rate = loops(&["--loop-restarts", "100", "--loop-rate", "0.4"]);
    assert_eq!(by_rate.len(), 1, "{by_rate:?}");
    assert!(by_rate[0].contains("times a minute"), "{by_rate:?}");
    let out = doctor()
        .args(["diagnose", "--loop-rate", "0", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16), "a usage error");
}

/// Which of two daemons of a home listens on its sockets is read from the
/// kernel (SO_PEERCRED), so a duplicate can keep the one that serves. Here
/// this test process plays the daemon that binds both sockets (and never
/// answers); the replayed process table lists it and a ghost.
#[cfg(target_os = "linux")]
#[test]
fn the_daemon_listening_on_both_sockets_is_named() {
    use std::os::unix::net::UnixListener;
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let _rpc = UnixListener::bind(home.join("rpc.sock")).unwrap();
    let _pub = UnixListener::bind(home.join("pub.sock")).unwrap();
    let me = std::process::id();
    let ghost = 4_000_000;
    let h = home.display().to_string();
    let daemon = |pid: u32, started: u64| {
        serde_json::json!({
            "pid": pid, "ppid": 1, "start_time": started, "sid": pid, "uid": 1000,
            "name": "PM2 v7.0.4: God", "cmd": [format!("PM2 v7.0.4: God Daemon ({h})")],
            "env": {"home": h, "silent": true}
        })
    };
    let snapshot = serde_json::json!({"self_pid": 1, "processes": [daemon(ghost, 1_700_000_000), daemon(me, 1_700_000_100)]});
    let snap = tmp.path().join("procs.json");
    fs::write(&snap, snapshot.to_string()).unwrap();
    let snap_s = snap.display().to_string();
    let out = diagnose_json(
        &home,
        &["--timeout", "0.3", "--process-snapshot", &snap_s],
        &[],
    );
    let dup = out.one("daemon.duplicate");
    assert_eq!(dup["evidence"]["serving_pid"], me, "{dup:#}");
    assert_eq!(dup["evidence"]["rpc_listener_pid"], me, "{dup:#}");
    assert_eq!(dup["evidence"]["pub_listener_pid"], me, "{dup:#}");
    let desc = dup["fix"]["description"].as_str().unwrap();
    assert!(
        desc.contains(&format!("(pids {ghost})"))
            && desc.contains(&format!("pid {me} and its apps keep running")),
        "{desc}"
    );
    let ghost_row = dup["evidence"]["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["pid"] == ghost)
        .unwrap()
        .clone();
    assert_eq!(ghost_row["serves_rpc_sock"], false, "{ghost_row}");
    assert_eq!(ghost_row["serves_pub_sock"], false, "{ghost_row}");
    // The same listener never answered: it is the wedged one.
    let wedged = out.one("daemon.unresponsive");
    assert_eq!(wedged["evidence"]["listener_pid"], me, "{wedged:#}");
    let daemon = &out.json["daemon"];
    assert_eq!(daemon["rpc"]["server_pid"], me, "{daemon:#}");
    assert_eq!(daemon["pub"]["server_pid"], me, "{daemon:#}");
}

/// A process whose /proc files block (stuck in the kernel, as when `ps`
/// hangs) must not hang diagnose: the test hook stalls the scan at pid 1;
/// diagnose gives up on the table at its deadline, says so, and still
/// reports what does not need processes.
#[cfg(target_os = "linux")]
#[test]
fn a_stuck_process_table_read_is_abandoned_at_its_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir_all(home.join("pids")).unwrap();
    fs::write(home.join("pm2.pid"), "4000000").unwrap();
    fs::write(home.join("pids/web-0.pid"), "4000001").unwrap();
    fs::write(home.join("dump.pm2"), "[{\"name\":").unwrap();
    let started = std::time::Instant::now();
    let stall = [("PM2_DOCTOR_TEST_STALL_PROC_READ", "1")];
    let out = diagnose_json(&home, &["--timeout", "0.5"], &stall);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    assert_eq!(
        out.code,
        12,
        "dump.corrupt (4) + incomplete (8):\n{}",
        out.pretty()
    );
    for id in ["daemon.pid-stale", "pidfile.stale", "process.orphan"] {
        let c = out.check(id);
        assert_eq!(
            c["status"], "unknown",
            "{id} must not be judged on an empty table: {c}"
        );
        let reason = c["reason"].as_str().unwrap();
        assert!(
            reason.contains("could not be read within 5.0 s") && reason.contains("process 1 "),
            "{reason}"
        );
        assert!(out.findings(id).is_empty(), "{}", out.pretty());
    }
    assert_eq!(out.status("dump.corrupt"), "problem");
    // A person reads the reason once, on the daemon line.
    let human = doctor()
        .env("PM2_DOCTOR_TEST_STALL_PROC_READ", "1")
        .args(["diagnose", "--color", "never", "--timeout", "0.5", "--home"])
        .arg(&home)
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert_eq!(
        text.matches("reading process 1 did not return").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("daemons unknown (the process table could not be read"),
        "{text}"
    );
    assert!(
        text.contains("? pidfile.stale            could not finish: no process table (see above)"),
        "{text}"
    );
}

/// Nothing is started when the process table cannot be read: a daemon or
/// orphan of the home could be running unseen.
#[cfg(target_os = "linux")]
#[test]
fn resurrect_refuses_without_a_process_table() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let dump = r#"[{"name":"web","pm_exec_path":"/bin/true","pm_pid_path":"x","env":{}}]"#;
    fs::write(home.join("dump.pm2"), dump).unwrap();
    let calls = tmp.path().join("calls.txt");
    let fake = tmp.path().join("pm2");
    fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let out = doctor()
        .env("PM2_DOCTOR_TEST_STALL_PROC_READ", "1")
        .env("HOME", tmp.path())
        .args(["resurrect", "--timeout", "0.5", "--watch", "0.1", "--home"])
        .arg(&home)
        .arg("--pm2")
        .arg(&fake)
        .arg("--backup-dir")
        .arg(tmp.path().join("backups"))
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("pre-flight failed"), "{stderr}");
    assert!(
        stderr.contains("the process table could not be read"),
        "{stderr}"
    );
    assert!(!calls.exists(), "pm2 was never run");
}

/// Seen from another pid namespace (pm2-doctor in a container, the daemon
/// on the host) the kernel reports the listener's pid as 0: it must read
/// as unknown, never as pid 0 (and never crash). Needs `unshare --pid`,
/// i.e. root or user namespaces; where that is refused there is nothing
/// to test.
#[cfg(target_os = "linux")]
#[test]
fn a_listener_in_another_pid_namespace_is_unknown_not_pid_0() {
    use std::os::unix::net::UnixListener;
    let can = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        eprintln!("unshare --pid is not permitted here: nothing to test");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let _rpc = UnixListener::bind(home.join("rpc.sock")).unwrap();
    let _pub = UnixListener::bind(home.join("pub.sock")).unwrap();
    let out = std::process::Command::new("unshare")
        .args(["--pid", "--fork"])
        .arg(env!("CARGO_BIN_EXE_pm2-doctor"))
        .args(["diagnose", "--format", "json", "--timeout", "0.3", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["daemon"]["rpc"]["state"], "timeout", "{v:#}");
    assert_eq!(v["daemon"]["rpc"]["connected"], true, "{v:#}");
    assert!(v["daemon"]["rpc"].get("server_pid").is_none(), "{v:#}");
    assert!(v["daemon"]["pub"].get("server_pid").is_none(), "{v:#}");
}

/// A daemon's pid files name a dead pid for a moment at every restart of a
/// crash-looping app (the old process exited, maybe not yet reaped). Such a
/// file is not stale: repair moving it aside would only race PM2's next
/// write (and make undo conflict with it).
#[cfg(target_os = "linux")]
#[test]
fn a_restarting_apps_pid_file_is_not_stale() {
    use pm2_doctor::probe::{decode_frame, encode_frame};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir_all(home.join("pids")).unwrap();
    // web:0 just exited: a zombie its daemon has not reaped yet.
    let zombie = 4_000_001;
    fs::write(home.join("pids/web-0.pid"), zombie.to_string()).unwrap();
    let me = std::process::id();
    let h = home.display().to_string();
    let snapshot = serde_json::json!({"self_pid": 1, "processes": [
        {"pid": me, "ppid": 1, "start_time": 1_700_000_000, "sid": me, "uid": 1000,
         "name": "PM2 v7.0.4: God", "cmd": [format!("PM2 v7.0.4: God Daemon ({h})")],
         "env": {"home": h, "silent": true}},
        {"pid": zombie, "ppid": me, "start_time": 1_700_000_100, "state": "zombie", "sid": zombie,
         "uid": 1000, "name": "node", "cmd": [], "env": {}}
    ]});
    let snap = tmp.path().join("procs.json");
    fs::write(&snap, snapshot.to_string()).unwrap();
    let snap_s = snap.display().to_string();
    let stale = |home: &Path| -> (serde_json::Value, Vec<serde_json::Value>) {
        let out = diagnose_json(
            home,
            &["--timeout", "1", "--process-snapshot", &snap_s],
            &[],
        );
        let found = out.findings("pidfile.stale").into_iter().cloned().collect();
        (out.check("pidfile.stale").clone(), found)
    };

    // 1. The daemon answers and lists web:0: its file is its own business.
    let rpc = UnixListener::bind(home.join("rpc.sock")).unwrap();
    let _pub = UnixListener::bind(home.join("pub.sock")).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = rpc.accept().unwrap();
        let (mut buf, mut calls, mut chunk) = (Vec::new(), Vec::new(), [0u8; 4096]);
        while calls.len() < 2 {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "the probe hung up");
            buf.extend_from_slice(&chunk[..n]);
            while let Some((args, used)) = decode_frame(&buf).unwrap() {
                buf.drain(..used);
                calls.push(args);
            }
        }
        for call in &calls {
            let reply: &[u8] = if call[0].windows(10).any(|w| w == b"getVersion") {
                br#"j:{"args":["7.0.4"]}"#
            } else {
                br#"j:{"args":[[{"name":"web","pm_id":0,"pid":0,"pm2_env":{"status":"launching","restart_time":12}}]]}"#
            };
            s.write_all(&encode_frame(&[reply, &call[1]])).unwrap();
        }
        let _ = s.read(&mut chunk);
    });
    let (check, found) = stale(&home);
    server.join().unwrap();
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(check["status"], "ok", "{check}");

    // 2. The daemon runs but gives no list (no socket here): a fresh file
    // may be mid-restart, so the check cannot say.
    fs::remove_file(home.join("rpc.sock")).unwrap();
    let (check, found) = stale(&home);
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(check["status"], "unknown", "{check}");
    assert!(
        check["reason"]
            .as_str()
            .unwrap()
            .contains("may be restarting"),
        "{check}"
    );

    // 3. An old file under the same daemon is stale as ever.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(home.join("pids/web-0.pid"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let (check, found) = stale(&home);
    assert_eq!(check["status"], "problem", "{check}");
    assert_eq!(found.len(), 1, "{found:?}");
}
