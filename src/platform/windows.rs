//! PM2 on Windows: where its home is, how its named pipes answer, and how a
//! process is terminated without `taskkill`.
//!
//! The rules are pure functions over strings and numbers, compiled on every
//! host and unit-tested on Linux with Windows inputs (paths with drive
//! letters and backslashes, Win32 error codes, FILETIMEs). The native calls
//! (`open_pipe`, `terminate`) exist only under `cfg(windows)`; they are
//! exercised by `tests/windows.rs` under Wine (`scripts/windows-test.sh`).

use crate::home::{EnvMap, HomeSource};
use std::path::{Path, PathBuf};

/// PM2 hard-codes its daemon endpoints on Windows (paths.js), whatever the
/// home: two PM2 homes on one machine fight over the same pipes, and a pipe
/// may belong to another user's daemon.
pub const RPC_PIPE: &str = r"\\.\pipe\rpc.sock";
pub const PUB_PIPE: &str = r"\\.\pipe\pub.sock";
pub const INTERACTOR_PIPE: &str = r"\\.\pipe\interactor.sock";

/// The Win32 error codes these rules look at.
pub mod code {
    pub const FILE_NOT_FOUND: i32 = 2;
    pub const PATH_NOT_FOUND: i32 = 3;
    pub const ACCESS_DENIED: i32 = 5;
    pub const INVALID_PARAMETER: i32 = 87;
    pub const BROKEN_PIPE: i32 = 109;
    /// What `WaitNamedPipe` says when no instance freed up in time.
    pub const SEM_TIMEOUT: i32 = 121;
    pub const PIPE_BUSY: i32 = 231;
    pub const NO_DATA: i32 = 232;
    pub const PIPE_NOT_CONNECTED: i32 = 233;
    /// `GetExitCodeProcess` of a process that has not exited.
    pub const STILL_ACTIVE: u32 = 259;
}

/// True for a named-pipe path (`\\.\pipe\NAME`, `\\?\pipe\NAME`, or with
/// forward slashes), case-insensitively, as Windows and Node accept them.
pub fn is_pipe_path(s: &str) -> bool {
    let s = s.replace('/', "\\").to_ascii_lowercase();
    [r"\\.\pipe\", r"\\?\pipe\"]
        .iter()
        .any(|p| s.len() > p.len() && s.starts_with(p))
}

/// What opening the client end of a named pipe answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeOpen {
    /// Error 2 (or 3): no server has created the pipe. No daemon.
    Missing,
    /// Error 231: every instance is connected to someone else and the
    /// server is not creating new ones: a daemon that does not accept.
    Busy,
    /// Error 121: `WaitNamedPipe` ran out of time waiting for an instance.
    WaitTimedOut,
    /// Error 5: the pipe exists but its ACL keeps us out (typically another
    /// user's daemon: pipe names are global to the machine).
    AccessDenied,
    /// Errors 109/232/233: the server is closing the pipe.
    Closing,
    Other,
}

/// Classifies the raw OS error of a pipe open (`io::Error::raw_os_error`).
pub fn classify_pipe_error(raw: Option<i32>) -> PipeOpen {
    match raw {
        Some(code::FILE_NOT_FOUND | code::PATH_NOT_FOUND) => PipeOpen::Missing,
        Some(code::PIPE_BUSY) => PipeOpen::Busy,
        Some(code::SEM_TIMEOUT) => PipeOpen::WaitTimedOut,
        Some(code::ACCESS_DENIED) => PipeOpen::AccessDenied,
        Some(code::BROKEN_PIPE | code::NO_DATA | code::PIPE_NOT_CONNECTED) => PipeOpen::Closing,
        _ => PipeOpen::Other,
    }
}

// ---------------------------------------------------------------- homes

