//! Every reporting subcommand's `--format json` output, produced by the real
//! binary on real inputs (fixture homes, homes broken by hand, ecosystem
//! files, a fake `pm2` that refuses), validated against its JSON Schema in
//! `docs/schema/` (draft 2020-12, formats checked). Each run also proves the
//! stdout contract: exactly one JSON document and nothing else (stderr may
//! say what it likes).
//!
//! The schemas are exact (`additionalProperties: false`): a key the code
//! adds without documenting it fails here. The check ids and severities in
//! `common.schema.json` are compared with `pm2-doctor checks` itself.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::doctor::{found_checks, BIN};
use common::lab::{write_mode, Lab};
use common::procfs::wait_for_exec;
use common::scenario::{self, Scenario};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCHEMA_DIR: &str = "docs/schema";
const COMMANDS: &[&str] = &[
    "diagnose",
    "repair",
    "undo",
    "resurrect",
    "backups",
    "ports",
    "lint",
    "checks",
];

/// Resolves the schemas' relative `$ref`s (`common.schema.json#/$defs/…`)
/// from `docs/schema/`, the way a file-based validator would.
struct SchemaFiles;

impl jsonschema::Retrieve for SchemaFiles {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let path = uri
            .as_str()
            .strip_prefix("file://")
            .ok_or_else(|| format!("only schema files are resolved, not {}", uri.as_str()))?;
        let path = path.replace("%20", " ").replace("%25", "%");
        Ok(serde_json::from_slice(&fs::read(path)?)?)
    }
}

fn schema_dir() -> PathBuf {
    fs::canonicalize(SCHEMA_DIR).unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn validator(name: &str) -> jsonschema::Validator {
    let path = schema_dir().join(format!("{name}.schema.json"));
    let schema = read_json(&path);
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_base_uri(format!(
            "file://{}",
            path.display()
                .to_string()
                .replace('%', "%25")
                .replace(' ', "%20")
        ))
        .with_retriever(SchemaFiles)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{}: not a valid schema: {e}", path.display()))
}

/// Fails with every violation, where it is, and the document.
fn assert_valid(name: &str, doc: &Value, what: &str) {
    let v = validator(name);
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the {name} document does not match docs/schema/{name}.schema.json:\n{}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(doc).unwrap()
    );
}

