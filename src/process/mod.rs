//! The OS process table, reduced to what proves a process belongs to a PM2
//! home.
//!
//! A process is identified by (pid, start time): a pid alone can be reused by
//! the time anyone acts on it. Checks only ever see the owned
//! [`ProcessSnapshot`], filled once per run by a [`ProcessSource`]: the real
//! one reads the OS (`/proc` directly on Linux, sysinfo elsewhere), the fake
//! one reads JSON so checks are tested without root or a daemon.

mod ports;
#[cfg(target_os = "linux")]
mod procfs;
mod system;

pub use ports::{listening_ports, port_listeners, socket_table};
#[cfg(target_os = "linux")]
pub use procfs::{ProcFs, SystemControl, SystemSource};
pub use system::{SysinfoControl, SysinfoSource};
#[cfg(not(target_os = "linux"))]
pub use system::{SysinfoControl as SystemControl, SysinfoSource as SystemSource};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProcState {
    #[default]
    Alive,
    /// Exited, not yet reaped: `kill(pid, 0)` still succeeds, but it is dead.
    Zombie,
}

/// The PM2 markers found in a process's environment. `environ` is frozen at
/// exec time, so these tell what PM2 started the process as.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pm2Env {
    /// `PM2_HOME=`: alone it proves nothing (people export it in shells).
    pub home: Option<String>,
    pub pm_id: Option<String>,
    pub unique_id: Option<String>,
    /// `name=` (fork apps) or the name inside `pm2_env` (cluster workers).
    pub name: Option<String>,
    /// Cluster workers carry their whole config as one `pm2_env` JSON value.
    pub cluster_worker: bool,
    /// `SILENT=true`, set by the CLI for the daemon it spawns.
    pub silent: bool,
    /// `PM2_DAEMON_TITLE`: a custom title the daemon gives itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_title: Option<String>,
}

impl Pm2Env {
    /// The app markers PM2 sets for every process it starts.
    pub fn has_app_markers(&self) -> bool {
        self.pm_id.is_some() || self.unique_id.is_some() || self.cluster_worker
    }

