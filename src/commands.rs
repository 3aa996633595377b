//! One function per subcommand: turn arguments into a `Config`, call the
//! library, hand the result to a renderer, return the exit code.

use crate::cli::{self, Cli, Command, Format, ListFormat};
use crate::config::Config;
use crate::diagnose::{self, exit};
use crate::repair::{self, Mode, RepairOptions};
use crate::{findings, home, report};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        None => {
            let hint = if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                "pm2-doctor: for a guided recovery run `pm2-doctor wizard`; \
                 `pm2-doctor diagnose` only reads; `pm2-doctor --help` lists everything"
            } else {
                "pm2-doctor: try `pm2-doctor diagnose` (read-only) or `pm2-doctor --help`"
            };
            let _ = writeln!(anstream::stderr(), "{hint}");
            Ok(exit::OK)
        }
        Some(Command::Checks(args)) => {
            list_checks(args.format)?;
            Ok(exit::OK)
        }
        Some(Command::Diagnose(args)) => diagnose_cmd(&args),
        Some(Command::Repair(args)) => repair_cmd(&args),
        Some(Command::Undo(args)) => undo_cmd(&args),
        Some(Command::Resurrect(args)) => resurrect_cmd(&args),
        Some(Command::Wizard(args)) => crate::wizard::run_cli(&args),
        Some(Command::Backups(args)) => backups_cmd(&args),
        Some(Command::Lint(args)) => crate::lint::run_cli(&args),
        Some(Command::Ports(args)) => ports_cmd(&args),
        Some(Command::Report(args)) => report_cmd(&args),
        Some(Command::Completions(args)) => {
            let shell = match args.shell {
                cli::Shell::Bash => clap_complete::Shell::Bash,
                cli::Shell::Zsh => clap_complete::Shell::Zsh,
                cli::Shell::Fish => clap_complete::Shell::Fish,
                cli::Shell::Powershell => clap_complete::Shell::PowerShell,
                cli::Shell::Elvish => clap_complete::Shell::Elvish,
            };
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "pm2-doctor", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Some(Command::Man) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            std::io::stdout().write_all(&buf)?;
            Ok(exit::OK)
        }
    }
}

fn usage(msg: impl std::fmt::Display) -> anyhow::Result<i32> {
    let _ = writeln!(anstream::stderr(), "error: {msg}");
    Ok(exit::USAGE)
}

