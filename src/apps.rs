//! One view of each app, from the live daemon when it answered, else from
//! the saved dump: what the crash-loop and port checks reason about.

use crate::dump::{DumpEntry, EnvShape};
use crate::probe::MonitoredApp;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppView {
    pub name: String,
    pub pm_id: Option<u64>,
    /// `daemon` (live getMonitorData) or `dump` (saved state).
    pub source: &'static str,
    pub pid: Option<u32>,
    pub status: Option<String>,
    pub restart_time: Option<u64>,
    pub unstable_restarts: Option<u64>,
    pub created_at: Option<u64>,
    /// When the current process started (ms since the epoch), from the daemon.
    pub pm_uptime: Option<u64>,
    pub max_restarts: Option<u64>,
    pub min_uptime: Option<u64>,
    pub restart_delay: Option<u64>,
    pub exp_backoff_restart_delay: Option<u64>,
    pub err_log: Option<PathBuf>,
    pub out_log: Option<PathBuf>,
    /// Ports named by PORT-like env keys.
    pub env_ports: Vec<(String, u16)>,
}

fn ports(env: &EnvShape) -> Vec<(String, u16)> {
    match env {
        EnvShape::Object { ports, .. } => ports.clone(),
        _ => Vec::new(),
    }
}

impl AppView {
    pub fn from_daemon(a: &MonitoredApp) -> AppView {
        let e = &a.pm2_env;
        AppView {
            name: a.name.clone().unwrap_or_default(),
            pm_id: a.pm_id,
            source: "daemon",
            pid: a.live_pid(),
            status: e.status.clone(),
            restart_time: e.restart_time,
            unstable_restarts: e.unstable_restarts,
            created_at: e.created_at,
            pm_uptime: e.pm_uptime,
            max_restarts: e.max_restarts,
            min_uptime: e.min_uptime,
            restart_delay: e.restart_delay,
            exp_backoff_restart_delay: e.exp_backoff_restart_delay,
            err_log: e.pm_err_log_path.as_deref().map(PathBuf::from),
            out_log: e.pm_out_log_path.as_deref().map(PathBuf::from),
            env_ports: ports(&e.env),
        }
    }

    pub fn from_dump(e: &DumpEntry) -> AppView {
        AppView {
            name: e.name.clone().unwrap_or_default(),
            pm_id: None,
            source: "dump",
            pid: None,
            status: e.status.clone(),
            restart_time: e.restart_time,
            unstable_restarts: e.unstable_restarts,
            created_at: e.created_at,
            pm_uptime: None,
            max_restarts: e.max_restarts,
            min_uptime: e.min_uptime,
            restart_delay: e.restart_delay,
            exp_backoff_restart_delay: e.exp_backoff_restart_delay,
            err_log: e.pm_err_log_path.as_deref().map(PathBuf::from),
            out_log: e.pm_out_log_path.as_deref().map(PathBuf::from),
            env_ports: ports(&e.env),
        }
    }

