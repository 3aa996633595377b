//! The fixture homes in `testdata/homes/<scenario>/`: `home/` (the PM2
//! home), optional `apps/`, `processes.json` (a replayed process table) and
//! `scenario.json`. Unless `"copy": false`, a scenario is copied into a temp
//! dir with `{{ROOT}}` replaced by the copy's path, then `chmod`, `symlinks`
//! and `stale_sockets` from `scenario.json` are applied (git cannot store
//! sockets or modes).

use super::doctor::BIN;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every scenario folder, sorted.
pub fn all() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir("testdata/homes")
        .expect("testdata/homes")
        .map(|e| e.expect("a testdata/homes entry").path())
        .filter(|p| p.join("scenario.json").is_file())
        .collect();
    v.sort();
    v
}

pub struct Scenario {
    /// `None`: read in place.
    tmp: Option<tempfile::TempDir>,
    pub root: PathBuf,
    /// `scenario.json`.
    pub spec: Value,
}

impl Scenario {
    pub fn prepare(dir: &Path) -> Scenario {
        let spec_path = dir.join("scenario.json");
        let spec: Value = serde_json::from_slice(&fs::read(&spec_path).expect("scenario.json"))
            .unwrap_or_else(|e| panic!("{}: {e}", spec_path.display()));
        if spec["copy"] == Value::Bool(false) {
            return Scenario {
                tmp: None,
                root: dir.to_path_buf(),
                spec,
            };
        }
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("s");
        fs::create_dir_all(&root).expect("create the copy");
        copy_templated(dir, &root, root.to_str().expect("utf-8 temp path"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for (rel, mode) in spec["chmod"].as_object().into_iter().flatten() {
                let m = mode
                    .as_str()
                    .and_then(|m| u32::from_str_radix(m, 8).ok())
                    .unwrap_or_else(|| panic!("chmod {rel}: {mode} is not an octal mode"));
                fs::set_permissions(root.join(rel), fs::Permissions::from_mode(m))
                    .unwrap_or_else(|e| panic!("chmod {rel}: {e}"));
            }
            for (rel, target) in spec["symlinks"].as_object().into_iter().flatten() {
                let target = target.as_str().expect("a symlink target");
                std::os::unix::fs::symlink(target, root.join(rel))
                    .unwrap_or_else(|e| panic!("symlink {rel}: {e}"));
            }
            for rel in spec["stale_sockets"].as_array().into_iter().flatten() {
                let rel = rel.as_str().expect("a socket path");
                // Bound then dropped: the file a SIGKILLed daemon leaves behind.
                drop(
                    std::os::unix::net::UnixListener::bind(root.join(rel))
                        .unwrap_or_else(|e| panic!("bind {rel}: {e}")),
                );
            }
        }
        Scenario {
            tmp: Some(tmp),
            root,
            spec,
        }
    }

    pub fn in_place(&self) -> bool {
        self.tmp.is_none()
    }

    /// `pm2-doctor diagnose --timeout 0.5` of the scenario's home with its
    /// process table, `HOME` its root and nothing else in the environment;
    /// not yet run.
    pub fn diagnose_cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("HOME", &self.root)
            .args(["diagnose", "--timeout", "0.5", "--home"])
            .arg(self.root.join("home"))
            .arg("--process-snapshot")
            .arg(self.root.join("processes.json"));
        c
    }
}

fn copy_templated(from: &Path, to: &Path, root: &str) {
    for entry in fs::read_dir(from).expect("read a scenario folder") {
        let entry = entry.expect("a scenario entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            fs::create_dir_all(&dest).expect("create a folder");
            copy_templated(&entry.path(), &dest, root);
        } else {
            let bytes = fs::read(entry.path()).expect("read a scenario file");
            let out = match String::from_utf8(bytes) {
                Ok(text) => text.replace("{{ROOT}}", root).into_bytes(),
                Err(e) => e.into_bytes(),
            };
            fs::write(&dest, out).expect("write a scenario file");
        }
    }
}
