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

mod common;

use common::doctor::{self, Out};
use common::lab::{write_mode, Lab};
use common::procfs::{alive, wait_for_exec};
use common::prompt::Prompted;
use common::tree::{tree, tree_with_mtimes, Tree};
use common::{command, have, CORRUPT_DUMP, GOOD_DUMP};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A valid dump holding a key named like a secret: mode 644 makes it a
/// `dump.secrets-exposed` finding, whose fix is `chmod 600`.
const SECRET_DUMP: &str = r#"[{"name":"web","pm_exec_path":"/bin/true","pm_pid_path":"x","env":{"NODE_ENV":"production","SECRET_TOKEN":"hunter2"}}]"#;

// ---------------------------------------------------------------------------
// harness
// ---------------------------------------------------------------------------

/// A lab with `outside/` beside the home: the targets links point to.
fn new_lab() -> Lab {
    let lab = Lab::new("pm2doctor-hostile-", &["pids"]);
    fs::create_dir_all(lab.out()).unwrap();
    lab
}

impl Lab {
    fn out(&self) -> PathBuf {
        self.root().join("outside")
    }

    /// A file outside the home, with its mode.
    fn outside(&self, rel: &str, content: &str, mode: u32) -> PathBuf {
        let p = self.out().join(rel);
        write_mode(&p, content, mode);
        p
    }

    fn link(&self, rel: &str, target: &Path) {
        std::os::unix::fs::symlink(target, self.path(rel)).unwrap();
    }

    fn diagnose(&self, extra: &[&str]) -> Out {
        let mut args = vec!["diagnose", "--timeout", "0.5", "--color", "never"];
        args.extend_from_slice(extra);
        self.doctor(&args)
    }

    /// `repair --yes` keeping its run in `backups`.
    fn repair_into(&self, backups: &str) -> Out {
        self.doctor(&[
            "repair",
            "--yes",
            "--timeout",
            "0.5",
            "--backup-dir",
            backups,
        ])
    }

    fn repair(&self, extra: &[&str]) -> Out {
        let mut args = vec!["repair", "--yes", "--grace", "1", "--timeout", "0.5"];
        args.extend_from_slice(extra);
        self.doctor(&args)
    }
}

