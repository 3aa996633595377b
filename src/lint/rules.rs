//! The lint rules: pure functions from the evaluated apps to findings, plus
//! the key changes each finding suggests (for `--fix-preview`).

use super::app::{locate_script, App, Guard, Interpreter, Located};
use crate::findings::{CheckId, Finding, Fix, Safety};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::Path;

/// The checks `lint` runs, in report order.
pub const RULES: &[CheckId] = &[
    CheckId::ConfigScriptMissing,
    CheckId::ConfigPortClash,
    CheckId::ConfigImplicitCluster,
    CheckId::ConfigRestartPolicy,
    CheckId::ConfigNoLogFiles,
];

/// The restart policy suggested everywhere (the incident's post-mortem,
/// with exponential backoff instead of a fixed delay).
pub const SUGGESTED_MAX_RESTARTS: u32 = 10;
pub const SUGGESTED_MIN_UPTIME_MS: u32 = 5000;
pub const SUGGESTED_EXP_BACKOFF_MS: u32 = 100;

/// Below this, the guard needs every crash to come faster than real apps
/// crash (node start-up, module loading, binding a port): it practically
/// never trips.
pub const MIN_CRASH_BUDGET_MS: f64 = 500.0;

/// One change to one app's keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Edit {
    /// A key the app does not have yet.
    Add {
        key: String,
        value: Value,
    },
    /// A new value for a key the app has.
    Change {
        key: String,
        value: Value,
    },
    Remove {
        key: String,
    },
}

impl Edit {
    pub fn key(&self) -> &str {
        match self {
            Edit::Add { key, .. } | Edit::Change { key, .. } | Edit::Remove { key } => key,
        }
    }
}

/// The changes suggested for one app.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suggestion {
    pub app: String,
    pub index: usize,
    pub edits: Vec<Edit>,
}

pub struct Ctx<'a> {
    pub file: &'a Path,
    pub file_dir: &'a Path,
    pub path_var: Option<&'a OsStr>,
}

impl Ctx<'_> {
    fn finding(&self, check: CheckId, app: &App, key: &str, summary: String, fix: Fix) -> Finding {
        Finding::new(check, summary, fix)
            .with("app", app.name.clone())
            .with("key", key)
            .with("file", self.file.display().to_string())
            .with("index", app.index)
    }
}

/// Runs every rule over `apps`.
pub fn check(apps: &[App], ctx: &Ctx) -> (Vec<Finding>, Vec<Suggestion>) {
    let mut findings = Vec::new();
    let mut suggestions = Vec::new();
    for app in apps {
        let mut edits = Vec::new();
        script_missing(app, ctx, &mut findings);
        implicit_cluster(app, ctx, &mut findings, &mut edits);
        restart_policy(app, ctx, &mut findings, &mut edits);
        no_log_files(app, ctx, &mut findings, &mut edits);
        if !edits.is_empty() {
            suggestions.push(Suggestion {
                app: app.name.clone(),
                index: app.index,
                edits,
            });
        }
    }
    port_clash(apps, ctx, &mut findings);
    let rank = |c: CheckId| RULES.iter().position(|r| *r == c).unwrap_or(usize::MAX);
    findings.sort_by_key(|f| {
        (
            rank(f.check),
            f.evidence.get("index").and_then(Value::as_u64).unwrap_or(0),
        )
    });
    (findings, suggestions)
}

