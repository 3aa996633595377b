//! The lint report for people (✓ ! ✗ i ? lines, like `diagnose`) and for
//! machines (one JSON document, schema version 1).

use super::rules::RULES;
use super::{LintReport, LintStatus};
use crate::findings::{Finding, Severity};
use crate::report::style::{BLUE, BOLD, DIM, GREEN, RED, YELLOW};
use anstyle::Style;
use serde_json::{json, Value};
use std::io::{self, Write};

pub const SCHEMA_VERSION: u32 = 1;

pub fn document(r: &LintReport, exit_code: i32) -> Value {
    let mut doc = json!({
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pm2-doctor", "version": env!("CARGO_PKG_VERSION")},
        "file": r.file,
        "format": r.format,
        "apps": r.apps,
        "findings": r.findings,
        "suggestions": r.suggestions,
        "status": r.status,
        "notes": r.notes,
        "duration_ms": r.duration_ms,
        "exit_code": exit_code,
    });
    if let Some(reason) = &r.reason {
        doc["reason"] = json!(reason);
    }
    doc
}

fn mark(sev: Severity) -> (&'static str, Style) {
    match sev {
        Severity::Error => ("✗", RED),
        Severity::Warning => ("!", YELLOW),
        Severity::Info => ("i", BLUE),
    }
}

fn finding(out: &mut dyn Write, f: &Finding) -> io::Result<()> {
    let (m, style) = mark(f.severity);
    writeln!(
        out,
        "{style}{m}{style:#} {BOLD}{:<24}{BOLD:#} {}",
        f.check.as_str(),
        f.summary
    )?;
    writeln!(
        out,
        "    {DIM}fix ({}):{DIM:#} {}",
        f.fix.safety, f.fix.description
    )
}

fn app_line(r: &LintReport) -> String {
    if r.apps.is_empty() {
        return "no apps declared".into();
    }
    let apps: Vec<String> = r
        .apps
        .iter()
        .map(|a| {
            let mode = a.exec_mode_effective.as_deref().unwrap_or("?");
            match &a.instances {
                Value::Null => format!("{} ({mode})", a.name),
                Value::String(s) => format!("{} ({mode} ×{s})", a.name),
                n => format!("{} ({mode} ×{n})", a.name),
            }
        })
        .collect();
    format!("apps: {}", apps.join(", "))
}

pub fn human(out: &mut dyn Write, r: &LintReport) -> io::Result<()> {
    let how = match r.format {
        Some(f) if f.is_javascript() => " (evaluated with node)",
        _ => "",
    };
    writeln!(
        out,
        "{BOLD}pm2-doctor {}{BOLD:#}  lint {}{DIM}{how}{DIM:#}",
        env!("CARGO_PKG_VERSION"),
        r.file.display()
    )?;
    if r.status == LintStatus::Unknown {
        writeln!(out)?;
        writeln!(
            out,
            "{YELLOW}?{YELLOW:#} {:<24} could not check the file: {}",
            "lint",
            r.reason.as_deref().unwrap_or("unknown reason")
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "{YELLOW}nothing was checked{YELLOW:#} {DIM}({} ms){DIM:#}",
            r.duration_ms
        )?;
        return Ok(());
    }
    writeln!(out, "{DIM}{}{DIM:#}", app_line(r))?;
    writeln!(out)?;
    for id in RULES {
        let of_check: Vec<&Finding> = r.findings.iter().filter(|f| f.check == *id).collect();
        if of_check.is_empty() {
            writeln!(
                out,
                "{GREEN}✓{GREEN:#} {:<24} {DIM}{}{DIM:#}",
                id.as_str(),
                id.ok_text()
            )?;
        }
        for f in of_check {
            finding(out, f)?;
        }
    }
    for note in &r.notes {
        writeln!(out, "{YELLOW}?{YELLOW:#} {:<24} {note}", "lint")?;
    }
    writeln!(out)?;
    let (e, w, i) = (
        r.count(Severity::Error),
        r.count(Severity::Warning),
        r.count(Severity::Info),
    );
    let plural = crate::report::plural;
    let mut parts = vec![plural(e, "error"), plural(w, "warning")];
    if i > 0 {
        parts.push(plural(i, "note"));
    }
    if !r.notes.is_empty() {
        parts.push(format!("{} not checked", plural(r.notes.len(), "app")));
    }
    let style = if e > 0 {
        RED
    } else if w > 0 || !r.notes.is_empty() {
        YELLOW
    } else {
        GREEN
    };
    writeln!(
        out,
        "{style}{}{style:#} {DIM}({} ms){DIM:#}",
        parts.join(", "),
        r.duration_ms
    )?;
    if !r.suggestions.is_empty() {
        writeln!(
            out,
            "Nothing was changed. Run with --fix-preview to see the suggested changes as a diff."
        )?;
    }
    Ok(())
}
