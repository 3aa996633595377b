//! One ecosystem app as PM2 7 reads it: its keys (with the schema's aliases)
//! and what PM2 derives from them — the interpreter, the exec mode and the
//! arithmetic of the restart guard. Pure functions over a JSON object, plus
//! the few file-system looks PM2 itself makes (does the script exist, is it
//! a binary).

use serde_json::{Map, Value};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// PM2's key aliases (`lib/API/schema.json`): the canonical key first.
const ALIASES: &[(&str, &[&str])] = &[
    ("script", &["exec"]),
    ("exec_interpreter", &["interpreter"]),
    ("out_file", &["out", "output", "out_log"]),
    ("error_file", &["error", "err", "err_file", "err_log"]),
    ("log_file", &["log"]),
];

/// PM2's defaults (`lib/God.js` handleExit).
pub const DEFAULT_MAX_RESTARTS: f64 = 16.0;
pub const DEFAULT_MIN_UPTIME_MS: f64 = 1000.0;
/// The cap of `exp_backoff_restart_delay` (`lib/God.js`).
const EXP_BACKOFF_CAP_MS: f64 = 15000.0;

#[derive(Clone, Debug)]
pub struct App<'a> {
    /// Position in the `apps` array.
    pub index: usize,
    pub name: String,
    pub obj: &'a Map<String, Value>,
}

impl<'a> App<'a> {
    pub fn new(index: usize, obj: &'a Map<String, Value>) -> Self {
        let name = match obj.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            // PM2 names an unnamed app after its script, minus the extension.
            _ => script_of(obj)
                .and_then(|s| {
                    Path::new(s)
                        .file_stem()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| format!("app #{}", index + 1)),
        };
        App { index, name, obj }
    }

