//! `pm2-doctor lint`: checks an ecosystem file for the settings that turned
//! the incident into a crash loop — implicit cluster mode, a restart policy
//! PM2 can never enforce, missing scripts, two apps on one port — before
//! PM2 ever runs it.
//!
//! The file is read the way PM2 reads it: `.json` (JSON, else JSON5) and
//! `.yml`/`.yaml` are parsed; `.js`/`.cjs`/`.mjs` are evaluated with node in
//! a child process with a deadline (PM2 `require`s them, so this runs the
//! file's code exactly as `pm2 start` would). [`lint`] never panics and
//! never hangs: whatever cannot be evaluated is reported as `unknown` with
//! the reason.

mod app;
mod load;
mod node;
mod preview;
mod render;
mod rules;

pub use load::SourceFormat;
pub use rules::{Edit, Suggestion};

use crate::diagnose::exit;
use crate::findings::{Finding, Severity};
use serde::Serialize;
use serde_json::Value;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The file names `lint` looks for, in PM2's order of preference.
pub const CANDIDATES: &[&str] = &[
    "ecosystem.config.js",
    "ecosystem.config.cjs",
    "ecosystem.config.mjs",
    "ecosystem.config.json",
    "ecosystem.config.yml",
    "ecosystem.config.yaml",
    "ecosystem.json",
    "ecosystem.yml",
    "ecosystem.yaml",
];

#[derive(Clone, Debug)]
pub struct LintOptions {
    /// The node binary for JavaScript files [default: `node` on PATH].
    pub node: Option<PathBuf>,
    /// Deadline for evaluating a JavaScript file.
    pub timeout: Duration,
    /// The PATH searched for bare commands (`script: 'npm'`)
    /// [default: this process's PATH].
    pub path_var: Option<OsString>,
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            node: None,
            timeout: Duration::from_secs(5),
            path_var: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LintStatus {
    /// No warning or error (notes may exist).
    Ok,
    Problem,
    /// The file could not be read or evaluated: nothing was checked.
    Unknown,
}

/// One app as PM2 would start it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AppSummary {
    pub name: String,
    pub script: Option<String>,
    /// `fork` or `cluster` after PM2's rules; `null` when it depends on a
    /// script that cannot be looked at.
    pub exec_mode_effective: Option<String>,
    /// As written (`1`, `"max"`, …); `null` when unset.
    pub instances: Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct LintReport {
    pub file: PathBuf,
    pub format: Option<SourceFormat>,
    pub apps: Vec<AppSummary>,
    pub findings: Vec<Finding>,
    pub status: LintStatus,
    /// Why the status is `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Parts that could not be checked (an app that is not an object).
    pub notes: Vec<String>,
    /// The key changes behind the findings' fixes, per app.
    pub suggestions: Vec<Suggestion>,
    pub duration_ms: u64,
    /// The file's text, for [`fix_preview`].
    #[serde(skip)]
    pub source: Option<String>,
}

impl LintReport {
    fn new(file: &Path) -> Self {
        LintReport {
            file: file.to_path_buf(),
            format: SourceFormat::of(file),
            apps: Vec::new(),
            findings: Vec::new(),
            status: LintStatus::Unknown,
            reason: None,
            notes: Vec::new(),
            suggestions: Vec::new(),
            duration_ms: 0,
            source: None,
        }
    }

    /// Summed like diagnose: 4 when an error-severity finding exists, 8
    /// when the file (or part of it) could not be checked.
    pub fn exit_code(&self) -> i32 {
        let mut code = exit::OK;
        if self.count(Severity::Error) > 0 {
            code += exit::PROBLEMS;
        }
        if self.status == LintStatus::Unknown || !self.notes.is_empty() {
            code += exit::INCOMPLETE;
        }
        code
    }

    pub fn count(&self, sev: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == sev).count()
    }
}

