//! The monitoring documents against the code: `docs/alerts.yml` (structure,
//! metric names, labels and check ids), `docs/monitoring.md` (its metric
//! table, and the contrib files it shows, byte for byte) and the contrib
//! files themselves (flags, cron syntax, the Ansible playbook). When the
//! tools are installed, `promtool` checks and unit-tests the rules and
//! `systemd-analyze verify` checks the units; otherwise those parts are
//! skipped with a note on stderr (printed even when output is captured).
//!
//! The tests read the documents and run `pm2-doctor checks` and `--help`;
//! they never depend on `diagnose --output` existing in the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const ALERTS: &str = "docs/alerts.yml";
const DOC: &str = "docs/monitoring.md";
const PROMETHEUS_RS: &str = "src/report/prometheus.rs";
const UNITS: [&str; 3] = [
    "contrib/systemd/pm2-doctor.service",
    "contrib/systemd/pm2-doctor.timer",
    "contrib/systemd/pm2-doctor-repair.service",
];
const CRON: &str = "contrib/cron/pm2-doctor";
const PLAYBOOK: &str = "contrib/ansible/pm2-doctor.yml";
/// Where the units and cron file expect the binary.
const INSTALLED_BIN: &str = "/usr/local/bin/pm2-doctor";
/// Labels Prometheus adds when it scrapes node_exporter.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];
/// The alerts the monitoring guide promises.
const REQUIRED_ALERTS: [&str; 5] = [
    "PM2AppCrashLoop",
    "PM2DaemonUnresponsive",
    "PM2OrphanProcess",
    "PM2DoctorNotRunning",
    "PM2DoctorCheckIncomplete",
];

// ---------------------------------------------------------------- helpers

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// A note that shows in the test output even when libtest captures it
/// (libtest captures `print!`/`eprint!`, not writes to the stderr handle).
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "note (tests/monitoring.rs): {msg}");
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        [name.to_string(), format!("{name}.exe")]
            .into_iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
    })
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("pm2-doctor")
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Every `pm2_doctor_…` name in `text` (whole words only).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(at) = rest.find("pm2_doctor_") {
        let start = offset + at;
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_ident_char(c));
        let name: String = text[start..]
            .chars()
            .take_while(|&c| c.is_ascii_alphanumeric() || c == '_')
            .collect();
        // `pm2_doctor_api.prom` is a file name, not a metric.
        let file = text[start + name.len()..].starts_with(".prom");
        if before_ok && !file {
            out.insert(name.clone());
        }
        offset = start + name.len();
        rest = &text[offset..];
    }
    out
}

/// Metric name → label names, read from the format strings in
/// `src/report/prometheus.rs` (`name{{home=\"{home}\",check=\"{}\"}} {}`).
fn emitted() -> BTreeMap<String, BTreeSet<String>> {
    let src = read(PROMETHEUS_RS);
    let mut out = BTreeMap::new();
    for name in metric_names(&src) {
        let mut labels = BTreeSet::new();
        let opener = format!("{name}{{{{");
        for (at, _) in src.match_indices(&opener) {
            let body = &src[at + opener.len()..];
            let body = &body[..body.find("}}").expect("unclosed label set")];
            for pair in body.split(',') {
                let label = pair.split('=').next().unwrap().trim();
                assert!(
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "cannot read label {pair:?} of {name} in {PROMETHEUS_RS}"
                );
                labels.insert(label.to_string());
            }
        }
        assert!(
            !labels.is_empty(),
            "{name} appears in {PROMETHEUS_RS} without a sample line with labels"
        );
        out.insert(name, labels);
    }
    assert!(
        out.len() >= 8,
        "expected at least 8 metrics in {PROMETHEUS_RS}, found {out:?}"
    );
    out
}

fn all_emitted_labels(em: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    em.values()
        .flatten()
        .cloned()
        .chain(TARGET_LABELS.iter().map(|s| s.to_string()))
        .collect()
}

/// Check ids, from the binary itself.
fn check_ids() -> BTreeSet<String> {
    let out = assert_cmd::Command::cargo_bin("pm2-doctor")
        .unwrap()
        .args(["checks", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pm2-doctor checks --format json failed"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: BTreeSet<String> = v["checks"]
        .as_array()
        .expect("checks --format json has a checks array")
        .iter()
        .map(|c| c["id"].as_str().expect("every check has an id").to_string())
        .collect();
    assert!(ids.len() > 10, "too few checks: {ids:?}");
    ids
}

fn yaml(rel: &str) -> Value {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

fn s<'a>(v: &'a Value, key: &str, what: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what}: `{key}` is missing or not a string"))
}

/// Every rule of every group in docs/alerts.yml.
fn rules() -> Vec<Value> {
    let doc = yaml(ALERTS);
    let groups = doc
        .get("groups")
        .and_then(Value::as_sequence)
        .expect("alerts.yml: top-level `groups` must be a list");
    assert!(!groups.is_empty(), "alerts.yml: no groups");
    let mut out = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let name = s(g, "name", &format!("groups[{i}]"));
        let rules = g
            .get("rules")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("group {name}: `rules` must be a list"));
        assert!(!rules.is_empty(), "group {name} has no rules");
        out.extend(rules.iter().cloned());
    }
    out
}

