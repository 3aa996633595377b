//! Checks: pure functions from snapshots to findings. A check never prints,
//! writes, signals or exits; a problem with one file becomes a finding or an
//! `unknown`, never an aborted run.

mod apps;
mod daemon;
mod dump;
mod logs;
mod pidfiles;
mod processes;

use crate::findings::{CheckId, CheckResult, CheckStatus, Finding};
use crate::home::HomeSnapshot;
use crate::ownership::{HomeMatcher, Membership};
use crate::pm2cli::Pm2Cli;
use crate::probe::ProbeOutcome;
use crate::process::ProcessSnapshot;
use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

/// What the probes saw. Gathered before the checks run (probing is I/O).
#[derive(Clone, Debug)]
pub struct DaemonView {
    /// `None` when no check that needs it was selected.
    pub rpc: Option<ProbeOutcome>,
    pub publ: Option<ProbeOutcome>,
}

impl DaemonView {
    /// The process listening on rpc.sock, when the probe connected and the
    /// OS told (Linux).
    pub fn rpc_listener(&self) -> Option<u32> {
        listener(self.rpc.as_ref())
    }

    /// The process listening on pub.sock, likewise.
    pub fn pub_listener(&self) -> Option<u32> {
        listener(self.publ.as_ref())
    }
}

fn listener(probe: Option<&ProbeOutcome>) -> Option<u32> {
    match probe {
        Some(ProbeOutcome::Answered(r)) => r.server_pid,
        Some(ProbeOutcome::Timeout { server_pid, .. }) => *server_pid,
        _ => None,
    }
}

/// Everything a check may look at.
pub struct Context<'a> {
    pub home: &'a HomeSnapshot,
    pub procs: &'a ProcessSnapshot,
    pub membership: &'a Membership,
    pub matcher: &'a HomeMatcher,
    pub daemon: &'a DaemonView,
    pub cli: Option<&'a Pm2Cli>,
    /// The pm2 CLI the user named with `--pm2`, if any.
    pub cli_requested: Option<&'a std::path::Path>,
    pub apps: &'a [crate::apps::AppView],
    pub logs: &'a crate::logs::LogSnapshot,
    /// Processes listening on the ports apps fail to bind.
    pub listeners: &'a std::collections::HashMap<u16, Vec<u32>>,
    /// Size above which a log is reported.
    pub log_limit: u64,
    /// When an app counts as crash-looping.
    pub loops: crate::apps::LoopThresholds,
    /// The ecosystem file's lint, when one ran.
    pub lint: Option<&'a crate::lint::LintReport>,
    /// Why no lint ran.
    pub lint_skipped: Option<&'a str>,
    pub now: SystemTime,
}

impl Context<'_> {
    /// Pids the daemon itself reported as its apps (when it answered).
    pub fn reported_pids(&self) -> HashSet<u32> {
        crate::diagnose::reported_pids(self.daemon)
    }
}

/// Collects findings and per-check notes while the families run.
#[derive(Default)]
pub struct Sink {
    findings: Vec<Finding>,
    unknown: BTreeMap<CheckId, Vec<String>>,
    skipped: BTreeMap<CheckId, String>,
}

impl Sink {
    pub fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }

    /// The check could not finish for (part of) its subject.
    pub fn unknown(&mut self, id: CheckId, reason: impl Into<String>) {
        self.unknown.entry(id).or_default().push(reason.into());
    }

    /// The check does not apply.
    pub fn skip(&mut self, id: CheckId, reason: impl Into<String>) {
        self.skipped.entry(id).or_insert_with(|| reason.into());
    }
}

/// The checks' verdict over one home.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub results: Vec<CheckResult>,
    pub findings: Vec<Finding>,
}

