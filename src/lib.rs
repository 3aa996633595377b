//! pm2-doctor: diagnose and repair a PM2 home without going through its daemon.
//!
//! Data flows one way: command line → [`config::Config`] → home and process
//! snapshots → [`checks`] produce [`findings::Finding`]s → [`report`]
//! renderers; for repair, findings → [`repair::plan`] → a journaled,
//! backed-up transaction → diagnose again.

pub mod apps;
pub mod bounded;
pub mod checks;
pub mod cli;
mod commands;
pub mod config;
pub mod diagnose;
pub mod dump;
pub mod findings;
pub mod home;
pub mod lint;
pub mod logs;
pub mod ownership;
pub mod platform;
pub mod pm2cli;
pub mod probe;
pub mod process;
pub mod redact;
pub mod repair;
pub mod report;
pub mod resurrect;
pub mod wizard;

/// Runs a parsed command line; returns the process exit code. Only `main`
/// exits.
pub fn run(cli: cli::Cli) -> anyhow::Result<i32> {
    commands::run(cli)
}