fn rule<'a>(rules: &'a [Value], alert: &str) -> &'a Value {
    rules
        .iter()
        .find(|r| r.get("alert").and_then(Value::as_str) == Some(alert))
        .unwrap_or_else(|| panic!("alerts.yml has no alert {alert}"))
}

/// One vector selector of a PromQL expression.
#[derive(Debug)]
struct Selector {
    metric: Option<String>,
    /// (label, operator, value)
    matchers: Vec<(String, String, String)>,
}

#[derive(Debug, Default)]
struct ExprParts {
    selectors: Vec<Selector>,
    grouping_labels: Vec<String>,
}

const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// `{label op "value", …}` starting at the `{` at `i`; returns the
/// matchers and the index after the `}`.
fn matchers(chars: &[char], mut i: usize, expr: &str) -> (Vec<(String, String, String)>, usize) {
    let mut out = Vec::new();
    i += 1;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        assert!(i < chars.len(), "unclosed {{ in {expr}");
        if chars[i] == '}' {
            return (out, i + 1);
        }
        let start = i;
        while i < chars.len() && is_ident_char(chars[i]) {
            i += 1;
        }
        let label: String = chars[start..i].iter().collect();
        while chars[i].is_whitespace() {
            i += 1;
        }
        let op_start = i;
        while matches!(chars[i], '=' | '!' | '~') {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        while chars[i].is_whitespace() {
            i += 1;
        }
        assert!(
            matches!(chars[i], '"' | '\'' | '`'),
            "matcher {label}{op} without a quoted value in {expr}"
        );
        let end = skip_string(chars, i);
        let value: String = chars[i + 1..end - 1].iter().collect();
        assert!(
            ["=", "!=", "=~", "!~"].contains(&op.as_str()) && !label.is_empty(),
            "cannot read matcher {label:?} {op:?} in {expr}"
        );
        out.push((label, op, value));
        i = end;
    }
}

/// A small PromQL reader: enough to find every metric name, label matcher
/// and grouping label in an alert expression.
fn analyse(expr: &str) -> ExprParts {
    let chars: Vec<char> = expr.chars().collect();
    let mut parts = ExprParts::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(&chars, i);
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            let (m, next) = matchers(&chars, i, expr);
            parts.selectors.push(Selector {
                metric: None,
                matchers: m,
            });
            i = next;
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let next = chars.get(j).copied();
            if GROUPING.contains(&ident.as_str()) {
                if next == Some('(') {
                    let close = (j..chars.len())
                        .find(|&k| chars[k] == ')')
                        .unwrap_or_else(|| panic!("unclosed ( in {expr}"));
                    let list: String = chars[j + 1..close].iter().collect();
                    parts.grouping_labels.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(String::from),
                    );
                    i = close + 1;
                }
            } else if next == Some('(')
                || AGGREGATIONS.contains(&ident.as_str())
                || KEYWORDS.contains(&ident.to_ascii_lowercase().as_str())
            {
                // a function, an aggregation or an operator
            } else if next == Some('{') {
                let (m, after) = matchers(&chars, j, expr);
                parts.selectors.push(Selector {
                    metric: Some(ident),
                    matchers: m,
                });
                i = after;
            } else {
                parts.selectors.push(Selector {
                    metric: Some(ident),
                    matchers: Vec::new(),
                });
            }
        } else {
            i += 1;
        }
    }
    parts
}

/// Fenced code blocks of a Markdown text: (info string, content).
fn fences(md: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, Vec<&str>)> = None;
    for line in md.lines() {
        match &mut open {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    open = Some((info.trim().to_string(), Vec::new()));
                }
            }
            Some((info, body)) => {
                if line.trim_end() == "```" {
                    out.push((std::mem::take(info), body.join("\n")));
                    open = None;
                } else {
                    body.push(line);
                }
            }
        }
    }
    assert!(open.is_none(), "{DOC} has an unclosed code fence");
    out
}

