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
            let _ = writeln!(
                anstream::stderr(),
                "pm2-doctor: try `pm2-doctor diagnose` (read-only) or `pm2-doctor --help`"
            );
            Ok(exit::OK)
        }
        Some(Command::Checks(args)) => {
            list_checks(args.format)?;
            Ok(exit::OK)
        }
        Some(Command::Diagnose(args)) => diagnose_cmd(&args),
        Some(Command::Repair(args)) => repair_cmd(&args),
        Some(Command::Undo(args)) => undo_cmd(&args),
        Some(Command::Backups(args)) => backups_cmd(&args),
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
    flag.cloned().or_else(|| {
        repair::backup::default_base(env.get("PM2_DOCTOR_BACKUP_DIR").map(String::as_str))
    })
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
            let _ = writeln!(anstream::stderr(), "pm2-doctor: repair refused: {e:#}");
            return Ok(repair::exit::OPERATIONAL);
        }
    };
    match args.format {
        ListFormat::Human => {
            let mut out = stdout_stream(args.color);
            report::repair::render(&mut out, &rep)?;
            out.flush()?;
        }
        ListFormat::Json => print_json(&report::repair::document(&rep))?,
    }
    Ok(rep.exit_code)
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
    let rep = repair::undo::undo(&run_dir, args.force)?;
    let code = if rep.refused {
        repair::exit::LEFT_UNFIXED
    } else {
        exit::OK
    };
    match args.format {
        ListFormat::Human => {
            let mut out = stdout_stream(cli::ColorChoice::Auto);
            report::repair::render_undo(&mut out, &rep)?;
        }
        ListFormat::Json => print_json(&serde_json::to_value(&rep)?)?,
    }
    Ok(code)
}

fn backups_cmd(args: &cli::BackupsArgs) -> anyhow::Result<i32> {
    let (cfg, dir) = match runs_home(args.home.home.as_deref(), &args.backup) {
        Ok(x) => x,
        Err(e) => return usage(e),
    };
    let removed = match (args.prune, args.keep) {
        (true, Some(keep)) => repair::undo::prune(&dir, keep)?,
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
                    r.run_id, r.started_at, r.state, r.actions_done, r.actions, r.files, r.bytes
                )?;
            }
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
            print_json(&serde_json::Value::Array(list))
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
