//! The shared vocabulary of a diagnosis: check ids, severities, findings and
//! their fixes. Pure data: nothing here reads the system or prints.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// How much a fix can hurt. Ordered from harmless to advice-only so a repair
/// mode can say "everything up to `Safe`".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Safety {
    /// Undoable and cannot affect a running app (quarantine a stale file).
    Safe,
    /// Stops processes or rewrites state that apps depend on.
    Disruptive,
    /// Advice only: a person has to decide and act.
    Manual,
}

impl fmt::Display for Safety {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Safety::Safe => "safe",
            Safety::Disruptive => "disruptive",
            Safety::Manual => "manual",
        })
    }
}

macro_rules! checks {
    ($( $variant:ident => $id:literal, $sev:ident, $desc:literal, $ok:literal; )*) => {
        /// Every check pm2-doctor knows. The ids are a public contract (JSON,
        /// Prometheus labels, `--only`), so they never change once released.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum CheckId { $( $variant, )* }

        impl CheckId {
            pub const ALL: &'static [CheckId] = &[ $( CheckId::$variant, )* ];

            pub fn as_str(self) -> &'static str {
                match self { $( CheckId::$variant => $id, )* }
            }

            pub fn severity(self) -> Severity {
                match self { $( CheckId::$variant => Severity::$sev, )* }
            }

            /// The problem the check looks for, in one line.
            pub fn description(self) -> &'static str {
                match self { $( CheckId::$variant => $desc, )* }
            }

            /// What holds when the check passes, for the ✓ line.
            pub fn ok_text(self) -> &'static str {
                match self { $( CheckId::$variant => $ok, )* }
            }
        }
    };
}

checks! {
    HomeMissing => "home.missing", Info,
        "no PM2 home exists at the resolved path",
        "the PM2 home exists";
    HomeSymlinkOutside => "home.symlink-outside", Warning,
        "a file PM2 uses is a symlink leading out of the home (pm2-doctor will not follow it)",
        "no file PM2 uses links out of the home";
    DaemonPidStale => "daemon.pid-stale", Error,
        "pm2.pid names a process that is gone, a zombie, or holds no number",
        "pm2.pid is absent or names a live process";
    DaemonPidForeign => "daemon.pid-foreign", Error,
        "pm2.pid names a live process that is not a PM2 daemon of this home",
        "pm2.pid is absent or names this home's daemon";
    DaemonUnresponsive => "daemon.unresponsive", Error,
        "the RPC socket accepts but does not answer in time, or a live daemon of this home has no working socket",
        "no daemon of this home is silent";
    DaemonDuplicate => "daemon.duplicate", Error,
        "more than one PM2 daemon runs for this home (ghost daemons)",
        "at most one daemon runs for this home";
    DaemonVersionMismatch => "daemon.version-mismatch", Warning,
        "the running daemon's version differs from the pm2 CLI found on PATH",
        "the daemon and the pm2 CLI agree on the version";
    SocketStale => "socket.stale", Warning,
        "rpc.sock or pub.sock exists but nobody listens on it",
        "no socket file is left without a listener";
    SocketNotASocket => "socket.not-a-socket", Error,
        "a directory or special file sits where PM2 expects its socket (a new daemon spins at 100% CPU)",
        "nothing but sockets sits at the socket paths";
    PidfileStale => "pidfile.stale", Warning,
        "an app pid file names a process that is gone or a zombie",
        "every app pid file names a live process";
    PidfileForeign => "pidfile.foreign", Warning,
        "an app pid file names a live process that is not that app (pid reused)",
        "no app pid file names an unrelated process";
    PidfileInvalid => "pidfile.invalid", Warning,
        "an app pid file does not hold a valid process id",
        "every app pid file holds a valid pid";
    DumpCorrupt => "dump.corrupt", Error,
        "dump.pm2 is empty, truncated, not JSON, or not an array (pm2 resurrect would delete it)",
        "dump.pm2 is absent or a JSON array";
    DumpUnsafe => "dump.unsafe", Error,
        "dump.pm2 parses only as JavaScript, not JSON (PM2 evaluates dumps as code)",
        "dump.pm2 holds no JavaScript literal or code";
    DumpInvalidEntry => "dump.invalid-entry", Error,
        "a dump entry lacks name, pm_exec_path, pm_pid_path or env (it crashes the daemon)",
        "every dump entry has name, script, pid path and env";
    DumpEmpty => "dump.empty", Warning,
        "dump.pm2 is [] while dump.pm2.bak still holds apps",
        "dump.pm2 was not emptied while the backup holds apps";
    DumpBackupCorrupt => "dump.backup-corrupt", Warning,
        "dump.pm2.bak cannot be parsed as a JSON array of apps",
        "dump.pm2.bak is absent or valid";
    DumpMissingScript => "dump.missing-script", Warning,
        "a dump entry's script or working directory no longer exists",
        "every saved app's script and directory exist";
    DumpForeignHome => "dump.foreign-home", Warning,
        "dump entries point into another PM2 home",
        "every saved app belongs to this home";
    DumpSecretsExposed => "dump.secrets-exposed", Warning,
        "dump.pm2 is readable by other users and its env holds secret-looking keys",
        "no secret-looking env is readable by others in dump.pm2";
    AppCrashLoop => "app.crash-loop", Error,
        "an app keeps crashing and restarting, or PM2 gave up on it (errored)",
        "no app is crash-looping";
    AppGuardBypassed => "app.guard-bypassed", Warning,
        "a restarting app that PM2's max_restarts guard will never stop",
        "every restarting app is still covered by PM2's restart guard";
    AppPortConflict => "app.port-conflict", Error,
        "an app cannot bind its port because another process holds it",
        "no app is failing on a port another process holds";
    LogOversized => "log.oversized", Warning,
        "pm2.log or an app log is larger than the threshold (crash loops fill disks)",
        "every log is under the size threshold";
    LogDaemonErrors => "log.daemon-errors", Warning,
        "pm2.log records daemon errors (crashes, kill failures, pidusage/WMI errors)",
        "pm2.log records no daemon errors";
    WindowsWmiDegraded => "windows.wmi-degraded", Warning,
        "pm2.log shows Windows WMI failing (pidusage/wmic errors): every pm2 command can hang",
        "no sign of Windows WMI failures in pm2.log";
    ConfigImplicitCluster => "config.implicit-cluster", Warning,
        "an ecosystem app sets instances without exec_mode, so PM2 runs it in cluster mode",
        "no ecosystem app is put in cluster mode by accident";
    ConfigRestartPolicy => "config.restart-policy", Warning,
        "an ecosystem app has no effective crash-loop limit (max_restarts/min_uptime/restart_delay)",
        "every ecosystem app has an effective restart policy";
    ConfigNoLogFiles => "config.no-log-files", Info,
        "an ecosystem app writes its logs to the default files in the PM2 home",
        "every ecosystem app names its log files";
    ConfigScriptMissing => "config.script-missing", Error,
        "an ecosystem app's script does not exist",
        "every ecosystem app's script exists";
    ConfigPortClash => "config.port-clash", Error,
        "two ecosystem apps want the same port",
        "no two ecosystem apps want the same port";
    ProcessOrphan => "process.orphan", Error,
        "a process of this home that no live daemon of this home manages",
        "every process of this home is managed by its daemon";
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CheckId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckId::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown check id '{s}' (see `pm2-doctor checks`)"))
    }
}

