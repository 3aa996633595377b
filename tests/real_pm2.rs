//! `pm2-doctor diagnose` and `repair` against a real PM2 7.0.4 (pinned in
//! `tests/pm2`).
//!
//! Every test builds a private PM2 home in a temp dir, breaks it the way
//! production homes break (pm2-internals §3.3, §3.5, §5.4, §6), runs the
//! built binary with `diagnose --home <home> --format json` and checks the
//! findings, the evidence and the exit code. The repair tests (section j)
//! then run `repair --yes` (and `undo`) with `--backup-dir` in the test's
//! temp dir, and check what was killed, what survived, and every byte of
//! the home. Section k replays crash loops after `pm2 resurrect` (an orphan
//! holding the app's port, pm2-internals §6c), the seed incident end to
//! end with `repair --resurrect`, and `pm2-doctor resurrect`'s pre-flight.
//!
//! The rules these tests keep:
//! * `pm2` only ever runs with its own `PM2_HOME` and `HOME` (every pm2
//!   command, even `pm2 --version`, spawns a daemon), a cleared environment
//!   and a deadline: a pm2 call that does not finish is killed by pid and the
//!   test fails.
//! * Every process a test starts is killed by pid when the test ends, even
//!   when it panics: [`Lab`]'s `Drop` finds the processes whose environment
//!   holds exactly `PM2_HOME=<its home>` (daemons first, so they cannot
//!   restart their apps), plus the children the test spawned itself and
//!   the processes it remembered (an app's grandchild), the latter only
//!   while their start time still matches. Nothing else is ever signalled.
//! * The tests run one at a time (`serial()`).
//! * Without PM2 installed they fail under `CI=true` and are skipped, with a
//!   note, otherwise.
//! * Networking stays on 127.0.0.1.
//! * The only timing assertion is that a wedged daemon does not hold
//!   `diagnose` past its deadline plus generous slack.
#![cfg(target_os = "linux")]

mod common;

use common::doctor::{self, signalled, Out};
use common::lab::{send_signal, Lab};
use common::net::{free_ports, port_answers};
use common::pm2::{app, real_cli, SETTLE, VERSION as PM2_VERSION};
use common::tree::{changed_paths, tree, Tree};
use common::wait::{wait_until, wait_until_or};
use common::{command, path_var, procfs, python3, serial};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Display;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PREFIX: &str = "pm2doctor-it-";

fn evidence_pid(f: &Value) -> u32 {
    f["evidence"]["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("finding without a numeric evidence.pid: {f}"))
}

impl Lab {
    /// `pm2-doctor diagnose --home <home> --format json [extra]`.
    fn diagnose(&self, extra: &[&str]) -> Out {
        self.diagnose_with_path(extra, path_var())
    }

    fn diagnose_with_path(&self, extra: &[&str], path: OsString) -> Out {
        let mut args = vec!["diagnose", "--format", "json", "--color", "never"];
        args.extend_from_slice(extra);
        let mut cmd = self.doctor_cmd(&args);
        cmd.env("PATH", path);
        doctor::run(cmd, "diagnose").expect_json()
    }

    /// `pm2-doctor repair --grace 1 --timeout 1 --color never [extra]`.
    fn repair(&self, extra: &[&str]) -> Out {
        self.doctor_json(&repair_args(extra))
    }

    /// `pm2 start tests/apps/<file> --name <name> [flags]` with `PORT` a
    /// port free a moment ago (and `env`); returns the port once the app
    /// answers on it.
    fn start_listening(
        &mut self,
        file: &str,
        name: &str,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> u16 {
        let [port] = free_ports::<1>();
        let port_s = port.to_string();
        let script = app(file);
        let mut args = vec!["start", script.as_str(), "--name", name];
        args.extend_from_slice(flags);
        let mut all_env = vec![("PORT", port_s.as_str())];
        all_env.extend_from_slice(env);
        self.pm2(&args, &all_env);
        wait_until(
            &format!("{name} to listen on 127.0.0.1:{port}"),
            SETTLE,
            || port_answers(port),
        );
        port
    }

    /// http.js as `web` (see [`Lab::start_listening`]).
    fn start_web(&mut self, flags: &[&str]) -> u16 {
        self.start_listening("http.js", "web", flags, &[])
    }

    /// `pm2-doctor resurrect --format json [extra]` with the pinned pm2,
    /// output as printed: a refusal prints no document of its own.
    fn resurrect(&self, extra: &[&str]) -> Out {
        let cli = real_cli().display().to_string();
        let mut args = vec![
            "resurrect",
            "--pm2",
            &cli,
            "--watch",
            "2",
            "--call-timeout",
            "20",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        self.doctor_raw(&args)
    }

    /// `pm2 save` twice: the second copies the first into dump.pm2.bak.
    fn save_twice(&mut self) {
        self.pm2(&["save"], &[]);
        self.pm2(&["save"], &[]);
    }

    /// `pm2 kill`, checked to take its daemon with it.
    fn pm2_kill(&mut self) {
        self.pm2(&["kill"], &[]);
        assert!(self.daemons().is_empty(), "pm2 kill left a daemon");
    }
}

fn repair_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "repair",
        "--grace",
        "1",
        "--timeout",
        "1",
        "--color",
        "never",
    ];
    args.extend_from_slice(extra);
    args
}

/// The signalled process records of `actions`, by pid, checked to be
/// exactly those of `pids`.
fn signalled_exactly(
    actions: &[Value],
    pids: &BTreeSet<u32>,
    context: &dyn Display,
) -> BTreeMap<u32, Value> {
    let sig = signalled(actions);
    let got: BTreeSet<u32> = sig.keys().copied().collect();
    assert_eq!(&got, pids, "signalled exactly {pids:?}:\n{context}");
    sig
}

/// A repair's exit code: something fixed (1), nothing left unfixed (4),
/// no operational error (8).
fn assert_fixed_everything(r: &Out) {
    assert_eq!(r.code & 1, 1, "something was fixed:\n{}", r.pretty());
    assert_eq!(
        r.code & 4,
        0,
        "nothing left unfixed: {:#}\nheld back: {:#}",
        r.json["after"]["findings"],
        r.json["held_back"]
    );
    assert_eq!(r.code & 8, 0, "no operational error:\n{}", r.pretty());
}

/// dump.pm2 cut in half, as a save interrupted mid-write leaves it (saves
/// are not atomic, pm2-internals §0.9), beside its valid dump.pm2.bak.
struct CutDump {
    dump: PathBuf,
    bak: PathBuf,
    bak_bytes: Vec<u8>,
    half: Vec<u8>,
}

impl CutDump {
    fn cut(lab: &Lab) -> CutDump {
        let dump = lab.path("dump.pm2");
        let bak = lab.path("dump.pm2.bak");
        let bak_bytes = fs::read(&bak).expect("dump.pm2.bak");
        let saved = fs::read(&dump).expect("dump.pm2");
        let half = saved[..saved.len() / 2].to_vec();
        fs::write(&dump, &half).expect("truncate dump.pm2");
        CutDump {
            dump,
            bak,
            bak_bytes,
            half,
        }
    }

    /// After a repair: dump.pm2 holds dump.pm2.bak's bytes, and the backup
    /// is kept.
    fn assert_restored(&self) {
        assert!(
            fs::read(&self.dump).expect("dump.pm2") == self.bak_bytes,
            "dump.pm2 holds dump.pm2.bak's bytes"
        );
        assert_eq!(
            fs::read(&self.bak).expect("bak"),
            self.bak_bytes,
            "the backup is kept"
        );
    }

    /// `undo` of run `run_id`, the repair that restored dump.pm2, checked
    /// to put the cut bytes back (src/repair/undo.rs: a path in the state a
    /// step left it in is restored; no conflict). Returns undo's document.
    fn assert_undone(&self, lab: &Lab, run_id: &Value) -> Out {
        let u = lab.doctor_json(&["undo"]);
        assert_eq!(u.code, 0, "undo restores:\n{}", u.pretty());
        assert_eq!(u.json["refused"], false, "{}", u.pretty());
        assert_eq!(u.json["restored"], 1, "{}", u.pretty());
        assert_eq!(
            &u.json["run_id"],
            run_id,
            "the latest run is undone:\n{}",
            u.pretty()
        );
        let dump_s = self.dump.display().to_string();
        assert!(
            u.array("files")
                .iter()
                .any(|f| f["path"] == dump_s.as_str() && f["verdict"] == "restore"),
            "{}",
            u.pretty()
        );
        assert!(
            fs::read(&self.dump).expect("dump.pm2") == self.half,
            "dump.pm2 holds the truncated bytes again"
        );
        assert_eq!(fs::read(&self.bak).expect("bak"), self.bak_bytes);
        u
    }
}

// ---------------------------------------------------------------------------
// a. healthy
// ---------------------------------------------------------------------------

#[test]
fn healthy_daemon_with_two_apps_is_clean() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    lab.start_web(&[]);
    lab.pm2(&["start", &app("ticker.js"), "--name", "ticker"], &[]);
    let daemon = lab.daemon_pid();

    let cli = real_cli().display().to_string();
    let d = lab.diagnose(&["--pm2", &cli]);
    assert_eq!(d.code, 0, "a healthy home exits 0:\n{}", d.pretty());
    assert!(d.errors().is_empty(), "error findings:\n{}", d.pretty());
    for id in [
        "daemon.unresponsive",
        "daemon.version-mismatch",
        "process.orphan",
    ] {
        assert_eq!(d.status(id), "ok", "{id}:\n{}", d.pretty());
    }
    let unknown: Vec<&Value> = d.json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == "unknown")
        .collect();
    assert!(
        unknown.is_empty(),
        "checks that could not finish: {unknown:?}"
    );
    assert_eq!(d.json["daemon"]["pids"], serde_json::json!([daemon]));
    assert_eq!(d.json["daemon"]["rpc"]["state"], "answered");
    assert_eq!(d.json["daemon"]["rpc"]["version"], PM2_VERSION);
    assert_eq!(d.json["pm2_cli"]["version"], PM2_VERSION);

    let apps = d.json["apps"].as_array().expect("apps");
    let names: BTreeSet<&str> = apps.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, BTreeSet::from(["ticker", "web"]), "{apps:?}");
    for a in apps {
        assert_eq!(a["source"], "daemon", "{a}");
        assert_eq!(a["status"], "online", "{a}");
    }
    lab.finish();
}

