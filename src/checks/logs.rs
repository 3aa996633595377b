//! pm2.log and the app logs: size, and the daemon's own errors.

use super::{iso, Context, Sink};
use crate::findings::{CheckId, Finding, Fix, Safety};
use crate::logs::{self, Signature};
use std::collections::BTreeMap;

pub fn check(ctx: &Context, sink: &mut Sink) {
    oversized(ctx, sink);
    daemon_errors(ctx, sink);
}

fn oversized(ctx: &Context, sink: &mut Sink) {
    if let Some(target) = &ctx.logs.logs_dir_outside {
        sink.push(super::daemon::symlink_finding(
            &ctx.home.paths.logs_dir,
            target,
        ));
        sink.unknown(
            CheckId::LogOversized,
            "the logs folder is a symlink out of the home and was not listed",
        );
    }
    let limit = ctx.log_limit;
    for (path, size) in ctx.logs.sizes.iter().filter(|(_, s)| *s > limit) {
        sink.push(
            Finding::new(
                CheckId::LogOversized,
                format!(
                    "{} is {} MiB, over the {} MiB threshold: logs grow without bound and a crash loop fills the disk",
                    path.display(),
                    size / (1024 * 1024),
                    limit / (1024 * 1024)
                ),
                Fix::new(
                    "rotate-logs",
                    Safety::Manual,
                    "copy it aside if you need it, then `pm2 flush` (truncates in place, which is safe: PM2 appends) and install pm2-logrotate",
                ),
            )
            .with("path", path.display().to_string())
            .with("size", *size)
            .with("threshold", limit),
        );
    }
}

/// How often a signature was seen, when last, and the first quoted lines.
type Seen = (usize, Option<i64>, Vec<serde_json::Value>);

fn daemon_errors(ctx: &Context, sink: &mut Sink) {
    let tail = match &ctx.logs.pm2_log {
        None => {
            for id in [CheckId::LogDaemonErrors, CheckId::WindowsWmiDegraded] {
                sink.skip(id, "there is no pm2.log");
            }
            return;
        }
        Some(Err(e)) => {
            for id in [CheckId::LogDaemonErrors, CheckId::WindowsWmiDegraded] {
                sink.unknown(id, format!("cannot read pm2.log: {e}"));
            }
            return;
        }
        Some(Ok(t)) => t,
    };
    // Per signature: count, last timestamp seen, and up to 3 quoted lines.
    let mut seen: BTreeMap<Signature, Seen> = BTreeMap::new();
    let mut last_time = None;
    for l in &tail.lines {
        if let Some(t) = logs::pm2_log_time(&l.text) {
            last_time = Some(t);
        }
        let Some(sig) = logs::signature(&l.text) else {
            continue;
        };
        let e = seen.entry(sig).or_default();
        e.0 += 1;
        e.1 = last_time;
        if e.2.len() < 3 {
            let mut q = serde_json::json!({"file": tail.path.display().to_string(), "offset": l.offset, "text": l.text});
            if let Some(n) = l.line {
                q["line"] = n.into();
            }
            e.2.push(q);
        }
    }
    let describe = |sigs: &[(&Signature, &Seen)]| -> serde_json::Value {
        sigs.iter()
            .map(|(s, (n, t, q))| {
                serde_json::json!({
                    "signature": s,
                    "meaning": s.describe(),
                    "count": n,
                    "latest": t.map(|t| iso(t.max(0) as u64)),
                    "quotes": q,
                })
            })
            .collect::<Vec<_>>()
            .into()
    };
    let all: Vec<_> = seen.iter().collect();
    if !all.is_empty() {
        let total: usize = all.iter().map(|(_, v)| v.0).sum();
        let names: Vec<&str> = all.iter().map(|(s, _)| s.describe()).collect();
        sink.push(
            Finding::new(
                CheckId::LogDaemonErrors,
                format!(
                    "pm2.log's tail records {total} daemon error line(s): {}",
                    names.join("; ")
                ),
                Fix::new(
                    "read-pm2-log",
                    Safety::Manual,
                    "read the quoted lines; a crashed daemon leaves stale state that `pm2-doctor repair` cleans",
                ),
            )
            .with("path", tail.path.display().to_string())
            .with("signatures", describe(&all)),
        );
    }
    // The WMI evidence: its own signatures, plus the pidusage errors they
    // cause.
    let wmi: Vec<_> = if all.iter().any(|(s, _)| s.is_wmi()) {
        all.iter()
            .copied()
            .filter(|(s, _)| s.is_wmi() || **s == Signature::PidusageError)
            .collect()
    } else {
        Vec::new()
    };
    if !wmi.is_empty() {
        sink.push(
            Finding::new(
                CheckId::WindowsWmiDegraded,
                "pm2.log shows Windows WMI failing (pidusage could not read process stats): `pm2 list`, `pm2 save` and `taskkill` hang while WMI is degraded",
                Fix::new(
                    "restart-wmi",
                    Safety::Manual,
                    "advice: as Administrator run `net stop winmgmt /y` then `net start winmgmt` (or reboot); pm2-doctor itself never uses WMI",
                ),
            )
            .with("path", tail.path.display().to_string())
            .with("signatures", describe(&wmi)),
        );
    }
}
