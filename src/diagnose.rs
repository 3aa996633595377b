//! One diagnosis run: snapshots in, a [`Diagnosis`] out. Used by the
//! `diagnose` command and, later, by repair to plan and to re-check.

use crate::checks::{self, Context, DaemonView, Verdict};
use crate::config::Config;
use crate::findings::{CheckStatus, Severity};
use crate::home::{HomeSnapshot, Pm2Paths};
use crate::ownership::{HomeMatcher, Membership};
use crate::pm2cli::{self, Pm2Cli};
use crate::probe::{self, ProbeOutcome};
use crate::process::{FileSource, ProcessSource};
use serde::Serialize;
use std::time::{Instant, SystemTime};

/// Restart counts per app, for monitoring output.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AppStat {
    pub name: String,
    pub pm_id: Option<u64>,
    pub status: Option<String>,
    pub restarts: Option<u64>,
    /// From the starts pm2.log's tail records, when there are two or more.
    pub restarts_per_minute: Option<f64>,
    /// `daemon` (live getMonitorData) or `dump` (saved state).
    pub source: &'static str,
}

#[derive(Clone, Debug)]
pub struct Diagnosis {
    pub paths: Pm2Paths,
    pub verdict: Verdict,
    pub daemon: DaemonView,
    /// Live daemons of this home.
    pub daemon_pids: Vec<u32>,
    pub apps: Vec<AppStat>,
    pub cli: Option<Pm2Cli>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: u64,
    /// Other homes whose daemons share this home's endpoints (Windows).
    pub other_homes: Vec<crate::platform::windows::OtherHome>,
    /// Why the process table could not be read, when it could not.
    pub procs_unreadable: Option<String>,
}

/// Exit-code bits, summed like fsck's.
pub mod exit {
    pub const OK: i32 = 0;
    pub const PROBLEMS: i32 = 4;
    pub const INCOMPLETE: i32 = 8;
    pub const USAGE: i32 = 16;
}

impl Diagnosis {
    pub fn exit_code(&self, strict: bool) -> i32 {
        let mut code = exit::OK;
        let counts = |f: &&crate::findings::Finding| {
            f.severity == Severity::Error || (strict && f.severity == Severity::Warning)
        };
        if self.verdict.findings.iter().any(|f| counts(&f)) {
            code += exit::PROBLEMS;
        }
        let incomplete = self.verdict.results.iter().any(|r| {
            r.status == CheckStatus::Unknown
                || (r.status == CheckStatus::Problem && r.reason.is_some())
        });
        if incomplete {
            code += exit::INCOMPLETE;
        }
        code
    }

    pub fn count(&self, sev: Severity) -> usize {
        self.verdict
            .findings
            .iter()
            .filter(|f| f.severity == sev)
            .count()
    }
}

/// Everything read from the system for one run: the snapshots the checks
/// look at. Reading is all done here; checks only compute.
pub struct Gathered {
    pub home: HomeSnapshot,
    pub procs: crate::process::ProcessSnapshot,
    pub matcher: HomeMatcher,
    pub membership: Membership,
    pub daemon: DaemonView,
    pub cli: Option<Pm2Cli>,
    pub apps: Vec<crate::apps::AppView>,
    pub logs: crate::logs::LogSnapshot,
    pub listeners: std::collections::HashMap<u16, Vec<u32>>,
    /// The ecosystem lint, or why none ran.
    pub lint: Result<crate::lint::LintReport, String>,
}

