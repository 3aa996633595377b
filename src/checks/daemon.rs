//! The daemon, its pid file and its sockets.

use super::{iso, Context, Sink};
use crate::findings::{CheckId, Finding, Fix, Safety};
use crate::home::{parse_pid, Endpoint, Entry, PidParse, SmallFile};
use crate::ownership::daemon_home;
use crate::probe::ProbeOutcome;
use crate::process::ProcInfo;
use std::path::Path;

/// Adds a process's identity to a finding's evidence.
pub(super) fn with_process(f: Finding, p: &ProcInfo) -> Finding {
    f.with("pid", p.pid)
        .with("start_time", iso(p.start_time))
        .with("cmdline", p.cmdline())
        .with_opt("uid", p.uid)
}

pub(super) fn symlink_finding(path: &Path, target: &Path) -> Finding {
    Finding::new(
        CheckId::HomeSymlinkOutside,
        format!(
            "{} is a symlink to {}, outside the home; pm2-doctor does not follow it",
            path.display(),
            target.display()
        ),
        Fix::new(
            "replace-symlink",
            Safety::Manual,
            "replace the link with a real file, or point the matching PM2_* variable at the real path",
        ),
    )
    .with("path", path.display().to_string())
    .with("target", target.display().to_string())
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    pid_file(ctx, sink);
    duplicates(ctx, sink);
    responsiveness(ctx, sink);
    version(ctx, sink);
    sockets(ctx, sink);
}

fn quarantine_pid_file(path: &Path) -> Fix {
    Fix::new(
        "quarantine-pid-file",
        Safety::Safe,
        format!(
            "move {} into the backup (PM2 never reads it; it only misleads init systems and people)",
            path.display()
        ),
    )
}

fn pid_file(ctx: &Context, sink: &mut Sink) {
    let path = &ctx.home.paths.pid_file;
    let (text, meta) = match &ctx.home.daemon_pid {
        SmallFile::Missing => return,
        SmallFile::SymlinkOutside { target } => {
            sink.push(symlink_finding(path, target));
            for id in [CheckId::DaemonPidStale, CheckId::DaemonPidForeign] {
                sink.unknown(
                    id,
                    "pm2.pid is a symlink out of the home and was not followed",
                );
            }
            return;
        }
        SmallFile::Unreadable(e) => {
            for id in [CheckId::DaemonPidStale, CheckId::DaemonPidForeign] {
                sink.unknown(id, format!("cannot read {}: {e}", path.display()));
            }
            return;
        }
        SmallFile::NotAFile { kind } => {
            sink.push(
                Finding::new(
                    CheckId::DaemonPidStale,
                    format!("{} is a {kind}, not a pid file", path.display()),
                    quarantine_pid_file(path),
                )
                .with("path", path.display().to_string()),
            );
            return;
        }
        SmallFile::Read { text, meta } => (text, meta),
    };
    let pid = match parse_pid(text) {
        PidParse::Pid(p) => p,
        bad => {
            let what = bad.invalid_reason().unwrap_or_default();
            sink.push(
                Finding::new(
                    CheckId::DaemonPidStale,
                    format!("pm2.pid {what}"),
                    quarantine_pid_file(path),
                )
                .with("path", path.display().to_string()),
            );
            return;
        }
    };
    let base = |id, summary: String| {
        Finding::new(id, summary, quarantine_pid_file(path))
            .with("path", path.display().to_string())
            .with("pid", pid)
            .with_opt("file_mtime", meta.mtime.map(|t| iso(super::unix_secs(t))))
    };
    match ctx.procs.get(pid) {
        None => sink.push(base(
            CheckId::DaemonPidStale,
            format!("pm2.pid names process {pid}, which is not running: the daemon died without cleaning up"),
        )),
        Some(p) if !p.is_alive() => sink.push(with_process(
            base(
                CheckId::DaemonPidStale,
                format!("pm2.pid names process {pid}, which is a zombie (exited, not yet reaped)"),
            ),
            p,
        )),
        Some(p) => {
            if ctx.membership.daemons.contains(&pid) {
                return;
            }
            if p.is_pm2_daemon() {
                match daemon_home(p, ctx.matcher) {
                    Some(false) => sink.push(with_process(
                        base(
                            CheckId::DaemonPidForeign,
                            format!("pm2.pid names process {pid}, a PM2 daemon of another home"),
                        ),
                        p,
                    )),
                    _ => sink.unknown(
                        CheckId::DaemonPidForeign,
                        format!("process {pid} is a PM2 daemon but its home cannot be read (another user's process?)"),
                    ),
                }
                return;
            }
            sink.push(with_process(
                base(
                    CheckId::DaemonPidForeign,
                    format!(
                        "pm2.pid names process {pid} ({}), which is not a PM2 daemon: the pid was reused",
                        p.name
                    ),
                ),
                p,
            ))
        }
    }
}

