//! The process table read through sysinfo in one refresh: the real source
//! on Windows and macOS (Linux reads `/proc` itself, see `procfs`).

use super::{Pm2Env, ProcInfo, ProcState, ProcessSnapshot, ProcessSource};
use sysinfo::{
    Pid, Process, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind,
};

/// Reads the OS process table: command lines, environments, users and
/// session ids, but no CPU, memory, disk or thread data (not needed, and the
/// per-thread walk is the expensive part on Linux).
pub struct SysinfoSource;

fn refresh_kind() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing()
        .without_tasks()
        .with_cmd(UpdateKind::Always)
        .with_environ(UpdateKind::Always)
        .with_user(UpdateKind::Always)
}

fn new_system() -> anyhow::Result<System> {
    System::new().map_err(|e| anyhow::anyhow!("cannot read the process table: {e:?}"))
}

/// Owned copy of what pm2-doctor needs from a sysinfo process.
fn to_info(p: &Process) -> ProcInfo {
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
        // Windows' "session id" is the Terminal Services session every
        // process of a logged-in user shares, not a Unix session: using it
        // would make a whole desktop session "session mates" of an app.
        sid: if cfg!(unix) {
            p.session_id().map(|s| s.as_u32())
        } else {
            None
        },
        uid,
        name: p.name().to_string_lossy().into_owned(),
        cmd: p
            .cmd()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect(),
        env: if environ.is_empty() && !environ_readable(p.pid().as_u32()) {
            // Another user's process: "unknown", not "no markers".
            None
        } else {
            Some(Pm2Env::from_environ(&environ))
        },
        listen_ports: Vec::new(),
    }
}

/// sysinfo reports an unreadable environment as empty. On Linux a second
/// look tells a truly empty one (`env -i`, kernel threads) from a denied one.
fn environ_readable(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        std::fs::read(format!("/proc/{pid}/environ")).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        false
    }
}

impl ProcessSource for SysinfoSource {
    fn snapshot(&self) -> anyhow::Result<ProcessSnapshot> {
        let mut sys = new_system()?;
        sys.refresh_processes_specifics(ProcessesToUpdate::All, true, refresh_kind());
        let list: Vec<ProcInfo> = sys
            .processes()
            .values()
            // Threads show up as processes on some platforms.
            .filter(|p| p.thread_kind().is_none())
            .map(to_info)
            .collect();
        Ok(ProcessSnapshot::from_list(list, std::process::id()))
    }
}

/// Looks at single processes through sysinfo and signals them natively:
/// kill(2) through sysinfo on Unix, `TerminateProcess` on Windows (sysinfo
/// would run `taskkill.exe` there); never `kill`/`taskkill`.
pub struct SysinfoControl {
    sys: System,
}

impl SysinfoControl {
    pub fn new() -> anyhow::Result<Self> {
        Ok(SysinfoControl { sys: new_system()? })
    }
}

impl super::ProcessControl for SysinfoControl {
    fn inspect(&mut self, pid: u32) -> Option<ProcInfo> {
        let p = Pid::from_u32(pid);
        self.sys
            .refresh_processes_specifics(ProcessesToUpdate::Some(&[p]), true, refresh_kind());
        self.sys.process(p).map(to_info)
    }

    fn signal(&mut self, pid: u32, sig: super::Sig) -> Result<(), String> {
        let p = self
            .sys
            .process(Pid::from_u32(pid))
            .ok_or_else(|| format!("process {pid} is gone"))?;
        // sysinfo's kill runs taskkill.exe on Windows: terminate natively
        // instead, on a handle re-checked against the start time.
        #[cfg(windows)]
        {
            let _ = sig;
            crate::platform::windows::terminate(pid, p.start_time()).map_err(|e| e.to_string())
        }
        #[cfg(not(windows))]
        {
            let sent = match sig {
                super::Sig::Term => match p.kill_with(sysinfo::Signal::Term) {
                    Some(ok) => ok,
                    None => p.kill(),
                },
                super::Sig::Kill => p.kill(),
            };
            if sent {
                Ok(())
            } else {
                Err(format!(
                    "the OS refused to signal process {pid} (access denied?)"
                ))
            }
        }
    }
}