    /// The value of `key` or of one of its aliases, with the spelling found.
    /// `null` counts as unset (JSON cannot say `undefined`).
    pub fn get(&self, key: &str) -> Option<(&'a str, &'a Value)> {
        let aliases = ALIASES
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, a)| *a)
            .unwrap_or(&[]);
        std::iter::once(key)
            .chain(aliases.iter().copied())
            .find_map(|k| self.obj.get_key_value(k))
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.as_str(), v))
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(|(_, v)| v.as_str())
    }

    pub fn script(&self) -> Option<&'a str> {
        script_of(self.obj)
    }

    /// `exec_mode` as PM2 normalises it (`fork`/`fork_mode` → `fork`).
    pub fn exec_mode(&self) -> Option<String> {
        let (_, v) = self.get("exec_mode")?;
        let s = match v {
            Value::String(s) if !s.is_empty() => s.as_str(),
            _ => return None,
        };
        Some(s.strip_suffix("_mode").unwrap_or(s).to_string())
    }

    /// The folder PM2 resolves `script` against: `cwd` (relative to the
    /// ecosystem file's folder) or the ecosystem file's folder.
    pub fn base_dir(&self, file_dir: &Path) -> PathBuf {
        match self.str("cwd") {
            Some(c) if !c.is_empty() => file_dir.join(c),
            _ => file_dir.to_path_buf(),
        }
    }

    /// Which interpreter PM2 would run the script with
    /// (`Common.sink.resolveInterpreter`).
    pub fn interpreter(&self, file_dir: &Path, path_var: Option<&OsStr>) -> Interpreter {
        if let Some((_, v)) = self.get("exec_interpreter") {
            let Some(s) = v.as_str() else {
                return Interpreter::Unknown(format!("interpreter is {v}, not a string"));
            };
            return classify_interpreter(s);
        }
        let Some(script) = self.script() else {
            return Interpreter::Unknown("no script".into());
        };
        let ext = Path::new(script)
            .extension()
            .map(|e| e.to_string_lossy().into_owned());
        match ext.as_deref() {
            Some("js") => return Interpreter::Node("node (.js)".into()),
            Some("ts" | "tsx") => return Interpreter::Node("bun or node (.ts)".into()),
            Some(e @ ("sh" | "py" | "rb" | "php" | "pl" | "coffee" | "ls")) => {
                return Interpreter::Other(format!("{} (.{e})", ext_interpreter(e)))
            }
            _ => {}
        }
        // No interpreter and no known extension (.cjs and .mjs included):
        // PM2 runs binaries directly and everything else with node.
        let path = match locate_script(script, &self.base_dir(file_dir), path_var) {
            Located::Found(p) => p,
            Located::Missing(_) => {
                return Interpreter::Unknown(format!("the script {script} does not exist"))
            }
            Located::Unsure(e) => return Interpreter::Unknown(e),
        };
        match is_binary(&path) {
            Ok(true) => Interpreter::Other("none (a binary)".into()),
            Ok(false) => Interpreter::Node(match ext {
                Some(e) => format!("node (.{e})"),
                None => "node (a text file without extension)".into(),
            }),
            Err(e) => Interpreter::Unknown(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Does `instances` make PM2 choose cluster mode when no exec_mode is
    /// set (`Common.verifyConfs` then `determineExecMode`)?
    pub fn instances_means_cluster(&self) -> bool {
        self.get("instances")
            .is_some_and(|(_, v)| instances_means_cluster(v))
    }

    /// `instances` as a number when it is exactly 1.
    pub fn single_instance(&self) -> bool {
        match self.get("instances").map(|(_, v)| v) {
            Some(Value::Number(n)) => n.as_f64() == Some(1.0),
            Some(Value::String(s)) => parse_int(s) == Some(1),
            _ => false,
        }
    }

    /// The exec mode PM2 ends up with; `None` when it depends on a script
    /// that cannot be looked at.
    pub fn effective_exec_mode(&self, file_dir: &Path, path_var: Option<&OsStr>) -> Option<String> {
        if let Some(m) = self.exec_mode() {
            return Some(m);
        }
        if !self.instances_means_cluster() {
            return Some("fork".into());
        }
        match self.interpreter(file_dir, path_var) {
            Interpreter::Node(_) => Some("cluster".into()),
            Interpreter::Other(_) => Some("fork".into()),
            Interpreter::Unknown(_) => None,
        }
    }

    /// A duration key in milliseconds (`min_uptime` accepts `"5s"`, `"2m"`, `"1h"`).
    pub fn millis(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|(_, v)| millis(v))
    }

    pub fn number(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|(_, v)| number(v))
    }

    /// The restart guard as PM2 would apply it to this app.
    pub fn guard(&self) -> Guard {
        Guard {
            max_restarts: self.number("max_restarts"),
            min_uptime_ms: self.millis("min_uptime"),
            restart_delay_ms: self.millis("restart_delay"),
            exp_backoff_ms: self.millis("exp_backoff_restart_delay"),
        }
    }
}

fn script_of(obj: &Map<String, Value>) -> Option<&str> {
    ["script", "exec"]
        .iter()
        .find_map(|k| obj.get(*k))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn ext_interpreter(ext: &str) -> &'static str {
    match ext {
        "sh" => "bash",
        "py" => "python",
        "rb" => "ruby",
        "php" => "php",
        "pl" => "perl",
        "coffee" => "coffee",
        _ => "lsc",
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interpreter {
    /// node or bun: `instances` without `exec_mode` means cluster mode.
    Node(String),
    Other(String),
    Unknown(String),
}

/// PM2 tests the basename: `node`, `*node`, `bun`, `*bun` (so `node.exe`
/// is *not* node to PM2, and neither is `none`).
pub fn classify_interpreter(s: &str) -> Interpreter {
    let base = s.rsplit(['/', '\\']).next().unwrap_or(s);
    if base.ends_with("node") || base.ends_with("bun") {
        Interpreter::Node(base.to_string())
    } else if s.contains("node@") {
        // `node@18`: PM2 resolves it to an nvm-installed node.
        Interpreter::Node(s.to_string())
    } else {
        Interpreter::Other(base.to_string())
    }
}

/// `instances` after PM2's parsing ('max' → 0, strings through parseInt,
/// NaN → 0): cluster when ≥ 1, 0 or -1.
pub fn instances_means_cluster(v: &Value) -> bool {
    let n = match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) if s == "max" => 0.0,
        Value::String(s) => parse_int(s).unwrap_or(0) as f64,
        // `true >= 1` holds in JavaScript; `false` is neither >= 1 nor === 0.
        Value::Bool(b) => return *b,
        _ => return false,
    };
    n >= 1.0 || n == 0.0 || n == -1.0
}

