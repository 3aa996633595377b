//! From findings to an ordered plan of concrete actions, each with a safety
//! class. Pure: the plan is data, shown by `--dry-run` and applied by
//! [`super::apply`].

use crate::diagnose::Diagnosis;
use crate::findings::{CheckId, Finding, Fix, Safety};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Orphan,
    Daemon,
}

/// The operations repair knows how to perform and undo (or, for signals,
/// record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// Terminate a process identified by (pid, start time), then force it.
    Terminate {
        pid: u32,
        start_time: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        cmdline: String,
        role: Role,
    },
    /// Move a path into the run's backup (the backup copy is the quarantine).
    Quarantine { path: PathBuf },
    /// Replace the dump with a validated copy, atomically.
    RestoreDump { from: PathBuf, to: PathBuf },
    /// chmod 600.
    OwnerOnly { path: PathBuf },
}

impl Action {
    /// Runbook order: kill orphans and free their ports, then stale or
    /// duplicate daemons, then pid and socket files, then the dump.
    fn stage(&self) -> u8 {
        match self {
            Action::Terminate {
                role: Role::Orphan, ..
            } => 1,
            Action::Terminate {
                role: Role::Daemon, ..
            } => 2,
            Action::Quarantine { .. } => 3,
            Action::RestoreDump { .. } => 4,
            Action::OwnerOnly { .. } => 5,
        }
    }

    /// Paths whose bytes this action may change, to back up first. Killing
    /// a daemon counts: on SIGTERM it rewrites dump.pm2 and dump.pm2.bak.
    pub fn touches(&self, dumps: &[PathBuf]) -> Vec<PathBuf> {
        match self {
            Action::Terminate {
                role: Role::Daemon, ..
            } => dumps.to_vec(),
            Action::Terminate { .. } => vec![],
            Action::Quarantine { path } | Action::OwnerOnly { path } => vec![path.clone()],
            Action::RestoreDump { to, .. } => vec![to.clone()],
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Action::Terminate {
                pid, cmdline, role, ..
            } => format!(
                "terminate {} {pid} ({cmdline})",
                match role {
                    Role::Orphan => "orphan",
                    Role::Daemon => "daemon",
                }
            ),
            Action::Quarantine { path } => format!("move {} into the backup", path.display()),
            Action::RestoreDump { from, to } => {
                format!("restore {} from {}", to.display(), from.display())
            }
            Action::OwnerOnly { path } => format!("chmod 600 {}", path.display()),
        }
    }