// ---------------------------------------------------------------------------
// b. daemon SIGKILLed, apps left behind
// ---------------------------------------------------------------------------

#[test]
fn sigkilled_daemon_leaves_stale_files_and_orphans_holding_ports() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    // Both kinds PM2 leaves behind: a silent Node fork app without pmx, and
    // a non-Node interpreter (pm2-internals §5.4, timeline B).
    let web_port = lab.start_web(&["--no-pmx"]);
    let py_port = lab.start_listening("pyhttp.py", "py", &["--interpreter", &python3()], &[]);
    lab.pm2(&["save"], &[]);
    let web = lab.app_pid("web", 0);
    let py = lab.app_pid("py", 1);
    // A decoy: exports this PM2_HOME, as people do in their shells, but
    // carries no PM2 app markers. It must never be called an orphan.
    let decoy = lab.decoy();

    let daemon = lab.sigkill_daemon();
    // Time for the apps that die with their daemon to die (the pmx watchdog
    // fires within ~1 s); these two must survive it.
    sleep(Duration::from_secs(3));
    for (name, pid, port) in [("web", web, web_port), ("py", py, py_port)] {
        assert!(
            procfs::alive(pid) && port_answers(port),
            "precondition: {name} ({pid}) should outlive its daemon and keep 127.0.0.1:{port}"
        );
    }

    let d = lab.diagnose(&[]);
    assert_eq!(d.code & 4, 4, "error findings set bit 4:\n{}", d.pretty());

    let stale = d.one("daemon.pid-stale");
    assert_eq!(evidence_pid(stale), daemon);

    let stale_socks: BTreeSet<String> = d
        .findings("socket.stale")
        .iter()
        .filter_map(|f| f["evidence"]["path"].as_str())
        .map(|p| {
            Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert!(
        stale_socks.contains("rpc.sock") && stale_socks.contains("pub.sock"),
        "both sockets are stale after SIGKILL: {stale_socks:?}\n{}",
        d.pretty()
    );

    let orphans = d.findings("process.orphan");
    for (name, pid, port) in [("web", web, web_port), ("py", py, py_port)] {
        let f = orphans
            .iter()
            .find(|f| evidence_pid(f) == pid)
            .unwrap_or_else(|| {
                panic!(
                    "{name} ({pid}) is not reported as an orphan:\n{}",
                    d.pretty()
                )
            });
        assert_eq!(f["evidence"]["app"], name, "{f}");
        let ports: Vec<u64> = f["evidence"]["ports"]
            .as_array()
            .expect("evidence.ports")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert!(ports.contains(&u64::from(port)), "{name} holds {port}: {f}");
        assert_eq!(f["fix"]["action"], "kill-orphan");
    }
    assert!(
        orphans.iter().all(|f| evidence_pid(f) != decoy),
        "a process that merely exports PM2_HOME was called an orphan:\n{}",
        d.pretty()
    );
    assert!(
        lab.child_running(decoy),
        "diagnose must not signal anything"
    );
    lab.finish();
}

// ---------------------------------------------------------------------------
// c. corrupt and clobbered dumps
// ---------------------------------------------------------------------------

#[test]
fn corrupt_and_emptied_dumps_point_at_the_valid_backup() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    lab.start_web(&[]);
    lab.save_twice();
    lab.pm2_kill();

    let dump = lab.path("dump.pm2");
    let bak = lab.path("dump.pm2.bak");
    let saved = fs::read(&dump).expect("dump.pm2");
    let bak_bytes = fs::read(&bak).expect("dump.pm2.bak");
    for (what, bytes) in [("dump.pm2", &saved), ("dump.pm2.bak", &bak_bytes)] {
        let v: Value = serde_json::from_slice(bytes).expect("pm2 writes JSON");
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{what}: {v}");
    }

    // Baseline: what `pm2 kill` leaves is healthy.
    let d = lab.diagnose(&[]);
    assert_eq!(d.code, 0, "after pm2 kill:\n{}", d.pretty());

    // Truncated mid-write (saves are not atomic, pm2-internals §0.9).
    let half = &saved[..saved.len() / 2];
    fs::write(&dump, half).expect("truncate dump");
    let d = lab.diagnose(&[]);
    assert_eq!(d.code & 4, 4, "{}", d.pretty());
    let f = d.one("dump.corrupt");
    assert_eq!(f["evidence"]["backup_valid"], true, "{f}");
    assert_eq!(f["evidence"]["backup_apps"], 1, "{f}");
    assert_eq!(f["evidence"]["size"], half.len(), "{f}");
    assert_eq!(f["fix"]["action"], "restore-dump-from-backup", "{f}");
    assert_eq!(
        fs::read(&dump).expect("dump"),
        half,
        "diagnose is read-only"
    );

    // `[]` while the backup holds an app: clobbered, a warning.
    fs::write(&dump, "[]").expect("write []");
    let d = lab.diagnose(&[]);
    let f = d.one("dump.empty");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["evidence"]["backup_apps"], 1, "{f}");
    assert_eq!(f["fix"]["action"], "restore-dump-from-backup", "{f}");
    assert!(d.findings("dump.corrupt").is_empty(), "{}", d.pretty());
    assert_eq!(d.code, 0, "warnings alone exit 0:\n{}", d.pretty());
    assert_eq!(
        lab.diagnose(&["--strict"]).code,
        4,
        "--strict counts warnings"
    );

    // Valid JSON, wrong shape: pm2 resurrect crashes on it.
    fs::write(&dump, r#"{"x":1}"#).expect("write object");
    let d = lab.diagnose(&[]);
    assert_eq!(d.code & 4, 4, "{}", d.pretty());
    let f = d.one("dump.corrupt");
    assert_eq!(f["evidence"]["kind"], "an object", "{f}");
    assert_eq!(f["evidence"]["backup_valid"], true, "{f}");
    assert_eq!(f["fix"]["action"], "restore-dump-from-backup", "{f}");

    assert_eq!(
        fs::read(&bak).expect("bak"),
        bak_bytes,
        "the backup is untouched"
    );
    assert!(d.findings("dump.backup-corrupt").is_empty());
    assert!(
        lab.daemons().is_empty(),
        "diagnose must never start a daemon"
    );
    lab.finish();
}