/// JavaScript's `parseInt(s, 10)`: optional sign, leading digits.
pub fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let n: i64 = digits[..end].parse().ok()?;
    Some(if neg { -n } else { n })
}

pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_int(s).map(|n| n as f64),
        _ => None,
    }
}

/// Milliseconds, accepting PM2's `"<n>h|m|s"` strings.
pub fn millis(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            let (num, unit) = match s.char_indices().last() {
                Some((i, 'h')) => (&s[..i], 3_600_000.0),
                Some((i, 'm')) => (&s[..i], 60_000.0),
                Some((i, 's')) => (&s[..i], 1000.0),
                _ => (s, 1.0),
            };
            num.trim().parse::<f64>().ok().map(|n| n * unit)
        }
        other => number(other),
    }
}

/// The unstable-restart guard (`lib/God.js` handleExit): an exit counts only
/// if the run lasted less than `min_uptime` and came within
/// `min_uptime × max_restarts` of the start; `max_restarts` such exits mark
/// the app `errored`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Guard {
    pub max_restarts: Option<f64>,
    pub min_uptime_ms: Option<f64>,
    pub restart_delay_ms: Option<f64>,
    pub exp_backoff_ms: Option<f64>,
}

impl Guard {
    pub fn is_unset(&self) -> bool {
        *self == Guard::default()
    }

    pub fn max_restarts(&self) -> f64 {
        self.max_restarts.unwrap_or(DEFAULT_MAX_RESTARTS)
    }

    pub fn min_uptime(&self) -> f64 {
        self.min_uptime_ms.unwrap_or(DEFAULT_MIN_UPTIME_MS)
    }

    /// The delay before the k-th restart (k from 1). `exp_backoff` wins
    /// over `restart_delay`, as in PM2.
    fn delay(&self, k: u32) -> f64 {
        if let Some(first) = self.exp_backoff_ms {
            let mut d = first;
            for _ in 1..k {
                d = (d * 1.5).min(EXP_BACKOFF_CAP_MS).floor();
            }
            d
        } else {
            self.restart_delay_ms.unwrap_or(0.0)
        }
    }

    /// How soon after each start an app has to crash for the guard ever to
    /// stop the loop: the `max_restarts` runs and the delays between them
    /// must all fit in `min_uptime × max_restarts`, and each run must be
    /// shorter than `min_uptime`. Zero or less: PM2 can never reach
    /// `errored`. Infinite: `max_restarts` ≤ 0, PM2 gives up at once.
    pub fn crash_budget_ms(&self) -> f64 {
        let m = self.max_restarts();
        let u = self.min_uptime();
        if m <= 0.0 {
            return f64::INFINITY;
        }
        // m is a count; clamp to keep the loop bounded on silly values.
        let runs = m.ceil().min(10_000.0) as u32;
        let delays: f64 = (1..runs).map(|k| self.delay(k)).sum();
        (u - delays / m).min(u)
    }

    /// The key that makes the restarts slow (for messages).
    pub fn delay_key(&self) -> Option<(&'static str, f64)> {
        match (self.exp_backoff_ms, self.restart_delay_ms) {
            (Some(e), _) => Some(("exp_backoff_restart_delay", e)),
            (None, Some(d)) if d > 0.0 => Some(("restart_delay", d)),
            _ => None,
        }
    }
}

pub enum Located {
    Found(PathBuf),
    /// Definitely absent (the path, as resolved).
    Missing(PathBuf),
    /// Could not tell (permission denied, …).
    Unsure(String),
}

