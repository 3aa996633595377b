//! Bringing the apps back: pick a known-good source, check that nothing is
//! in the way, start them through the `pm2` CLI with a deadline on every
//! call, then watch them settle.
//!
//! `pm2 resurrect` evaluates its dump as code and deletes it when it cannot
//! parse it (pm2-internals §2.3). So PM2 is never pointed at the real dump:
//! the chosen dump is validated, copied into a pm2-doctor run folder, and
//! `pm2 resurrect` reads that copy (`PM2_DUMP_FILE_PATH`, set for that one
//! CLI call only, after the daemon is up, so the daemon keeps the real path).

use crate::config::Config;
use crate::diagnose::{self, Gathered};
use crate::dump::{entry_problems, DumpParse};
use crate::findings::{CheckId, Severity};
use crate::probe::{self, ProbeOutcome};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where the apps come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// `pm2 start FILE`: fresh created_at values, so PM2's guard works.
    Ecosystem { path: PathBuf },
    /// A validated dump (dump.pm2, dump.pm2.bak, or one kept in a backup).
    Dump {
        path: PathBuf,
        label: String,
        apps: usize,
    },
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Ecosystem { path } => format!("ecosystem file {}", path.display()),
            Source::Dump { path, label, apps } => {
                format!("{label} ({apps} apps, {})", path.display())
            }
        }
    }
}

/// A dump that parses as a non-empty list of valid apps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub path: PathBuf,
    pub label: String,
    pub apps: usize,
    pub mtime: Option<String>,
}

fn valid_dump(p: &Path) -> Option<(usize, Option<std::time::SystemTime>)> {
    let entry = crate::home::inspect(p, p.parent()?);
    let crate::home::Entry::File(meta) = &entry else {
        return None;
    };
    match crate::dump::parse_entry_file(p, &entry) {
        DumpParse::Apps { entries, .. }
            if !entries.is_empty() && entries.iter().all(|e| entry_problems(e).is_empty()) =>
        {
            Some((entries.len(), meta.mtime))
        }
        _ => None,
    }
}

/// Every valid dump, newest first: dump.pm2, dump.pm2.bak, and the dumps
/// kept in pm2-doctor's backups of this home.
pub fn candidates(cfg: &Config, backup_home: Option<&Path>) -> Vec<Candidate> {
    let mut out: Vec<(std::time::SystemTime, Candidate)> = Vec::new();
    // `recorded` is the original file's time for a copy kept in a backup
    // (the copy's own mtime is when the backup was taken).
    let push = |p: &Path,
                label: String,
                recorded: Option<std::time::SystemTime>,
                out: &mut Vec<(std::time::SystemTime, Candidate)>| {
        if let Some((apps, own)) = valid_dump(p) {
            let mtime = recorded.or(own);
            let t = mtime.unwrap_or(std::time::UNIX_EPOCH);
            out.push((
                t,
                Candidate {
                    path: p.to_path_buf(),
                    label,
                    apps,
                    mtime: mtime.map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339()),
                },
            ));
        }
    };
    push(&cfg.paths.dump, "dump.pm2".into(), None, &mut out);
    push(
        &cfg.paths.dump_backup,
        "dump.pm2.bak".into(),
        None,
        &mut out,
    );
    if let Some(dir) = backup_home {
        for run in crate::repair::undo::list_runs(dir) {
            let Ok(m) = crate::repair::journal::Manifest::load(&run) else {
                continue;
            };
            for f in &m.files {
                let name = f
                    .original
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
                if let (Some(rel), Some(name)) = (&f.backup, name) {
                    let is_dump =
                        f.original == cfg.paths.dump || f.original == cfg.paths.dump_backup;
                    if is_dump {
                        let recorded = f
                            .mtime
                            .as_deref()
                            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                            .map(std::time::SystemTime::from);
                        push(
                            &run.join(rel),
                            format!("backup:{} ({name})", m.run_id),
                            recorded,
                            &mut out,
                        );
                    }
                }
            }
        }
    }
    out.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    out.into_iter().map(|(_, c)| c).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ResurrectError {
    #[error("no valid source: dump.pm2, dump.pm2.bak and the backups hold no valid app list; pass --ecosystem FILE")]
    NoSource,
    #[error("{0}")]
    Source(String),
    #[error("pre-flight failed, nothing was started:\n{}", .0.join("\n"))]
    Preflight(Vec<String>),
    #[error("no pm2 CLI found on PATH; pass --pm2 PATH")]
    NoPm2,
}

