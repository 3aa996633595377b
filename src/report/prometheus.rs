//! `--format prometheus`: node_exporter textfile-collector format.

use crate::diagnose::Diagnosis;
use crate::findings::{CheckStatus, Severity};
use crate::probe::ProbeOutcome;
use std::fmt::Write;

/// Escapes a label value as the exposition format requires.
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn status_value(s: CheckStatus) -> i32 {
    match s {
        CheckStatus::Ok => 0,
        CheckStatus::Problem => 1,
        CheckStatus::Unknown => 2,
        CheckStatus::Skipped => 3,
    }
}

pub fn render(d: &Diagnosis, exit_code: i32) -> String {
    let home = escape(&d.paths.home.display().to_string());
    let mut o = String::new();
    let head = |o: &mut String, name: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} gauge");
    };
    head(
        &mut o,
        "pm2_doctor_check_status",
        "Check result: 0 ok, 1 problem, 2 could not finish, 3 skipped.",
    );
    for r in &d.verdict.results {
        let _ = writeln!(
            o,
            "pm2_doctor_check_status{{home=\"{home}\",check=\"{}\",severity=\"{}\"}} {}",
            r.id.as_str(),
            r.id.severity(),
            status_value(r.status)
        );
    }
    head(
        &mut o,
        "pm2_doctor_findings",
        "Number of findings by severity.",
    );
    for sev in [Severity::Error, Severity::Warning, Severity::Info] {
        let _ = writeln!(
            o,
            "pm2_doctor_findings{{home=\"{home}\",severity=\"{sev}\"}} {}",
            d.count(sev)
        );
    }
    head(
        &mut o,
        "pm2_doctor_daemon_up",
        "1 when a PM2 daemon of this home is running.",
    );
    let _ = writeln!(
        o,
        "pm2_doctor_daemon_up{{home=\"{home}\"}} {}",
        i32::from(!d.daemon_pids.is_empty())
    );
    if let Some(rpc) = &d.daemon.rpc {
        head(
            &mut o,
            "pm2_doctor_daemon_responsive",
            "1 when the daemon answered the RPC probe in time.",
        );
        let _ = writeln!(
            o,
            "pm2_doctor_daemon_responsive{{home=\"{home}\"}} {}",
            i32::from(matches!(rpc, ProbeOutcome::Answered(_)))
        );
    }
    if d.apps.iter().any(|a| a.restarts.is_some()) {
        head(
            &mut o,
            "pm2_doctor_app_restarts",
            "Restart count per app (from the live daemon, else the dump).",
        );
        for a in &d.apps {
            if let Some(n) = a.restarts {
                let _ = writeln!(
                    o,
                    "pm2_doctor_app_restarts{{home=\"{home}\",app=\"{}\",pm_id=\"{}\",source=\"{}\"}} {n}",
                    escape(&a.name),
                    a.pm_id.map(|i| i.to_string()).unwrap_or_default(),
                    a.source
                );
            }
        }
    }
    head(
        &mut o,
        "pm2_doctor_daemon_processes",
        "Number of PM2 daemons running for this home (more than 1: ghost daemons).",
    );
    let _ = writeln!(
        o,
        "pm2_doctor_daemon_processes{{home=\"{home}\"}} {}",
        d.daemon_pids.len()
    );
    head(
        &mut o,
        "pm2_doctor_orphan_processes",
        "Number of processes of this home that no live daemon manages.",
    );
    let orphans = d
        .verdict
        .findings
        .iter()
        .filter(|f| f.check == crate::findings::CheckId::ProcessOrphan)
        .count();
    let _ = writeln!(
        o,
        "pm2_doctor_orphan_processes{{home=\"{home}\"}} {orphans}"
    );
    if d.apps.iter().any(|a| a.restarts_per_minute.is_some()) {
        head(
            &mut o,
            "pm2_doctor_app_restarts_per_minute",
            "Restarts per minute from the starts pm2.log's tail records.",
        );
        for a in &d.apps {
            if let Some(r) = a.restarts_per_minute {
                let _ = writeln!(
                    o,
                    "pm2_doctor_app_restarts_per_minute{{home=\"{home}\",app=\"{}\",pm_id=\"{}\"}} {r}",
                    escape(&a.name),
                    a.pm_id.map(|i| i.to_string()).unwrap_or_default(),
                );
            }
        }
    }
    if d.apps.iter().any(|a| a.status.is_some()) {
        head(
            &mut o,
            "pm2_doctor_app_status",
            "1 for the app's current status (online, errored, stopped, ...).",
        );
        for a in &d.apps {
            if let Some(s) = &a.status {
                let _ = writeln!(
                    o,
                    "pm2_doctor_app_status{{home=\"{home}\",app=\"{}\",pm_id=\"{}\",status=\"{}\",source=\"{}\"}} 1",
                    escape(&a.name),
                    a.pm_id.map(|i| i.to_string()).unwrap_or_default(),
                    escape(s),
                    a.source
                );
            }
        }
    }
    head(
        &mut o,
        "pm2_doctor_exit_code",
        "Exit code of this run (fsck-style bits).",
    );
    let _ = writeln!(o, "pm2_doctor_exit_code{{home=\"{home}\"}} {exit_code}");
    head(
        &mut o,
        "pm2_doctor_run_duration_seconds",
        "How long the diagnosis took.",
    );
    let _ = writeln!(
        o,
        "pm2_doctor_run_duration_seconds{{home=\"{home}\"}} {:.3}",
        d.duration_ms as f64 / 1000.0
    );
    head(
        &mut o,
        "pm2_doctor_last_run_timestamp_seconds",
        "When the diagnosis ran (Unix time).",
    );
    let _ = writeln!(
        o,
        "pm2_doctor_last_run_timestamp_seconds{{home=\"{home}\"}} {}",
        d.started_at.timestamp()
    );
    o
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn label_escaping() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }
}