/// Stdout holds exactly one JSON document: no banner, no second document,
/// no trailing text; just the document and its newline.
fn one_document(out: &Output, what: &str) -> Value {
    let text =
        std::str::from_utf8(&out.stdout).unwrap_or_else(|_| panic!("{what}: stdout is not UTF-8"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.starts_with('{') || text.starts_with('['),
        "{what}: stdout does not start with the document:\n{text}\nstderr:\n{stderr}"
    );
    assert!(
        text.ends_with("}\n") || text.ends_with("]\n"),
        "{what}: stdout does not end with the document and one newline:\n{text}"
    );
    let mut docs = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let doc = match docs.next() {
        Some(Ok(v)) => v,
        other => panic!("{what}: stdout is not JSON ({other:?}):\n{text}\nstderr:\n{stderr}"),
    };
    assert!(
        docs.next().is_none(),
        "{what}: stdout holds more than one JSON document:\n{text}"
    );
    doc
}

/// Runs, checks the stdout contract, validates, and checks that the exit
/// code in the document (when it has one) is the process's.
fn run_valid(name: &str, cmd: &mut Command, what: &str) -> (i32, Value) {
    let out = cmd.output().unwrap();
    let code = out.status.code().expect("exited");
    let doc = one_document(&out, what);
    assert_valid(name, &doc, what);
    if let Some(c) = doc.get("exit_code") {
        assert_eq!(c.as_i64(), Some(i64::from(code)), "{what}: exit_code");
    }
    (code, doc)
}

fn bin() -> Command {
    Command::new(BIN)
}

fn all_ids() -> Vec<(String, String)> {
    let out = bin().args(["checks", "--format", "json"]).output().unwrap();
    let list = one_document(&out, "checks");
    list["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `checks` in a diagnosis: every id exactly once, in `checks` order.
fn assert_every_check_once(doc: &Value, what: &str) {
    let ids: Vec<String> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = all_ids().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, want, "{what}: one status per check id");
}

// ---------------------------------------------------------------- checks

#[test]
fn checks_document_and_the_schema_enums_agree_with_the_binary() {
    let (code, doc) = run_valid(
        "checks",
        bin().args(["checks", "--format", "json"]),
        "checks",
    );
    assert_eq!(code, 0);
    let listed = all_ids();
    assert_eq!(doc["checks"].as_array().unwrap().len(), listed.len());

    let common = read_json(&schema_dir().join("common.schema.json"));
    let defs = &common["$defs"];
    let enum_ids: Vec<String> = defs["check_id"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let ids: Vec<String> = listed.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        enum_ids, ids,
        "common.schema.json $defs.check_id lists the ids `pm2-doctor checks` prints, in its order"
    );

    // One severity rule per id, for check statuses and for findings alike.
    let rules = |def: &str, key: &str| -> BTreeMap<String, String> {
        defs[def]["allOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["if"]["properties"][key]["const"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    r["then"]["properties"]["severity"]["const"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    };
    let want: BTreeMap<String, String> = listed.into_iter().collect();
    assert_eq!(rules("check_severity", "id"), want, "check_severity");
    assert_eq!(rules("finding", "check"), want, "finding rules");

    // Every schema is documented, and every reporting command has one.
    let doc_text = fs::read_to_string("docs/json-schema.md").unwrap();
    for cmd in COMMANDS {
        let file = format!("{cmd}.schema.json");
        assert!(schema_dir().join(&file).is_file(), "no {file}");
        assert!(
            doc_text.contains(&file),
            "docs/json-schema.md never names {file}"
        );
    }
}

// ---------------------------------------------------------------- diagnose

fn diagnose_scenario(s: &Scenario, extra: &[&str], what: &str) -> (i32, Value) {
    run_valid(
        "diagnose",
        s.diagnose_cmd()
            .env("PATH", common::path_var())
            .args(["--format", "json"])
            .args(extra),
        what,
    )
}

#[test]
fn diagnose_of_the_seed_incident_replay_matches_the_schema() {
    // copy=false: read in place, with its recorded process table.
    let s = Scenario::prepare(Path::new("testdata/homes/seed-incident"));
    assert!(s.in_place(), "the seed incident is replayed in place");
    let (code, doc) = diagnose_scenario(&s, &[], "seed-incident");
    assert_eq!(code, 4);
    assert_every_check_once(&doc, "seed-incident");
    let checks = found_checks(&doc);
    for id in ["daemon.pid-stale", "process.orphan", "app.port-conflict"] {
        assert!(checks.contains(&id), "{checks:?}");
    }

    // With the ecosystem file linted: the config.* findings and evidence.
    let (_, doc) = diagnose_scenario(
        &s,
        &[
            "--ecosystem",
            "testdata/ecosystem/seed-before/ecosystem.config.cjs",
        ],
        "seed-incident --ecosystem",
    );
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "config.implicit-cluster"),
        "config findings are part of the diagnosis"
    );

    // --only: every other check is skipped, with a reason.
    let (_, doc) = diagnose_scenario(
        &s,
        &["--only", "pidfile.stale,dump.corrupt"],
        "seed-incident --only",
    );
    assert_every_check_once(&doc, "seed-incident --only");
}

#[test]
fn the_schemas_reject_what_the_contract_forbids() {
    // Guards the guard: a schema that accepts anything would pass every
    // other test here.
    let s = Scenario::prepare(Path::new("testdata/homes/seed-incident"));
    let (_, doc) = diagnose_scenario(&s, &[], "seed-incident");
    let v = validator("diagnose");
    let orphan = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .position(|f| f["check"] == "process.orphan")
        .unwrap();
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "a pid as a string",
            Box::new(move |d| d["findings"][orphan]["evidence"]["pid"] = "4960".into()),
        ),
        (
            "an undocumented evidence key",
            Box::new(move |d| d["findings"][orphan]["evidence"]["extra"] = 1.into()),
        ),
        (
            "a required evidence key missing",
            Box::new(move |d| {
                d["findings"][orphan]["evidence"]
                    .as_object_mut()
                    .unwrap()
                    .remove("start_time");
            }),
        ),
        (
            "another severity than the check's",
            Box::new(move |d| d["findings"][orphan]["severity"] = "warning".into()),
        ),
        (
            "a fix the check never proposes",
            Box::new(move |d| d["findings"][orphan]["fix"]["action"] = "quarantine-socket".into()),
        ),
        (
            "a reason on an ok check",
            Box::new(|d| d["checks"][0]["reason"] = "why".into()),
        ),
        (
            "an unknown check id",
            Box::new(|d| d["checks"][0]["id"] = "home.nope".into()),
        ),
        (
            "another schema_version",
            Box::new(|d| d["schema_version"] = 2.into()),
        ),
        (
            "a time that is not RFC 3339",
            Box::new(|d| d["started_at"] = "yesterday".into()),
        ),
    ];
    assert!(v.is_valid(&doc));
    for (what, mutate) in mutations {
        let mut bad = doc.clone();
        mutate(&mut bad);
        assert!(!v.is_valid(&bad), "the diagnose schema accepts {what}");
    }
}

