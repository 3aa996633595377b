//! The plain settings a run works from, built from the command line and the
//! environment once, so everything after this point is testable without clap.

use crate::cli::{ColorChoice, DiagnoseArgs, Format};
use crate::findings::CheckId;
use crate::home::{EnvMap, Platform, Pm2Paths};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    pub paths: Pm2Paths,
    pub timeout: Duration,
    /// `None` runs every check.
    pub only: Option<BTreeSet<CheckId>>,
    pub format: Format,
    pub verbose: bool,
    pub strict: bool,
    pub color: ColorChoice,
    pub pm2_bin: Option<PathBuf>,
    pub path_var: Option<String>,
    pub process_snapshot: Option<PathBuf>,
    pub platform: Platform,
    /// Logs larger than this many bytes are reported.
    pub log_limit: u64,
    /// Write the rendered result here (atomically) instead of stdout.
    pub output: Option<PathBuf>,
    /// An ecosystem file to lint with the diagnosis.
    pub ecosystem: Option<PathBuf>,
    /// When an app counts as crash-looping.
    pub loops: crate::apps::LoopThresholds,
    /// Other PM2 homes on this machine that share the home's daemon
    /// endpoints (Windows: every home uses the same pipes).
    pub other_homes: Vec<crate::platform::windows::OtherHome>,
}

/// The default size above which a log is reported (log.oversized).
pub const DEFAULT_LOG_LIMIT_MIB: u64 = 100;

impl Config {
    /// The settings every subcommand shares: where the home is and how
    /// long a probe may take. Diagnose-only knobs get their defaults.
    pub fn for_home(home: Option<&std::path::Path>, timeout: Duration, env: &EnvMap) -> Config {
        let platform = Platform::current();
        let paths = Pm2Paths::resolve(home, env, home_dir(platform, env), platform);
        Config {
            other_homes: other_homes(platform, &paths, env),
            paths,
            timeout,
            only: None,
            format: Format::Human,
            verbose: false,
            strict: false,
            color: ColorChoice::Auto,
            pm2_bin: None,
            path_var: env.get("PATH").cloned(),
            process_snapshot: None,
            platform,
            log_limit: DEFAULT_LOG_LIMIT_MIB * 1024 * 1024,
            output: None,
            ecosystem: None,
            loops: crate::apps::LoopThresholds::default(),
        }
    }

    pub fn from_args(args: &DiagnoseArgs, env: &EnvMap) -> Result<Config, String> {
        let only = if args.only.is_empty() {
            None
        } else {
            Some(
                args.only
                    .iter()
                    .flat_map(|s| s.split(','))
                    .map(|s| s.trim().parse::<CheckId>())
                    .collect::<Result<BTreeSet<_>, _>>()?,
            )
        };
        let platform = Platform::current();
        let paths = Pm2Paths::resolve(
            args.home.home.as_deref(),
            env,
            home_dir(platform, env),
            platform,
        );
        Ok(Config {
            other_homes: other_homes(platform, &paths, env),
            paths,
            timeout: args.timeout,
            only,
            format: args.format,
            verbose: args.verbose,
            strict: args.strict,
            color: args.color,
            pm2_bin: args.pm2.clone(),
            path_var: env.get("PATH").cloned(),
            process_snapshot: args.process_snapshot.clone(),
            platform,
            log_limit: args.log_size_limit.saturating_mul(1024 * 1024),
            output: args.output.clone(),
            ecosystem: args.ecosystem.clone(),
            loops: crate::apps::LoopThresholds {
                restarts: args.loop_restarts,
                per_minute: args.loop_rate,
                ..crate::apps::LoopThresholds::default()
            },
        })
    }

    pub fn selected(&self, id: CheckId) -> bool {
        self.only.as_ref().is_none_or(|s| s.contains(&id))
    }
}

/// On Windows, the other homes on disk whose daemons would answer on the
/// same pipes; elsewhere each home has its own sockets.
fn other_homes(
    platform: Platform,
    paths: &Pm2Paths,
    env: &EnvMap,
) -> Vec<crate::platform::windows::OtherHome> {
    match platform {
        Platform::Windows => crate::platform::windows::other_homes(
            &paths.home,
            env,
            dirs::home_dir().as_deref(),
            &|p| p.is_dir(),
        ),
        Platform::Unix => Vec::new(),
    }
}

/// os.homedir(): $HOME on Unix, %USERPROFILE% on Windows, even when empty
/// (then PM2 falls back to /etc/.pm2); only an unset variable goes to the
/// OS (the password database, the user's profile folder).
fn home_dir(platform: Platform, env: &EnvMap) -> Option<PathBuf> {
    let var = match platform {
        Platform::Unix => env.get("HOME").map(PathBuf::from),
        Platform::Windows => crate::platform::windows::node_homedir(env),
    };
    var.or_else(dirs::home_dir)
}