fn duplicates(ctx: &Context, sink: &mut Sink) {
    let daemons = &ctx.membership.daemons;
    if daemons.len() < 2 {
        return;
    }
    let named = match &ctx.home.daemon_pid {
        SmallFile::Read { text, .. } => match parse_pid(text) {
            PidParse::Pid(p) => Some(p),
            _ => None,
        },
        _ => None,
    };
    // A daemon that listens on both rpc.sock and pub.sock is the one every
    // pm2 command reaches; the others are ghosts. Known on Linux
    // (SO_PEERCRED). When the two sockets belong to different daemons (PM2
    // 7.0.4's race: a second daemon binds rpc.sock but never pub.sock), no
    // daemon fully serves and none is kept.
    let (rpc, publ) = (ctx.daemon.rpc_listener(), ctx.daemon.pub_listener());
    let serving = rpc.filter(|p| publ == Some(*p) && daemons.contains(p));
    let described: Vec<serde_json::Value> = daemons
        .iter()
        .filter_map(|pid| ctx.procs.get(*pid))
        .map(|p| {
            let mut d = serde_json::json!({
                "pid": p.pid,
                "start_time": iso(p.start_time),
                "cmdline": p.cmdline(),
                "in_pm2_pid": named == Some(p.pid),
            });
            if let Some(r) = rpc {
                d["serves_rpc_sock"] = (r == p.pid).into();
            }
            if let Some(b) = publ {
                d["serves_pub_sock"] = (b == p.pid).into();
            }
            d
        })
        .collect();
    let list = |pids: &mut dyn Iterator<Item = &u32>| {
        pids.map(u32::to_string).collect::<Vec<_>>().join(", ")
    };
    let (summary, fix) = match serving {
        Some(s) => (
            format!(
                "{} PM2 daemons run for this home (pids {}); pid {s} serves rpc.sock, the others manage apps nobody can reach",
                daemons.len(),
                list(&mut daemons.iter())
            ),
            format!(
                "back up dump.pm2, then stop the daemons that do not serve rpc.sock (pids {}) and their apps; pid {s} and its apps keep running",
                list(&mut daemons.iter().filter(|p| **p != s))
            ),
        ),
        None => {
            let why = match (rpc, publ) {
                (Some(r), Some(b)) if r != b => format!(
                    "no daemon serves both sockets: pid {r} listens on rpc.sock, pid {b} on pub.sock"
                ),
                _ => "which one serves rpc.sock and pub.sock could not be told".to_string(),
            };
            (
                format!(
                    "{} PM2 daemons run for this home (pids {}); only one can own rpc.sock, the others manage apps nobody can reach",
                    daemons.len(),
                    list(&mut daemons.iter())
                ),
                format!(
                    "back up dump.pm2, then stop every daemon listed here and their apps ({why}), and bring the apps back from the dump"
                ),
            )
        }
    };
    sink.push(
        Finding::new(
            CheckId::DaemonDuplicate,
            summary,
            Fix::new("kill-duplicate-daemons", Safety::Disruptive, fix),
        )
        .with("daemons", described)
        .with_opt("pm2_pid", named)
        .with_opt("rpc_listener_pid", rpc)
        .with_opt("pub_listener_pid", publ)
        .with_opt("serving_pid", serving),
    );
}

fn endpoint_text(e: &Endpoint) -> String {
    e.to_string()
}

