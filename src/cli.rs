//! The command line, and nothing else: clap types are turned into a plain
//! [`Config`](crate::config::Config) before any work starts.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "pm2-doctor",
    version,
    about = "Diagnose and repair a broken PM2 home without hanging",
    long_about = "Diagnose and repair a broken PM2 home without hanging.\n\n\
        pm2-doctor reads the PM2 home and the OS process table directly. It never runs \
        the pm2 CLI to inspect, never spawns a daemon, and bounds every probe with a deadline.",
    after_help = "Exit codes are summed (fsck style): 0 healthy, 4 error-severity problems, \
        8 a check could not complete, 16 usage error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect a PM2 home read-only and explain every problem with evidence and a fix
    Diagnose(DiagnoseArgs),
    /// Fix what diagnose found: back up, then clean stale state and kill proven orphans
    Repair(RepairArgs),
    /// Put back every file a repair changed (killed processes cannot be brought back)
    Undo(UndoArgs),
    /// Bring the apps back from a validated dump or an ecosystem file, then watch them
    Resurrect(ResurrectArgs),
    /// A guided recovery on a terminal: diagnose, explain, fix with a backup, bring the apps back
    Wizard(WizardArgs),
    /// List the backups of past repairs, or prune old ones
    Backups(BackupsArgs),
    /// List every port the home's apps want and which process holds each
    Ports(PortsArgs),
    /// Check an ecosystem file (.js/.cjs/.mjs/.json/.yml) for crash-loop-prone settings
    Lint(LintArgs),
    /// List every check with its id, severity and a one-line description
    Checks(ChecksArgs),
    /// A Markdown bug report that works with the daemon dead or wedged (secrets redacted)
    Report(ReportArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print the man page (roff)
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub home: HomeArgs,

    /// Write the report to FILE (atomically) instead of stdout
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Deadline for the daemon probe, in seconds
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub timeout: std::time::Duration,

    /// Read the process table from a JSON snapshot instead of the OS
    #[arg(long, value_name = "FILE")]
    pub process_snapshot: Option<PathBuf>,

    /// Also lint this ecosystem file in the report (a .js/.cjs/.mjs file is
    /// evaluated with node, as PM2 does; .json/.yml found next to the apps
    /// are linted by default)
    #[arg(long, value_name = "FILE")]
    pub ecosystem: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Prometheus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct HomeArgs {
    /// PM2 home to inspect [default: $OVER_HOME, $PM2_HOME, then ~/.pm2, as PM2 resolves it]
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    #[command(flatten)]
    pub home: HomeArgs,

    /// Deadline for each daemon or socket probe, in seconds
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub timeout: std::time::Duration,

    /// Run only these checks (repeatable; see `pm2-doctor checks`)
    #[arg(long, value_name = "ID")]
    pub only: Vec<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Show the evidence behind every finding
    #[arg(short, long)]
    pub verbose: bool,

    /// Count warnings as errors in the exit code
    #[arg(long)]
    pub strict: bool,

    /// When to use colour (NO_COLOR is honoured in auto mode)
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// The pm2 CLI to compare versions with [default: the first pm2 on PATH]
    #[arg(long, value_name = "PATH")]
    pub pm2: Option<PathBuf>,

    /// Report logs larger than this many MiB
    #[arg(long, value_name = "MIB", default_value_t = 100)]
    pub log_size_limit: u64,

    /// An app restarted this many times counts as crash-looping (app.crash-loop)
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub loop_restarts: u64,

    /// An app starting this often (starts a minute, 5 or more in pm2.log's
    /// tail) counts as crash-looping
    #[arg(long, value_name = "PER_MIN", default_value_t = 1.0, value_parser = parse_rate)]
    pub loop_rate: f64,

    /// Read the process table from a JSON snapshot instead of the OS (replaying
    /// a captured incident, or a fixture)
    #[arg(long, value_name = "FILE")]
    pub process_snapshot: Option<PathBuf>,

    /// Also lint this ecosystem file (a .js/.cjs/.mjs file is evaluated with
    /// node, as PM2 does; .json/.yml found next to the apps are linted by default)
    #[arg(long, value_name = "FILE")]
    pub ecosystem: Option<PathBuf>,

    /// Write the result to FILE atomically (temp file, fsync, rename), so a
    /// reader such as node_exporter never sees half of it
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where repair runs are kept [default: $PM2_DOCTOR_BACKUP_DIR, else the platform data folder]
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").args(["dry_run", "safe_only", "yes"])))]
pub struct RepairArgs {
    #[command(flatten)]
    pub home: HomeArgs,

    #[command(flatten)]
    pub backup: BackupArgs,

    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Apply only safe actions, without asking (for cron, like fsck -p)
    #[arg(long)]
    pub safe_only: bool,

    /// Apply safe and disruptive actions without asking
    #[arg(short, long)]
    pub yes: bool,

    /// Seconds a process gets between SIGTERM and SIGKILL
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_secs)]
    pub grace: std::time::Duration,

    /// After repairing, bring the apps back (see `pm2-doctor resurrect`)
    #[arg(long)]
    pub resurrect: bool,

    #[command(flatten)]
    pub start: StartArgs,

    /// Deadline for each daemon or socket probe, in seconds
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub timeout: std::time::Duration,

    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,

    /// When to use colour
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// The pm2 CLI: its version is compared, and with --resurrect it is run [default: the first pm2 on PATH]
    #[arg(long, value_name = "PATH")]
    pub pm2: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Start from this ecosystem file (`pm2 start FILE`: fresh created_at values)
    #[arg(long, value_name = "FILE")]
    pub ecosystem: Option<PathBuf>,

    /// The dump to start from: `dump`, `backup:RUN_ID` or a file [default: the newest valid dump]
    #[arg(long, value_name = "SOURCE", conflicts_with = "ecosystem")]
    pub from: Option<String>,

    /// Seconds to watch the apps settle after starting them
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub watch: std::time::Duration,

    /// Deadline for each pm2 CLI call, in seconds
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub call_timeout: std::time::Duration,

    /// Drop created_at from the dump PM2 reads, so its restart guard works again
    #[arg(long)]
    pub rearm_guard: bool,

    /// Run `pm2 save` when every app is stable (the old dump is kept first)
    #[arg(long)]
    pub save: bool,
}