fn set(app: &App, key: &str, value: Value) -> Edit {
    let key = key.to_string();
    if app.obj.contains_key(&key) {
        Edit::Change { key, value }
    } else {
        Edit::Add { key, value }
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn implicit_cluster(app: &App, ctx: &Ctx, out: &mut Vec<Finding>, edits: &mut Vec<Edit>) {
    if app.exec_mode().is_some() || !app.instances_means_cluster() {
        return;
    }
    let Interpreter::Node(interpreter) = app.interpreter(ctx.file_dir, ctx.path_var) else {
        return;
    };
    let Some((key, instances)) = app.get("instances") else {
        return;
    };
    let name = &app.name;
    let single = app.single_instance();
    let mode = if single { "fork" } else { "cluster" };
    let summary = if single {
        format!(
            "{name}: instances: 1 without exec_mode makes PM2 run this {interpreter} app in \
             cluster mode (a cluster master in the daemon plus one worker), not fork mode"
        )
    } else {
        format!(
            "{name}: instances: {} without exec_mode makes PM2 run this {interpreter} app in \
             cluster mode, implicitly",
            shown(instances)
        )
    };
    let description = if single {
        format!(
            "add exec_mode: 'fork' to {name}: one instance needs no cluster, and in fork mode \
             the app holds its own port, so a restart cannot race a cluster worker for it"
        )
    } else {
        format!(
            "add exec_mode: 'cluster' to {name} so the cluster mode PM2 already uses is \
             explicit (or exec_mode: 'fork' if every instance must be a plain process)"
        )
    };
    out.push(
        ctx.finding(
            CheckId::ConfigImplicitCluster,
            app,
            key,
            summary,
            Fix::new("set-exec-mode", Safety::Manual, description),
        )
        .with("instances", instances.clone())
        .with("interpreter", interpreter)
        .with("suggested_exec_mode", mode),
    );
    edits.push(set(app, "exec_mode", json!(mode)));
}

fn autorestart_off(app: &App) -> bool {
    matches!(
        app.get("autorestart").map(|(_, v)| v),
        Some(Value::Bool(false))
    ) || app.str("autorestart") == Some("false")
}

/// A number for evidence: an integer when it is one.
fn whole(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

fn secs(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{} ms", ms.max(0.0).round())
    }
}

fn restart_policy(app: &App, ctx: &Ctx, out: &mut Vec<Finding>, edits: &mut Vec<Edit>) {
    if autorestart_off(app) {
        return;
    }
    let g = app.guard();
    let budget = g.crash_budget_ms();
    let name = &app.name;
    let (m, u) = (g.max_restarts(), g.min_uptime());
    let (key, summary) = if g.is_unset() {
        (
            "max_restarts".to_string(),
            format!(
                "{name}: no restart policy (none of max_restarts, min_uptime, restart_delay, \
                 exp_backoff_restart_delay): with PM2's defaults a crash loop ends only if 16 \
                 crashes each come within 1 s of a start; an app that fails later, after warming \
                 up, restarts forever"
            ),
        )
    } else if budget < MIN_CRASH_BUDGET_MS {
        let window = secs(m * u);
        let defaults = match (g.max_restarts.is_none(), g.min_uptime_ms.is_none()) {
            (true, true) => " (PM2's defaults: max_restarts 16, min_uptime 1000 ms)",
            (true, false) => " (PM2's default max_restarts: 16)",
            (false, true) => " (PM2's default min_uptime: 1000 ms)",
            (false, false) => "",
        };
        match g.delay_key() {
            Some((dk, dv)) if budget <= 0.0 => (
                app.get(dk).map_or(dk, |(k, _)| k).to_string(),
                format!(
                    "{name}: {dk}: {dv} means PM2 never marks it errored: {m} restarts with \
                     those delays take longer than the {window} (min_uptime × max_restarts) in \
                     which PM2 counts crashes{defaults}, so a crash loop goes on forever"
                ),
            ),
            Some((dk, dv)) => (
                app.get(dk).map_or(dk, |(k, _)| k).to_string(),
                format!(
                    "{name}: {dk}: {dv} means PM2 practically never marks it errored: \
                     max_restarts {m} is reached only if every crash comes within {} of its \
                     start, because the delays use up the {window} (min_uptime × max_restarts) \
                     in which PM2 counts crashes{defaults}; a crash loop goes on forever",
                    secs(budget)
                ),
            ),
            None => (
                app.get("min_uptime")
                    .map_or("min_uptime", |(k, _)| k)
                    .to_string(),
                format!(
                    "{name}: min_uptime {u} ms: PM2 counts only crashes within {} of a start \
                     toward max_restarts {m}{defaults}, so a crash loop practically never stops",
                    secs(budget)
                ),
            ),
        }
    } else {
        return;
    };
    let suggested = Guard {
        max_restarts: Some(f64::from(SUGGESTED_MAX_RESTARTS)),
        min_uptime_ms: Some(f64::from(SUGGESTED_MIN_UPTIME_MS)),
        restart_delay_ms: None,
        exp_backoff_ms: Some(f64::from(SUGGESTED_EXP_BACKOFF_MS)),
    };
    let delay_key = app.get("restart_delay").map(|(k, _)| k.to_string());
    let description = format!(
        "set max_restarts: {SUGGESTED_MAX_RESTARTS}, min_uptime: {SUGGESTED_MIN_UPTIME_MS} and \
         exp_backoff_restart_delay: {SUGGESTED_EXP_BACKOFF_MS}{} on {name}: PM2 then backs off \
         between tries and marks the app errored after {SUGGESTED_MAX_RESTARTS} crashes that \
         each come within about {} of a start (raise min_uptime above the app's start-up time)",
        if delay_key.is_some() {
            ", and remove restart_delay"
        } else {
            ""
        },
        secs(suggested.crash_budget_ms()),
    );
    let mut finding = ctx
        .finding(
            CheckId::ConfigRestartPolicy,
            app,
            &key,
            summary,
            Fix::new("set-restart-policy", Safety::Manual, description),
        )
        .with("max_restarts", whole(m))
        .with("min_uptime_ms", whole(u))
        .with_opt("restart_delay_ms", g.restart_delay_ms.map(whole))
        .with_opt("exp_backoff_restart_delay_ms", g.exp_backoff_ms.map(whole));
    if budget.is_finite() {
        finding = finding.with("crash_window_ms", whole(budget.max(0.0).round()));
    }
    out.push(finding);
    if g.max_restarts != Some(f64::from(SUGGESTED_MAX_RESTARTS)) {
        edits.push(set(app, "max_restarts", json!(SUGGESTED_MAX_RESTARTS)));
    }
    if g.min_uptime_ms != Some(f64::from(SUGGESTED_MIN_UPTIME_MS)) {
        edits.push(set(app, "min_uptime", json!(SUGGESTED_MIN_UPTIME_MS)));
    }
    if g.exp_backoff_ms != Some(f64::from(SUGGESTED_EXP_BACKOFF_MS)) {
        edits.push(set(
            app,
            "exp_backoff_restart_delay",
            json!(SUGGESTED_EXP_BACKOFF_MS),
        ));
    }
    if let Some(key) = delay_key {
        edits.push(Edit::Remove { key });
    }
}

/// PM2's log file name for an app (`Common.prepareAppConf`).
fn log_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '\\') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn no_log_files(app: &App, ctx: &Ctx, out: &mut Vec<Finding>, edits: &mut Vec<Edit>) {
    if ["error_file", "out_file", "log_file"]
        .iter()
        .any(|k| app.has(k))
    {
        return;
    }
    let name = &app.name;
    let stem = log_stem(name);
    let (err, outf) = (
        format!("logs/{stem}-error.log"),
        format!("logs/{stem}-out.log"),
    );
    out.push(
        ctx.finding(
            CheckId::ConfigNoLogFiles,
            app,
            "error_file",
            format!(
                "{name}: no error_file or out_file: its logs go to $PM2_HOME/logs/{stem}-out.log \
                 and {stem}-error.log, where a crash loop's stack traces pile up in the PM2 home"
            ),
            Fix::new(
                "set-log-files",
                Safety::Manual,
                format!(
                    "set error_file: '{err}' and out_file: '{outf}' on {name} (relative to its \
                     cwd) and rotate them"
                ),
            ),
        )
        .with("default_out", format!("$PM2_HOME/logs/{stem}-out.log")),
    );
    edits.push(set(app, "error_file", json!(err)));
    edits.push(set(app, "out_file", json!(outf)));
}

fn script_missing(app: &App, ctx: &Ctx, out: &mut Vec<Finding>) {
    let name = &app.name;
    let Some(script) = app.script() else {
        let key = app.get("script").map_or("script", |(k, _)| k);
        out.push(ctx.finding(
            CheckId::ConfigScriptMissing,
            app,
            key,
            format!("{name}: no script: PM2 refuses the app (\"No script path\")"),
            Fix::new(
                "fix-script",
                Safety::Manual,
                format!("add script to {name}: the file or command PM2 should run"),
            ),
        ));
        return;
    };
    let key = app.get("script").map_or("script", |(k, _)| k);
    let base = app.base_dir(ctx.file_dir);
    let Located::Missing(path) = locate_script(script, &base, ctx.path_var) else {
        return;
    };
    let cwd_missing = app.str("cwd").is_some() && !base.exists();
    let summary = if cwd_missing {
        format!(
            "{name}: its cwd {} does not exist, so neither does its script {script}: pm2 start \
             fails with \"Script not found\"",
            base.display()
        )
    } else {
        format!(
            "{name}: script {script} does not exist ({}) and is not a command on PATH: pm2 \
             start fails with \"Script not found\"",
            path.display()
        )
    };
    out.push(
        ctx.finding(
            CheckId::ConfigScriptMissing,
            app,
            if cwd_missing { "cwd" } else { key },
            summary,
            Fix::new(
                "fix-script",
                Safety::Manual,
                format!(
                    "point script (and cwd) of {name} at a file that exists, or build the app \
                     first if {script} is a build output"
                ),
            ),
        )
        .with("path", path.display().to_string()),
    );
}

/// PM2 loads JavaScript ecosystem files with `require()` and takes what it
/// returns: an ES module's (or transpiled module's) default export arrives
/// wrapped as `{default: …}`, where PM2 finds no apps and stops with "No
/// script path"; on Node before 20.19/22.12 `require()` of an ES module
/// fails outright. `how` is what the evaluation saw (`default` or
/// `require:ERR_…`). One error per app PM2 will not start.
pub fn pm2_cannot_load(apps: &[App], ctx: &Ctx, how: &str) -> Vec<Finding> {
    let file = ctx.file.file_name().map_or_else(
        || ctx.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (why, pm2_error) = match how.strip_prefix("require:") {
        Some(code) => (
            format!("this node refuses to require() the ES module ({code})"),
            "File ecosystem… malformated",
        ),
        None => (
            "require() returns its default export wrapped as {default: …}, where PM2 finds no \
             apps"
                .to_string(),
            "No script path - aborting",
        ),
    };
    let fix = || {
        Fix::new(
            "use-commonjs",
            Safety::Manual,
            "export the config with module.exports = { apps: [...] } from an \
             ecosystem.config.cjs (PM2 loads ecosystem files with require(), which does not \
             unwrap default exports); `export const apps = [...]` also works, but only on \
             Node 20.19+/22.12+",
        )
    };
    let mut out = Vec::new();
    for app in apps {
        out.push(
            ctx.finding(
                CheckId::ConfigScriptMissing,
                app,
                "default",
                format!(
                    "{}: PM2 will not see this app: it loads {file} with require(), and {why}, so \
                     pm2 start fails with \"{pm2_error}\"",
                    app.name
                ),
                fix(),
            )
            .with("pm2_load", how),
        );
    }
    if out.is_empty() {
        out.push(
            Finding::new(
                CheckId::ConfigScriptMissing,
                format!(
                    "{file}: PM2 loads it with require(), and {why}, so pm2 start fails with \
                     \"{pm2_error}\""
                ),
                fix(),
            )
            .with("app", Value::Null)
            .with("key", "default")
            .with("file", ctx.file.display().to_string())
            .with("pm2_load", how),
        );
    }
    out
}

/// Env keys that name a port another service listens on (a client
/// setting), not the app's own: `DB_PORT`, `REDIS_PORT`, …
const CLIENT_PORT_WORDS: &[&str] = &[
    "DB",
    "DATABASE",
    "REDIS",
    "PG",
    "POSTGRES",
    "POSTGRESQL",
    "MYSQL",
    "MARIADB",
    "MONGO",
    "MONGODB",
    "SMTP",
    "MAIL",
    "EMAIL",
    "IMAP",
    "POP3",
    "AMQP",
    "RABBIT",
    "RABBITMQ",
    "MQTT",
    "KAFKA",
    "NATS",
    "ELASTIC",
    "ELASTICSEARCH",
    "ES",
    "OPENSEARCH",
    "MEMCACHE",
    "MEMCACHED",
    "CACHE",
    "LDAP",
    "UPSTREAM",
    "REMOTE",
    "TARGET",
    "PROXY",
    "STATSD",
    "SYSLOG",
    "OTEL",
    "JAEGER",
    "ZIPKIN",
    "CONSUL",
    "ETCD",
    "VAULT",
    "MINIO",
    "S3",
    "CLICKHOUSE",
    "CASSANDRA",
    "NEO4J",
    "INFLUX",
    "INFLUXDB",
    "SSH",
    "FTP",
    "SFTP",
];

/// `PORT`, or `*_PORT` unless the prefix names a service the app connects to.
pub fn is_port_key(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    if upper == "PORT" {
        return true;
    }
    let Some(prefix) = upper.strip_suffix("_PORT") else {
        return false;
    };
    !prefix.is_empty() && !prefix.split('_').any(|w| CLIENT_PORT_WORDS.contains(&w))
}

fn port_value(v: &Value) -> Option<u16> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()?
        }
        _ => return None,
    };
    u16::try_from(n).ok().filter(|p| *p > 0)
}

