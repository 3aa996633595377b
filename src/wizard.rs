//! `pm2-doctor wizard`: a guided recovery for a person at a terminal.
//!
//! 1. diagnose (spinner) and show the problems grouped by severity;
//! 2. choose what to fix: everything, errors only, warnings only, one by one
//!    (each problem explained, its exact actions shown, then a yes/no), or
//!    quit;
//! 3. apply through [`repair`] (backup first, journal, undo), narrowed to
//!    what was chosen, after one last look at the exact plan and run folder;
//! 4. offer to bring the apps back ([`resurrect`]) from a source picked in a
//!    list, or skip;
//! 5. diagnose again, show what is left and the exact undo command.
//!
//! Esc, `q` or Ctrl-C at any question stops the wizard before the action it
//! asks about (exit 32): nothing is changed until the "Apply" question is
//! answered yes. Without a terminal it refuses (exit 16).
//!
//! The questions are drawn with dialoguer's theme on dialoguer's terminal,
//! but the keys are read here: dialoguer 0.12's widgets read them with
//! `Term::read_key`, which answers Ctrl-C with `raise(SIGINT)`. With no
//! handler installed (this crate forbids `unsafe`, and has no signal crate)
//! that kills the process on the spot: exit by signal, not 32, and the
//! cursor left hidden. `Term::read_key_raw` reports Ctrl-C as a key instead.

use crate::cli::WizardArgs;
use crate::config::Config;
use crate::diagnose::{self, exit, Diagnosis};
use crate::findings::{CheckId, CheckStatus, Finding, Safety, Severity};
use crate::repair::journal::ActionState;
use crate::repair::plan::{Action, Plan, Role, Step};
use crate::repair::{self, Io, Mode, RepairOptions, RepairReport};
use crate::report::style::{BLUE, BOLD, DIM, GREEN, RED, YELLOW};
use crate::{home, report, resurrect};
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Deadline of each `pm2` call when bringing the apps back (as `resurrect`).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many dumps are offered in step 4, newest first.
const MAX_DUMPS_OFFERED: usize = 6;

/// Esc, `q` or Ctrl-C at a question, or the answer "quit".
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
struct Cancelled;

/// Runs the wizard; returns the exit code (repair's bits, 16 or 32).
pub fn run_cli(args: &WizardArgs) -> anyhow::Result<i32> {
    let mut err = anstream::stderr();
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        writeln!(
            err,
            "pm2-doctor: the wizard needs a terminal to ask its questions. Without one, run \
             `pm2-doctor diagnose` to see the problems and `pm2-doctor repair --yes` to fix them \
             (`pm2-doctor repair --dry-run` shows what it would do)."
        )?;
        return Ok(exit::USAGE);
    }
    let env = home::process_env();
    let mut cfg = Config::for_home(args.home.home.as_deref(), args.timeout, &env);
    cfg.pm2_bin = args.pm2.clone();
    let base = repair::backup::base_for(args.backup.backup_dir.as_ref(), &env);
    let Some(base) = base else {
        writeln!(err, "error: {}", repair::RepairError::NoBackupBase)?;
        return Ok(exit::USAGE);
    };
    let mut w = Wizard {
        args,
        cfg,
        backup_flag: args.backup.backup_dir.is_some(),
        base,
        out: err,
        ask: Prompter::new(),
        run_id: None,
        stopped_processes: false,
    };
    match w.run() {
        Ok(code) => Ok(code),
        Err(e) if e.is::<Cancelled>() => {
            w.cancelled()?;
            Ok(repair::exit::CANCELLED)
        }
        Err(e) => {
            // The cursor may be hidden by a question that failed.
            let _ = w.ask.term.show_cursor();
            Err(e)
        }
    }
}

/// What step 2 decided: which planned steps to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Everything,
    Errors,
    Warnings,
    OneByOne,
}

#[derive(Debug)]
struct Selection {
    scope: Scope,
    /// Step descriptions the person said yes to.
    approved: HashSet<String>,
    /// Step descriptions the person said no to, or left out of the scope.
    declined: HashSet<String>,
}

impl Selection {
    /// Whether repair may apply `s`. Steps a later pass uncovers (the pid
    /// file of an orphan just stopped) were never shown: only safe, undoable
    /// ones within the chosen scope are taken; disruptive ones are left for
    /// the next run.
    fn accepts(&self, s: &Step) -> bool {
        if self.approved.contains(&s.description) {
            return true;
        }
        if self.declined.contains(&s.description) {
            return false;
        }
        s.safety == Safety::Safe
            && match self.scope {
                Scope::Everything | Scope::OneByOne => true,
                Scope::Errors => s.check.severity() == Severity::Error,
                Scope::Warnings => s.check.severity() == Severity::Warning,
            }
    }
}

