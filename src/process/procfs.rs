//! Linux: the process table read straight from `/proc`.
//!
//! sysinfo opens four files per process (`stat`, `status` for the uid,
//! `cmdline`, `environ`) and calls `getsid`; pm2-doctor needs only what
//! `stat`, `cmdline` and `environ` hold and the owner of the process's
//! directory, and on a busy host that difference is most of diagnose's
//! time. Each process is read through one open directory fd, so every field
//! of a [`ProcInfo`] comes from the same process: if it exits and its pid is
//! reused mid-read, the reads fail (`ESRCH`) instead of mixing two
//! processes.
//!
//! [`SystemControl`] signals through a pidfd opened *before* the process is
//! re-read, so the (pid, start time) check and the signal are about the same
//! process even if the pid is reused in between; kernels without pidfds
//! (before 5.3) fall back to `kill(2)` right after the re-check.

use super::{Pm2Env, ProcInfo, ProcState, ProcessSnapshot, ProcessSource, Sig};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Kernel threads (`PF_KTHREAD` in `stat`'s flags): never PM2's, and their
/// `environ` cannot be read at all.
const PF_KTHREAD: u64 = 0x0020_0000;
/// `cmdline` and `environ` are bounded by the exec limits (a few MiB at
/// most), but a cap keeps one hostile process from costing more than that.
const ARGS_CAP: u64 = 4 * 1024 * 1024;

/// A `/proc` to read: the real one, or a fake tree in tests.
#[derive(Clone, Debug)]
pub struct ProcFs {
    root: PathBuf,
    /// `btime` of `/proc/stat`: seconds since the epoch at boot.
    boot_time: u64,
    /// `sysconf(_SC_CLK_TCK)`, the unit of `stat`'s start time.
    ticks_per_sec: u64,
}

/// What one `/proc/<pid>/stat` line says.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    comm: String,
    state: u8,
    ppid: u32,
    session: u32,
    flags: u64,
    start_ticks: u64,
}

/// Parses `pid (comm) state ppid pgrp session tty tpgid flags … starttime …`.
/// `comm` may hold spaces and parentheses, so it ends at the *last* `)`.
fn parse_stat(data: &[u8]) -> Option<Stat> {
    let open = data.iter().position(|&b| b == b'(')?;
    let close = data.iter().rposition(|&b| b == b')')?;
    let comm = data.get(open + 1..close)?;
    let rest = std::str::from_utf8(data.get(close + 1..)?).ok()?;
    let mut f = rest.split_ascii_whitespace();
    let state = *f.next()?.as_bytes().first()?;
    let ppid = f.next()?.parse().ok()?;
    let _pgrp = f.next()?;
    let session = f.next()?.parse().ok()?;
    // tty_nr, tpgid
    let flags = f.nth(2)?.parse().ok()?;
    // minflt, cminflt, majflt, cmajflt, utime, stime, cutime, cstime,
    // priority, nice, num_threads, itrealvalue; then starttime.
    let start_ticks = f.nth(12)?.parse().ok()?;
    Some(Stat {
        comm: String::from_utf8_lossy(comm).into_owned(),
        state,
        ppid,
        session,
        flags,
        start_ticks,
    })
}