    /// Extracts the markers from `KEY=value` strings.
    pub fn from_environ<S: AsRef<str>>(vars: &[S]) -> Pm2Env {
        let mut env = Pm2Env::default();
        let mut worker_json = None;
        for kv in vars {
            let Some((k, v)) = kv.as_ref().split_once('=') else {
                continue;
            };
            match k {
                "PM2_HOME" => env.home = Some(v.to_string()),
                "pm_id" => env.pm_id = Some(v.to_string()),
                "unique_id" => env.unique_id = Some(v.to_string()),
                "name" => env.name = Some(v.to_string()),
                "SILENT" => env.silent = v == "true",
                "PM2_DAEMON_TITLE" if !v.is_empty() => env.daemon_title = Some(v.to_string()),
                "pm2_env" => worker_json = Some(v),
                _ => {}
            }
        }
        if let Some(json) = worker_json {
            #[derive(Deserialize)]
            struct Worker {
                #[serde(rename = "PM2_HOME")]
                home: Option<String>,
                pm_id: Option<serde_json::Value>,
                unique_id: Option<String>,
                name: Option<String>,
            }
            if let Ok(w) = serde_json::from_str::<Worker>(json) {
                env.cluster_worker = true;
                env.home = w.home.or(env.home);
                env.pm_id = w.pm_id.map(|v| v.to_string().trim_matches('"').to_string());
                env.unique_id = w.unique_id.or(env.unique_id);
                env.name = w.name.or(env.name);
            }
        }
        env
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcInfo {
    pub pid: u32,
    #[serde(default)]
    pub ppid: Option<u32>,
    /// Seconds since the Unix epoch. With `pid`, the process's identity.
    pub start_time: u64,
    #[serde(default)]
    pub state: ProcState,
    /// Session id: fork apps lead their own session, so their descendants
    /// keep it after being re-parented to init.
    #[serde(default)]
    pub sid: Option<u32>,
    #[serde(default)]
    pub uid: Option<u32>,
    /// Process name as the kernel knows it (Node apps rename themselves).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `None` when the environment could not be read (another user's process).
    #[serde(default)]
    pub env: Option<Pm2Env>,
    /// TCP ports it listens on; filled only for processes that matter.
    #[serde(default)]
    pub listen_ports: Vec<u16>,
}

impl ProcInfo {
    pub fn is_alive(&self) -> bool {
        self.state == ProcState::Alive
    }

    pub fn cmdline(&self) -> String {
        let s = self.cmd.join(" ");
        if s.is_empty() {
            self.name.clone()
        } else {
            s
        }
    }

    /// The title PM2 gives its daemon: `PM2 v7.0.4: God Daemon (/home)`,
    /// truncated to the original argv length.
    pub fn daemon_title_version(&self) -> Option<&str> {
        let first = self.cmd.first().map(String::as_str).unwrap_or(&self.name);
        let rest = first.strip_prefix("PM2 v")?;
        if !first.contains("God Daemon") && !self.name.starts_with("PM2 v") {
            return None;
        }
        rest.split(':').next()
    }

    /// A PM2 daemon (of any home): its title, or a node running PM2's
    /// `Daemon.js` before it renamed itself.
    pub fn is_pm2_daemon(&self) -> bool {
        let no_markers = self.env.as_ref().is_none_or(|e| !e.has_app_markers());
        // A daemon started with PM2_DAEMON_TITLE runs under that title; its
        // environment (SILENT=true from the spawning CLI) says it is one.
        let custom_title = self.env.as_ref().is_some_and(|e| {
            e.silent
                && no_markers
                && e.daemon_title.as_deref().is_some_and(|t| {
                    let first = self.cmd.first().map(String::as_str).unwrap_or("");
                    // The title is cut to the original argv length.
                    !first.is_empty() && t.starts_with(first.trim_end())
                })
        });
        self.daemon_title_version().is_some()
            || custom_title
            || (self.cmd.iter().any(|a| a.ends_with("lib/Daemon.js")) && no_markers)
    }
}

/// A processes-as-of-now view. Owned data: no OS handle escapes it.
#[derive(Clone, Debug, Default)]
pub struct ProcessSnapshot {
    pub procs: BTreeMap<u32, ProcInfo>,
    /// Our own pid: never a candidate for anything.
    pub self_pid: u32,
    /// Why there is no table: the scan did not finish in time. Checks that
    /// need processes are then `unknown`, never concluded from emptiness.
    pub unreadable: Option<String>,
}

impl ProcessSnapshot {
    pub fn from_list(list: Vec<ProcInfo>, self_pid: u32) -> Self {
        ProcessSnapshot {
            procs: list.into_iter().map(|p| (p.pid, p)).collect(),
            self_pid,
            unreadable: None,
        }
    }

    pub fn get(&self, pid: u32) -> Option<&ProcInfo> {
        self.procs.get(&pid)
    }

    /// Live (non-zombie) process with this pid.
    pub fn alive(&self, pid: u32) -> Option<&ProcInfo> {
        self.get(pid).filter(|p| p.is_alive())
    }

    pub fn children_index(&self) -> HashMap<u32, Vec<u32>> {
        let mut idx: HashMap<u32, Vec<u32>> = HashMap::new();
        for p in self.procs.values() {
            if let Some(pp) = p.ppid {
                idx.entry(pp).or_default().push(p.pid);
            }
        }
        idx
    }

    /// Walks parents from `pid` (excluding it), stopping at cycles or pid 1.
    pub fn ancestors(&self, pid: u32) -> impl Iterator<Item = &ProcInfo> {
        let mut seen = std::collections::HashSet::new();
        let mut cur = self.get(pid).and_then(|p| p.ppid);
        std::iter::from_fn(move || {
            let p = self.get(cur?)?;
            if p.pid <= 1 || !seen.insert(p.pid) {
                return None;
            }
            cur = p.ppid;
            Some(p)
        })
    }
}

/// Where process snapshots come from.
pub trait ProcessSource {
    /// One snapshot of every process, with PM2 markers filled in.
    fn snapshot(&self) -> anyhow::Result<ProcessSnapshot>;

    /// [`snapshot`](Self::snapshot), keeping `current` at the pid being
    /// read where the source can tell.
    fn snapshot_reporting(
        &self,
        current: &std::sync::atomic::AtomicU32,
    ) -> anyhow::Result<ProcessSnapshot> {
        let _ = current;
        self.snapshot()
    }
}

/// The OS process table, read on a helper thread that is abandoned at
/// `deadline`. Reading a process's command line or environment blocks
/// while its memory map is locked (a process stuck in the kernel, say on a
/// dead NFS mount: what makes `ps` hang); diagnose then goes on without a
/// table and says why, instead of hanging with it.
pub fn system_snapshot_within(deadline: std::time::Duration) -> anyhow::Result<ProcessSnapshot> {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let current = Arc::new(AtomicU32::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let progress = Arc::clone(&current);
    std::thread::Builder::new()
        .name("process-scan".into())
        .spawn(move || {
            let _ = tx.send(SystemSource.snapshot_reporting(&progress));
        })
        .map_err(|e| anyhow::anyhow!("cannot start the process scan: {e}"))?;
    match rx.recv_timeout(deadline) {
        Ok(result) => result,
        Err(_) => {
            let pid = current.load(Ordering::Relaxed);
            let at = if pid == 0 {
                String::new()
            } else {
                format!(": reading process {pid} did not return (a process stuck in the kernel, as when `ps` hangs)")
            };
            Ok(ProcessSnapshot {
                procs: BTreeMap::new(),
                self_pid: std::process::id(),
                unreadable: Some(format!(
                    "the process table could not be read within {:.1} s{at}",
                    deadline.as_secs_f64()
                )),
            })
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Sig {
    /// Ask to stop (SIGTERM; TerminateProcess where there is no such signal).
    Term,
    /// Force (SIGKILL / TerminateProcess).
    Kill,
}

/// Acting on single processes: the seam repair kills through, so its
/// safety rules are tested with a fake.
pub trait ProcessControl {
    /// A fresh look at one process, right now. `None` when it is gone.
    fn inspect(&mut self, pid: u32) -> Option<ProcInfo>;
    /// Sends `sig` to the process last returned by `inspect` for `pid`.
    fn signal(&mut self, pid: u32, sig: Sig) -> Result<(), String>;
    /// Whether the process (`pid`, `start_time`) has exited: gone, a
    /// zombie, or its pid now names another process. Polled while waiting
    /// for signalled processes, so sources may answer it more cheaply than
    /// a full [`inspect`](Self::inspect).
    fn is_gone(&mut self, pid: u32, start_time: u64) -> bool {
        match self.inspect(pid) {
            None => true,
            Some(p) => p.state == ProcState::Zombie || p.start_time != start_time,
        }
    }
}

/// Replays a snapshot saved as JSON (`--process-snapshot`): fixtures,
/// captured incidents and unit tests. The file is
/// `{"self_pid": N, "processes": [ProcInfo, ...]}` or a bare list.
pub struct FileSource<'a>(pub &'a Path);

impl ProcessSource for FileSource<'_> {
    fn snapshot(&self) -> anyhow::Result<ProcessSnapshot> {
        use anyhow::Context;
        let (bytes, truncated) = crate::home::read_capped(self.0, 256 * 1024 * 1024)
            .with_context(|| format!("cannot read process snapshot {}", self.0.display()))?;
        anyhow::ensure!(!truncated, "{} is larger than 256 MiB", self.0.display());
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Doc {
            Listed {
                processes: Vec<ProcInfo>,
                #[serde(default)]
                self_pid: u32,
            },
            List(Vec<ProcInfo>),
        }
        let doc: Doc = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a process snapshot", self.0.display()))?;
        Ok(match doc {
            Doc::Listed {
                processes,
                self_pid,
            } => ProcessSnapshot::from_list(processes, self_pid),
            Doc::List(l) => ProcessSnapshot::from_list(l, 0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_app_markers() {
        let e = Pm2Env::from_environ(&[
            "PATH=/bin",
            "name=web",
            "pm_id=0",
            "PM2_HOME=/lab/home1",
            "unique_id=91e2",
        ]);
        assert_eq!(e.home.as_deref(), Some("/lab/home1"));
        assert!(e.has_app_markers());
        assert_eq!(e.name.as_deref(), Some("web"));
    }

    #[test]
    fn cluster_worker_markers_come_from_pm2_env_json() {
        let e = Pm2Env::from_environ(&[
            "SILENT=true",
            "PM2_HOME=/daemon/home",
            r#"pm2_env={"name":"clu","pm_id":2,"PM2_HOME":"/lab/home1","unique_id":"u"}"#,
            "NODE_UNIQUE_ID=1",
        ]);
        assert!(e.cluster_worker);
        assert_eq!(e.home.as_deref(), Some("/lab/home1"));
        assert_eq!(e.pm_id.as_deref(), Some("2"));
        assert_eq!(e.name.as_deref(), Some("clu"));
    }

    #[test]
    fn a_shell_with_pm2_home_exported_has_no_app_markers() {
        let e = Pm2Env::from_environ(&["PM2_HOME=/lab/home1", "SHELL=/bin/bash"]);
        assert!(!e.has_app_markers());
        let garbage = Pm2Env::from_environ(&["pm2_env={not json", "noequals"]);
        assert!(!garbage.cluster_worker);
    }

    #[test]
    fn daemon_title() {
        let mut p = ProcInfo {
            pid: 7147,
            ppid: Some(1),
            start_time: 1,
            state: ProcState::Alive,
            sid: Some(7147),
            uid: Some(0),
            name: "PM2 v7.0.4: God".into(),
            cmd: vec!["PM2 v7.0.4: God Daemon (/lab/home1)".into()],
            env: None,
            listen_ports: vec![],
        };
        assert_eq!(p.daemon_title_version(), Some("7.0.4"));
        assert!(p.is_pm2_daemon());
        p.cmd = vec!["node".into(), "/srv/app.js".into()];
        p.name = "node".into();
        assert!(!p.is_pm2_daemon());
        p.cmd = vec![
            "/usr/bin/node".into(),
            "/usr/lib/node_modules/pm2/lib/Daemon.js".into(),
        ];
        assert!(p.is_pm2_daemon());
    }
}
