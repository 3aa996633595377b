//! Just enough of Linux's /proc. Other Unixes have none: there every read
//! fails, so no process is found, alive or matching.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the environment holds exactly this `KEY=value` entry.
pub fn has_env(pid: u32, entry: &str) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|kv| kv == entry.as_bytes()))
        .unwrap_or(false)
}

pub fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches('\0')
                .replace('\0', " ")
        })
        .unwrap_or_default()
}

/// State letter and ppid, read after the last `)` (comm may hold anything).
pub fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Start time in clock ticks since boot (field 22 of stat): with the
/// pid, the identity of a process.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Start time in seconds since the epoch, as `ps -o lstart` computes
/// it: boot time plus start ticks over USER_HZ (100 on Linux).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + start_ticks(pid)? / 100)
}

/// Exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(s, _)| s != 'Z' && s != 'X')
}

pub fn is_daemon(pid: u32) -> bool {
    let c = cmdline(pid);
    c.starts_with("PM2 v") && c.contains("God Daemon")
}

/// Waits until `pid` runs `program`: between fork and exec a child still
/// carries the test's command line and environment, without the markers
/// it was started with. Without /proc, a fixed pause has to do.
pub fn wait_for_exec(pid: u32, program: &str) {
    if !Path::new("/proc/self/cmdline").exists() {
        std::thread::sleep(Duration::from_millis(300));
        return;
    }
    let started = Instant::now();
    while !cmdline(pid).starts_with(program) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "process {pid} never ran {program}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
