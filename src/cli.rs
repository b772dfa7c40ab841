//! The `molt` command line: argument parsing and dispatch.

mod config_check;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// molt: an actor runtime with hot code swapping.
///
/// Without a subcommand, `molt` runs a node on the built-in configuration
/// (the example modules kv and counter, built first if missing).
#[derive(Debug, Parser)]
#[command(name = "molt", version, about, long_about = None)]
pub struct Cli {
    /// Log lines as JSON objects (filter with RUST_LOG, default "info").
    #[arg(long, global = true)]
    pub json_logs: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (the default). Watches the library directories and the
    /// config file, and reloads what changes.
    Run {
        /// The config file (TOML); default: the built-in configuration.
        config: Option<PathBuf>,
    },
    /// Run a node in dev mode: watch each module crate's sources, rebuild
    /// the crate on save and reload it (a compile error keeps the old code).
    Dev {
        /// The config file (TOML); default: the built-in configuration.
        config: Option<PathBuf>,
    },
    /// Work with config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// `molt config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and print what applying it would do (a dry
    /// run: nothing is started or changed). Exit 0 when it would apply, 2
    /// when it is invalid or would be rejected.
    Check {
        /// The config file to check.
        file: PathBuf,
        /// The running configuration to compare against (a config file);
        /// default: the built-in configuration.
        #[arg(long)]
        against: Option<PathBuf>,
    },
}

/// Sets up `tracing` with an env filter (`RUST_LOG`, default `info`).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs the command.
pub async fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        None => run::run(None, false).await,
        Some(Command::Run { config }) => run::run(config, false).await,
        Some(Command::Dev { config }) => run::run(config, true).await,
        Some(Command::Config {
            command: ConfigCommand::Check { file, against },
        }) => config_check::check(&file, against.as_deref()),
    }
}
