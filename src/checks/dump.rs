//! `dump.pm2` and `dump.pm2.bak`: the saved app list `pm2 resurrect` reads,
//! and deletes when it cannot parse it.

use super::daemon::symlink_finding;
use super::{iso, unix_secs, Context, Sink};
use crate::dump::{entry_problems, DumpEntry, DumpParse, EnvShape, JsVerdict};
use crate::findings::{CheckId, Finding, Fix, Safety};
use crate::home::{Entry, FileMeta};
use std::path::Path;

/// How many offending entries a finding names before it just counts.
const LIST_CAP: usize = 10;

const DUMP_IDS: [CheckId; 7] = [
    CheckId::DumpCorrupt,
    CheckId::DumpUnsafe,
    CheckId::DumpInvalidEntry,
    CheckId::DumpEmpty,
    CheckId::DumpMissingScript,
    CheckId::DumpForeignHome,
    CheckId::DumpSecretsExposed,
];

fn backup_state(ctx: &Context) -> (bool, usize) {
    match ctx.home.dump_backup.apps() {
        Some(apps) => (
            apps.iter().all(|e| entry_problems(e).is_empty()),
            apps.len(),
        ),
        None => (false, 0),
    }
}

/// The fix for a dump pm2 cannot use: the backup when it is good.
fn restore_or_recreate(ctx: &Context) -> Fix {
    let (bak_ok, bak_apps) = backup_state(ctx);
    if bak_ok && bak_apps > 0 {
        Fix::new(
            "restore-dump-from-backup",
            Safety::Disruptive,
            format!(
                "keep the bad dump in the backup and restore dump.pm2 from dump.pm2.bak ({}), written atomically",
                crate::report::plural(bak_apps, "app")
            ),
        )
    } else {
        Fix::new(
            "recreate-dump",
            Safety::Manual,
            "no valid backup dump exists: start the apps from their ecosystem file, then `pm2 save`; do not run `pm2 resurrect` (it deletes an unparsable dump)",
        )
    }
}

fn meta_evidence(f: Finding, meta: &FileMeta) -> Finding {
    f.with("size", meta.size)
        .with_opt("mtime", meta.mtime.map(|t| iso(unix_secs(t))))
        .with_opt("mode", meta.mode.map(|m| format!("{m:o}")))
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    let paths = &ctx.home.paths;
    let dump_path = paths.dump.as_path();
    match &ctx.home.dump_entry {
        Entry::SymlinkOutside { target } => {
            sink.push(symlink_finding(dump_path, target));
            for id in DUMP_IDS {
                sink.unknown(
                    id,
                    "dump.pm2 is a symlink out of the home and was not followed",
                );
            }
        }
        Entry::Dir | Entry::Socket | Entry::Other => {
            sink.push(
                Finding::new(
                    CheckId::DumpCorrupt,
                    format!("{} is not a regular file", dump_path.display()),
                    restore_or_recreate(ctx),
                )
                .with("path", dump_path.display().to_string()),
            );
            for id in ENTRY_IDS {
                sink.skip(id, "dump.pm2 is not a regular file");
            }
            sink.skip(CheckId::DumpUnsafe, "dump.pm2 is not a regular file");
        }
        _ => main_dump(ctx, sink, dump_path),
    }
    backup(ctx, sink);
}

/// The checks that read the entries: they have nothing to look at when the
/// dump itself cannot be read as an array.
const ENTRY_IDS: [CheckId; 5] = [
    CheckId::DumpInvalidEntry,
    CheckId::DumpEmpty,
    CheckId::DumpMissingScript,
    CheckId::DumpForeignHome,
    CheckId::DumpSecretsExposed,
];

