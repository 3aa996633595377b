//! `repair`: findings become a plan, the plan becomes a journaled
//! transaction with a backup taken before anything changes, then the home is
//! diagnosed again.
//!
//! The sequence is e2fsck's and the runbook's: back up everything the plan
//! touches (refuse if that fails) → kill orphans → kill stale or duplicate
//! daemons → quarantine pid and socket files → restore the dump → tighten
//! permissions → re-diagnose. Killing a daemon can orphan its apps, so a
//! second pass handles what the first one uncovered.

pub mod backup;
pub mod journal;
pub mod kill;
pub mod lock;
pub mod plan;
pub mod undo;

use crate::config::Config;
use crate::diagnose::{self, Diagnosis};
use crate::dump::{entry_problems, DumpParse};
use crate::findings::{Safety, Severity};
use crate::process::{ProcessControl, SystemControl};
use journal::{ActionRecord, ActionState, AfterState, FileKind, Manifest, RunState};
use plan::{Action, Plan, Role, Step};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Print the plan, change nothing.
    DryRun,
    /// Apply only safe actions, without asking (cron, like `fsck -p`).
    SafeOnly,
    /// Apply safe and disruptive actions without asking.
    Yes,
    /// Show the plan and ask (a terminal is required).
    Ask,
}

#[derive(Clone, Debug)]
pub struct RepairOptions {
    pub mode: Mode,
    pub grace: Duration,
    /// `<base>` under which `<home-id>/runs/<run-id>` is created.
    pub backup_base: PathBuf,
}

/// A bound on re-planning: each pass acts on what the previous one uncovered.
const MAX_PASSES: usize = 4;

/// Exit-code bits for repair, summed (e2fsck style).
pub mod exit {
    pub const NOTHING_TO_DO: i32 = 0;
    pub const FIXED: i32 = 1;
    pub const RESTART_RECOMMENDED: i32 = 2;
    pub const LEFT_UNFIXED: i32 = 4;
    pub const OPERATIONAL: i32 = 8;
    pub const CANCELLED: i32 = 32;
}

#[derive(Debug)]
pub struct RepairReport {
    pub mode: Mode,
    pub before: Diagnosis,
    pub plan: Plan,
    pub held_back: Vec<Step>,
    pub run_id: Option<String>,
    pub run_dir: Option<PathBuf>,
    pub records: Vec<ActionRecord>,
    pub after: Option<Diagnosis>,
    pub notes: Vec<String>,
    pub exit_code: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error(
        "the backup folder {0} is inside the PM2 home; choose one outside it with --backup-dir"
    )]
    BackupInsideHome(PathBuf),
    #[error("no backup folder: set --backup-dir or PM2_DOCTOR_BACKUP_DIR")]
    NoBackupBase,
    #[error("backup failed, nothing was changed: {0}")]
    Backup(String),
}

/// Everything repair needs from the outside world, injectable for tests.
pub struct Io<'a> {
    pub control: &'a mut dyn ProcessControl,
    /// Asked once with the plan in `Mode::Ask`; false cancels.
    pub confirm: &'a mut dyn FnMut(&Plan, &Path) -> bool,
    /// Progress while waiting on grace periods: number still alive.
    pub progress: &'a mut dyn FnMut(usize),
}

fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let salt = backup::sha256_bytes(
        format!(
            "{}{}",
            std::process::id(),
            now.timestamp_nanos_opt().unwrap_or(0)
        )
        .as_bytes(),
    );
    // Milliseconds keep runs of the same second in order (runs sort by id).
    format!("{}-{}", now.format("%Y%m%dT%H%M%S%3fZ"), &salt[..6])
}

/// The newest dump that parses as a valid, non-empty app list other than
/// dump.pm2 itself: `dump.pm2.bak` or a copy kept in an earlier run.
pub fn find_dump_source(cfg: &Config, home_dir: &Path) -> Option<PathBuf> {
    crate::resurrect::candidates(cfg, Some(home_dir))
        .into_iter()
        .find(|c| c.path != cfg.paths.dump)
        .map(|c| c.path)
}