/// The `key=value` attribute of a fence info string (```ini file=PATH).
fn fence_attr<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Splits the monitoring guide into (everything but the "Planned" section,
/// the "Planned" section), leaving out the copies of contrib files (their
/// Ansible variables such as `pm2_doctor_bin` are not metrics).
fn doc_sections() -> (String, String) {
    let doc = read(DOC);
    let mut main = String::new();
    let mut planned = String::new();
    let mut in_planned = false;
    let mut in_copy = false;
    for line in doc.lines() {
        if let Some(info) = line.strip_prefix("```") {
            if in_copy {
                in_copy = false;
                continue;
            }
            in_copy = fence_attr(info, "file").is_some();
        }
        if in_copy {
            continue;
        }
        if line.starts_with("## ") || line.starts_with("### ") {
            in_planned = line.starts_with("### Planned");
            if in_planned {
                assert!(
                    line.contains("not emitted yet"),
                    "the Planned heading must say the metrics are not emitted yet: {line}"
                );
            }
        }
        let target = if in_planned { &mut planned } else { &mut main };
        target.push_str(line);
        target.push('\n');
    }
    // A Planned section is optional: every metric may be emitted already.
    (main, planned)
}

/// `pm2-doctor SUB --flag value …` command lines in code text: the words
/// after the binary, up to a shell redirection, pipe or comment.
fn doctor_commands(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in code.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (k, w) in words.iter().enumerate() {
            if *w == "pm2-doctor" || w.ends_with("/pm2-doctor") {
                out.push(
                    words[k + 1..]
                        .iter()
                        .take_while(|a| {
                            !a.starts_with('|') && !a.contains('>') && !a.starts_with('#')
                        })
                        .map(|a| a.to_string())
                        .collect(),
                );
            }
        }
    }
    out
}

/// The code in a Markdown text (or an annotation): fenced blocks, and the
/// inline `code` spans of each paragraph (which may wrap lines).
fn code_in_markdown(md: &str) -> Vec<String> {
    let mut out: Vec<String> = fences(md).into_iter().map(|(_, body)| body).collect();
    let mut in_fence = false;
    let mut paragraph = String::new();
    let mut paragraphs = Vec::new();
    for line in md.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
            paragraphs.push(std::mem::take(&mut paragraph));
            continue;
        }
        if in_fence {
            continue;
        }
        if line.trim().is_empty() {
            paragraphs.push(std::mem::take(&mut paragraph));
        } else {
            paragraph.push_str(line);
            paragraph.push(' ');
        }
    }
    paragraphs.push(paragraph);
    for p in paragraphs {
        // Odd pieces between backticks are code spans.
        out.extend(p.split('`').skip(1).step_by(2).map(String::from));
    }
    out
}