// ---------------------------------------------------------------------------
// d. wedged listener
// ---------------------------------------------------------------------------

#[test]
fn wedged_listener_is_reported_within_the_deadline() {
    let _serial = serial();
    // No pm2 needed: the listener is ours. It accepts (the kernel queues the
    // connection) and never answers, like a wedged daemon (§3.3).
    let lab = Lab::new(PREFIX, &[]);
    let listener = UnixListener::bind(lab.path("rpc.sock")).expect("bind rpc.sock");

    let timeout = Duration::from_secs(1);
    let slack = Duration::from_secs(4);
    let started = Instant::now();
    let d = lab.diagnose(&["--timeout", "1"]);
    let elapsed = started.elapsed();
    eprintln!("diagnose --timeout 1 against a wedged listener took {elapsed:?}");
    assert!(
        elapsed < timeout + slack,
        "diagnose took {elapsed:?} with --timeout 1"
    );
    assert_eq!(d.code & 4, 4, "{}", d.pretty());
    let f = d.one("daemon.unresponsive");
    assert_eq!(f["evidence"]["connected"], true, "{f}");
    assert!(
        lab.daemons().is_empty(),
        "diagnose must never start a daemon"
    );
    drop(listener);
    lab.finish();
}

// ---------------------------------------------------------------------------
// e. pm2.pid names an unrelated live process
// ---------------------------------------------------------------------------

#[test]
fn pm2_pid_naming_an_unrelated_process_is_foreign_and_left_alone() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    lab.pm2(&["ping"], &[]);
    lab.sigkill_daemon();
    // The daemon's pid "reused" by an unrelated process.
    let sleeper = lab.spawn(command("sleep").arg("300"));
    fs::write(lab.path("pm2.pid"), sleeper.to_string()).expect("write pm2.pid");

    let d = lab.diagnose(&[]);
    assert_eq!(d.code & 4, 4, "{}", d.pretty());
    let f = d.one("daemon.pid-foreign");
    assert_eq!(evidence_pid(f), sleeper, "{f}");
    assert!(
        f["evidence"]["cmdline"]
            .as_str()
            .is_some_and(|c| c.contains("sleep")),
        "{f}"
    );
    assert!(d.findings("daemon.pid-stale").is_empty(), "{}", d.pretty());
    assert!(
        lab.child_running(sleeper),
        "diagnose must never signal the pid in pm2.pid"
    );
    lab.finish();
}

// ---------------------------------------------------------------------------
// f. a directory where rpc.sock belongs
// ---------------------------------------------------------------------------

#[test]
fn directory_at_rpc_sock_is_not_a_socket() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    lab.pm2(&["ping"], &[]);
    lab.pm2_kill();
    // With this, a new daemon spins at 100% CPU and pm2 hangs (§3.3): only
    // pm2-doctor may look at this home.
    fs::create_dir(lab.path("rpc.sock")).expect("mkdir rpc.sock");

    let d = lab.diagnose(&[]);
    assert_eq!(d.code & 4, 4, "{}", d.pretty());
    let f = d.one("socket.not-a-socket");
    assert_eq!(f["evidence"]["kind"], "a directory", "{f}");
    assert_eq!(
        f["evidence"]["path"],
        lab.path("rpc.sock").display().to_string(),
        "{f}"
    );
    assert!(lab.path("rpc.sock").is_dir(), "diagnose is read-only");
    assert!(
        lab.daemons().is_empty(),
        "diagnose must never start a daemon"
    );
    lab.finish();
}

// ---------------------------------------------------------------------------
// g. ghost daemons
// ---------------------------------------------------------------------------

#[test]
fn deleting_rpc_sock_under_a_live_daemon_makes_a_duplicate() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    let port = lab.start_web(&[]);
    let first = lab.daemon_pid();
    let web = lab.app_pid("web", 0);

    fs::remove_file(lab.path("rpc.sock")).expect("remove rpc.sock");
    // The next pm2 command spawns a second daemon for the same home. In
    // 7.0.4 that daemon binds rpc.sock but can never bind pub.sock (the
    // first daemon still listens there), so it never reports ready and the
    // CLI hangs: it runs in the background and is killed by pid below.
    let cli = lab.spawn_pm2(&["ping"]);
    let rpc = lab.path("rpc.sock");
    wait_until("a second daemon answering on rpc.sock", SETTLE, || {
        lab.daemons().len() == 2 && UnixStream::connect(&rpc).is_ok()
    });
    lab.stop_child(cli);
    let second = lab.daemon_pid();
    assert_ne!(first, second, "pm2.pid names the new daemon");

    let d = lab.diagnose(&[]);
    assert_eq!(d.code & 4, 4, "{}", d.pretty());
    let f = d.one("daemon.duplicate");
    let listed: BTreeSet<u64> = f["evidence"]["daemons"]
        .as_array()
        .expect("evidence.daemons")
        .iter()
        .filter_map(|x| x["pid"].as_u64())
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from([u64::from(first), u64::from(second)]),
        "{f}"
    );
    assert_eq!(f["evidence"]["pm2_pid"], second, "{f}");
    // The kernel names the listeners: the new daemon on rpc.sock, the old
    // one still on pub.sock. No daemon serves both, so none is kept.
    assert_eq!(f["evidence"]["rpc_listener_pid"], second, "{f}");
    assert_eq!(f["evidence"]["pub_listener_pid"], first, "{f}");
    assert!(f["evidence"].get("serving_pid").is_none(), "{f}");
    let fix = f["fix"]["description"].as_str().unwrap_or_default();
    assert!(
        fix.contains(&format!(
            "no daemon serves both sockets: pid {second} listens on rpc.sock, pid {first} on pub.sock"
        )),
        "{f}"
    );
    // The ghost still runs its app: managed (by the ghost), not an orphan.
    assert!(port_answers(port), "the ghost's app keeps serving");
    assert!(
        d.findings("process.orphan")
            .iter()
            .all(|o| evidence_pid(o) != web),
        "{}",
        d.pretty()
    );
    lab.finish();
}

/// Both sockets deleted under a live daemon: the next pm2 command starts a
/// second daemon that binds both, and the first becomes a ghost with its
/// app. Repair stops the ghost (and its app with it) and keeps the daemon
/// every pm2 command reaches.
#[test]
fn repair_keeps_the_daemon_serving_both_sockets_and_stops_the_ghost() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    let port = lab.start_web(&[]);
    let ghost = lab.daemon_pid();
    let web = lab.app_pid("web", 0);
    fs::remove_file(lab.path("rpc.sock")).expect("remove rpc.sock");
    fs::remove_file(lab.path("pub.sock")).expect("remove pub.sock");
    lab.pm2(&["ping"], &[]);
    let serving = lab.daemon_pid();
    assert_ne!(ghost, serving, "pm2 ping started a second daemon");
    assert_eq!(lab.daemons().len(), 2, "both daemons run");

    let d = lab.diagnose(&[]);
    let f = d.one("daemon.duplicate");
    assert_eq!(f["evidence"]["serving_pid"], serving, "{f}");
    assert_eq!(f["fix"]["safety"], "disruptive", "{f}");

    let r = lab.repair(&["--yes"]);
    // The ghost was stopped; its app went with it (PM2 stops its apps on
    // SIGTERM) or was stopped as the orphan it became.
    let sig = signalled(r.array("results"));
    assert!(
        sig.contains_key(&ghost),
        "the ghost was stopped:
{}",
        r.pretty()
    );
    assert!(
        !sig.contains_key(&serving),
        "the serving daemon was not signalled:
{}",
        r.pretty()
    );
    assert!(
        sig.keys().all(|p| *p == ghost || *p == web),
        "nothing else was signalled:
{}",
        r.pretty()
    );
    assert_eq!(
        r.code & 8,
        0,
        "no operational error:
{}",
        r.pretty()
    );
    wait_until("the ghost and its app to be gone", SETTLE, || {
        !procfs::alive(ghost) && !procfs::alive(web)
    });
    assert!(procfs::alive(serving), "the serving daemon runs on");
    assert_eq!(lab.daemons(), vec![serving], "one daemon is left");
    assert!(
        !port_answers(port),
        "the ghost's app no longer holds its port"
    );
    // And pm2 reaches it: the daemon answers on its sockets.
    let after = lab.diagnose(&[]);
    assert_eq!(
        after.json["daemon"]["rpc"]["state"],
        "answered",
        "{}",
        after.pretty()
    );
    assert!(
        after.findings("daemon.duplicate").is_empty(),
        "{}",
        after.pretty()
    );
    lab.finish();
}