/// `NUL`-separated strings; empty ones dropped, as sysinfo does, so both
/// sources describe a process the same way.
fn split_nul(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn read_at(dir: &OwnedFd, name: &str, cap: u64, buf: &mut Vec<u8>) -> io::Result<()> {
    let fd = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(errno_io)?;
    buf.clear();
    File::from(fd).take(cap).read_to_end(buf)?;
    Ok(())
}

impl ProcFs {
    /// The running system's `/proc`.
    pub fn system() -> io::Result<ProcFs> {
        let root = PathBuf::from("/proc");
        let stat = std::fs::read_to_string(root.join("stat"))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read /proc/stat: {e}")))?;
        let boot_time = boot_time(&stat).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "/proc/stat has no btime line")
        })?;
        Ok(ProcFs {
            root,
            boot_time,
            ticks_per_sec: rustix::param::clock_ticks_per_second().max(1),
        })
    }

    /// A `/proc`-shaped tree at `root` (tests).
    pub fn at(root: &Path, boot_time: u64, ticks_per_sec: u64) -> ProcFs {
        ProcFs {
            root: root.to_path_buf(),
            boot_time,
            ticks_per_sec: ticks_per_sec.max(1),
        }
    }

    /// One process, or `None` when it is gone, is a kernel thread, or its
    /// `stat` cannot be read or parsed.
    pub fn read(&self, pid: u32) -> Option<ProcInfo> {
        let mut buf = Vec::with_capacity(4096);
        self.read_with(pid, &mut buf)
    }

    /// Identity only: state, parent, session, start time and owner, from
    /// `stat` and the directory; no `cmdline` or `environ`. Those two read
    /// the process's memory and block while its memory map is locked (a
    /// process stuck in the kernel), which a kill's re-check must not.
    pub fn identity(&self, pid: u32) -> Option<ProcInfo> {
        let mut buf = Vec::with_capacity(1024);
        self.read_parts(pid, &mut buf, false)
    }

    fn read_with(&self, pid: u32, buf: &mut Vec<u8>) -> Option<ProcInfo> {
        self.read_parts(pid, buf, true)
    }

    fn read_parts(&self, pid: u32, buf: &mut Vec<u8>, memory: bool) -> Option<ProcInfo> {
        let dir = rustix::fs::openat(
            rustix::fs::CWD,
            self.root.join(pid.to_string()),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        read_at(&dir, "stat", 64 * 1024, buf).ok()?;
        let stat = parse_stat(buf)?;
        if stat.flags & PF_KTHREAD != 0 {
            return None;
        }
        // The directory belongs to the process's effective uid, or to root
        // while the process is not dumpable (setuid, prctl): in doubt it
        // reads as someone else's, which only ever makes repair refuse.
        let uid = rustix::fs::fstat(&dir).ok().map(|st| st.st_uid);
        let (cmd, env) = if memory {
            let cmd = match read_at(&dir, "cmdline", ARGS_CAP, buf) {
                Ok(()) => split_nul(buf),
                Err(_) => Vec::new(),
            };
            // Another user's environ refuses to open: "unknown", never "no
            // PM2 markers". A zombie's reads as empty, which is the truth.
            let env = match read_at(&dir, "environ", ARGS_CAP, buf) {
                Ok(()) => Some(Pm2Env::from_environ(&split_nul(buf))),
                Err(_) => None,
            };
            (cmd, env)
        } else {
            (Vec::new(), None)
        };
        Some(ProcInfo {
            pid,
            ppid: (stat.ppid != 0).then_some(stat.ppid),
            start_time: self.start_time(&stat),
            state: state_of(stat.state),
            sid: Some(stat.session),
            uid,
            name: stat.comm,
            cmd,
            env,
            listen_ports: Vec::new(),
        })
    }

    /// Just the state and start time of `pid`, from `stat` alone: what
    /// waiting for a signalled process needs, at a third of a full read.
    pub fn state(&self, pid: u32) -> Option<(ProcState, u64)> {
        let mut buf = Vec::with_capacity(512);
        let mut f = File::open(self.root.join(pid.to_string()).join("stat")).ok()?;
        f.read_to_end(&mut buf).ok()?;
        let stat = parse_stat(&buf)?;
        Some((state_of(stat.state), self.start_time(&stat)))
    }

    fn start_time(&self, stat: &Stat) -> u64 {
        self.boot_time
            .saturating_add(stat.start_ticks / self.ticks_per_sec)
    }

    /// Every process `/proc` lists (thread group leaders; no kernel threads).
    pub fn list(&self) -> io::Result<Vec<ProcInfo>> {
        self.list_reporting(&std::sync::atomic::AtomicU32::new(0))
    }

    /// [`list`](Self::list), storing in `current` the pid being read, so a
    /// caller that gave up waiting can say which process blocked the scan.
    pub fn list_reporting(
        &self,
        current: &std::sync::atomic::AtomicU32,
    ) -> io::Result<Vec<ProcInfo>> {
        // Test hook: stall at this pid as a read of a process stuck in the
        // kernel would.
        let stall: Option<u32> = std::env::var("PM2_DOCTOR_TEST_STALL_PROC_READ")
            .ok()
            .and_then(|v| v.parse().ok());
        let entries = std::fs::read_dir(&self.root).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot list {}: {e}", self.root.display()),
            )
        })?;
        let mut buf = Vec::with_capacity(4096);
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            current.store(pid, std::sync::atomic::Ordering::Relaxed);
            if stall == Some(pid) {
                loop {
                    std::thread::park();
                }
            }
            // A process that exits while the table is read is simply absent.
            if let Some(p) = self.read_with(pid, &mut buf) {
                out.push(p);
            }
        }
        Ok(out)
    }
}