pub fn stdout_stream(color: cli::ColorChoice) -> anstream::AutoStream<std::io::Stdout> {
    let choice = match color {
        cli::ColorChoice::Auto => anstream::ColorChoice::Auto,
        cli::ColorChoice::Always => anstream::ColorChoice::Always,
        cli::ColorChoice::Never => anstream::ColorChoice::Never,
    };
    anstream::AutoStream::new(std::io::stdout(), choice)
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    // Serialised first so a closed pipe surfaces as an io::Error.
    let text = serde_json::to_string_pretty(v)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

fn diagnose_cmd(args: &cli::DiagnoseArgs) -> anyhow::Result<i32> {
    let env = home::process_env();
    let cfg = match Config::from_args(args, &env) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let d = diagnose::run(&cfg)?;
    let code = d.exit_code(cfg.strict);
    if let Some(path) = &cfg.output {
        let bytes = match cfg.format {
            Format::Human => {
                let mut buf = anstream::StripStream::new(Vec::new());
                report::human::render(&mut buf, &d, cfg.verbose)?;
                buf.into_inner()
            }
            Format::Json => {
                let mut v = serde_json::to_vec_pretty(&report::json::document(&d, code))?;
                v.push(b'\n');
                v
            }
            Format::Prometheus => report::prometheus::render(&d, code).into_bytes(),
        };
        repair::journal::write_atomic(path, &bytes, Some(0o644))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        return Ok(code);
    }
    match cfg.format {
        Format::Human => {
            let mut out = stdout_stream(cfg.color);
            report::human::render(&mut out, &d, cfg.verbose)?;
            out.flush()?;
        }
        Format::Json => print_json(&report::json::document(&d, code))?,
        Format::Prometheus => {
            let mut out = std::io::stdout().lock();
            out.write_all(report::prometheus::render(&d, code).as_bytes())?;
            out.flush()?;
        }
    }
    Ok(code)
}

fn backup_base(flag: Option<&PathBuf>, env: &home::EnvMap) -> Option<PathBuf> {
    repair::backup::base_for(flag, env)
}

fn repair_cmd(args: &cli::RepairArgs) -> anyhow::Result<i32> {
    let env = home::process_env();
    let mut cfg = Config::for_home(args.home.home.as_deref(), args.timeout, &env);
    cfg.pm2_bin = args.pm2.clone();
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let mode = if args.dry_run {
        Mode::DryRun
    } else if args.safe_only {
        Mode::SafeOnly
    } else if args.yes {
        Mode::Yes
    } else if interactive {
        Mode::Ask
    } else {
        return usage(
            "repair needs a terminal to ask for confirmation; pass --dry-run to see the plan, \
             --safe-only to apply only safe fixes, or --yes to apply safe and disruptive fixes",
        );
    };
    let Some(base) = backup_base(args.backup.backup_dir.as_ref(), &env) else {
        return usage(repair::RepairError::NoBackupBase);
    };
    let opts = RepairOptions {
        mode,
        grace: args.grace,
        backup_base: base,
    };
    let mut control = repair::system_control()?;
    let mut confirm = |plan: &repair::plan::Plan, run_dir: &std::path::Path| {
        let mut err = anstream::stderr();
        let _ = report::repair::render_plan(&mut err, plan, Some(run_dir));
        dialoguer::Confirm::new()
            .with_prompt(format!("Apply these {} actions?", plan.steps.len()))
            .default(false)
            .interact()
            .unwrap_or(false)
    };
    let bar = indicatif::ProgressBar::new_spinner();
    let mut progress = |alive: usize| {
        if alive > 0 {
            bar.set_message(format!("waiting for {alive} process(es) to exit"));
            bar.tick();
        }
    };
    let mut io = repair::Io {
        control: &mut control,
        confirm: &mut confirm,
        progress: &mut progress,
    };
    let result = repair::run(&cfg, &opts, &mut io);
    bar.finish_and_clear();
    let rep = match result {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("{e:#}");
            let _ = writeln!(anstream::stderr(), "pm2-doctor: repair failed: {msg}");
            if args.format == ListFormat::Json {
                print_json(&serde_json::json!({
                    "schema_version": 1,
                    "home": cfg.paths.home,
                    "error": msg,
                    "exit_code": repair::exit::OPERATIONAL,
                }))?;
            }
            return Ok(repair::exit::OPERATIONAL);
        }
    };
    // Whether the home is ready to start the apps is the resurrect
    // pre-flight's call: findings about the past (a crash loop's restart
    // count) must not block it, blocking ones (an orphan left) do.
    let wants_start =
        args.resurrect && rep.mode != Mode::DryRun && rep.exit_code != repair::exit::CANCELLED;
    let started = wants_start.then(|| {
        let o = start_options(
            &args.start,
            args.pm2.clone(),
            Some(opts.backup_base.clone()),
        );
        start_apps(&cfg, &o)
    });
    let mut code = rep.exit_code;
    if let Some(s) = &started {
        code |= s.exit_code();
        // The apps came back and stay up: what repair's own re-diagnosis
        // still saw of their crash loop (taken right after the port was
        // freed) is history now.
        if let Ok(o) = s {
            if o.exit_code == 0 && only_loop_history_left(&rep, o) {
                code &= !repair::exit::LEFT_UNFIXED;
            }
        }
    }
    match args.format {
        ListFormat::Human => {
            let mut out = stdout_stream(args.color);
            report::repair::render(&mut out, &rep)?;
            if let Some(s) = &started {
                render_started(&mut out, s)?;
            }
            out.flush()?;
        }
        ListFormat::Json => {
            let mut doc = report::repair::document(&rep);
            if let Some(s) = &started {
                doc["resurrect"] = started_document(s);
            }
            doc["exit_code"] = code.into();
            print_json(&doc)?;
        }
    }
    Ok(code)
}

/// Error findings left after repair are only the crash loops (and their
/// port conflicts) of apps that resurrect then watched stay up.
fn only_loop_history_left(rep: &repair::RepairReport, o: &crate::resurrect::Outcome) -> bool {
    use crate::findings::{CheckId, Severity};
    let stable: Vec<&str> = o
        .apps
        .iter()
        .filter(|a| a.stable)
        .map(|a| a.app.rsplit_once(':').map_or(a.app.as_str(), |(n, _)| n))
        .collect();
    // Without an after-diagnosis (repair had nothing to do) the one before
    // stands for it.
    Some(rep.after.as_ref().unwrap_or(&rep.before)).is_some_and(|d| {
        d.verdict
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .all(|f| {
                matches!(f.check, CheckId::AppCrashLoop | CheckId::AppPortConflict)
                    && f.evidence
                        .get("app")
                        .and_then(|v| v.as_str())
                        .is_some_and(|a| stable.contains(&a))
            })
    })
}