/// Ports in `args`: `--port N`, `--port=N`, `-p N`.
pub fn arg_ports(args: &Value) -> Vec<(u16, String)> {
    let tokens: Vec<String> = match args {
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut found = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let (value, shown) = if let Some(v) = t.strip_prefix("--port=") {
            (Some(v), t.clone())
        } else if t == "--port" || t == "-p" {
            (
                tokens.get(i + 1).map(String::as_str),
                format!("{t} {}", tokens.get(i + 1).map_or("", String::as_str)),
            )
        } else {
            (None, String::new())
        };
        if let Some(p) = value.and_then(|v| port_value(&Value::String(v.to_string()))) {
            found.push((p, format!("args {shown}")));
        }
    }
    found
}

/// The ports one app wants in one environment (`None`: the default `env`;
/// `Some(x)`: `env` overlaid with `env_x`, as `--env x` does).
fn claims<'a>(app: &App<'a>, env_name: Option<&str>) -> BTreeMap<u16, String> {
    let mut ports = BTreeMap::new();
    if let Some((k, v)) = app.get("port") {
        if let Some(p) = port_value(v) {
            ports.insert(p, k.to_string());
        }
    }
    let mut env: BTreeMap<&'a str, (&'a Value, String)> = BTreeMap::new();
    let mut layers: Vec<(&'a Value, String)> = Vec::new();
    if let Some(v) = app.obj.get("env") {
        layers.push((v, "env".into()));
    }
    if let Some(x) = env_name {
        let key = format!("env_{x}");
        if let Some(v) = app.obj.get(&key) {
            layers.push((v, key));
        }
    }
    for (layer, label) in layers {
        if let Value::Object(m) = layer {
            for (k, v) in m {
                env.insert(k.as_str(), (v, format!("{label}.{k}")));
            }
        }
    }
    for (k, (v, label)) in env {
        if is_port_key(k) {
            if let Some(p) = port_value(v) {
                ports.entry(p).or_insert(label);
            }
        }
    }
    if let Some((_, args)) = app.get("args") {
        for (p, label) in arg_ports(args) {
            ports.entry(p).or_insert(label);
        }
    }
    ports
}

