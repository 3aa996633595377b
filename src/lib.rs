//! pm2-doctor: diagnose and repair a PM2 home without going through its daemon.
//!
//! Data flows one way: command line → [`config::Config`] → home and process
//! snapshots → [`checks`] produce [`findings::Finding`]s → [`report`]
//! renderers.

pub mod checks;
pub mod cli;
pub mod config;
pub mod diagnose;
pub mod dump;
pub mod findings;
pub mod home;
pub mod ownership;
pub mod pm2cli;
pub mod probe;
pub mod process;
pub mod report;

use cli::{Cli, Command, Format, ListFormat};
use std::io::Write;

/// Runs a parsed command line; returns the process exit code. Only `main`
/// exits.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        None => {
            let mut err = anstream::stderr();
            let _ = writeln!(
                err,
                "pm2-doctor: try `pm2-doctor diagnose` (read-only) or `pm2-doctor --help`"
            );
            Ok(diagnose::exit::OK)
        }
        Some(Command::Checks(args)) => {
            list_checks(args.format)?;
            Ok(diagnose::exit::OK)
        }
        Some(Command::Diagnose(args)) => {
            let env = home::process_env();
            let cfg = match config::Config::from_args(&args, &env) {
                Ok(c) => c,
                Err(e) => {
                    let _ = writeln!(anstream::stderr(), "error: {e}");
                    return Ok(diagnose::exit::USAGE);
                }
            };
            let d = diagnose::run(&cfg)?;
            let code = d.exit_code(cfg.strict);
            write_diagnosis(&cfg, &d, code)?;
            Ok(code)
        }
    }
}

fn stdout_stream(color: cli::ColorChoice) -> anstream::AutoStream<std::io::Stdout> {
    let choice = match color {
        cli::ColorChoice::Auto => anstream::ColorChoice::Auto,
        cli::ColorChoice::Always => anstream::ColorChoice::Always,
        cli::ColorChoice::Never => anstream::ColorChoice::Never,
    };
    anstream::AutoStream::new(std::io::stdout(), choice)
}

fn write_diagnosis(cfg: &config::Config, d: &diagnose::Diagnosis, code: i32) -> anyhow::Result<()> {
    let mut out = stdout_stream(cfg.color);
    match cfg.format {
        Format::Human => report::human::render(&mut out, d, cfg.verbose)?,
        Format::Json => {
            // Serialised first so a closed pipe surfaces as an io::Error.
            let text = serde_json::to_string_pretty(&report::json::document(d, code))?;
            writeln!(out, "{text}")?;
        }
        Format::Prometheus => out.write_all(report::prometheus::render(d, code).as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

fn list_checks(format: ListFormat) -> anyhow::Result<()> {
    let mut out = stdout_stream(cli::ColorChoice::Auto);
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
            let text = serde_json::to_string_pretty(&list)?;
            writeln!(out, "{text}")?;
        }
        ListFormat::Human => {
            for c in findings::CheckId::ALL {
                writeln!(
                    out,
                    "{:<24} {:<8} {}",
                    c.as_str(),
                    c.severity(),
                    c.description()
                )?;
            }
        }
    }
    Ok(())
}
