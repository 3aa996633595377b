//! Processes of this home that no live daemon of this home manages.

use super::daemon::with_process;
use super::{Context, Sink};
use crate::findings::{CheckId, Finding, Fix, Safety};
use crate::ownership::Evidence;
use crate::probe::ProbeOutcome;

pub fn check(ctx: &Context, sink: &mut Sink) {
    let id = CheckId::ProcessOrphan;
    // With a daemon alive but silent we cannot ask it what it manages; the
    // parent chain still tells, so the check runs, but says what it lacked.
    if let Some(ProbeOutcome::Timeout { .. }) = &ctx.daemon.rpc {
        if ctx.membership.daemons.is_empty() && !ctx.membership.unproven_daemons.is_empty() {
            sink.unknown(
                id,
                "a daemon that may be this home's is running but its home cannot be read",
            );
        }
    }
    let reported = ctx.reported_pids();
    for m in ctx.membership.orphans(ctx.procs, &reported) {
        let Some(p) = ctx.procs.get(m.pid) else {
            continue;
        };
        let env = p.env.as_ref();
        // A grandchild with a scrubbed environment is named after the app
        // whose session or parent chain it belongs to.
        let related = match m.evidence {
            Evidence::DescendantOf { pid } | Evidence::SessionOf { pid } => Some(pid),
            Evidence::Environment => None,
        };
        let app = env.and_then(|e| e.name.clone()).or_else(|| {
            related
                .and_then(|r| ctx.procs.get(r))
                .and_then(|r| r.env.as_ref())
                .and_then(|e| e.name.clone())
        });
        let ports = if p.listen_ports.is_empty() {
            String::new()
        } else {
            format!(
                ", holding port {}",
                p.listen_ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let who = match &app {
            Some(a) => format!("app {a}"),
            None => "an app".to_string(),
        };
        let summary = format!(
            "process {} ({}) belongs to {who} of this home but no live daemon manages it{ports}",
            p.pid, p.name
        );
        sink.push(
            with_process(
                Finding::new(
                    id,
                    summary,
                    Fix::new(
                        "kill-orphan",
                        Safety::Disruptive,
                        format!(
                            "terminate process {} (re-checking its start time first), then SIGKILL after a grace period; the other processes of its session are findings of their own",
                            p.pid
                        ),
                    ),
                ),
                p,
            )
            .with_opt("app", app)
            .with_opt("pm_id", env.and_then(|e| e.pm_id.as_deref()?.parse::<u64>().ok()))
            .with_opt("ppid", p.ppid)
            .with_opt("sid", p.sid)
            .with("ports", p.listen_ports.clone())
            .with("belongs_because", m.evidence.describe()),
        );
    }
}
