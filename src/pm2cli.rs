//! The `pm2` CLI installed on this machine, found without running it (every
//! `pm2` command, even `pm2 --version`, may spawn a daemon).

use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Pm2Cli {
    /// The command found on PATH (or given with `--pm2`).
    pub bin: PathBuf,
    /// The `package.json` its version was read from.
    pub package_json: PathBuf,
    pub version: String,
}

/// The first `pm2` on `path_var` (or `explicit`) whose package.json we can read.
pub fn locate(explicit: Option<&Path>, path_var: Option<&str>) -> Option<Pm2Cli> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.to_path_buf()],
        None => {
            let names: &[&str] = if cfg!(windows) {
                &["pm2.cmd", "pm2.ps1", "pm2"]
            } else {
                &["pm2"]
            };
            std::env::split_paths(path_var.unwrap_or_default())
                .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
                .filter(|p| p.is_file())
                .collect()
        }
    };
    candidates.into_iter().find_map(|bin| {
        let package_json = package_json_for(&bin)?;
        let version = read_version(&package_json)?;
        Some(Pm2Cli {
            bin,
            package_json,
            version,
        })
    })
}

/// npm installs `bin/pm2` as a symlink into `node_modules/pm2/bin/pm2` on
/// Unix, and as a `pm2.cmd` shim next to `node_modules/` on Windows.
fn package_json_for(bin: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(bin).ok()?;
    let mut tries = Vec::new();
    if let Some(pkg) = real.parent().and_then(Path::parent) {
        tries.push(pkg.join("package.json"));
    }
    if let Some(dir) = bin.parent() {
        tries.push(dir.join("node_modules/pm2/package.json"));
        tries.push(dir.join("../lib/node_modules/pm2/package.json"));
    }
    tries
        .into_iter()
        .find(|p| read_name(p).as_deref() == Some("pm2"))
}

fn read_json(p: &Path) -> Option<serde_json::Value> {
    let (bytes, truncated) = crate::home::read_capped(p, 1024 * 1024).ok()?;
    if truncated {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

fn read_name(p: &Path) -> Option<String> {
    read_json(p)?.get("name")?.as_str().map(str::to_string)
}

fn read_version(p: &Path) -> Option<String> {
    read_json(p)?.get("version")?.as_str().map(str::to_string)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_through_the_npm_symlink() {
        let root = tempfile::tempdir().unwrap();
        let pkg = root.path().join("lib/node_modules/pm2");
        std::fs::create_dir_all(pkg.join("bin")).unwrap();
        std::fs::write(
            pkg.join("package.json"),
            r#"{"name":"pm2","version":"7.0.4"}"#,
        )
        .unwrap();
        std::fs::write(pkg.join("bin/pm2"), "#!/usr/bin/env node\n").unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(pkg.join("bin/pm2"), bin.join("pm2")).unwrap();
        let path = format!("/nonexistent:{}", bin.display());
        let cli = locate(None, Some(&path)).unwrap();
        assert_eq!(cli.version, "7.0.4");
        assert_eq!(cli.bin, bin.join("pm2"));
        assert!(locate(None, Some("/nonexistent")).is_none());
    }
}
