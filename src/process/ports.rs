//! Which TCP ports a process listens on, read natively (never `netstat`,
//! `ss` or `lsof`, which may be missing or hang).
//!
//! Linux: the kernel's LISTEN sockets in `/proc/net/tcp{,6}` give inode →
//! port, and `/proc/<pid>/fd/*` links (`socket:[inode]`) give pid → inodes.
//! Windows and macOS: the OS's own TCP owner table (`GetExtendedTcpTable`,
//! `proc_pidfdinfo`), through [`crate::platform::native_listen_rows`].
//! Other platforms report no ports (evidence only; no check depends on it).

use std::collections::HashMap;

/// Ports (sorted, deduplicated) per pid, for the pids asked about only.
pub fn listening_ports(pids: &[u32]) -> HashMap<u32, Vec<u16>> {
    #[cfg(target_os = "linux")]
    {
        linux::listening_ports(pids)
    }
    #[cfg(any(windows, target_os = "macos"))]
    {
        crate::platform::ports_by_pid(&crate::platform::native_listen_rows(), pids)
    }
    #[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
    {
        let _ = pids;
        HashMap::new()
    }
}

/// Which processes listen on each of `ports` (any address). Walks every
/// process's fd table, so it is only called for ports an app is known to
/// be fighting over.
pub fn port_listeners(ports: &[u16]) -> HashMap<u16, Vec<u32>> {
    #[cfg(target_os = "linux")]
    {
        linux::port_listeners(ports)
    }
    #[cfg(any(windows, target_os = "macos"))]
    {
        crate::platform::pids_by_port(&crate::platform::native_listen_rows(), ports)
    }
    #[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
    {
        let _ = ports;
        HashMap::new()
    }
}

/// Both answers from one read of the socket tables: the ports each of
/// `pids` listens on, and the listeners of each of `ports`. Reads nothing
/// when both are empty (reading the tables walks the kernel's whole TCP
/// hash, which costs milliseconds on a big machine).
pub fn socket_table(
    pids: &[u32],
    ports: &[u16],
) -> (HashMap<u32, Vec<u16>>, HashMap<u16, Vec<u32>>) {
    if pids.is_empty() && ports.is_empty() {
        return (HashMap::new(), HashMap::new());
    }
    #[cfg(target_os = "linux")]
    {
        linux::socket_table(pids, ports)
    }
    #[cfg(not(target_os = "linux"))]
    {
        (listening_ports(pids), port_listeners(ports))
    }
}

/// Parses one `/proc/net/tcp` table: LISTEN (state `0A`) inode → port.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn parse_proc_net_tcp(text: &str) -> HashMap<u64, u16> {
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
        if cols.len() < 10 || cols[3] != "0A" {
            continue;
        }
        let Some(port_hex) = cols[1].rsplit(':').next() else {
            continue;
        };
        let (Ok(port), Ok(inode)) = (u16::from_str_radix(port_hex, 16), cols[9].parse::<u64>())
        else {
            continue;
        };
        if inode != 0 {
            out.insert(inode, port);
        }
    }
    out
}

#[cfg(target_os = "linux")]
mod linux {
    use super::parse_proc_net_tcp;
    use std::collections::HashMap;
    use std::fs;

    /// Bounds the work on hosts with huge fd tables.
    const MAX_FDS_PER_PROCESS: usize = 65_536;

    fn listen_inodes() -> HashMap<u64, u16> {
        let mut inodes = HashMap::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            if let Ok(text) = fs::read_to_string(table) {
                inodes.extend(parse_proc_net_tcp(&text));
            }
        }
        inodes
    }

    fn socket_inodes(pid: u32) -> Vec<u64> {
        let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            return Vec::new();
        };
        rd.flatten()
            .take(MAX_FDS_PER_PROCESS)
            .filter_map(|e| fs::read_link(e.path()).ok())
            .filter_map(|target| {
                let s = target.to_str()?;
                s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
            })
            .collect()
    }

    pub fn socket_table(
        pids: &[u32],
        ports: &[u16],
    ) -> (HashMap<u32, Vec<u16>>, HashMap<u16, Vec<u32>>) {
        let inodes = listen_inodes();
        (
            ports_of(&inodes, pids),
            if ports.is_empty() {
                HashMap::new()
            } else {
                listeners_in(&inodes, ports)
            },
        )
    }

    pub fn port_listeners(ports: &[u16]) -> HashMap<u16, Vec<u32>> {
        listeners_in(&listen_inodes(), ports)
    }

    fn listeners_in(inodes: &HashMap<u64, u16>, ports: &[u16]) -> HashMap<u16, Vec<u32>> {
        let wanted: HashMap<u64, u16> = inodes
            .iter()
            .filter(|(_, p)| ports.contains(p))
            .map(|(i, p)| (*i, *p))
            .collect();
        let mut out: HashMap<u16, Vec<u32>> = HashMap::new();
        if wanted.is_empty() {
            return out;
        }
        let Ok(rd) = fs::read_dir("/proc") else {
            return out;
        };
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            for inode in socket_inodes(pid) {
                if let Some(port) = wanted.get(&inode) {
                    let v = out.entry(*port).or_default();
                    if !v.contains(&pid) {
                        v.push(pid);
                    }
                }
            }
        }
        out
    }

    pub fn listening_ports(pids: &[u32]) -> HashMap<u32, Vec<u16>> {
        ports_of(&listen_inodes(), pids)
    }

    fn ports_of(inodes: &HashMap<u64, u16>, pids: &[u32]) -> HashMap<u32, Vec<u16>> {
        let mut out = HashMap::new();
        if inodes.is_empty() {
            return out;
        }
        for &pid in pids {
            let mut ports: Vec<u16> = socket_inodes(pid)
                .into_iter()
                .filter_map(|i| inodes.get(&i).copied())
                .collect();
            ports.sort_unstable();
            ports.dedup();
            if !ports.is_empty() {
                out.insert(pid, ports);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_rows_only() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:4925 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:4926 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 654321 1 0000000000000000 100 0 0 10 0\n\
   2: garbage\n";
        let m = parse_proc_net_tcp(text);
        assert_eq!(m.get(&123456), Some(&0x4925));
        assert!(!m.contains_key(&654321));
        assert_eq!(m.len(), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn finds_our_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id();
        let ports = listening_ports(&[me]);
        assert!(
            ports.get(&me).is_some_and(|p| p.contains(&port)),
            "{ports:?}"
        );
    }
}