#[test]
fn diagnose_of_every_fixture_home_matches_the_schema() {
    let dirs = scenario::all();
    assert!(dirs.len() >= 10, "fixture homes missing: {dirs:?}");
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let s = Scenario::prepare(&dir);
        let (_, doc) = diagnose_scenario(&s, &[], &name);
        assert_every_check_once(&doc, &name);
    }
}

// ---------------------------------------------------------------- homes broken by hand

fn new_lab() -> Lab {
    Lab::new("pm2doctor-schema-", &["pids"])
}

impl Lab {
    /// `pm2-doctor <sub> --home <home> --format json`, plus `--backup-dir`
    /// for the commands that keep runs.
    fn json(&self, sub: &str) -> Command {
        let mut c = self.doctor_cmd(&[sub]);
        c.args(["--format", "json"]);
        c
    }

    /// A file under the lab's root, with its mode.
    fn file(&self, rel: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.root().join(rel);
        write_mode(&p, text, mode);
        p
    }

    /// A process carrying PM2's app markers and this home: an orphan.
    fn orphan(&mut self) -> u32 {
        let pid = self.app_process("web", 0, "exec sleep 300");
        wait_for_exec(pid, "sleep");
        pid
    }

    /// A dump entry for app `name` running `script`, with `env`.
    fn entry(&self, name: &str, script: &Path, env: Value) -> Value {
        serde_json::json!({
            "name": name,
            "pm_exec_path": script,
            "pm_cwd": script.parent().unwrap(),
            "pm_pid_path": self.home.join(format!("pids/{name}-0.pid")),
            "env": env,
            "status": "online",
            "restart_time": 0,
        })
    }

    /// An owner-only dump.pm2 holding one app, `web`, running `script`.
    fn save_web(&self, script: &Path, env: Value) {
        let dump = Value::Array(vec![self.entry("web", script, env)]);
        self.file("home/dump.pm2", &dump.to_string(), 0o600);
    }
}

/// A pid that is not running: one of ours, reaped.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn repair_undo_and_backups_of_a_broken_home_match_their_schemas() {
    let mut lab = new_lab();
    let script = lab.file("apps/web.js", "// web\n", 0o644);
    let dead = dead_pid().to_string();
    lab.file("home/pm2.pid", &dead, 0o644);
    lab.file("home/pids/web-0.pid", &dead, 0o644);
    lab.stale_socket("rpc.sock");
    lab.stale_socket("pub.sock");
    let env = serde_json::json!({"PM2_HOME": lab.home, "API_TOKEN": "t0ken", "PORT": "0"});
    let dump = Value::Array(vec![lab.entry("web", &script, env)]);
    lab.file("home/dump.pm2.bak", &dump.to_string(), 0o644);
    lab.file("home/dump.pm2", r#"[{"name": "web", "pm_exe"#, 0o644);
    let orphan = lab.orphan();

    let (code, doc) = run_valid("diagnose", &mut lab.json("diagnose"), "diagnose");
    assert_eq!(code & 4, 4, "errors found");
    assert_every_check_once(&doc, "diagnose");
    let found = found_checks(&doc);
    for id in [
        "daemon.pid-stale",
        "socket.stale",
        "pidfile.stale",
        "dump.corrupt",
        "process.orphan",
    ] {
        assert!(found.contains(&id), "{id} not in {found:?}");
    }
    assert_eq!(doc["daemon"]["rpc"]["state"], "refused");

    // --dry-run: the whole plan, nothing changed.
    let (code, doc) = run_valid("repair", lab.json("repair").arg("--dry-run"), "dry run");
    assert_eq!(code, 4);
    assert_eq!(doc["mode"], "dry-run");
    let kinds: Vec<&str> = doc["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"]["kind"].as_str().unwrap())
        .collect();
    for k in ["terminate", "quarantine", "restore-dump"] {
        assert!(kinds.contains(&k), "{k} not planned: {kinds:?}");
    }

    // --safe-only: files moved aside; the kill and the restore held back.
    let (code, doc) = run_valid("repair", lab.json("repair").arg("--safe-only"), "safe only");
    assert_eq!(code & 1, 1, "something was fixed");
    assert!(!doc["held_back"].as_array().unwrap().is_empty());
    assert!(doc["after"].is_object());
    assert!(doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["safety"] == "safe" && r["state"] == "done"));

    // Run ids have a one-second resolution and `undo` takes the last one
    // in sort order: keep the two runs in different seconds.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    // --yes: the orphan is terminated, the dump restored, then (second
    // pass) the restored dump's secrets are made owner-only.
    let (code, doc) = run_valid(
        "repair",
        lab.json("repair").args(["--yes", "--grace", "1"]),
        "yes",
    );
    assert_eq!(code & 1, 1, "something was fixed");
    let killed = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"]["kind"] == "terminate")
        .expect("the orphan was terminated");
    assert_eq!(killed["processes"][0]["pid"], orphan);
    assert!(doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(
            |r| r["action"]["kind"] == "restore-dump" && !r["after"].as_array().unwrap().is_empty()
        ));

    let yes_run = doc["run_id"].as_str().unwrap().to_string();

    let (_, doc) = run_valid("backups", &mut lab.json("backups"), "backups");
    assert_eq!(doc["runs"].as_array().unwrap().len(), 2);

    let (code, doc) = run_valid("undo", &mut lab.json("undo"), "undo");
    assert_eq!(code, 0);
    assert_eq!(doc["run_id"], yes_run.as_str(), "undo takes the latest run");
    assert_eq!(doc["killed"][0][0], orphan, "{doc:#}");
    assert!(doc["restored"].as_u64().unwrap() > 0);
    let (_, doc) = run_valid("undo", &mut lab.json("undo"), "undo again");
    assert_eq!(doc["already_undone"], true);

    let (_, doc) = run_valid(
        "backups",
        lab.json("backups").args(["--prune", "--keep", "1"]),
        "backups --prune",
    );
    assert_eq!(doc["pruned"].as_array().unwrap().len(), 1);
    assert_eq!(doc["runs"][0]["state"], "undone");
}