/// Where PM2 finds `script`: resolved against `base`, else, as a command, on
/// PATH (`Common.prepareAppConf` and `tools/which.js`).
pub fn locate_script(script: &str, base: &Path, path_var: Option<&OsStr>) -> Located {
    let resolved = base.join(script);
    match std::fs::metadata(&resolved) {
        Ok(_) => return Located::Found(resolved),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) => {}
        Err(e) => return Located::Unsure(format!("cannot look at {}: {e}", resolved.display())),
    }
    if !script.contains('/') && !script.contains('\\') {
        if let Some(p) = which(script, path_var) {
            return Located::Found(p);
        }
    }
    Located::Missing(resolved)
}

/// The first executable `cmd` on `path_var` (the process PATH when `None`).
pub fn which(cmd: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let owned;
    let path_var = match path_var {
        Some(p) => p,
        None => {
            owned = std::env::var_os("PATH")?;
            owned.as_os_str()
        }
    };
    let exts: Vec<String> = if cfg!(windows) {
        let pathext = std::env::var("PATHEXT").unwrap_or_else(|_| ".COM;.EXE;.BAT;.CMD".into());
        std::iter::once(String::new())
            .chain(pathext.split(';').map(str::to_string))
            .collect()
    } else {
        vec![String::new()]
    };
    std::env::split_paths(path_var).find_map(|dir| {
        exts.iter()
            .map(|e| dir.join(format!("{cmd}{e}")))
            .find(|p| is_executable_file(p))
    })
}

