//! `undo` and `backups`: putting a run's file changes back, and keeping the
//! list of runs tidy.
//!
//! Undo makes every path a run touched equal to its backup again. It only
//! overwrites a path that is still in the state the backup or the run left
//! it in; anything else changed since, and is refused unless `--force`. The
//! same rule makes undo work after a repair that was killed half-way: a path
//! whose action never ran still matches its backup and is left as it is.

use super::backup::{self, Observed};
use super::journal::{ActionState, AfterState, FileKind, FileRecord, Manifest, RunState};
use super::plan::Action;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Run folders of one home, oldest first (run ids sort by time).
pub fn list_runs(home_dir: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(home_dir.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(super::journal::MANIFEST).is_file())
        .collect();
    runs.sort();
    runs
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileVerdict {
    /// Already as it was before the run.
    Unchanged,
    /// In the state the run left it: will be (or was) restored.
    Restore,
    /// Changed by someone else since the run: refused without --force.
    Conflict,
}

#[derive(Clone, Debug, Serialize)]
pub struct FilePlan {
    pub path: PathBuf,
    pub verdict: FileVerdict,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct UndoReport {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub files: Vec<FilePlan>,
    pub restored: usize,
    /// Processes the run signalled: gone for good.
    pub killed: Vec<(u32, String)>,
    pub refused: bool,
    pub already_undone: bool,
    /// Paths that could not be put back (a fifo cannot be recreated); the
    /// others were restored and the run stays undoable.
    pub errors: Vec<String>,
}

fn matches_record(now: &Observed, rec: &FileRecord) -> bool {
    now.kind == rec.kind
        && (rec.kind != FileKind::File || (now.sha256 == rec.sha256 && now.mode == rec.mode))
}

fn matches_after(now: &Observed, after: &AfterState) -> bool {
    match after {
        AfterState::Absent => now.kind == FileKind::Absent,
        AfterState::File { sha256, mode } => {
            now.kind == FileKind::File
                && now.sha256.as_deref() == Some(sha256.as_str())
                && (mode.is_none() || now.mode == *mode)
        }
    }
}

/// Decides, without changing anything, what undo would do to each path.
pub fn assess(m: &Manifest) -> Vec<FilePlan> {
    m.files
        .iter()
        .map(|rec| {
            let now = match backup::observe(&rec.original) {
                Ok(o) => o,
                Err(e) => {
                    return FilePlan {
                        path: rec.original.clone(),
                        verdict: FileVerdict::Conflict,
                        detail: format!("cannot inspect: {e}"),
                    }
                }
            };
            if matches_record(&now, rec) {
                return FilePlan {
                    path: rec.original.clone(),
                    verdict: FileVerdict::Unchanged,
                    detail: "already as before the run".into(),
                };
            }
            // Only mode changed on a file we chmod'ed: still ours.
            let ours = m
                .actions
                .iter()
                .filter(|a| a.state != ActionState::Planned)
                .flat_map(|a| a.after.iter())
                .any(|(p, after)| p == &rec.original && matches_after(&now, after));
            // A quarantine that started but was interrupted before it was
            // recorded leaves the path absent: also ours.
            let interrupted_move = now.kind == FileKind::Absent
                && m.actions.iter().any(|a| {
                    a.state == ActionState::Started
                        && matches!(&a.action, Action::Quarantine { path } if path == &rec.original)
                });
            if ours || interrupted_move {
                FilePlan {
                    path: rec.original.clone(),
                    verdict: FileVerdict::Restore,
                    detail: "changed by this run".into(),
                }
            } else {
                FilePlan {
                    path: rec.original.clone(),
                    verdict: FileVerdict::Conflict,
                    detail: format!("changed since the run (now {:?})", now.kind).to_lowercase(),
                }
            }
        })
        .collect()
}

/// Restores a run's files. Refuses as a whole when any path conflicts,
/// unless `force`.
pub fn undo(run_dir: &Path, force: bool) -> anyhow::Result<UndoReport> {
    let mut m = Manifest::load(run_dir)?;
    let killed = m
        .actions
        .iter()
        .flat_map(|a| a.processes.iter())
        .filter(|p| !p.signals.is_empty())
        .map(|p| (p.pid, p.cmdline.clone()))
        .collect();
    let mut report = UndoReport {
        run_id: m.run_id.clone(),
        run_dir: run_dir.to_path_buf(),
        files: assess(&m),
        restored: 0,
        killed,
        refused: false,
        already_undone: m.state == RunState::Undone,
        errors: Vec::new(),
    };
    if report.already_undone {
        return Ok(report);
    }
    if !force
        && report
            .files
            .iter()
            .any(|f| f.verdict == FileVerdict::Conflict)
    {
        report.refused = true;
        return Ok(report);
    }
    for (rec, plan) in m.files.clone().iter().zip(report.files.iter_mut()) {
        if plan.verdict == FileVerdict::Unchanged {
            continue;
        }
        match backup::restore(rec, run_dir) {
            Ok(()) => {
                plan.verdict = FileVerdict::Restore;
                report.restored += 1;
            }
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    if !report.errors.is_empty() {
        // Not marked undone: a later undo can finish what this one could not.
        return Ok(report);
    }
    m.state = RunState::Undone;
    m.undone_at = Some(super::journal::now());
    m.save(run_dir)?;
    Ok(report)
}

#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub started_at: Option<String>,
    /// `complete`, `aborted`, `undone`, ... or `unreadable` (see `error`).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub actions_done: usize,
    pub actions: usize,
    pub files: usize,
    pub bytes: u64,
    pub path: PathBuf,
}

pub fn summaries(home_dir: &Path) -> Vec<RunSummary> {
    list_runs(home_dir)
        .into_iter()
        .map(|dir| match Manifest::load(&dir) {
            Ok(m) => RunSummary {
                run_id: m.run_id,
                started_at: Some(m.started_at),
                error: None,
                state: serde_json::to_value(m.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                actions_done: m
                    .actions
                    .iter()
                    .filter(|a| a.state == ActionState::Done)
                    .count(),
                actions: m.actions.len(),
                files: m.files.len(),
                bytes: backup::dir_size(&dir),
                path: dir,
            },
            Err(e) => RunSummary {
                run_id: dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                started_at: None,
                state: "unreadable".into(),
                error: Some(e.to_string()),
                actions_done: 0,
                actions: 0,
                files: 0,
                bytes: backup::dir_size(&dir),
                path: dir,
            },
        })
        .collect()
}

/// Deletes all but the newest `keep` runs; returns the removed folders.
pub fn prune(home_dir: &Path, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let runs = list_runs(home_dir);
    let cut = runs.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for dir in runs.into_iter().take(cut) {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", dir.display()))?;
        removed.push(dir);
    }
    Ok(removed)
}
