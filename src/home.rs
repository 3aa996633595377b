//! Where a PM2 home lives and what is in it.
//!
//! [`Pm2Paths::resolve`] mirrors PM2 7's `paths.js` exactly (including the
//! undocumented `OVER_HOME` and the per-file `PM2_*` overrides), and
//! [`HomeSnapshot::read`] takes one read-only, bounded look at every file the
//! checks need. Nothing here writes, and no symlink is followed out of the
//! directory that should contain it.

use crate::dump::{self, DumpParse};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The operating-system family whose PM2 rules apply. Passed explicitly so the
/// Windows rules are unit-tested on Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Unix,
    Windows,
}

impl Platform {
    pub fn current() -> Self {
        if cfg!(windows) {
            Platform::Windows
        } else {
            Platform::Unix
        }
    }
}

/// How the daemon's RPC and pub endpoints are reached.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "kebab-case")]
pub enum Endpoint {
    UnixSocket(PathBuf),
    /// Windows named pipes are global to the machine, whatever the home.
    NamedPipe(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::UnixSocket(p) => write!(f, "{}", p.display()),
            Endpoint::NamedPipe(p) => f.write_str(p),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HomeSource {
    Flag,
    OverHome,
    Pm2HomeEnv,
    HomeDir,
    /// `os.homedir()` was empty: PM2 falls back to `/etc/.pm2`.
    EtcFallback,
}

/// Every path PM2 derives from its home. Built once per run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Pm2Paths {
    pub home: PathBuf,
    pub source: HomeSource,
    pub pid_file: PathBuf,
    pub log_file: PathBuf,
    pub pids_dir: PathBuf,
    pub logs_dir: PathBuf,
    pub dump: PathBuf,
    pub dump_backup: PathBuf,
    pub module_conf: PathBuf,
    pub reload_lock: PathBuf,
    pub rpc: Endpoint,
    pub publ: Endpoint,
}

/// The environment as a plain map, so resolution is a pure function.
pub type EnvMap = BTreeMap<String, String>;

pub fn process_env() -> EnvMap {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

impl Pm2Paths {
    /// `--home` > `OVER_HOME` > `PM2_HOME` > `<home dir>/.pm2` > `/etc/.pm2`.
    pub fn resolve(
        flag: Option<&Path>,
        env: &EnvMap,
        home_dir: Option<PathBuf>,
        platform: Platform,
    ) -> Pm2Paths {
        let non_empty = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let (home, source) = if let Some(f) = flag {
            (f.to_path_buf(), HomeSource::Flag)
        } else if let Some(h) = non_empty("OVER_HOME") {
            (h, HomeSource::OverHome)
        } else if let Some(h) = non_empty("PM2_HOME") {
            (h, HomeSource::Pm2HomeEnv)
        } else {
            match home_dir.filter(|d| !d.as_os_str().is_empty()) {
                Some(d) => (d.join(".pm2"), HomeSource::HomeDir),
                None => (PathBuf::from("/etc/.pm2"), HomeSource::EtcFallback),
            }
        };
        let home = std::path::absolute(&home).unwrap_or(home);
        // paths.js: every key may be overridden by `PM2_<KEY>`, or by `<KEY>`
        // when the key already starts with PM2_.
        let file = |key: &str, default: &str| -> PathBuf {
            let var = if key.starts_with("PM2_") {
                key.to_string()
            } else {
                format!("PM2_{key}")
            };
            non_empty(&var).unwrap_or_else(|| home.join(default))
        };
        let (rpc, publ) = match platform {
            // Applied after the env overrides in paths.js, so they cannot be changed.
            Platform::Windows => (
                Endpoint::NamedPipe(r"\\.\pipe\rpc.sock".into()),
                Endpoint::NamedPipe(r"\\.\pipe\pub.sock".into()),
            ),
            Platform::Unix => (
                Endpoint::UnixSocket(file("DAEMON_RPC_PORT", "rpc.sock")),
                Endpoint::UnixSocket(file("DAEMON_PUB_PORT", "pub.sock")),
            ),
        };
        Pm2Paths {
            pid_file: file("PM2_PID_FILE_PATH", "pm2.pid"),
            log_file: file("PM2_LOG_FILE_PATH", "pm2.log"),
            pids_dir: file("DEFAULT_PID_PATH", "pids"),
            logs_dir: file("DEFAULT_LOG_PATH", "logs"),
            dump: file("DUMP_FILE_PATH", "dump.pm2"),
            dump_backup: file("DUMP_BACKUP_FILE_PATH", "dump.pm2.bak"),
            module_conf: file("PM2_MODULE_CONF_FILE", "module_conf.json"),
            reload_lock: file("PM2_RELOAD_LOCKFILE", "reload.lock"),
            rpc,
            publ,
            home,
            source,
        }
    }
}

/// Metadata kept for evidence and for the secrets check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub size: u64,
    pub mtime: Option<SystemTime>,
    /// Unix permission bits; `None` where the platform has none.
    pub mode: Option<u32>,
}

impl FileMeta {
    fn of(m: &fs::Metadata) -> FileMeta {
        #[cfg(unix)]
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            Some(m.permissions().mode() & 0o7777)
        };
        #[cfg(not(unix))]
        let mode = None;
        FileMeta {
            size: m.len(),
            mtime: m.modified().ok(),
            mode,
        }
    }
}