/// Pids never to signal: init, us, and our ancestors.
fn protected(ctl: &mut dyn ProcessControl) -> HashSet<u32> {
    let mut out: HashSet<u32> = [0, 1, std::process::id()].into_iter().collect();
    let mut cur = ctl.inspect(std::process::id()).and_then(|p| p.ppid);
    while let Some(pid) = cur {
        if pid <= 1 || !out.insert(pid) {
            break;
        }
        cur = ctl.inspect(pid).and_then(|p| p.ppid);
    }
    out
}

fn home_owner(home: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(home).ok().map(|m| m.uid())
    }
    #[cfg(not(unix))]
    {
        let _ = home;
        None
    }
}

fn max_safety(mode: Mode) -> Safety {
    match mode {
        Mode::SafeOnly => Safety::Safe,
        _ => Safety::Disruptive,
    }
}

fn plan_for(cfg: &Config, d: &Diagnosis, home_dir: &Path) -> Plan {
    let source = find_dump_source(cfg, home_dir);
    plan::plan(d, source.as_deref())
}

/// Runs a whole repair. Refuses (error) rather than change anything it
/// could not back up first.
pub fn run(cfg: &Config, opts: &RepairOptions, io: &mut Io) -> anyhow::Result<RepairReport> {
    run_selected(cfg, opts, io, &mut |_| true)
}