/// What the caller asked for.
#[derive(Clone, Debug)]
pub struct Options {
    pub from: Option<String>,
    pub ecosystem: Option<PathBuf>,
    pub pm2: Option<PathBuf>,
    pub watch: Duration,
    pub call_timeout: Duration,
    /// Drop created_at from the dump copy so PM2's restart guard works again.
    pub rearm_guard: bool,
    /// Run `pm2 save` when every app is stable (the old dump is kept first).
    pub save: bool,
    pub backup_base: Option<PathBuf>,
}

/// Resolves `--from` / `--ecosystem` / the newest valid dump.
pub fn choose(cfg: &Config, opts: &Options) -> Result<(Source, String), ResurrectError> {
    if let Some(e) = &opts.ecosystem {
        if !e.is_file() {
            return Err(ResurrectError::Source(format!(
                "{} is not a file",
                e.display()
            )));
        }
        return Ok((
            Source::Ecosystem { path: e.clone() },
            "an ecosystem file was given: `pm2 start` gives every app a fresh created_at".into(),
        ));
    }
    let backup_home = opts
        .backup_base
        .as_ref()
        .map(|b| crate::repair::backup::home_dir_for(b, &cfg.paths.home));
    let all = candidates(cfg, backup_home.as_deref());
    let pick = |c: &Candidate, why: String| {
        (
            Source::Dump {
                path: c.path.clone(),
                label: c.label.clone(),
                apps: c.apps,
            },
            why,
        )
    };
    match opts.from.as_deref() {
        None => all
            .first()
            .map(|c| pick(c, format!("the newest valid dump of {} found", all.len())))
            .ok_or(ResurrectError::NoSource),
        Some("dump") => all
            .iter()
            .find(|c| c.label == "dump.pm2")
            .map(|c| pick(c, "asked for with --from dump".into()))
            .ok_or_else(|| ResurrectError::Source("dump.pm2 is not a valid app list".into())),
        Some(b) if b.starts_with("backup:") => {
            let id = &b["backup:".len()..];
            all.iter()
                .find(|c| c.label.starts_with(&format!("backup:{id} ")))
                .map(|c| pick(c, format!("asked for with --from {b}")))
                .ok_or_else(|| ResurrectError::Source(format!("no valid dump in backup run {id}")))
        }
        Some(file) => {
            let p = PathBuf::from(file);
            match valid_dump(&p) {
                Some((apps, _)) => Ok((
                    Source::Dump {
                        path: p,
                        label: "given file".into(),
                        apps,
                    },
                    "asked for with --from FILE".into(),
                )),
                None => Err(ResurrectError::Source(format!(
                    "{file} is not a valid dump (strict JSON array of apps with name, script, pid path and env)"
                ))),
            }
        }
    }
}