impl Out {
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

fn action_key(a: &Value) -> String {
    a["path"]
        .as_str()
        .or(a["to"].as_str())
        .map(str::to_string)
        .or_else(|| a["pid"].as_u64().map(|p| p.to_string()))
        .unwrap_or_default()
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Outside targets: everything, mtimes included.
fn outside_tree(lab: &Lab) -> Tree {
    tree_with_mtimes(&lab.out())
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
    let lab = new_lab();
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
    lab.link("logs", &lab.out().join("logs"));
    // Real breakage beside the links, so repair has work to do.
    lab.stale_socket("rpc.sock");
    lab.write("pids/api-1.pid", "999997");
    let outside = outside_tree(&lab);
    let home_before = tree(&lab.home);

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
    assert_eq!(outside, outside_tree(&lab), "diagnose changed nothing");

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
        outside_tree(&lab),
        "repair changed something outside the home"
    );
    for (rel, target) in &targets {
        assert_eq!(&fs::read_link(lab.path(rel)).unwrap(), target, "{rel}");
    }
    assert_eq!(
        fs::read_link(lab.path("logs")).unwrap(),
        lab.out().join("logs")
    );

    let u = lab.doctor(&["undo"]);
    assert_eq!(u.code, 0, "{u}");
    assert_eq!(tree(&lab.home), home_before, "undo restores the home");
    assert_eq!(outside, outside_tree(&lab), "undo stays in the home too");
}

#[test]
fn a_symlinked_pids_folder_is_not_followed() {
    let lab = new_lab();
    fs::remove_dir(lab.path("pids")).unwrap();
    lab.outside("pids/web-0.pid", "999998", 0o644);
    lab.outside("pids/api-1.pid", "not a pid", 0o600);
    lab.outside("pids/ticker-2.pid", &std::process::id().to_string(), 0o644);
    lab.link("pids", &lab.out().join("pids"));
    lab.write("pm2.pid", "999999");
    let outside = outside_tree(&lab);

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
    assert_eq!(outside, outside_tree(&lab), "the outside pids untouched");
    assert_eq!(
        fs::read_link(lab.path("pids")).unwrap(),
        lab.out().join("pids")
    );
}

#[test]
fn a_symlinked_logs_folder_is_reported_not_followed() {
    let lab = new_lab();
    let big = lab.outside("logs/web-out.log", "", 0o644);
    // 2 MiB without writing them (sparse), over a 1 MiB threshold.
    fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(2 * 1024 * 1024)
        .unwrap();
    lab.link("logs", &lab.out().join("logs"));

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
    let lab = new_lab();
    lab.write("dump.pm2", SECRET_DUMP);
    lab.chmod("dump.pm2", 0o644);
    lab.link(
        "dump.pm2.bak",
        &lab.outside("dump.pm2.bak", SECRET_DUMP, 0o644),
    );
    let outside = outside_tree(&lab);
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
    assert_eq!(outside, outside_tree(&lab), "the linked backup keeps 644");

    // A corrupt dump whose only valid copy is behind the link: nothing to
    // restore from (the link is not followed), so nothing is rewritten.
    let lab = new_lab();
    lab.write("dump.pm2", CORRUPT_DUMP);
    lab.link(
        "dump.pm2.bak",
        &lab.outside("dump.pm2.bak", GOOD_DUMP, 0o600),
    );
    let outside = outside_tree(&lab);
    let before = tree(&lab.home);
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
    assert_eq!(tree(&lab.home), before);
    assert_eq!(outside, outside_tree(&lab));
}

#[test]
fn a_backup_dir_that_links_into_the_home_is_refused() {
    let lab = new_lab();
    lab.write("pm2.pid", "999999");
    lab.write("pids/web-0.pid", "999998");

    // The link's target exists inside the home.
    fs::create_dir(lab.path("kept")).unwrap();
    let link = lab.root().join("backups-link");
    std::os::unix::fs::symlink(lab.path("kept"), &link).unwrap();
    let before = tree(&lab.home);
    let link_s = link.to_str().unwrap();
    let r = lab.repair_into(link_s);
    assert_eq!(r.code, 8, "{r}");
    assert!(r.stderr.contains("inside the PM2 home"), "{r}");
    assert_eq!(tree(&lab.home), before, "nothing changed, nothing created");

    // The same through PM2_DOCTOR_BACKUP_DIR.
    let mut cmd = doctor::sandboxed(lab.root());
    cmd.env("PM2_DOCTOR_BACKUP_DIR", &link)
        .args(["repair", "--yes", "--timeout", "0.5", "--home"])
        .arg(&lab.home);
    let r = doctor::run(cmd, "repair");
    assert_eq!(r.code, 8, "{r}");
    assert!(r.stderr.contains("inside the PM2 home"), "{r}");
    assert_eq!(tree(&lab.home), before);

    // The link dangles into the home: the folder must not be created there.
    fs::remove_dir(lab.path("kept")).unwrap();
    let before = tree(&lab.home);
    let r = lab.repair_into(link_s);
    assert_eq!(r.code, 8, "{r}");
    assert_eq!(tree(&lab.home), before, "nothing created in the home:\n{r}");
    assert!(lab.path("pm2.pid").exists() && lab.path("pids/web-0.pid").exists());
}

// ---------------------------------------------------------------------------
// hard links
// ---------------------------------------------------------------------------

#[test]
fn a_hard_linked_pid_file_is_unlinked_and_the_outside_file_kept() {
    let lab = new_lab();
    let daemon = lab.outside("daemon.pid", "999999", 0o640);
    let app = lab.outside("shared.pid", "999998", 0o604);
    fs::hard_link(&daemon, lab.path("pm2.pid")).unwrap();
    fs::hard_link(&app, lab.path("pids/web-0.pid")).unwrap();
    let outside = outside_tree(&lab);
    let before = tree(&lab.home);

    let r = lab.repair(&[]);
    assert_eq!(r.code & 1, 1, "{r}");
    assert!(!lab.path("pm2.pid").exists() && !lab.path("pids/web-0.pid").exists());
    assert_eq!(
        outside,
        outside_tree(&lab),
        "the outside names keep bytes, mode and mtime"
    );
    assert_eq!(fs::metadata(&app).unwrap().nlink(), 1);

    let u = lab.doctor(&["undo"]);
    assert_eq!(u.code, 0, "{u}");
    assert_eq!(tree(&lab.home), before, "undo puts the content back");
    assert_eq!(outside, outside_tree(&lab));
}

#[test]
fn chmod_of_a_hard_linked_dump_leaves_the_outside_name_alone() {
    let lab = new_lab();
    let shared = lab.outside("shared-dump", SECRET_DUMP, 0o644);
    fs::hard_link(&shared, lab.path("dump.pm2")).unwrap();
    let outside = outside_tree(&lab);
    let r = lab.repair(&[]);
    assert_eq!(
        outside,
        outside_tree(&lab),
        "a file outside the home changed mode:\n{r}"
    );
}

// ---------------------------------------------------------------------------
// the home changes under a running repair
// ---------------------------------------------------------------------------

#[test]
fn a_pid_file_rewritten_between_two_actions_is_left_alone() {
    let lab = new_lab();
    lab.write("pm2.pid", "999999"); // action 1
    lab.write("pids/api-1.pid", "999997"); // action 2
    lab.write("pids/web-0.pid", "999998"); // action 3
    let resume = lab.root().join("resume");
    let paused = lab.paused_repair(1, Some(&resume));
    assert!(!lab.path("pm2.pid").exists(), "action 1 ran");
    assert!(lab.path("pids/web-0.pid").exists(), "action 3 did not");
    // Between action 1 and action 3, somebody writes the pid file again.
    lab.write("pids/web-0.pid", "424242");
    fs::write(&resume, "").unwrap();
    let r = paused.finish().expect_json();
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
    assert_eq!(r.code & 1, 1, "{r}");
    assert_eq!(r.code & 8, 0, "{r}");
    // The journal agrees, and no later pass moved the file either.
    let run_dir = r.run_dir();
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
    let mut lab = new_lab();
    lab.write("pm2.pid", "999999");
    let Some(mut prompted) = Prompted::start(&lab) else {
        return;
    };
    // While the person reads the plan, a new daemon starts and writes its pid.
    let new_pid = lab.spawn(command("sleep").arg("300")).to_string();
    lab.write("pm2.pid", &new_pid);
    let (_, transcript) = prompted.yes();
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
    let mut lab = new_lab();
    let Some(mount) = Mount::tmpfs(&lab.root().join("mnt")) else {
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
    let before = tree(&lab.home);

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
    assert_eq!(tree(&lab.home), before);
    let u = lab.doctor(&["undo"]);
    assert_eq!(u.code, 0, "nothing to put back:\n{u}");
    assert_eq!(u.json["restored"], 0, "{u}");

    // Backups on the read-only disk: refused before anything is touched.
    let ro_backups = mount.0.join("backups");
    let r = lab.repair_into(ro_backups.to_str().unwrap());
    assert_eq!(r.code, 8, "{r}");
    assert!(r.stderr.contains("nothing was changed"), "{r}");
    assert!(r.stderr.contains("Read-only file system"), "{r}");
    assert_eq!(tree(&lab.home), before);
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
            let mut c = command("setpriv");
            c.args([
                &format!("--reuid={u}"),
                &format!("--regid={u}"),
                "--clear-groups",
                "sleep",
            ]);
            c
        }
        None => command("sleep"),
    };
    let markers = lab.markers("web", 0);
    let pid = lab.spawn(cmd.arg("300").envs(markers));
    wait_for_exec(pid, "sleep");
    pid
}

fn owners(lab: &Lab) -> BTreeMap<String, (u32, u32)> {
    tree(&lab.home)
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
    let mut lab = new_lab();
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
    let before = tree(&lab.home);
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
    assert_eq!(tree(&lab.home), before, "undo round trip, owners included");
}
