//! Evaluating a JavaScript ecosystem file the way PM2 does — by running it
//! with node — in a child process that cannot hang us: stdin closed, both
//! pipes drained on their own threads with a cap, a hard deadline after
//! which the child is killed, and every failure turned into a reason.

use serde_json::Value;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Loads the file (`require`, or `import()` for ES modules), prints only
/// `JSON.stringify` of what it exports on stdout (functions dropped). What
/// the file itself prints goes to stderr so it cannot corrupt the result.
const EVAL_JS: &str = r#"'use strict';
const file = process.argv[1];
const MARK = '@@pm2-doctor@@ ';
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
const { pathToFileURL } = require('url');
const viaImport = async () => {
  const ns = await import(pathToFileURL(file).href);
  return ns.default !== undefined ? ns.default : ns;
};
// PM2 loads ecosystem files with require() and uses what it returns.
const load = async () => {
  let conf;
  try {
    conf = require(file);
  } catch (e) {
    if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE')) {
      return { config: await viaImport(), pm2_load: 'require:' + e.code };
    }
    throw e;
  }
  if (conf && typeof conf === 'object' && !Array.isArray(conf) && conf.apps === undefined &&
      conf.pm2 === undefined && conf.script === undefined &&
      conf.default !== null && typeof conf.default === 'object') {
    return { config: conf.default, pm2_load: 'default' };
  }
  return { config: conf === undefined ? null : conf, pm2_load: null };
};
const where = (e) => {
  const line = String((e && e.stack) || '').split('\n').find((l) => l.includes(file));
  const m = line && line.match(/([^\s(]+:\d+(?::\d+)?)\)?\s*$/);
  return m ? ' (at ' + m[1] + ')' : '';
};
const fail = (what, e) => {
  const msg = e instanceof Error ? e.name + ': ' + e.message : String(e);
  process.stderr.write('\n' + ((e && e.stack) || '') + '\n' + MARK + what + ': ' + msg + where(e) + '\n');
  process.exit(70);
};
load().then((envelope) => {
  let text;
  try {
    text = JSON.stringify(envelope);
  } catch (e) {
    fail('the exported config cannot be turned into JSON', e);
  }
  write(text + '\n', () => process.exit(0));
}, (e) => fail('the file threw', e));
"#;

/// Marks the wrapper's own one-line explanation on stderr.
const MARK: &str = "@@pm2-doctor@@ ";

/// How much of stderr is kept for the reason (its end: where errors are).
const STDERR_KEEP: usize = 64 * 1024;
/// How long the pipes get to close once the child is gone (a grandchild
/// may hold them open).
const PIPE_GRACE: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    overflow: bool,
    done: bool,
}

/// Drains `r` into a shared buffer. `keep_tail`: keep the last `cap`
/// bytes instead of the first.
fn drain<R: Read + Send + 'static>(mut r: R, cap: usize, keep_tail: bool) -> Arc<Mutex<Captured>> {
    let shared = Arc::new(Mutex::new(Captured::default()));
    let out = Arc::clone(&shared);
    thread::spawn(move || {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let n = match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let Ok(mut c) = out.lock() else { break };
            if keep_tail {
                c.bytes.extend_from_slice(&chunk[..n]);
                if c.bytes.len() > 2 * cap {
                    let cut = c.bytes.len() - cap;
                    c.bytes.drain(..cut);
                    c.overflow = true;
                }
            } else if c.bytes.len() + n > cap {
                // Keep draining so the child never blocks on a full pipe,
                // but store nothing more.
                c.overflow = true;
            } else {
                c.bytes.extend_from_slice(&chunk[..n]);
            }
        }
        if let Ok(mut c) = out.lock() {
            c.done = true;
        }
    });
    shared
}

fn snapshot(c: &Arc<Mutex<Captured>>) -> (Vec<u8>, bool, bool) {
    match c.lock() {
        Ok(c) => (c.bytes.clone(), c.overflow, c.done),
        Err(_) => (Vec::new(), false, false),
    }
}