fn main_dump(ctx: &Context, sink: &mut Sink, path: &Path) {
    let p = path.display().to_string();
    match &ctx.home.dump {
        DumpParse::Empty { .. } | DumpParse::NotJson { .. } | DumpParse::NotArray { .. } => {
            for id in ENTRY_IDS {
                sink.skip(id, "dump.pm2 could not be read as a list of apps");
            }
        }
        DumpParse::Absent => {
            for id in ENTRY_IDS {
                sink.skip(id, "there is no dump.pm2");
            }
        }
        _ => {}
    }
    if let DumpParse::NotJson {
        js: JsVerdict::Literal | JsVerdict::Code,
        ..
    } = &ctx.home.dump
    {
        sink.skip(
            CheckId::DumpCorrupt,
            "dump.pm2 is JavaScript: see dump.unsafe",
        );
    }
    let (bak_ok, bak_apps) = backup_state(ctx);
    let with_bak = |f: Finding| {
        f.with("path", p.clone())
            .with("backup_valid", bak_ok)
            .with("backup_apps", bak_apps)
    };
    match &ctx.home.dump {
        DumpParse::Absent => {}
        DumpParse::Unreadable(e) => {
            for id in DUMP_IDS {
                sink.unknown(id, format!("cannot read dump.pm2: {e}"));
            }
        }
        DumpParse::TooLarge { size } => {
            for id in DUMP_IDS {
                sink.unknown(
                    id,
                    format!("dump.pm2 is {size} bytes, larger than pm2-doctor reads ({} bytes)", crate::dump::DUMP_CAP),
                );
            }
        }
        DumpParse::Empty { meta } => sink.push(meta_evidence(
            with_bak(Finding::new(
                CheckId::DumpCorrupt,
                "dump.pm2 is empty: pm2 resurrect would delete it, then fall back to (and possibly delete) dump.pm2.bak",
                restore_or_recreate(ctx),
            )),
            meta,
        )),
        DumpParse::NotJson { meta, error, js } => match js {
            JsVerdict::Garbage => sink.push(meta_evidence(
                with_bak(Finding::new(
                    CheckId::DumpCorrupt,
                    format!("dump.pm2 is not valid JSON ({error}): it is truncated or garbage, and pm2 resurrect would delete it"),
                    restore_or_recreate(ctx),
                ))
                .with("error", error.clone()),
                meta,
            )),
            JsVerdict::Literal => sink.push(meta_evidence(
                with_bak(Finding::new(
                    CheckId::DumpUnsafe,
                    format!("dump.pm2 is a JavaScript literal, not JSON ({error}): PM2 evaluates it as code, pm2-doctor will not"),
                    Fix::new(
                        "rewrite-dump-as-json",
                        Safety::Manual,
                        "review it, keep a copy, and rewrite dump.pm2 as strict JSON (or restore a known-good dump); do not run `pm2 resurrect` on it",
                    ),
                ))
                .with("error", error.clone()),
                meta,
            )),
            JsVerdict::Code => sink.push(meta_evidence(
                with_bak(Finding::new(
                    CheckId::DumpUnsafe,
                    "dump.pm2 contains JavaScript code: `pm2 resurrect` would execute it",
                    Fix::new(
                        "inspect-dump",
                        Safety::Manual,
                        "do not run `pm2 resurrect`; inspect the file (someone may have planted code), then restore from a known-good dump",
                    ),
                ))
                .with("error", error.clone()),
                meta,
            )),
        },
        DumpParse::NotArray { meta, kind } => sink.push(meta_evidence(
            with_bak(Finding::new(
                CheckId::DumpCorrupt,
                format!("dump.pm2 holds {kind}, not an array of apps: pm2 resurrect crashes on it"),
                restore_or_recreate(ctx),
            ))
            .with("kind", *kind),
            meta,
        )),
        DumpParse::Apps { meta, entries } => {
            if entries.is_empty() {
                if bak_apps > 0 {
                    sink.push(meta_evidence(
                        with_bak(Finding::new(
                            CheckId::DumpEmpty,
                            format!("dump.pm2 is [] but dump.pm2.bak still holds {bak_apps} apps: the saved list was probably clobbered by `pm2 save --force` or a daemon dump"),
                            restore_or_recreate(ctx),
                        )),
                        meta,
                    ));
                }
                return;
            }
            entries_checks(ctx, sink, path, meta, entries);
        }
    }
}

fn names(entries: &[(usize, &DumpEntry, String)]) -> Vec<serde_json::Value> {
    entries
        .iter()
        .take(LIST_CAP)
        .map(|(i, e, why)| {
            serde_json::json!({
                "index": i,
                "app": e.name.clone().unwrap_or_else(|| "(no name)".into()),
                "problem": why,
            })
        })
        .collect()
}

