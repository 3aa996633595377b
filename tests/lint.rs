//! `pm2-doctor lint` driven through the binary over the ecosystem files in
//! `testdata/ecosystem/<case>/`: one per supported format, the incident's
//! BEFORE and AFTER configs, and files that throw, hang, print garbage or
//! exit. JavaScript files are evaluated with the `node` on PATH.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DIR: &str = "testdata/ecosystem";

fn fixture(case: &str, file: &str) -> PathBuf {
    Path::new(DIR).join(case).join(file)
}

fn pm2_doctor() -> Command {
    Command::cargo_bin("pm2-doctor").unwrap()
}

struct Run {
    code: i32,
    doc: Value,
    stderr: String,
}

/// `lint FILE --format json`: the document on stdout and the exit code,
/// which must agree.
fn lint_json(file: &Path, extra: &[&str]) -> Run {
    let out = pm2_doctor()
        .arg("lint")
        .arg(file)
        .args(["--format", "json"])
        .args(extra)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let doc: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}):\n{stdout}"));
    let code = out.status.code().unwrap();
    assert_eq!(doc["exit_code"], code, "{doc:#}");
    assert_eq!(doc["schema_version"], 1);
    Run {
        code,
        doc,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn findings<'a>(doc: &'a Value, check: &str) -> Vec<&'a Value> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

fn checks(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_string())
        .collect()
}

fn app<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no app {name} in {doc:#}"))
}

#[test]
fn seed_incident_before_config_is_implicit_cluster_and_unbounded_restarts() {
    let file = fixture("seed-before", "ecosystem.config.cjs");
    let r = lint_json(&file, &[]);
    assert_eq!(r.code, 0, "warnings only: {:#}", r.doc);
    assert_eq!(r.doc["status"], "problem");
    assert_eq!(r.doc["format"], "js");
    assert_eq!(r.doc["file"], file.display().to_string());

    let a = app(&r.doc, "c3-backend");
    assert_eq!(a["exec_mode_effective"], "cluster");
    assert_eq!(a["instances"], 1);
    assert_eq!(a["script"], "server.js");

    let ic = findings(&r.doc, "config.implicit-cluster");
    assert_eq!(ic.len(), 1, "{:#}", r.doc);
    let f = ic[0];
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["evidence"]["app"], "c3-backend");
    assert_eq!(f["evidence"]["key"], "instances");
    assert_eq!(f["evidence"]["file"], file.display().to_string());
    assert_eq!(f["evidence"]["suggested_exec_mode"], "fork");
    assert_eq!(f["fix"]["safety"], "manual");
    assert_eq!(f["fix"]["action"], "set-exec-mode");
    assert!(
        f["fix"]["description"]
            .as_str()
            .unwrap()
            .contains("exec_mode: 'fork'"),
        "{f:#}"
    );

    let rp = findings(&r.doc, "config.restart-policy");
    assert_eq!(rp.len(), 1, "{:#}", r.doc);
    let f = rp[0];
    assert_eq!(f["evidence"]["app"], "c3-backend");
    assert_eq!(f["evidence"]["key"], "restart_delay");
    assert_eq!(f["evidence"]["max_restarts"], 10);
    assert_eq!(f["evidence"]["restart_delay_ms"], 1000);
    assert_eq!(f["evidence"]["crash_window_ms"], 100);
    let summary = f["summary"].as_str().unwrap();
    assert!(summary.contains("never marks it errored"), "{summary}");
    let fix = f["fix"]["description"].as_str().unwrap();
    for part in [
        "max_restarts: 10",
        "min_uptime: 5000",
        "exp_backoff_restart_delay: 100",
        "remove restart_delay",
    ] {
        assert!(fix.contains(part), "{fix}");
    }

    assert_eq!(findings(&r.doc, "config.no-log-files").len(), 1);
    assert!(findings(&r.doc, "config.script-missing").is_empty());
    assert!(findings(&r.doc, "config.port-clash").is_empty());
}

