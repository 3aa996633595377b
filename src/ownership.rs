//! Which processes provably belong to a PM2 home, and which of those no live
//! daemon manages.
//!
//! The rules (pm2-internals §5.6) only accept strong evidence: PM2's app
//! markers (`pm_id`/`unique_id`/`pm2_env`) together with this home's
//! `PM2_HOME`, or descent from such a process (parent chain, or the session a
//! fork app leads). `PM2_HOME` alone, a process name or a command line that
//! merely mentions the home is never enough: those are how the wrong process
//! gets killed.

use crate::process::{ProcInfo, ProcessSnapshot};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Why a process is counted as this home's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Evidence {
    /// Its environment carries PM2's app markers and this home.
    Environment,
    /// Its parent chain reaches an app of this home.
    DescendantOf { pid: u32 },
    /// It runs in the session led by an app of this home.
    SessionOf { pid: u32 },
}

impl Evidence {
    pub fn describe(&self) -> String {
        match self {
            Evidence::Environment => "PM2 app markers (pm_id/unique_id) with this PM2_HOME".into(),
            Evidence::DescendantOf { pid } => format!("descendant of app process {pid}"),
            Evidence::SessionOf { pid } => format!("in the session of app process {pid}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub pid: u32,
    pub evidence: Evidence,
    /// A live daemon of this home is among its ancestors.
    pub managed_by: Option<u32>,
}

/// Compares a `PM2_HOME` value from some process with the home, tolerating
/// trailing slashes and symlinked paths. Canonicalisation results are cached
/// because thousands of processes may carry the same value.
pub struct HomeMatcher {
    home: PathBuf,
    canonical: Option<PathBuf>,
    cache: std::cell::RefCell<HashMap<String, bool>>,
}

impl HomeMatcher {
    pub fn new(home: &Path) -> Self {
        HomeMatcher {
            home: home.to_path_buf(),
            canonical: std::fs::canonicalize(home).ok(),
            cache: Default::default(),
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        if let Some(&hit) = self.cache.borrow().get(value) {
            return hit;
        }
        let p = Path::new(value);
        let hit = p.components().eq(self.home.components())
            || match (&self.canonical, std::fs::canonicalize(p).ok()) {
                (Some(a), Some(b)) => *a == b,
                _ => false,
            };
        self.cache.borrow_mut().insert(value.to_string(), hit);
        hit
    }
}

/// This home's daemons and app processes, as of one snapshot.
#[derive(Clone, Debug, Default)]
pub struct Membership {
    /// Live PM2 daemons proven to serve this home, oldest first.
    pub daemons: Vec<u32>,
    /// Live daemons whose home could not be read (another user's, or a
    /// truncated title): they may be this home's.
    pub unproven_daemons: Vec<u32>,
    pub members: BTreeMap<u32, Member>,
}

impl Membership {
    pub fn compute(procs: &ProcessSnapshot, home: &HomeMatcher) -> Membership {
        let mut m = Membership::default();
        let protected = protected_pids(procs);
        for p in procs.procs.values().filter(|p| p.is_alive()) {
            if !p.is_pm2_daemon() {
                continue;
            }
            match daemon_home(p, home) {
                Some(true) => m.daemons.push(p.pid),
                Some(false) => {}
                None => m.unproven_daemons.push(p.pid),
            }
        }
        // A daemon forking an app: until the child execs, it carries the
        // daemon's title and environment. A "daemon" whose parent is a
        // daemon of this home is that child, not a second daemon.
        let found: HashSet<u32> = m.daemons.iter().copied().collect();
        m.daemons.retain(|pid| {
            !procs
                .get(*pid)
                .and_then(|p| p.ppid)
                .is_some_and(|pp| found.contains(&pp))
        });
        m.daemons
            .sort_by_key(|pid| procs.get(*pid).map(|p| (p.start_time, p.pid)));
        let daemons: HashSet<u32> = m.daemons.iter().copied().collect();

        // Pass 1: direct evidence from the environment.
        let mut direct = HashSet::new();
        for p in procs.procs.values().filter(|p| p.is_alive()) {
            if daemons.contains(&p.pid) || protected.contains(&p.pid) || p.is_pm2_daemon() {
                continue;
            }
            let Some(env) = &p.env else { continue };
            if env.has_app_markers() && env.home.as_deref().is_some_and(|h| home.matches(h)) {
                direct.insert(p.pid);
            }
        }
        // Pass 2: descendants (parent chain) and session mates of those apps.
        for p in procs.procs.values().filter(|p| p.is_alive()) {
            if daemons.contains(&p.pid) || protected.contains(&p.pid) || p.is_pm2_daemon() {
                continue;
            }
            // A process carrying another home's markers is that home's.
            if let Some(env) = &p.env {
                if env.has_app_markers() && env.home.as_deref().is_some_and(|h| !home.matches(h)) {
                    continue;
                }
            }
            let evidence = if direct.contains(&p.pid) {
                Some(Evidence::Environment)
            } else if let Some(a) = procs.ancestors(p.pid).find(|a| direct.contains(&a.pid)) {
                Some(Evidence::DescendantOf { pid: a.pid })
            } else {
                p.sid
                    .filter(|sid| *sid != p.pid && direct.contains(sid))
                    .map(|sid| Evidence::SessionOf { pid: sid })
            };
            let Some(evidence) = evidence else { continue };
            let managed_by = procs
                .ancestors(p.pid)
                .find(|a| daemons.contains(&a.pid))
                .map(|a| a.pid);
            m.members.insert(
                p.pid,
                Member {
                    pid: p.pid,
                    evidence,
                    managed_by,
                },
            );
        }
        m
    }

    /// Members no live daemon of this home manages. `daemon_pids` are app
    /// pids a responsive daemon reported (getMonitorData): those and their
    /// descendants are managed even if the parent chain was broken.
    pub fn orphans<'a>(
        &'a self,
        procs: &'a ProcessSnapshot,
        reported: &'a HashSet<u32>,
    ) -> impl Iterator<Item = &'a Member> {
        self.members.values().filter(move |m| {
            m.managed_by.is_none()
                && !reported.contains(&m.pid)
                && !procs.ancestors(m.pid).any(|a| reported.contains(&a.pid))
        })
    }
}

/// `Some(true)`: proven this home's daemon. `Some(false)`: proven another's.
/// `None`: cannot tell.
pub fn daemon_home(p: &ProcInfo, home: &HomeMatcher) -> Option<bool> {
    if let Some(h) = p.env.as_ref().and_then(|e| e.home.as_deref()) {
        return Some(home.matches(h));
    }
    // The title is truncated to the original argv length, so only a title
    // with its closing parenthesis names the whole home.
    let title = p.cmd.first()?;
    let inner = title.split_once("God Daemon (")?.1.strip_suffix(')')?;
    Some(home.matches(inner))
}

/// Our own process and its ancestors, and init: never targets.
pub fn protected_pids(procs: &ProcessSnapshot) -> HashSet<u32> {
    let mut out: HashSet<u32> = [0, 1].into_iter().collect();
    if procs.self_pid != 0 {
        out.insert(procs.self_pid);
        out.extend(procs.ancestors(procs.self_pid).map(|p| p.pid));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Pm2Env, ProcState};

    fn proc(pid: u32, ppid: u32, sid: u32, cmd: &str, env: Option<&[&str]>) -> ProcInfo {
        ProcInfo {
            pid,
            ppid: Some(ppid),
            start_time: 1_000 + u64::from(pid),
            state: ProcState::Alive,
            sid: Some(sid),
            uid: Some(1000),
            name: cmd.split(' ').next().unwrap_or("").into(),
            cmd: vec![cmd.into()],
            env: env.map(Pm2Env::from_environ),
            listen_ports: vec![],
        }
    }

    const APP: &[&str] = &["PM2_HOME=/h", "pm_id=0", "name=web", "unique_id=u"];

    fn table(list: Vec<ProcInfo>) -> ProcessSnapshot {
        ProcessSnapshot::from_list(list, 9999)
    }

    #[test]
    fn managed_apps_are_members_but_not_orphans() {
        let procs = table(vec![
            proc(
                100,
                1,
                100,
                "PM2 v7.0.4: God Daemon (/h)",
                Some(&["PM2_HOME=/h", "SILENT=true"]),
            ),
            proc(200, 100, 200, "node /srv/web.js", Some(APP)),
            proc(201, 200, 200, "node child.js", Some(&["PATH=/bin"])),
        ]);
        let m = Membership::compute(&procs, &HomeMatcher::new(Path::new("/h")));
        assert_eq!(m.daemons, vec![100]);
        assert_eq!(m.members.len(), 2);
        assert_eq!(
            m.members[&201].evidence,
            Evidence::DescendantOf { pid: 200 }
        );
        assert_eq!(m.orphans(&procs, &HashSet::new()).count(), 0);
    }

    #[test]
    fn survivors_of_a_dead_daemon_are_orphans() {
        let procs = table(vec![
            proc(200, 1, 200, "node /srv/web.js", Some(APP)),
            // A grandchild re-parented to init, env scrubbed, still in the session.
            proc(300, 1, 200, "next-server", Some(&["PATH=/bin"])),
        ]);
        let m = Membership::compute(&procs, &HomeMatcher::new(Path::new("/h")));
        let orphans: Vec<u32> = m.orphans(&procs, &HashSet::new()).map(|o| o.pid).collect();
        assert_eq!(orphans, vec![200, 300]);
        assert_eq!(m.members[&300].evidence, Evidence::SessionOf { pid: 200 });
    }

    #[test]
    fn loose_matches_never_count() {
        let procs = table(vec![
            // A shell that exports PM2_HOME.
            proc(400, 1, 400, "bash", Some(&["PM2_HOME=/h"])),
            // A node process whose command line mentions the home.
            proc(401, 1, 401, "node /h/tool.js", Some(&["PATH=/bin"])),
            // Another home's app.
            proc(
                402,
                1,
                402,
                "node /srv/x.js",
                Some(&["PM2_HOME=/other", "pm_id=0"]),
            ),
            // Another user's process: environment unreadable.
            proc(403, 1, 403, "node /srv/web.js", None),
            // A zombie with perfect markers is dead, not an orphan.
            ProcInfo {
                state: ProcState::Zombie,
                ..proc(404, 1, 404, "node", Some(APP))
            },
        ]);
        let m = Membership::compute(&procs, &HomeMatcher::new(Path::new("/h")));
        assert!(m.members.is_empty(), "{:?}", m.members);
    }

    #[test]
    fn ghost_daemons_and_our_own_ancestry() {
        let procs = table(vec![
            proc(
                100,
                1,
                100,
                "PM2 v7.0.4: God Daemon (/h)",
                Some(&["PM2_HOME=/h"]),
            ),
            proc(
                150,
                1,
                150,
                "PM2 v7.0.4: God Daemon (/h)",
                Some(&["PM2_HOME=/h/"]),
            ),
            proc(
                160,
                1,
                160,
                "PM2 v7.0.4: God Daemon (/other)",
                Some(&["PM2_HOME=/other"]),
            ),
            // Another user's daemon: only a complete title can tell.
            proc(170, 1, 170, "PM2 v7.0.4: God Daemon (/h)", None),
            proc(
                180,
                1,
                180,
                "PM2 v7.0.4: God Daemon (/very/long/trunc",
                None,
            ),
            // pm2-doctor itself, started from a shell inside an app, and all its
            // ancestors are never targets.
            proc(9998, 200, 200, "bash", Some(APP)),
            proc(9999, 9998, 200, "pm2-doctor", Some(APP)),
            proc(200, 1, 200, "node /srv/web.js", Some(APP)),
        ]);
        let m = Membership::compute(&procs, &HomeMatcher::new(Path::new("/h")));
        assert_eq!(m.daemons, vec![100, 150, 170]);
        assert_eq!(m.unproven_daemons, vec![180]);
        assert!(!m.members.contains_key(&9999));
        assert!(!m.members.contains_key(&9998));
        // Even the app whose shell started us: killing it would kill us.
        assert!(!m.members.contains_key(&200));
    }

    #[test]
    fn reported_by_a_live_daemon_is_managed() {
        let procs = table(vec![proc(200, 1, 200, "node /srv/web.js", Some(APP))]);
        let m = Membership::compute(&procs, &HomeMatcher::new(Path::new("/h")));
        let reported: HashSet<u32> = [200].into_iter().collect();
        assert_eq!(m.orphans(&procs, &reported).count(), 0);
    }
}