/// A resurrect that ran, or why it was refused before starting anything.
type Started = Result<crate::resurrect::Outcome, String>;

trait StartedExt {
    fn exit_code(&self) -> i32;
}

impl StartedExt for Started {
    fn exit_code(&self) -> i32 {
        match self {
            Ok(o) => o.exit_code,
            Err(_) => repair::exit::LEFT_UNFIXED,
        }
    }
}

fn start_apps(cfg: &Config, opts: &crate::resurrect::Options) -> Started {
    let (source, why) = crate::resurrect::choose(cfg, opts).map_err(|e| e.to_string())?;
    crate::resurrect::run(cfg, opts, source, why).map_err(|e| format!("{e:#}"))
}

fn render_started(out: &mut dyn Write, s: &Started) -> std::io::Result<()> {
    match s {
        Ok(o) => report::resurrect::render(out, o),
        Err(why) => writeln!(out, "resurrect refused: {why}"),
    }
}

fn started_document(s: &Started) -> serde_json::Value {
    match s {
        Ok(o) => report::resurrect::document(o),
        Err(why) => serde_json::json!({
            "schema_version": 1,
            "refused": why,
            "exit_code": repair::exit::LEFT_UNFIXED,
        }),
    }
}

fn start_options(
    start: &cli::StartArgs,
    pm2: Option<PathBuf>,
    backup_base: Option<PathBuf>,
) -> crate::resurrect::Options {
    crate::resurrect::Options {
        from: start.from.clone(),
        ecosystem: start.ecosystem.clone(),
        pm2,
        watch: start.watch,
        call_timeout: start.call_timeout,
        rearm_guard: start.rearm_guard,
        save: start.save,
        backup_base,
    }
}

/// Chooses the source and starts the apps; renders the outcome.
fn bring_back(
    cfg: &Config,
    opts: &crate::resurrect::Options,
    format: ListFormat,
) -> anyhow::Result<i32> {
    let started = start_apps(cfg, opts);
    if let Err(why) = &started {
        let _ = writeln!(anstream::stderr(), "pm2-doctor: resurrect refused: {why}");
    }
    match format {
        ListFormat::Human => {
            if let Ok(o) = &started {
                let mut out = stdout_stream(cli::ColorChoice::Auto);
                report::resurrect::render(&mut out, o)?;
            }
        }
        ListFormat::Json => print_json(&started_document(&started))?,
    }
    Ok(started.exit_code())
}

fn resurrect_cmd(args: &cli::ResurrectArgs) -> anyhow::Result<i32> {
    let env = home::process_env();
    let mut cfg = Config::for_home(args.home.home.as_deref(), args.timeout, &env);
    cfg.pm2_bin = args.pm2.clone();
    let opts = start_options(
        &args.start,
        args.pm2.clone(),
        backup_base(args.backup.backup_dir.as_ref(), &env),
    );
    bring_back(&cfg, &opts, args.format)
}

fn runs_home(
    home_flag: Option<&std::path::Path>,
    backup: &cli::BackupArgs,
) -> Result<(Config, PathBuf), String> {
    let env = home::process_env();
    let cfg = Config::for_home(home_flag, std::time::Duration::from_secs(2), &env);
    let base = backup_base(backup.backup_dir.as_ref(), &env)
        .ok_or_else(|| repair::RepairError::NoBackupBase.to_string())?;
    let dir = repair::backup::home_dir_for(&base, &cfg.paths.home);
    Ok((cfg, dir))
}