/// Lints `--ecosystem FILE`, else an ecosystem file found next to the apps
/// when that is unambiguous. A JavaScript file found that way is not run
/// (that would execute user code unasked); it is named instead.
fn ecosystem_lint(cfg: &Config, home: &HomeSnapshot) -> Result<crate::lint::LintReport, String> {
    let opts = crate::lint::LintOptions {
        timeout: cfg.timeout.max(std::time::Duration::from_secs(5)),
        ..crate::lint::LintOptions::default()
    };
    if let Some(f) = &cfg.ecosystem {
        return Ok(crate::lint::lint(f, &opts));
    }
    let cwds: Vec<std::path::PathBuf> = home
        .dump
        .apps()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.pm_cwd.as_deref().map(std::path::PathBuf::from))
        .collect();
    let Some(found) = crate::lint::find_ecosystem(&cwds) else {
        return Err(
            "no ecosystem file given or found next to the apps: pass --ecosystem FILE".into(),
        );
    };
    let data = matches!(
        found.extension().and_then(|e| e.to_str()),
        Some("json" | "yml" | "yaml")
    );
    if data {
        Ok(crate::lint::lint(&found, &opts))
    } else {
        Err(format!(
            "found {} next to the apps; pass --ecosystem {} to check it (it is evaluated with node)",
            found.display(),
            found.display()
        ))
    }
}

/// Holders of `ports`: from the OS, or from a replayed process table (which
/// carries its own port evidence).
pub fn listeners_of(
    cfg: &Config,
    procs: &crate::process::ProcessSnapshot,
    ports: &[u16],
) -> std::collections::HashMap<u16, Vec<u32>> {
    if ports.is_empty() {
        return Default::default();
    }
    if cfg.process_snapshot.is_none() {
        return crate::process::port_listeners(ports);
    }
    let mut m = std::collections::HashMap::<u16, Vec<u32>>::new();
    for p in procs.procs.values() {
        for port in p.listen_ports.iter().filter(|port| ports.contains(port)) {
            m.entry(*port).or_default().push(p.pid);
        }
    }
    m
}

/// Pids a daemon that answered reported as its apps.
pub fn reported_pids(daemon: &DaemonView) -> std::collections::HashSet<u32> {
    match &daemon.rpc {
        Some(ProbeOutcome::Answered(r)) => r
            .apps
            .iter()
            .flatten()
            .filter_map(|a| a.live_pid())
            .collect(),
        _ => Default::default(),
    }
}

/// How long the process table may take: it is normally read in
/// milliseconds, so this only ends a scan that is stuck.
pub fn scan_deadline(cfg: &Config) -> std::time::Duration {
    cfg.timeout.max(std::time::Duration::from_secs(5))
}

/// Reads the home, the process table, the daemon (bounded) and the logs.
pub fn gather(cfg: &Config) -> anyhow::Result<Gathered> {
    // The daemon's reply is the slowest read (a live daemon measures every
    // app's CPU and memory before it answers `getMonitorData`), so the
    // probes start first and everything that does not need their answer is
    // read while they are under way.
    let probes =
        (HomeSnapshot::home_exists(&cfg.paths.home) && checks_need_probe(cfg)).then(|| {
            (
                probe::start(&cfg.paths.rpc, cfg.timeout),
                probe::start_connect_only(&cfg.paths.publ, cfg.timeout),
            )
        });
    let home = HomeSnapshot::read(&cfg.paths);
    let mut procs = match &cfg.process_snapshot {
        Some(file) => FileSource(file).snapshot()?,
        None => crate::process::system_snapshot_within(scan_deadline(cfg))?,
    };
    let matcher = HomeMatcher::new(&cfg.paths.home);
    let membership = Membership::compute(&procs, &matcher);
    let cli = pm2cli::locate(cfg.pm2_bin.as_deref(), cfg.path_var.as_deref());
    let mut logs = if home.exists {
        crate::logs::LogSnapshot::home_logs(&cfg.paths)
    } else {
        crate::logs::LogSnapshot::default()
    };
    let lint = if home.exists {
        ecosystem_lint(cfg, &home)
    } else {
        Err("no PM2 home".into())
    };
    let daemon = match probes {
        Some((rpc, publ)) => DaemonView {
            rpc: Some(rpc.wait()),
            publ: Some(publ.wait()),
        },
        None => DaemonView {
            rpc: None,
            publ: None,
        },
    };
    let daemon_apps = match &daemon.rpc {
        Some(ProbeOutcome::Answered(r)) => r.apps.as_deref(),
        _ => None,
    };
    let apps = crate::apps::collect(daemon_apps, home.dump.apps());
    if home.exists {
        logs.add_apps(&cfg.paths, &apps, &cfg.loops);
    }
    // Ports are only traced where a finding needs them: the ports orphans
    // hold, and the owners of ports failing apps want.
    let wanted: Vec<u16> = crate::apps::failing_ports(&apps, &logs);
    let listeners = if cfg.process_snapshot.is_some() {
        listeners_of(cfg, &procs, &wanted)
    } else {
        let reported = reported_pids(&daemon);
        let orphans: Vec<u32> = membership
            .orphans(&procs, &reported)
            .map(|m| m.pid)
            .collect();
        let (by_pid, by_port) = crate::process::socket_table(&orphans, &wanted);
        for (pid, ports) in by_pid {
            if let Some(p) = procs.procs.get_mut(&pid) {
                p.listen_ports = ports;
            }
        }
        by_port
    };
    Ok(Gathered {
        lint,
        home,
        procs,
        matcher,
        membership,
        daemon,
        cli,
        apps,
        logs,
        listeners,
    })
}