/// Zombies and dead tasks are gone for every purpose here.
fn state_of(code: u8) -> ProcState {
    if matches!(code, b'Z' | b'X' | b'x') {
        ProcState::Zombie
    } else {
        ProcState::Alive
    }
}

fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The real process table, from `/proc`.
pub struct SystemSource;

impl ProcessSource for SystemSource {
    fn snapshot(&self) -> anyhow::Result<ProcessSnapshot> {
        let procs = ProcFs::system()?.list()?;
        Ok(ProcessSnapshot::from_list(procs, std::process::id()))
    }

    fn snapshot_reporting(
        &self,
        current: &std::sync::atomic::AtomicU32,
    ) -> anyhow::Result<ProcessSnapshot> {
        let procs = ProcFs::system()?.list_reporting(current)?;
        Ok(ProcessSnapshot::from_list(procs, std::process::id()))
    }
}

/// Looks at single processes in `/proc` and signals them through pidfds.
pub struct SystemControl {
    fs: ProcFs,
    /// The pidfd opened by the last `inspect` of each pid.
    pidfds: HashMap<u32, OwnedFd>,
}

impl SystemControl {
    pub fn new() -> anyhow::Result<Self> {
        Ok(SystemControl {
            fs: ProcFs::system()?,
            pidfds: HashMap::new(),
        })
    }
}

fn rustix_pid(pid: u32) -> Option<rustix::process::Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
}