fn responsiveness(ctx: &Context, sink: &mut Sink) {
    let Some(rpc) = &ctx.daemon.rpc else {
        sink.skip(CheckId::DaemonUnresponsive, "probe not run");
        return;
    };
    let daemons = &ctx.membership.daemons;
    let restart_fix = |pids: &[u32]| {
        Fix::new(
            "restart-daemon",
            Safety::Disruptive,
            if pids.is_empty() {
                "find what listens on the socket and stop it; then move the socket aside so PM2 can start a daemon".to_string()
            } else {
                format!(
                    "back up dump.pm2, kill the daemon (pid {}) and its orphans, then start PM2 again",
                    pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                )
            },
        )
    };
    let endpoint = endpoint_text(&ctx.home.paths.rpc);
    let with_daemons = |f: Finding| -> Finding {
        let list: Vec<serde_json::Value> = daemons
            .iter()
            .filter_map(|p| ctx.procs.get(*p))
            .map(|p| serde_json::json!({"pid": p.pid, "start_time": iso(p.start_time), "cmdline": p.cmdline()}))
            .collect();
        f.with("endpoint", endpoint.clone()).with("daemons", list)
    };
    match rpc {
        ProbeOutcome::Answered(_) => {}
        ProbeOutcome::Timeout {
            connected,
            waited_ms,
            server_pid,
        } => {
            let who = server_pid
                .map(|p| format!(" (the listener is pid {p})"))
                .unwrap_or_default();
            let summary = if *connected {
                format!(
                    "{endpoint}{who} accepted a connection but did not answer within {waited_ms} ms: the daemon is wedged, and every pm2 command will hang"
                )
            } else {
                format!(
                    "connecting to {endpoint} did not finish within {waited_ms} ms: the daemon is not accepting connections, and every pm2 command will hang"
                )
            };
            sink.push(with_daemons(
                Finding::new(CheckId::DaemonUnresponsive, summary, restart_fix(daemons))
                    .with("waited_ms", *waited_ms)
                    .with("connected", *connected)
                    .with_opt("listener_pid", *server_pid),
            ));
        }
        ProbeOutcome::Protocol { error } | ProbeOutcome::DaemonError { error } => {
            sink.push(with_daemons(
                Finding::new(
                    CheckId::DaemonUnresponsive,
                    format!("{endpoint} answered, but not like a PM2 daemon: {error}"),
                    restart_fix(daemons),
                )
                .with("error", error.clone()),
            ));
        }
        ProbeOutcome::Missing | ProbeOutcome::Refused if !daemons.is_empty() => {
            let why = if matches!(rpc, ProbeOutcome::Missing) {
                "its socket is gone"
            } else {
                "its socket refuses connections"
            };
            sink.push(with_daemons(Finding::new(
                CheckId::DaemonUnresponsive,
                format!(
                    "a daemon of this home is running (pid {}) but {why}: pm2 cannot reach it and will start a second daemon",
                    daemons[0]
                ),
                restart_fix(daemons),
            )));
        }
        ProbeOutcome::Missing | ProbeOutcome::Refused => {}
        ProbeOutcome::PermissionDenied { error } => sink.unknown(
            CheckId::DaemonUnresponsive,
            format!(
                "permission denied on {endpoint} ({error}); run as the user that owns the home"
            ),
        ),
        ProbeOutcome::Failed { error } => sink.unknown(
            CheckId::DaemonUnresponsive,
            format!("cannot probe {endpoint}: {error}"),
        ),
    }
}

fn version(ctx: &Context, sink: &mut Sink) {
    let id = CheckId::DaemonVersionMismatch;
    let (daemon_version, source) = match &ctx.daemon.rpc {
        Some(ProbeOutcome::Answered(r)) => (Some(r.version.clone()), "getVersion"),
        _ => (
            ctx.membership
                .daemons
                .first()
                .and_then(|p| ctx.procs.get(*p))
                .and_then(|p| p.daemon_title_version().map(str::to_string)),
            "process title",
        ),
    };
    let Some(daemon_version) = daemon_version else {
        if ctx.membership.daemons.is_empty() {
            sink.skip(id, "no daemon of this home is running");
        } else {
            sink.unknown(
                id,
                "the daemon did not answer and its title carries no version",
            );
        }
        return;
    };
    let Some(cli) = ctx.cli else {
        match ctx.cli_requested {
            Some(p) => sink.unknown(
                id,
                format!(
                    "{} (given with --pm2) has no readable pm2 package.json",
                    p.display()
                ),
            ),
            None => sink.skip(id, "no pm2 CLI found on PATH"),
        }
        return;
    };
    if cli.version != daemon_version {
        sink.push(
            Finding::new(
                id,
                format!(
                    "the daemon runs PM2 {daemon_version} but the pm2 CLI on PATH is {}",
                    cli.version
                ),
                Fix::new(
                    "pm2-update",
                    Safety::Manual,
                    "run `pm2 update` when a restart of every app is acceptable (it is not zero-downtime)",
                ),
            )
            .with("daemon_version", daemon_version)
            .with("daemon_version_source", source)
            .with("cli_version", cli.version.clone())
            .with("cli", cli.bin.display().to_string())
            .with("cli_package_json", cli.package_json.display().to_string()),
        );
    }
}

