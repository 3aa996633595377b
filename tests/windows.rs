//! The Windows code paths, run for real (under Wine by
//! `scripts/windows-test.sh`, or on Windows): home resolution from
//! `USERPROFILE`, the daemon probe over named pipes that these tests serve
//! themselves (one answering like PM2, one silent, one busy, one missing),
//! the process table and termination of a child these tests start, and the
//! TCP owner table. Pipe names are unique per test run, never PM2's own
//! `\\.\pipe\rpc.sock`, and only processes started here are terminated.

#![cfg(windows)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pm2_doctor::home::{EnvMap, Platform, Pm2Paths};
use pm2_doctor::platform::windows::{self as win, OtherHome, PipeOpen};
use pm2_doctor::probe::{self, decode_frame, encode_frame, ProbeOutcome};
use pm2_doctor::process::{ProcessControl, ProcessSource, Sig, SystemControl, SystemSource};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A pipe name no other test, run or program uses.
fn pipe_name(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        r"\\.\pipe\pm2-doctor-test-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn env(pairs: &[(&str, &str)]) -> EnvMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------- homes

#[test]
fn home_resolves_from_userprofile() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("ann");
    let e = env(&[("USERPROFILE", profile.to_str().unwrap())]);
    let p = Pm2Paths::resolve(None, &e, win::node_homedir(&e), Platform::Windows);
    assert_eq!(p.home, profile.join(".pm2"));
    assert_eq!(p.pid_file, profile.join(".pm2").join("pm2.pid"));
    assert_eq!(
        p.rpc,
        pm2_doctor::home::Endpoint::NamedPipe(win::RPC_PIPE.into())
    );
    // The pure Windows rules agree with the resolver on a real Windows path.
    let pure = win::resolve_home(None, &e, None, &|p: &Path| p.is_dir());
    assert_eq!(pure.home, p.home);
    // This process's own environment (Wine sets USERPROFILE too).
    let real = pm2_doctor::home::process_env();
    let up = real
        .get("USERPROFILE")
        .expect("USERPROFILE is set on Windows");
    let p = Pm2Paths::resolve(
        None,
        &env(&[("USERPROFILE", up)]),
        win::node_homedir(&real),
        Platform::Windows,
    );
    assert_eq!(p.home, Path::new(up).join(".pm2"));
    assert!(p.home.is_absolute(), "{}", p.home.display());
}

#[test]
fn pm2_installer_home_is_reported_beside_the_users() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("ann");
    let program_data = tmp.path().join("ProgramData");
    std::fs::create_dir_all(profile.join(".pm2")).unwrap();
    std::fs::create_dir_all(program_data.join("pm2").join("home")).unwrap();
    let e = env(&[
        ("USERPROFILE", profile.to_str().unwrap()),
        ("ProgramData", program_data.to_str().unwrap()),
    ]);
    let h = win::resolve_home(None, &e, None, &|p: &Path| p.is_dir());
    assert_eq!(h.home, profile.join(".pm2"));
    assert_eq!(
        h.others,
        vec![OtherHome::Pm2InstallerService {
            path: program_data.join("pm2").join("home")
        }]
    );
}

// ---------------------------------------------------------------- pipes

/// Reads AMP frames until `n` calls arrived; returns each call's arguments.
fn read_calls(pipe: &mut impl Read, n: usize) -> Vec<Vec<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut calls = Vec::new();
    while calls.len() < n {
        let got = pipe.read(&mut chunk).unwrap();
        assert!(got > 0, "client closed before sending {n} calls");
        buf.extend_from_slice(&chunk[..got]);
        while let Some((args, used)) = decode_frame(&buf).unwrap() {
            buf.drain(..used);
            calls.push(args);
        }
    }
    calls
}