    fn key(&self) -> String {
        match self {
            Action::Terminate { pid, .. } => format!("kill:{pid}"),
            Action::Quarantine { path } => format!("path:{}", path.display()),
            Action::RestoreDump { to, .. } => format!("path:{}", to.display()),
            Action::OwnerOnly { path } => format!("mode:{}", path.display()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub check: CheckId,
    pub safety: Safety,
    pub action: Action,
    pub description: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Findings whose fix is advice for a person.
    pub manual: Vec<(CheckId, Fix)>,
    /// Findings a fix exists for but that repair cannot act on safely here
    /// (missing evidence), with the reason.
    pub unplanned: Vec<(CheckId, String)>,
}

impl Plan {
    pub fn count(&self, s: Safety) -> usize {
        self.steps.iter().filter(|x| x.safety == s).count()
    }

    pub fn keep(&mut self, max: Safety) -> Vec<Step> {
        let (keep, held): (Vec<Step>, Vec<Step>) = std::mem::take(&mut self.steps)
            .into_iter()
            .partition(|s| s.safety <= max);
        self.steps = keep;
        held
    }
}

fn ev_path(f: &Finding, key: &str) -> Option<PathBuf> {
    f.evidence.get(key)?.as_str().map(PathBuf::from)
}

fn parse_time(v: &serde_json::Value) -> Option<u64> {
    let s = v.as_str()?;
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    u64::try_from(t.timestamp()).ok()
}

fn terminate_from(v: &serde_json::Value, role: Role) -> Option<Action> {
    terminate_with_prefix(v, "", role)
}

/// Reads `<prefix>pid`, `<prefix>start_time`, `<prefix>uid`, `<prefix>cmdline`.
fn terminate_with_prefix(v: &serde_json::Value, prefix: &str, role: Role) -> Option<Action> {
    let get = |k: &str| v.get(format!("{prefix}{k}"));
    Some(Action::Terminate {
        pid: u32::try_from(get("pid")?.as_u64()?).ok()?,
        start_time: parse_time(get("start_time")?)?,
        uid: get("uid")
            .and_then(|u| u.as_u64())
            .and_then(|u| u32::try_from(u).ok()),
        cmdline: get("cmdline")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string(),
        role,
    })
}

/// Which daemons to stop for a duplicate: all but the one listening on the
/// socket when the diagnosis knew it (`serving_pid`), else all of them (the
/// apps come back by resurrect).
fn daemons_to_stop(f: &Finding, keep: Option<u32>) -> Vec<Action> {
    f.evidence
        .get("daemons")
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
        .filter(|d| d.get("pid").and_then(|p| p.as_u64()) != keep.map(u64::from))
        .filter_map(|d| terminate_from(d, Role::Daemon))
        .collect()
}

/// The ghosts of a `daemon.duplicate`: every listed daemon but the one the
/// diagnosis saw serving both sockets (`serving_pid`), if it saw one.
fn duplicate_stops(f: &Finding) -> Vec<Action> {
    let serving = f
        .evidence
        .get("serving_pid")
        .and_then(|v| v.as_u64())
        .and_then(|v| u32::try_from(v).ok());
    daemons_to_stop(f, serving)
}

/// Turns a diagnosis into a plan. `dump_source` is the validated dump to
/// restore from, when the diagnosis asks for one and one exists.
pub fn plan(d: &Diagnosis, dump_source: Option<&Path>) -> Plan {
    let mut plan = Plan::default();
    let mut seen = std::collections::HashSet::new();
    let mut push = |plan: &mut Plan, f: &Finding, safety: Safety, action: Action| {
        if seen.insert(action.key()) {
            plan.steps.push(Step {
                check: f.check,
                safety,
                description: crate::findings::printable(&action.describe()),
                action,
            });
        }
    };
    for f in &d.verdict.findings {
        let safety = f.fix.safety;
        match f.fix.action {
            "quarantine-pid-file" | "quarantine-socket" => match ev_path(f, "path") {
                Some(path) => push(&mut plan, f, safety, Action::Quarantine { path }),
                None => plan
                    .unplanned
                    .push((f.check, "no path in the evidence".into())),
            },
            "tighten-dump-permissions" => {
                // Only regular files: a symlink would carry the chmod out
                // of the home.
                for p in [&d.paths.dump, &d.paths.dump_backup] {
                    if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()) {
                        push(&mut plan, f, safety, Action::OwnerOnly { path: p.clone() });
                    }
                }
            }
            "restore-dump-from-backup" => match dump_source {
                Some(from) => push(
                    &mut plan,
                    f,
                    safety,
                    Action::RestoreDump {
                        from: from.to_path_buf(),
                        to: d.paths.dump.clone(),
                    },
                ),
                None => plan
                    .unplanned
                    .push((f.check, "no valid dump to restore from".into())),
            },
            "kill-orphan" | "kill-port-holder" => {
                let v = serde_json::Value::Object(
                    f.evidence
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                );
                let prefix = if f.fix.action == "kill-port-holder" {
                    "holder_"
                } else {
                    ""
                };
                match terminate_with_prefix(&v, prefix, Role::Orphan) {
                    Some(a) => push(&mut plan, f, safety, a),
                    None => plan
                        .unplanned
                        .push((f.check, "no pid and start time in the evidence".into())),
                }
            }
            "kill-duplicate-daemons" => {
                for a in duplicate_stops(f) {
                    push(&mut plan, f, safety, a);
                }
            }
            "restart-daemon" => {
                let stops = daemons_to_stop(f, None);
                if stops.is_empty() {
                    plan.unplanned.push((
                        f.check,
                        "no daemon of this home to stop: something else holds the socket".into(),
                    ));
                }
                for a in stops {
                    push(&mut plan, f, safety, a);
                }
            }
            _ => plan.manual.push((f.check, f.fix.clone())),
        }
    }
    plan.steps.sort_by_key(|s| s.action.stage());
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runbook_order() {
        let q = Action::Quarantine {
            path: "/h/pm2.pid".into(),
        };
        let k = |role| Action::Terminate {
            pid: 5,
            start_time: 1,
            uid: None,
            cmdline: String::new(),
            role,
        };
        let r = Action::RestoreDump {
            from: "/a".into(),
            to: "/b".into(),
        };
        let mut v = [r.clone(), q.clone(), k(Role::Daemon), k(Role::Orphan)];
        v.sort_by_key(Action::stage);
        assert_eq!(v, [k(Role::Orphan), k(Role::Daemon), q, r]);
    }

    #[test]
    fn a_duplicate_keeps_the_daemon_serving_both_sockets() {
        let daemon = |pid: u32| serde_json::json!({"pid": pid, "start_time": crate::checks::iso(1_700_000_000), "cmdline": "PM2 v7.0.4: God Daemon (/h)"});
        let finding = |serving: Option<u32>| {
            Finding::new(
                CheckId::DaemonDuplicate,
                "two daemons",
                crate::findings::Fix::new("kill-duplicate-daemons", Safety::Disruptive, "x"),
            )
            .with("daemons", vec![daemon(10), daemon(20), daemon(30)])
            .with_opt("serving_pid", serving)
        };
        let pids = |f: &Finding| -> Vec<u32> {
            duplicate_stops(f)
                .into_iter()
                .map(|a| match a {
                    Action::Terminate { pid, role, .. } => {
                        assert_eq!(role, Role::Daemon);
                        pid
                    }
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(pids(&finding(Some(20))), vec![10, 30]);
        assert_eq!(pids(&finding(None)), vec![10, 20, 30], "unknown: all stop");
    }

    #[test]
    fn start_times_round_trip_through_evidence() {
        let v = serde_json::json!({"pid": 42, "start_time": crate::checks::iso(1_700_000_000), "cmdline": "node x"});
        assert_eq!(
            terminate_from(&v, Role::Orphan),
            Some(Action::Terminate {
                pid: 42,
                start_time: 1_700_000_000,
                uid: None,
                cmdline: "node x".into(),
                role: Role::Orphan
            })
        );
        assert_eq!(
            terminate_from(&serde_json::json!({"pid": 42}), Role::Orphan),
            None
        );
    }
}
