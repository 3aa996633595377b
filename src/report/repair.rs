//! Rendering a repair: the plan, each action's result, what remains, and
//! how to undo.

use crate::findings::{Safety, Severity};
use crate::repair::plan::Plan;
use crate::repair::undo::{FileVerdict, UndoReport};
use crate::repair::{Mode, RepairReport};
use crate::report::style::{BOLD, DIM, GREEN, RED, YELLOW};
use anstyle::Style;
use std::io::{self, Write};
use std::path::Path;

fn safety_style(s: Safety) -> Style {
    match s {
        Safety::Safe => GREEN,
        Safety::Disruptive => YELLOW,
        Safety::Manual => DIM,
    }
}

pub fn render_plan(out: &mut dyn Write, plan: &Plan, run_dir: Option<&Path>) -> io::Result<()> {
    if plan.steps.is_empty() {
        writeln!(out, "nothing to do")?;
    } else {
        writeln!(out, "{BOLD}plan{BOLD:#} ({} actions):", plan.steps.len())?;
        for (i, s) in plan.steps.iter().enumerate() {
            let st = safety_style(s.safety);
            writeln!(
                out,
                "  {:>2}. {st}[{}]{st:#} {}  {DIM}({}){DIM:#}",
                i + 1,
                s.safety,
                s.description,
                s.check
            )?;
        }
        if let Some(d) = run_dir {
            writeln!(out, "  every file is copied to {} first", d.display())?;
        }
    }
    for (check, why) in &plan.unplanned {
        writeln!(out, "  {YELLOW}cannot plan{YELLOW:#} {check}: {why}")?;
    }
    for (check, fix) in &plan.manual {
        writeln!(out, "  {DIM}manual{DIM:#} {check}: {}", fix.description)?;
    }
    Ok(())
}

pub fn render(out: &mut dyn Write, r: &RepairReport) -> io::Result<()> {
    writeln!(
        out,
        "{BOLD}pm2-doctor repair{BOLD:#}  home {}",
        r.before.paths.home.display()
    )?;
    render_plan(out, &r.plan, r.run_dir.as_deref())?;
    if !r.held_back.is_empty() {
        writeln!(
            out,
            "{YELLOW}held back{YELLOW:#} {} disruptive action(s): run with --yes to apply them",
            r.held_back.len()
        )?;
        for s in &r.held_back {
            writeln!(out, "  - {}  {DIM}({}){DIM:#}", s.description, s.check)?;
        }
    }
    if r.mode == Mode::DryRun {
        writeln!(out, "dry run: nothing was changed")?;
        return Ok(());
    }
    if r.exit_code == crate::repair::exit::CANCELLED {
        writeln!(out, "cancelled: nothing was changed")?;
        return Ok(());
    }
    if !r.records.is_empty() {
        writeln!(out, "{BOLD}results{BOLD:#}:")?;
    }
    for a in &r.records {
        let (mark, st) = crate::report::style::action_mark(a.state);
        writeln!(
            out,
            "  {st}{mark}{st:#} {:>2}. {}: {}",
            a.seq,
            a.description,
            a.result.as_deref().unwrap_or("")
        )?;
    }
    for n in &r.notes {
        writeln!(out, "  note: {n}")?;
    }
    if let Some(after) = &r.after {
        writeln!(
            out,
            "after repair: {} errors, {} warnings",
            after.count(Severity::Error),
            after.count(Severity::Warning)
        )?;
        for f in &after.verdict.findings {
            writeln!(out, "  {} {}", f.check, f.summary)?;
        }
    }
    if r.exit_code & crate::repair::exit::RESTART_RECOMMENDED != 0 {
        writeln!(
            out,
            "processes were stopped or the dump restored: bring the apps back with `pm2-doctor resurrect` (it checks the home first and never lets PM2 read an unvalidated dump)"
        )?;
    }
    if let Some(id) = &r.run_id {
        // runs/<id> under <base>/<home-id>: the base is what undo needs.
        let base = r
            .run_dir
            .as_deref()
            .and_then(|d| d.parent()?.parent()?.parent())
            .map(|b| format!(" --backup-dir {}", b.display()))
            .unwrap_or_default();
        writeln!(
            out,
            "undo the file changes with: pm2-doctor undo {id} --home {}{base}  (killed processes cannot be brought back)",
            r.before.paths.home.display()
        )?;
    }
    Ok(())
}

pub fn document(r: &RepairReport) -> serde_json::Value {
    serde_json::json!({
        "schema_version": 1,
        "mode": r.mode,
        "home": r.before.paths.home,
        "run_id": r.run_id,
        "backup_dir": r.run_dir,
        "plan": r.plan.steps,
        "held_back": r.held_back,
        "manual": r.plan.manual.iter().map(|(c, f)| serde_json::json!({"check": c, "fix": f})).collect::<Vec<_>>(),
        "unplanned": r.plan.unplanned.iter().map(|(c, w)| serde_json::json!({"check": c, "reason": w})).collect::<Vec<_>>(),
        "results": r.records,
        "notes": r.notes,
        "before": crate::report::json::document(&r.before, r.before.exit_code(false)),
        "after": r.after.as_ref().map(|d| crate::report::json::document(d, d.exit_code(false))),
        "exit_code": r.exit_code,
    })
}

pub fn render_undo(out: &mut dyn Write, r: &UndoReport) -> io::Result<()> {
    writeln!(
        out,
        "{BOLD}undo{BOLD:#} run {} ({})",
        r.run_id,
        r.run_dir.display()
    )?;
    if r.already_undone {
        writeln!(out, "this run was already undone; nothing to do")?;
        return Ok(());
    }
    for f in &r.files {
        let (mark, st) = match f.verdict {
            FileVerdict::Unchanged => ("=", DIM),
            FileVerdict::Restore => ("✓", GREEN),
            FileVerdict::Conflict => ("✗", RED),
        };
        writeln!(
            out,
            "  {st}{mark}{st:#} {}  {DIM}{}{DIM:#}",
            f.path.display(),
            f.detail
        )?;
    }
    if r.refused {
        writeln!(
            out,
            "{RED}refused{RED:#}: some files changed after the run; nothing was restored. Re-run with --force to overwrite them."
        )?;
    } else {
        writeln!(out, "restored {} path(s)", r.restored)?;
    }
    for e in &r.errors {
        writeln!(out, "  {RED}✗{RED:#} not restored: {e}")?;
    }
    if !r.errors.is_empty() {
        writeln!(
            out,
            "the run is not marked undone: fix the paths above (a fifo can be recreated with mkfifo) and run undo again"
        )?;
    }
    if !r.killed.is_empty() {
        let pids: Vec<String> = r.killed.iter().map(|(p, c)| format!("{p} ({c})")).collect();
        writeln!(
            out,
            "killed processes cannot be brought back: {}",
            pids.join(", ")
        )?;
    }
    Ok(())
}