fn file_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads (and, for JavaScript, evaluates) `path` and runs every rule.
pub fn lint(path: &Path, opts: &LintOptions) -> LintReport {
    let clock = Instant::now();
    let mut report = LintReport::new(path);
    let result = evaluate_and_check(path, opts, &mut report);
    if let Err(reason) = result {
        report.status = LintStatus::Unknown;
        report.reason = Some(reason);
    }
    report.duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

fn evaluate_and_check(
    path: &Path,
    opts: &LintOptions,
    report: &mut LintReport,
) -> Result<(), String> {
    let format = report.format.ok_or_else(|| {
        format!(
            "{} is not an ecosystem file PM2 reads (expected .js, .cjs, .mjs, .json, .yml or .yaml)",
            path.display()
        )
    })?;
    let (bytes, truncated) = crate::home::read_capped(path, load::MAX_BYTES)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if truncated {
        return Err(format!(
            "{} is larger than {} MiB",
            path.display(),
            load::MAX_BYTES / (1024 * 1024)
        ));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) if format.is_javascript() => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        Err(_) => return Err(format!("{} is not UTF-8 text", path.display())),
    };
    let (config, pm2_load) = match format {
        SourceFormat::Json => (load::parse_json(&text)?, None),
        SourceFormat::Yaml => (load::parse_yaml(&text)?, None),
        SourceFormat::Js | SourceFormat::Mjs => {
            let node = opts.node.clone().unwrap_or_else(|| PathBuf::from("node"));
            let e = node::evaluate(&node, path, opts.timeout)?;
            (e.config, e.pm2_load)
        }
    };
    report.source = Some(text);
    let apps = load::apps_of(config)?;
    let (objs, notes) = rules::objects(&apps);
    let dir = file_dir(path);
    let path_var = opts.path_var.as_deref();
    let ctx = rules::Ctx {
        file: path,
        file_dir: &dir,
        path_var,
    };
    let (mut findings, suggestions) = rules::check(&objs, &ctx);
    if let Some(how) = &pm2_load {
        findings.splice(0..0, rules::pm2_cannot_load(&objs, &ctx, how));
    }
    report.apps = objs
        .iter()
        .map(|a| AppSummary {
            name: a.name.clone(),
            script: a.script().map(str::to_string),
            exec_mode_effective: a.effective_exec_mode(&dir, path_var),
            instances: a.get("instances").map_or(Value::Null, |(_, v)| v.clone()),
        })
        .collect();
    report.status = if findings.iter().any(|f| f.severity >= Severity::Warning) {
        LintStatus::Problem
    } else {
        LintStatus::Ok
    };
    report.findings = findings;
    report.suggestions = suggestions;
    report.notes = notes;
    Ok(())
}

/// The suggested changes as a unified diff against the file (with `# …`
/// comment lines for what could not be placed). Empty when nothing is
/// suggested. Writes nothing.
pub fn fix_preview(report: &LintReport) -> String {
    let name = report
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| report.file.display().to_string());
    let Some(format) = report.format else {
        return String::new();
    };
    preview::render(&name, format, report.source.as_deref(), &report.suggestions)
}

/// The ecosystem files present in `dir`, in [`CANDIDATES`] order.
pub fn candidates_in(dir: &Path) -> Vec<PathBuf> {
    CANDIDATES
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect()
}