#[test]
fn seed_incident_after_config_is_no_longer_implicit_cluster() {
    let r = lint_json(&fixture("seed-after", "ecosystem.config.cjs"), &[]);
    assert_eq!(r.code, 0);
    assert!(
        findings(&r.doc, "config.implicit-cluster").is_empty(),
        "{:#}",
        r.doc
    );
    assert_eq!(app(&r.doc, "c3-backend")["exec_mode_effective"], "fork");
    // The post-mortem only added exec_mode: restart_delay still defeats
    // max_restarts.
    assert_eq!(findings(&r.doc, "config.restart-policy").len(), 1);
}

#[test]
fn fix_preview_is_a_diff_that_writes_nothing() {
    let file = fixture("seed-before", "ecosystem.config.cjs");
    let before = std::fs::read(&file).unwrap();
    let out = pm2_doctor()
        .arg("lint")
        .arg(&file)
        .arg("--fix-preview")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let diff = String::from_utf8(out.stdout).unwrap();
    assert!(
        diff.contains("--- a/ecosystem.config.cjs\n+++ b/ecosystem.config.cjs\n"),
        "{diff}"
    );
    assert!(diff.contains("\n+      exec_mode: 'fork',\n"), "{diff}");
    assert!(diff.contains("\n+      min_uptime: 5000,\n"), "{diff}");
    assert!(diff.contains("\n-      restart_delay: 1000,\n"), "{diff}");
    assert!(diff.contains("@@ -"), "{diff}");
    assert_eq!(std::fs::read(&file).unwrap(), before, "nothing is written");

    // The same diff rides along in the JSON document.
    let r = lint_json(&file, &["--fix-preview"]);
    assert!(r.doc["fix_preview"].as_str().unwrap().contains("exec_mode"));
    let edits = &r.doc["suggestions"][0]["edits"];
    assert!(edits
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["op"] == "add" && e["key"] == "exec_mode" && e["value"] == "fork"));
}

#[test]
fn fix_preview_applied_leaves_nothing_to_fix() {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["ecosystem.config.cjs", "server.js"] {
        std::fs::copy(fixture("seed-before", f), tmp.path().join(f)).unwrap();
    }
    let file = tmp.path().join("ecosystem.config.cjs");
    let out = pm2_doctor()
        .arg("lint")
        .arg(&file)
        .arg("--fix-preview")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let diff = String::from_utf8(out.stdout).unwrap();
    let patched = apply(&std::fs::read_to_string(&file).unwrap(), &diff);
    std::fs::write(&file, patched).unwrap();
    let r = lint_json(&file, &[]);
    assert_eq!(r.doc["findings"], serde_json::json!([]), "{:#}", r.doc);
    assert_eq!(r.doc["status"], "ok");
    assert_eq!(app(&r.doc, "c3-backend")["exec_mode_effective"], "fork");
}