/// One finding with what repair would do about it.
struct Problem<'d> {
    finding: &'d Finding,
    /// Steps of the whole plan that fix this finding, in runbook order.
    steps: Vec<Step>,
    /// Why repair cannot act on it, when it cannot.
    unplanned: Option<String>,
}

struct Wizard<'a> {
    args: &'a WizardArgs,
    cfg: Config,
    base: PathBuf,
    backup_flag: bool,
    out: anstream::Stderr,
    ask: Prompter,
    run_id: Option<String>,
    stopped_processes: bool,
}

impl Wizard<'_> {
    fn run(&mut self) -> anyhow::Result<i32> {
        writeln!(
            self.out,
            "{BOLD}pm2-doctor wizard{BOLD:#}  home {}",
            self.cfg.paths.home.display()
        )?;
        writeln!(
            self.out,
            "{DIM}Nothing is changed before you say yes, and every file is copied to a backup first. \
             Esc, q or Ctrl-C quits at any question.{DIM:#}"
        )?;

        // Step 1.
        self.step(1, "Diagnose")?;
        let d = self.diagnose()?;
        self.summary(&d)?;
        if d.verdict
            .findings
            .iter()
            .any(|f| f.check == CheckId::HomeMissing)
        {
            writeln!(
                self.out,
                "There is no PM2 home at {}: nothing to repair. Pass --home DIR if it lives elsewhere.",
                self.cfg.paths.home.display()
            )?;
            return Ok(exit::OK);
        }

        // Step 2.
        self.step(2, "Choose what to fix")?;
        let home_dir = repair::backup::home_dir_for(&self.base, &self.cfg.paths.home);
        let source = repair::find_dump_source(&self.cfg, &home_dir);
        let plan = repair::plan::plan(&d, source.as_deref());
        let problems = problems(&d, &plan, source.as_deref());
        let selection = self.choose(&plan, &problems)?;

        // Step 3.
        let mut code = 0;
        let mut stopped_daemons: Vec<u32> = Vec::new();
        if let Some(sel) = selection {
            self.step(3, "Apply")?;
            match self.apply(&sel)? {
                Some(rep) => {
                    code |= rep.exit_code
                        & (repair::exit::FIXED
                            | repair::exit::RESTART_RECOMMENDED
                            | repair::exit::OPERATIONAL);
                    stopped_daemons = rep
                        .records
                        .iter()
                        .filter(|r| r.state == ActionState::Done)
                        .filter_map(|r| match r.action {
                            Action::Terminate {
                                pid,
                                role: Role::Daemon,
                                ..
                            } => Some(pid),
                            _ => None,
                        })
                        .collect();
                }
                None => return Ok(repair::exit::OPERATIONAL),
            }
        } else {
            self.step(3, "Apply")?;
            writeln!(self.out, "  nothing to apply")?;
        }

        // Step 4.
        self.step(4, "Bring the apps back")?;
        let live: Vec<u32> = d
            .daemon_pids
            .iter()
            .copied()
            .filter(|p| !stopped_daemons.contains(p))
            .collect();
        // A dump saved while apps crash-looped carries the created_at that
        // keeps PM2's restart guard from ever tripping: offer to re-arm it.
        let looping = d
            .verdict
            .findings
            .iter()
            .any(|f| matches!(f.check, CheckId::AppCrashLoop | CheckId::AppGuardBypassed));
        code |= self.bring_back(&home_dir, &live, looping)?;

        // Step 5.
        self.step(5, "Check again")?;
        let after = self.diagnose()?;
        self.summary(&after)?;
        let errors = after.count(Severity::Error);
        if errors == 0 {
            writeln!(self.out, "{GREEN}✓{GREEN:#} no error is left in this home")?;
        } else {
            code |= repair::exit::LEFT_UNFIXED;
            writeln!(
                self.out,
                "{RED}✗{RED:#} {errors} error(s) left: `pm2-doctor diagnose -v --home {}` shows the evidence",
                shell_quote(&self.cfg.paths.home)
            )?;
        }
        self.undo_hint()?;
        Ok(code)
    }

    fn step(&mut self, n: u8, title: &str) -> std::io::Result<()> {
        writeln!(self.out)?;
        writeln!(self.out, "{BOLD}Step {n}/5  {title}{BOLD:#}")
    }

    fn diagnose(&mut self) -> anyhow::Result<Diagnosis> {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!(
            "diagnosing {} (each probe waits at most {:.1} s)",
            self.cfg.paths.home.display(),
            self.cfg.timeout.as_secs_f64()
        ));
        bar.enable_steady_tick(Duration::from_millis(100));
        let d = diagnose::run(&self.cfg);
        bar.finish_and_clear();
        d
    }

    /// The findings grouped by severity, the checks that could not finish,
    /// and how many passed.
    fn summary(&mut self, d: &Diagnosis) -> std::io::Result<()> {
        writeln!(self.out, "  {DIM}{}{DIM:#}", report::daemon_line(d))?;
        let groups = [
            (Severity::Error, "✗", RED, "error"),
            (Severity::Warning, "!", YELLOW, "warning"),
            (Severity::Info, "i", BLUE, "note"),
        ];
        for (sev, mark, st, word) in groups {
            let of: Vec<&Finding> = d
                .verdict
                .findings
                .iter()
                .filter(|f| f.severity == sev)
                .collect();
            if of.is_empty() {
                continue;
            }
            writeln!(self.out, "  {st}{mark} {}{st:#}", plural(of.len(), word))?;
            for f in of {
                writeln!(
                    self.out,
                    "      {st}{mark}{st:#} {:<22} {}",
                    f.check.as_str(),
                    f.summary
                )?;
            }
        }
        let unfinished: Vec<(CheckId, &str)> = d
            .verdict
            .results
            .iter()
            .filter(|r| {
                r.status == CheckStatus::Unknown
                    || (r.status == CheckStatus::Problem && r.reason.is_some())
            })
            .map(|r| (r.id, r.reason.as_deref().unwrap_or("unknown reason")))
            .collect();
        if !unfinished.is_empty() {
            writeln!(
                self.out,
                "  {YELLOW}? {} could not finish{YELLOW:#}",
                plural(unfinished.len(), "check")
            )?;
            for (id, why) in unfinished {
                writeln!(
                    self.out,
                    "      {YELLOW}?{YELLOW:#} {:<22} {why}",
                    id.as_str()
                )?;
            }
        }
        let ok = d
            .verdict
            .results
            .iter()
            .filter(|r| r.status == CheckStatus::Ok)
            .count();
        writeln!(
            self.out,
            "  {GREEN}✓{GREEN:#} {} passed",
            plural(ok, "check")
        )
    }

    /// Step 2. `None`: nothing to apply.
    fn choose(&mut self, plan: &Plan, problems: &[Problem]) -> anyhow::Result<Option<Selection>> {
        let fixable: Vec<&Problem> = problems.iter().filter(|p| !p.steps.is_empty()).collect();
        if fixable.is_empty() {
            if problems.is_empty() {
                writeln!(self.out, "  nothing to fix")?;
            } else {
                writeln!(
                    self.out,
                    "  nothing here can be fixed automatically; what you can do:"
                )?;
                for p in problems {
                    self.advice(p)?;
                }
            }
            return Ok(None);
        }
        let of = |sev: Option<Severity>| -> HashSet<String> {
            problems
                .iter()
                .filter(|p| sev.is_none_or(|s| p.finding.severity == s))
                .flat_map(|p| p.steps.iter().map(|s| s.description.clone()))
                .collect()
        };
        let (all, errors, warnings) = (
            of(None),
            of(Some(Severity::Error)),
            of(Some(Severity::Warning)),
        );
        writeln!(
            self.out,
            "  {} can be fixed by {}: {} safe (files moved into the backup, modes; undo puts them back), \
             {} disruptive (processes stopped, which undo cannot bring back, or dump.pm2 rewritten).",
            plural(fixable.len(), "problem"),
            plural(plan.steps.len(), "action"),
            plan.count(Safety::Safe),
            plan.count(Safety::Disruptive),
        )?;
        let items = [
            format!("Fix everything ({})", plural(all.len(), "action")),
            format!("Fix errors only ({})", plural(errors.len(), "action")),
            format!("Fix warnings only ({})", plural(warnings.len(), "action")),
            "Choose one by one".to_string(),
            "Quit without changing anything".to_string(),
        ];
        let pick = self.ask.select("What should be fixed?", &items, 0)?;
        let (scope, approved) = match pick {
            0 => (Scope::Everything, all.clone()),
            1 => (Scope::Errors, errors),
            2 => (Scope::Warnings, warnings),
            3 => (Scope::OneByOne, HashSet::new()),
            _ => return Err(Cancelled.into()),
        };
        let mut sel = Selection {
            scope,
            approved,
            declined: HashSet::new(),
        };
        if scope == Scope::OneByOne {
            self.one_by_one(problems, &mut sel)?;
        } else {
            sel.declined = all.difference(&sel.approved).cloned().collect();
            let manual: Vec<&Problem> = problems.iter().filter(|p| p.steps.is_empty()).collect();
            if !manual.is_empty() {
                writeln!(self.out, "  not fixed automatically; what you can do:")?;
                for p in manual {
                    self.advice(p)?;
                }
            }
            if !sel.declined.is_empty() {
                writeln!(self.out, "  left as they are (outside your choice):")?;
                for s in plan
                    .steps
                    .iter()
                    .filter(|s| sel.declined.contains(&s.description))
                {
                    writeln!(
                        self.out,
                        "    - {}  {DIM}({}){DIM:#}",
                        s.description, s.check
                    )?;
                }
            }
        }
        if sel.approved.is_empty() {
            writeln!(self.out, "  you chose no action")?;
            return Ok(None);
        }
        Ok(Some(sel))
    }

    fn advice(&mut self, p: &Problem) -> std::io::Result<()> {
        match &p.unplanned {
            Some(why) => writeln!(
                self.out,
                "    {YELLOW}!{YELLOW:#} {}: cannot be fixed automatically ({why}); {}",
                p.finding.check, p.finding.fix.description
            ),
            None => writeln!(
                self.out,
                "    {DIM}advice{DIM:#} {}: {}",
                p.finding.check, p.finding.fix.description
            ),
        }
    }

    /// Each problem explained, its actions shown, then a yes/no.
    fn one_by_one(&mut self, problems: &[Problem], sel: &mut Selection) -> anyhow::Result<()> {
        let total = problems.len();
        for (i, p) in problems.iter().enumerate() {
            let f = p.finding;
            let (mark, st) = match f.severity {
                Severity::Error => ("✗", RED),
                Severity::Warning => ("!", YELLOW),
                Severity::Info => ("i", BLUE),
            };
            writeln!(self.out)?;
            writeln!(
                self.out,
                "  {st}{mark}{st:#} {BOLD}{}{BOLD:#}  {DIM}({}, {} of {total}){DIM:#}",
                f.check,
                f.severity,
                i + 1
            )?;
            writeln!(self.out, "    what it is:  {}", f.check.description())?;
            writeln!(self.out, "    found here:  {}", f.summary)?;
            if !f.evidence.is_empty() {
                writeln!(self.out, "    evidence:")?;
                for (k, v) in &f.evidence {
                    writeln!(self.out, "      {DIM}{k}:{DIM:#} {}", value_text(v))?;
                }
            }
            writeln!(
                self.out,
                "    the fix ({}):  {}",
                f.fix.safety, f.fix.description
            )?;
            if p.steps.is_empty() {
                match &p.unplanned {
                    Some(why) => writeln!(
                        self.out,
                        "    {YELLOW}not done automatically:{YELLOW:#} {why}"
                    )?,
                    None => writeln!(
                        self.out,
                        "    {DIM}advice only: pm2-doctor does not do this for you{DIM:#}"
                    )?,
                }
                continue;
            }
            writeln!(self.out, "    what pm2-doctor will do:")?;
            for s in &p.steps {
                self.step_line(s)?;
            }
            let open: Vec<&Step> = p
                .steps
                .iter()
                .filter(|s| {
                    !sel.approved.contains(&s.description) && !sel.declined.contains(&s.description)
                })
                .collect();
            if open.is_empty() {
                writeln!(self.out, "    {DIM}(already decided above){DIM:#}")?;
                continue;
            }
            let disruptive = open.iter().any(|s| s.safety == Safety::Disruptive);
            let yes = self
                .ask
                .confirm(&format!("Fix {} now?", f.check), !disruptive)?;
            let to = if yes {
                &mut sel.approved
            } else {
                &mut sel.declined
            };
            to.extend(open.iter().map(|s| s.description.clone()));
        }
        Ok(())
    }

    fn step_line(&mut self, s: &Step) -> std::io::Result<()> {
        let st = match s.safety {
            Safety::Safe => GREEN,
            Safety::Disruptive => YELLOW,
            Safety::Manual => DIM,
        };
        writeln!(
            self.out,
            "      - {st}[{}]{st:#} {}  {DIM}{}{DIM:#}",
            s.safety,
            s.description,
            reversibility(&s.action)
        )
    }

    /// Step 3: one last look at the exact plan and run folder, then repair.
    /// `None`: repair refused before changing anything (backup failed, lock
    /// held…).
    fn apply(&mut self, sel: &Selection) -> anyhow::Result<Option<RepairReport>> {
        let opts = RepairOptions {
            // Ask: repair calls the confirm hook with its own final plan and
            // the run folder before anything is created or changed.
            mode: Mode::Ask,
            grace: self.args.grace,
            backup_base: self.base.clone(),
        };
        let mut control = repair::system_control()?;
        let bar = indicatif::ProgressBar::hidden();
        let out = &mut self.out;
        let ask = &self.ask;
        let grace = self.args.grace;
        let mut confirm = |plan: &Plan, run_dir: &Path| -> bool {
            let _ = writeln!(
                out,
                "  {} will run, in this order:",
                plural(plan.steps.len(), "action")
            );
            for (i, s) in plan.steps.iter().enumerate() {
                let st = if s.safety == Safety::Safe {
                    GREEN
                } else {
                    YELLOW
                };
                let _ = writeln!(
                    out,
                    "   {:>2}. {st}[{}]{st:#} {}  {DIM}({}; {}){DIM:#}",
                    i + 1,
                    s.safety,
                    s.description,
                    s.check,
                    reversibility(&s.action)
                );
            }
            let _ = writeln!(
                out,
                "  the backup: every file is copied to {} first",
                run_dir.display()
            );
            let disruptive = plan.count(Safety::Disruptive) > 0;
            let prompt = format!("Apply these {}?", plural(plan.steps.len(), "action"));
            match ask.confirm(&prompt, !disruptive) {
                Ok(true) => {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    bar.set_style(indicatif::ProgressStyle::default_spinner());
                    bar.set_message("applying (backup first)");
                    bar.enable_steady_tick(Duration::from_millis(100));
                    true
                }
                // No, Esc, q or Ctrl-C: repair stops before creating anything.
                Ok(false) | Err(_) => false,
            }
        };
        let bar2 = bar.clone();
        let mut progress = |alive: usize| {
            if alive > 0 {
                bar2.set_message(format!(
                    "waiting for {alive} process(es) to exit (SIGKILL after {:.1} s)",
                    grace.as_secs_f64()
                ));
            }
        };
        let mut select = |s: &Step| sel.accepts(s);
        let mut io = Io {
            control: &mut control,
            confirm: &mut confirm,
            progress: &mut progress,
        };
        let result = repair::run_selected(&self.cfg, &opts, &mut io, &mut select);
        bar.finish_and_clear();
        let rep = match result {
            Ok(r) => r,
            Err(e) => {
                writeln!(
                    self.out,
                    "{RED}repair refused{RED:#}: {e:#}\n  nothing was changed"
                )?;
                return Ok(None);
            }
        };
        if rep.exit_code == repair::exit::CANCELLED {
            return Err(Cancelled.into());
        }
        self.run_id = rep.run_id.clone();
        self.results(&rep, sel)?;
        Ok(Some(rep))
    }

    fn results(&mut self, rep: &RepairReport, sel: &Selection) -> std::io::Result<()> {
        if let Some(dir) = &rep.run_dir {
            writeln!(self.out, "  backup and journal: {}", dir.display())?;
        }
        if rep.records.is_empty() {
            writeln!(
                self.out,
                "  nothing was left to do when repair looked again"
            )?;
        }
        for a in &rep.records {
            let (mark, st) = crate::report::style::action_mark(a.state);
            writeln!(
                self.out,
                "  {st}{mark}{st:#} {:>2}. {}: {}",
                a.seq,
                a.description,
                a.result.as_deref().unwrap_or("")
            )?;
            if a.state == ActionState::Done && matches!(a.action, Action::Terminate { .. }) {
                self.stopped_processes = true;
            }
        }
        for s in &rep.held_back {
            let why = if sel.declined.contains(&s.description) {
                "you left it out"
            } else {
                "found after the first fixes; run the wizard again to review it"
            };
            writeln!(
                self.out,
                "  {DIM}-{DIM:#}     {}  {DIM}(not applied: {why}){DIM:#}",
                s.description
            )?;
        }
        let done: HashSet<&str> = rep.records.iter().map(|r| r.description.as_str()).collect();
        let explained = |d: &str| rep.notes.iter().any(|n| n.contains(d));
        for d in sel
            .approved
            .iter()
            .filter(|d| !done.contains(d.as_str()) && !explained(d))
        {
            writeln!(
                self.out,
                "  {DIM}-{DIM:#}     {d}  {DIM}(not applied: repair did not plan it when it looked again){DIM:#}"
            )?;
        }
        for n in &rep.notes {
            writeln!(self.out, "  note: {n}")?;
        }
        if rep.exit_code & repair::exit::RESTART_RECOMMENDED != 0 {
            writeln!(
                self.out,
                "  processes were stopped or the dump restored: the apps need starting again (next step)"
            )?;
        }
        Ok(())
    }

    /// Step 4. Returns exit bits (4 when the apps did not come back).
    fn bring_back(
        &mut self,
        home_dir: &Path,
        live_daemons: &[u32],
        looping: bool,
    ) -> anyhow::Result<i32> {
        if !live_daemons.is_empty() {
            let pids: Vec<String> = live_daemons.iter().map(u32::to_string).collect();
            writeln!(
                self.out,
                "  a PM2 daemon of this home is still running (pid {}): nothing is started next to it",
                pids.join(", ")
            )?;
            return Ok(0);
        }
        let mut sources: Vec<(resurrect::Source, String, String)> = Vec::new();
        let snap = home::HomeSnapshot::read(&self.cfg.paths);
        let cwds: Vec<PathBuf> = snap
            .dump
            .apps()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.pm_cwd.as_deref().map(PathBuf::from))
            .collect();
        if let Some(eco) = crate::lint::find_ecosystem(&cwds) {
            sources.push((
                resurrect::Source::Ecosystem { path: eco.clone() },
                format!(
                    "ecosystem file {} (pm2 start: fresh restart counters)",
                    eco.display()
                ),
                "chosen in the wizard: an ecosystem file found next to the apps".into(),
            ));
        }
        for c in resurrect::candidates(&self.cfg, Some(home_dir))
            .into_iter()
            .take(MAX_DUMPS_OFFERED)
        {
            let when = c
                .mtime
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| {
                    t.with_timezone(&chrono::Utc)
                        .format("saved %Y-%m-%d %H:%M UTC")
                        .to_string()
                })
                .unwrap_or_else(|| "time unknown".into());
            sources.push((
                resurrect::Source::Dump {
                    path: c.path.clone(),
                    label: c.label.clone(),
                    apps: c.apps,
                },
                format!("{} ({}, {when})", c.label, plural(c.apps, "app")),
                "chosen in the wizard".into(),
            ));
        }
        if sources.is_empty() {
            writeln!(
                self.out,
                "  no valid dump.pm2, dump.pm2.bak or backup copy, and no ecosystem file next to the apps: \
                 start them yourself (`pm2 start ecosystem.config.js`)"
            )?;
            return Ok(0);
        }
        writeln!(
            self.out,
            "  no PM2 daemon runs for this home. PM2 will read a validated copy of the dump you pick, never the real one."
        )?;
        let mut items: Vec<String> = sources.iter().map(|s| s.1.clone()).collect();
        items.push("Skip: start nothing now".into());
        let pick = self.ask.select("Start the apps again from?", &items, 0)?;
        let Some((source, _, why)) = sources.into_iter().nth(pick) else {
            writeln!(
                self.out,
                "  skipped: start them later with `pm2-doctor resurrect --home {}`",
                shell_quote(&self.cfg.paths.home)
            )?;
            return Ok(0);
        };
        let rearm_guard = match &source {
            resurrect::Source::Dump { .. } => {
                writeln!(
                    self.out,
                    "  {DIM}By default PM2 gives up on an app after 16 starts that each crash within 1 s, \
                     but it counts them only in the first 16 s after the app's created_at, which the \
                     dump keeps: started from a dump, a crashing app loops forever. Re-arming drops created_at \
                     from the copy PM2 reads (the dump itself is not changed).{DIM:#}"
                )?;
                let prompt = if looping {
                    "Re-arm PM2's restart guard? (apps were crash-looping)"
                } else {
                    "Re-arm PM2's restart guard?"
                };
                self.ask.confirm(prompt, looping)?
            }
            // `pm2 start` of an ecosystem file sets a fresh created_at.
            resurrect::Source::Ecosystem { .. } => false,
        };
        let opts = resurrect::Options {
            from: None,
            ecosystem: None,
            pm2: self.args.pm2.clone(),
            watch: self.args.watch,
            call_timeout: CALL_TIMEOUT,
            rearm_guard,
            save: false,
            backup_base: Some(self.base.clone()),
        };
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!(
            "starting the apps with pm2, then watching them for {:.0} s",
            self.args.watch.as_secs_f64()
        ));
        bar.enable_steady_tick(Duration::from_millis(100));
        let outcome = resurrect::run(&self.cfg, &opts, source, why);
        bar.finish_and_clear();
        match outcome {
            Ok(o) => {
                let mut buf: Vec<u8> = Vec::new();
                report::resurrect::render(&mut buf, &o)?;
                for line in String::from_utf8_lossy(&buf).lines() {
                    writeln!(self.out, "  {line}")?;
                }
                Ok(if o.exit_code == 0 {
                    0
                } else {
                    repair::exit::LEFT_UNFIXED
                })
            }
            Err(e) => {
                writeln!(self.out, "  {RED}not started{RED:#}: {e:#}")?;
                Ok(repair::exit::LEFT_UNFIXED)
            }
        }
    }

    fn undo_hint(&mut self) -> std::io::Result<()> {
        let Some(id) = self.run_id.clone() else {
            return Ok(());
        };
        let mut cmd = format!(
            "pm2-doctor undo {id} --home {}",
            shell_quote(&self.cfg.paths.home)
        );
        if self.backup_flag {
            cmd.push_str(&format!(" --backup-dir {}", shell_quote(&self.base)));
        }
        writeln!(
            self.out,
            "To put every changed file back: {BOLD}{cmd}{BOLD:#}"
        )?;
        if self.stopped_processes {
            writeln!(
                self.out,
                "{DIM}(processes that were stopped cannot be brought back by undo){DIM:#}"
            )?;
        }
        Ok(())
    }

    fn cancelled(&mut self) -> std::io::Result<()> {
        let _ = self.ask.term.show_cursor();
        writeln!(self.out)?;
        if self.run_id.is_some() {
            writeln!(
                self.out,
                "cancelled: the fixes applied above stay applied; nothing else was changed"
            )?;
            self.undo_hint()
        } else {
            writeln!(self.out, "cancelled: nothing was changed")
        }
    }
}

