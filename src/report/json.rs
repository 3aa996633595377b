//! `--format json`: one document on stdout, schema versioned.

use crate::diagnose::Diagnosis;
use serde_json::json;

pub const SCHEMA_VERSION: u32 = 1;

pub fn document(d: &Diagnosis, exit_code: i32) -> serde_json::Value {
    let checks: Vec<serde_json::Value> = d
        .verdict
        .results
        .iter()
        .map(|r| {
            let mut c = json!({
                "id": r.id,
                "status": r.status,
                "severity": r.id.severity(),
            });
            if let Some(reason) = &r.reason {
                c["reason"] = json!(reason);
            }
            c
        })
        .collect();
    let mut doc = json!({
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pm2-doctor", "version": env!("CARGO_PKG_VERSION")},
        "home": d.paths.home,
        "home_source": d.paths.source,
        "started_at": d.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "duration_ms": d.duration_ms,
        "daemon": {
            "pids": d.daemon_pids,
            "rpc": d.daemon.rpc.as_ref().map(summarise_probe),
            "pub": d.daemon.publ.as_ref().map(summarise_probe),
        },
        "pm2_cli": d.cli,
        "apps": d.apps,
        "checks": checks,
        "findings": d.verdict.findings,
        "exit_code": exit_code,
    });
    if !d.other_homes.is_empty() {
        doc["other_homes"] = json!(d.other_homes);
    }
    doc
}

/// The probe outcome without the app list (already under `apps`).
fn summarise_probe(p: &crate::probe::ProbeOutcome) -> serde_json::Value {
    use crate::probe::ProbeOutcome;
    match p {
        ProbeOutcome::Answered(r) => {
            let mut v = json!({
                "state": "answered",
                "version": r.version,
                "elapsed_ms": r.elapsed_ms,
            });
            if let Some(pid) = r.server_pid {
                v["server_pid"] = pid.into();
            }
            v
        }
        other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
    }
}