/// [`run`], applying only the steps `select` accepts; the others are
/// reported in `held_back`. `select` sees every step of every pass that the
/// mode does not hold back and that was not done already: a later pass may
/// plan steps the first did not (the pid file of an orphan it stopped).
/// A dry run plans everything and asks nothing.
pub fn run_selected(
    cfg: &Config,
    opts: &RepairOptions,
    io: &mut Io,
    select: &mut dyn FnMut(&Step) -> bool,
) -> anyhow::Result<RepairReport> {
    let home_dir = backup::home_dir_for(&opts.backup_base, &cfg.paths.home);
    if let (Ok(h), Ok(b)) = (
        std::fs::canonicalize(&cfg.paths.home),
        std::fs::canonicalize(&opts.backup_base).or_else(|_| {
            // Not created yet: judge by the nearest existing parent.
            opts.backup_base
                .ancestors()
                .find_map(|a| std::fs::canonicalize(a).ok())
                .ok_or(())
        }),
    ) {
        if b.starts_with(&h) {
            return Err(RepairError::BackupInsideHome(opts.backup_base.clone()).into());
        }
    }
    // The lock comes before the diagnosis a repair acts on: a second
    // repair that ran meanwhile would have made that diagnosis stale.
    let run_id = new_run_id();
    let lock = if opts.mode == Mode::DryRun {
        None
    } else {
        Some(lock::acquire(
            &home_dir,
            &format!("run {run_id}"),
            io.control,
        )?)
    };
    let before = diagnose::run(cfg)?;
    let mut plan = plan_for(cfg, &before, &home_dir);
    let mut report = RepairReport {
        mode: opts.mode,
        before,
        held_back: Vec::new(),
        plan: Plan::default(),
        run_id: None,
        run_dir: None,
        records: Vec::new(),
        after: None,
        notes: Vec::new(),
        exit_code: exit::NOTHING_TO_DO,
    };
    if let Some(note) = lock.as_ref().and_then(|l| l.took_over.as_ref()) {
        report.notes.push(format!("took over a stale lock: {note}"));
    }
    if opts.mode == Mode::DryRun {
        let pending = !plan.steps.is_empty() || report.before.count(Severity::Error) > 0;
        report.exit_code = if pending {
            exit::LEFT_UNFIXED
        } else {
            exit::NOTHING_TO_DO
        };
        report.plan = plan;
        return Ok(report);
    }
    report.held_back = plan.keep(max_safety(opts.mode));
    report.held_back.extend(declined(&mut plan, select));
    if plan.steps.is_empty() {
        report.exit_code = leftover(&report.before, &report.held_back);
        report.plan = plan;
        return Ok(report);
    }
    let run_dir = home_dir.join("runs").join(&run_id);
    if opts.mode == Mode::Ask {
        if !(io.confirm)(&plan, &run_dir) {
            report.plan = plan;
            report.exit_code = exit::CANCELLED;
            return Ok(report);
        }
        // The home may have changed while the question waited (a daemon
        // started and wrote its pid file): only steps a fresh diagnosis
        // still plans, for the same reason (check), are applied; nothing
        // new is added unasked.
        let fresh = plan_for(cfg, &diagnose::run(cfg)?, &home_dir);
        let (still, gone): (Vec<Step>, Vec<Step>) =
            std::mem::take(&mut plan.steps).into_iter().partition(|s| {
                fresh
                    .steps
                    .iter()
                    .any(|f| f.description == s.description && f.check == s.check)
            });
        for s in gone {
            report.notes.push(format!(
                "not applied, no longer needed after the confirmation: {}",
                s.description
            ));
        }
        plan.steps = still;
        if plan.steps.is_empty() {
            report.exit_code = leftover(&report.before, &report.held_back);
            report.plan = plan;
            return Ok(report);
        }
    }
    backup::create_private_dir(&run_dir)
        .map_err(|e| RepairError::Backup(format!("cannot create {}: {e}", run_dir.display())))?;
    let lock = lock.ok_or_else(|| anyhow::anyhow!("internal: no lock outside a dry run"))?;

    let mut manifest = Manifest {
        schema_version: journal::SCHEMA_VERSION,
        run_id: run_id.clone(),
        home: cfg.paths.home.clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: journal::now(),
        finished_at: None,
        state: RunState::BackingUp,
        files: Vec::new(),
        actions: Vec::new(),
        undone_at: None,
    };
    report.run_id = Some(run_id);
    report.run_dir = Some(run_dir.clone());
    let guard = kill::Guard {
        protected: protected(io.control),
        owner_uid: home_owner(&cfg.paths.home),
    };
    let dumps = vec![cfg.paths.dump.clone(), cfg.paths.dump_backup.clone()];
    let mut steps = plan.steps.clone();
    report.plan = plan;
    for pass in 0..MAX_PASSES {
        let done_before = manifest
            .actions
            .iter()
            .filter(|a| a.state == ActionState::Done)
            .count();
        if let Err(e) = back_up_all(&mut manifest, &run_dir, &steps, &dumps) {
            manifest.state = if pass == 0 {
                RunState::Aborted
            } else {
                RunState::Complete
            };
            let _ = manifest.save(&run_dir);
            if pass == 0 {
                return Err(e.into());
            }
            report.notes.push(format!("pass {} not run: {e}", pass + 1));
            break;
        }
        apply(
            &mut manifest,
            &run_dir,
            &steps,
            &guard,
            opts.grace,
            io,
            &dumps,
        )?;
        let after = diagnose::run(cfg)?;
        // Killing a daemon may orphan its apps, and killing those leaves
        // their pid files stale: passes go on while they make progress.
        let mut next = plan_for(cfg, &after, &home_dir);
        // A person who confirmed a plan confirmed those steps: later passes
        // add only safe ones unasked, disruptive ones wait for the next run.
        let later_limit = if opts.mode == Mode::Ask {
            Safety::Safe
        } else {
            max_safety(opts.mode)
        };
        for s in next.keep(later_limit) {
            if !report
                .held_back
                .iter()
                .any(|h| h.description == s.description)
            {
                report.held_back.push(s);
            }
        }
        // Steps that ran are not repeated. Skipped ones get a second chance,
        // except those skipped because their path changed after its backup:
        // paths are copied once per run, so they would be skipped again.
        let settled: HashSet<String> = manifest
            .actions
            .iter()
            .filter(|a| {
                a.state == ActionState::Done
                    || (a.state == ActionState::Skipped
                        && a.result
                            .as_deref()
                            .is_some_and(|r| r.contains("changed after")))
            })
            .map(|a| a.description.clone())
            .collect();
        next.steps.retain(|s| !settled.contains(&s.description));
        for s in declined(&mut next, select) {
            if !report
                .held_back
                .iter()
                .any(|h| h.description == s.description)
            {
                report.held_back.push(s);
            }
        }
        report.after = Some(after);
        let progressed = manifest
            .actions
            .iter()
            .filter(|a| a.state == ActionState::Done)
            .count()
            > done_before;
        if next.steps.is_empty() || !progressed || pass + 1 == MAX_PASSES {
            break;
        }
        for s in &next.steps {
            if !report
                .plan
                .steps
                .iter()
                .any(|p| p.description == s.description)
            {
                report.plan.steps.push(s.clone());
            }
        }
        steps = next.steps;
    }
    manifest.state = RunState::Complete;
    manifest.finished_at = Some(journal::now());
    manifest.save(&run_dir)?;
    drop(lock);
    report.records = manifest.actions.clone();
    report.exit_code = outcome_code(&report);
    Ok(report)
}

