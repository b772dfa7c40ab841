//! The `molt` command line: argument parsing and dispatch.

mod cluster_status;
mod config_check;
mod message;
mod new;
mod remote;
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
    /// Create a module: a cargo workspace in a new folder (default
    /// ./NAME) with the module crate (a cdylib), its protocol crate, a
    /// molt.toml that runs it and a README. Then `cargo build` and
    /// `molt dev molt.toml` in it.
    New {
        /// The module's name (also its package name): ASCII letters, digits,
        /// '-' and '_', starting with a letter.
        name: String,
        /// The folder to create (it must not exist, or be empty).
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// Take molt-abi from this git repository of molt instead of the
        /// checkout this molt was built from (a path dependency).
        #[arg(long, value_name = "URL")]
        molt_git: Option<String>,
    },
    /// Work with config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show a running node's modules, versions, instances and mailboxes
    /// (with --cluster: its cluster's members, their reachability and each
    /// one's module versions). With a module NAME: that module, with its
    /// handling figures (error rate, p99 latency) for the serving version
    /// and the one it replaced.
    Status {
        /// Show only this module, with its handling figures.
        #[arg(conflicts_with = "cluster")]
        name: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
        /// Print the JSON the node answers.
        #[arg(long)]
        json: bool,
        /// Show the cluster as the node sees it instead (`GET /cluster`).
        #[arg(long)]
        cluster: bool,
    },
    /// Reload a module of a running node, showing the phases as they
    /// happen. Exits 1 when the reload failed (the old code keeps serving).
    Reload {
        /// The module.
        name: String,
        /// The library to load (default: the module's configured library).
        #[arg(long)]
        library: Option<PathBuf>,
        /// Force it: where the old code cannot hand over its state (its
        /// snapshot or stop fails or hangs, or it is hung in a handler),
        /// start the new code from the newest checkpoint, replacing hung
        /// instances; the messages stuck behind a hang are reported.
        #[arg(long)]
        force: bool,
        /// Rehearse it instead (nothing changes): load the library, migrate
        /// and verify a copy of each instance's state in it, and print what
        /// the reload would do (versions, each instance's result, state
        /// sizes, the expected pause). Exits 1 when it would not commit.
        #[arg(long, conflicts_with = "force")]
        dry_run: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Roll a module of a running node back to its previous library (or
    /// with --to to an older kept version), with the library path and config
    /// it ran with. Exits 1 when refused or failed.
    Rollback {
        /// The module.
        name: String,
        /// The kept code version to return to, in one swap (`molt status`
        /// lists the kept versions); default: the previous one.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Start the previous library with a fresh state (when the current
        /// code cannot down-migrate its state).
        #[arg(long)]
        reset_state: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Show a running node's reload history.
    History {
        #[command(flatten)]
        node: NodeArgs,
        /// Print the JSON the node answers.
        #[arg(long)]
        json: bool,
    },
    /// Send a message to a module of a running node and print its reply as
    /// JSON, e.g. `molt call kv '{"Put": {"key": "a", "value": "1"}}'`.
    /// Exits 1 when the module could not decode it (the error names what
    /// it expected), its handler failed, or no reply came in time.
    Call(MessageArgs),
    /// Queue a message for a module of a running node without waiting for
    /// its handling (a message the module cannot decode is counted as
    /// failed in `molt status`).
    Cast(MessageArgs),
    /// Follow a running node's events (Ctrl-C stops); a node that is not
    /// up yet is waited for (--wait).
    Events {
        #[command(flatten)]
        node: NodeArgs,
        /// Print each event as its JSON object.
        #[arg(long)]
        json: bool,
        /// How long to wait for a node that does not answer yet (one that
        /// is starting), in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        wait: u64,
    },
}

/// Where the remote commands look for a node's HTTP admin by default.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:7878";

/// Where the running node's HTTP admin is, and the token for changes.
/// A message for `molt call` / `molt cast`.
#[derive(Debug, clap::Args)]
pub struct MessageArgs {
    /// The module.
    module: String,
    /// The message as JSON: `{"Variant": {fields}}`, or `"Variant"` for a
    /// variant without fields.
    message: String,
    /// The instance to send to (modulo the instance count); default: round
    /// robin.
    #[arg(long, conflicts_with = "key")]
    instance: Option<usize>,
    /// The key of a keyed module's actor to send to (activated if it is not
    /// live).
    #[arg(long)]
    key: Option<String>,
    #[command(flatten)]
    node: NodeArgs,
}

impl MessageArgs {
    /// Where the message goes: `--key`, `--instance`, or round robin.
    fn route(&self) -> molt::http::Route {
        match (&self.key, self.instance) {
            (Some(key), _) => molt::http::Route::Key(key.clone()),
            (None, i) => i.into(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The node's admin address.
    #[arg(long, env = "MOLT_ADMIN_ADDR", default_value = DEFAULT_ADMIN_ADDR)]
    pub addr: std::net::SocketAddr,
    /// The bearer token for changes (default: MOLT_ADMIN_TOKEN, else the
    /// token a local node generated for its run).
    #[arg(long, env = "MOLT_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `molt config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and its modules (each library exists and is
    /// that molt module, and the module decodes its config table: a wrong
    /// key or type is named; nothing is started); with --against or --node,
    /// also print what
    /// applying it over that configuration would do (a dry run: nothing is
    /// started or changed). Exit 0 when valid (and, compared, when it would
    /// apply), 2 when it is invalid or would be rejected.
    Check {
        /// The config file to check.
        file: PathBuf,
        /// Also compare against this configuration (a config file): what
        /// applying FILE over it would do.
        #[arg(long, conflicts_with = "node")]
        against: Option<PathBuf>,
        /// Compare against the running node at this admin address instead.
        #[arg(long)]
        node: Option<std::net::SocketAddr>,
    },
}

/// Sets up `tracing` with an env filter (`RUST_LOG`, default `info`, with
/// ractor_cluster's own lines at `error`: it logs every connection attempt,
/// and molt says what matters under `molt::cluster`), on stderr; colour
/// codes only when stderr is a terminal (a log sent to a file or a pipe
/// stays plain text).
pub fn init_tracing(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ractor_cluster=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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
        Some(Command::New {
            name,
            path,
            molt_git,
        }) => new::run(&name, path, molt_git),
        Some(Command::Config {
            command:
                ConfigCommand::Check {
                    file,
                    against,
                    node,
                },
        }) => match node {
            Some(addr) => match config_check::validate(&file).await {
                Ok(_) => remote::config_check(addr, &file).await,
                Err(code) => code,
            },
            None => config_check::check(&file, against.as_deref()).await,
        },
        Some(Command::Status {
            node,
            json,
            cluster: true,
            ..
        }) => cluster_status::show(&node, json).await,
        Some(Command::Status {
            node,
            json,
            name: Some(name),
            ..
        }) => remote::module_status(&node, &name, json).await,
        Some(Command::Status { node, json, .. }) => remote::status(&node, json).await,
        Some(Command::Reload {
            name,
            library,
            // clap refuses --force with --dry-run.
            force: _,
            dry_run: true,
            node,
        }) => remote::rehearse(&node, &name, library).await,
        Some(Command::Reload {
            name,
            library,
            force,
            dry_run: false,
            node,
        }) => remote::reload(&node, &name, library, force).await,
        Some(Command::Rollback {
            name,
            to,
            reset_state,
            node,
        }) => remote::rollback(&node, &name, to, reset_state).await,
        Some(Command::History { node, json }) => remote::history(&node, json).await,
        Some(Command::Events { node, json, wait }) => {
            remote::events(&node, json, std::time::Duration::from_secs(wait)).await
        }
        Some(Command::Call(m)) => message::call(&m.node, &m.module, &m.message, m.route()).await,
        Some(Command::Cast(m)) => message::cast(&m.node, &m.module, &m.message, m.route()).await,
    }
}