impl<'de> Deserialize<'de> for CheckId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A fix proposed for a finding. `action` is a stable machine name that the
/// repair planner maps onto concrete operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub action: &'static str,
    pub description: String,
    pub safety: Safety,
}

impl Fix {
    pub fn new(action: &'static str, safety: Safety, description: impl Into<String>) -> Self {
        Fix {
            action,
            description: printable(&description.into()),
            safety,
        }
    }
}

/// Text from a broken home (pid files, dump names, command lines, log
/// lines) ends up on an operator's terminal: control characters are shown
/// as escapes, so a planted `ESC]0;…` cannot retitle or clear the screen.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().collect::<String>()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn printable_value(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(printable(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(printable_value).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k, printable_value(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Evidence is a flat, ordered map so JSON stays stable and humans can read
/// it as `key: value` lines. Values are JSON so pids stay numbers.
pub type Evidence = BTreeMap<&'static str, serde_json::Value>;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub check: CheckId,
    pub severity: Severity,
    pub summary: String,
    pub evidence: Evidence,
    pub fix: Fix,
}

impl Finding {
    pub fn new(check: CheckId, summary: impl Into<String>, fix: Fix) -> Self {
        Finding {
            check,
            severity: check.severity(),
            summary: printable(&summary.into()),
            evidence: Evidence::new(),
            fix,
        }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<serde_json::Value>) -> Self {
        self.evidence.insert(key, printable_value(value.into()));
        self
    }

    pub fn with_opt<V: Into<serde_json::Value>>(self, key: &'static str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }
}

/// The outcome of one check over one home.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Problem,
    /// The check could not finish (permission, deadline): never reported as ok.
    Unknown,
    /// Not run: excluded by `--only`, not applicable on this platform, or the
    /// home is missing.
    Skipped,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckResult {
    pub id: CheckId,
    pub status: CheckStatus,
    /// Why the status is `unknown` or `skipped`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_kebab_and_namespaced() {
        let mut seen = HashSet::new();
        for id in CheckId::ALL {
            let s = id.as_str();
            assert!(seen.insert(s), "duplicate id {s}");
            let (ns, rest) = s.split_once('.').expect("ids are namespace.name");
            for part in [ns, rest] {
                assert!(!part.is_empty());
                assert!(
                    part.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                    "{s} is not kebab-case"
                );
            }
            assert_eq!(s.parse::<CheckId>(), Ok(*id));
        }
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let f = Finding::new(
            CheckId::DaemonPidStale,
            "pm2.pid holds '\u{1b}]0;pwned\u{7}\u{1b}[2J'",
            Fix::new("x", Safety::Safe, "move \u{1b}[2J"),
        )
        .with("text", "a\u{1b}b")
        .with("quotes", serde_json::json!([{"text": "\u{9b}31m"}]));
        let all = serde_json::to_string(&f).unwrap();
        assert!(!f.summary.contains('\u{1b}') && !f.fix.description.contains('\u{1b}'));
        assert!(!all.contains("\\u001b") && !all.contains('\u{9b}'), "{all}");
        assert!(f.summary.contains("\\u{1b}]0;pwned"), "{}", f.summary);
    }

    #[test]
    fn unknown_id_is_a_clear_error() {
        let err = "daemon.nope".parse::<CheckId>().unwrap_err();
        assert!(err.contains("daemon.nope"));
    }

    #[test]
    fn safety_orders_from_harmless_to_manual() {
        assert!(Safety::Safe < Safety::Disruptive);
        assert!(Safety::Disruptive < Safety::Manual);
    }
}