#[test]
fn a_wedged_socket_and_a_missing_script_match_the_schemas() {
    let lab = new_lab();
    // Bound and kept, never accepted from: connects succeed, nothing answers.
    let _wedged = std::os::unix::net::UnixListener::bind(lab.home.join("rpc.sock")).unwrap();
    let gone = lab.root().join("gone/web.js");
    lab.save_web(&gone, serde_json::json!({"PM2_HOME": lab.home}));

    let (code, doc) = run_valid(
        "diagnose",
        lab.json("diagnose").args(["--timeout", "0.2"]),
        "wedged diagnose",
    );
    assert_eq!(code & 4, 4);
    assert_eq!(doc["daemon"]["rpc"]["state"], "timeout");
    assert_eq!(doc["daemon"]["rpc"]["connected"], true);

    // No daemon of this home to stop: unplanned; the missing script: manual.
    let (_, doc) = run_valid(
        "repair",
        lab.json("repair").args(["--dry-run", "--timeout", "0.2"]),
        "wedged dry run",
    );
    assert_eq!(doc["unplanned"][0]["check"], "daemon.unresponsive");
    assert!(doc["manual"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["check"] == "dump.missing-script"));
}

// ---------------------------------------------------------------- ports

#[test]
fn ports_documents_match_the_schema() {
    let seed = Path::new("testdata/homes/seed-incident");
    let (code, doc) = run_valid(
        "ports",
        bin()
            .env_clear()
            .args(["ports", "--format", "json", "--home"])
            .arg(seed.join("home"))
            .arg("--process-snapshot")
            .arg(seed.join("processes.json")),
        "ports of the seed incident",
    );
    assert_eq!(code, 0);
    assert!(doc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| !p["holders"].as_array().unwrap().is_empty()));

    // A live home: the port the dump's app wants is held by this test.
    let lab = new_lab();
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stranger.local_addr().unwrap().port();
    let script = lab.file("apps/web.js", "// web\n", 0o644);
    lab.save_web(
        &script,
        serde_json::json!({"PM2_HOME": lab.home, "PORT": port.to_string()}),
    );
    let (_, doc) = run_valid("ports", &mut lab.json("ports"), "ports of a live home");
    assert_eq!(doc["ports"][0]["port"], port);
    assert_eq!(doc["ports"][0]["source"], "env:PORT");
    if cfg!(target_os = "linux") {
        assert_eq!(doc["ports"][0]["holders"][0]["pid"], std::process::id());
        assert_eq!(doc["ports"][0]["holders"][0]["kind"], "not this home's");
    }
    drop(stranger);
}

// ---------------------------------------------------------------- lint

