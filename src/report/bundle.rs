//! `pm2-doctor report`: a Markdown bug report that works when `pm2 report`
//! cannot (it needs the daemon). Built from what diagnose gathered; no
//! environment value is ever copied, and free text (log lines, command
//! lines) goes through [`crate::redact`].

use crate::diagnose::{Diagnosis, Gathered};
use crate::findings::CheckStatus;
use crate::probe::ProbeOutcome;
use crate::redact;
use std::fmt::Write;

/// Lines of pm2.log and of each failing app's error log in the report.
const PM2_LOG_LINES: usize = 60;
const APP_LOG_LINES: usize = 30;

/// Facts from outside the home, looked up by the caller (bounded).
pub struct Versions {
    pub node: Option<String>,
    pub os: Option<String>,
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn code_block(out: &mut String, lines: impl Iterator<Item = String>) {
    out.push_str("```text\n");
    for l in lines {
        // A log line must not close the fence.
        out.push_str(&l.replace("```", "ʼʼʼ"));
        out.push('\n');
    }
    out.push_str("```\n\n");
}

pub fn render(g: &Gathered, d: &Diagnosis, v: &Versions) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# pm2-doctor report\n");
    let _ = writeln!(
        o,
        "Generated {} by pm2-doctor {} for the PM2 home `{}`. Environment values are never included; log and command lines are redacted.\n",
        d.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        env!("CARGO_PKG_VERSION"),
        d.paths.home.display()
    );

    let _ = writeln!(o, "## Versions\n");
    let daemon = match &g.daemon.rpc {
        Some(ProbeOutcome::Answered(r)) => r.version.clone(),
        Some(other) => format!(
            "not answering ({})",
            serde_json::to_value(other)
                .ok()
                .and_then(|v| v.get("state").cloned())
                .and_then(|s| s.as_str().map(str::to_string))
                .unwrap_or_default()
        ),
        None => "not probed".into(),
    };
    let rows = [
        ("pm2-doctor", env!("CARGO_PKG_VERSION").to_string()),
        (
            "pm2 CLI on PATH",
            g.cli
                .as_ref()
                .map(|c| format!("{} ({})", c.version, c.bin.display()))
                .unwrap_or_else(|| "not found".into()),
        ),
        ("PM2 daemon", daemon),
        ("node", v.node.clone().unwrap_or_else(|| "not found".into())),
        ("OS", v.os.clone().unwrap_or_else(|| "unknown".into())),
    ];
    let _ = writeln!(o, "| what | version |\n|---|---|");
    for (k, val) in rows {
        let _ = writeln!(o, "| {k} | {} |", md_escape(&redact::text(&val)));
    }
    o.push('\n');
    if !d.other_homes.is_empty() {
        let _ = writeln!(
            o,
            "Other PM2 homes on this machine (on Windows they share the daemon's pipes):\n"
        );
        for h in &d.other_homes {
            let _ = writeln!(o, "- {}", md_escape(&redact::text(&h.describe())));
        }
        o.push('\n');
    }

    let _ = writeln!(o, "## Diagnosis\n");
    let _ = writeln!(
        o,
        "Exit code {}. {}.\n",
        d.exit_code(false),
        crate::report::daemon_line(d)
    );
    let _ = writeln!(
        o,
        "| check | status | severity | finding |\n|---|---|---|---|"
    );
    for r in &d.verdict.results {
        let findings: Vec<&str> = d
            .verdict
            .findings
            .iter()
            .filter(|f| f.check == r.id)
            .map(|f| f.summary.as_str())
            .collect();
        if r.status == CheckStatus::Skipped && findings.is_empty() {
            continue;
        }
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let text = if findings.is_empty() {
            r.reason.clone().unwrap_or_default()
        } else {
            findings.join("; ")
        };
        let _ = writeln!(
            o,
            "| `{}` | {status} | {} | {} |",
            r.id,
            r.id.severity(),
            md_escape(&redact::text(&text))
        );
    }
    o.push('\n');