fn is_executable_file(p: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(p) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// PM2's `isbinaryfile`: a NUL byte, or more than 10% of odd bytes, in the
/// first 512 bytes (valid UTF-8 sequences are fine).
pub fn is_binary(path: &Path) -> std::io::Result<bool> {
    if !std::fs::metadata(path)?.is_file() {
        return Ok(false);
    }
    let (bytes, _) = crate::home::read_capped(path, 512)?;
    Ok(looks_binary(&bytes))
}

pub fn looks_binary(bytes: &[u8]) -> bool {
    if bytes.is_empty() || bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return false;
    }
    if bytes.contains(&0) {
        return true;
    }
    let text = String::from_utf8_lossy(bytes);
    let odd = text
        .chars()
        .filter(|c| {
            *c == char::REPLACEMENT_CHARACTER || (c.is_control() && !matches!(*c, '\x07'..='\x0e'))
        })
        .count();
    odd * 100 / bytes.len() > 10
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn instances_follow_pm2_parsing() {
        for v in [
            json!(1),
            json!(2),
            json!(0),
            json!(-1),
            json!("max"),
            json!("4"),
            json!("lots"),
            json!(true),
        ] {
            assert!(instances_means_cluster(&v), "{v} means cluster");
        }
        for v in [
            json!(-2),
            json!(0.5),
            json!(false),
            json!(null),
            json!("-3"),
        ] {
            assert!(!instances_means_cluster(&v), "{v} means fork");
        }
    }

    #[test]
    fn interpreters_are_classified_by_basename() {
        assert!(matches!(
            classify_interpreter("/usr/bin/node"),
            Interpreter::Node(_)
        ));
        assert!(matches!(classify_interpreter("bun"), Interpreter::Node(_)));
        assert!(matches!(
            classify_interpreter("/opt/mynode"),
            Interpreter::Node(_)
        ));
        // Debian's `nodejs` does not end in "node": PM2 chooses fork mode.
        assert!(matches!(
            classify_interpreter("/usr/bin/nodejs"),
            Interpreter::Other(_)
        ));
        assert!(matches!(
            classify_interpreter("node@18"),
            Interpreter::Node(_)
        ));
        assert!(matches!(
            classify_interpreter("python3"),
            Interpreter::Other(_)
        ));
        assert!(matches!(
            classify_interpreter("none"),
            Interpreter::Other(_)
        ));
        // PM2 compares the basename as is: node.exe is not "node".
        assert!(matches!(
            classify_interpreter("C:\\node\\node.exe"),
            Interpreter::Other(_)
        ));
    }

    #[test]
    fn interpreter_from_extension_and_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("srv.cjs"), "module.exports = 1\n").unwrap();
        std::fs::write(dir.path().join("bin"), [0x7f, b'E', b'L', b'F', 0, 0, 1]).unwrap();
        std::fs::write(dir.path().join("tool"), "#!/usr/bin/env node\n").unwrap();
        let cases = [
            (json!({"script": "a.js"}), "node"),
            (json!({"script": "a.ts"}), "node"),
            (json!({"script": "a.py"}), "other"),
            (json!({"script": "a.js", "interpreter": "python3"}), "other"),
            (
                json!({"script": "a.py", "exec_interpreter": "node"}),
                "node",
            ),
            (json!({"script": "srv.cjs"}), "node"),
            (json!({"script": "bin"}), "other"),
            (json!({"script": "tool"}), "node"),
            (json!({"script": "gone"}), "unknown"),
        ];
        for (v, want) in cases {
            let o = obj(v.clone());
            let got = match App::new(0, &o).interpreter(dir.path(), Some(OsStr::new(""))) {
                Interpreter::Node(_) => "node",
                Interpreter::Other(_) => "other",
                Interpreter::Unknown(_) => "unknown",
            };
            assert_eq!(got, want, "{v}");
        }
    }

    #[test]
    fn names_default_to_the_script_stem() {
        let o = obj(json!({"script": "dist/server.js"}));
        assert_eq!(App::new(0, &o).name, "server");
        let o = obj(json!({}));
        assert_eq!(App::new(2, &o).name, "app #3");
    }

    #[test]
    fn aliases_and_null() {
        let o = obj(json!({"interpreter": "python3", "err": "e.log", "out_file": null}));
        let app = App::new(0, &o);
        assert_eq!(app.get("exec_interpreter").unwrap().0, "interpreter");
        assert!(app.has("error_file"));
        assert!(!app.has("out_file"));
    }

    #[test]
    fn durations_parse_like_pm2() {
        assert_eq!(millis(&json!("5s")), Some(5000.0));
        assert_eq!(millis(&json!("2m")), Some(120_000.0));
        assert_eq!(millis(&json!(1500)), Some(1500.0));
        assert_eq!(millis(&json!("1000")), Some(1000.0));
        assert_eq!(millis(&json!([])), None);
        assert_eq!(parse_int("  12abc"), Some(12));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("x"), None);
    }

    #[test]
    fn guard_budget_matches_the_observed_experiments() {
        // Defaults: a crash within 1 s of each start is caught.
        assert_eq!(Guard::default().crash_budget_ms(), 1000.0);
        // pm2-internals §6c: restart_delay 1000 with defaults never errored.
        let g = Guard {
            restart_delay_ms: Some(1000.0),
            ..Guard::default()
        };
        assert!(g.crash_budget_ms() < 100.0);
        // exp_backoff 100 with defaults never errored either.
        let g = Guard {
            exp_backoff_ms: Some(100.0),
            ..Guard::default()
        };
        assert!(g.crash_budget_ms() <= 0.0);
        // The incident's config: max_restarts 10, restart_delay 1000.
        let g = Guard {
            max_restarts: Some(10.0),
            restart_delay_ms: Some(1000.0),
            ..Guard::default()
        };
        assert!((g.crash_budget_ms() - 100.0).abs() < 1e-9);
        // The suggested policy catches crashes within ~4 s of a start.
        let g = Guard {
            max_restarts: Some(10.0),
            min_uptime_ms: Some(5000.0),
            exp_backoff_ms: Some(100.0),
            ..Guard::default()
        };
        assert!(g.crash_budget_ms() > 4000.0);
        // max_restarts 0: errored at the first crash.
        let g = Guard {
            max_restarts: Some(0.0),
            ..Guard::default()
        };
        assert!(g.crash_budget_ms().is_infinite());
    }

    #[test]
    fn binary_detection() {
        assert!(looks_binary(&[0x7f, b'E', b'L', b'F', 0, 1]));
        assert!(!looks_binary(
            b"#!/usr/bin/env node\nconsole.log('h\xc3\xa9')\n"
        ));
        assert!(!looks_binary(b""));
        assert!(looks_binary(&[0xff; 64]));
    }
}