// ---------------------------------------------------------------------------
// h. daemon and CLI versions differ
// ---------------------------------------------------------------------------

#[test]
fn older_cli_than_daemon_is_a_version_mismatch() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    lab.pm2(&["ping"], &[]);
    lab.daemon_pid();

    // A pm2 5.4.3 as npm installs it globally: <prefix>/bin/pm2 is a symlink
    // into <prefix>/lib/node_modules/pm2/bin/pm2. Its "binary" leaves a mark
    // if anyone runs it: pm2-doctor must only read package.json.
    let prefix = lab.root().join("old-pm2");
    let pkg = prefix.join("lib/node_modules/pm2");
    fs::create_dir_all(pkg.join("bin")).expect("mkdir pkg/bin");
    fs::write(
        pkg.join("package.json"),
        r#"{"name":"pm2","version":"5.4.3"}"#,
    )
    .expect("write package.json");
    let marker = lab.root().join("fake-pm2-was-run");
    let script = pkg.join("bin/pm2");
    fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\nexit 99\n", marker.display()),
    )
    .expect("write fake pm2");
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    fs::create_dir_all(prefix.join("bin")).expect("mkdir bin");
    let bin = prefix.join("bin/pm2");
    std::os::unix::fs::symlink("../lib/node_modules/pm2/bin/pm2", &bin).expect("symlink");

    let check = |d: &Out| {
        let f = d.one("daemon.version-mismatch");
        assert_eq!(f["severity"], "warning");
        assert_eq!(f["evidence"]["daemon_version"], PM2_VERSION, "{f}");
        assert_eq!(f["evidence"]["daemon_version_source"], "getVersion", "{f}");
        assert_eq!(f["evidence"]["cli_version"], "5.4.3", "{f}");
        assert_eq!(f["evidence"]["cli"], bin.display().to_string(), "{f}");
        assert_eq!(f["fix"]["action"], "pm2-update", "{f}");
        assert_eq!(d.code, 0, "a warning alone exits 0:\n{}", d.pretty());
    };
    let bin_s = bin.display().to_string();
    check(&lab.diagnose(&["--pm2", &bin_s]));
    // Found on PATH, ahead of everything else.
    let mut path = OsString::from(prefix.join("bin"));
    path.push(":");
    path.push(path_var());
    check(&lab.diagnose_with_path(&[], path));
    assert_eq!(lab.diagnose(&["--pm2", &bin_s, "--strict"]).code, 4);
    // The matching CLI is fine.
    let cli = real_cli().display().to_string();
    assert_eq!(
        lab.diagnose(&["--pm2", &cli])
            .status("daemon.version-mismatch"),
        "ok"
    );
    assert!(!marker.exists(), "pm2-doctor ran the pm2 CLI");
    lab.finish();
}

// ---------------------------------------------------------------------------
// i. app pid files naming dead and reused pids
// ---------------------------------------------------------------------------

#[test]
fn app_pid_files_naming_dead_and_reused_pids() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    // Default settings (pmx on): both apps die with their daemon (§5.4,
    // timeline A) and leave their pid files behind.
    lab.start_web(&[]);
    lab.pm2(&["start", &app("ticker.js"), "--name", "ticker"], &[]);
    let web = lab.app_pid("web", 0);
    let ticker = lab.app_pid("ticker", 1);
    lab.sigkill_daemon();
    wait_until("the apps to die with their daemon", SETTLE, || {
        !procfs::alive(web) && !procfs::alive(ticker)
    });
    // web's pid "reused" by an unrelated process of ours.
    let sleeper = lab.spawn(command("sleep").arg("300"));
    let web_file = lab.path("pids/web-0.pid");
    fs::write(&web_file, sleeper.to_string()).expect("write web-0.pid");

    let d = lab.diagnose(&[]);
    let stale = d.one("pidfile.stale");
    assert_eq!(evidence_pid(stale), ticker, "{stale}");
    assert_eq!(stale["evidence"]["app"], "ticker", "{stale}");
    assert_eq!(
        stale["evidence"]["path"],
        lab.path("pids/ticker-1.pid").display().to_string()
    );
    let foreign = d.one("pidfile.foreign");
    assert_eq!(evidence_pid(foreign), sleeper, "{foreign}");
    assert_eq!(foreign["evidence"]["app"], "web", "{foreign}");
    assert_eq!(foreign["evidence"]["path"], web_file.display().to_string());
    assert!(
        d.findings("process.orphan").is_empty(),
        "no app survived, so no orphan:\n{}",
        d.pretty()
    );
    let found = d.checks_found();
    assert!(
        found.contains("daemon.pid-stale"),
        "the SIGKILLed daemon's pm2.pid is stale too: {found:?}"
    );
    assert!(
        lab.child_running(sleeper),
        "diagnose must not signal the pid in a pid file"
    );
    lab.finish();
}

// ---------------------------------------------------------------------------
// j. repair against real PM2 homes
// ---------------------------------------------------------------------------

/// The apps a SIGKILLed daemon leaves running (pm2-internals §5.4, timeline
/// B), each with the port it holds and its start time read before repair.
struct Orphans {
    /// (name, pid, port, a piece of its command line).
    procs: Vec<(&'static str, u32, u16, &'static str)>,
    /// Start time (seconds since the epoch) of each pid, from /proc.
    started: std::collections::BTreeMap<u32, u64>,
}

impl Orphans {
    fn pids(&self) -> BTreeSet<u32> {
        self.procs.iter().map(|p| p.1).collect()
    }
}

/// A daemon with a silent Node app (`--no-pmx`), a Python app and a Node
/// wrapper (`--no-pmx`) whose http.js child shares its stdio; `pm2 save`;
/// the daemon SIGKILLed; 3 s for whatever dies with it to die. Checks that
/// all four processes outlived it and still hold their ports.
fn sigkilled_home_with_orphans(lab: &mut Lab) -> Orphans {
    let web_port = lab.start_web(&["--no-pmx"]);
    let py_port = lab.start_listening("pyhttp.py", "py", &["--interpreter", &python3()], &[]);
    let child_file = lab.root().join("grandchild.pid");
    let child_file_s = child_file.display().to_string();
    // The wrapper's http.js child is what listens.
    let child_port = lab.start_listening(
        "wrapper.js",
        "wrap",
        &["--no-pmx"],
        &[("CHILD_PID_FILE", &child_file_s)],
    );
    lab.pm2(&["save"], &[]);
    let web = lab.app_pid("web", 0);
    let py = lab.app_pid("py", 1);
    let wrap = lab.app_pid("wrap", 2);
    wait_until("the wrapper to write its child's pid", SETTLE, || {
        child_file.is_file()
    });
    let grandchild: u32 = fs::read_to_string(&child_file)
        .expect("read grandchild.pid")
        .trim()
        .parse()
        .expect("grandchild.pid holds a pid");
    lab.remember(grandchild);
    assert_eq!(
        procfs::stat(grandchild).map(|s| s.1),
        Some(wrap),
        "the grandchild ({grandchild}) is the wrapper's child"
    );
    assert!(
        procfs::has_env(grandchild, &lab.home_env()),
        "the grandchild inherits the wrapper's environment"
    );

    lab.sigkill_daemon();
    // Time for the apps that die with their daemon to die; these must not.
    sleep(Duration::from_secs(3));
    let procs = vec![
        ("web", web, web_port, "http.js"),
        ("py", py, py_port, "pyhttp.py"),
        ("wrap", wrap, child_port, "wrapper.js"),
        ("grandchild", grandchild, child_port, "http.js"),
    ];
    let mut started = std::collections::BTreeMap::new();
    for &(name, pid, port, _) in &procs {
        assert!(
            procfs::alive(pid) && port_answers(port),
            "precondition: {name} ({pid}) outlives its daemon and 127.0.0.1:{port} answers"
        );
        started.insert(
            pid,
            procfs::start_time(pid).expect("start time of a live process"),
        );
    }
    Orphans { procs, started }
}