/// Joins like Node's `path.win32.resolve(base, child)` for an absolute
/// `base`: forward slashes become backslashes and a trailing separator is
/// not doubled (`C:\` + `.pm2` is `C:\.pm2`).
pub fn join(base: &str, child: &str) -> String {
    let base = base.replace('/', "\\");
    let trimmed = base.trim_end_matches('\\');
    // Keep the root of a bare drive ("C:\") or of the current drive ("\").
    let trimmed = if trimmed.is_empty() || trimmed.ends_with(':') {
        &base[..trimmed.len() + usize::from(base.len() > trimmed.len())]
    } else {
        trimmed
    };
    if trimmed.ends_with('\\') {
        format!("{trimmed}{child}")
    } else {
        format!("{trimmed}\\{child}")
    }
}

/// Windows path equality: case-insensitive, either slash, trailing
/// separators ignored.
pub fn same_path(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.replace('/', "\\");
        s.trim_end_matches('\\').to_lowercase()
    };
    norm(a) == norm(b)
}

/// An environment variable by name, case-insensitively as Windows (and
/// Node's `process.env` there) looks them up; an exact match wins.
pub fn var<'a>(env: &'a EnvMap, key: &str) -> Option<&'a String> {
    env.get(key).or_else(|| {
        env.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// What Node's `os.homedir()` reads first on Windows: `%USERPROFILE%`, even
/// when empty (then PM2 falls back to `\etc\.pm2`). `None` when unset: Node
/// then asks the OS for the profile directory of the process's user.
pub fn node_homedir(env: &EnvMap) -> Option<PathBuf> {
    var(env, "USERPROFILE").map(PathBuf::from)
}

/// The machine-wide home pm2-installer creates and points the machine-level
/// `PM2_HOME` at: `%ProgramData%\pm2\home`, run by its Windows service (as
/// Local Service).
pub fn pm2_installer_home(env: &EnvMap) -> String {
    let program_data = ["ProgramData", "ALLUSERSPROFILE"]
        .iter()
        .filter_map(|k| var(env, k))
        .find(|v| !v.is_empty())
        .map_or(r"C:\ProgramData", String::as_str);
    join(&join(program_data, "pm2"), "home")
}

/// Another PM2 home on this machine, worth reporting next to the one
/// diagnosed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OtherHome {
    /// pm2-installer's machine-wide home, `%ProgramData%\pm2\home`.
    Pm2InstallerService { path: PathBuf },
    /// The user's default home, `%USERPROFILE%\.pm2`.
    UserProfile { path: PathBuf },
}

impl OtherHome {
    pub fn path(&self) -> &Path {
        match self {
            OtherHome::Pm2InstallerService { path } | OtherHome::UserProfile { path } => path,
        }
    }

    /// One line for a report.
    pub fn describe(&self) -> String {
        match self {
            OtherHome::Pm2InstallerService { path } => format!(
                "{} also exists: pm2-installer's machine-wide home (its Windows service runs a daemon there; a shell without the machine-level PM2_HOME uses another home, but the same pipes)",
                path.display()
            ),
            OtherHome::UserProfile { path } => format!(
                "{} also exists: the user's default home, used by any pm2 run without PM2_HOME",
                path.display()
            ),
        }
    }
}

/// The home PM2 would use on Windows, and the other homes found beside it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WindowsHomes {
    /// As PM2 reads it, before `path.resolve` makes a relative value
    /// absolute against the working directory.
    pub home: PathBuf,
    pub source: HomeSource,
    /// Existing homes other than `home`; PM2 on Windows uses the same pipe
    /// names for all of them.
    pub others: Vec<OtherHome>,
}

/// `os.homedir()\.pm2`: the home of any pm2 run without `PM2_HOME`.
fn user_home(env: &EnvMap, profile_dir: Option<&Path>) -> Option<String> {
    node_homedir(env)
        .or_else(|| profile_dir.map(Path::to_path_buf))
        .map(|d| d.to_string_lossy().into_owned())
        .filter(|d| !d.is_empty())
        .map(|d| join(&d, ".pm2"))
}