/// What sits at a path, judged without following a symlink out of `root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Missing,
    /// A symlink whose target leaves the directory it should stay in.
    SymlinkOutside {
        target: PathBuf,
    },
    Dir,
    Socket,
    File(FileMeta),
    /// A fifo, device or anything else.
    Other,
    Unreadable(String),
}

/// Looks at `path` (which should live under `root`) without reading it.
pub fn inspect(path: &Path, root: &Path) -> Entry {
    let lmeta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Entry::Missing,
        Err(e) => return Entry::Unreadable(e.to_string()),
    };
    let meta = if lmeta.file_type().is_symlink() {
        match fs::canonicalize(path) {
            Ok(target) => {
                let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
                if !target.starts_with(&root) {
                    return Entry::SymlinkOutside { target };
                }
                match fs::metadata(&target) {
                    Ok(m) => m,
                    Err(e) => return Entry::Unreadable(e.to_string()),
                }
            }
            // A dangling link is as good as missing, but say where it pointed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Entry::Missing,
            Err(e) => return Entry::Unreadable(e.to_string()),
        }
    } else {
        lmeta
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        return Entry::Dir;
    }
    if ft.is_file() {
        return Entry::File(FileMeta::of(&meta));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_socket() {
            return Entry::Socket;
        }
    }
    Entry::Other
}

/// The directory a path is allowed to resolve into: the home when the path is
/// in the home, else the directory an override put it in.
pub fn root_for<'a>(path: &'a Path, home: &'a Path) -> &'a Path {
    if path.starts_with(home) {
        home
    } else {
        path.parent().unwrap_or(home)
    }
}

/// Reads at most `cap` bytes of a regular file. Returns the bytes and whether
/// the file was longer than the cap.
pub fn read_capped(path: &Path, cap: u64) -> io::Result<(Vec<u8>, bool)> {
    let f = fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf)?;
    let truncated = buf.len() as u64 > cap;
    buf.truncate(cap as usize);
    Ok((buf, truncated))
}

/// A small text file (pid files) as read, with its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmallFile {
    Missing,
    SymlinkOutside { target: PathBuf },
    NotAFile { kind: &'static str },
    Unreadable(String),
    Read { text: String, meta: FileMeta },
}

const PID_FILE_CAP: u64 = 64;

