//! Renderers: a [`Diagnosis`](crate::diagnose::Diagnosis) in, text out. They
//! write to any `io::Write` so tests render into buffers.

pub mod bundle;
pub mod human;
pub mod json;
pub mod prometheus;
pub mod repair;
pub mod resurrect;
pub mod style;

use crate::diagnose::Diagnosis;
use crate::probe::ProbeOutcome;

/// `1 error`, `2 errors`, `3 entries`: counts in summaries and findings.
pub fn plural(n: usize, word: &str) -> String {
    match (n, word) {
        (1, _) => format!("1 {word}"),
        (_, "entry") => format!("{n} entries"),
        _ => format!("{n} {word}s"),
    }
}

/// One line on the daemon's state, shared by the human and report outputs.
pub fn daemon_line(d: &Diagnosis) -> String {
    crate::findings::printable(&daemon_line_raw(d))
}

fn daemon_line_raw(d: &Diagnosis) -> String {
    let pids = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    let running = if let Some(why) = &d.procs_unreadable {
        format!("daemons unknown ({why})")
    } else if d.daemon_pids.is_empty() {
        "no daemon of this home is running".to_string()
    } else {
        format!("daemon pid {}", pids(&d.daemon_pids))
    };
    match &d.daemon.rpc {
        None => running,
        Some(ProbeOutcome::Answered(r)) => format!(
            "{running}, answering (PM2 {}, {} apps, {} ms)",
            r.version,
            r.apps.as_ref().map_or(0, Vec::len),
            r.elapsed_ms
        ),
        Some(ProbeOutcome::Timeout { waited_ms, .. }) => {
            format!("{running}, rpc socket silent for {waited_ms} ms")
        }
        Some(ProbeOutcome::Missing) => format!("{running}, no rpc socket"),
        Some(ProbeOutcome::Refused) => format!("{running}, rpc socket refuses connections"),
        Some(ProbeOutcome::PermissionDenied { .. }) => {
            format!("{running}, rpc socket permission denied")
        }
        Some(ProbeOutcome::Protocol { error }) => {
            format!("{running}, rpc socket speaks garbage ({error})")
        }
        Some(ProbeOutcome::DaemonError { error }) => format!("{running}, daemon error ({error})"),
        Some(ProbeOutcome::Failed { error }) => format!("{running}, probe failed ({error})"),
    }
}