/// Every finding with the steps of `plan` that fix it, errors first.
fn problems<'d>(d: &'d Diagnosis, plan: &Plan, source: Option<&Path>) -> Vec<Problem<'d>> {
    let mut out: Vec<Problem> = d
        .verdict
        .findings
        .iter()
        .map(|f| {
            // Planned alone, a finding shows which steps of the whole plan
            // are its own (the whole plan drops duplicates across findings).
            let mut one = d.clone();
            one.verdict.findings = vec![f.clone()];
            let mine = repair::plan::plan(&one, source);
            let steps = plan
                .steps
                .iter()
                .filter(|s| mine.steps.iter().any(|m| m.description == s.description))
                .cloned()
                .collect();
            Problem {
                finding: f,
                steps,
                unplanned: mine.unplanned.first().map(|(_, why)| why.clone()),
            }
        })
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.finding.severity));
    out
}

fn reversibility(a: &Action) -> &'static str {
    match a {
        Action::Terminate {
            role: Role::Orphan, ..
        } => "undo cannot bring a stopped process back",
        Action::Terminate {
            role: Role::Daemon, ..
        } => "undo cannot bring a stopped process back; the dump it rewrites is backed up",
        Action::Quarantine { .. } => "undo puts the file back",
        Action::RestoreDump { .. } => "undo puts the old dump back",
        Action::OwnerOnly { .. } => "undo puts the old mode back",
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn value_text(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    const MAX: usize = 300;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// A path as a shell word, quoted only when it needs to be.
fn shell_quote(p: &Path) -> String {
    let s = p.display().to_string();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,~".contains(c));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Questions drawn with dialoguer's theme, keys read with
/// `Term::read_key_raw` so that Ctrl-C is a key (see the module docs).
struct Prompter {
    term: dialoguer::console::Term,
    theme: dialoguer::theme::ColorfulTheme,
}

impl Prompter {
    fn new() -> Prompter {
        Prompter {
            term: dialoguer::console::Term::stderr(),
            theme: dialoguer::theme::ColorfulTheme::default(),
        }
    }

    /// Writes one line; returns how many terminal rows it took.
    fn line(&self, s: &str) -> std::io::Result<usize> {
        self.term.write_line(s)?;
        let cols = usize::from(self.term.size().1).max(1);
        let width = dialoguer::console::measure_text_width(s);
        Ok(width.div_ceil(cols).max(1))
    }

    fn cancelled_line(&self, prompt: &str) -> String {
        format!(
            "{} {} {}",
            self.theme.error_prefix,
            self.theme.prompt_style.apply_to(prompt),
            self.theme.error_style.apply_to("· cancelled")
        )
    }

    /// A list to pick one item from (arrows, j/k, Tab; Enter or space).
    fn select(&self, prompt: &str, items: &[String], default: usize) -> anyhow::Result<usize> {
        use dialoguer::console::Key;
        use dialoguer::theme::Theme;
        if items.is_empty() {
            anyhow::bail!("internal: a question without answers");
        }
        let mut sel = default.min(items.len() - 1);
        let mut drawn = 0;
        self.term.hide_cursor()?;
        let picked = loop {
            if drawn > 0 {
                self.term.clear_last_lines(drawn)?;
            }
            drawn = 0;
            let mut s = String::new();
            self.theme.format_select_prompt(&mut s, prompt)?;
            drawn += self.line(&s)?;
            for (i, item) in items.iter().enumerate() {
                s.clear();
                self.theme
                    .format_select_prompt_item(&mut s, item, i == sel)?;
                drawn += self.line(&s)?;
            }
            self.term.flush()?;
            match self.term.read_key_raw() {
                Ok(Key::ArrowDown | Key::Tab | Key::Char('j')) => sel = (sel + 1) % items.len(),
                Ok(Key::ArrowUp | Key::BackTab | Key::Char('k')) => {
                    sel = (sel + items.len() - 1) % items.len()
                }
                Ok(Key::Enter | Key::Char(' ')) => break Some(sel),
                Ok(Key::Escape | Key::Char('q') | Key::CtrlC) | Err(_) => break None,
                Ok(_) => {}
            }
        };
        self.term.clear_last_lines(drawn)?;
        let mut s = String::new();
        match picked {
            Some(i) => self
                .theme
                .format_select_prompt_selection(&mut s, prompt, &items[i])?,
            None => s = self.cancelled_line(prompt),
        }
        self.line(&s)?;
        self.term.show_cursor()?;
        picked.ok_or_else(|| Cancelled.into())
    }

    /// A yes/no question; Enter takes the default.
    fn confirm(&self, prompt: &str, default: bool) -> anyhow::Result<bool> {
        use dialoguer::console::Key;
        use dialoguer::theme::Theme;
        let mut s = String::new();
        self.theme
            .format_confirm_prompt(&mut s, prompt, Some(default))?;
        self.term.write_str(&s)?;
        self.term.hide_cursor()?;
        self.term.flush()?;
        let answer = loop {
            match self.term.read_key_raw() {
                Ok(Key::Char('y' | 'Y')) => break Some(true),
                Ok(Key::Char('n' | 'N')) => break Some(false),
                Ok(Key::Enter) => break Some(default),
                Ok(Key::Escape | Key::Char('q') | Key::CtrlC) | Err(_) => break None,
                Ok(_) => {}
            }
        };
        self.term.clear_line()?;
        s.clear();
        match answer {
            Some(_) => self
                .theme
                .format_confirm_prompt_selection(&mut s, prompt, answer)?,
            None => s = self.cancelled_line(prompt),
        }
        self.term.write_line(&s)?;
        self.term.show_cursor()?;
        answer.ok_or_else(|| Cancelled.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(desc: &str, safety: Safety, check: CheckId) -> Step {
        Step {
            check,
            safety,
            action: Action::Quarantine {
                path: PathBuf::from(desc),
            },
            description: desc.into(),
        }
    }

    #[test]
    fn follow_ups_are_taken_only_when_safe_and_in_scope() {
        let sel = Selection {
            scope: Scope::Errors,
            approved: ["a".to_string()].into(),
            declined: ["b".to_string()].into(),
        };
        assert!(sel.accepts(&step("a", Safety::Disruptive, CheckId::SocketStale)));
        assert!(!sel.accepts(&step("b", Safety::Safe, CheckId::DaemonPidStale)));
        assert!(sel.accepts(&step("c", Safety::Safe, CheckId::DaemonPidStale)));
        assert!(!sel.accepts(&step("c", Safety::Safe, CheckId::PidfileStale)));
        assert!(!sel.accepts(&step("c", Safety::Disruptive, CheckId::ProcessOrphan)));
    }

    #[test]
    fn paths_are_quoted_only_when_needed() {
        assert_eq!(shell_quote(Path::new("/tmp/a-b/.pm2")), "/tmp/a-b/.pm2");
        assert_eq!(shell_quote(Path::new("/tmp/a b")), "'/tmp/a b'");
        assert_eq!(shell_quote(Path::new("/tmp/it's")), r"'/tmp/it'\''s'");
    }
}