fn read_small(path: &Path, root: &Path) -> SmallFile {
    match inspect(path, root) {
        Entry::Missing => SmallFile::Missing,
        Entry::SymlinkOutside { target } => SmallFile::SymlinkOutside { target },
        Entry::Dir => SmallFile::NotAFile { kind: "directory" },
        Entry::Socket => SmallFile::NotAFile { kind: "socket" },
        Entry::Other => SmallFile::NotAFile {
            kind: "special file",
        },
        Entry::Unreadable(e) => SmallFile::Unreadable(e),
        Entry::File(meta) => match read_capped(path, PID_FILE_CAP) {
            Ok((bytes, _)) => SmallFile::Read {
                text: String::from_utf8_lossy(&bytes).into_owned(),
                meta,
            },
            Err(e) => SmallFile::Unreadable(e.to_string()),
        },
    }
}

/// Why a pid file's content is not a usable pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PidParse {
    Pid(u32),
    Empty,
    NotANumber(String),
    OutOfRange(String),
}

impl PidParse {
    /// Why the content is not a usable pid, as "is empty" / "holds ..."; `None`
    /// for a valid pid.
    pub fn invalid_reason(&self) -> Option<String> {
        match self {
            PidParse::Pid(_) => None,
            PidParse::Empty => Some("is empty".into()),
            PidParse::NotANumber(t) => Some(format!("holds '{t}', not a process id")),
            PidParse::OutOfRange(t) => Some(format!("holds {t}, out of the valid pid range")),
        }
    }
}