/// Resolves the home as PM2 7 does on Windows (`--home` > `OVER_HOME` >
/// `PM2_HOME` > `os.homedir()\.pm2` > `\etc\.pm2`), with Windows path rules
/// whatever the host, and lists the [`other_homes`] that `exists` says are
/// on disk. `profile_dir` is the OS's answer for the user's profile, used
/// (like Node) only when `USERPROFILE` is unset.
pub fn resolve_home(
    flag: Option<&Path>,
    env: &EnvMap,
    profile_dir: Option<&Path>,
    exists: &dyn Fn(&Path) -> bool,
) -> WindowsHomes {
    let non_empty = |k: &str| var(env, k).filter(|v| !v.is_empty()).cloned();
    let (home, source) = if let Some(f) = flag {
        (f.to_string_lossy().into_owned(), HomeSource::Flag)
    } else if let Some(h) = non_empty("OVER_HOME") {
        (h, HomeSource::OverHome)
    } else if let Some(h) = non_empty("PM2_HOME") {
        (h, HomeSource::Pm2HomeEnv)
    } else if let Some(h) = user_home(env, profile_dir) {
        (h, HomeSource::HomeDir)
    } else {
        (r"\etc\.pm2".to_string(), HomeSource::EtcFallback)
    };
    let home = PathBuf::from(home);
    WindowsHomes {
        others: other_homes(&home, env, profile_dir, exists),
        home,
        source,
    }
}

/// The PM2 homes on this machine other than `chosen` that `exists` says are
/// on disk: pm2-installer's `%ProgramData%\pm2\home` and the user's
/// `%USERPROFILE%\.pm2`. Both run their daemons on the same global pipes.
pub fn other_homes(
    chosen: &Path,
    env: &EnvMap,
    profile_dir: Option<&Path>,
    exists: &dyn Fn(&Path) -> bool,
) -> Vec<OtherHome> {
    let chosen = chosen.to_string_lossy();
    let candidates = [
        Some(OtherHome::Pm2InstallerService {
            path: PathBuf::from(pm2_installer_home(env)),
        }),
        user_home(env, profile_dir).map(|h| OtherHome::UserProfile {
            path: PathBuf::from(h),
        }),
    ];
    let mut others: Vec<OtherHome> = Vec::new();
    for c in candidates.into_iter().flatten() {
        let p = c.path().to_string_lossy().into_owned();
        let seen = same_path(&p, &chosen)
            || others
                .iter()
                .any(|o| same_path(&o.path().to_string_lossy(), &p));
        if !seen && exists(c.path()) {
            others.push(c);
        }
    }
    others
}

// ------------------------------------------------------------ processes

/// Seconds since the Unix epoch of a FILETIME (100 ns ticks since 1601),
/// rounded down exactly as sysinfo computes a process's start time, so the
/// two compare equal for the same process.
pub fn filetime_to_unix_secs(ticks: u64) -> u64 {
    (ticks / 10_000_000).saturating_sub(11_644_473_600)
}

/// Why a process was not terminated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TerminateError {
    #[error("access denied terminating process {pid} (Windows error 5): it runs as another user or is protected; run pm2-doctor as that user or from an elevated prompt")]
    AccessDenied { pid: u32 },
    #[error("pid {pid} now belongs to another process (started {found} instead of {expected}): not terminated")]
    Reused { pid: u32, expected: u64, found: u64 },
    #[error("the start time of process {pid} could not be read, so it cannot be told from a process that reused its pid: not terminated")]
    IdentityUnknown { pid: u32 },
    #[error("terminating process {pid} failed: Windows error {code}")]
    Os { pid: u32, code: u32 },
}

/// What a failed `OpenProcess`/`TerminateProcess` means. `Ok(())` when the
/// process is already gone (error 87 from `OpenProcess`, or error 5 from
/// `TerminateProcess` on a process that has exited, which is how Windows
/// answers that): the goal is met and the caller's next look says so.
pub fn classify_terminate_error(pid: u32, code: u32, exited: bool) -> Result<(), TerminateError> {
    match code {
        _ if exited => Ok(()),
        c if c == code::INVALID_PARAMETER as u32 => Ok(()),
        c if c == code::ACCESS_DENIED as u32 => Err(TerminateError::AccessDenied { pid }),
        c => Err(TerminateError::Os { pid, code: c }),
    }
}