/// Subcommands of the binary, from `pm2-doctor --help`.
fn subcommands() -> BTreeSet<String> {
    let out = Command::new(bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let list: BTreeSet<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    for sub in ["diagnose", "repair", "checks", "backups", "undo"] {
        assert!(
            list.contains(sub),
            "`pm2-doctor --help` does not list {sub}: {list:?}"
        );
    }
    list
}

/// Every `pm2-doctor …` command written in `text` uses a real subcommand,
/// real long flags, real `--format` values and real `--only` check ids.
fn assert_commands_valid(what: &str, code: &str, ids: &BTreeSet<String>) -> usize {
    let subs = subcommands();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut checked = 0;
    for args in doctor_commands(code) {
        // Prose such as "pm2-doctor exit 4" is not a command line.
        let Some(sub) = args.first().filter(|a| subs.contains(a.as_str())) else {
            continue;
        };
        let help = helps.entry(sub.clone()).or_insert_with(|| {
            let out = Command::new(bin())
                .args([sub.as_str(), "--help"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{what}: `pm2-doctor {sub}` is not a subcommand"
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        for (k, a) in args.iter().enumerate() {
            if !a.starts_with("--") || a.len() < 3 {
                continue;
            }
            let flag = a.split('=').next().unwrap();
            let known = help.match_indices(flag).any(|(at, _)| {
                help[at + flag.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-'))
            });
            if !known && sub == "diagnose" && flag == "--output" {
                // Being added concurrently; the documents may run ahead of it.
                note("`diagnose --output` is not in this build's --help yet: not checked");
                continue;
            }
            assert!(known, "{what}: `pm2-doctor {sub}` has no flag {flag}");
            let value = args.get(k + 1).map(String::as_str).unwrap_or_default();
            let literal = !value.is_empty()
                && !value.starts_with('-')
                && value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '-');
            if flag == "--format" && literal {
                assert!(
                    help.contains(value),
                    "{what}: `pm2-doctor {sub} --format {value}` is not a format it knows"
                );
            }
            if flag == "--only" && literal {
                assert!(
                    ids.contains(value),
                    "{what}: --only {value} is not a check id"
                );
            }
        }
        checked += 1;
    }
    checked
}

fn parse_duration_ok(d: &str) -> bool {
    let mut rest = d;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        let Some(u) = unit else { return false };
        rest = &rest[u.len()..];
        parts += 1;
    }
    parts > 0
}

// ------------------------------------------------------------ alerts.yml

#[test]
fn alerts_have_the_prometheus_rule_structure() {
    let rules = rules();
    let mut names = BTreeSet::new();
    for r in &rules {
        let alert = s(r, "alert", "a rule");
        assert!(
            names.insert(alert.to_string()),
            "alert {alert} is defined twice"
        );
        let what = format!("alert {alert}");
        assert!(!s(r, "expr", &what).trim().is_empty(), "{what}: empty expr");
        let f = s(r, "for", &what);
        assert!(parse_duration_ok(f), "{what}: `for: {f}` is not a duration");
        let labels = r
            .get("labels")
            .unwrap_or_else(|| panic!("{what}: no labels"));
        let sev = s(labels, "severity", &format!("{what} labels"));
        assert!(
            ["critical", "warning", "info"].contains(&sev),
            "{what}: severity {sev} is not critical, warning or info"
        );
        let ann = r
            .get("annotations")
            .unwrap_or_else(|| panic!("{what}: no annotations"));
        for key in ["summary", "description"] {
            let text = s(ann, key, &format!("{what} annotations"));
            assert!(!text.trim().is_empty(), "{what}: empty {key}");
            assert!(
                !text.contains("$labels.severity"),
                "{what}: {key} uses $labels.severity, which the rule's own severity replaces"
            );
        }
    }
    for required in REQUIRED_ALERTS {
        assert!(names.contains(required), "alerts.yml lacks {required}");
    }
}

#[test]
fn alerts_express_what_the_guide_promises() {
    let rules = rules();
    let expr = |a: &str| {
        s(rule(&rules, a), "expr", a)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let crash = expr("PM2AppCrashLoop");
    assert!(
        crash.contains(r#"pm2_doctor_check_status{check="app.crash-loop"} == 1"#),
        "{crash}"
    );
    let daemon = expr("PM2DaemonUnresponsive");
    for part in [
        r#"check="daemon.unresponsive""#,
        "pm2_doctor_daemon_up == 1 and pm2_doctor_daemon_responsive == 0",
    ] {
        assert!(daemon.contains(part), "{daemon} lacks {part}");
    }
    let orphan = expr("PM2OrphanProcess");
    assert!(
        orphan.contains(r#"pm2_doctor_check_status{check="process.orphan"} == 1"#),
        "{orphan}"
    );
    let stale = expr("PM2DoctorNotRunning");
    assert!(
        stale.contains("time() - pm2_doctor_last_run_timestamp_seconds > 600"),
        "{stale}"
    );
    let unknown = rule(&rules, "PM2DoctorCheckIncomplete");
    assert!(expr("PM2DoctorCheckIncomplete").contains("pm2_doctor_check_status == 2"));
    assert_eq!(s(unknown, "for", "PM2DoctorCheckIncomplete"), "30m");
}

#[test]
fn alerts_use_only_emitted_metrics_labels_and_check_ids() {
    let em = emitted();
    let all_labels = all_emitted_labels(&em);
    let ids = check_ids();
    // Anywhere in the file, comments and annotations included.
    for name in metric_names(&read(ALERTS)) {
        assert!(
            em.contains_key(&name),
            "alerts.yml mentions {name}, which {PROMETHEUS_RS} does not emit"
        );
    }
    for r in rules() {
        let alert = s(&r, "alert", "a rule");
        let expr = s(&r, "expr", alert);
        let parts = analyse(expr);
        assert!(
            parts.selectors.iter().any(|sel| sel.metric.is_some()),
            "{alert}: no metric found in {expr}"
        );
        for sel in &parts.selectors {
            let metric = sel
                .metric
                .as_deref()
                .unwrap_or_else(|| panic!("{alert}: use a metric name, not a bare {{…}} selector"));
            let labels = em.get(metric).unwrap_or_else(|| {
                panic!(
                    "{alert}: {metric} is not a metric {PROMETHEUS_RS} emits ({:?})",
                    em.keys()
                )
            });
            for (label, op, value) in &sel.matchers {
                assert!(
                    labels.contains(label) || TARGET_LABELS.contains(&label.as_str()),
                    "{alert}: {metric} has no label {label}"
                );
                if label == "check" {
                    let values: Vec<&str> = if op.ends_with('~') {
                        value.split('|').collect()
                    } else {
                        vec![value.as_str()]
                    };
                    for id in values {
                        assert!(ids.contains(id), "{alert}: check id {id} does not exist");
                    }
                }
            }
        }
        for label in &parts.grouping_labels {
            assert!(
                all_labels.contains(label),
                "{alert}: groups by unknown label {label}"
            );
        }
        let ann = r.get("annotations").unwrap();
        for key in ["summary", "description"] {
            let text = s(ann, key, alert);
            assert_commands_valid(
                &format!("{alert} {key}"),
                &code_in_markdown(text).join("\n"),
                &ids,
            );
            let mut rest = text;
            while let Some(at) = rest.find("$labels.") {
                let label: String = rest[at + 8..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    all_labels.contains(&label),
                    "{alert}: {key} uses unknown $labels.{label}"
                );
                rest = &rest[at + 8..];
            }
        }
    }
}

#[test]
fn the_promql_reader_finds_what_it_should() {
    let p = analyse(
        r#"max without (check, severity) (pm2_doctor_check_status{check="daemon.unresponsive"} == 1)
           or (pm2_doctor_daemon_up == 1 and pm2_doctor_daemon_responsive == 0)
           or increase(pm2_doctor_app_restarts{source=~"a|b"}[10m]) > 0 or time() - x > 600"#,
    );
    let metrics: Vec<&str> = p
        .selectors
        .iter()
        .filter_map(|s| s.metric.as_deref())
        .collect();
    assert_eq!(
        metrics,
        [
            "pm2_doctor_check_status",
            "pm2_doctor_daemon_up",
            "pm2_doctor_daemon_responsive",
            "pm2_doctor_app_restarts",
            "x"
        ]
    );
    assert_eq!(p.grouping_labels, ["check", "severity"]);
    assert_eq!(
        p.selectors[3].matchers,
        [("source".to_string(), "=~".to_string(), "a|b".to_string())]
    );
    assert_eq!(
        metric_names(
            "a pm2_doctor_x{b} xpm2_doctor_y `pm2_doctor_z` pm2_doctor.prom pm2_doctor_a.prom"
        ),
        ["pm2_doctor_x", "pm2_doctor_z"].map(String::from).into()
    );
}

// ------------------------------------------------------ monitoring.md

#[test]
fn the_guide_lists_exactly_the_emitted_metrics_and_labels() {
    let em = emitted();
    let (main, planned) = doc_sections();
    let in_main = metric_names(&main);
    for name in &in_main {
        assert!(
            em.contains_key(name),
            "{DOC} presents {name} as emitted, but {PROMETHEUS_RS} does not emit it \
             (list it under Planned, marked not emitted yet)"
        );
    }
    // Planned: the first cell of each row names a metric not emitted yet;
    // the rest of the section may name emitted ones ("what to use today").
    let mut planned_names = BTreeSet::new();
    for line in planned.lines() {
        let first = line.split('|').nth(1).map(str::trim).unwrap_or_default();
        if line.starts_with("| `pm2_doctor_") {
            let name = first.trim_matches('`').to_string();
            assert!(
                !em.contains_key(&name),
                "{name} is emitted now: move it from Planned into the metrics table of {DOC}"
            );
            planned_names.insert(name);
        }
    }
    for name in metric_names(&planned) {
        assert!(
            planned_names.contains(&name) || em.contains_key(&name),
            "{DOC} Planned section mentions {name}, neither planned in its table nor emitted"
        );
    }
    // The metrics table: | `name` | `label`, `label` | value |
    let mut table = BTreeMap::new();
    for line in main.lines().filter(|l| l.starts_with("| `pm2_doctor_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let labels: BTreeSet<String> = cells[2]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_string())
            .filter(|l| !l.is_empty())
            .collect();
        assert!(
            table.insert(name.clone(), labels).is_none(),
            "{name} is in the table twice"
        );
    }
    assert_eq!(
        table.keys().collect::<Vec<_>>(),
        em.keys().collect::<Vec<_>>(),
        "the metrics table of {DOC} must list exactly what {PROMETHEUS_RS} emits"
    );
    for (name, labels) in &em {
        assert_eq!(&table[name], labels, "labels of {name} in {DOC}");
    }
}

#[test]
fn the_guide_names_real_check_ids_and_flags() {
    let ids = check_ids();
    let doc = read(DOC);
    let mut rest = doc.as_str();
    while let Some(at) = rest.find("check=\"") {
        let id: String = rest[at + 7..].chars().take_while(|&c| c != '"').collect();
        assert!(
            ids.contains(&id),
            "{DOC} uses check id {id}, which does not exist"
        );
        rest = &rest[at + 7..];
    }
    for id in [
        "app.crash-loop",
        "daemon.unresponsive",
        "process.orphan",
        "daemon.duplicate",
    ] {
        assert!(
            ids.contains(id),
            "check id {id} is gone: update {DOC} and {ALERTS}"
        );
    }
    let n = assert_commands_valid(DOC, &code_in_markdown(&doc).join("\n"), &ids);
    assert!(
        n >= 10,
        "expected the guide's pm2-doctor commands to be found, got {n}"
    );
}

#[test]
fn the_guide_shows_the_contrib_files_verbatim() {
    let blocks = fences(&read(DOC));
    let mut shown = BTreeSet::new();
    for (info, body) in &blocks {
        let Some(file) = fence_attr(info, "file") else {
            continue;
        };
        let on_disk = read(file);
        assert_eq!(
            body.trim(),
            on_disk.trim(),
            "the ```{info} block of {DOC} differs from {file}: keep them identical"
        );
        assert!(
            shown.insert(file.to_string()),
            "{file} is shown twice in {DOC}"
        );
    }
    let expected: BTreeSet<String> = UNITS
        .iter()
        .chain([CRON, PLAYBOOK].iter())
        .map(|f| f.to_string())
        .collect();
    assert_eq!(shown, expected, "{DOC} must show every contrib file once");
    assert!(
        blocks
            .iter()
            .any(|(info, _)| fence_attr(info, "unit") == Some("pm2-doctor-repair.timer")),
        "{DOC} must show the pm2-doctor-repair.timer unit"
    );
}

// ------------------------------------------------------- contrib files

#[test]
fn contrib_commands_are_what_the_guide_describes() {
    let ids = check_ids();
    let units: Vec<String> = UNITS.iter().map(|u| read(u)).collect();
    let exec: Vec<&str> = units
        .iter()
        .flat_map(|u| u.lines())
        .filter(|l| l.starts_with("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 2, "one ExecStart= per service");
    for line in &exec {
        assert!(
            line.starts_with(&format!("ExecStart={INSTALLED_BIN} ")),
            "{line}"
        );
    }
    let diagnose = exec[0];
    for part in [
        " diagnose ",
        " --home ",
        " --format prometheus ",
        " --output /var/lib/node_exporter/textfile_collector/pm2_doctor.prom",
    ] {
        assert!(
            diagnose.contains(part),
            "the diagnose service lacks `{part}`: {diagnose}"
        );
    }
    let repair = exec[1];
    assert!(
        repair.contains(" repair ") && repair.contains(" --safe-only"),
        "{repair}"
    );
    for forbidden in [" --yes", " -y ", " --dry-run"] {
        assert!(
            !repair.contains(forbidden),
            "the repair service must be --safe-only only"
        );
    }
    assert!(
        read(UNITS[1]).contains("OnCalendar=minutely"),
        "the diagnose timer runs every minute"
    );
    for (file, text) in UNITS.iter().zip(&units) {
        assert_commands_valid(file, text, &ids);
    }
    assert_eq!(assert_commands_valid(CRON, &read(CRON), &ids), 2);
}

#[test]
fn the_cron_file_is_valid_for_cron_d() {
    let text = read(CRON);
    assert!(
        text.ends_with('\n'),
        "cron ignores a last line without a newline"
    );
    let name = Path::new(CRON).file_name().unwrap().to_string_lossy();
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "run-parts style cron.d names allow only [A-Za-z0-9_-]: {name}"
    );
    let mut jobs = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        // A commented-out job ("#17 * * * * …") is checked as a job too.
        let job = t.strip_prefix('#').unwrap_or(t);
        if t.starts_with('#') && !job.starts_with(|c: char| c.is_ascii_digit() || c == '*') {
            continue;
        }
        if !t.starts_with('#')
            && job
                .split_whitespace()
                .next()
                .is_some_and(|w| w.contains('='))
        {
            continue; // NAME=value
        }
        let f: Vec<&str> = job.split_whitespace().collect();
        assert!(
            f.len() >= 7,
            "a cron.d job needs 5 time fields, a user and a command: {line}"
        );
        for field in &f[..5] {
            assert!(
                field
                    .chars()
                    .all(|c| c.is_ascii_digit() || "*/,-".contains(c)),
                "bad time field {field:?} in {line}"
            );
        }
        jobs.push((t.starts_with('#'), f[..5].join(" "), f[5..].join(" ")));
    }
    assert_eq!(
        jobs.len(),
        2,
        "one diagnose job and one (commented) repair job"
    );
    let (off, when, cmd) = &jobs[0];
    assert!(
        !off && when == "* * * * *"
            && cmd.contains(" diagnose ")
            && cmd.contains("--format prometheus")
    );
    let (off, _, cmd) = &jobs[1];
    assert!(*off, "the repair job is opt-in: it must ship commented out");
    assert!(
        cmd.contains(" repair ") && cmd.contains(" --safe-only"),
        "{cmd}"
    );
}

#[test]
fn the_playbook_diagnoses_with_a_timeout_and_fails_on_bit_4() {
    let plays = yaml(PLAYBOOK);
    let plays = plays.as_sequence().expect("a playbook is a list of plays");
    assert_eq!(plays.len(), 1);
    let play = &plays[0];
    assert!(play.get("hosts").is_some(), "the play needs hosts");
    let tasks = play
        .get("tasks")
        .and_then(Value::as_sequence)
        .expect("the play needs tasks");
    let argv: Vec<&str> = tasks
        .iter()
        .find_map(|t| t.get("ansible.builtin.command")?.get("argv")?.as_sequence())
        .expect("a command task with argv")
        .iter()
        .map(|a| a.as_str().expect("argv items are strings"))
        .collect();
    assert_eq!(argv[0], "timeout", "diagnose runs under timeout(1)");
    let at = argv
        .iter()
        .position(|a| *a == "diagnose")
        .expect("runs diagnose");
    assert!(
        argv[at..].windows(2).any(|w| w == ["--format", "json"]),
        "{argv:?}"
    );
    let run = tasks
        .iter()
        .find(|t| t.get("ansible.builtin.command").is_some())
        .unwrap();
    assert!(
        run.get("timeout").is_some(),
        "the diagnose task needs a task timeout"
    );
    assert_eq!(s(run, "register", "the diagnose task"), "doctor");
    let fail = tasks
        .iter()
        .find(|t| t.get("ansible.builtin.fail").is_some())
        .expect("a fail task");
    assert_eq!(
        s(fail, "when", "the fail task"),
        "(doctor.rc // 4) % 2 == 1"
    );
    assert!(
        tasks
            .iter()
            .any(|t| t.get("ansible.builtin.copy").is_some()
                || t.get("ansible.builtin.fetch").is_some()),
        "the reports are collected with copy or fetch"
    );
    // The argv as a command line, for the flag check.
    let line = format!("pm2-doctor {}", argv[at..].join(" "));
    assert_eq!(assert_commands_valid(PLAYBOOK, &line, &check_ids()), 1);

    match on_path("ansible-playbook") {
        Some(ap) => {
            let out = Command::new(ap)
                .args(["--syntax-check", "-i", "localhost,"])
                .arg(root().join(PLAYBOOK))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ansible-playbook --syntax-check failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        None => note("ansible-playbook is not on PATH: the playbook's syntax check was skipped"),
    }
}

// ------------------------------------------------ external validators

/// Replaces each `{{ $labels.NAME }}` with the label's value.
fn render(template: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find("}}").expect("unclosed {{") + at;
        let inner = rest[at + 2..end].trim();
        let name = inner.strip_prefix("$labels.").unwrap_or_else(|| {
            panic!("this test renders only {{{{ $labels.X }}}} templates; extend it for {inner}")
        });
        out.push_str(
            labels
                .get(name)
                .unwrap_or_else(|| panic!("template uses $labels.{name}, absent from the alert")),
        );
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

const TEST_HOME: &str = "/home/deploy/.pm2";

/// The labels every test series and alert carries.
fn target(inst: &str) -> BTreeMap<String, String> {
    [("instance", inst), ("job", "node"), ("home", TEST_HOME)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One input series of a promtool unit test.
fn input(metric: &str, inst: &str, extra: &[(&str, &str)], values: &str) -> serde_json::Value {
    let mut labels = target(inst);
    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    serde_json::json!({"series": format!("{metric}{{{}}}", body.join(",")), "values": values})
}

/// The alerts `alert` should raise, one per (instance, extra labels), with
/// the rule's severity and its annotations rendered for those labels.
fn expected(rules: &[Value], alert: &str, firing: &[(&str, &[(&str, &str)])]) -> serde_json::Value {
    let r = rule(rules, alert);
    let sev = s(r.get("labels").unwrap(), "severity", alert);
    let ann = r.get("annotations").unwrap().as_mapping().unwrap();
    let list: Vec<serde_json::Value> = firing
        .iter()
        .map(|(inst, extra)| {
            let mut labels = target(inst);
            labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            labels.insert("severity".into(), sev.into());
            let rendered: BTreeMap<String, String> = ann
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_string(),
                        render(v.as_str().unwrap(), &labels),
                    )
                })
                .collect();
            serde_json::json!({"exp_labels": labels, "exp_annotations": rendered})
        })
        .collect();
    serde_json::Value::Array(list)
}

/// A `promtool test rules` file exercising every required alert, positive
/// and negative cases, written as JSON (which is YAML).
fn promtool_unit_tests(rules_path: &Path) -> String {
    let rules = rules();
    let status = "pm2_doctor_check_status";
    let check = |id: &'static str, sev: &'static str| [("check", id), ("severity", sev)];
    let mut series = vec![
        // crash loop: c1 loops for 40 m, c2 never, c3 only for 3 m.
        input(status, "c1", &check("app.crash-loop", "error"), "1x40"),
        input(status, "c2", &check("app.crash-loop", "error"), "0x40"),
        input(
            status,
            "c3",
            &check("app.crash-loop", "error"),
            "0x9 1x2 0x28",
        ),
        // orphans: o1 yes, o2 no.
        input(status, "o1", &check("process.orphan", "error"), "1x40"),
        input(status, "o2", &check("process.orphan", "error"), "0x40"),
        // last run: n1 stuck at the epoch, n2 fresh every minute.
        input("pm2_doctor_last_run_timestamp_seconds", "n1", &[], "0x40"),
        input(
            "pm2_doctor_last_run_timestamp_seconds",
            "n2",
            &[],
            "0+60x40",
        ),
        // could not finish: u1 for 40 m, u2 for 10 m only.
        input(status, "u1", &check("log.oversized", "warning"), "2x40"),
        input(status, "u2", &check("log.oversized", "warning"), "2x9 0x30"),
    ];
    // daemon: d1 both signals, d2 up but silent, d3 healthy, d4 dead with no
    // socket (responsive 0 and up 0: no alert), d5 a foreign listener on the
    // socket (the check fires, no daemon, no responsive series).
    for (inst, chk, up, resp) in [
        ("d1", "1x40", "1x40", Some("0x40")),
        ("d2", "0x40", "1x40", Some("0x40")),
        ("d3", "0x40", "1x40", Some("1x40")),
        ("d4", "0x40", "0x40", Some("0x40")),
        ("d5", "1x40", "0x40", None),
    ] {
        series.push(input(
            status,
            inst,
            &check("daemon.unresponsive", "error"),
            chk,
        ));
        series.push(input("pm2_doctor_daemon_up", inst, &[], up));
        if let Some(v) = resp {
            series.push(input("pm2_doctor_daemon_responsive", inst, &[], v));
        }
    }
    let crash: &[(&str, &str)] = &[("check", "app.crash-loop")];
    let orphan: &[(&str, &str)] = &[("check", "process.orphan")];
    let unknown: &[(&str, &str)] = &[("check", "log.oversized")];
    let none: &[(&str, &str)] = &[];
    let cases = serde_json::json!([
        {"eval_time": "3m", "alertname": "PM2AppCrashLoop", "exp_alerts": []},
        {"eval_time": "12m", "alertname": "PM2AppCrashLoop",
         "exp_alerts": expected(&rules, "PM2AppCrashLoop", &[("c1", crash)])},
        {"eval_time": "10m", "alertname": "PM2DaemonUnresponsive",
         "exp_alerts": expected(&rules, "PM2DaemonUnresponsive", &[("d1", none), ("d2", none), ("d5", none)])},
        {"eval_time": "10m", "alertname": "PM2OrphanProcess",
         "exp_alerts": expected(&rules, "PM2OrphanProcess", &[("o1", orphan)])},
        {"eval_time": "12m", "alertname": "PM2DoctorNotRunning", "exp_alerts": []},
        {"eval_time": "20m", "alertname": "PM2DoctorNotRunning",
         "exp_alerts": expected(&rules, "PM2DoctorNotRunning", &[("n1", none)])},
        {"eval_time": "20m", "alertname": "PM2DoctorCheckIncomplete", "exp_alerts": []},
        {"eval_time": "35m", "alertname": "PM2DoctorCheckIncomplete",
         "exp_alerts": expected(&rules, "PM2DoctorCheckIncomplete", &[("u1", unknown)])},
    ]);
    let doc = serde_json::json!({
        "rule_files": [rules_path.display().to_string()],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}],
    });
    serde_json::to_string_pretty(&doc).unwrap()
}

#[test]
fn promtool_accepts_and_fires_the_rules() {
    let Some(promtool) = on_path("promtool") else {
        note(
            "promtool is not on PATH: `promtool check rules` and the rule unit tests were \
             skipped (Debian ships promtool in the `prometheus` package)",
        );
        return;
    };
    let rules_path = root().join(ALERTS);
    let out = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&rules_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let tests = dir.path().join("alerts_test.yml");
    std::fs::write(&tests, promtool_unit_tests(&rules_path)).unwrap();
    let out = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&tests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn systemd_analyze_verifies_the_units() {
    let Some(analyze) = on_path("systemd-analyze") else {
        note("systemd-analyze is not on PATH: `systemd-analyze verify` of the units was skipped");
        return;
    };
    // The units name the installed binary, absent here: verify copies that
    // run the binary cargo built, next to the timer the guide shows inline.
    let built = bin();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for unit in UNITS {
        let text = read(unit);
        if unit.ends_with(".service") {
            assert!(
                text.contains(INSTALLED_BIN),
                "{unit} should run {INSTALLED_BIN}"
            );
        }
        let name = Path::new(unit).file_name().unwrap();
        let copy = dir.path().join(name);
        std::fs::write(
            &copy,
            text.replace(INSTALLED_BIN, &built.display().to_string()),
        )
        .unwrap();
        files.push(copy);
    }
    let (_, timer) = fences(&read(DOC))
        .into_iter()
        .find(|(info, _)| fence_attr(info, "unit") == Some("pm2-doctor-repair.timer"))
        .expect("the guide shows pm2-doctor-repair.timer");
    let copy = dir.path().join("pm2-doctor-repair.timer");
    std::fs::write(&copy, format!("{}\n", timer.trim())).unwrap();
    files.push(copy);
    let out = Command::new(analyze)
        .arg("verify")
        .args(&files)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("pm2-doctor"))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify warns about our units:\n{}",
        ours.join("\n")
    );
}
