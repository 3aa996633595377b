//! `repair`, `undo` and `backups` through the real binary on temp homes,
//! with real processes the tests start themselves (no PM2 needed): orphans
//! carrying PM2's markers, their session mates, and decoys that must
//! survive. Every process a test starts is killed by pid when it ends.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::doctor::signalled;
use common::lab::Lab;
use common::net::{free_ports, port_answers};
use common::procfs::alive;
use common::tree::tree;
use common::wait::wait_until;
use common::{command, python3, GOOD_DUMP};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

fn new_lab() -> Lab {
    Lab::new("pm2doctor-repair-", &["pids", "logs"])
}

impl Lab {
    /// A process carrying PM2's app markers for this home, in its own
    /// session (as PM2 starts fork apps), listening on `port`, with a child
    /// `sleep` in the same session whose environment is scrubbed (so only
    /// its pid can find it at cleanup).
    fn orphan(&mut self, name: &str, pm_id: u32, port: u16) -> (u32, u32) {
        let script = format!(
            "env -i sleep 300 & echo $! > {dir}/{name}.child; exec {python} -m http.server {port} --bind 127.0.0.1",
            dir = self.root().display(),
            python = python3(),
        );
        let markers = self.markers(name, pm_id);
        let pid = self.spawn(command("setsid").args(["sh", "-c", &script]).envs(markers));
        wait_until(
            &format!("the orphan to listen on {port}"),
            Duration::from_secs(10),
            || port_answers(port),
        );
        let child_pid = fs::read_to_string(self.root().join(format!("{name}.child")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        self.remember(child_pid);
        (pid, child_pid)
    }

    fn run(&self, args: &[&str]) -> (i32, Value) {
        let out = self.doctor_json(args);
        (out.code, out.json)
    }
}

/// The state a SIGKILLed daemon leaves: stale pm2.pid and sockets, pid
/// files, an orphan with a session mate holding a port, a decoy, a pid file
/// naming the decoy (reused pid), and logs that must never be touched.
fn broken_home(lab: &mut Lab) -> (u32, u32, u16, u32) {
    let [port] = free_ports::<1>();
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
    let mut lab = new_lab();
    let (orphan, mate, port, decoy) = broken_home(&mut lab);
    let before = tree(&lab.home);
    let (code, rep) = lab.run(&["repair", "--yes", "--grace", "1", "--timeout", "0.5"]);
    assert_eq!(code & 1, 1, "fixed: {rep:#}");
    assert_eq!(code & 2, 2, "processes stopped: restart recommended");
    assert_eq!(code & 4, 0, "nothing left: {:#}", rep["after"]["findings"]);
    assert!(!alive(orphan), "the orphan is gone");
    assert!(!alive(mate), "its session mate is gone");
    assert!(!port_answers(port), "the port is free");
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
    let signalled = signalled(rep["results"].as_array().unwrap());
    assert!(signalled.contains_key(&orphan) && signalled.contains_key(&mate));
    assert!(!signalled.contains_key(&decoy));
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
    let mut lab = new_lab();
    broken_home(&mut lab);
    lab.write("dump.pm2", "[{\"name\":");
    lab.write("dump.pm2.bak", GOOD_DUMP);
    lab.chmod("dump.pm2", 0o640);
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
    let lab = new_lab();
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
    let mut lab = new_lab();
    let (orphan, _, _, _) = broken_home(&mut lab);
    let before = tree(&lab.home);

    let (code, rep) = lab.run(&["repair", "--dry-run", "--timeout", "0.5"]);
    assert_eq!(code, 4, "problems left");
    assert!(rep["plan"].as_array().unwrap().len() >= 5);
    assert_eq!(tree(&lab.home), before, "dry run changes nothing");
    assert!(!lab.backups.exists(), "not even a backup folder");

    // No terminal, no --yes: refused with a clear message, nothing changed.
    let out = lab.doctor_raw(&["repair", "--timeout", "0.5"]);
    assert_eq!(out.code, 16, "{out}");
    assert!(out.stderr.contains("--yes"), "{out}");
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
    let mut lab = new_lab();
    broken_home(&mut lab);
    let before = tree(&lab.home);
    // A regular file where the backup folder should go: nothing can be
    // created under it, even by root.
    fs::write(&lab.backups, "not a folder").unwrap();
    let out = lab.doctor_raw(&["repair", "--yes", "--timeout", "0.5"]);
    assert_eq!(out.code, 8, "{out}");
    assert!(out.stderr.contains("nothing was changed"), "{out}");
    assert_eq!(tree(&lab.home), before);

    // A backup folder inside the home is refused too.
    let inside = lab.home.join("backups");
    let out = lab.doctor_raw(&["repair", "--yes", "--backup-dir", inside.to_str().unwrap()]);
    assert_eq!(out.code, 8, "{out}");
    assert!(out.stderr.contains("inside the PM2 home"), "{out}");
    assert_eq!(tree(&lab.home), before);
}

#[test]
fn a_repair_killed_midway_can_be_undone_or_finished() {
    for stop_after in [1, 3, 5] {
        let mut lab = new_lab();
        broken_home(&mut lab);
        lab.write("dump.pm2", "[{\"name\":");
        lab.write("dump.pm2.bak", GOOD_DUMP);
        let before = tree(&lab.home);
        let paused = lab.paused_repair(stop_after, None);
        // While it holds the lock, a second repair is turned away.
        let out = lab.doctor_raw(&["repair", "--yes", "--timeout", "0.5"]);
        assert_eq!(out.code, 8, "after {stop_after}: {out}");
        assert!(out.stderr.contains("in progress"), "{out}");
        paused.kill();

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
        let d = lab.doctor_json(&["diagnose", "--timeout", "0.5"]);
        assert!(
            d.checks_found().is_empty(),
            "after {stop_after}: clean:\n{d}"
        );
        let (again, _) = lab.run(&["repair", "--yes", "--timeout", "0.5"]);
        assert_eq!(again, 0);
    }
}

#[test]
fn backups_lists_and_prunes_runs() {
    let lab = new_lab();
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