/// Runs every selected check against the home in `cfg`. Reads only.
pub fn run(cfg: &Config) -> anyhow::Result<Diagnosis> {
    let clock = Instant::now();
    let started_at = chrono::Utc::now();
    let g = gather(cfg)?;
    Ok(evaluate(cfg, &g, started_at, clock))
}

/// The checks over what [`gather`] read.
pub fn evaluate(
    cfg: &Config,
    g: &Gathered,
    started_at: chrono::DateTime<chrono::Utc>,
    clock: Instant,
) -> Diagnosis {
    let ctx = Context {
        home: &g.home,
        procs: &g.procs,
        membership: &g.membership,
        matcher: &g.matcher,
        daemon: &g.daemon,
        cli: g.cli.as_ref(),
        cli_requested: cfg.pm2_bin.as_deref(),
        apps: &g.apps,
        logs: &g.logs,
        listeners: &g.listeners,
        log_limit: cfg.log_limit,
        loops: cfg.loops,
        lint: g.lint.as_ref().ok(),
        lint_skipped: g.lint.as_ref().err().map(String::as_str),
        now: SystemTime::now(),
    };
    let verdict = checks::run(&ctx, &|id| cfg.selected(id));
    let apps = app_stats(&g.apps, &g.logs);
    Diagnosis {
        paths: cfg.paths.clone(),
        verdict,
        daemon_pids: g.membership.daemons.clone(),
        daemon: g.daemon.clone(),
        apps,
        cli: g.cli.clone(),
        started_at,
        duration_ms: clock.elapsed().as_millis() as u64,
        other_homes: cfg.other_homes.clone(),
        procs_unreadable: g.procs.unreadable.clone(),
    }
}

fn checks_need_probe(cfg: &Config) -> bool {
    crate::findings::CheckId::ALL
        .iter()
        .any(|id| cfg.selected(*id) && checks::needs_probe(*id))
}

/// Per-app numbers for monitoring, from the same app view the checks use,
/// with the restart rate pm2.log's tail shows.
fn app_stats(apps: &[crate::apps::AppView], logs: &crate::logs::LogSnapshot) -> Vec<AppStat> {
    let tail = logs.pm2_log.as_ref().and_then(|r| r.as_ref().ok());
    let rates = crate::logs::restart_rates(tail);
    apps.iter()
        .map(|a| {
            let rate = crate::logs::rate_for(&rates, &a.label(), &a.name)
                .and_then(|&(n, first, last)| crate::logs::per_minute(n, first, last));
            AppStat {
                name: a.name.clone(),
                pm_id: a.pm_id,
                status: a.status.clone(),
                restarts: a.restart_time,
                restarts_per_minute: rate.map(|r| (r * 100.0).round() / 100.0),
                source: a.source,
            }
        })
        .collect()
}