/// The ecosystem file of a set of apps: when every `pm_cwd` is the same
/// folder and exactly one ecosystem file sits in it.
pub fn find_ecosystem(cwds: &[PathBuf]) -> Option<PathBuf> {
    let first = cwds.first()?;
    if cwds.iter().any(|c| c != first) {
        return None;
    }
    match &candidates_in(first)[..] {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The file `lint` should read in `dir`, or a usage message.
fn discover(dir: &Path) -> Result<PathBuf, String> {
    let shown = if dir == Path::new(".") {
        "the current folder".to_string()
    } else {
        dir.display().to_string()
    };
    match &candidates_in(dir)[..] {
        [] => Err(format!(
            "no ecosystem file in {shown} (looked for {}): pass the file to lint",
            CANDIDATES.join(", ")
        )),
        [one] => Ok(one.clone()),
        many => Err(format!(
            "several ecosystem files in {shown} ({}): pass the one to lint",
            many.iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn usage(msg: impl std::fmt::Display) -> anyhow::Result<i32> {
    let _ = writeln!(anstream::stderr(), "error: {msg}");
    Ok(exit::USAGE)
}

/// `pm2-doctor lint [FILE]`.
pub fn run_cli(args: &crate::cli::LintArgs) -> anyhow::Result<i32> {
    let file = match &args.file {
        Some(f) if f.is_dir() => match discover(f) {
            Ok(f) => f,
            Err(msg) => return usage(msg),
        },
        Some(f) => f.clone(),
        None => match discover(Path::new(".")) {
            Ok(f) => f,
            Err(msg) => return usage(msg),
        },
    };
    if let Err(e) = std::fs::metadata(&file) {
        return usage(format!("cannot read {}: {e}", file.display()));
    }
    if SourceFormat::of(&file).is_none() {
        return usage(format!(
            "{} is not an ecosystem file PM2 reads (expected .js, .cjs, .mjs, .json, .yml or .yaml)",
            file.display()
        ));
    }
    let opts = LintOptions {
        node: args.node.clone(),
        timeout: args.timeout,
        path_var: None,
    };
    let report = lint(&file, &opts);
    let code = report.exit_code();
    match args.format {
        crate::cli::ListFormat::Json => {
            let mut doc = render::document(&report, code);
            if args.fix_preview {
                doc["fix_preview"] = Value::String(fix_preview(&report));
            }
            let text = serde_json::to_string_pretty(&doc)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}")?;
            out.flush()?;
        }
        crate::cli::ListFormat::Human if args.fix_preview => {
            let diff = fix_preview(&report);
            if let Some(reason) = &report.reason {
                let _ = writeln!(
                    anstream::stderr(),
                    "pm2-doctor: could not check {}: {reason}",
                    file.display()
                );
            } else if diff.is_empty() {
                let _ = writeln!(
                    anstream::stderr(),
                    "pm2-doctor: nothing to change in {}",
                    file.display()
                );
            }
            let mut out = std::io::stdout().lock();
            out.write_all(diff.as_bytes())?;
            out.flush()?;
        }
        crate::cli::ListFormat::Human => {
            let choice = match args.color {
                crate::cli::ColorChoice::Auto => anstream::ColorChoice::Auto,
                crate::cli::ColorChoice::Always => anstream::ColorChoice::Always,
                crate::cli::ColorChoice::Never => anstream::ColorChoice::Never,
            };
            let mut out = anstream::AutoStream::new(std::io::stdout(), choice);
            render::human(&mut out, &report)?;
            out.flush()?;
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn find_ecosystem_needs_one_folder_and_one_file() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let f = write(
            a.path(),
            "ecosystem.config.cjs",
            "module.exports = {apps: []}\n",
        );
        let cwds = vec![a.path().to_path_buf(), a.path().to_path_buf()];
        assert_eq!(find_ecosystem(&cwds), Some(f));
        assert_eq!(find_ecosystem(&[]), None);
        assert_eq!(
            find_ecosystem(&[a.path().to_path_buf(), b.path().to_path_buf()]),
            None
        );
        assert_eq!(find_ecosystem(&[b.path().to_path_buf()]), None);
        write(a.path(), "ecosystem.json", "[]");
        assert_eq!(find_ecosystem(&cwds), None, "two files: ambiguous");
    }

    #[test]
    fn discovery_messages() {
        let d = tempfile::tempdir().unwrap();
        let err = discover(d.path()).unwrap_err();
        assert!(err.contains("no ecosystem file"), "{err}");
        write(d.path(), "ecosystem.config.yml", "apps: []\n");
        assert!(discover(d.path()).is_ok());
        write(d.path(), "ecosystem.config.js", "module.exports = []\n");
        let err = discover(d.path()).unwrap_err();
        assert!(
            err.contains("ecosystem.config.js, ecosystem.config.yml"),
            "{err}"
        );
    }

    #[test]
    fn json_and_yaml_need_no_node() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "server.js", "\n");
        let f = write(
            d.path(),
            "ecosystem.config.json",
            r#"{"apps": [{"name": "web", "script": "server.js", "instances": 1}]}"#,
        );
        let opts = LintOptions {
            node: Some(d.path().join("no-node-here")),
            ..LintOptions::default()
        };
        let r = lint(&f, &opts);
        assert_eq!(r.status, LintStatus::Problem, "{:?}", r.reason);
        assert_eq!(r.apps[0].exec_mode_effective.as_deref(), Some("cluster"));
        assert_eq!(r.exit_code(), 0);
        let f = write(
            d.path(),
            "e.yaml",
            "apps:\n  - name: web\n    script: server.js\n",
        );
        let r = lint(&f, &opts);
        assert_eq!(r.apps[0].exec_mode_effective.as_deref(), Some("fork"));
    }

    #[test]
    fn unreadable_input_is_unknown_never_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let opts = LintOptions::default();
        for (name, text) in [
            ("a.json", "{\"apps\": ["),
            ("b.yml", "apps: ["),
            ("c.json", "42"),
            ("d.toml", "x = 1"),
        ] {
            let f = write(d.path(), name, text);
            let r = lint(&f, &opts);
            assert_eq!(r.status, LintStatus::Unknown, "{name}");
            assert!(r.reason.is_some(), "{name}");
            assert_eq!(r.exit_code(), 8, "{name}");
        }
        let r = lint(&d.path().join("missing.json"), &opts);
        assert!(r.reason.unwrap().contains("cannot read"));
    }

    #[test]
    fn non_object_apps_make_the_result_incomplete() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "server.js", "\n");
        let f = write(
            d.path(),
            "e.json",
            r#"[{"name": "a", "script": "server.js", "exec_mode": "fork", "max_restarts": 5,
                "error_file": "e", "out_file": "o"}, "oops"]"#,
        );
        let r = lint(&f, &LintOptions::default());
        assert_eq!(r.status, LintStatus::Ok);
        assert_eq!(r.notes.len(), 1);
        assert_eq!(r.exit_code(), 8);
    }
}
