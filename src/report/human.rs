//! The report a person reads: a line per check (✓ ! ✗ ?), the problems with
//! their fixes, evidence with `--verbose`.

use super::daemon_line;
use crate::diagnose::Diagnosis;
use crate::findings::{CheckId, CheckStatus, Finding, Severity};
use crate::report::style::{BLUE, BOLD, DIM, GREEN, RED, YELLOW};
use anstyle::Style;
use std::io::{self, Write};

/// PM2's RPC pipe on Windows, the same for every home.
const RPC_PIPE: &str = r"\\.\pipe\rpc.sock";

fn mark(sev: Severity) -> (&'static str, Style) {
    match sev {
        Severity::Error => ("✗", RED),
        Severity::Warning => ("!", YELLOW),
        Severity::Info => ("i", BLUE),
    }
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn finding(out: &mut dyn Write, f: &Finding, verbose: bool) -> io::Result<()> {
    let (m, style) = mark(f.severity);
    writeln!(
        out,
        "{style}{m}{style:#} {BOLD}{:<24}{BOLD:#} {}",
        f.check.as_str(),
        f.summary
    )?;
    if verbose {
        for (k, v) in &f.evidence {
            writeln!(out, "    {DIM}{k}:{DIM:#} {}", value_text(v))?;
        }
    }
    writeln!(
        out,
        "    {DIM}fix ({}):{DIM:#} {}",
        f.fix.safety, f.fix.description
    )
}

pub fn render(out: &mut dyn Write, d: &Diagnosis, verbose: bool) -> io::Result<()> {
    writeln!(
        out,
        "{BOLD}pm2-doctor {}{BOLD:#}  home {} {DIM}(from {}){DIM:#}",
        env!("CARGO_PKG_VERSION"),
        d.paths.home.display(),
        serde_json::to_value(d.paths.source)
            .ok()
            .as_ref()
            .map(value_text)
            .unwrap_or_default()
    )?;
    writeln!(out, "{DIM}{}{DIM:#}", daemon_line(d))?;
    for other in &d.other_homes {
        writeln!(out, "{BLUE}i{BLUE:#} {}", other.describe())?;
    }
    if !d.other_homes.is_empty() {
        writeln!(
            out,
            "  {DIM}every PM2 home on Windows uses the same pipes ({RPC_PIPE}, pub.sock): \
             the daemon that answered may be another home's{DIM:#}"
        )?;
    }
    writeln!(out)?;
    for r in &d.verdict.results {
        let of_check: Vec<&Finding> = d
            .verdict
            .findings
            .iter()
            .filter(|f| f.check == r.id)
            .collect();
        match r.status {
            CheckStatus::Problem => {
                for f in of_check {
                    finding(out, f, verbose)?;
                }
                if let Some(reason) = &r.reason {
                    writeln!(out, "    {YELLOW}?{YELLOW:#} also incomplete: {reason}")?;
                }
            }
            CheckStatus::Ok => writeln!(
                out,
                "{GREEN}✓{GREEN:#} {:<24} {DIM}{}{DIM:#}",
                r.id.as_str(),
                r.id.ok_text()
            )?,
            CheckStatus::Unknown => {
                let reason = r.reason.as_deref().unwrap_or("unknown reason");
                // Said once on the daemon line rather than nine times.
                let reason = if d.procs_unreadable.as_deref() == Some(reason) {
                    "no process table (see above)"
                } else {
                    reason
                };
                writeln!(
                    out,
                    "{YELLOW}?{YELLOW:#} {:<24} could not finish: {reason}",
                    r.id.as_str(),
                )?
            }
            CheckStatus::Skipped => {
                if verbose && r.id != CheckId::HomeMissing {
                    writeln!(
                        out,
                        "{DIM}- {:<24} skipped: {}{DIM:#}",
                        r.id.as_str(),
                        r.reason.as_deref().unwrap_or("")
                    )?;
                }
            }
        }
    }
    writeln!(out)?;
    let (e, w, i) = (
        d.count(Severity::Error),
        d.count(Severity::Warning),
        d.count(Severity::Info),
    );
    let unknown = d
        .verdict
        .results
        .iter()
        .filter(|r| r.status == CheckStatus::Unknown)
        .count();
    let plural = crate::report::plural;
    let mut parts = vec![plural(e, "error"), plural(w, "warning")];
    if i > 0 {
        parts.push(plural(i, "note"));
    }
    if unknown > 0 {
        parts.push(format!("{} could not finish", plural(unknown, "check")));
    }
    let style = if e > 0 {
        RED
    } else if w > 0 || unknown > 0 {
        YELLOW
    } else {
        GREEN
    };
    writeln!(
        out,
        "{style}{}{style:#} {DIM}({} ms){DIM:#}",
        parts.join(", "),
        d.duration_ms
    )?;
    if e + w > 0 {
        writeln!(
            out,
            "Nothing was changed. Run with --verbose for the evidence; see docs/checks.md for each check."
        )?;
    }
    Ok(())
}