fn entries_checks(
    ctx: &Context,
    sink: &mut Sink,
    path: &Path,
    meta: &FileMeta,
    entries: &[DumpEntry],
) {
    let p = path.display().to_string();
    let invalid: Vec<(usize, &DumpEntry, String)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let probs = entry_problems(e);
            (!probs.is_empty()).then(|| (i, e, probs.join(", ")))
        })
        .collect();
    if !invalid.is_empty() {
        sink.push(
            Finding::new(
                CheckId::DumpInvalidEntry,
                format!(
                    "{} in dump.pm2 would crash the daemon on resurrect (missing name, script, pid path or env)",
                    crate::report::plural(invalid.len(), "entry")
                ),
                restore_or_recreate(ctx),
            )
            .with("path", p.clone())
            .with("entries", names(&invalid))
            .with("count", invalid.len()),
        );
    }

    let missing: Vec<(usize, &DumpEntry, String)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            // Only a definite "not found" counts: a path we may not look
            // into is not reported as missing.
            let gone = |v: &Option<String>| {
                v.as_deref()
                    .filter(|s| Path::new(s).is_absolute())
                    .filter(|s| {
                        matches!(std::fs::symlink_metadata(s), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
                    })
                    .map(str::to_string)
            };
            let why = match (gone(&e.pm_exec_path), gone(&e.pm_cwd)) {
                (Some(s), _) => format!("script {s} does not exist"),
                (None, Some(c)) => format!("working directory {c} does not exist"),
                (None, None) => return None,
            };
            Some((i, e, why))
        })
        .collect();
    if !missing.is_empty() {
        sink.push(
            Finding::new(
                CheckId::DumpMissingScript,
                format!(
                    "{} in dump.pm2 point at files that no longer exist: resurrect would start them into a crash loop",
                    crate::report::plural(missing.len(), "app")
                ),
                Fix::new(
                    "fix-app-paths",
                    Safety::Manual,
                    "redeploy the missing scripts, or remove those apps (`pm2 delete NAME` then `pm2 save`)",
                ),
            )
            .with("path", p.clone())
            .with("entries", names(&missing))
            .with("count", missing.len()),
        );
    }

    let home = &ctx.home.paths.home;
    let foreign: Vec<(usize, &DumpEntry, String)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let env_home = match &e.env {
                EnvShape::Object { pm2_home, .. } => pm2_home.clone(),
                _ => None,
            };
            // PM2_HOME is authoritative; pid paths may legitimately point
            // elsewhere (pid_file, PM2_DEFAULT_PID_PATH), so they only count
            // for entries that recorded no home at all.
            if let Some(h) = env_home.or_else(|| e.pm2_home.clone()) {
                return (!other_platform_path(&h) && !ctx.matcher.matches(&h))
                    .then(|| (i, e, format!("PM2_HOME is {h}")));
            }
            let pid_path = e.pm_pid_path.as_deref().map(Path::new)?;
            (pid_path.is_absolute() && !pid_path.starts_with(home))
                .then(|| (i, e, format!("pid file goes to {}", pid_path.display())))
        })
        .collect();
    if !foreign.is_empty() {
        sink.push(
            Finding::new(
                CheckId::DumpForeignHome,
                format!(
                    "{} in dump.pm2 belong to another PM2 home: resurrected here, they write pid and log files there",
                    crate::report::plural(foreign.len(), "app")
                ),
                Fix::new(
                    "start-from-ecosystem",
                    Safety::Manual,
                    "start the apps from their ecosystem file with this PM2_HOME and `pm2 save`, instead of reusing a copied dump",
                ),
            )
            .with("path", p.clone())
            .with("home", home.display().to_string())
            .with("entries", names(&foreign))
            .with("count", foreign.len()),
        );
    }

    secrets(ctx, sink, path, meta, entries);
}

/// A path written on the other OS family (a Windows home copied to Linux for
/// analysis, or the reverse) cannot be compared with this home, so it is
/// neither evidence of a foreign home nor of this one.
fn other_platform_path(p: &str) -> bool {
    let b = p.as_bytes();
    let windows_style = (b.len() >= 3
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && matches!(b[2], b'\\' | b'/'))
        || p.starts_with("\\\\");
    if cfg!(windows) {
        p.starts_with('/')
    } else {
        windows_style
    }
}

fn secrets(ctx: &Context, sink: &mut Sink, path: &Path, meta: &FileMeta, entries: &[DumpEntry]) {
    let id = CheckId::DumpSecretsExposed;
    let Some(mode) = meta.mode else {
        sink.skip(id, "file permissions are not Unix modes on this platform");
        return;
    };
    let bak_mode = match &ctx.home.dump_backup_entry {
        Entry::File(m) => m.mode,
        _ => None,
    };
    let exposed: Vec<String> = [
        (path, Some(mode)),
        (ctx.home.paths.dump_backup.as_path(), bak_mode),
    ]
    .iter()
    .filter_map(|(p, m)| {
        m.filter(|m| m & 0o044 != 0)
            .map(|m| format!("{} ({m:o})", p.display()))
    })
    .collect();
    if exposed.is_empty() {
        return;
    }
    let mut keys: Vec<&str> = entries
        .iter()
        .filter_map(|e| match &e.env {
            EnvShape::Object { secret_keys, .. } => Some(secret_keys),
            _ => None,
        })
        .flatten()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return;
    }
    let shown: Vec<&str> = keys.iter().take(LIST_CAP).copied().collect();
    sink.push(
        Finding::new(
            id,
            format!(
                "dump.pm2 stores {} named like {}, and is readable by group or others: {}",
                crate::report::plural(keys.len(), "environment key"),
                if keys.len() == 1 {
                    "a secret"
                } else {
                    "secrets"
                },
                exposed.join(", ")
            ),
            Fix::new(
                "tighten-dump-permissions",
                Safety::Safe,
                "chmod 600 dump.pm2 and dump.pm2.bak (PM2 keeps writing them with the same mode)",
            ),
        )
        .with("path", path.display().to_string())
        .with("mode", format!("{mode:o}"))
        .with("readable_files", exposed)
        .with("keys", shown)
        .with("key_count", keys.len()),
    );
}

