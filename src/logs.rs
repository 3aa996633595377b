//! Bounded reading of log tails, and the classifier that names why an app
//! crashes or what went wrong in the daemon.
//!
//! Only the last [`TAIL_BYTES`] of a file are ever read, so a 10 GiB log
//! costs what a 10 KiB one does. Line numbers are only known when the whole
//! file fit in the tail; otherwise lines are located by byte offset.

use serde::Serialize;
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// How much of the end of pm2.log is read (restart rates need a window).
pub const TAIL_BYTES: u64 = 64 * 1024;
/// How much of the end of an app's error log is read: the latest error is
/// what names the cause, and a Node or Python trace is 1–3 KiB. Kept small
/// because up to 100 are held at once.
pub const APP_TAIL_BYTES: u64 = 8 * 1024;
/// Longer lines are cut: a minified stack trace must not flood a report.
const MAX_LINE_CHARS: usize = 400;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TailLine {
    /// Byte offset of the line's start in the file.
    pub offset: u64,
    /// 1-based line number, when the whole file was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tail {
    pub path: PathBuf,
    pub size: u64,
    pub lines: Vec<TailLine>,
}

/// Reads the last `cap` bytes of `path` as lines. `Ok(None)` when absent.
/// Symlinks out of `root` are not followed.
pub fn read_tail(path: &Path, root: &Path, cap: u64) -> Result<Option<Tail>, String> {
    match crate::home::inspect(path, root) {
        crate::home::Entry::File(_) => {}
        crate::home::Entry::Missing => return Ok(None),
        crate::home::Entry::SymlinkOutside { target } => {
            return Err(format!(
                "{} links out to {}; not followed",
                path.display(),
                target.display()
            ))
        }
        crate::home::Entry::Unreadable(e) => return Err(format!("{}: {e}", path.display())),
        _ => return Err(format!("{} is not a regular file", path.display())),
    }
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = File::open(path).map_err(err)?;
    let size = f.metadata().map_err(err)?.len();
    let start = size.saturating_sub(cap);
    f.seek(SeekFrom::Start(start)).map_err(err)?;
    let mut buf = Vec::with_capacity(cap.min(size) as usize);
    f.take(cap).read_to_end(&mut buf).map_err(err)?;
    Ok(Some(Tail {
        path: path.to_path_buf(),
        size,
        lines: split_lines(&buf, start),
    }))
}

/// Splits a tail into lines; a tail that starts mid-file drops its first,
/// partial line.
pub fn split_lines(buf: &[u8], start: u64) -> Vec<TailLine> {
    let whole = start == 0;
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut first = true;
    for chunk in buf.split(|b| *b == b'\n') {
        let here = pos;
        pos += chunk.len() + 1;
        if first && !whole {
            first = false;
            continue;
        }
        first = false;
        if chunk.is_empty() && pos > buf.len() {
            break;
        }
        let mut text = String::from_utf8_lossy(chunk)
            .trim_end_matches('\r')
            .to_string();
        if text.chars().count() > MAX_LINE_CHARS {
            text = text.chars().take(MAX_LINE_CHARS).collect::<String>() + "…";
        }
        out.push(TailLine {
            offset: start + here as u64,
            line: whole.then_some(out.len() as u64 + 1),
            text,
        });
    }
    out
}

/// Why an app crashed, as far as its log says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Cause {
    AddressInUse {
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
    },
    OutOfMemory,
    ModuleNotFound,
    PermissionDenied,
    DiskFull,
}

impl Cause {
    pub fn label(&self) -> String {
        match self {
            Cause::AddressInUse { port: Some(p) } => format!("port {p} is already in use"),
            Cause::AddressInUse { port: None } => "its address is already in use".into(),
            Cause::OutOfMemory => "it runs out of memory".into(),
            Cause::ModuleNotFound => "a module or file it needs is missing".into(),
            Cause::PermissionDenied => "it is denied permission".into(),
            Cause::DiskFull => "the disk is full".into(),
        }
    }
}