/// Takes the steps `select` rejects out of `plan`.
fn declined(plan: &mut Plan, select: &mut dyn FnMut(&Step) -> bool) -> Vec<Step> {
    let (keep, out): (Vec<Step>, Vec<Step>) = std::mem::take(&mut plan.steps)
        .into_iter()
        .partition(|s| select(s));
    plan.steps = keep;
    out
}

fn leftover(d: &Diagnosis, held: &[Step]) -> i32 {
    if d.count(Severity::Error) > 0 || !held.is_empty() {
        exit::LEFT_UNFIXED
    } else {
        exit::NOTHING_TO_DO
    }
}

fn outcome_code(r: &RepairReport) -> i32 {
    let mut code = 0;
    let done = |a: &&ActionRecord| a.state == ActionState::Done;
    if r.records.iter().any(|a| done(&a)) {
        code |= exit::FIXED;
    }
    let restart = r.records.iter().filter(done).any(|a| {
        matches!(
            a.action,
            Action::Terminate { .. } | Action::RestoreDump { .. }
        ) && a
            .processes
            .iter()
            .all(|p| !p.outcome.starts_with("skipped"))
    });
    if restart {
        code |= exit::RESTART_RECOMMENDED;
    }
    let remaining = r
        .after
        .as_ref()
        .is_none_or(|d| d.count(Severity::Error) > 0);
    if remaining || !r.held_back.is_empty() {
        code |= exit::LEFT_UNFIXED;
    }
    if r.records.iter().any(|a| a.state == ActionState::Failed) {
        code |= exit::OPERATIONAL;
    }
    code
}

/// Copies every path the steps may change into the run, before any change.
fn back_up_all(
    m: &mut Manifest,
    run_dir: &Path,
    steps: &[Step],
    dumps: &[PathBuf],
) -> Result<(), RepairError> {
    m.state = RunState::BackingUp;
    let mut paths: Vec<PathBuf> = Vec::new();
    for s in steps {
        for p in s.action.touches(dumps) {
            if !paths.contains(&p) && !m.files.iter().any(|f| f.original == p) {
                paths.push(p);
            }
        }
    }
    for p in paths {
        let n = m.files.len();
        let rec =
            backup::back_up(&p, run_dir, n).map_err(|e| RepairError::Backup(e.to_string()))?;
        m.files.push(rec);
    }
    m.save(run_dir)
        .map_err(|e| RepairError::Backup(e.to_string()))
}

fn record_for(m: &Manifest, p: &Path) -> Option<journal::FileRecord> {
    m.files.iter().find(|f| f.original == p).cloned()
}