fn undo_cmd(args: &cli::UndoArgs) -> anyhow::Result<i32> {
    let (cfg, dir) = match runs_home(args.home.home.as_deref(), &args.backup) {
        Ok(x) => x,
        Err(e) => return usage(e),
    };
    let runs = repair::undo::list_runs(&dir);
    let run_dir = match &args.run_id {
        Some(id) => {
            let d = dir.join("runs").join(id);
            if !runs.contains(&d) {
                return usage(format!(
                    "no run {id} for the home {} (see `pm2-doctor backups`)",
                    cfg.paths.home.display()
                ));
            }
            d
        }
        None => match runs.last() {
            Some(d) => d.clone(),
            None => {
                return usage(format!(
                    "no repair runs recorded for the home {}",
                    cfg.paths.home.display()
                ))
            }
        },
    };
    // Undo must not race a repair of the same home.
    let mut ctl = repair::system_control()?;
    let _lock = match repair::lock::acquire(&dir, "undo", &mut ctl) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(anstream::stderr(), "pm2-doctor: {e}");
            return Ok(exit::INCOMPLETE);
        }
    };
    if let Some(note) = &_lock.took_over {
        let _ = writeln!(
            anstream::stderr(),
            "pm2-doctor: took over a stale lock: {note}"
        );
    }
    let rep = repair::undo::undo(&run_dir, args.force)?;
    let code = if rep.refused {
        repair::exit::LEFT_UNFIXED
    } else if !rep.errors.is_empty() {
        exit::INCOMPLETE
    } else {
        exit::OK
    };
    match args.format {
        ListFormat::Human => {
            let mut out = stdout_stream(cli::ColorChoice::Auto);
            report::repair::render_undo(&mut out, &rep)?;
        }
        ListFormat::Json => {
            let mut doc = serde_json::to_value(&rep)?;
            doc["schema_version"] = 1.into();
            doc["home"] = serde_json::to_value(&cfg.paths.home)?;
            doc["exit_code"] = code.into();
            print_json(&doc)?
        }
    }
    Ok(code)
}

fn backups_cmd(args: &cli::BackupsArgs) -> anyhow::Result<i32> {
    let (cfg, dir) = match runs_home(args.home.home.as_deref(), &args.backup) {
        Ok(x) => x,
        Err(e) => return usage(e),
    };
    let removed = match (args.prune, args.keep) {
        (true, Some(keep)) => {
            let mut ctl = repair::system_control()?;
            let _lock = match repair::lock::acquire(&dir, "backups --prune", &mut ctl) {
                Ok(l) => l,
                Err(e) => {
                    let _ = writeln!(anstream::stderr(), "pm2-doctor: {e}");
                    return Ok(exit::INCOMPLETE);
                }
            };
            repair::undo::prune(&dir, keep)?
        }
        _ => Vec::new(),
    };
    let runs = repair::undo::summaries(&dir);
    match args.format {
        ListFormat::Json => print_json(&serde_json::json!({
            "schema_version": 1,
            "home": cfg.paths.home,
            "backup_dir": dir,
            "runs": runs,
            "pruned": removed,
        }))?,
        ListFormat::Human => {
            let mut out = stdout_stream(cli::ColorChoice::Auto);
            writeln!(
                out,
                "repairs of {} (kept in {})",
                cfg.paths.home.display(),
                dir.display()
            )?;
            for p in &removed {
                writeln!(out, "pruned {}", p.display())?;
            }
            if runs.is_empty() {
                writeln!(out, "no runs")?;
            }
            for r in &runs {
                writeln!(
                    out,
                    "{}  {}  {:<10} {}/{} actions done, {} files, {} bytes",
                    r.run_id,
                    r.started_at.as_deref().unwrap_or("?"),
                    r.state,
                    r.actions_done,
                    r.actions,
                    r.files,
                    r.bytes
                )?;
                if let Some(e) = &r.error {
                    writeln!(out, "    {e}")?;
                }
            }
        }
    }
    Ok(exit::OK)
}