impl super::ProcessControl for SystemControl {
    fn inspect(&mut self, pid: u32) -> Option<ProcInfo> {
        self.pidfds.remove(&pid);
        // The pidfd first, then the re-read: if the pid was reused before
        // the pidfd was opened, the re-read shows the newcomer's start time
        // and the caller refuses; if it is reused after, the pidfd still
        // names the process that was checked, and signalling it fails.
        let pidfd = rustix_pid(pid)
            .map(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()));
        if let Some(Err(Errno::SRCH)) = pidfd {
            return None;
        }
        let info = self.fs.identity(pid)?;
        if let Some(Ok(fd)) = pidfd {
            self.pidfds.insert(pid, fd);
        }
        Some(info)
    }

    fn is_gone(&mut self, pid: u32, start_time: u64) -> bool {
        match self.fs.state(pid) {
            None => true,
            Some((state, started)) => state == ProcState::Zombie || started != start_time,
        }
    }

    fn signal(&mut self, pid: u32, sig: Sig) -> Result<(), String> {
        let sig = match sig {
            Sig::Term => rustix::process::Signal::TERM,
            Sig::Kill => rustix::process::Signal::KILL,
        };
        let sent = match self.pidfds.get(&pid) {
            Some(fd) => rustix::process::pidfd_send_signal(fd, sig),
            // No pidfd support: kill(2), right after the re-check.
            None => match rustix_pid(pid) {
                Some(p) => rustix::process::kill_process(p, sig),
                None => return Err(format!("{pid} is not a valid process id")),
            },
        };
        match sent {
            Ok(()) => Ok(()),
            Err(Errno::SRCH) => Err(format!("process {pid} is gone")),
            Err(Errno::PERM) => Err(format!(
                "the OS refused to signal process {pid} (access denied)"
            )),
            Err(e) => Err(format!("cannot signal process {pid}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ProcessControl;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let line = b"4242 (my (weird) app) S 1 4242 4242 0 -1 4194560 120 0 0 0 5 3 0 0 20 0 1 0 987654 1000 200 18446744073709551615\n";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, "my (weird) app");
        assert_eq!(s.state, b'S');
        assert_eq!((s.ppid, s.session, s.flags), (1, 4242, 4194560));
        assert_eq!(s.start_ticks, 987654);
    }

    #[test]
    fn truncated_or_garbage_stat_is_rejected() {
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b"12 (x) S 1 2 3"), None);
        assert_eq!(
            parse_stat(b"12 x S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"),
            None
        );
        assert_eq!(
            parse_stat(b"12 (x) S one 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5"),
            None
        );
    }

    #[test]
    fn boot_time_line() {
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1764300000\nprocesses 9\n"),
            Some(1764300000)
        );
        assert_eq!(boot_time("cpu 1 2\n"), None);
    }

    /// Writes `/proc/<pid>/{stat,cmdline,environ}` into a fake root.
    fn fake_proc(root: &Path, pid: u32, stat_tail: &str, cmd: &[&str], env: Option<&[&str]>) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stat"), format!("{pid} {stat_tail}\n")).unwrap();
        let join = |v: &[&str]| v.iter().map(|s| format!("{s}\0")).collect::<String>();
        std::fs::write(dir.join("cmdline"), join(cmd)).unwrap();
        if let Some(env) = env {
            std::fs::write(dir.join("environ"), join(env)).unwrap();
        }
    }

    #[test]
    fn fake_tree_reads_identity_markers_and_skips_kernel_threads() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        // starttime 250 ticks at 100 Hz, boot at 1000 => started at 1002.
        fake_proc(
            root,
            300,
            "(node) S 1 300 300 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 250 0 0",
            &["node", "/srv/app.js", ""],
            Some(&["PM2_HOME=/lab/h", "pm_id=3", "unique_id=u", "name=web"]),
        );
        // A zombie: state Z, empty cmdline and environ.
        fake_proc(
            root,
            301,
            "(node) Z 300 300 300 0 -1 4194564 0 0 0 0 0 0 0 0 20 0 1 0 260 0 0",
            &[],
            Some(&[]),
        );
        // kthreadd's child: PF_KTHREAD set.
        fake_proc(
            root,
            2,
            "(kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0",
            &[],
            None,
        );
        // Another user's process: no environ file we may open.
        fake_proc(
            root,
            302,
            "(sleep) S 1 302 302 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 400 0 0",
            &["sleep", "100"],
            None,
        );
        std::fs::create_dir_all(root.join("self")).unwrap();
        std::fs::write(root.join("stat"), "btime 1000\n").unwrap();
        let fs = ProcFs::at(root, 1000, 100);
        let mut list = fs.list().unwrap();
        list.sort_by_key(|p| p.pid);
        let pids: Vec<u32> = list.iter().map(|p| p.pid).collect();
        assert_eq!(
            pids,
            vec![300, 301, 302],
            "kernel thread and non-pid entries skipped"
        );
        let app = &list[0];
        assert_eq!(app.start_time, 1002);
        assert_eq!((app.ppid, app.sid), (Some(1), Some(300)));
        assert_eq!(app.cmd, vec!["node", "/srv/app.js"]);
        let env = app.env.as_ref().unwrap();
        assert_eq!(env.home.as_deref(), Some("/lab/h"));
        assert!(env.has_app_markers());
        assert_eq!(list[1].state, ProcState::Zombie);
        assert_eq!(list[1].env, Some(Pm2Env::default()));
        assert_eq!(
            list[2].env, None,
            "unreadable environ is unknown, not empty"
        );
        assert_eq!(fs.read(2), None);
        assert_eq!(fs.read(999), None);
    }

    /// The real `/proc` and sysinfo must agree on identity: a journal written
    /// by one release and re-checked by another, or a snapshot compared to a
    /// re-inspect, depends on the same (pid, start time).
    #[test]
    fn agrees_with_sysinfo_on_a_live_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("PM2_HOME", "/lab/agree")
            .env("pm_id", "7")
            .spawn()
            .unwrap();
        let pid = child.id();
        let fs = ProcFs::system().unwrap();
        // Right after spawn the child may still be inside exec (its new
        // name set, its arguments not yet): wait until it is `sleep 30`.
        let settled = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while fs.read(pid).is_none_or(|p| p.cmd.is_empty()) && std::time::Instant::now() < settled {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let ours = fs.read(pid);
        let theirs = crate::process::system::SysinfoSource
            .snapshot()
            .map(|s| s.procs.get(&pid).cloned());
        let _ = child.kill();
        let _ = child.wait();
        let ours = ours.expect("procfs sees the child");
        let theirs = theirs.unwrap().expect("sysinfo sees the child");
        assert_eq!(ours, theirs);
        assert_eq!(ours.env.as_ref().unwrap().pm_id.as_deref(), Some("7"));
    }

    #[test]
    fn control_signals_through_the_pidfd_and_sees_the_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut ctl = SystemControl::new().unwrap();
        let seen = ctl.inspect(pid).expect("child is visible");
        assert!(seen.is_alive());
        assert!(!ctl.is_gone(pid, seen.start_time));
        assert!(
            ctl.is_gone(pid, seen.start_time + 1),
            "another start time is another process"
        );
        ctl.signal(pid, Sig::Kill).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        // Reaped: the pidfd still names the dead process, so a second
        // signal cannot reach whatever reuses the pid.
        assert!(ctl.signal(pid, Sig::Kill).unwrap_err().contains("gone"));
        assert_eq!(ctl.inspect(pid), None);
        assert!(ctl.is_gone(pid, seen.start_time));
    }
}