/// The last lines of stderr, for a reason.
pub fn excerpt(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(8)..];
    let mut s = tail.join(" | ");
    if s.chars().count() > 800 {
        s = s.chars().take(800).collect::<String>() + "…";
    }
    s
}

/// What evaluating the file gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluated {
    /// What the file exports (an ES module's default export unwrapped).
    pub config: Value,
    /// How PM2 itself would fare loading it with `require()`, when that
    /// differs from `config`: `default` (PM2 gets `{default: …}` and finds
    /// no apps) or `require:ERR_…` (node refuses to `require` it).
    pub pm2_load: Option<String>,
}

/// Runs `node` on `file` and returns what it exports as JSON, or why it
/// could not. Never blocks longer than `timeout` plus a short grace.
pub fn evaluate(node: &Path, file: &Path, timeout: Duration) -> Result<Evaluated, String> {
    let abs =
        std::path::absolute(file).map_err(|e| format!("cannot resolve {}: {e}", file.display()))?;
    let dir = abs.parent().unwrap_or(Path::new("."));
    // The child runs in the file's folder: a relative `--node ./bin/node`
    // must still mean the one relative to ours.
    let node = if node.components().count() > 1 {
        std::path::absolute(node).unwrap_or_else(|_| node.to_path_buf())
    } else {
        node.to_path_buf()
    };
    let started = Instant::now();
    let mut child = Command::new(&node)
        .arg("-e")
        .arg(EVAL_JS)
        .arg(&abs)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "could not run {} to evaluate the file: {e} (install Node.js or pass --node)",
                node.display()
            )
        })?;
    let cap = usize::try_from(super::load::MAX_BYTES).unwrap_or(usize::MAX);
    let out = child.stdout.take().map(|s| drain(s, cap, false));
    let err = child.stderr.take().map(|s| drain(s, STDERR_KEEP, true));

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("lost track of node (pid {}): {e}", child.id()));
            }
        }
        if out.as_ref().is_some_and(|o| snapshot(o).1) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "evaluating the file printed more than {} MiB: stopped",
                super::load::MAX_BYTES / (1024 * 1024)
            ));
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            // Kill by pid (std sends SIGKILL / TerminateProcess), then reap.
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.as_ref().map(|e| snapshot(e).0).unwrap_or_default();
            let said = excerpt(&stderr);
            return Err(format!(
                "evaluating the file with node did not finish within {:.1} s (an endless loop, \
                 or a connection that never ends?): node was killed{}",
                timeout.as_secs_f64(),
                if said.is_empty() {
                    String::new()
                } else {
                    format!("; it printed: {said}")
                }
            ));
        }
        thread::sleep(POLL.min(timeout - elapsed));
    };

    // The child is gone; its pipes close unless a grandchild inherited them.
    let pipes_deadline = Instant::now() + PIPE_GRACE;
    let all_done =
        || out.as_ref().is_none_or(|o| snapshot(o).2) && err.as_ref().is_none_or(|e| snapshot(e).2);
    while !all_done() && Instant::now() < pipes_deadline {
        thread::sleep(POLL);
    }
    let (stdout, overflow, _) = out.as_ref().map(snapshot).unwrap_or_default();
    let stderr = err.as_ref().map(|e| snapshot(e).0).unwrap_or_default();
    if overflow {
        return Err(format!(
            "evaluating the file printed more than {} MiB",
            super::load::MAX_BYTES / (1024 * 1024)
        ));
    }
    if !status.success() {
        let text = String::from_utf8_lossy(&stderr);
        if let Some(why) = text.lines().rev().find_map(|l| l.strip_prefix(MARK)) {
            return Err(format!(
                "evaluating the file with node failed: {}",
                why.trim()
            ));
        }
        let code = status.code().map_or_else(
            || "was killed by a signal".to_string(),
            |c| format!("exited with code {c}"),
        );
        let said = excerpt(&stderr);
        return Err(if said.is_empty() {
            format!("evaluating the file with node failed: node {code}")
        } else {
            format!("evaluating the file with node failed (node {code}): {said}")
        });
    }
    let text = String::from_utf8_lossy(&stdout);
    let text = text.trim();
    if text.is_empty() {
        return Err(
            "evaluating the file printed nothing: it exited before exporting its config \
             (process.exit in the file?)"
                .into(),
        );
    }
    let garbage = |why: String| {
        let shown: String = text
            .chars()
            .take(120)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("evaluating the file printed something that is not JSON ({why}): {shown}")
    };
    let mut envelope: serde_json::Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(m)) if m.contains_key("config") => m,
        Ok(_) => return Err(garbage("not the expected envelope".into())),
        Err(e) => return Err(garbage(e.to_string())),
    };
    Ok(Evaluated {
        config: envelope.remove("config").unwrap_or(Value::Null),
        pm2_load: envelope
            .remove("pm2_load")
            .and_then(|v| v.as_str().map(str::to_string)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_keeps_the_last_lines() {
        let s = (1..=20).map(|i| format!("line {i}\n")).collect::<String>();
        let e = excerpt(s.as_bytes());
        assert!(e.starts_with("line 13"), "{e}");
        assert!(e.ends_with("line 20"), "{e}");
        assert_eq!(excerpt(b"\n\n"), "");
    }

    fn eval_text(text: &str, timeout: Duration) -> Result<Evaluated, String> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ecosystem.config.cjs");
        std::fs::write(&f, text).unwrap();
        evaluate(Path::new("node"), &f, timeout)
    }

    #[test]
    #[cfg_attr(windows, ignore = "needs node, which the Wine test run does not have")]
    fn a_chatty_file_cannot_block_the_pipes() {
        // 24 MiB on stderr (console.log is sent there too) before exporting.
        let e = eval_text(
            "const s = 'x'.repeat(1 << 20);\nfor (let i = 0; i < 12; i++) { console.log(s); console.error(s); }\nmodule.exports = {apps: [{name: 'a', script: 'a.js', f() {}}]};\n",
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(e.config["apps"][0]["name"], "a");
        assert!(
            e.config["apps"][0].get("f").is_none(),
            "functions are dropped"
        );
        assert_eq!(e.pm2_load, None);
    }

    #[test]
    #[cfg_attr(windows, ignore = "needs node, which the Wine test run does not have")]
    fn output_past_the_cap_is_refused() {
        let err = eval_text(
            "module.exports = {apps: [], padding: 'x'.repeat(20 << 20)};\n",
            Duration::from_secs(20),
        )
        .unwrap_err();
        assert!(err.contains("more than 16 MiB"), "{err}");
    }

    #[test]
    #[cfg_attr(windows, ignore = "needs node, which the Wine test run does not have")]
    fn an_endless_file_is_killed_at_the_deadline() {
        let t = Instant::now();
        let err = eval_text("for (;;) {}\n", Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("did not finish within"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[test]
    #[cfg_attr(windows, ignore = "needs node, which the Wine test run does not have")]
    fn throws_and_non_serialisable_exports_are_reasons() {
        let err = eval_text("throw new TypeError('nope');\n", Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("TypeError: nope"), "{err}");
        assert!(err.contains("ecosystem.config.cjs:1"), "{err}");
        let err = eval_text(
            "const a = {}; a.self = a; module.exports = a;\n",
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(err.contains("cannot be turned into JSON"), "{err}");
        let err = eval_text("throw 'a string';\n", Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("a string"), "{err}");
    }

    #[test]
    #[cfg_attr(windows, ignore = "needs node, which the Wine test run does not have")]
    fn a_transpiled_default_export_is_what_pm2_misses() {
        let e = eval_text(
            "exports.__esModule = true;\nexports.default = {apps: [{name: 'a', script: 'a.js'}]};\n",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(e.config["apps"][0]["name"], "a");
        assert_eq!(e.pm2_load.as_deref(), Some("default"));
    }

    #[test]
    fn a_missing_node_is_a_reason_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ecosystem.config.js");
        std::fs::write(&f, "module.exports = {apps: []}\n").unwrap();
        let err =
            evaluate(&dir.path().join("no-such-node"), &f, Duration::from_secs(2)).unwrap_err();
        assert!(err.contains("could not run"), "{err}");
    }
}