#[test]
fn probe_gets_a_real_getversion_reply_over_a_pipe() {
    let name = pipe_name("answers");
    let mut server = miow::pipe::NamedPipe::new(&name).unwrap();
    let t = std::thread::spawn(move || {
        server.connect().unwrap();
        let calls = read_calls(&mut server, 2);
        // Replies go by id, whatever order the probe sent its calls in.
        let id_of = |method: &str| {
            let c = calls
                .iter()
                .find(|c| c[0].windows(method.len()).any(|w| w == method.as_bytes()))
                .unwrap_or_else(|| panic!("no {method} call"));
            c[1].clone()
        };
        let monitor = br#"j:{"args":[[{"name":"web","pid":4242,"pm_id":0,"pm2_env":{"status":"online","restart_time":3}}]]}"#;
        server
            .write_all(&encode_frame(&[
                b"j:{\"args\":[\"7.0.4\"]}",
                &id_of("getVersion"),
            ]))
            .unwrap();
        server
            .write_all(&encode_frame(&[monitor, &id_of("getMonitorData")]))
            .unwrap();
        server.flush().unwrap();
        // Hold the pipe until the client hangs up, so no reply is lost.
        let mut rest = [0u8; 64];
        while matches!(server.read(&mut rest), Ok(n) if n > 0) {}
        calls
    });
    let out = probe::probe(
        &pm2_doctor::home::Endpoint::NamedPipe(name),
        Duration::from_secs(5),
    );
    let calls = t.join().unwrap();
    let ProbeOutcome::Answered(r) = out else {
        panic!("{out:?}")
    };
    assert_eq!(r.version, "7.0.4");
    assert_eq!(r.apps.unwrap()[0].live_pid(), Some(4242));
    for c in &calls {
        let body: serde_json::Value = serde_json::from_slice(&c[0][2..]).unwrap();
        assert_eq!(
            body["args"],
            serde_json::json!([{}]),
            "exactly one argument"
        );
    }
}

#[test]
fn a_pipe_that_accepts_and_never_answers_is_a_timeout() {
    let name = pipe_name("silent");
    let server = miow::pipe::NamedPipe::new(&name).unwrap();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        server.connect().unwrap();
        let _ = stop_rx.recv();
        drop(server); // unblocks the probe's abandoned read
    });
    let deadline = Duration::from_millis(400);
    let started = Instant::now();
    let out = probe::probe(&pm2_doctor::home::Endpoint::NamedPipe(name), deadline);
    let took = started.elapsed();
    stop_tx.send(()).unwrap();
    t.join().unwrap();
    assert!(
        matches!(
            out,
            ProbeOutcome::Timeout {
                connected: true,
                ..
            }
        ),
        "{out:?}"
    );
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(1),
        "{took:?}"
    );
}

#[test]
fn a_missing_pipe_is_missing_error_2() {
    let name = pipe_name("missing");
    let err = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&name)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(2), "{err}");
    assert_eq!(
        win::classify_pipe_error(err.raw_os_error()),
        PipeOpen::Missing
    );
    let ep = pm2_doctor::home::Endpoint::NamedPipe(name);
    let started = Instant::now();
    assert_eq!(
        probe::probe(&ep, Duration::from_secs(2)),
        ProbeOutcome::Missing
    );
    assert_eq!(
        probe::connect_only(&ep, Duration::from_secs(2)),
        ProbeOutcome::Missing
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_busy_pipe_is_error_231_and_a_timeout_within_the_deadline() {
    let name = pipe_name("busy");
    // One instance, taken by a client that never lets go.
    let server = miow::pipe::NamedPipeBuilder::new(&name)
        .max_instances(1)
        .create()
        .unwrap();
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&name)
        .unwrap();
    let err = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&name)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(231), "{err}");
    assert_eq!(win::classify_pipe_error(err.raw_os_error()), PipeOpen::Busy);
    let err = miow::pipe::NamedPipe::wait(&name, Some(Duration::from_millis(50))).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(121), "{err}");
    assert_eq!(
        win::classify_pipe_error(err.raw_os_error()),
        PipeOpen::WaitTimedOut
    );

    let ep = pm2_doctor::home::Endpoint::NamedPipe(name);
    let deadline = Duration::from_millis(400);
    for outcome in [
        probe::probe(&ep, deadline),
        probe::connect_only(&ep, deadline),
    ] {
        assert!(
            matches!(
                outcome,
                ProbeOutcome::Timeout {
                    connected: false,
                    ..
                }
            ),
            "{outcome:?}"
        );
    }
    let started = Instant::now();
    let _ = probe::probe(&ep, deadline);
    assert!(started.elapsed() < deadline + Duration::from_secs(1));
    drop(holder);
    drop(server);
}

