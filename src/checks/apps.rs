//! Crash loops: which app keeps restarting, why (from its error log), whether
//! PM2 will ever stop it, and which process holds the port it wants.

use super::{iso, Context, Sink};
use crate::apps::{loop_verdict, AppView, LoopVerdict};
use crate::findings::{CheckId, Finding, Fix, Safety};
use crate::logs::{self, Cause, TailLine};

/// PM2's defaults (lib/God.js): the guard needs max_restarts unstable exits.
const DEFAULT_MAX_RESTARTS: u64 = 16;
const DEFAULT_MIN_UPTIME_MS: u64 = 1000;

fn quote(file: &std::path::Path, l: &TailLine) -> serde_json::Value {
    let mut q =
        serde_json::json!({"file": file.display().to_string(), "offset": l.offset, "text": l.text});
    if let Some(n) = l.line {
        q["line"] = n.into();
    }
    q
}

/// The cause from the app's error log, with the quoted lines.
fn cause_of(ctx: &Context, app: &AppView) -> Option<(Cause, Vec<serde_json::Value>)> {
    let tail = ctx.logs.app_errors.get(&app.label())?.as_ref().ok()?;
    let (cause, lines) = logs::latest_cause(tail)?;
    Some((cause, lines.iter().map(|l| quote(&tail.path, l)).collect()))
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    if ctx.apps.is_empty() {
        for id in [
            CheckId::AppCrashLoop,
            CheckId::AppGuardBypassed,
            CheckId::AppPortConflict,
        ] {
            sink.skip(id, "no apps known (no daemon answered and no dump)");
        }
        return;
    }
    let pm2_tail = ctx.logs.pm2_log.as_ref().and_then(|r| r.as_ref().ok());
    let rates = logs::restart_rates(pm2_tail);
    for (label, e) in &ctx.logs.app_errors {
        if let Err(why) = e {
            sink.unknown(
                CheckId::AppCrashLoop,
                format!("cannot read the error log of {label}: {why}"),
            );
        }
    }
    for app in ctx.apps {
        let label = app.label();
        let restarts = app.restart_time.unwrap_or(0);
        let Some(LoopVerdict {
            errored,
            rate,
            fast,
        }) = loop_verdict(app, &rates, super::unix_secs(ctx.now), &ctx.loops)
        else {
            continue;
        };
        let cause = cause_of(ctx, app);
        let why = cause
            .as_ref()
            .map(|(c, _)| format!(": {}", c.label()))
            .unwrap_or_default();
        let summary = if errored {
            format!(
                "app {label} crashed until PM2 gave up on it (errored, {restarts} restarts){why}"
            )
        } else if let Some((_, _, _, r)) = rate.filter(|_| fast) {
            format!("app {label} is crash-looping, restarting {r:.1} times a minute ({restarts} restarts so far){why}")
        } else {
            format!("app {label} has restarted {restarts} times{why}")
        };
        let fix = match &cause {
            Some((Cause::AddressInUse { .. }, _)) => Fix::new(
                "free-the-port",
                Safety::Manual,
                "find and stop the process holding the port (see app.port-conflict), then restart the app",
            ),
            Some((Cause::ModuleNotFound, _)) => Fix::new(
                "fix-deployment",
                Safety::Manual,
                "reinstall the app's dependencies or fix its script path, then restart it",
            ),
            Some((Cause::OutOfMemory, _)) => Fix::new(
                "raise-memory",
                Safety::Manual,
                "raise the app's heap (node_args --max-old-space-size) or max_memory_restart, or fix the leak",
            ),
            _ => Fix::new(
                "read-error-log",
                Safety::Manual,
                "read the app's error log for the cause; `pm2 stop NAME` stops the loop meanwhile",
            ),
        };
        let mut f = Finding::new(CheckId::AppCrashLoop, summary, fix)
            .with("app", app.name.clone())
            .with_opt("pm_id", app.pm_id)
            .with("source", app.source)
            .with("restart_time", restarts)
            .with_opt("status", app.status.clone())
            .with_opt("unstable_restarts", app.unstable_restarts);
        if let Some((n, a, b, r)) = rate {
            f = f
                .with("restarts_in_pm2_log", n)
                .with("restarts_per_minute", (r * 10.0).round() / 10.0)
                .with("first_restart", iso(a.max(0) as u64))
                .with("last_restart", iso(b.max(0) as u64));
        }
        if let Some((c, quotes)) = &cause {
            f = f
                .with("cause", serde_json::to_value(c).unwrap_or_default())
                .with("quotes", quotes.clone());
        }
        sink.push(f);
        if !errored {
            guard(sink, app, &label);
        }
        if let Some((Cause::AddressInUse { port }, quotes)) = &cause {
            let port = port.or_else(|| match app.env_ports.as_slice() {
                [(_, p)] => Some(*p),
                _ => None,
            });
            port_conflict(ctx, sink, app, &label, port, quotes);
        }
    }
}