#[cfg(windows)]
pub use native::{open_pipe, terminate};

#[cfg(windows)]
mod native {
    use super::{classify_pipe_error, classify_terminate_error, filetime_to_unix_secs};
    use super::{code, PipeOpen, TerminateError};
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::time::{Duration, Instant};
    use winsafe::{co, HPROCESS};

    /// How long past the caller's deadline a busy-pipe wait may go on. The
    /// caller stops waiting at its deadline and reports a timeout; this
    /// margin makes sure it is the caller's clock that decides.
    const PAST_DEADLINE: Duration = Duration::from_millis(500);

    /// Opens the client end of a named pipe as Node's `net.connect` does: a
    /// busy pipe (error 231) is waited for with `WaitNamedPipe` and retried,
    /// but never connected to once `deadline` (from now) has passed. A
    /// missing pipe fails with error 2, a foreign one with error 5.
    pub fn open_pipe(name: &str, deadline: Duration) -> io::Result<File> {
        let started = Instant::now();
        loop {
            let err = match OpenOptions::new().read(true).write(true).open(name) {
                Ok(f) => return Ok(f),
                Err(e) => e,
            };
            if classify_pipe_error(err.raw_os_error()) != PipeOpen::Busy {
                return Err(err);
            }
            let left = deadline.saturating_sub(started.elapsed());
            match miow::pipe::NamedPipe::wait(name, Some(left + PAST_DEADLINE)) {
                Ok(()) if started.elapsed() < deadline => {}
                Ok(()) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{name} stayed busy past the deadline"),
                    ))
                }
                // 121 once the wait ran out, or 2 if the server went away.
                Err(e) => return Err(e),
            }
        }
    }

    /// `TerminateProcess(pid, 1)` (exit code 1, as Node's `process.kill`
    /// and `taskkill /F` leave), after checking through the same handle that
    /// the process is still the one that started at `expected_start`: no
    /// window for the pid to be reused between the check and the kill.
    pub fn terminate(pid: u32, expected_start: u64) -> Result<(), TerminateError> {
        if expected_start == 0 {
            return Err(TerminateError::IdentityUnknown { pid });
        }
        let access = co::PROCESS::TERMINATE | co::PROCESS::QUERY_LIMITED_INFORMATION;
        let h = match HPROCESS::OpenProcess(access, false, pid) {
            Ok(h) => h,
            Err(e) => return classify_terminate_error(pid, e.raw(), false),
        };
        let found = match h.GetProcessTimes() {
            Ok((created, ..)) => filetime_to_unix_secs(
                (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime),
            ),
            Err(e) => return classify_terminate_error(pid, e.raw(), false),
        };
        if found != expected_start {
            return Err(TerminateError::Reused {
                pid,
                expected: expected_start,
                found,
            });
        }
        match h.TerminateProcess(1) {
            Ok(()) => Ok(()),
            Err(e) => {
                let exited = h
                    .GetExitCodeProcess()
                    .is_ok_and(|c| c != code::STILL_ACTIVE);
                classify_terminate_error(pid, e.raw(), exited)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn nothing_exists(_: &Path) -> bool {
        false
    }

    #[test]
    fn pipe_names_and_paths() {
        for p in [RPC_PIPE, PUB_PIPE, INTERACTOR_PIPE] {
            assert!(is_pipe_path(p), "{p}");
        }
        assert!(is_pipe_path("//./pipe/rpc.sock"));
        assert!(is_pipe_path(r"\\?\PIPE\rpc.sock"));
        assert!(!is_pipe_path(r"\\.\pipe\"));
        assert!(!is_pipe_path(r"C:\Users\u\.pm2\rpc.sock"));
        assert!(!is_pipe_path("/home/u/.pm2/rpc.sock"));
    }

    #[test]
    fn pipe_errors_as_windows_reports_them() {
        assert_eq!(classify_pipe_error(Some(2)), PipeOpen::Missing);
        assert_eq!(classify_pipe_error(Some(3)), PipeOpen::Missing);
        assert_eq!(classify_pipe_error(Some(231)), PipeOpen::Busy);
        assert_eq!(classify_pipe_error(Some(121)), PipeOpen::WaitTimedOut);
        assert_eq!(classify_pipe_error(Some(5)), PipeOpen::AccessDenied);
        assert_eq!(classify_pipe_error(Some(232)), PipeOpen::Closing);
        assert_eq!(classify_pipe_error(Some(109)), PipeOpen::Closing);
        assert_eq!(classify_pipe_error(Some(1450)), PipeOpen::Other);
        assert_eq!(classify_pipe_error(None), PipeOpen::Other);
    }

    #[test]
    fn joins_like_path_win32_resolve() {
        assert_eq!(join(r"C:\Users\ann", ".pm2"), r"C:\Users\ann\.pm2");
        assert_eq!(join(r"C:\Users\ann\", ".pm2"), r"C:\Users\ann\.pm2");
        assert_eq!(join("C:/Users/ann/", ".pm2"), r"C:\Users\ann\.pm2");
        assert_eq!(join(r"C:\", ".pm2"), r"C:\.pm2");
        assert_eq!(join(r"\", ".pm2"), r"\.pm2");
        assert_eq!(join(r"\\srv\share\u", ".pm2"), r"\\srv\share\u\.pm2");
    }

    #[test]
    fn windows_paths_compare_case_and_slash_insensitively() {
        assert!(same_path(
            r"C:\ProgramData\pm2\home",
            "c:/programdata/PM2/home/"
        ));
        assert!(!same_path(
            r"C:\ProgramData\pm2\home",
            r"C:\ProgramData\pm2"
        ));
    }

    #[test]
    fn home_from_userprofile() {
        let e = env(&[("USERPROFILE", r"C:\Users\ann"), ("HOME", "/ignored")]);
        let h = resolve_home(None, &e, None, &nothing_exists);
        assert_eq!(h.home, PathBuf::from(r"C:\Users\ann\.pm2"));
        assert_eq!(h.source, HomeSource::HomeDir);
        assert!(h.others.is_empty());
        // USERPROFILE unset: the OS's profile directory, like Node.
        let h = resolve_home(
            None,
            &EnvMap::new(),
            Some(Path::new(r"D:\prof\bob")),
            &nothing_exists,
        );
        assert_eq!(h.home, PathBuf::from(r"D:\prof\bob\.pm2"));
        // Empty USERPROFILE: os.homedir() is "", PM2 falls back to /etc/.pm2.
        let h = resolve_home(
            None,
            &env(&[("USERPROFILE", "")]),
            Some(Path::new(r"D:\x")),
            &nothing_exists,
        );
        assert_eq!(
            (h.home, h.source),
            (PathBuf::from(r"\etc\.pm2"), HomeSource::EtcFallback)
        );
    }

    #[test]
    fn precedence_matches_paths_js() {
        let e = env(&[
            ("USERPROFILE", r"C:\Users\ann"),
            ("PM2_HOME", r"C:\ProgramData\pm2\home"),
            ("OVER_HOME", r"E:\over"),
        ]);
        let h = resolve_home(Some(Path::new(r"F:\flag")), &e, None, &nothing_exists);
        assert_eq!(
            (h.home, h.source),
            (PathBuf::from(r"F:\flag"), HomeSource::Flag)
        );
        let h = resolve_home(None, &e, None, &nothing_exists);
        assert_eq!(
            (h.home, h.source),
            (PathBuf::from(r"E:\over"), HomeSource::OverHome)
        );
        let mut e2 = e.clone();
        e2.insert("OVER_HOME".into(), String::new());
        let h = resolve_home(None, &e2, None, &nothing_exists);
        assert_eq!(
            (h.home, h.source),
            (
                PathBuf::from(r"C:\ProgramData\pm2\home"),
                HomeSource::Pm2HomeEnv
            )
        );
    }

    #[test]
    fn pm2_installer_home_is_reported_when_both_exist() {
        let e = env(&[
            ("USERPROFILE", r"C:\Users\ann"),
            ("ProgramData", r"C:\ProgramData"),
        ]);
        let both = |p: &Path| {
            let p = p.to_string_lossy();
            p == r"C:\ProgramData\pm2\home" || p == r"C:\Users\ann\.pm2"
        };
        let h = resolve_home(None, &e, None, &both);
        assert_eq!(h.home, PathBuf::from(r"C:\Users\ann\.pm2"));
        assert_eq!(
            h.others,
            vec![OtherHome::Pm2InstallerService {
                path: PathBuf::from(r"C:\ProgramData\pm2\home")
            }]
        );
        assert!(h.others[0].describe().contains("pm2-installer"));
        // The service's own view (machine-level PM2_HOME, any case or
        // slash): the user's home is the other one.
        let mut svc = e.clone();
        svc.insert("PM2_HOME".into(), "c:/programdata/PM2/home".into());
        let h = resolve_home(None, &svc, None, &both);
        assert_eq!(h.source, HomeSource::Pm2HomeEnv);
        assert_eq!(
            h.others,
            vec![OtherHome::UserProfile {
                path: PathBuf::from(r"C:\Users\ann\.pm2")
            }]
        );
        // Only homes that exist are reported.
        let h = resolve_home(None, &e, None, &nothing_exists);
        assert!(h.others.is_empty());
    }

    #[test]
    fn variables_are_case_insensitive_on_windows() {
        let e = env(&[("UserProfile", r"C:\Users\ann"), ("pm2_home", r"D:\h")]);
        assert_eq!(
            var(&e, "USERPROFILE").map(String::as_str),
            Some(r"C:\Users\ann")
        );
        let h = resolve_home(None, &e, None, &nothing_exists);
        assert_eq!(
            (h.home, h.source),
            (PathBuf::from(r"D:\h"), HomeSource::Pm2HomeEnv)
        );
        let exact = env(&[("PATH", "a"), ("Path", "b")]);
        assert_eq!(var(&exact, "Path").map(String::as_str), Some("b"));
    }

    #[test]
    fn program_data_location() {
        assert_eq!(
            pm2_installer_home(&EnvMap::new()),
            r"C:\ProgramData\pm2\home"
        );
        assert_eq!(
            pm2_installer_home(&env(&[("ALLUSERSPROFILE", r"D:\PD")])),
            r"D:\PD\pm2\home"
        );
        assert_eq!(
            pm2_installer_home(&env(&[
                ("ProgramData", r"E:\Data\"),
                ("ALLUSERSPROFILE", r"D:\PD")
            ])),
            r"E:\Data\pm2\home"
        );
    }

    #[test]
    fn filetimes_convert_like_sysinfo() {
        // 2024-01-01T00:00:00Z = 1_704_067_200 s; FILETIME counts 100 ns
        // ticks from 1601-01-01.
        let ticks = (1_704_067_200 + 11_644_473_600) * 10_000_000 + 9_999_999;
        assert_eq!(filetime_to_unix_secs(ticks), 1_704_067_200);
        assert_eq!(filetime_to_unix_secs(0), 0);
    }

    #[test]
    fn terminate_errors_say_what_happened() {
        assert_eq!(
            classify_terminate_error(42, 5, false),
            Err(TerminateError::AccessDenied { pid: 42 })
        );
        assert!(TerminateError::AccessDenied { pid: 42 }
            .to_string()
            .contains("access denied"));
        // TerminateProcess on a process that already exited says "access
        // denied" too: that one is gone, not refused.
        assert_eq!(classify_terminate_error(42, 5, true), Ok(()));
        assert_eq!(classify_terminate_error(42, 87, false), Ok(()));
        assert_eq!(
            classify_terminate_error(42, 1450, false),
            Err(TerminateError::Os {
                pid: 42,
                code: 1450
            })
        );
        let reused = TerminateError::Reused {
            pid: 42,
            expected: 1,
            found: 2,
        };
        assert!(reused.to_string().contains("not terminated"));
    }
}
