//! `molt`: runs a node on the built-in default configuration (the example
//! modules `kv` and `counter`), building any missing module library first.
//!
//! The full CLI (config files, `dev`, `status`, `reload`, ...) is the
//! change-detection issue's work; until then this binary runs the default
//! node, and `cargo run --release --example live_swap` shows a hot swap.

use std::process::ExitCode;

use molt::cargo_build::{build, BuildRequest};
use molt::{ModuleSpec, Node, NodeConfig};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Some(arg) = std::env::args().nth(1) {
        eprintln!(
            "molt: unknown argument {arg:?}; this build only runs the default node (no arguments)"
        );
        return ExitCode::from(2);
    }
    let release = !cfg!(debug_assertions);
    let root = molt::workspace_dir();
    println!(
        "molt: building the example modules kv and counter ({})...",
        if release { "release" } else { "debug" }
    );
    let libs = match build(&BuildRequest {
        manifest: root.join("Cargo.toml"),
        packages: vec!["kv".into(), "counter".into()],
        release,
        target_dir: None,
    }) {
        Ok(libs) => libs,
        Err(e) => {
            eprintln!("molt: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lib = |p: &str| libs.iter().find(|l| l.package == p).map(|l| l.path.clone());
    let (Some(kv), Some(counter)) = (lib("kv"), lib("counter")) else {
        eprintln!("molt: the build produced no kv or counter library");
        return ExitCode::FAILURE;
    };
    let config = NodeConfig::new("molt")
        .module(ModuleSpec::new("kv", kv))
        .module(ModuleSpec::new("counter", counter));
    let node = match Node::start(config.clone()).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("molt: {e}");
            return ExitCode::FAILURE;
        }
    };
    let admin = match molt::http::serve_configured(&node, &config).await {
        Ok(admin) => admin,
        Err(e) => {
            eprintln!("molt: {e}");
            node.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    match admin.token_file() {
        Some(file) => println!(
            "molt: HTTP admin on http://{} (token for changes in {})",
            admin.local_addr(),
            file.display()
        ),
        None => println!("molt: HTTP admin on http://{}", admin.local_addr()),
    }
    if let Ok(status) = node.status().await {
        for m in &status.modules {
            println!(
                "molt: {} {} (state v{}), {} instance(s), from {}",
                m.name,
                m.code_version,
                m.state_version,
                m.instances.len(),
                m.library.display()
            );
        }
    }
    println!("molt: node {:?} running; Ctrl-C stops it. To watch a hot swap: cargo run --release --example live_swap", node.name());
    let _ = tokio::signal::ctrl_c().await;
    println!("molt: stopping");
    admin.shutdown().await;
    node.shutdown().await;
    ExitCode::SUCCESS
}