#[derive(Debug, Args)]
pub struct ResurrectArgs {
    #[command(flatten)]
    pub home: HomeArgs,

    #[command(flatten)]
    pub backup: BackupArgs,

    #[command(flatten)]
    pub start: StartArgs,

    /// The pm2 CLI to run [default: the first pm2 on PATH]
    #[arg(long, value_name = "PATH")]
    pub pm2: Option<PathBuf>,

    /// Deadline for each daemon or socket probe, in seconds
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub timeout: std::time::Duration,

    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct WizardArgs {
    #[command(flatten)]
    pub home: HomeArgs,

    #[command(flatten)]
    pub backup: BackupArgs,

    /// The pm2 CLI to run when bringing the apps back [default: the first pm2 on PATH]
    #[arg(long, value_name = "PATH")]
    pub pm2: Option<PathBuf>,

    /// Seconds a process gets between SIGTERM and SIGKILL
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_secs)]
    pub grace: std::time::Duration,

    /// Deadline for each daemon or socket probe, in seconds
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub timeout: std::time::Duration,

    /// Seconds to watch the apps settle after bringing them back
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub watch: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The run to undo [default: the latest run of this home]
    pub run_id: Option<String>,

    #[command(flatten)]
    pub home: HomeArgs,

    #[command(flatten)]
    pub backup: BackupArgs,

    /// Restore even files that changed after the run
    #[arg(long)]
    pub force: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct BackupsArgs {
    #[command(flatten)]
    pub home: HomeArgs,

    #[command(flatten)]
    pub backup: BackupArgs,

    /// Delete old runs, keeping the newest --keep
    #[arg(long, requires = "keep")]
    pub prune: bool,

    /// How many runs --prune keeps
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,

    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct PortsArgs {
    #[command(flatten)]
    pub home: HomeArgs,

    /// Deadline for the daemon probe, in seconds
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub timeout: std::time::Duration,

    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,

    /// Read the process table from a JSON snapshot instead of the OS
    #[arg(long, value_name = "FILE")]
    pub process_snapshot: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// The ecosystem file [default: ecosystem.config.{js,cjs,mjs,json,yml,yaml} in the current folder]
    pub file: Option<PathBuf>,

    /// Print the suggested changes as a diff (nothing is written)
    #[arg(long)]
    pub fix_preview: bool,

    /// Deadline for evaluating a JavaScript ecosystem file with node, in seconds
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub timeout: std::time::Duration,

    /// The node binary used to evaluate JavaScript ecosystem files [default: node on PATH]
    #[arg(long, value_name = "PATH")]
    pub node: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,

    /// When to use colour
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Args)]
pub struct ChecksArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
}

fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(0.05..=600.0).contains(&secs) {
        return Err("must be between 0.05 and 600 seconds".into());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Starts a minute: positive and finite.
fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of starts a minute"))?;
    if !(r.is_finite() && r > 0.0) {
        return Err("must be a positive number of starts a minute".into());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn log_limit_default_matches_config() {
        let cli = Cli::try_parse_from(["pm2-doctor", "diagnose"]).unwrap();
        let Some(Command::Diagnose(d)) = cli.command else {
            panic!()
        };
        assert_eq!(d.log_size_limit, crate::config::DEFAULT_LOG_LIMIT_MIB);
        let loops = crate::apps::LoopThresholds::default();
        assert_eq!(d.loop_restarts, loops.restarts);
        assert_eq!(d.loop_rate, loops.per_minute);
    }

    #[test]
    fn loop_thresholds_must_be_positive() {
        for bad in [
            ["--loop-restarts", "0"],
            ["--loop-rate", "0"],
            ["--loop-rate", "-1"],
            ["--loop-rate", "nan"],
            ["--loop-rate", "inf"],
        ] {
            let r = Cli::try_parse_from(["pm2-doctor", "diagnose", bad[0], bad[1]]);
            assert!(r.is_err(), "{bad:?} accepted");
        }
        assert!(Cli::try_parse_from(["pm2-doctor", "diagnose", "--loop-rate", "0.5"]).is_ok());
    }

    #[test]
    fn timeout_bounds() {
        assert!(parse_secs("2").is_ok());
        assert!(parse_secs("0.5").is_ok());
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("nan").is_err());
        assert!(parse_secs("1e9").is_err());
    }
}