fn digits_after(s: &str) -> Option<u16> {
    let d: String = s.chars().take_while(char::is_ascii_digit).collect();
    d.parse().ok()
}

/// `address already in use 127.0.0.1:18741`, `:::3000`, `('127.0.0.1', 7778)`,
/// `port: 18741`.
pub fn port_in(line: &str) -> Option<u16> {
    let lower = line.to_ascii_lowercase();
    if let Some(i) = lower.find("address already in use") {
        let rest = &line[i + "address already in use".len()..];
        if let Some(j) = rest.rfind(':') {
            if let Some(p) = digits_after(&rest[j + 1..]) {
                return Some(p);
            }
        }
    }
    if let Some(i) = lower.find("bind on address (") {
        let rest = &line[i..];
        if let Some(j) = rest.find(',') {
            return digits_after(rest[j + 1..].trim_start());
        }
    }
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix("port:") {
        return digits_after(rest.trim_start());
    }
    None
}

/// The cause a single log line shows, if any.
pub fn classify(line: &str) -> Option<Cause> {
    let l = line.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| l.contains(n));
    if has(&[
        "eaddrinuse",
        "address already in use",
        "errno 98",
        "errno 10048",
        "winerror 10048",
        "wsaeaddrinuse",
        "only one usage of each socket address",
    ]) {
        return Some(Cause::AddressInUse {
            port: port_in(line),
        });
    }
    if has(&[
        "javascript heap out of memory",
        "reached heap limit",
        "memoryerror",
        "cannot allocate memory",
        "enomem",
        "out of memory",
    ]) {
        return Some(Cause::OutOfMemory);
    }
    if has(&[
        "cannot find module",
        "err_module_not_found",
        "modulenotfounderror",
        "no module named",
    ]) {
        return Some(Cause::ModuleNotFound);
    }
    if has(&["enospc", "no space left on device"]) {
        return Some(Cause::DiskFull);
    }
    if has(&["eacces", "permissionerror", "permission denied", "eperm"]) {
        return Some(Cause::PermissionDenied);
    }
    None
}

/// The most recent cause in a tail, with the lines it relied on (the
/// matching line and, for Node errors, the `port:` line that follows).
pub fn latest_cause(tail: &Tail) -> Option<(Cause, Vec<&TailLine>)> {
    let (i, mut cause) = tail
        .lines
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, l)| classify(&l.text).map(|c| (i, c)))?;
    let mut quotes = vec![&tail.lines[i]];
    if let Cause::AddressInUse { port: None } = cause {
        // One Node error spans many lines (`Error: listen EADDRINUSE ...
        // :PORT`, then `code: 'EADDRINUSE'`, then `port: N`): the message
        // line above, or the `port:` line below, names the port.
        let above = tail.lines[i.saturating_sub(15)..i]
            .iter()
            .rev()
            .find_map(|l| match classify(&l.text) {
                Some(Cause::AddressInUse { port: Some(p) }) => Some((l, p)),
                _ => None,
            });
        let below = || {
            tail.lines[i + 1..]
                .iter()
                .take(15)
                .find_map(|l| port_in(&l.text).map(|p| (l, p)))
        };
        if let Some((l, p)) = above {
            cause = Cause::AddressInUse { port: Some(p) };
            quotes = vec![l];
        } else if let Some((l, p)) = below() {
            cause = Cause::AddressInUse { port: Some(p) };
            quotes.push(l);
        }
    }
    Some((cause, quotes))
}

/// Daemon-side trouble recorded in pm2.log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signature {
    GlobalErrorCaught,
    PidusageError,
    CallCancelled,
    WmicMissing,
    CouldNotBeKilled,
    StillAlive,
    AlreadyExists,
    TooManyUnstableRestarts,
    StreamDestroyed,
}