    let _ = writeln!(o, "## Saved apps (dump.pm2)\n");
    match g.home.dump.apps() {
        Some(entries) if !entries.is_empty() => {
            let _ = writeln!(o, "| name | mode | interpreter | script | status | restarts |\n|---|---|---|---|---|---|");
            for e in entries.iter().filter(|e| !e.not_an_object) {
                let cell =
                    |v: &Option<String>| md_escape(&redact::text(v.as_deref().unwrap_or("")));
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} |",
                    cell(&e.name),
                    cell(&e.exec_mode),
                    cell(&e.exec_interpreter),
                    cell(&e.pm_exec_path),
                    cell(&e.status),
                    e.restart_time.map(|r| r.to_string()).unwrap_or_default()
                );
            }
        }
        Some(_) => o.push_str("dump.pm2 holds no apps.\n"),
        None => o.push_str(
            "dump.pm2 is missing or could not be read as a list of apps (see the diagnosis).\n",
        ),
    }
    o.push('\n');

    let _ = writeln!(o, "## Processes of this home\n");
    let mut pids: Vec<u32> = g.membership.daemons.clone();
    pids.extend(g.membership.members.keys());
    if pids.is_empty() {
        o.push_str("No daemon or app process of this home is running.\n\n");
    } else {
        let _ = writeln!(
            o,
            "| pid | ppid | started | role | ports | command |\n|---|---|---|---|---|---|"
        );
        for pid in pids {
            let Some(p) = g.procs.get(pid) else { continue };
            let role = if g.membership.daemons.contains(&pid) {
                "daemon".to_string()
            } else {
                match g.membership.members.get(&pid) {
                    Some(m) if m.managed_by.is_some() => "app (managed)".into(),
                    Some(_) => "app (no live daemon)".into(),
                    None => String::new(),
                }
            };
            let ports: Vec<String> = p.listen_ports.iter().map(u16::to_string).collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {role} | {} | `{}` |",
                p.pid,
                p.ppid.map(|x| x.to_string()).unwrap_or_default(),
                crate::checks::iso(p.start_time),
                ports.join(", "),
                md_escape(&redact::text(&p.cmdline())).replace('`', "'")
            );
        }
        o.push('\n');
    }

    let _ = writeln!(o, "## Ports\n");
    let wanted = crate::apps::wanted_ports(&g.apps, &g.logs);
    if wanted.is_empty() {
        o.push_str("No app names a port.\n\n");
    } else {
        let _ = writeln!(o, "| app | port | from | held by |\n|---|---|---|---|");
        for w in wanted {
            let holders: Vec<String> = g
                .listeners
                .get(&w.port)
                .into_iter()
                .flatten()
                .map(u32::to_string)
                .collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                md_escape(&w.app),
                w.port,
                w.source,
                if holders.is_empty() {
                    "not traced".to_string()
                } else {
                    holders.join(", ")
                }
            );
        }
        o.push('\n');
    }

    ecosystem_section(&mut o, g);

    let _ = writeln!(o, "## Tail of pm2.log\n");
    match &g.logs.pm2_log {
        Some(Ok(t)) => {
            let skip = t.lines.len().saturating_sub(PM2_LOG_LINES);
            code_block(
                &mut o,
                t.lines[skip..].iter().map(|l| redact::text(&l.text)),
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(o, "Could not read pm2.log: {}\n", redact::text(e));
        }
        None => o.push_str("There is no pm2.log.\n\n"),
    }
    for (app, tail) in &g.logs.app_errors {
        let _ = writeln!(o, "## Error log of {}\n", md_escape(app));
        match tail {
            Ok(t) => {
                let skip = t.lines.len().saturating_sub(APP_LOG_LINES);
                code_block(
                    &mut o,
                    t.lines[skip..].iter().map(|l| redact::text(&l.text)),
                );
            }
            Err(e) => {
                let _ = writeln!(o, "Could not read it: {}\n", redact::text(e));
            }
        }
    }
    o
}

/// What the ecosystem lint found: the settings behind crash loops are
/// often the answer to the bug report.
fn ecosystem_section(o: &mut String, g: &Gathered) {
    let _ = writeln!(o, "## Ecosystem file\n");
    let report = match &g.lint {
        Ok(r) => r,
        Err(why) => {
            let _ = writeln!(o, "Not linted: {}.\n", md_escape(&redact::text(why)));
            return;
        }
    };
    let apps: Vec<&str> = report.apps.iter().map(|a| a.name.as_str()).collect();
    let status = match report.status {
        crate::lint::LintStatus::Ok => "no problem found".to_string(),
        crate::lint::LintStatus::Problem => crate::report::plural(report.findings.len(), "finding"),
        crate::lint::LintStatus::Unknown => format!(
            "could not be checked: {}",
            report.reason.as_deref().unwrap_or("unknown reason")
        ),
    };
    let _ = writeln!(
        o,
        "`{}`: {}; apps: {}.\n",
        md_escape(&redact::text(&report.file.display().to_string())).replace('`', "'"),
        md_escape(&redact::text(&status)),
        if apps.is_empty() {
            "none".to_string()
        } else {
            md_escape(&redact::text(&apps.join(", ")))
        }
    );
    if report.findings.is_empty() {
        return;
    }
    let _ = writeln!(o, "| check | severity | finding | fix |\n|---|---|---|---|");
    for f in &report.findings {
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} |",
            f.check,
            f.severity,
            md_escape(&redact::text(&f.summary)),
            md_escape(&redact::text(&f.fix.description))
        );
    }
    o.push('\n');
}