/// Applies a unified diff without fuzz (every context line must match).
fn apply(original: &str, diff: &str) -> String {
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    let mut offset: isize = 0;
    let mut pos = 0usize;
    for l in diff.lines() {
        if let Some(h) = l.strip_prefix("@@ -") {
            let start: isize = h.split([',', ' ']).next().unwrap().parse().unwrap();
            pos = usize::try_from(start - 1 + offset).unwrap();
        } else if l.starts_with("---") || l.starts_with("+++") || l.starts_with('#') {
        } else if let Some(t) = l.strip_prefix(' ') {
            assert_eq!(lines[pos], t);
            pos += 1;
        } else if let Some(t) = l.strip_prefix('-') {
            assert_eq!(lines[pos], t);
            lines.remove(pos);
            offset -= 1;
        } else if let Some(t) = l.strip_prefix('+') {
            lines.insert(pos, t.to_string());
            pos += 1;
            offset += 1;
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn esm_default_export_is_linted_and_pm2s_require_is_flagged() {
    let r = lint_json(&fixture("esm", "ecosystem.config.mjs"), &[]);
    assert_eq!(r.doc["format"], "mjs");
    let a = app(&r.doc, "api");
    assert_eq!(a["instances"], "max");
    assert_eq!(a["exec_mode_effective"], "cluster");
    let ic = findings(&r.doc, "config.implicit-cluster");
    assert_eq!(ic.len(), 1, "{:#}", r.doc);
    assert_eq!(ic[0]["evidence"]["suggested_exec_mode"], "cluster");
    // min_uptime '5s' + backoff: an effective policy.
    assert!(findings(&r.doc, "config.restart-policy").is_empty());
    // PM2 7 require()s the file: the default export is out of its sight.
    let sm = findings(&r.doc, "config.script-missing");
    assert_eq!(sm.len(), 1, "{:#}", r.doc);
    assert_eq!(sm[0]["evidence"]["app"], "api");
    assert_eq!(sm[0]["fix"]["action"], "use-commonjs");
    assert_eq!(r.code, 4);
}

#[test]
fn js_in_a_module_package_is_loaded_too() {
    let r = lint_json(&fixture("esm-js", "ecosystem.config.js"), &[]);
    let a = app(&r.doc, "svc");
    assert_eq!(a["exec_mode_effective"], "cluster");
    assert_eq!(findings(&r.doc, "config.implicit-cluster").len(), 1);
}

#[test]
fn json_config_following_the_post_mortem_is_clean() {
    let r = lint_json(&fixture("json", "ecosystem.config.json"), &[]);
    assert_eq!(r.code, 0);
    assert_eq!(r.doc["status"], "ok");
    assert_eq!(r.doc["findings"], serde_json::json!([]), "{:#}", r.doc);
    assert_eq!(app(&r.doc, "c3-backend")["exec_mode_effective"], "fork");
    // A python app with instances stays in fork mode.
    assert_eq!(app(&r.doc, "indexer")["exec_mode_effective"], "fork");
}

#[test]
fn yaml_config_with_merge_keys() {
    let r = lint_json(&fixture("yaml", "ecosystem.config.yml"), &[]);
    assert_eq!(r.doc["format"], "yaml");
    assert_eq!(r.code, 0);
    assert_eq!(
        checks(&r.doc),
        [
            "config.implicit-cluster",
            "config.restart-policy",
            "config.no-log-files"
        ],
        "{:#}",
        r.doc
    );
    let ic = &findings(&r.doc, "config.implicit-cluster")[0];
    assert_eq!(ic["evidence"]["app"], "web");
    assert_eq!(ic["evidence"]["instances"], 0);
    let rp = &findings(&r.doc, "config.restart-policy")[0];
    assert_eq!(rp["evidence"]["app"], "jobs");
    assert!(rp["summary"]
        .as_str()
        .unwrap()
        .contains("never marks it errored"));
}

#[test]
fn a_file_that_throws_is_unknown_with_its_error() {
    let r = lint_json(&fixture("throws", "ecosystem.config.cjs"), &[]);
    assert_eq!(r.code, 8);
    assert_eq!(r.doc["status"], "unknown");
    let reason = r.doc["reason"].as_str().unwrap();
    assert!(reason.contains("DATABASE_URL is not set"), "{reason}");
    assert!(reason.contains("ecosystem.config.cjs:5"), "{reason}");
    // What the file printed stayed out of stdout (the JSON parsed).
    assert_eq!(r.doc["apps"], serde_json::json!([]));
}

#[test]
fn a_file_that_never_returns_is_killed_at_the_deadline() {
    let started = Instant::now();
    let r = lint_json(
        &fixture("hangs", "ecosystem.config.cjs"),
        &["--timeout", "1"],
    );
    let took = started.elapsed();
    assert_eq!(r.code, 8);
    assert_eq!(r.doc["status"], "unknown");
    let reason = r.doc["reason"].as_str().unwrap();
    assert!(reason.contains("did not finish within 1.0 s"), "{reason}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(took >= Duration::from_secs(1), "took {took:?}");
}

#[test]
fn garbage_and_early_exit_are_unknown() {
    let r = lint_json(&fixture("garbage", "ecosystem.config.cjs"), &[]);
    assert_eq!(r.code, 8);
    assert!(r.doc["reason"].as_str().unwrap().contains("not JSON"));
    let r = lint_json(&fixture("exits", "ecosystem.config.cjs"), &[]);
    assert_eq!(r.code, 8);
    assert!(r.doc["reason"]
        .as_str()
        .unwrap()
        .contains("printed nothing"));
}

#[test]
fn port_clashes_are_errors() {
    let r = lint_json(&fixture("port-clash", "ecosystem.config.js"), &[]);
    assert_eq!(r.code, 4);
    assert_eq!(r.doc["status"], "problem");
    let pc = findings(&r.doc, "config.port-clash");
    assert_eq!(pc.len(), 2, "{:#}", r.doc);
    assert_eq!(pc[0]["severity"], "error");
    assert_eq!(pc[0]["evidence"]["app"], "api");
    assert_eq!(pc[0]["evidence"]["other_app"], "web");
    assert_eq!(pc[0]["evidence"]["port"], 3000);
    assert_eq!(pc[0]["evidence"]["key"], "args --port 3000");
    assert_eq!(pc[1]["evidence"]["app"], "admin");
    assert_eq!(
        pc[1]["evidence"]["environments"],
        serde_json::json!(["production"])
    );
    // DB_PORT 5432 is shared by design: no clash.
    assert!(!r.doc.to_string().contains("\"port\":5432"));
    assert_eq!(checks(&r.doc).len(), 2, "nothing else: {:#}", r.doc);
}

#[test]
fn a_missing_script_is_an_error_and_a_command_on_path_is_not() {
    let r = lint_json(&fixture("missing-script", "ecosystem.config.js"), &[]);
    assert_eq!(r.code, 4);
    let sm = findings(&r.doc, "config.script-missing");
    assert_eq!(sm.len(), 1, "{:#}", r.doc);
    assert_eq!(sm[0]["evidence"]["app"], "server");
    assert_eq!(sm[0]["evidence"]["key"], "script");
    assert!(sm[0]["evidence"]["path"]
        .as_str()
        .unwrap()
        .ends_with("server.js"));
    // `script: 'node'` is found on PATH, as PM2 finds it.
    assert_eq!(checks(&r.doc).len(), 1, "{:#}", r.doc);
}

#[test]
fn human_output_has_marks_and_no_colour_when_asked() {
    let out = pm2_doctor()
        .arg("lint")
        .arg(fixture("seed-before", "ecosystem.config.cjs"))
        .args(["--color", "never"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("! config.implicit-cluster"), "{text}");
    assert!(text.contains("! config.restart-policy"), "{text}");
    assert!(text.contains("i config.no-log-files"), "{text}");
    assert!(text.contains("✓ config.port-clash"), "{text}");
    assert!(
        text.contains("fix (manual): add exec_mode: 'fork'"),
        "{text}"
    );
    assert!(text.contains("0 errors, 2 warnings, 1 note"), "{text}");

    let out = pm2_doctor()
        .arg("lint")
        .arg(fixture("missing-script", "ecosystem.config.js"))
        .args(["--color", "always"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains('\u{1b}'), "colour forced: {text}");
    assert!(text.contains("✗"), "{text}");
}

#[test]
fn finds_the_ecosystem_file_in_the_current_folder() {
    let out = pm2_doctor()
        .current_dir(fixture("seed-after", ""))
        .args(["lint", "--format", "json"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["file"], "./ecosystem.config.cjs");
    assert_eq!(doc["apps"][0]["name"], "c3-backend");
}

#[test]
fn usage_errors_exit_16() {
    let empty = tempfile::tempdir().unwrap();
    let out = pm2_doctor()
        .current_dir(empty.path())
        .args(["lint", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no ecosystem file"), "{err}");
    assert!(err.contains("ecosystem.config.js"), "{err}");

    let out = pm2_doctor()
        .args(["lint", "testdata/ecosystem/no-such-file.js"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));

    std::fs::write(empty.path().join("ecosystem.toml"), "x = 1").unwrap();
    let out = pm2_doctor()
        .arg("lint")
        .arg(empty.path().join("ecosystem.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(16));
    assert!(String::from_utf8(out.stderr).unwrap().contains(".yml"));
}

#[test]
fn a_missing_node_is_unknown_not_a_crash() {
    let r = lint_json(
        &fixture("seed-before", "ecosystem.config.cjs"),
        &["--node", "/nonexistent/node"],
    );
    assert_eq!(r.code, 8);
    assert!(r.doc["reason"]
        .as_str()
        .unwrap()
        .contains("could not run /nonexistent/node"));
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}