impl Signature {
    /// Signatures only Windows' WMI produces. A pidusage error alone is
    /// not one: on Linux pidusage reads /proc and fails on exited pids.
    pub fn is_wmi(self) -> bool {
        matches!(self, Signature::CallCancelled | Signature::WmicMissing)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Signature::GlobalErrorCaught => "the daemon crashed (PM2 global error caught)",
            Signature::PidusageError => "pidusage failed to read process stats",
            Signature::CallCancelled => "a WMI call was cancelled",
            Signature::WmicMissing => "wmic could not be started",
            Signature::CouldNotBeKilled => "PM2 could not kill a process",
            Signature::StillAlive => "a process survived PM2's kill timeout",
            Signature::AlreadyExists => "PM2 refused a process that already exists",
            Signature::TooManyUnstableRestarts => {
                "PM2 stopped an app after too many unstable restarts"
            }
            Signature::StreamDestroyed => "PM2 wrote to a closed log stream",
        }
    }
}

pub fn signature(line: &str) -> Option<Signature> {
    let l = line.to_ascii_lowercase();
    let s = if l.contains("pm2 global error caught") {
        Signature::GlobalErrorCaught
    } else if l.contains("error caught while calling pidusage") {
        Signature::PidusageError
    } else if l.contains("call cancelled") {
        Signature::CallCancelled
    } else if l.contains("spawn wmic enoent") || l.contains("wmic is not recognized") {
        Signature::WmicMissing
    } else if l.contains("could not be killed") || l.contains("failed to kill") {
        Signature::CouldNotBeKilled
    } else if l.contains("still alive after") {
        Signature::StillAlive
    } else if l.contains("pm2 error") && l.contains("already exists") {
        Signature::AlreadyExists
    } else if l.contains("too many unstable restarts") {
        Signature::TooManyUnstableRestarts
    } else if l.contains("err_stream_destroyed") {
        Signature::StreamDestroyed
    } else {
        return None;
    };
    Some(s)
}