    pub fn label(&self) -> String {
        match self.pm_id {
            Some(id) => format!("{}:{id}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The apps of a home: the daemon's list when it answered, else the dump's.
pub fn collect(daemon: Option<&[MonitoredApp]>, dump: Option<&[DumpEntry]>) -> Vec<AppView> {
    match daemon {
        Some(apps) => apps.iter().map(AppView::from_daemon).collect(),
        None => dump
            .unwrap_or_default()
            .iter()
            .filter(|e| !e.not_an_object)
            .map(AppView::from_dump)
            .collect(),
    }
}

/// Ports apps are failing on: from "address in use" in their error logs,
/// and the PORT-like env of the crash-looping apps (those whose error log
/// was read).
pub fn failing_ports(apps: &[AppView], logs: &crate::logs::LogSnapshot) -> Vec<u16> {
    let mut out: Vec<u16> = logs
        .app_errors
        .values()
        .filter_map(|t| t.as_ref().ok())
        .filter_map(|t| match crate::logs::latest_cause(t)?.0 {
            crate::logs::Cause::AddressInUse { port } => port,
            _ => None,
        })
        .chain(
            apps.iter()
                .filter(|a| logs.app_errors.contains_key(&a.label()))
                .flat_map(|a| a.env_ports.iter().map(|(_, p)| *p)),
        )
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// One port an app wants, and where that was learned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WantedPort {
    pub app: String,
    pub port: u16,
    /// `env:PORT`, `error-log`.
    pub source: String,
}

/// Every port the apps want: env PORT-like keys and ports in their error logs.
pub fn wanted_ports(apps: &[AppView], logs: &crate::logs::LogSnapshot) -> Vec<WantedPort> {
    let mut out = Vec::new();
    for a in apps {
        for (k, p) in &a.env_ports {
            out.push(WantedPort {
                app: a.label(),
                port: *p,
                source: format!("env:{k}"),
            });
        }
        if let Some(Ok(t)) = logs.app_errors.get(&a.label()) {
            if let Some((crate::logs::Cause::AddressInUse { port: Some(p) }, _)) =
                crate::logs::latest_cause(t)
            {
                if !out
                    .iter()
                    .any(|w: &WantedPort| w.app == a.label() && w.port == p)
                {
                    out.push(WantedPort {
                        app: a.label(),
                        port: p,
                        source: "error-log".into(),
                    });
                }
            }
        }
    }
    out
}

/// Restart counts at or above this are a crash loop whatever the log says
/// (the seed incident had 3,446).
pub const CRASH_LOOP_RESTARTS: u64 = 50;
/// pm2.log starts of one app within the tail that make a loop...
pub const LOOP_MIN_STARTS: usize = 5;
/// ...when they come at least this often.
pub const LOOP_MIN_PER_MINUTE: f64 = 1.0;
/// A live app online for this long since its last start is not looping.
pub const SETTLED_SECS: u64 = 60;

/// When an app counts as crash-looping; the defaults are the constants
/// above, `diagnose --loop-restarts/--loop-rate` change them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoopThresholds {
    pub restarts: u64,
    pub min_starts: usize,
    pub per_minute: f64,
    pub settled_secs: u64,
}

impl Default for LoopThresholds {
    fn default() -> Self {
        LoopThresholds {
            restarts: CRASH_LOOP_RESTARTS,
            min_starts: LOOP_MIN_STARTS,
            per_minute: LOOP_MIN_PER_MINUTE,
            settled_secs: SETTLED_SECS,
        }
    }
}

/// Why an app counts as crash-looping.
pub struct LoopVerdict {
    pub errored: bool,
    /// pm2.log starts: (count, first, last, per minute).
    pub rate: Option<(usize, i64, i64, f64)>,
    /// The rate alone makes it a loop.
    pub fast: bool,
}

/// `Some` when the app is crash-looping: `errored`, restarting fast in
/// pm2.log, or restarted at least `t.restarts` times. An app the live
/// daemon reports online for `t.settled_secs` is not looping now, whatever
/// its history says.
pub fn loop_verdict(
    app: &AppView,
    rates: &std::collections::BTreeMap<String, (usize, i64, i64)>,
    now_secs: u64,
    t: &LoopThresholds,
) -> Option<LoopVerdict> {
    let restarts = app.restart_time.unwrap_or(0);
    let errored = app.status.as_deref() == Some("errored");
    let rate = crate::logs::rate_for(rates, &app.label(), &app.name)
        .and_then(|&(n, a, b)| crate::logs::per_minute(n, a, b).map(|r| (n, a, b, r)));
    let fast = rate.is_some_and(|(n, _, _, r)| n >= t.min_starts && r >= t.per_minute);
    let settled = app.source == "daemon"
        && app.status.as_deref() == Some("online")
        && app
            .pm_uptime
            .is_some_and(|ms| now_secs.saturating_sub(ms / 1000) >= t.settled_secs);
    (!settled && (errored || fast || restarts >= t.restarts)).then_some(LoopVerdict {
        errored,
        rate,
        fast,
    })
}
