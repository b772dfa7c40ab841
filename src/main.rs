//! `molt`: the command line. `molt run [CONFIG]` (the default, so a bare
//! `cargo run --release` starts a node on the built-in configuration),
//! `molt dev [CONFIG]`, `molt new NAME`, `molt config check FILE`, and the
//! commands for a running node (`molt status`, `molt call`, ...).
//!
//! Exit codes: 0 success, 1 the node failed (start or run), 2 bad usage or
//! an invalid configuration.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(args.json_logs);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("molt: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::dispatch(args))
}