/// Ports the source wants (env PORT-like keys), for the pre-flight.
fn source_ports(source: &Source) -> Vec<(String, u16)> {
    let Source::Dump { path, .. } = source else {
        return Vec::new();
    };
    let entry = crate::home::inspect(path, path.parent().unwrap_or(Path::new("/")));
    match crate::dump::parse_entry_file(path, &entry) {
        DumpParse::Apps { entries, .. } => entries
            .iter()
            .flat_map(|e| {
                let name = e.name.clone().unwrap_or_default();
                match &e.env {
                    crate::dump::EnvShape::Object { ports, .. } => ports
                        .iter()
                        .map(|(_, p)| (name.clone(), *p))
                        .collect::<Vec<_>>(),
                    _ => Vec::new(),
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Everything that must hold before anything is started.
pub fn preflight(
    cfg: &Config,
    g: &Gathered,
    d: &diagnose::Diagnosis,
    source: &Source,
) -> Vec<String> {
    let mut problems = Vec::new();
    // Without the table no daemon, ghost or orphan of the home can be ruled
    // out, and starting apps next to one is how duplicates are made.
    if let Some(why) = &g.procs.unreadable {
        problems.push(format!(
            "{why}; whether a daemon or orphan of this home runs cannot be told"
        ));
    }
    for f in &d.verdict.findings {
        let blocking = matches!(
            f.check,
            CheckId::DaemonUnresponsive
                | CheckId::DaemonDuplicate
                | CheckId::ProcessOrphan
                | CheckId::SocketNotASocket
        );
        if blocking {
            problems.push(format!(
                "{}: {} (run `pm2-doctor repair` first)",
                f.check, f.summary
            ));
        }
    }
    let ports = source_ports(source);
    let wanted: Vec<u16> = ports.iter().map(|(_, p)| *p).collect();
    let holders = diagnose::listeners_of(cfg, &g.procs, &wanted);
    // An app the live daemon already runs holds its own port: `pm2
    // resurrect` skips names already running, so that is no obstacle.
    let reported = diagnose::reported_pids(&g.daemon);
    let managed = |pid: &u32| {
        reported.contains(pid)
            || g.membership.daemons.contains(pid)
            || g.membership
                .members
                .get(pid)
                .is_some_and(|m| m.managed_by.is_some())
    };
    for (app, port) in &ports {
        for pid in holders
            .get(port)
            .into_iter()
            .flatten()
            .filter(|p| !managed(p))
        {
            let who = g
                .procs
                .get(*pid)
                .map(|p| format!("pid {pid} ({})", p.cmdline()))
                .unwrap_or_else(|| format!("pid {pid}"));
            problems.push(format!("port {port} that {app} wants is held by {who}"));
        }
    }
    if let Source::Dump { path, .. } = source {
        if path == &cfg.paths.dump {
            if let Some(f) = d
                .verdict
                .findings
                .iter()
                .find(|f| f.check == CheckId::DumpMissingScript)
            {
                problems.push(format!("{}: {}", f.check, f.summary));
            }
        } else if let DumpParse::Apps { entries, .. } = crate::dump::parse_entry_file(
            path,
            &crate::home::inspect(path, path.parent().unwrap_or(Path::new("/"))),
        ) {
            for e in entries {
                if let Some(s) = e
                    .pm_exec_path
                    .as_deref()
                    .filter(|s| Path::new(s).is_absolute())
                {
                    if matches!(std::fs::symlink_metadata(s), Err(err) if err.kind() == std::io::ErrorKind::NotFound)
                    {
                        problems.push(format!(
                            "the script of {} ({s}) does not exist",
                            e.name.unwrap_or_default()
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// One `pm2` call, bounded, with this home and captured output.
#[derive(Clone, Debug, Serialize)]
pub struct Call {
    pub args: Vec<String>,
    pub status: Option<i32>,
    pub output: String,
    pub timed_out: bool,
}

fn pm2_call(
    pm2: &Path,
    cfg: &Config,
    args: &[&str],
    extra_env: &[(&str, &Path)],
    deadline: Duration,
) -> Call {
    let mut cmd = Command::new(pm2);
    cmd.args(args).env("PM2_HOME", &cfg.paths.home);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let args_v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    match crate::bounded::run(cmd, deadline) {
        Ok(o) => Call {
            args: args_v,
            status: o.status,
            output: format!("{}{}", o.stdout, o.stderr),
            timed_out: false,
        },
        Err(e) => Call {
            args: args_v,
            status: None,
            output: e.to_string(),
            timed_out: matches!(e, crate::bounded::RunError::Deadline { .. }),
        },
    }
}

/// An app's state after the watch window.
#[derive(Clone, Debug, Serialize)]
pub struct Settled {
    pub app: String,
    pub status: Option<String>,
    pub restarts_during_watch: u64,
    pub stable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub source: Source,
    pub why: String,
    pub dump_copy: Option<PathBuf>,
    pub calls: Vec<Call>,
    pub apps: Vec<Settled>,
    pub saved: bool,
    pub notes: Vec<String>,
    pub exit_code: i32,
}

/// Copies a validated dump for PM2 to read, optionally without created_at.
fn stage_copy(src: &Path, dir: &Path, rearm: bool) -> anyhow::Result<PathBuf> {
    let (bytes, _) = crate::home::read_capped(src, crate::dump::DUMP_CAP)?;
    let bytes = if rearm {
        let mut v: serde_json::Value = serde_json::from_slice(&bytes)?;
        for e in v.as_array_mut().into_iter().flatten() {
            if let Some(o) = e.as_object_mut() {
                o.remove("created_at");
            }
        }
        serde_json::to_vec(&v)?
    } else {
        bytes
    };
    crate::repair::backup::create_private_dir(dir)?;
    let dest = dir.join("resurrect-dump.json");
    crate::repair::journal::write_atomic(&dest, &bytes, Some(0o600))?;
    Ok(dest)
}

fn monitor(cfg: &Config) -> Option<Vec<crate::probe::MonitoredApp>> {
    match probe::probe(&cfg.paths.rpc, cfg.timeout) {
        ProbeOutcome::Answered(r) => r.apps,
        _ => None,
    }
}

/// Starts the apps from `source` and watches them. Refuses before starting
/// anything when the pre-flight fails.
pub fn run(cfg: &Config, opts: &Options, source: Source, why: String) -> anyhow::Result<Outcome> {
    let clock = Instant::now();
    let started = chrono::Utc::now();
    let g = diagnose::gather(cfg)?;
    let d = diagnose::evaluate(cfg, &g, started, clock);
    let problems = preflight(cfg, &g, &d, &source);
    if !problems.is_empty() {
        return Err(ResurrectError::Preflight(problems).into());
    }
    let pm2 = match &opts.pm2 {
        Some(p) => p.clone(),
        None => g
            .cli
            .as_ref()
            .map(|c| c.bin.clone())
            .ok_or(ResurrectError::NoPm2)?,
    };
    let mut out = Outcome {
        source: source.clone(),
        why,
        dump_copy: None,
        calls: Vec::new(),
        apps: Vec::new(),
        saved: false,
        notes: Vec::new(),
        exit_code: 0,
    };
    let t = opts.call_timeout;
    // This resurrect's own folder: the copy PM2 reads, and the dumps kept
    // before a `pm2 save`.
    let base = opts
        .backup_base
        .clone()
        .or_else(|| crate::repair::backup::default_base(None))
        .unwrap_or_else(std::env::temp_dir);
    let dir = crate::repair::backup::home_dir_for(&base, &cfg.paths.home)
        .join("resurrect")
        .join(started.format("%Y%m%dT%H%M%S%3fZ").to_string());
    // Staged before anything runs: a failure here has started nothing.
    if let Source::Dump { path, .. } = &source {
        out.dump_copy = Some(stage_copy(path, &dir, opts.rearm_guard)?);
    }
    // Start (or reach) the daemon with the normal environment first.
    out.calls.push(pm2_call(&pm2, cfg, &["ping"], &[], t));
    match (&source, &out.dump_copy) {
        (Source::Ecosystem { path }, _) => {
            let p = path.display().to_string();
            out.calls.push(pm2_call(&pm2, cfg, &["start", &p], &[], t));
        }
        (Source::Dump { .. }, Some(copy)) => {
            let copy = copy.clone();
            out.calls.push(pm2_call(
                &pm2,
                cfg,
                &["resurrect"],
                &[("PM2_DUMP_FILE_PATH", &copy)],
                t,
            ));
        }
        (Source::Dump { .. }, None) => {}
    }
    if out.calls.iter().any(|c| c.timed_out) {
        out.notes
            .push("a pm2 call passed its deadline and was killed".into());
        out.exit_code = 8;
        return Ok(out);
    }
    // Watch: restarts counted from the first look after the start.
    let first = monitor(cfg).unwrap_or_default();
    let deadline = Instant::now() + opts.watch;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500).min(opts.watch));
    }
    let last = monitor(cfg);
    let Some(last) = last else {
        out.notes
            .push("the daemon did not answer after the start".into());
        out.exit_code = 4;
        return Ok(out);
    };
    for a in &last {
        let name = a.name.clone().unwrap_or_default();
        let before = first
            .iter()
            .find(|b| b.pm_id == a.pm_id)
            .and_then(|b| b.pm2_env.restart_time)
            .unwrap_or(0);
        let now = a.pm2_env.restart_time.unwrap_or(0);
        let restarts = now.saturating_sub(before);
        let online = a.pm2_env.status.as_deref() == Some("online");
        let stable = online && restarts == 0;
        let label = match a.pm_id {
            Some(id) => format!("{name}:{id}"),
            None => name.clone(),
        };
        let cause = if stable {
            None
        } else {
            let app = crate::apps::AppView::from_daemon(a);
            crate::logs::error_tail(&cfg.paths, &app)
                .and_then(Result::ok)
                .and_then(|t| crate::logs::latest_cause(&t).map(|(c, _)| c.label()))
        };
        out.apps.push(Settled {
            app: label,
            status: a.pm2_env.status.clone(),
            restarts_during_watch: restarts,
            stable,
            cause,
        });
    }
    let all_stable = !out.apps.is_empty() && out.apps.iter().all(|a| a.stable);
    if !all_stable {
        out.exit_code = 4;
    } else if opts.save {
        // Keep the current dumps before pm2 overwrites them; no copy, no save.
        let kept = crate::repair::backup::create_private_dir(&dir).and_then(|_| {
            for p in [&cfg.paths.dump, &cfg.paths.dump_backup] {
                if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()) {
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    std::fs::copy(p, dir.join(format!("before-save-{name}")))?;
                }
            }
            Ok(())
        });
        match kept {
            Ok(()) => {
                let c = pm2_call(&pm2, cfg, &["save"], &[], t);
                out.saved = c.status == Some(0);
                out.calls.push(c);
            }
            Err(e) => out.notes.push(format!(
                "pm2 save not run: the current dump could not be kept first ({e})"
            )),
        }
    }
    if d.count(Severity::Error) > 0 {
        out.notes.push(
            "diagnose still reported errors before the start; see `pm2-doctor diagnose`".into(),
        );
    }
    Ok(out)
}