/// PM2 stops a loop only after max_restarts exits each within min_uptime
/// of the start, counted only within min_uptime*max_restarts of
/// created_at. A resurrected app keeps its old created_at, and a
/// restart_delay keeps every exit "stable": then nothing stops it.
fn guard(sink: &mut Sink, app: &AppView, label: &str) {
    let unstable = app.unstable_restarts.unwrap_or(0);
    let delay =
        app.restart_delay.unwrap_or(0) > 0 || app.exp_backoff_restart_delay.unwrap_or(0) > 0;
    let max = app.max_restarts.unwrap_or(DEFAULT_MAX_RESTARTS);
    let restarts = app.restart_time.unwrap_or(0);
    if !(delay || (unstable == 0 && restarts >= max)) {
        return;
    }
    let window_ms = app.min_uptime.unwrap_or(DEFAULT_MIN_UPTIME_MS) * max;
    let why = if delay {
        "a restart delay is set, so PM2 keeps waiting and restarting and never marks it errored"
            .to_string()
    } else {
        format!(
            "it restarted {restarts} times yet PM2 counted 0 unstable restarts: its created_at is older than the {} s guard window (a resurrected app keeps its old one), so max_restarts ({max}) can never trigger",
            window_ms / 1000
        )
    };
    sink.push(
        Finding::new(
            CheckId::AppGuardBypassed,
            format!("PM2 will never stop the crash loop of {label} by itself: {why}"),
            Fix::new(
                "rearm-restart-guard",
                Safety::Manual,
                "restart the app with `pm2 restart NAME` (resets created_at) or start it from its ecosystem file; drop restart_delay or set exp_backoff with max_restarts",
            ),
        )
        .with("app", app.name.clone())
        .with_opt("pm_id", app.pm_id)
        .with("restart_time", restarts)
        .with("unstable_restarts", unstable)
        .with("max_restarts", max)
        .with_opt("created_at", app.created_at.map(|ms| iso(ms / 1000)))
        .with_opt("restart_delay", app.restart_delay)
        .with_opt("exp_backoff_restart_delay", app.exp_backoff_restart_delay),
    );
}

fn port_conflict(
    ctx: &Context,
    sink: &mut Sink,
    app: &AppView,
    label: &str,
    port: Option<u16>,
    quotes: &[serde_json::Value],
) {
    let id = CheckId::AppPortConflict;
    let Some(port) = port else {
        sink.unknown(id, format!("{label} fails with 'address in use' but neither its log nor its env names the port"));
        return;
    };
    let holders: Vec<u32> = ctx
        .listeners
        .get(&port)
        .map(|v| v.iter().copied().filter(|p| Some(*p) != app.pid).collect())
        .unwrap_or_default();
    let base = |summary: String, fix: Fix| {
        Finding::new(id, summary, fix)
            .with("app", app.name.clone())
            .with_opt("pm_id", app.pm_id)
            .with("port", port)
            .with("quotes", quotes.to_vec())
    };
    let Some(holder) = holders.first().and_then(|p| ctx.procs.get(*p)) else {
        // Nobody else listens (or only the app itself, now that it runs):
        // the conflict is over; the crash-loop finding keeps the history.
        if !cfg!(target_os = "linux") && ctx.listeners.is_empty() {
            sink.unknown(
                id,
                format!("port owners are not read on this platform yet (port {port} of {label})"),
            );
        }
        return;
    };
    let kind = if ctx.membership.members.contains_key(&holder.pid) {
        let m = &ctx.membership.members[&holder.pid];
        if m.managed_by.is_none() && !ctx.reported_pids().contains(&holder.pid) {
            "an orphan of this home"
        } else {
            "another app of this home"
        }
    } else if ctx.membership.daemons.contains(&holder.pid) {
        "this home's daemon (cluster mode)"
    } else {
        "a process that is not this home's"
    };
    let fix = if kind == "an orphan of this home" {
        Fix::new(
            "kill-port-holder",
            Safety::Disruptive,
            format!("terminate the orphan {} holding port {port} (re-checking its start time first), then restart {label}", holder.pid),
        )
    } else {
        Fix::new(
            "free-the-port",
            Safety::Manual,
            format!("port {port} is held by {kind} (pid {}): move one of the two apps to another port, or stop that process yourself", holder.pid),
        )
    };
    let f = base(
        format!(
            "{label} cannot bind port {port}: it is held by {kind}, pid {} ({})",
            holder.pid, holder.name
        ),
        fix,
    )
    .with("holder_pid", holder.pid)
    .with("holder_start_time", iso(holder.start_time))
    .with("holder_cmdline", holder.cmdline())
    .with_opt("holder_uid", holder.uid)
    .with("holder_kind", kind);
    sink.push(f);
}
