//! What differs between Linux, macOS and Windows.
//!
//! Every rule here that decides something is a pure function compiled on
//! every host, so the Windows and macOS rules are unit-tested on Linux with
//! inputs for each platform. The native calls they feed (the named-pipe
//! client, the TCP owner table, `TerminateProcess`) are thin `#[cfg]`
//! wrappers beside them. What each platform supports, and how it was tested,
//! is in `docs/platforms.md`.

pub mod windows;

use std::collections::HashMap;
use std::path::Path;

/// The operating systems whose rules differ somewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Os {
    Linux,
    MacOs,
    Windows,
    /// Another Unix (the BSDs): treated like macOS where it matters.
    OtherUnix,
}

impl Os {
    pub fn current() -> Os {
        if cfg!(windows) {
            Os::Windows
        } else if cfg!(target_os = "macos") {
            Os::MacOs
        } else if cfg!(target_os = "linux") {
            Os::Linux
        } else {
            Os::OtherUnix
        }
    }

    /// The longest unix socket path `bind`/`connect` accept, in bytes:
    /// `sun_path` (108 bytes on Linux, 104 on macOS and the BSDs) less its
    /// terminating NUL. `None` on Windows, where PM2 uses named pipes.
    pub fn max_socket_path_bytes(self) -> Option<usize> {
        match self {
            Os::Linux => Some(107),
            Os::MacOs | Os::OtherUnix => Some(103),
            Os::Windows => None,
        }
    }
}

/// A socket path the platform cannot bind or connect to: PM2's daemon fails
/// to listen (`ENAMETOOLONG`/`EINVAL`) and every client fails to connect. A
/// `PM2_HOME` that works on Linux can be too deep for macOS.
pub fn socket_path_too_long(path: &Path, os: Os) -> bool {
    os.max_socket_path_bytes()
        .is_some_and(|max| path.as_os_str().len() > max)
}

/// One listening TCP socket in the OS's table: who owns it, on which port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenRow {
    pub pid: u32,
    pub port: u16,
}

/// Ports (sorted, deduplicated) per pid, for the pids asked about only.
pub fn ports_by_pid(rows: &[ListenRow], pids: &[u32]) -> HashMap<u32, Vec<u16>> {
    let mut out: HashMap<u32, Vec<u16>> = HashMap::new();
    for r in rows.iter().filter(|r| pids.contains(&r.pid)) {
        out.entry(r.pid).or_default().push(r.port);
    }
    for v in out.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    out
}

/// Owners (sorted, deduplicated) per port, for the ports asked about only.
/// Pid 0 (Windows' idle process, which "owns" sockets no process holds any
/// more) is never an owner.
pub fn pids_by_port(rows: &[ListenRow], ports: &[u16]) -> HashMap<u16, Vec<u32>> {
    let mut out: HashMap<u16, Vec<u32>> = HashMap::new();
    for r in rows
        .iter()
        .filter(|r| r.pid != 0 && ports.contains(&r.port))
    {
        out.entry(r.port).or_default().push(r.pid);
    }
    for v in out.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    out
}

/// Every listening TCP socket (IPv4 and IPv6) with its owning pid, from the
/// OS's own table: `GetExtendedTcpTable` on Windows, `proc_pidfdinfo` on
/// macOS (through the `listeners` crate; never `netstat`/`lsof`). On macOS
/// only the caller's own processes are visible unless it runs as root. An
/// unreadable table gives no rows: ports are evidence, never a verdict.
#[cfg(any(windows, target_os = "macos"))]
pub fn native_listen_rows() -> Vec<ListenRow> {
    let Ok(all) = listeners::get_all() else {
        return Vec::new();
    };
    all.into_iter()
        .filter(|l| {
            l.protocol == listeners::Protocol::TCP
                && l.state == listeners::SocketState::Listen
                && l.process.pid != 0
        })
        .map(|l| ListenRow {
            pid: l.process.pid,
            port: l.socket.port(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_limits_per_platform() {
        let p = |n: usize| std::path::PathBuf::from(format!("/{}", "a".repeat(n - 1)));
        // 104 bytes: fine on Linux, too long for macOS's 104-byte sun_path.
        assert!(!socket_path_too_long(&p(104), Os::Linux));
        assert!(socket_path_too_long(&p(104), Os::MacOs));
        assert!(!socket_path_too_long(&p(103), Os::MacOs));
        assert!(socket_path_too_long(&p(108), Os::Linux));
        assert!(!socket_path_too_long(&p(107), Os::Linux));
        assert!(socket_path_too_long(&p(104), Os::OtherUnix));
        // Named pipes have no such limit that matters to PM2.
        assert!(!socket_path_too_long(&p(300), Os::Windows));
    }

    #[test]
    fn current_os_is_consistent_with_cfg() {
        let os = Os::current();
        assert_eq!(os == Os::Windows, cfg!(windows));
        assert_eq!(os == Os::MacOs, cfg!(target_os = "macos"));
        assert_eq!(os == Os::Linux, cfg!(target_os = "linux"));
    }

    #[test]
    fn rows_grouped_by_pid_and_port() {
        let row = |pid, port| ListenRow { pid, port };
        let rows = [
            row(10, 8080),
            row(10, 3000),
            // The same port on IPv4 and IPv6 is two rows.
            row(10, 8080),
            row(11, 8080),
            row(0, 8080),
            row(12, 9999),
        ];
        let by_pid = ports_by_pid(&rows, &[10, 12, 99]);
        assert_eq!(by_pid.get(&10), Some(&vec![3000, 8080]));
        assert_eq!(by_pid.get(&12), Some(&vec![9999]));
        assert!(!by_pid.contains_key(&11), "not asked about");
        assert!(!by_pid.contains_key(&99), "no rows");
        let by_port = pids_by_port(&rows, &[8080, 1]);
        assert_eq!(by_port.get(&8080), Some(&vec![10, 11]), "pid 0 is no owner");
        assert!(!by_port.contains_key(&1));
        assert!(!by_port.contains_key(&9999), "not asked about");
    }
}