/// Runs every check family and keeps the selected ids.
pub fn run(ctx: &Context, selected: &dyn Fn(CheckId) -> bool) -> Verdict {
    let mut sink = Sink::default();
    if !ctx.home.exists || ctx.home.not_a_dir {
        let what = if ctx.home.not_a_dir {
            "is not a directory"
        } else {
            "does not exist"
        };
        sink.push(
            Finding::new(
                CheckId::HomeMissing,
                format!(
                    "No PM2 home at {}: it {what}, so there is nothing to diagnose",
                    ctx.home.paths.home.display()
                ),
                crate::findings::Fix::new(
                    "none",
                    crate::findings::Safety::Manual,
                    "nothing to fix; pass --home DIR or set PM2_HOME if PM2 runs with another home",
                ),
            )
            .with("home", ctx.home.paths.home.display().to_string())
            .with(
                "resolved_from",
                serde_json::to_value(ctx.home.paths.source).unwrap_or_default(),
            ),
        );
        // Orphans outlive their home: after an `rm -rf ~/.pm2` they still
        // hold their ports, and their environment still names the home.
        for id in CheckId::ALL
            .iter()
            .filter(|id| !matches!(id, CheckId::HomeMissing | CheckId::ProcessOrphan))
        {
            sink.skip(*id, "no PM2 home");
        }
        processes::check(ctx, &mut sink);
    } else {
        daemon::check(ctx, &mut sink);
        pidfiles::check(ctx, &mut sink);
        dump::check(ctx, &mut sink);
        processes::check(ctx, &mut sink);
        apps::check(ctx, &mut sink);
        logs::check(ctx, &mut sink);
        config(ctx, &mut sink);
    }
    if let Some(why) = &ctx.procs.unreadable {
        let home = ctx.home.exists && !ctx.home.not_a_dir;
        blind(&mut sink, why, home);
    }
    finish(sink, selected)
}

/// Checks that conclude from the process table: without one they would
/// call every pid dead and every daemon absent.
const PROCESS_TABLE_IDS: [CheckId; 9] = [
    CheckId::DaemonPidStale,
    CheckId::DaemonPidForeign,
    CheckId::DaemonUnresponsive,
    CheckId::DaemonDuplicate,
    CheckId::DaemonVersionMismatch,
    CheckId::PidfileStale,
    CheckId::PidfileForeign,
    CheckId::ProcessOrphan,
    CheckId::AppPortConflict,
];

/// The process table could not be read: what those checks found from an
/// empty table is dropped and they are `unknown`, with the reason.
/// Without a home only `process.orphan` looks at processes.
fn blind(sink: &mut Sink, why: &str, home: bool) {
    let ids: &[CheckId] = if home {
        &PROCESS_TABLE_IDS
    } else {
        &[CheckId::ProcessOrphan]
    };
    sink.findings.retain(|f| !ids.contains(&f.check));
    for &id in ids {
        sink.skipped.remove(&id);
        sink.unknown.insert(id, vec![why.to_string()]);
    }
}

const CONFIG_IDS: [CheckId; 5] = [
    CheckId::ConfigImplicitCluster,
    CheckId::ConfigRestartPolicy,
    CheckId::ConfigNoLogFiles,
    CheckId::ConfigScriptMissing,
    CheckId::ConfigPortClash,
];

/// The `config.*` checks come from the ecosystem lint.
fn config(ctx: &Context, sink: &mut Sink) {
    match ctx.lint {
        None => {
            for id in CONFIG_IDS {
                sink.skip(id, ctx.lint_skipped.unwrap_or("no ecosystem file"));
            }
        }
        Some(r) if r.status == crate::lint::LintStatus::Unknown => {
            for id in CONFIG_IDS {
                sink.unknown(
                    id,
                    format!(
                        "{} could not be checked: {}",
                        r.file.display(),
                        r.reason.as_deref().unwrap_or("unknown reason")
                    ),
                );
            }
        }
        Some(r) => {
            for f in &r.findings {
                sink.push(f.clone());
            }
        }
    }
}

fn finish(sink: Sink, selected: &dyn Fn(CheckId) -> bool) -> Verdict {
    let findings: Vec<Finding> = sink
        .findings
        .into_iter()
        .filter(|f| selected(f.check))
        .collect();
    let results = CheckId::ALL
        .iter()
        .map(|&id| {
            let (status, reason) = if !selected(id) {
                (CheckStatus::Skipped, Some("not selected".to_string()))
            } else if let Some(r) = sink.skipped.get(&id) {
                (CheckStatus::Skipped, Some(r.clone()))
            } else if findings.iter().any(|f| f.check == id) {
                (
                    CheckStatus::Problem,
                    sink.unknown.get(&id).map(|v| v.join("; ")),
                )
            } else if let Some(r) = sink.unknown.get(&id) {
                (CheckStatus::Unknown, Some(r.join("; ")))
            } else {
                (CheckStatus::Ok, None)
            };
            CheckResult { id, status, reason }
        })
        .collect();
    Verdict { results, findings }
}

/// Checks that need the daemon probe: the others run without touching it.
pub fn needs_probe(id: CheckId) -> bool {
    matches!(
        id,
        CheckId::DaemonUnresponsive
            | CheckId::DaemonVersionMismatch
            | CheckId::SocketStale
            | CheckId::ProcessOrphan
    )
}

/// Human-readable "n seconds/minutes ago" for evidence.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn iso(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| secs.to_string())
}