#[test]
fn lint_of_every_ecosystem_fixture_matches_the_schema() {
    let mut files: Vec<PathBuf> = fs::read_dir("testdata/ecosystem")
        .unwrap()
        .map(|e| e.unwrap().path())
        .flat_map(|d| {
            fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("ecosystem."))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let mut statuses = std::collections::BTreeSet::new();
    for f in &files {
        let what = format!("lint {}", f.display());
        let (_, doc) = run_valid(
            "lint",
            bin()
                .args(["lint", "--format", "json", "--timeout", "2"])
                .arg(f),
            &what,
        );
        statuses.insert(doc["status"].as_str().unwrap().to_string());
    }
    assert!(statuses.contains("problem") && statuses.contains("unknown"));
    let (_, doc) = run_valid(
        "lint",
        bin().args([
            "lint",
            "--format",
            "json",
            "--fix-preview",
            "testdata/ecosystem/yaml/ecosystem.config.yml",
        ]),
        "lint --fix-preview",
    );
    assert!(doc["fix_preview"].as_str().unwrap().contains("+++ b/"));
}

// ---------------------------------------------------------------- resurrect

/// A `pm2` that refuses every command (exit 1, a line on stderr), installed
/// like npm does (`<pkg>/bin/pm2` beside `<pkg>/package.json`) so that
/// diagnose reads its version too; and a dump holding `web`, whose script
/// exists. Returns the `pm2`.
fn web_and_a_refusing_pm2(lab: &Lab) -> PathBuf {
    let script = lab.file("apps/web.js", "// web\n", 0o644);
    lab.save_web(&script, serde_json::json!({"PM2_HOME": lab.home}));
    lab.file(
        "pm2pkg/package.json",
        r#"{"name": "pm2", "version": "7.0.4"}"#,
        0o644,
    );
    lab.file(
        "pm2pkg/bin/pm2",
        "#!/bin/sh\necho \"pm2: refusing $*\" >&2\nexit 1\n",
        0o755,
    )
}

#[test]
fn resurrect_with_a_pm2_that_refuses_matches_the_schema() {
    let lab = new_lab();
    let pm2 = web_and_a_refusing_pm2(&lab);
    let resurrect = |extra: &[&str], what: &str| {
        run_valid(
            "resurrect",
            lab.json("resurrect")
                .args(["--timeout", "0.5", "--watch", "0.1", "--call-timeout", "10"])
                .arg("--pm2")
                .arg(&pm2)
                .args(extra),
            what,
        )
    };

    let (code, doc) = resurrect(&[], "resurrect from the dump");
    assert_eq!(code, 4, "nothing came up");
    assert_eq!(doc["source"]["kind"], "dump");
    assert!(doc["dump_copy"].is_string());
    assert!(doc["calls"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == 1));

    let eco = lab.file(
        "apps/ecosystem.config.js",
        "module.exports = {apps: [{name: 'web', script: 'web.js'}]}\n",
        0o644,
    );
    let (_, doc) = resurrect(
        &["--ecosystem", eco.to_str().unwrap()],
        "resurrect from an ecosystem file",
    );
    assert_eq!(doc["source"]["kind"], "ecosystem");
    assert!(doc["dump_copy"].is_null());

    // The same fake is a pm2 CLI diagnose can read the version of.
    let (_, doc) = run_valid(
        "diagnose",
        lab.json("diagnose").arg("--pm2").arg(&pm2),
        "diagnose --pm2",
    );
    assert_eq!(doc["pm2_cli"]["version"], "7.0.4");
}

// ---------------------------------------------------------------- known gaps

#[test]
fn every_document_carries_schema_version() {
    let (_, checks) = run_valid(
        "checks",
        bin().args(["checks", "--format", "json"]),
        "checks",
    );
    assert_eq!(checks["schema_version"], 1, "checks");
    let mut lab = new_lab();
    let _ = lab.orphan();
    let _ = lab.json("repair").arg("--yes").output().unwrap();
    let out = lab.json("undo").output().unwrap();
    assert_eq!(one_document(&out, "undo")["schema_version"], 1, "undo");
}

#[test]
fn repair_resurrect_prints_one_document() {
    let lab = new_lab();
    let pm2 = web_and_a_refusing_pm2(&lab);
    let out = lab
        .json("repair")
        .args(["--yes", "--resurrect", "--watch", "0.1", "--timeout", "0.5"])
        .arg("--pm2")
        .arg(&pm2)
        .output()
        .unwrap();
    one_document(&out, "repair --resurrect");
}

#[test]
fn a_refused_resurrect_still_prints_a_document() {
    let lab = new_lab();
    lab.file("home/dump.pm2", "[{\"name\":", 0o600);
    let out = lab
        .json("resurrect")
        .args(["--timeout", "0.5", "--pm2", "/bin/false"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    one_document(&out, "refused resurrect");
}