fn pid_files(lab: &Lab) -> Vec<String> {
    fs::read_dir(lab.path("pids"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pid"))
        .collect()
}

#[test]
fn repair_after_sigkill_kills_exactly_the_orphans() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    let orphans = sigkilled_home_with_orphans(&mut lab);
    // A shell-like process that exports this PM2_HOME but carries no app
    // markers, and an unrelated process a stale pid file now names.
    let decoy = lab.decoy();
    let named = lab.spawn(command("sleep").arg("300"));
    fs::write(lab.path("pids/ghost-9.pid"), named.to_string()).expect("write ghost-9.pid");

    let before = tree(&lab.home);
    for rel in ["pm2.pid", "rpc.sock", "pub.sock", "dump.pm2"] {
        assert!(before.contains_key(rel), "precondition: {rel} exists");
    }
    let logs: Vec<&String> = before.keys().filter(|k| k.starts_with("logs/")).collect();
    assert!(!logs.is_empty(), "precondition: the apps wrote logs");
    let stale: BTreeSet<String> = pid_files(&lab)
        .into_iter()
        .map(|n| format!("pids/{n}"))
        .collect();
    assert!(
        stale.contains("pids/ghost-9.pid") && stale.len() >= 4,
        "precondition: the apps' pid files and ghost-9.pid: {stale:?}"
    );

    let r = lab.repair(&["--yes"]);
    assert_fixed_everything(&r);
    assert_eq!(r.code & 2, 2, "processes were stopped:\n{}", r.pretty());

    for &(name, pid, port, _) in &orphans.procs {
        assert!(!procfs::alive(pid), "{name} ({pid}) is dead");
        assert!(!port_answers(port), "{name}'s 127.0.0.1:{port} is free");
    }
    assert!(
        lab.child_running(decoy),
        "a process that merely exports PM2_HOME survives"
    );
    assert!(
        lab.child_running(named),
        "a process a stale pid file names survives"
    );

    // The stale state is gone; everything else is byte for byte as it was.
    let after = tree(&lab.home);
    let mut removed: BTreeSet<String> = ["pm2.pid", "rpc.sock", "pub.sock"]
        .into_iter()
        .map(String::from)
        .collect();
    removed.extend(stale);
    for rel in &removed {
        assert!(!after.contains_key(rel), "{rel} was moved out of the home");
    }
    assert!(pid_files(&lab).is_empty(), "no pid file is left");
    let expected: Tree = before
        .iter()
        .filter(|(k, _)| !removed.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        changed_paths(&expected, &after),
        Vec::<String>::new(),
        "only the stale files may change"
    );
    assert_eq!(after.get("dump.pm2"), before.get("dump.pm2"));
    for log in logs {
        assert_eq!(after.get(log), before.get(log), "{log} untouched");
    }

    // Exactly the orphans were signalled, and the journal proves which
    // process each was.
    signalled_exactly(r.array("results"), &orphans.pids(), &r.pretty());
    let run_dir = r.run_dir();
    assert!(
        run_dir.starts_with(&lab.backups),
        "{} is under --backup-dir",
        run_dir.display()
    );
    let manifest: Value =
        serde_json::from_slice(&fs::read(run_dir.join("manifest.json")).expect("manifest.json"))
            .expect("manifest is JSON");
    assert_eq!(manifest["state"], "complete", "{manifest:#}");
    // The manifest lists exactly the signalled orphans.
    let journal = signalled_exactly(
        manifest["actions"].as_array().expect("actions"),
        &orphans.pids(),
        &format!("{manifest:#}"),
    );
    for &(name, pid, _, cmd) in &orphans.procs {
        let rec = &journal[&pid];
        let recorded = rec["start_time"].as_u64().expect("numeric start_time");
        // The same process, not a timing check: sysinfo and /proc may round
        // the boot time differently by a second.
        assert!(
            recorded.abs_diff(orphans.started[&pid]) <= 1,
            "{name}: start_time {recorded} vs /proc {}: {rec}",
            orphans.started[&pid]
        );
        assert!(
            rec["cmdline"].as_str().is_some_and(|c| c.contains(cmd)),
            "{name}: cmdline mentions {cmd}: {rec}"
        );
        assert_eq!(rec["signals"][0], "TERM", "{name}: TERM first: {rec}");
        assert!(
            rec["outcome"] == "terminated" || rec["outcome"] == "killed",
            "{name}: {rec}"
        );
    }
    lab.finish();
}

#[test]
fn second_repair_is_idempotent_on_a_real_home() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    let orphans = sigkilled_home_with_orphans(&mut lab);
    let first = lab.repair(&["--yes"]);
    assert_eq!(first.code & 4, 0, "{}", first.pretty());
    for &(name, pid, _, _) in &orphans.procs {
        assert!(!procfs::alive(pid), "{name} ({pid}) is dead");
    }
    let home = tree(&lab.home);
    let runs = lab.run_dirs();
    assert_eq!(runs.len(), 1, "the first repair made one run: {runs:?}");

    let second = lab.repair(&["--yes"]);
    assert_eq!(second.code, 0, "nothing to do:\n{}", second.pretty());
    for key in ["plan", "held_back", "results", "unplanned"] {
        assert!(
            second.array(key).is_empty(),
            "{key} is empty:\n{}",
            second.pretty()
        );
    }
    assert!(
        second.json["run_id"].is_null(),
        "no run:\n{}",
        second.pretty()
    );
    assert_eq!(lab.run_dirs(), runs, "no new backup");
    assert_eq!(
        changed_paths(&home, &tree(&lab.home)),
        Vec::<String>::new(),
        "the second repair changed nothing"
    );
    lab.finish();
}

/// `pm2 jlist`: the app list as JSON (the one output line that parses).
fn jlist(lab: &mut Lab) -> Vec<Value> {
    let out = lab.pm2(&["jlist"], &[]);
    out.lines()
        .find_map(|l| serde_json::from_str::<Vec<Value>>(l.trim()).ok())
        .unwrap_or_else(|| panic!("pm2 jlist printed no JSON list:\n{out}"))
}

#[test]
fn corrupt_dump_is_restored_and_pm2_resurrect_brings_the_apps_back() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    let port = lab.start_web(&[]);
    lab.pm2(&["start", &app("ticker.js"), "--name", "ticker"], &[]);
    lab.save_twice();
    lab.pm2_kill();

    let cut = CutDump::cut(&lab);

    let r = lab.repair(&["--yes"]);
    assert_eq!(
        r.code,
        1 | 2,
        "fixed, restart recommended, nothing left:\n{}",
        r.pretty()
    );
    cut.assert_restored();

    // PM2 itself accepts the restored dump.
    lab.pm2(&["resurrect"], &[]);
    wait_until("web to listen again", SETTLE, || port_answers(port));
    let mut names = BTreeSet::new();
    wait_until("both apps online in pm2 jlist", SETTLE, || {
        let list = jlist(&mut lab);
        names = list
            .iter()
            .filter(|a| a["pm2_env"]["status"] == "online")
            .filter_map(|a| a["name"].as_str().map(String::from))
            .collect();
        names.len() == 2
    });
    assert_eq!(
        names,
        BTreeSet::from(["ticker".to_string(), "web".to_string()])
    );

    // Resurrect reads a valid dump without rewriting it (pm2-internals
    // §2.3), so dump.pm2 is still in the state the repair left it in, and
    // undo puts the truncated bytes back.
    assert!(
        fs::read(&cut.dump).expect("dump.pm2") == cut.bak_bytes,
        "precondition: pm2 resurrect did not rewrite dump.pm2"
    );
    let u = cut.assert_undone(&lab, &r.json["run_id"]);
    assert!(
        u.array("killed").is_empty(),
        "the repair killed nothing:\n{}",
        u.pretty()
    );
    lab.finish();
}