/// PM2 writes a bare decimal with no newline; people and tools add one.
/// Anything else is reported, never guessed at. 0 and 1 are refused: 0 means
/// "the caller's process group" to kill(2) and 1 is init.
pub fn parse_pid(text: &str) -> PidParse {
    let t = text.trim();
    if t.is_empty() {
        return PidParse::Empty;
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return PidParse::NotANumber(t.chars().take(32).collect());
    }
    match t.parse::<u64>() {
        Ok(n) if (2..=u64::from(i32::MAX as u32)).contains(&n) => PidParse::Pid(n as u32),
        _ => PidParse::OutOfRange(t.chars().take(32).collect()),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidFile {
    pub path: PathBuf,
    /// `<name>-<pm_id>` from the file name.
    pub app: String,
    pub pm_id: Option<u32>,
    pub content: SmallFile,
}

/// `pids/web-0.pid` → (`web`, Some(0)).
pub fn split_pid_file_name(file_name: &str) -> Option<(String, Option<u32>)> {
    let stem = file_name.strip_suffix(".pid")?;
    match stem.rsplit_once('-') {
        Some((name, id)) if !name.is_empty() => match id.parse::<u32>() {
            Ok(n) => Some((name.to_string(), Some(n))),
            Err(_) => Some((stem.to_string(), None)),
        },
        _ => Some((stem.to_string(), None)),
    }
}

/// The state of the pids directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PidsDir {
    Missing,
    SymlinkOutside { target: PathBuf },
    NotADir,
    Unreadable(String),
    Listed(Vec<PidFile>),
}

/// Everything the checks need from the home's files, read once.
#[derive(Clone, Debug)]
pub struct HomeSnapshot {
    pub paths: Pm2Paths,
    pub exists: bool,
    /// The home is not a directory (file, broken link...).
    pub not_a_dir: bool,
    pub daemon_pid: SmallFile,
    pub pids: PidsDir,
    pub rpc: Entry,
    pub publ: Entry,
    pub dump_entry: Entry,
    pub dump: DumpParse,
    pub dump_backup_entry: Entry,
    pub dump_backup: DumpParse,
}

/// Most pid files a home can list before we stop reading (hostile homes).
const MAX_PID_FILES: usize = 100_000;

impl HomeSnapshot {
    /// Whether anything is at the home path (a file there is reported too).
    pub fn home_exists(home: &Path) -> bool {
        fs::metadata(home).is_ok()
    }

    pub fn read(paths: &Pm2Paths) -> HomeSnapshot {
        let home = paths.home.as_path();
        let (exists, not_a_dir) = match fs::metadata(home) {
            Ok(m) => (true, !m.is_dir()),
            Err(_) => (false, false),
        };
        let endpoint_entry = |e: &Endpoint| match e {
            Endpoint::UnixSocket(p) => inspect(p, root_for(p, home)),
            Endpoint::NamedPipe(_) => Entry::Missing,
        };
        let dump_entry = inspect(&paths.dump, root_for(&paths.dump, home));
        let dump_backup_entry = inspect(&paths.dump_backup, root_for(&paths.dump_backup, home));
        let dump = dump::parse_entry_file(&paths.dump, &dump_entry);
        let dump_backup = dump::parse_entry_file(&paths.dump_backup, &dump_backup_entry);
        HomeSnapshot {
            exists,
            not_a_dir,
            daemon_pid: read_small(&paths.pid_file, root_for(&paths.pid_file, home)),
            pids: read_pids_dir(&paths.pids_dir, home),
            rpc: endpoint_entry(&paths.rpc),
            publ: endpoint_entry(&paths.publ),
            dump_entry,
            dump,
            dump_backup_entry,
            dump_backup,
            paths: paths.clone(),
        }
    }
}

fn read_pids_dir(dir: &Path, home: &Path) -> PidsDir {
    match inspect(dir, root_for(dir, home)) {
        Entry::Missing => return PidsDir::Missing,
        Entry::SymlinkOutside { target } => return PidsDir::SymlinkOutside { target },
        Entry::Dir => {}
        Entry::Unreadable(e) => return PidsDir::Unreadable(e),
        _ => return PidsDir::NotADir,
    }
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => return PidsDir::Unreadable(format!("{}: {e}", dir.display())),
    };
    let mut files = Vec::new();
    for ent in rd.flatten().take(MAX_PID_FILES) {
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some((app, pm_id)) = split_pid_file_name(&name) else {
            continue;
        };
        let path = ent.path();
        let content = read_small(&path, dir);
        files.push(PidFile {
            path,
            app,
            pm_id,
            content,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    PidsDir::Listed(files)
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

    /// The home as `resolve` makes it absolute: itself on Unix, on the
    /// current drive on Windows (where these tests also run, under Wine).
    fn abs(p: &str) -> PathBuf {
        std::path::absolute(p).unwrap()
    }

    #[test]
    fn resolution_order_matches_paths_js() {
        let e = env(&[("OVER_HOME", "/x/over"), ("PM2_HOME", "/x/pm2env")]);
        let hd = Some(PathBuf::from("/home/u"));
        let p = Pm2Paths::resolve(Some(Path::new("/flag")), &e, hd.clone(), Platform::Unix);
        assert_eq!((p.home, p.source), (abs("/flag"), HomeSource::Flag));
        let p = Pm2Paths::resolve(None, &e, hd.clone(), Platform::Unix);
        assert_eq!(p.home, abs("/x/over"));
        let p = Pm2Paths::resolve(
            None,
            &env(&[("PM2_HOME", "/x/pm2env")]),
            hd.clone(),
            Platform::Unix,
        );
        assert_eq!(
            (p.home, p.source),
            (abs("/x/pm2env"), HomeSource::Pm2HomeEnv)
        );
        // An empty PM2_HOME is ignored, like PM2 does.
        let p = Pm2Paths::resolve(None, &env(&[("PM2_HOME", "")]), hd, Platform::Unix);
        assert_eq!(p.home, abs("/home/u/.pm2"));
        let p = Pm2Paths::resolve(None, &EnvMap::new(), Some(PathBuf::new()), Platform::Unix);
        assert_eq!(
            (p.home, p.source),
            (abs("/etc/.pm2"), HomeSource::EtcFallback)
        );
    }

    #[test]
    fn per_file_overrides() {
        let e = env(&[
            ("PM2_HOME", "/h"),
            ("PM2_DAEMON_RPC_PORT", "/x/custom-rpc.sock"),
            ("PM2_DUMP_FILE_PATH", "/x/custom.dump"),
            ("PM2_PID_FILE_PATH", "/run/pm2.pid"),
            ("PM2_DEFAULT_PID_PATH", "/x/pids"),
        ]);
        let p = Pm2Paths::resolve(None, &e, None, Platform::Unix);
        assert_eq!(p.rpc, Endpoint::UnixSocket("/x/custom-rpc.sock".into()));
        assert_eq!(p.publ, Endpoint::UnixSocket(abs("/h").join("pub.sock")));
        assert_eq!(p.dump, PathBuf::from("/x/custom.dump"));
        assert_eq!(p.dump_backup, abs("/h").join("dump.pm2.bak"));
        assert_eq!(p.pid_file, PathBuf::from("/run/pm2.pid"));
        assert_eq!(p.pids_dir, PathBuf::from("/x/pids"));
    }

    #[test]
    fn windows_pipes_are_global_and_not_overridable() {
        let e = env(&[("PM2_HOME", "/h"), ("PM2_DAEMON_RPC_PORT", "/x/rpc")]);
        let p = Pm2Paths::resolve(None, &e, None, Platform::Windows);
        assert_eq!(p.rpc, Endpoint::NamedPipe(r"\\.\pipe\rpc.sock".into()));
        assert_eq!(p.publ, Endpoint::NamedPipe(r"\\.\pipe\pub.sock".into()));
        assert_eq!(p.pid_file, abs("/h").join("pm2.pid"));
    }

    #[test]
    fn pid_parsing_refuses_what_it_cannot_trust() {
        assert_eq!(parse_pid("7147"), PidParse::Pid(7147));
        assert_eq!(parse_pid("7147\n"), PidParse::Pid(7147));
        assert_eq!(parse_pid(""), PidParse::Empty);
        assert_eq!(parse_pid(" \n"), PidParse::Empty);
        assert!(matches!(parse_pid("-1"), PidParse::NotANumber(_)));
        assert!(matches!(parse_pid("0"), PidParse::OutOfRange(_)));
        assert!(matches!(parse_pid("1"), PidParse::OutOfRange(_)));
        assert!(matches!(parse_pid("99999999999"), PidParse::OutOfRange(_)));
        assert!(matches!(
            parse_pid("99999999999999999999999"),
            PidParse::OutOfRange(_)
        ));
        assert!(matches!(parse_pid("12 34"), PidParse::NotANumber(_)));
        assert!(matches!(parse_pid("abc"), PidParse::NotANumber(_)));
    }

    #[test]
    fn pid_file_names() {
        assert_eq!(
            split_pid_file_name("web-0.pid"),
            Some(("web".into(), Some(0)))
        );
        assert_eq!(
            split_pid_file_name("chinvex-gateway-12.pid"),
            Some(("chinvex-gateway".into(), Some(12)))
        );
        assert_eq!(split_pid_file_name("odd.pid"), Some(("odd".into(), None)));
        assert_eq!(split_pid_file_name("notes.txt"), None);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_out_of_root_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        fs::write(&secret, "1234").unwrap();
        let link = home.path().join("pm2.pid");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert!(matches!(
            inspect(&link, home.path()),
            Entry::SymlinkOutside { .. }
        ));
        assert!(matches!(
            read_small(&link, home.path()),
            SmallFile::SymlinkOutside { .. }
        ));
        // A link that stays inside is followed.
        let inner = home.path().join("real.pid");
        fs::write(&inner, "42").unwrap();
        let link2 = home.path().join("link.pid");
        std::os::unix::fs::symlink(&inner, &link2).unwrap();
        assert!(matches!(
            read_small(&link2, home.path()),
            SmallFile::Read { .. }
        ));
    }
}
