//! Every fixture home in `testdata/homes/<scenario>/` diagnosed through the
//! real binary with a replayed process table (`processes.json`): explicit
//! expectations from `scenario.json`, plus a JSON snapshot of the whole
//! report so any change in wording or evidence is reviewed.
//!
//! A scenario's layout, and how it is prepared before the run:
//! `tests/common/scenario.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::doctor::{found_checks, BIN};
use common::scenario::{self, Scenario};
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Command;

fn diagnose(p: &Scenario, extra: &[&str]) -> (i32, Value, String) {
    let out = p.diagnose_cmd().args(extra).output().unwrap();
    let code = out.status.code().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = if extra.contains(&"json") {
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    } else {
        Value::Null
    };
    (code, json, stdout)
}

/// Replaces what varies between runs and machines.
fn normalise(v: &mut Value, root: &str, tag: &str) {
    match v {
        Value::String(s) => *s = s.replace(root, tag),
        Value::Array(a) => a.iter_mut().for_each(|x| normalise(x, root, tag)),
        Value::Object(o) => {
            for key in [
                "started_at",
                "duration_ms",
                "file_mtime",
                "mtime",
                "elapsed_ms",
                "waited_ms",
            ] {
                if o.contains_key(key) {
                    o.insert(key.into(), Value::String(format!("[{key}]")));
                }
            }
            o.values_mut().for_each(|x| normalise(x, root, tag));
        }
        _ => {}
    }
}