/// A daemon with one silent `--no-pmx` app, SIGSTOPped: alive, holding its
/// socket, never answering. Checks that diagnose calls it unresponsive,
/// runs `repair --yes` and checks that the daemon and its app are gone and
/// nothing is left unfixed. Returns that repair.
fn repair_a_wedged_daemon(lab: &mut Lab) -> Out {
    let port = lab.start_web(&["--no-pmx"]);
    let daemon = lab.daemon_pid();
    let web = lab.app_pid("web", 0);
    // Alive but never answering: it cannot accept, but the kernel queues
    // the connection, as for any wedged daemon (pm2-internals §3.3).
    send_signal(daemon, "STOP");
    wait_until("the daemon to stop", SETTLE, || {
        procfs::stat(daemon).is_some_and(|(s, _)| s == 'T')
    });

    let d = lab.diagnose(&["--timeout", "1"]);
    assert_eq!(d.code & 4, 4, "{}", d.pretty());
    let f = d.one("daemon.unresponsive");
    assert_eq!(f["evidence"]["connected"], true, "{f}");
    assert_eq!(f["fix"]["action"], "restart-daemon", "{f}");
    assert!(
        f["evidence"]["daemons"]
            .as_array()
            .is_some_and(|ds| ds.iter().any(|x| x["pid"] == daemon)),
        "{f}"
    );

    let r = lab.repair(&["--yes"]);
    // A stopped process never runs its SIGTERM handler: only the SIGKILL
    // after the grace period ends it.
    assert!(
        !procfs::alive(daemon),
        "the daemon is dead:\n{}",
        r.pretty()
    );
    assert!(!procfs::alive(web), "its app is dead:\n{}", r.pretty());
    assert!(!port_answers(port), "127.0.0.1:{port} is free");
    assert_fixed_everything(&r);
    let sig = signalled_exactly(
        r.array("results"),
        &BTreeSet::from([daemon, web]),
        &r.pretty(),
    );
    assert_eq!(
        sig[&daemon]["signals"],
        serde_json::json!(["TERM", "KILL"]),
        "SIGTERM, then SIGKILL after the grace period: {}",
        sig[&daemon]
    );
    assert_eq!(sig[&daemon]["outcome"], "killed", "{}", sig[&daemon]);
    for rel in ["pm2.pid", "rpc.sock", "pub.sock"] {
        assert!(!lab.path(rel).exists(), "{rel} was moved out of the home");
    }
    r
}

#[test]
fn wedged_daemon_is_stopped_and_its_orphans_killed() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    repair_a_wedged_daemon(&mut lab);
    lab.finish();
}

#[test]
fn wedged_daemon_repair_leaves_nothing_for_a_second_repair() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    let first = repair_a_wedged_daemon(&mut lab);
    let again = lab.repair(&["--yes"]);
    assert_eq!(
        again.code,
        0,
        "nothing left to do after the first repair, whose after-diagnosis was {:#}\n\
         second repair:\n{}",
        first.json["after"]["findings"],
        again.pretty()
    );
    assert!(again.array("plan").is_empty(), "{}", again.pretty());
    lab.finish();
}

// ---------------------------------------------------------------------------
// k. crash loops after a resurrect, and resurrect itself
// ---------------------------------------------------------------------------

/// Longest we wait for a crash loop to build up or to settle: generous, the
/// loop runs at a few restarts a second.
const LOOP_SETTLE: Duration = Duration::from_secs(60);
/// Each poll of a crash loop runs a whole diagnosis: not too often.
const LOOP_POLL: Duration = Duration::from_millis(200);

/// The last `n` lines of a file, or why there are none.
fn tail_lines(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(b) => {
            let text = String::from_utf8_lossy(&b);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

/// `GET /` on 127.0.0.1:port: http.js answers `ok from <pid>`.
fn http_pid(port: u16) -> Option<u32> {
    use std::io::{Read, Write};
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.split("ok from ").nth(1)?.trim().parse().ok()
}

/// Moves `created_at` of every app in dump.pm2 (and dump.pm2.bak) an hour
/// back, as for apps that had been up for an hour when their daemon died.
/// `pm2 resurrect` keeps it, and an exit only counts as unstable within
/// min_uptime × max_restarts (16 s) of it (pm2-internals §0.6, §6c). Here
/// the resurrect comes seconds after the start, so without this PM2 would
/// still stop the loop after 15 restarts, as it does for a fresh app.
fn age_dumps(lab: &Lab) {
    for rel in ["dump.pm2", "dump.pm2.bak"] {
        let path = lab.path(rel);
        let Ok(bytes) = fs::read(&path) else { continue };
        let mut v: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{rel} is not JSON ({e})"));
        for e in v.as_array_mut().expect("a dump is an array") {
            let at = e["created_at"]
                .as_u64()
                .unwrap_or_else(|| panic!("{rel}: an entry without created_at: {e}"));
            e["created_at"] = (at - 3_600_000).into();
        }
        fs::write(&path, serde_json::to_vec(&v).expect("serialise")).expect("rewrite dump");
    }
}

/// `apps[]` of a diagnosis: (status, restarts) of the app named `name`.
fn app_state(d: &Out, name: &str) -> Option<(String, u64)> {
    let a = d.json["apps"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)?;
    Some((
        a["status"].as_str().unwrap_or("").to_string(),
        a["restarts"].as_u64()?,
    ))
}

/// The finding of `check` whose evidence names app `name`.
fn finding_for<'a>(d: &'a Out, check: &str, name: &str) -> &'a Value {
    d.findings(check)
        .into_iter()
        .find(|f| f["evidence"]["app"] == name)
        .unwrap_or_else(|| panic!("no {check} finding for {name} in\n{}", d.pretty()))
}

/// Waits until the daemon reports the app crash-looping past PM2's guard
/// (restarts ≥ 20 > max_restarts 16, still not errored).
fn wait_for_crash_loop(lab: &Lab, name: &str) {
    let mut last = None;
    wait_until_or(
        &format!("{name} to crash-loop past 20 restarts"),
        LOOP_SETTLE,
        LOOP_POLL,
        || {
            last = app_state(&lab.diagnose(&[]), name);
            last.as_ref()
                .is_some_and(|(s, r)| *r >= 20 || s == "errored")
        },
        String::new,
    );
    let (status, _) = last.expect("state");
    assert_ne!(status, "errored", "PM2's guard stopped {name}");
}

