//! The real process table, read through sysinfo in one refresh.

use super::{listening_ports, Pm2Env, ProcInfo, ProcState, ProcessSnapshot, ProcessSource};
use sysinfo::{ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind};

/// Reads the OS process table: command lines, environments, users and
/// session ids, but no CPU, memory, disk or thread data (not needed, and the
/// per-thread walk is the expensive part on Linux).
pub struct SystemSource;

impl ProcessSource for SystemSource {
    fn snapshot(&self) -> anyhow::Result<ProcessSnapshot> {
        let mut sys =
            System::new().map_err(|e| anyhow::anyhow!("cannot read the process table: {e:?}"))?;
        let kind = ProcessRefreshKind::nothing()
            .without_tasks()
            .with_cmd(UpdateKind::Always)
            .with_environ(UpdateKind::Always)
            .with_user(UpdateKind::Always);
        sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
        let mut list: Vec<ProcInfo> = sys
            .processes()
            .values()
            // Threads show up as processes on some platforms.
            .filter(|p| p.thread_kind().is_none())
            .map(|p| {
                let environ: Vec<String> = p
                    .environ()
                    .iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect();
                #[cfg(unix)]
                let uid = p.user_id().map(|u| **u);
                #[cfg(not(unix))]
                let uid = None;
                ProcInfo {
                    pid: p.pid().as_u32(),
                    ppid: p.parent().map(|pp| pp.as_u32()),
                    start_time: p.start_time(),
                    state: if matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead) {
                        ProcState::Zombie
                    } else {
                        ProcState::Alive
                    },
                    sid: p.session_id().map(|s| s.as_u32()),
                    uid,
                    name: p.name().to_string_lossy().into_owned(),
                    cmd: p
                        .cmd()
                        .iter()
                        .map(|s| s.to_string_lossy().into_owned())
                        .collect(),
                    // An unreadable environment (another user's process) reads
                    // as empty: that is "unknown", not "no markers".
                    env: (!environ.is_empty()).then(|| Pm2Env::from_environ(&environ)),
                    listen_ports: Vec::new(),
                }
            })
            .collect();
        fill_ports(&mut list);
        Ok(ProcessSnapshot::from_list(list, std::process::id()))
    }
}

/// Port evidence is only wanted for processes that look like PM2's (daemons,
/// apps, their session mates), so only those fd tables are walked.
fn fill_ports(list: &mut [ProcInfo]) {
    let pm2_sessions: std::collections::HashSet<u32> = list
        .iter()
        .filter(|p| p.is_pm2_daemon() || p.env.as_ref().is_some_and(|e| e.home.is_some()))
        .filter_map(|p| p.sid)
        .collect();
    let wanted: Vec<u32> = list
        .iter()
        .filter(|p| {
            p.is_pm2_daemon()
                || p.env.as_ref().is_some_and(|e| e.has_app_markers())
                || p.sid.is_some_and(|s| pm2_sessions.contains(&s))
        })
        .map(|p| p.pid)
        .collect();
    let mut ports = listening_ports(&wanted);
    for p in list.iter_mut() {
        if let Some(v) = ports.remove(&p.pid) {
            p.listen_ports = v;
        }
    }
}