fn ports_cmd(args: &cli::PortsArgs) -> anyhow::Result<i32> {
    let env = home::process_env();
    let mut cfg = Config::for_home(args.home.home.as_deref(), args.timeout, &env);
    cfg.process_snapshot = args.process_snapshot.clone();
    let g = diagnose::gather(&cfg)?;
    let wanted = crate::apps::wanted_ports(&g.apps, &g.logs);
    let mut ports: Vec<u16> = wanted.iter().map(|w| w.port).collect();
    ports.sort_unstable();
    ports.dedup();
    let holders = diagnose::listeners_of(&cfg, &g.procs, &ports);
    let reported: std::collections::HashSet<u32> = g.apps.iter().filter_map(|a| a.pid).collect();
    let rows: Vec<serde_json::Value> = wanted
        .iter()
        .map(|w| {
            let app_pid = g
                .apps
                .iter()
                .find(|a| a.label() == w.app)
                .and_then(|a| a.pid);
            let hs: Vec<serde_json::Value> = holders
                .get(&w.port)
                .into_iter()
                .flatten()
                .filter_map(|pid| g.procs.get(*pid))
                .map(|p| {
                    let kind = if Some(p.pid) == app_pid {
                        "the app itself"
                    } else if g.membership.daemons.contains(&p.pid) {
                        "this home's daemon"
                    } else if let Some(m) = g.membership.members.get(&p.pid) {
                        if m.managed_by.is_none() && !reported.contains(&p.pid) {
                            "an orphan of this home"
                        } else {
                            "another app of this home"
                        }
                    } else {
                        "not this home's"
                    };
                    serde_json::json!({
                        "pid": p.pid,
                        "start_time": crate::checks::iso(p.start_time),
                        "cmdline": p.cmdline(),
                        "kind": kind,
                    })
                })
                .collect();
            serde_json::json!({"app": w.app, "port": w.port, "source": w.source, "holders": hs})
        })
        .collect();
    match args.format {
        ListFormat::Json => print_json(&serde_json::json!({
            "schema_version": 1,
            "home": cfg.paths.home,
            "ports": rows,
        }))?,
        ListFormat::Human => {
            let mut out = stdout_stream(cli::ColorChoice::Auto);
            writeln!(
                out,
                "ports wanted by the apps of {}",
                cfg.paths.home.display()
            )?;
            if rows.is_empty() {
                writeln!(
                    out,
                    "no app names a port (PORT-like env keys or address-in-use errors)"
                )?;
            }
            for r in &rows {
                let holders = r["holders"].as_array().cloned().unwrap_or_default();
                let who = if holders.is_empty() {
                    "free (nobody listens)".to_string()
                } else {
                    holders
                        .iter()
                        .map(|h| {
                            format!(
                                "pid {} {} ({})",
                                h["pid"],
                                h["kind"].as_str().unwrap_or(""),
                                h["cmdline"].as_str().unwrap_or("")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                writeln!(
                    out,
                    "{:>5}  {:<24} {:<14} {who}",
                    r["port"],
                    r["app"].as_str().unwrap_or(""),
                    r["source"].as_str().unwrap_or("")
                )?;
            }
        }
    }
    Ok(exit::OK)
}

fn report_cmd(args: &cli::ReportArgs) -> anyhow::Result<i32> {
    let env = home::process_env();
    let mut cfg = Config::for_home(args.home.home.as_deref(), args.timeout, &env);
    cfg.process_snapshot = args.process_snapshot.clone();
    cfg.ecosystem = args.ecosystem.clone();
    let clock = std::time::Instant::now();
    let started = chrono::Utc::now();
    let g = diagnose::gather(&cfg)?;
    let d = diagnose::evaluate(&cfg, &g, started, clock);
    let mut node = std::process::Command::new("node");
    node.arg("--version");
    let versions = report::bundle::Versions {
        node: crate::bounded::run(node, std::time::Duration::from_secs(2))
            .ok()
            .filter(|o| o.status == Some(0))
            .map(|o| o.stdout.trim().to_string()),
        os: sysinfo::System::long_os_version().ok().map(|os| {
            let kernel = sysinfo::System::kernel_version().unwrap_or_default();
            format!("{os} (kernel {kernel})")
        }),
    };
    let text = report::bundle::render(&g, &d, &versions);
    match &args.output {
        Some(p) => {
            repair::journal::write_atomic(p, text.as_bytes(), Some(0o600))
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
            let _ = writeln!(anstream::stderr(), "report written to {}", p.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(exit::OK)
}

fn list_checks(format: ListFormat) -> anyhow::Result<()> {
    match format {
        ListFormat::Json => {
            let list: Vec<serde_json::Value> = findings::CheckId::ALL
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "id": c,
                        "severity": c.severity(),
                        "description": c.description(),
                    })
                })
                .collect();
            print_json(&serde_json::json!({"schema_version": 1, "checks": list}))
        }
        ListFormat::Human => {
            let mut out = stdout_stream(cli::ColorChoice::Auto);
            for c in findings::CheckId::ALL {
                writeln!(
                    out,
                    "{:<24} {:<8} {}",
                    c.as_str(),
                    c.severity(),
                    c.description()
                )?;
            }
            Ok(())
        }
    }
}
