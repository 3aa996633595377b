//! `pids/<name>-<pm_id>.pid`: one per app process, written by the daemon (or
//! the cluster worker) and left behind whenever the daemon dies.

use super::daemon::{symlink_finding, with_process};
use super::{iso, unix_secs, Context, Sink};
use crate::findings::{CheckId, Finding, Fix, Safety};
use crate::home::{parse_pid, PidFile, PidParse, PidsDir, SmallFile};

const IDS: [CheckId; 3] = [
    CheckId::PidfileStale,
    CheckId::PidfileForeign,
    CheckId::PidfileInvalid,
];

/// A pid file written this recently, while a daemon of this home runs but
/// did not list its apps, may belong to an app between two restarts.
const RESTART_WINDOW_SECS: u64 = 60;

/// A process started this long after its pid file was written cannot be the
/// process the file was written for. Generous, because start times are whole
/// seconds and the daemon writes the file just after the spawn.
const REUSE_SLACK_SECS: u64 = 2;

fn quarantine(pf: &PidFile) -> Fix {
    Fix::new(
        "quarantine-pid-file",
        Safety::Safe,
        format!("move {} into the backup", pf.path.display()),
    )
}

fn base(id: CheckId, pf: &PidFile, summary: String) -> Finding {
    Finding::new(id, summary, quarantine(pf))
        .with("path", pf.path.display().to_string())
        .with("app", pf.app.clone())
        .with_opt("pm_id", pf.pm_id)
}

pub fn check(ctx: &Context, sink: &mut Sink) {
    let dir = &ctx.home.paths.pids_dir;
    let files = match &ctx.home.pids {
        PidsDir::Missing => return,
        PidsDir::Listed(files) => files,
        PidsDir::SymlinkOutside { target } => {
            sink.push(symlink_finding(dir, target));
            for id in IDS {
                sink.unknown(
                    id,
                    "the pids directory is a symlink out of the home and was not followed",
                );
            }
            return;
        }
        PidsDir::NotADir => {
            for id in IDS {
                sink.unknown(id, format!("{} is not a directory", dir.display()));
            }
            return;
        }
        PidsDir::Unreadable(e) => {
            for id in IDS {
                sink.unknown(id, format!("cannot list {}: {e}", dir.display()));
            }
            return;
        }
    };
    for pf in files {
        one(ctx, sink, pf);
    }
}

fn one(ctx: &Context, sink: &mut Sink, pf: &PidFile) {
    let (text, meta) = match &pf.content {
        SmallFile::Missing => return,
        SmallFile::SymlinkOutside { target } => {
            sink.push(symlink_finding(&pf.path, target));
            for id in IDS {
                sink.unknown(
                    id,
                    format!(
                        "{} is a symlink out of the home and was not followed",
                        pf.path.display()
                    ),
                );
            }
            return;
        }
        SmallFile::Unreadable(e) => {
            for id in IDS {
                sink.unknown(id, format!("cannot read {}: {e}", pf.path.display()));
            }
            return;
        }
        SmallFile::NotAFile { kind } => {
            sink.push(base(
                CheckId::PidfileInvalid,
                pf,
                format!("{} is a {kind}, not a pid file", pf.path.display()),
            ));
            return;
        }
        SmallFile::Read { text, meta } => (text, meta),
    };
    let pid = match parse_pid(text) {
        PidParse::Pid(p) => p,
        bad => {
            let what = bad.invalid_reason().unwrap_or_default();
            sink.push(base(
                CheckId::PidfileInvalid,
                pf,
                format!("pid file of app {} {what}", pf.app),
            ));
            return;
        }
    };
    let written = meta.mtime.map(unix_secs);
    let with_pid = |f: Finding| f.with("pid", pid).with_opt("file_mtime", written.map(iso));
    // A live daemon owns the pid files of the apps it runs: it unlinks one
    // when the app exits and writes a new one at each restart, so during a
    // restart the file names a dead pid for a moment. Not stale.
    let managed_id = pf.pm_id.map(u64::from);
    let listed = match &ctx.daemon.rpc {
        Some(crate::probe::ProbeOutcome::Answered(r)) => r.apps.as_deref(),
        _ => None,
    };
    let daemon_runs_it = managed_id.is_some()
        && listed.is_some_and(|apps| apps.iter().any(|a| a.pm_id == managed_id));
    // A daemon of this home runs but gave no app list (slow, or wedged): a
    // file it wrote moments ago may be an app's between two restarts, which
    // moving aside would only race with PM2's next write.
    let maybe_restarting = listed.is_none()
        && !ctx.membership.daemons.is_empty()
        && written.is_some_and(|w| unix_secs(ctx.now).saturating_sub(w) < RESTART_WINDOW_SECS);
    let dead = |sink: &mut Sink| -> bool {
        if daemon_runs_it {
            return true;
        }
        if maybe_restarting {
            sink.unknown(
                CheckId::PidfileStale,
                format!(
                    "{} names a dead pid, but a daemon of this home is running without listing its apps and the file is less than {RESTART_WINDOW_SECS} s old: its app may be restarting",
                    pf.path.display()
                ),
            );
            return true;
        }
        false
    };
    let Some(p) = ctx.procs.get(pid) else {
        if dead(sink) {
            return;
        }
        sink.push(with_pid(base(
            CheckId::PidfileStale,
            pf,
            format!(
                "app {} is recorded as pid {pid}, which is not running",
                pf.app
            ),
        )));
        return;
    };
    if !p.is_alive() {
        // Exited and not yet reaped by its daemon: a restart in progress.
        if dead(sink) {
            return;
        }
        sink.push(with_process(
            base(
                CheckId::PidfileStale,
                pf,
                format!("app {} is recorded as pid {pid}, which is a zombie", pf.app),
            ),
            p,
        ));
        return;
    }
    // The pid is alive: is it still the app the file was written for?
    if let Some(env) = &p.env {
        let same_home = env.home.as_deref().is_some_and(|h| ctx.matcher.matches(h));
        let same_id = match (pf.pm_id, env.pm_id.as_deref()) {
            (Some(want), Some(have)) => have.parse::<u32>().ok() == Some(want),
            _ => env.has_app_markers(),
        };
        if same_home && same_id {
            return;
        }
        let why = if !env.has_app_markers() {
            "its environment has no PM2 markers".to_string()
        } else if !same_home {
            format!(
                "it belongs to PM2 home {}",
                env.home.as_deref().unwrap_or("(unknown)")
            )
        } else {
            format!(
                "it is pm_id {}",
                env.pm_id.as_deref().unwrap_or("(unknown)")
            )
        };
        sink.push(with_process(
            base(
                CheckId::PidfileForeign,
                pf,
                format!(
                    "app {} is recorded as pid {pid}, but that pid is now {} and {why}",
                    pf.app, p.name
                ),
            ),
            p,
        ));
        return;
    }
    // Environment unreadable: only time can prove the pid was reused.
    if let Some(w) = written {
        if p.start_time > w + REUSE_SLACK_SECS {
            sink.push(with_process(
                base(
                    CheckId::PidfileForeign,
                    pf,
                    format!(
                        "app {} is recorded as pid {pid}, but that process started after the pid file was written",
                        pf.app
                    ),
                )
                .with_opt("file_mtime", written.map(iso)),
                p,
            ));
            return;
        }
    }
    sink.unknown(
        CheckId::PidfileForeign,
        format!(
            "cannot read the environment of pid {pid} ({}), so cannot tell whether it is app {}",
            p.name, pf.app
        ),
    );
}