fn env_names(apps: &[App]) -> BTreeSet<String> {
    apps.iter()
        .flat_map(|a| a.obj.iter())
        .filter(|(k, v)| v.is_object() && k.len() > 4)
        .filter_map(|(k, _)| k.strip_prefix("env_").map(str::to_string))
        .collect()
}

struct Clash {
    first: usize,
    first_key: String,
    key: String,
    envs: Vec<String>,
}

fn port_clash(apps: &[App], ctx: &Ctx, out: &mut Vec<Finding>) {
    let mut envs: Vec<Option<String>> = vec![None];
    envs.extend(env_names(apps).into_iter().map(Some));
    // (later app, port) → the clash, over every environment it happens in.
    let mut clashes: BTreeMap<(usize, u16), Clash> = BTreeMap::new();
    for env in &envs {
        let mut by_port: BTreeMap<u16, Vec<(usize, String)>> = BTreeMap::new();
        for (i, app) in apps.iter().enumerate() {
            for (p, key) in claims(app, env.as_deref()) {
                by_port.entry(p).or_default().push((i, key));
            }
        }
        let env_label = env.clone().unwrap_or_else(|| "default".into());
        for (port, wanted) in by_port {
            let Some((first, first_key)) = wanted.first().cloned() else {
                continue;
            };
            for (later, key) in wanted.into_iter().skip(1) {
                let c = clashes.entry((later, port)).or_insert_with(|| Clash {
                    first,
                    first_key: first_key.clone(),
                    key,
                    envs: Vec::new(),
                });
                c.envs.push(env_label.clone());
            }
        }
    }
    for ((later, port), c) in clashes {
        let (app, other) = (&apps[later], &apps[c.first]);
        let when = if c.envs.iter().any(|e| e == "default") {
            String::new()
        } else {
            format!(" (with --env {})", c.envs.join(" or --env "))
        };
        let summary = format!(
            "{}: port {port} ({}) is also wanted by {} ({}){when}: whichever starts second \
             fails with EADDRINUSE and crash-loops",
            app.name, c.key, other.name, c.first_key
        );
        let key = c.key.clone();
        let mut f = ctx
            .finding(
                CheckId::ConfigPortClash,
                app,
                &key,
                summary,
                Fix::new(
                    "change-port",
                    Safety::Manual,
                    format!(
                        "give {} a port that {} does not use ({} in both)",
                        app.name, other.name, port
                    ),
                ),
            )
            .with("port", port)
            .with("other_app", other.name.clone())
            .with("other_key", c.first_key)
            .with("environments", c.envs);
        f.evidence.insert("index", json!(later));
        out.push(f);
    }
}