fn backup(ctx: &Context, sink: &mut Sink) {
    let path = &ctx.home.paths.dump_backup;
    let p = path.display().to_string();
    let id = CheckId::DumpBackupCorrupt;
    let fix = || {
        Fix::new(
            "keep-backup-dump",
            Safety::Manual,
            "nothing urgent while dump.pm2 is good: the next `pm2 save` replaces it; until then, if dump.pm2 fails, `pm2 resurrect` falls back to it and deletes or crashes on it",
        )
    };
    match (&ctx.home.dump_backup_entry, &ctx.home.dump_backup) {
        (Entry::SymlinkOutside { target }, _) => {
            sink.push(symlink_finding(path, target));
            sink.unknown(
                id,
                "dump.pm2.bak is a symlink out of the home and was not followed",
            );
        }
        (Entry::Dir | Entry::Socket | Entry::Other, _) => {
            sink.push(Finding::new(id, format!("{p} is not a regular file"), fix()).with("path", p))
        }
        (_, DumpParse::Absent) => {}
        (_, DumpParse::Unreadable(e)) => sink.unknown(id, format!("cannot read dump.pm2.bak: {e}")),
        (_, DumpParse::TooLarge { size }) => sink.unknown(
            id,
            format!("dump.pm2.bak is {size} bytes, too large to read"),
        ),
        (_, DumpParse::Empty { meta }) => sink.push(meta_evidence(
            Finding::new(id, "dump.pm2.bak is empty", fix()).with("path", p),
            meta,
        )),
        (
            _,
            DumpParse::NotJson {
                meta,
                error,
                js: js @ (JsVerdict::Code | JsVerdict::Literal),
            },
        ) => {
            // pm2 resurrect evaluates the .bak whenever dump.pm2 fails.
            let what = if *js == JsVerdict::Code {
                "contains JavaScript code"
            } else {
                "is a JavaScript literal, not JSON"
            };
            sink.push(meta_evidence(
                Finding::new(
                    CheckId::DumpUnsafe,
                    format!("dump.pm2.bak {what}: `pm2 resurrect` evaluates it whenever dump.pm2 is missing or unparsable"),
                    Fix::new(
                        "inspect-dump",
                        Safety::Manual,
                        "inspect dump.pm2.bak (someone may have planted code); do not run `pm2 resurrect` until it is strict JSON",
                    ),
                )
                .with("path", p)
                .with("error", error.clone()),
                meta,
            ))
        }
        (_, DumpParse::NotJson { meta, error, .. }) => sink.push(meta_evidence(
            Finding::new(
                id,
                format!("dump.pm2.bak is not valid JSON ({error})"),
                fix(),
            )
            .with("path", p)
            .with("error", error.clone()),
            meta,
        )),
        (_, DumpParse::NotArray { meta, kind }) => sink.push(meta_evidence(
            Finding::new(
                id,
                format!("dump.pm2.bak holds {kind}, not an array of apps"),
                fix(),
            )
            .with("path", p),
            meta,
        )),
        (_, DumpParse::Apps { meta, entries }) => {
            let bad = entries
                .iter()
                .filter(|e| !entry_problems(e).is_empty())
                .count();
            if bad > 0 {
                sink.push(meta_evidence(
                    Finding::new(
                        id,
                        format!(
                            "{} in dump.pm2.bak would crash the daemon",
                            crate::report::plural(bad, "entry")
                        ),
                        fix(),
                    )
                    .with("path", p)
                    .with("count", bad),
                    meta,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::other_platform_path;

    #[test]
    fn recognises_paths_of_the_other_os() {
        if cfg!(windows) {
            assert!(other_platform_path("/home/u/.pm2"));
            assert!(!other_platform_path(r"C:\Users\u\.pm2"));
        } else {
            assert!(other_platform_path(r"C:\Users\u\.pm2"));
            assert!(other_platform_path("c:/Users/u/.pm2"));
            assert!(other_platform_path(r"\\server\share\.pm2"));
            assert!(!other_platform_path("/home/u/.pm2"));
            assert!(!other_platform_path("relative/.pm2"));
        }
    }
}