/// `2024-02-04T09:12:01: PM2 log: ...` → seconds since the epoch, read as
/// UTC (PM2 writes local time without a zone; only differences are used).
pub fn pm2_log_time(line: &str) -> Option<i64> {
    let stamp = line.get(..19)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// An app start recorded in pm2.log: `App [name:id] starting in -fork mode-`.
pub fn app_start(line: &str) -> Option<(String, Option<u64>)> {
    let rest = line.split_once("App [")?.1;
    let (inner, after) = rest.split_once(']')?;
    if !after.contains("starting in") {
        return None;
    }
    Some(match inner.rsplit_once(':') {
        Some((name, id)) => (name.to_string(), id.parse().ok()),
        None => (inner.to_string(), None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(text: &str) -> Tail {
        Tail {
            path: "x.log".into(),
            size: text.len() as u64,
            lines: split_lines(text.as_bytes(), 0),
        }
    }

    #[test]
    fn node_python_and_windows_address_in_use() {
        let node = "Error: listen EADDRINUSE: address already in use 127.0.0.1:18741\n    at Server.setupListenHandle\n  code: 'EADDRINUSE',\n  port: 18741\n";
        let t = tail(node);
        let (c, q) = latest_cause(&t).unwrap();
        assert_eq!(c, Cause::AddressInUse { port: Some(18741) });
        assert_eq!(q[0].line, Some(1));
        assert_eq!(
            classify("Error: listen EADDRINUSE: address already in use :::3000"),
            Some(Cause::AddressInUse { port: Some(3000) })
        );
        // Node's error object alone.
        let obj = "Error: listen EADDRINUSE\n  errno: -98,\n  port: 8080\n}";
        assert_eq!(
            latest_cause(&tail(obj)).unwrap().0,
            Cause::AddressInUse { port: Some(8080) }
        );
        assert_eq!(
            classify("OSError: [Errno 98] Address already in use"),
            Some(Cause::AddressInUse { port: None })
        );
        // The seed incident's uvicorn line on Windows.
        let seed = "ERROR: [Errno 10048] error while attempting to bind on address ('127.0.0.1', 7778): [winerror 10048] only one usage of each socket address (protocol/network address/port) is normally permitted";
        assert_eq!(
            classify(seed),
            Some(Cause::AddressInUse { port: Some(7778) })
        );
    }

    #[test]
    fn other_causes() {
        assert_eq!(
            classify(
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"
            ),
            Some(Cause::OutOfMemory)
        );
        assert_eq!(
            classify("Error: Cannot find module '/srv/app/missing.js'"),
            Some(Cause::ModuleNotFound)
        );
        assert_eq!(
            classify("ModuleNotFoundError: No module named 'flask'"),
            Some(Cause::ModuleNotFound)
        );
        assert_eq!(
            classify("Error: EACCES: permission denied, open '/var/log/x'"),
            Some(Cause::PermissionDenied)
        );
        assert_eq!(
            classify("Error: ENOSPC: no space left on device, write"),
            Some(Cause::DiskFull)
        );
        assert_eq!(classify("server listening on 3000"), None);
    }

    #[test]
    fn the_latest_cause_wins() {
        let t = tail("Error: Cannot find module 'x'\nrestarted\nError: listen EADDRINUSE: address already in use 0.0.0.0:80\n");
        assert_eq!(
            latest_cause(&t).unwrap().0,
            Cause::AddressInUse { port: Some(80) }
        );
    }

    #[test]
    fn daemon_signatures_from_the_seed_and_the_samples() {
        assert_eq!(
            signature("2024-02-04T09:12:05: PM2 error: Error caught while calling pidusage"),
            Some(Signature::PidusageError)
        );
        assert_eq!(
            signature("ERROR: Description = Call cancelled"),
            Some(Signature::CallCancelled)
        );
        assert_eq!(
            signature("PM2 error: Error: spawn wmic ENOENT"),
            Some(Signature::WmicMissing)
        );
        assert_eq!(
            signature("2026-11-28T08:00:00: PM2 error: Process 4960 could not be killed"),
            Some(Signature::CouldNotBeKilled)
        );
        for line in
            include_str!("../testdata/samples/pm2.log.daemon-crash-selfupdate.excerpt.txt").lines()
        {
            if line.contains("PM2 global error caught") {
                assert_eq!(signature(line), Some(Signature::GlobalErrorCaught));
            }
        }
        assert_eq!(
            signature("2026-11-28T08:00:00: PM2 log: App [web:0] online"),
            None
        );
    }

    #[test]
    fn pm2_log_restart_lines() {
        let l = "2024-02-04T09:12:01: PM2 log: App [chinvex-gateway:1] starting in -fork mode-";
        assert_eq!(app_start(l), Some(("chinvex-gateway".into(), Some(1))));
        assert_eq!(pm2_log_time(l), Some(1_707_037_921));
        assert_eq!(
            app_start("2024-02-04T09:12:01: PM2 log: App [web:0] online"),
            None
        );
        assert_eq!(pm2_log_time("garbage"), None);
    }

    #[test]
    fn rates_from_pm2_log_starts() {
        let text = (0..10)
            .map(|i| {
                format!(
                    "2024-02-04T09:{:02}:00: PM2 log: App [gw:1] starting in -fork mode-",
                    10 + i
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let tail = Tail {
            path: "pm2.log".into(),
            size: 0,
            lines: split_lines(text.as_bytes(), 0),
        };
        let r = restart_rates(Some(&tail));
        let &(n, a, b) = r.get("gw:1").unwrap();
        assert_eq!(n, 10);
        assert!((per_minute(n, a, b).unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(per_minute(1, 0, 0), None);
    }

    #[test]
    fn log_file_names_follow_pm2() {
        assert_eq!(formatted_name("m_none"), "m-none");
        assert_eq!(formatted_name("my app@1"), "my-app-1");
        assert_eq!(formatted_name("chinvex-gateway"), "chinvex-gateway");
        assert_eq!(formatted_name("é"), "-");
    }

    #[test]
    fn tails_are_bounded_and_located() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.log");
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&p, &text).unwrap();
        let t = read_tail(&p, dir.path(), 1024).unwrap().unwrap();
        assert!(t.lines.len() < 200);
        let last = t.lines.last().unwrap();
        assert_eq!(last.text, "line 19999");
        assert_eq!(last.line, None, "line numbers only for whole files");
        assert_eq!(
            &text[last.offset as usize..last.offset as usize + 10],
            "line 19999"
        );
        assert!(
            t.lines[0].text.starts_with("line "),
            "partial first line dropped"
        );
        let small = read_tail(&p, dir.path(), 1 << 30).unwrap().unwrap();
        assert_eq!(small.lines[5].line, Some(6));
        assert_eq!(
            read_tail(&dir.path().join("none"), dir.path(), 10).unwrap(),
            None
        );
    }
}

/// PM2's file-name form of an app name (lib/Common.js): anything outside
/// `[A-Za-z0-9.\\-]` becomes `-`, per UTF-16 unit.
pub fn formatted_name(name: &str) -> String {
    name.encode_utf16()
        .map(|u| match char::from_u32(u32::from(u)) {
            Some(c) if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '\\') => c,
            _ => '-',
        })
        .collect()
}

/// Restarts seen in pm2.log's tail: (count, first, last) per app label.
pub fn restart_rates(tail: Option<&Tail>) -> BTreeMap<String, (usize, i64, i64)> {
    let mut out: BTreeMap<String, (usize, i64, i64)> = BTreeMap::new();
    for l in tail.map(|t| t.lines.as_slice()).unwrap_or_default() {
        let (Some((name, id)), Some(t)) = (app_start(&l.text), pm2_log_time(&l.text)) else {
            continue;
        };
        let label = match id {
            Some(id) => format!("{name}:{id}"),
            None => name,
        };
        let e = out.entry(label).or_insert((0, t, t));
        e.0 += 1;
        e.1 = e.1.min(t);
        e.2 = e.2.max(t);
    }
    out
}

pub fn per_minute(count: usize, first: i64, last: i64) -> Option<f64> {
    let span = (last - first) as f64 / 60.0;
    (count >= 2 && span > 0.0).then(|| (count - 1) as f64 / span)
}

/// The pm2.log restarts of one app: by `name:id`, else by name alone (PM2
/// ids change across daemons).
pub fn rate_for<'a>(
    rates: &'a BTreeMap<String, (usize, i64, i64)>,
    label: &str,
    name: &str,
) -> Option<&'a (usize, i64, i64)> {
    rates.get(label).or_else(|| {
        rates
            .iter()
            .find(|(k, _)| k.rsplit_once(':').map(|(n, _)| n) == Some(name))
            .map(|(_, v)| v)
    })
}

/// Every log the checks look at, read once and bounded.
#[derive(Clone, Debug, Default)]
pub struct LogSnapshot {
    /// `None` when there is no pm2.log; `Err` when it could not be read.
    pub pm2_log: Option<Result<Tail, String>>,
    /// Error-log tails of the apps worth a look, keyed by app label.
    pub app_errors: std::collections::BTreeMap<String, Result<Tail, String>>,
    /// Every log file found, with its size (metadata only).
    pub sizes: Vec<(PathBuf, u64)>,
    /// `logs/` is a symlink out of the home (to this target): not listed.
    pub logs_dir_outside: Option<PathBuf>,
}

/// Most log files listed for the size check (hostile homes).
const MAX_LOG_FILES: usize = 100_000;

fn size_of(p: &Path) -> Option<u64> {
    std::fs::symlink_metadata(p)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// The tail of an app's error log: the recorded path first; a home copied
/// from another machine (or OS) keeps its logs under PM2's naming rule.
pub fn error_tail(
    paths: &crate::home::Pm2Paths,
    app: &crate::apps::AppView,
) -> Option<Result<Tail, String>> {
    let fmt = formatted_name(&app.name);
    let mut candidates: Vec<PathBuf> = app.err_log.iter().cloned().collect();
    candidates.push(paths.logs_dir.join(format!("{fmt}-error.log")));
    if let Some(id) = app.pm_id {
        candidates.push(paths.logs_dir.join(format!("{fmt}-error-{id}.log")));
    }
    candidates.iter().find_map(|p| {
        read_tail(p, crate::home::root_for(p, &paths.home), APP_TAIL_BYTES).transpose()
    })
}

/// Error-log tails read per run at most: a home of thousands of restarting
/// apps must not cost thousands of reads.
const MAX_ERROR_TAILS: usize = 100;

/// Read in two parts, so the first can overlap the daemon probe.
impl LogSnapshot {
    /// What does not depend on which apps exist: `pm2.log`'s tail and the
    /// sizes in the logs folder. Read while the daemon is still answering.
    pub fn home_logs(paths: &crate::home::Pm2Paths) -> LogSnapshot {
        let home = paths.home.as_path();
        let mut snap = LogSnapshot {
            pm2_log: read_tail(
                &paths.log_file,
                crate::home::root_for(&paths.log_file, home),
                TAIL_BYTES,
            )
            .transpose(),
            ..LogSnapshot::default()
        };
        let mut seen = HashSet::new();
        snap.push_size(&mut seen, paths.log_file.clone());
        let logs_dir_entry = crate::home::inspect(
            &paths.logs_dir,
            crate::home::root_for(&paths.logs_dir, home),
        );
        if let crate::home::Entry::SymlinkOutside { target } = logs_dir_entry {
            snap.logs_dir_outside = Some(target);
        } else if let Ok(rd) = std::fs::read_dir(&paths.logs_dir) {
            for e in rd.flatten().take(MAX_LOG_FILES) {
                snap.push_size(&mut seen, e.path());
            }
        }
        snap
    }

    /// The apps' part: the error-log tails of the apps that crash-loop (the
    /// worst first, at most `MAX_ERROR_TAILS`), and the sizes of app logs
    /// kept outside the logs folder.
    pub fn add_apps(
        &mut self,
        paths: &crate::home::Pm2Paths,
        apps: &[crate::apps::AppView],
        loops: &crate::apps::LoopThresholds,
    ) {
        let rates = restart_rates(self.pm2_log.as_ref().and_then(|r| r.as_ref().ok()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut looping: Vec<&crate::apps::AppView> = apps
            .iter()
            .filter(|a| crate::apps::loop_verdict(a, &rates, now, loops).is_some())
            .collect();
        looping.sort_by_key(|a| std::cmp::Reverse(a.restart_time.unwrap_or(0)));
        for app in looping.into_iter().take(MAX_ERROR_TAILS) {
            if let Some(t) = error_tail(paths, app) {
                self.app_errors.insert(app.label(), t);
            }
        }
        let outside = self.logs_dir_outside.is_some();
        let mut seen: HashSet<PathBuf> = self.sizes.iter().map(|(p, _)| p.clone()).collect();
        for a in apps {
            for p in [&a.err_log, &a.out_log].into_iter().flatten() {
                // Not through a logs folder that links out of the home.
                if !(outside && p.starts_with(&paths.logs_dir)) {
                    self.push_size(&mut seen, p.clone());
                }
            }
        }
    }

    /// Records a log file's size, once per path (and one `stat` per path:
    /// an app's log is usually also listed in `logs/`).
    fn push_size(&mut self, seen: &mut HashSet<PathBuf>, p: PathBuf) {
        if seen.contains(&p) {
            return;
        }
        if let Some(s) = size_of(&p) {
            seen.insert(p.clone());
            self.sizes.push((p, s));
        }
    }
}