/// The app objects of a config (anything else is reported, not linted).
pub fn objects(apps: &[Value]) -> (Vec<App<'_>>, Vec<String>) {
    let mut ok = Vec::new();
    let mut skipped = Vec::new();
    for (i, v) in apps.iter().enumerate() {
        match v {
            Value::Object(m) => ok.push(App::new(i, m)),
            other => skipped.push(format!(
                "app #{} is {}, not an object: not checked (PM2 rejects it too)",
                i + 1,
                super::load::kind_of(other)
            )),
        }
    }
    (ok, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn run(apps: Value) -> (Vec<Finding>, Vec<Suggestion>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        for f in ["server.js", "worker.js", "api.js"] {
            std::fs::write(dir.path().join(f), "require('http')\n").unwrap();
        }
        let file: PathBuf = dir.path().join("ecosystem.config.js");
        let list = match apps {
            Value::Array(a) => a,
            _ => panic!(),
        };
        let (objs, _) = objects(&list);
        let ctx = Ctx {
            file: &file,
            file_dir: dir.path(),
            path_var: Some(OsStr::new("")),
        };
        let (f, s) = check(&objs, &ctx);
        (f, s, dir)
    }

    fn ids(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.check.as_str()).collect()
    }

    const GOOD: &str = r#"{"exec_mode": "fork", "max_restarts": 10, "min_uptime": 5000,
        "exp_backoff_restart_delay": 100, "error_file": "e.log", "out_file": "o.log"}"#;

    fn good(extra: Value) -> Value {
        let mut v: Value = serde_json::from_str(GOOD).unwrap();
        if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
            m.extend(x);
        }
        v
    }

    #[test]
    fn a_well_configured_app_is_clean() {
        let (f, s, _d) = run(json!([good(json!({"name": "a", "script": "server.js"}))]));
        assert!(f.is_empty(), "{f:?}");
        assert!(s.is_empty());
    }

    #[test]
    fn implicit_cluster_for_every_instances_value() {
        for (inst, mode) in [
            (json!(1), "fork"),
            (json!("1"), "fork"),
            (json!(2), "cluster"),
            (json!("max"), "cluster"),
            (json!(0), "cluster"),
            (json!(-1), "cluster"),
        ] {
            let mut app = good(json!({"name": "a", "script": "server.js", "instances": inst}));
            app.as_object_mut().unwrap().remove("exec_mode");
            let (f, s, _d) = run(json!([app]));
            assert_eq!(ids(&f), ["config.implicit-cluster"], "{inst}");
            assert_eq!(f[0].evidence["suggested_exec_mode"], mode);
            assert_eq!(f[0].evidence["key"], "instances");
            assert_eq!(
                s[0].edits,
                [Edit::Add {
                    key: "exec_mode".into(),
                    value: json!(mode)
                }]
            );
        }
    }

    #[test]
    fn no_implicit_cluster_for_python_or_explicit_mode() {
        let mut py = good(json!({"name": "py", "script": "x.py", "instances": 2}));
        py.as_object_mut().unwrap().remove("exec_mode");
        let (f, _, _d) = run(json!([
            py,
            good(
                json!({"name": "c", "script": "server.js", "instances": 4, "exec_mode": "cluster"})
            ),
        ]));
        // x.py does not exist: only that is reported.
        assert_eq!(ids(&f), ["config.script-missing"]);
    }

    #[test]
    fn restart_policy_cases() {
        let base = json!({"name": "a", "script": "server.js", "exec_mode": "fork",
            "error_file": "e", "out_file": "o"});
        let with = |extra: Value| {
            let mut v = base.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        // Nothing set.
        let (f, s, _d) = run(json!([base.clone()]));
        assert_eq!(ids(&f), ["config.restart-policy"]);
        assert!(f[0].summary.contains("no restart policy"));
        assert_eq!(s[0].edits.len(), 3);
        // The incident: restart_delay defeats max_restarts.
        let (f, s, _d) = run(json!([with(
            json!({"max_restarts": 10, "restart_delay": 1000})
        )]));
        assert_eq!(ids(&f), ["config.restart-policy"]);
        assert!(
            f[0].summary.contains("never marks it errored"),
            "{}",
            f[0].summary
        );
        assert_eq!(f[0].evidence["key"], "restart_delay");
        assert!(s[0].edits.contains(&Edit::Remove {
            key: "restart_delay".into()
        }));
        assert!(!s[0].edits.iter().any(|e| e.key() == "max_restarts"));
        // Backoff with PM2's defaults never errors either.
        let (f, _, _d) = run(json!([with(json!({"exp_backoff_restart_delay": 100}))]));
        assert_eq!(ids(&f), ["config.restart-policy"]);
        // A tiny min_uptime.
        let (f, _, _d) = run(json!([with(json!({"min_uptime": 100}))]));
        assert!(f[0].summary.contains("min_uptime"), "{}", f[0].summary);
        // The post-mortem's policy works: restart_delay 2000 < min_uptime 5000.
        let (f, _, _d) = run(json!([with(
            json!({"max_restarts": 10, "min_uptime": 5000, "restart_delay": 2000})
        )]));
        assert!(f.is_empty(), "{f:?}");
        // No restarts at all: nothing to guard.
        let (f, _, _d) = run(json!([with(json!({"autorestart": false}))]));
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn port_keys() {
        for k in ["PORT", "port", "HTTP_PORT", "API_PORT", "ADMIN_HTTP_PORT"] {
            assert!(is_port_key(k), "{k}");
        }
        for k in [
            "DB_PORT",
            "REDIS_PORT",
            "PGPORT",
            "SUPPORT",
            "_PORT",
            "PORTS",
            "MAIL_SMTP_PORT",
        ] {
            assert!(!is_port_key(k), "{k}");
        }
        assert_eq!(
            arg_ports(&json!(
                "--port 3000 -p 4000 --port=5000 --host x --port nope"
            )),
            [
                (3000, "args --port 3000".to_string()),
                (4000, "args -p 4000".to_string()),
                (5000, "args --port=5000".to_string()),
            ]
        );
        assert_eq!(arg_ports(&json!(["--port", 8080])).len(), 1);
        assert!(arg_ports(&json!(["--port", "99999"])).is_empty());
    }

    #[test]
    fn port_clashes_name_the_later_app() {
        let (f, _, _d) = run(json!([
            good(
                json!({"name": "web", "script": "server.js", "env": {"PORT": 3000, "DB_PORT": 5432}})
            ),
            good(
                json!({"name": "api", "script": "api.js", "args": "--port 3000", "env": {"DB_PORT": "5432"}})
            ),
            good(json!({"name": "worker", "script": "worker.js",
                "env": {"PORT": "4000"}, "env_production": {"PORT": "3000"}})),
        ]));
        assert_eq!(ids(&f), ["config.port-clash", "config.port-clash"]);
        assert_eq!(f[0].evidence["app"], "api");
        assert_eq!(f[0].evidence["other_app"], "web");
        assert_eq!(f[0].evidence["port"], 3000);
        assert_eq!(f[0].evidence["key"], "args --port 3000");
        assert_eq!(f[1].evidence["app"], "worker");
        assert_eq!(f[1].evidence["environments"], json!(["production"]));
        assert!(f[1].summary.contains("--env production"));
    }

    #[test]
    fn missing_scripts_and_commands_on_path() {
        let bin = tempfile::tempdir().unwrap();
        let tool = bin.path().join("mytool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ecosystem.config.js");
        let list = vec![
            good(json!({"name": "gone", "script": "dist/server.js"})),
            good(json!({"name": "cmd", "script": "mytool"})),
            good(json!({"name": "none"})),
            good(json!({"name": "badcwd", "script": "x.js", "cwd": "nowhere"})),
        ];
        let (objs, _) = objects(&list);
        let ctx = Ctx {
            file: &file,
            file_dir: dir.path(),
            path_var: Some(bin.path().as_os_str()),
        };
        let (f, _) = check(&objs, &ctx);
        let apps: Vec<&str> = f
            .iter()
            .filter(|f| f.check == CheckId::ConfigScriptMissing)
            .map(|f| f.evidence["app"].as_str().unwrap())
            .collect();
        assert_eq!(apps, ["gone", "none", "badcwd"]);
        assert!(f[2].summary.contains("cwd"), "{}", f[2].summary);
    }

    #[test]
    fn non_objects_are_skipped_with_a_note() {
        let list = vec![json!("web"), json!({"name": "a"})];
        let (objs, skipped) = objects(&list);
        assert_eq!(objs.len(), 1);
        assert!(skipped[0].contains("app #1 is a string"));
    }
}