/// Each (app, port): its managed instance (the pid file PM2 rewrites at
/// every start) answers on the port; then, for 3 s more, every app stays
/// online with a restart count that does not move. Returns the pids.
fn watch_settled(lab: &Lab, apps: &[(&str, u32, u16)]) -> Vec<u32> {
    let mut pids = Vec::new();
    for &(name, pm_id, port) in apps {
        let mut pid = 0;
        let pid_file = lab.path(&format!("pids/{name}-{pm_id}.pid"));
        wait_until_or(
            &format!("{name} to serve 127.0.0.1:{port} itself"),
            LOOP_SETTLE,
            LOOP_POLL,
            || {
                let file = fs::read_to_string(&pid_file);
                let managed = file.ok().and_then(|t| t.trim().parse::<u32>().ok());
                pid = managed.unwrap_or(0);
                managed.is_some() && http_pid(port) == managed
            },
            || {
                let d = lab.diagnose(&[]);
                format!(
                    "{name}: pid file {:?}, port answered by {:?}, daemon view {:?}, \
                     daemons {:?}\n--- pm2.log (tail)\n{}\n--- {name}-error.log (tail)\n{}\n\
                     --- diagnose\n{}",
                    fs::read_to_string(&pid_file).map(|t| t.trim().to_string()),
                    http_pid(port),
                    app_state(&d, name),
                    lab.daemons(),
                    tail_lines(&lab.path("pm2.log"), 30),
                    tail_lines(&lab.path(&format!("logs/{name}-error.log")), 20),
                    d.pretty()
                )
            },
        );
        assert!(
            lab.is_app(pid, name),
            "{pid} ({}) is app {name} of this home",
            procfs::cmdline(pid)
        );
        pids.push(pid);
    }
    let first = lab.diagnose(&[]);
    let base: Vec<u64> = apps
        .iter()
        .map(|&(name, _, _)| {
            let (status, restarts) = app_state(&first, name)
                .unwrap_or_else(|| panic!("{name} not in apps[]:\n{}", first.pretty()));
            assert_eq!(status, "online", "{name}:\n{}", first.pretty());
            restarts
        })
        .collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        sleep(Duration::from_millis(500));
        let d = lab.diagnose(&[]);
        for (&(name, _, port), &before) in apps.iter().zip(&base) {
            assert_eq!(
                app_state(&d, name),
                Some(("online".to_string(), before)),
                "{name} stays online without restarting:\n{}",
                d.pretty()
            );
            assert!(port_answers(port), "{name} keeps 127.0.0.1:{port}");
        }
    }
    for (&(name, _, port), &pid) in apps.iter().zip(&pids) {
        assert_eq!(
            http_pid(port),
            Some(pid),
            "{name} is still the same process"
        );
    }
    pids
}

/// A resurrected app crash-looping on the port its orphan still holds.
struct OrphanLoop {
    port: u16,
    orphan: u32,
    daemon: u32,
}

/// `web` (http.js `--no-pmx`) on a port, `pm2 save`, the daemon SIGKILLed
/// (web survives as an orphan holding the port), then `pm2 resurrect`: the
/// new copy of web fails with EADDRINUSE and PM2 restarts it without end
/// (pm2-internals §6c). Checks everything diagnose says about it.
fn crash_loop_on_an_orphan_port(lab: &mut Lab) -> OrphanLoop {
    let port = lab.start_web(&["--no-pmx"]);
    lab.pm2(&["save"], &[]);
    age_dumps(lab);
    let orphan = lab.app_pid("web", 0);
    lab.remember(orphan);
    lab.sigkill_daemon();
    sleep(Duration::from_secs(2));
    assert!(
        procfs::alive(orphan) && http_pid(port) == Some(orphan),
        "precondition: web ({orphan}) outlives its daemon and serves 127.0.0.1:{port}"
    );

    lab.pm2(&["resurrect"], &[]);
    let daemon = lab.daemon_pid();
    wait_for_crash_loop(lab, "web");
    assert_eq!(
        http_pid(port),
        Some(orphan),
        "the orphan still holds the port"
    );

    let d = lab.diagnose(&[]);
    assert_eq!(d.code & 4, 4, "{}", d.pretty());
    assert_eq!(
        d.json["daemon"]["rpc"]["state"],
        "answered",
        "{}",
        d.pretty()
    );

    let f = finding_for(&d, "app.crash-loop", "web");
    assert_eq!(f["severity"], "error", "{f}");
    assert_eq!(f["evidence"]["source"], "daemon", "{f}");
    assert_eq!(
        f["evidence"]["cause"],
        serde_json::json!({"kind": "address-in-use", "port": port}),
        "{f}"
    );
    assert!(
        f["evidence"]["restart_time"]
            .as_u64()
            .is_some_and(|r| r >= 20),
        "{f}"
    );
    assert_eq!(f["evidence"]["unstable_restarts"], 0, "{f}");
    assert_eq!(f["fix"]["action"], "free-the-port", "{f}");

    let g = finding_for(&d, "app.guard-bypassed", "web");
    assert_eq!(g["evidence"]["unstable_restarts"], 0, "{g}");
    assert_eq!(g["evidence"]["max_restarts"], 16, "{g}");
    assert_eq!(g["fix"]["action"], "rearm-restart-guard", "{g}");

    let p = finding_for(&d, "app.port-conflict", "web");
    assert_eq!(p["evidence"]["port"], port, "{p}");
    assert_eq!(p["evidence"]["holder_pid"], orphan, "{p}");
    assert_eq!(
        p["evidence"]["holder_kind"], "an orphan of this home",
        "{p}"
    );
    assert_eq!(p["fix"]["action"], "kill-port-holder", "{p}");
    assert_eq!(p["fix"]["safety"], "disruptive", "{p}");

    let o = d
        .findings("process.orphan")
        .into_iter()
        .find(|o| evidence_pid(o) == orphan)
        .unwrap_or_else(|| panic!("{orphan} is not an orphan in\n{}", d.pretty()));
    assert_eq!(o["evidence"]["app"], "web", "{o}");
    assert!(
        o["evidence"]["ports"]
            .as_array()
            .is_some_and(|ps| ps.contains(&Value::from(port))),
        "{o}"
    );
    assert_eq!(o["fix"]["action"], "kill-orphan", "{o}");
    OrphanLoop {
        port,
        orphan,
        daemon,
    }
}

/// `repair --yes` on [`crash_loop_on_an_orphan_port`]: exactly the orphan
/// is killed, the daemon is left running, and web, restarted by its
/// daemon, binds the port by itself and stays up.
fn repair_the_orphan_loop(lab: &Lab, l: &OrphanLoop) -> Out {
    let r = lab.repair(&["--yes"]);
    assert!(
        !procfs::alive(l.orphan),
        "the orphan is dead:\n{}",
        r.pretty()
    );
    assert_eq!(r.code & 1, 1, "{}", r.pretty());
    assert_eq!(r.code & 8, 0, "{}", r.pretty());
    let sig = signalled_exactly(r.array("results"), &BTreeSet::from([l.orphan]), &r.pretty());
    assert!(
        sig[&l.orphan]["outcome"] == "terminated" || sig[&l.orphan]["outcome"] == "killed",
        "{}",
        sig[&l.orphan]
    );
    assert!(
        procfs::alive(l.daemon) && lab.daemon_pid() == l.daemon,
        "the live daemon is left running"
    );
    // PM2 restarts web again at once; this time the port is free.
    let pids = watch_settled(lab, &[("web", 0, l.port)]);
    assert_ne!(pids[0], l.orphan);
    r
}

#[test]
fn resurrected_app_crash_loops_on_an_orphan_port_and_repair_fixes_it() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    let l = crash_loop_on_an_orphan_port(&mut lab);
    repair_the_orphan_loop(&lab, &l);
    lab.finish();
}

/// Once the holder is dead and the app listens on its own port, the port
/// conflict is over.
#[test]
fn recovered_app_is_no_longer_a_port_conflict() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    let l = crash_loop_on_an_orphan_port(&mut lab);
    repair_the_orphan_loop(&lab, &l);
    let d = lab.diagnose(&[]);
    assert!(
        d.findings("app.port-conflict").is_empty(),
        "web serves 127.0.0.1:{} itself:\n{}",
        l.port,
        d.pretty()
    );
    lab.finish();
}