#[test]
fn a_busy_pipe_that_frees_up_in_time_is_connected_to() {
    let name = pipe_name("frees-up");
    let first = miow::pipe::NamedPipeBuilder::new(&name)
        .max_instances(2)
        .create()
        .unwrap();
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&name)
        .unwrap();
    let name2 = name.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        let second = miow::pipe::NamedPipeBuilder::new(&name2)
            .first(false)
            .max_instances(2)
            .create()
            .unwrap();
        second.connect().unwrap();
        second
    });
    let started = Instant::now();
    let f = win::open_pipe(&name, Duration::from_secs(3)).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(100));
    let second = t.join().unwrap();
    drop((f, holder, first, second));
}

// ------------------------------------------------------------ processes

const CHILD_FLAG: &str = "PM2_DOCTOR_TEST_SLEEPER";

/// Not a test: the body of the child process the tests below start (this
/// same binary, re-run with `CHILD_FLAG` set).
#[test]
#[ignore = "run as a child process by the tests below"]
fn sleeper_child() {
    if std::env::var_os(CHILD_FLAG).is_some() {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Starts this test binary as a sleeping child carrying PM2's app markers.
fn start_sleeper(home: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["sleeper_child", "--exact", "--ignored", "--test-threads=1"])
        .env(CHILD_FLAG, "1")
        .env("PM2_HOME", home)
        .env("pm_id", "7")
        .env("name", "web")
        .env("unique_id", "u-7")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills the child if a test failed before doing so (by its handle: only
/// what we started).
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn lists_and_terminates_a_child_through_system_control() {
    let home = PathBuf::from(r"C:\pm2-doctor-test-home");
    let mut child = Reap(start_sleeper(&home));
    let pid = child.0.id();
    let me = std::process::id();

    // The snapshot sees it, its start time, its parent and its PM2 markers
    // (read from another process's environment block).
    let deadline = Instant::now() + Duration::from_secs(10);
    let info = loop {
        let snap = SystemSource.snapshot().unwrap();
        assert_eq!(snap.self_pid, me);
        if let Some(p) = snap.get(pid) {
            if p.env.as_ref().is_some_and(|e| e.has_app_markers()) {
                break p.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "child {pid} never listed with its environment"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(info.is_alive());
    assert_eq!(info.ppid, Some(me));
    // No Unix sessions on Windows: the Terminal Services session id that
    // sysinfo reports is shared by every process of the user.
    assert_eq!(info.sid, None);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        info.start_time > 0 && info.start_time <= now + 1,
        "{info:?}"
    );
    assert!(now - info.start_time < 300, "{info:?}");
    let env = info.env.clone().unwrap();
    assert_eq!(env.pm_id.as_deref(), Some("7"));
    assert_eq!(env.name.as_deref(), Some("web"));
    assert_eq!(env.home.as_deref(), Some(home.to_str().unwrap()));
    assert!(
        info.name.to_lowercase().starts_with("windows-"),
        "{}",
        info.name
    );

    // A pid whose start time does not match is refused, on the same handle
    // that would kill it; so is one whose start time is unknown.
    assert!(matches!(
        win::terminate(pid, info.start_time + 1),
        Err(win::TerminateError::Reused { .. })
    ));
    assert!(matches!(
        win::terminate(pid, 0),
        Err(win::TerminateError::IdentityUnknown { .. })
    ));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "refused, so still alive"
    );

    let mut ctl = SystemControl::new().unwrap();
    let seen = ctl.inspect(pid).expect("inspect sees the child");
    assert_eq!(seen.start_time, info.start_time);
    ctl.signal(pid, Sig::Term).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still alive after terminate");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1), "TerminateProcess(…, 1)");
    // Gone from the table (or at least no longer the same live process).
    let after = ctl.inspect(pid);
    assert!(
        after
            .as_ref()
            .is_none_or(|p| !p.is_alive() || p.start_time != info.start_time),
        "{after:?}"
    );
    // Signalling it again is an error, not a kill of whatever has the pid.
    assert!(ctl.signal(pid, Sig::Kill).is_err() || after.is_none());
}

// ---------------------------------------------------------------- ports

/// Wine runs these tests in CI (scripts/windows-test.sh); a few of its
/// answers differ from Windows' and are checked as what they are.
fn under_wine() -> bool {
    std::env::var_os("WINEPREFIX").is_some()
        || Path::new(r"C:\windows\system32\winecfg.exe").exists()
}

#[test]
fn tcp_owner_table_finds_our_listener() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let me = std::process::id();
    let by_pid = pm2_doctor::process::listening_ports(&[me]);
    let by_port = pm2_doctor::process::port_listeners(&[port]);
    if under_wine() {
        // Wine 8 fills GetExtendedTcpTable's rows but not their owner
        // column (every pid is 0), so no owner can be named: the row is
        // there (found by port), the pid is not.
        match listeners::get_process_by_port(port, listeners::Protocol::TCP) {
            Ok(p) => assert_eq!(p.pid, me),
            Err(e) => assert!(!e.to_string().contains("No listener"), "{e}"),
        }
        assert!(by_pid.get(&me).is_none_or(|p| p.contains(&port)));
        assert!(by_port.get(&port).is_none_or(|v| v == &vec![me]));
        return;
    }
    assert!(
        by_pid.get(&me).is_some_and(|p| p.contains(&port)),
        "{by_pid:?}"
    );
    assert_eq!(by_port.get(&port), Some(&vec![me]), "{by_port:?}");
    drop(l);
    let by_port = pm2_doctor::process::port_listeners(&[port]);
    assert!(by_port.get(&port).is_none_or(|v| !v.contains(&me)));
}

// ------------------------------------------------------------------ cli

#[test]
fn diagnose_runs_end_to_end_on_a_stale_home() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join(".pm2");
    std::fs::create_dir_all(home.join("pids")).unwrap();
    // A pid no process has: Windows pids are multiples of 4 and this one
    // is far above what Wine or a fresh Windows hands out.
    std::fs::write(home.join("pm2.pid"), "4000000").unwrap();
    // Started directly: assert_cmd would prefix the cargo runner (`wine`),
    // which is no Windows program.
    let out = Command::new(env!("CARGO_BIN_EXE_pm2-doctor"))
        .args(["diagnose", "--format", "json", "--timeout", "1", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let checks = doc["findings"].as_array().unwrap();
    assert!(
        checks.iter().any(|f| f["check"] == "daemon.pid-stale"),
        "{doc:#}"
    );
    assert_eq!(
        out.status.code(),
        doc["exit_code"].as_i64().map(|c| c as i32)
    );
}

#[test]
fn diagnose_finds_the_home_under_userprofile() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("ann");
    std::fs::create_dir_all(profile.join(".pm2")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pm2-doctor"))
        .args(["diagnose", "--format", "json", "--timeout", "1"])
        .env("USERPROFILE", &profile)
        .env_remove("PM2_HOME")
        .env_remove("OVER_HOME")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        doc["home"],
        profile.join(".pm2").to_str().unwrap(),
        "{doc:#}"
    );
    assert_eq!(doc["home_source"], "home-dir");
}

/// A diagnosis of the user's home names pm2-installer's machine-wide home
/// beside it: both daemons would answer on the same pipes.
#[test]
fn diagnose_names_the_other_home_that_shares_the_pipes() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("ann");
    let program_data = tmp.path().join("ProgramData");
    std::fs::create_dir_all(profile.join(".pm2")).unwrap();
    let machine = program_data.join("pm2").join("home");
    std::fs::create_dir_all(&machine).unwrap();
    let run = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_pm2-doctor"))
            .args(["diagnose", "--format", format, "--timeout", "0.5"])
            .env("USERPROFILE", &profile)
            .env("ProgramData", &program_data)
            .env("NO_COLOR", "1")
            .env_remove("PM2_HOME")
            .env_remove("OVER_HOME")
            .output()
            .unwrap()
    };
    let out = run("json");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        doc["other_homes"],
        serde_json::json!([{"kind": "pm2-installer-service", "path": machine.to_str().unwrap()}]),
        "{doc:#}"
    );
    let human = String::from_utf8_lossy(&run("human").stdout).into_owned();
    assert!(
        human.contains(&format!(
            "{} also exists: pm2-installer's",
            machine.display()
        )),
        "{human}"
    );
    assert!(human.contains("uses the same pipes"), "{human}");
}