#[test]
fn every_fixture_matches_its_expectations() {
    let all = scenario::all();
    assert!(all.len() >= 10, "fixtures missing: {all:?}");
    for dir in all {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let p = Scenario::prepare(&dir);
        let expect = &p.spec["expect"];
        let (code, mut json, _) = diagnose(&p, &["--format", "json"]);
        assert_eq!(
            Some(i64::from(code)),
            expect["exit_code"].as_i64(),
            "{name}: exit code"
        );
        assert_eq!(
            json["exit_code"], expect["exit_code"],
            "{name}: exit_code in JSON"
        );
        let mut got: Vec<String> = json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["check"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        got.dedup();
        let mut want: Vec<String> = expect["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        want.sort();
        assert_eq!(got, want, "{name}: the set of checks with findings");
        for id in expect["unknown"].as_array().into_iter().flatten() {
            let status = json["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| &c["id"] == id)
                .map(|c| c["status"].clone());
            assert!(
                matches!(
                    status.as_ref().and_then(Value::as_str),
                    Some("unknown" | "problem")
                ),
                "{name}: {id} should be incomplete, is {status:?}"
            );
            assert!(code & 8 == 8, "{name}: an incomplete check sets bit 8");
        }
        if let Some(orphans) = expect["orphans"].as_array() {
            let mut pids: Vec<&Value> = json["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["check"] == "process.orphan")
                .map(|f| &f["evidence"]["pid"])
                .collect();
            pids.sort_by_key(|v| v.as_u64());
            assert_eq!(
                pids,
                orphans.iter().collect::<Vec<_>>(),
                "{name}: orphan pids"
            );
        }
        if let Some(holders) = expect["port_holders"].as_object() {
            for (app, pid) in holders {
                let f = json["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["check"] == "app.port-conflict" && &f["evidence"]["app"] == app)
                    .unwrap_or_else(|| panic!("{name}: no port conflict for {app}"));
                assert_eq!(
                    &f["evidence"]["holder_pid"], pid,
                    "{name}: holder of {app}'s port"
                );
                assert_eq!(
                    f["fix"]["action"], "kill-port-holder",
                    "{name}: the orphan holder is killable"
                );
            }
        }
        if let Some(fixes) = expect["fix"].as_object() {
            for (check, action) in fixes {
                let f = json["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| &f["check"] == check)
                    .unwrap();
                assert_eq!(&f["fix"]["action"], action, "{name}: fix of {check}");
            }
        }
        let text = json.to_string();
        for secret in expect["secret_values"].as_array().into_iter().flatten() {
            assert!(
                !text.contains(secret.as_str().unwrap()),
                "{name}: a secret value leaked into the report"
            );
        }
        let cwd = std::env::current_dir().unwrap();
        normalise(&mut json, cwd.to_str().unwrap(), "[CWD]");
        normalise(&mut json, p.root.to_str().unwrap(), "[ROOT]");
        insta::assert_json_snapshot!(name.clone(), json);
    }
}

#[test]
fn human_output_names_every_problem_and_its_fix() {
    let p = Scenario::prepare(Path::new("testdata/homes/seed-incident"));
    let (code, _, text) = diagnose(&p, &["--color", "never"]);
    assert_eq!(code, 4);
    assert!(text.contains("✗ daemon.pid-stale"), "{text}");
    assert!(text.contains("pm2.pid names process 66696"), "{text}");
    assert!(text.contains("holding port 7780"), "{text}");
    assert!(
        text.contains("fix (disruptive): terminate process 4960"),
        "{text}"
    );
    assert!(text.contains("✓ daemon.duplicate"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes with --color never"
    );
    let (_, _, verbose) = diagnose(&p, &["--color", "never", "--verbose"]);
    assert!(
        verbose.contains("belongs_because: PM2 app markers"),
        "{verbose}"
    );
}

#[test]
fn only_restricts_the_checks_and_the_exit_code() {
    let p = Scenario::prepare(Path::new("testdata/homes/seed-incident"));
    let (code, json, _) = diagnose(&p, &["--format", "json", "--only", "pidfile.stale"]);
    assert_eq!(code, 0, "pidfile.stale is a warning");
    let statuses: Vec<(&str, &str)> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .filter(|(_, s)| *s != "skipped")
        .collect();
    assert_eq!(statuses, vec![("pidfile.stale", "problem")]);
    let (strict, _, _) = diagnose(
        &p,
        &["--format", "json", "--only", "pidfile.stale", "--strict"],
    );
    assert_eq!(strict, 4, "--strict counts warnings");
}

#[test]
fn prometheus_output_is_well_formed() {
    let p = Scenario::prepare(Path::new("testdata/homes/seed-incident"));
    let (_, _, text) = diagnose(&p, &["--format", "prometheus"]);
    let mut seen_types = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(seen_types.insert(name.to_string()), "duplicate TYPE {name}");
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad value in {line}");
        let name = series.split('{').next().unwrap();
        assert!(seen_types.contains(name), "{name} has no TYPE line");
        assert!(series.ends_with('}'), "labels not closed in {line}");
    }
    assert!(
        text.contains(r#"check="daemon.pid-stale",severity="error"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"app="chinvex-gateway",pm_id="",source="dump"} 3446"#),
        "{text}"
    );
}

#[test]
fn usage_errors_exit_16() {
    for args in [
        vec!["diagnose", "--no-such-flag"],
        vec!["diagnose", "--only", "daemon.nope"],
        vec!["diagnose", "--timeout", "forever"],
        vec!["frobnicate"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(16), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?} explains itself");
    }
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
}
#[test]
fn checks_lists_every_id_once() {
    let out = Command::new(BIN)
        .args(["checks", "--format", "json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema_version"], 1);
    let list: Vec<Value> = doc["checks"].as_array().unwrap().clone();
    let ids: Vec<&str> = list.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"daemon.pid-stale") && ids.contains(&"process.orphan"));
    let docs = fs::read_to_string("docs/checks.md").unwrap_or_default();
    for id in &ids {
        assert!(
            docs.contains(&format!("## `{id}`")),
            "docs/checks.md has no section for {id}"
        );
    }
}

#[test]
fn ports_names_who_holds_each_wanted_port() {
    let out = Command::new(BIN)
        .env_clear()
        .args([
            "ports",
            "--format",
            "json",
            "--home",
            "testdata/homes/seed-incident/home",
            "--process-snapshot",
            "testdata/homes/seed-incident/processes.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["ports"].as_array().unwrap();
    let row = |app: &str| rows.iter().find(|r| r["app"] == app).unwrap();
    assert_eq!(row("c3-backend")["port"], 7780);
    assert_eq!(row("c3-backend")["holders"][0]["pid"], 4960);
    assert_eq!(
        row("c3-backend")["holders"][0]["kind"],
        "an orphan of this home"
    );
    assert_eq!(row("chinvex-gateway")["port"], 7778);
    assert_eq!(row("chinvex-gateway")["source"], "error-log");
}

#[test]
fn diagnose_lints_the_ecosystem_file_it_is_given() {
    let p = Scenario::prepare(Path::new("testdata/homes/seed-incident"));
    let (code, json, _) = diagnose(
        &p,
        &[
            "--format",
            "json",
            "--ecosystem",
            "testdata/ecosystem/seed-before/ecosystem.config.cjs",
        ],
    );
    assert_eq!(code, 4);
    let checks = found_checks(&json);
    assert!(checks.contains(&"config.implicit-cluster"), "{checks:?}");
    assert!(checks.contains(&"config.restart-policy"), "{checks:?}");
    // Without --ecosystem the config checks are skipped, with the reason.
    let (_, plain, _) = diagnose(&p, &["--format", "json"]);
    let c = plain["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "config.implicit-cluster")
        .unwrap();
    assert_eq!(c["status"], "skipped");
    assert!(c["reason"].as_str().unwrap().contains("--ecosystem"));
}