/// The path is still what we backed up: nobody changed it since.
/// The path is as we last saw it: as backed up, or as an earlier action of
/// this run left it (a daemon stopped earlier may have rewritten its dump).
/// Anything else means someone changed it since, and it is left alone.
fn unchanged(m: &Manifest, p: &Path) -> Result<(), String> {
    let rec = record_for(m, p).ok_or_else(|| format!("{} was not backed up", p.display()))?;
    let now = backup::observe(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let as_backed_up =
        now.kind == rec.kind && (rec.kind != FileKind::File || now.sha256 == rec.sha256);
    let as_we_left_it = m
        .actions
        .iter()
        .filter(|a| a.state == ActionState::Done)
        .flat_map(|a| a.after.iter())
        .rfind(|(path, _)| path == p)
        .is_some_and(|(_, after)| match after {
            AfterState::Absent => now.kind == FileKind::Absent,
            AfterState::File { sha256, .. } => now.sha256.as_deref() == Some(sha256.as_str()),
        });
    if as_backed_up || as_we_left_it {
        Ok(())
    } else {
        Err(format!(
            "{} changed after the backup was taken; left alone",
            p.display()
        ))
    }
}

fn test_pause(seq: usize) {
    // Lets the crash-safety tests kill pm2-doctor between two actions.
    if std::env::var("PM2_DOCTOR_TEST_PAUSE_AFTER")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(seq)
    {
        use std::io::Write;
        let mut err = std::io::stderr();
        let _ = writeln!(err, "pm2-doctor: paused after action {seq}");
        let _ = err.flush();
        // Resumes when the test creates PM2_DOCTOR_TEST_RESUME_FILE (to
        // change the home between two actions), else waits to be killed.
        let resume = std::env::var_os("PM2_DOCTOR_TEST_RESUME_FILE").map(PathBuf::from);
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < until {
            if resume.as_deref().is_some_and(Path::exists) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn apply(
    m: &mut Manifest,
    run_dir: &Path,
    steps: &[Step],
    guard: &kill::Guard,
    grace: Duration,
    io: &mut Io,
    dumps: &[PathBuf],
) -> anyhow::Result<()> {
    m.state = RunState::Applying;
    let first = m.actions.len();
    for s in steps {
        m.actions.push(ActionRecord {
            seq: m.actions.len() + 1,
            check: s.check,
            safety: s.safety,
            action: s.action.clone(),
            description: s.description.clone(),
            state: ActionState::Planned,
            result: None,
            after: vec![],
            processes: vec![],
            started_at: None,
            finished_at: None,
        });
    }
    m.save(run_dir)?;
    let mut i = first;
    while i < m.actions.len() {
        // Consecutive terminations of one role run together: one grace period.
        if let Action::Terminate { role, .. } = m.actions[i].action {
            let mut j = i;
            while j < m.actions.len()
                && matches!(m.actions[j].action, Action::Terminate { role: r, .. } if r == role)
            {
                m.actions[j].state = ActionState::Started;
                m.actions[j].started_at = Some(journal::now());
                j += 1;
            }
            m.save(run_dir)?;
            let targets: Vec<kill::Target> = m.actions[i..j]
                .iter()
                .filter_map(|a| match &a.action {
                    Action::Terminate {
                        pid,
                        start_time,
                        uid,
                        cmdline,
                        ..
                    } => Some(kill::Target {
                        pid: *pid,
                        start_time: *start_time,
                        uid: *uid,
                        cmdline: cmdline.clone(),
                    }),
                    _ => None,
                })
                .collect();
            let recs = kill::terminate_all(io.control, &targets, guard, grace, io.progress);
            for (a, r) in m.actions[i..j].iter_mut().zip(recs) {
                a.state = if r.outcome.starts_with("failed") || r.outcome.starts_with("still alive")
                {
                    ActionState::Failed
                } else if r.outcome.starts_with("skipped") {
                    ActionState::Skipped
                } else {
                    ActionState::Done
                };
                a.result = Some(r.outcome.clone());
                a.processes = vec![r];
                a.finished_at = Some(journal::now());
            }
            if role == Role::Daemon {
                // A SIGTERMed daemon rewrites its dump: remember what it
                // wrote, so undo can tell it from a later `pm2 save`.
                let after: Vec<(PathBuf, AfterState)> = dumps
                    .iter()
                    .filter_map(|p| {
                        let o = backup::observe(p).ok()?;
                        Some((
                            p.clone(),
                            match o.kind {
                                FileKind::File => AfterState::File {
                                    sha256: o.sha256?,
                                    mode: o.mode,
                                },
                                _ => AfterState::Absent,
                            },
                        ))
                    })
                    .collect();
                // On a step that is done: undo and the time-of-use check
                // only trust after-states of done steps.
                if let Some(done) = m.actions[i..j]
                    .iter_mut()
                    .find(|a| a.state == ActionState::Done)
                {
                    done.after = after;
                }
            }
            m.save(run_dir)?;
            for seq in i + 1..=j {
                test_pause(seq);
            }
            i = j;
            continue;
        }
        m.actions[i].state = ActionState::Started;
        m.actions[i].started_at = Some(journal::now());
        m.save(run_dir)?;
        let result = file_action(m, &m.actions[i].action.clone());
        let a = &mut m.actions[i];
        match result {
            Ok((msg, after)) => {
                a.state = ActionState::Done;
                a.result = Some(msg);
                a.after = after;
            }
            Err(Outcome::Skip(why)) => {
                a.state = ActionState::Skipped;
                a.result = Some(why);
            }
            Err(Outcome::Fail(why)) => {
                a.state = ActionState::Failed;
                a.result = Some(why);
            }
        }
        a.finished_at = Some(journal::now());
        m.save(run_dir)?;
        test_pause(i + 1);
        i += 1;
    }
    Ok(())
}

enum Outcome {
    Skip(String),
    Fail(String),
}

type Done = (String, Vec<(PathBuf, AfterState)>);

fn file_action(m: &Manifest, action: &Action) -> Result<Done, Outcome> {
    match action {
        Action::Quarantine { path } => {
            if matches!(backup::observe(path).map(|o| o.kind), Ok(FileKind::Absent)) {
                return Err(Outcome::Skip(format!("{} is already gone", path.display())));
            }
            unchanged(m, path).map_err(Outcome::Skip)?;
            backup::remove_path(path)
                .map_err(|e| Outcome::Fail(format!("{}: {e}", path.display())))?;
            Ok((
                "moved into the backup".into(),
                vec![(path.clone(), AfterState::Absent)],
            ))
        }
        Action::OwnerOnly { path } => {
            unchanged(m, path).map_err(Outcome::Skip)?;
            if !std::fs::symlink_metadata(path).is_ok_and(|md| md.is_file()) {
                return Err(Outcome::Skip(format!(
                    "{} is not a regular file",
                    path.display()
                )));
            }
            if hard_links(path) > 1 {
                // chmod would change the other names of the file too, which
                // may live outside the home.
                return Err(Outcome::Skip(format!(
                    "{} has other hard links; chmod it yourself if they are all yours",
                    path.display()
                )));
            }
            set_mode(path, 0o600).map_err(|e| Outcome::Fail(format!("{}: {e}", path.display())))?;
            let sha = backup::sha256_file(path).map_err(|e| Outcome::Fail(e.to_string()))?;
            Ok((
                "mode set to 600".into(),
                vec![(
                    path.clone(),
                    AfterState::File {
                        sha256: sha,
                        mode: Some(0o600),
                    },
                )],
            ))
        }
        Action::RestoreDump { from, to } => {
            unchanged(m, to).map_err(Outcome::Skip)?;
            let (bytes, truncated) = crate::home::read_capped(from, crate::dump::DUMP_CAP)
                .map_err(|e| Outcome::Fail(format!("{}: {e}", from.display())))?;
            let meta = crate::home::FileMeta {
                size: bytes.len() as u64,
                mtime: None,
                mode: None,
            };
            let valid = !truncated
                && matches!(crate::dump::parse_bytes(&bytes, meta), DumpParse::Apps { entries, .. }
                    if !entries.is_empty() && entries.iter().all(|e| entry_problems(e).is_empty()));
            if !valid {
                return Err(Outcome::Skip(format!(
                    "{} is no longer a valid dump",
                    from.display()
                )));
            }
            let rec = record_for(m, to);
            let mode = rec
                .as_ref()
                .filter(|r| r.kind == FileKind::File)
                .and_then(|r| r.mode)
                .unwrap_or(0o600);
            // A directory or device squatting on the dump path was backed
            // up with everything else; it has to go for the rename to work.
            if !matches!(
                backup::observe(to).map(|o| o.kind),
                Ok(FileKind::File | FileKind::Absent)
            ) {
                backup::remove_path(to)
                    .map_err(|e| Outcome::Fail(format!("{}: {e}", to.display())))?;
            }
            journal::write_atomic(to, &bytes, Some(mode))
                .map_err(|e| Outcome::Fail(format!("{}: {e}", to.display())))?;
            if let Some(r) = &rec {
                backup::chown_like(to, r.uid, r.gid)
                    .map_err(|e| Outcome::Fail(format!("{}: {e}", to.display())))?;
            }
            Ok((
                format!("restored from {}", from.display()),
                vec![(
                    to.clone(),
                    AfterState::File {
                        sha256: backup::sha256_bytes(&bytes),
                        mode: Some(mode),
                    },
                )],
            ))
        }
        Action::Terminate { .. } => Err(Outcome::Fail(
            "internal: termination outside a batch".into(),
        )),
    }
}

fn hard_links(p: &Path) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(p).map(|m| m.nlink()).unwrap_or(1)
    }
    #[cfg(not(unix))]
    {
        let _ = p;
        1
    }
}

fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (p, mode);
        Ok(())
    }
}

/// The real process control, for `main`.
pub fn system_control() -> anyhow::Result<SystemControl> {
    SystemControl::new()
}