/// The seed incident, replayed: `chinvex-gateway` (silent, `--no-pmx`)
/// outlives its SIGKILLed daemon and keeps its port; `c3-backend` (pmx on)
/// dies with it; `pm2 resurrect` brings c3-backend back and sets the new
/// gateway crash-looping on EADDRINUSE past PM2's guard; then dump.pm2 is
/// cut in half (a save interrupted mid-write) while dump.pm2.bak stays
/// valid. Then `repair --yes --resurrect --watch 6 --rearm-guard`.
/// `expect_resurrect` adds what the resurrect step must report.
fn seed_incident(expect_resurrect: bool) {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    let gw_port = lab.start_listening("http.js", "chinvex-gateway", &["--no-pmx"], &[]);
    let be_port = lab.start_listening("http.js", "c3-backend", &[], &[]);
    lab.save_twice();
    age_dumps(&lab);
    let orphan = lab.app_pid("chinvex-gateway", 0);
    let backend = lab.app_pid("c3-backend", 1);
    lab.remember(orphan);
    lab.sigkill_daemon();
    wait_until("c3-backend to die with its daemon", SETTLE, || {
        !procfs::alive(backend)
    });
    assert!(
        procfs::alive(orphan) && http_pid(gw_port) == Some(orphan),
        "precondition: the gateway ({orphan}) outlives its daemon and holds {gw_port}"
    );

    lab.pm2(&["resurrect"], &[]);
    let daemon = lab.daemon_pid();
    wait_for_crash_loop(&lab, "chinvex-gateway");

    let cut = CutDump::cut(&lab);

    let d = lab.diagnose(&[]);
    let f = d.one("dump.corrupt");
    assert_eq!(f["evidence"]["backup_valid"], true, "{f}");
    assert_eq!(f["evidence"]["backup_apps"], 2, "{f}");
    let p = finding_for(&d, "app.port-conflict", "chinvex-gateway");
    assert_eq!(p["evidence"]["holder_pid"], orphan, "{p}");
    assert_eq!(p["fix"]["action"], "kill-port-holder", "{p}");
    finding_for(&d, "app.guard-bypassed", "chinvex-gateway");
    assert!(
        d.findings("process.orphan")
            .iter()
            .any(|o| evidence_pid(o) == orphan),
        "{}",
        d.pretty()
    );

    let cli = real_cli().display().to_string();
    let out = lab.doctor_raw(&repair_args(&[
        "--yes",
        "--resurrect",
        "--watch",
        "6",
        "--call-timeout",
        "20",
        "--rearm-guard",
        "--pm2",
        &cli,
        "--format",
        "json",
    ]));
    let docs = out.docs();
    let rep = docs
        .first()
        .unwrap_or_else(|| panic!("repair printed no JSON:\n{out}"));
    assert_eq!(out.code & 8, 0, "no operational error: {out}");
    assert_eq!(out.code & 3, 3, "fixed, restart recommended: {out}");

    // Exactly the orphan was signalled; the live daemon was left alone.
    let results = rep["results"].as_array().expect("results");
    signalled_exactly(results, &BTreeSet::from([orphan]), &out);
    assert!(!procfs::alive(orphan), "the orphan is dead: {out}");
    assert!(
        procfs::alive(daemon) && lab.daemon_pid() == daemon,
        "the live daemon is left running: {out}"
    );
    assert!(
        results.iter().any(|a| a["action"]["kind"] == "restore-dump"
            && a["state"] == "done"
            && a["action"]["from"] == cut.bak.display().to_string().as_str()),
        "dump.pm2 was restored from dump.pm2.bak: {out}"
    );

    // Both apps up, each on its own port, and staying up.
    watch_settled(
        &lab,
        &[("chinvex-gateway", 0, gw_port), ("c3-backend", 1, be_port)],
    );
    let d = lab.diagnose(&[]);
    assert_eq!(
        d.json["apps"].as_array().map(Vec::len),
        Some(2),
        "no app was started twice:\n{}",
        d.pretty()
    );
    assert!(
        d.findings("process.orphan").is_empty(),
        "no orphan is left:\n{}",
        d.pretty()
    );
    cut.assert_restored();

    // Nothing rewrote dump.pm2 after the repair (no --save), so it is in
    // the state the run left it in and undo puts the truncated bytes back,
    // exit 0. The killed orphan is listed, not brought back.
    let u = cut.assert_undone(&lab, &rep["run_id"]);
    assert!(
        u.array("killed").iter().any(|k| k[0] == orphan),
        "{}",
        u.pretty()
    );

    if expect_resurrect {
        // The resurrect step ran after the repair and, the daemon already
        // running both apps (`pm2 resurrect` skips running names), reports
        // them running and stable.
        assert!(
            !out.stderr.contains("not resurrecting") && !out.stderr.contains("resurrect refused"),
            "repair --resurrect went on to resurrect: {out}"
        );
        // One document: the resurrect's outcome sits under `resurrect`.
        assert_eq!(docs.len(), 1, "one JSON document: {out}");
        let res = &docs[0]["resurrect"];
        assert!(res.is_object(), "no resurrect outcome: {out}");
        assert_eq!(res["exit_code"], 0, "{out}");
        let apps: BTreeSet<&str> = res["apps"]
            .as_array()
            .expect("apps")
            .iter()
            .filter(|a| a["stable"] == true && a["status"] == "online")
            .filter_map(|a| a["app"].as_str())
            .collect();
        assert_eq!(
            apps,
            BTreeSet::from(["c3-backend:1", "chinvex-gateway:0"]),
            "{out}"
        );
        assert_eq!(out.code & 4, 0, "nothing left unfixed: {out}");
    }
    lab.finish();
}

/// What must hold after `repair --yes --resurrect` on the seed incident
/// whether or not the resurrect step runs: the orphan dead, the daemon and
/// both apps up and stable, dump.pm2 restored, undo possible.
#[test]
fn seed_incident_repair_frees_the_port_and_restores_the_dump() {
    seed_incident(false);
}

#[test]
fn seed_incident_replayed_end_to_end() {
    seed_incident(true);
}

#[test]
fn resurrect_refuses_when_a_stranger_holds_a_port() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    let port = lab.start_web(&[]);
    lab.pm2(&["save"], &[]);
    lab.pm2_kill();
    assert!(!lab.path("pm2.pid").exists(), "pm2 kill removed pm2.pid");
    wait_until("web to free its port", SETTLE, || !port_answers(port));
    let dump_before = fs::read(lab.path("dump.pm2")).expect("dump.pm2");
    // The saved app's port, now held by a stranger: this test process.
    let stranger = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind the app's port");
    let me = std::process::id();

    let out = lab.resurrect(&["--timeout", "1"]);
    assert_eq!(out.code, 4, "refused: {out}");
    assert!(
        out.stderr.contains("pre-flight failed"),
        "a pre-flight refusal: {out}"
    );
    assert!(
        out.stderr.contains(&format!("port {port} ")),
        "names port {port}: {out}"
    );
    assert!(
        out.stderr.contains(&format!("pid {me} ")) || out.stderr.contains(&format!("pid {me}\n")),
        "names the holder, this test ({me}): {out}"
    );
    // The only document is the refusal.
    let doc: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).expect("one refusal document");
    assert_eq!(doc["exit_code"], 4, "{out}");
    assert!(
        doc["refused"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("port {port}"))),
        "the refusal names the port: {out}"
    );
    // Nothing was started: no daemon, no pm2.pid, no app.
    assert!(lab.daemons().is_empty(), "no daemon was started: {out}");
    assert!(!lab.path("pm2.pid").exists(), "no pm2.pid: {out}");
    assert!(
        lab.home_procs().is_empty(),
        "no process of this home runs: {:?}",
        lab.home_procs()
    );
    assert_eq!(
        fs::read(lab.path("dump.pm2")).expect("dump.pm2"),
        dump_before,
        "dump.pm2 untouched"
    );
    assert_eq!(
        stranger.local_addr().expect("addr").port(),
        port,
        "the stranger keeps its port"
    );
    drop(stranger);
    lab.finish();
}

/// With the daemon already running every saved app, `pm2 resurrect` skips
/// them (pm2-internals §2.3): pm2-doctor's resurrect must not refuse
/// because each app holds its own port.
#[test]
fn resurrect_with_the_apps_already_running_reports_them() {
    let _serial = serial();
    let Some(mut lab) = Lab::with_pm2(PREFIX) else {
        return;
    };
    let port = lab.start_web(&[]);
    lab.pm2(&["save"], &[]);
    let web = lab.app_pid("web", 0);
    let out = lab.resurrect(&[]);
    assert_eq!(out.code, 0, "{out}");
    let docs = out.docs();
    let apps = docs[0]["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 1, "{out}");
    assert_eq!(apps[0]["app"], "web:0", "{out}");
    assert_eq!(apps[0]["stable"], true, "{out}");
    assert_eq!(http_pid(port), Some(web), "web was left running as it was");
    lab.finish();
}