fn sockets(ctx: &Context, sink: &mut Sink) {
    let paths = &ctx.home.paths;
    let pairs = [
        (&paths.rpc, &ctx.home.rpc, ctx.daemon.rpc.as_ref()),
        (&paths.publ, &ctx.home.publ, ctx.daemon.publ.as_ref()),
    ];
    if pairs
        .iter()
        .all(|(e, _, _)| matches!(e, Endpoint::NamedPipe(_)))
    {
        for id in [CheckId::SocketStale, CheckId::SocketNotASocket] {
            sink.skip(
                id,
                "PM2 uses named pipes on Windows: there are no socket files",
            );
        }
        return;
    }
    for (endpoint, entry, outcome) in pairs {
        let Endpoint::UnixSocket(path) = endpoint else {
            continue;
        };
        let quarantine = |what: &str| {
            Fix::new(
                "quarantine-socket",
                Safety::Safe,
                format!(
                    "move {} ({what}) into the backup so a new daemon can bind",
                    path.display()
                ),
            )
        };
        match entry {
            Entry::Missing => {}
            Entry::SymlinkOutside { target } => {
                sink.push(symlink_finding(path, target));
                for id in [CheckId::SocketStale, CheckId::SocketNotASocket] {
                    sink.unknown(id, format!("{} is a symlink out of the home and was not followed", path.display()));
                }
            }
            Entry::Unreadable(e) => {
                for id in [CheckId::SocketStale, CheckId::SocketNotASocket] {
                    sink.unknown(id, format!("cannot inspect {}: {e}", path.display()));
                }
            }
            // PM2 unlinks a regular file there and binds, as it does for a
            // stale socket (pm2-internals §3.3): leftover, not a trap.
            Entry::File(_) => sink.push(
                Finding::new(
                    CheckId::SocketStale,
                    format!(
                        "{} is a regular file where PM2 expects its socket: leftover state, which PM2 replaces when a daemon starts",
                        path.display()
                    ),
                    quarantine("a regular file"),
                )
                .with("path", path.display().to_string())
                .with("kind", "a regular file"),
            ),
            Entry::Dir | Entry::Other => {
                let kind = if matches!(entry, Entry::Dir) { "a directory" } else { "a special file" };
                let consequence = if matches!(entry, Entry::Dir) {
                    "a new daemon spins at 100% CPU trying to bind and pm2 hangs"
                } else {
                    "PM2 cannot bind its socket there"
                };
                sink.push(
                    Finding::new(
                        CheckId::SocketNotASocket,
                        format!("{} is {kind}, not a socket: {consequence}", path.display()),
                        quarantine(kind),
                    )
                    .with("path", path.display().to_string())
                    .with("kind", kind),
                );
            }
            Entry::Socket => match outcome {
                None => sink.skip(CheckId::SocketStale, "probe not run"),
                Some(ProbeOutcome::Refused) => sink.push(
                    Finding::new(
                        CheckId::SocketStale,
                        format!(
                            "{} exists but nobody listens on it (connection refused): left behind by a daemon that died",
                            path.display()
                        ),
                        quarantine("stale socket"),
                    )
                    .with("path", path.display().to_string()),
                ),
                Some(ProbeOutcome::PermissionDenied { error }) => sink.unknown(
                    CheckId::SocketStale,
                    format!("permission denied on {}: {error}", path.display()),
                ),
                Some(_) => {}
            },
        }
    }
}
