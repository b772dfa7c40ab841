//! `molt run` and `molt dev`: start a node, print what runs, follow its
//! events until Ctrl-C (or SIGTERM), then stop it cleanly.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use molt::cargo_build::{build, BuildRequest};
use molt::{Event, Node, NodeConfig, Received};

pub async fn run(config_path: Option<PathBuf>, dev: bool) -> ExitCode {
    let root = molt::workspace_dir();
    let term = register_term();
    let mut config = match &config_path {
        Some(path) => match molt::config::file::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("molt: {e}");
                return ExitCode::from(2);
            }
        },
        None => molt::config::file::builtin(&root),
    };
    if dev {
        config.dev = true;
    }
    if let Err(e) = build_libraries(&mut config, config_path.is_none()) {
        eprintln!("molt: {e}");
        return ExitCode::FAILURE;
    }
    let bus = molt::EventBus::new(1024);
    let events = bus.subscribe();
    let node = match Node::start_configured(config.clone(), bus, config_path.clone()).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("molt: cannot start the node: {e}");
            return ExitCode::FAILURE;
        }
    };
    let admin = match molt::http::serve_configured(&node, &config).await {
        Ok(admin) => admin,
        Err(e) => {
            eprintln!("molt: cannot start the HTTP admin: {e}");
            node.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    print_summary(&node, &config, config_path.as_deref(), &root).await;
    match admin.token_file() {
        Some(file) => println!(
            "molt: HTTP admin on http://{} (token for changes in {}); try `molt status`",
            admin.local_addr(),
            file.display()
        ),
        None => println!(
            "molt: HTTP admin on http://{}; try `molt status`",
            admin.local_addr()
        ),
    }
    let follower = tokio::spawn(follow(events));
    wait_for_shutdown(term).await;
    println!("molt: stopping");
    follower.abort();
    admin.shutdown().await;
    // Each instance handles what is queued first (within the shutdown
    // timeout); what could not be is reported.
    let report = node.shutdown().await;
    println!("molt: stopped: {report}");
    ExitCode::SUCCESS
}

/// Builds the libraries the node needs: every module of the built-in config
/// (cargo makes it a no-op when fresh, and the user never runs stale example
/// code), and for a config file the modules whose library is missing and
/// whose crate is named. Release profile unless dev mode.
fn build_libraries(config: &mut NodeConfig, builtin: bool) -> Result<(), String> {
    let release = !config.dev;
    for spec in config.modules.iter_mut() {
        let Some(crate_dir) = spec.crate_dir.clone() else {
            continue;
        };
        if !builtin && spec.library.exists() {
            continue;
        }
        let manifest = crate_dir.join("Cargo.toml");
        println!(
            "molt: building module {} ({}, {})...",
            spec.name,
            crate_dir.display(),
            if release { "release" } else { "debug" }
        );
        let libs = build(&BuildRequest {
            manifest,
            packages: vec![],
            release,
            target_dir: config.target_dir.clone(),
            progress: true,
        })
        .map_err(|e| format!("module {}: {e}", spec.name))?;
        let Some(lib) = libs.into_iter().next() else {
            return Err(format!(
                "module {}: the build of {} produced no library",
                spec.name,
                crate_dir.display()
            ));
        };
        if lib.path != spec.library {
            // cargo put it elsewhere (CARGO_TARGET_DIR, a debug build in
            // dev mode): run what was built, and allow its folder.
            if let Some(dir) = lib.path.parent() {
                if !config.library_dirs.is_empty() && !config.library_dirs.iter().any(|d| d == dir)
                {
                    config.library_dirs.push(dir.to_path_buf());
                }
            }
            spec.library = lib.path;
        }
    }
    Ok(())
}

async fn print_summary(node: &Node, config: &NodeConfig, file: Option<&Path>, root: &Path) {
    let source = file.map_or("the built-in configuration".to_string(), |f| {
        f.display().to_string()
    });
    println!("molt: node {:?} running on {source}", node.name());
    if let Ok(status) = node.status().await {
        for m in &status.modules {
            println!(
                "  {:<10} {} (state v{}), {} instance(s), {}",
                m.name,
                m.code_version,
                m.state_version,
                m.instances.len(),
                m.library.display()
            );
        }
    }
    if config.hot_reload {
        for dir in config.effective_library_dirs() {
            println!("  watching   {}", dir.display());
        }
        if let Some(f) = file {
            println!("  watching   {} (config changes apply live)", f.display());
        }
    } else {
        println!("  hot reload is off (hot_reload = false): reload through the admin surface");
    }
    let example = config.modules.iter().find(|m| m.crate_dir.is_some());
    match example {
        Some(m) if config.dev => println!(
            "molt: to see a hot swap, edit {}/src/lib.rs and save: it is rebuilt and reloaded",
            rel(m.crate_dir.as_deref().unwrap_or(root), root)
        ),
        Some(m) => println!(
            "molt: to see a hot swap, edit {}/src/lib.rs (e.g. its CODE_VERSION) and run `cargo build --release -p {}` (or run `molt dev`)",
            rel(m.crate_dir.as_deref().unwrap_or(root), root),
            m.name
        ),
        None => println!("molt: to see a hot swap, rebuild a module's library in a watched folder"),
    }
    println!("molt: Ctrl-C stops the node");
}

fn rel(p: &Path, root: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// Prints reload events as they happen.
async fn follow(mut events: molt::EventStream) {
    loop {
        match events.recv().await {
            Received::Event(e) => match e.event {
                Event::ModuleReloaded {
                    name,
                    from,
                    to,
                    pause_us,
                } => {
                    println!("molt: {name} reloaded {from} -> {to} (paused {pause_us} µs)")
                }
                Event::ModuleReloadFailed { name, phase, error } => {
                    println!("molt: {name} reload failed in {phase}; the old code keeps serving:\n{error}")
                }
                Event::ModuleRolledBack { name, from, to, .. } => {
                    println!("molt: {name} rolled back {from} -> {to}")
                }
                Event::ConfigApplied { changes, failed } => {
                    for c in changes {
                        println!("molt: config applied: {c}");
                    }
                    for f in failed {
                        println!("molt: config change failed: {f}");
                    }
                }
                Event::ConfigRejected { error } => {
                    println!("molt: config change rejected: {error}")
                }
                _ => {}
            },
            Received::Lagged(n) => println!("molt: ({n} events skipped)"),
            Received::Closed => return,
        }
    }
}

/// SIGTERM, registered before the node starts: one that arrives during the
/// start-up then stops the node (draining it) once it runs, instead of
/// killing the process with its queues.
#[cfg(unix)]
type Term = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Term = ();

#[cfg(unix)]
fn register_term() -> Term {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::terminate()).ok()
}

#[cfg(not(unix))]
fn register_term() -> Term {}

async fn wait_for_shutdown(term: Term) {
    #[cfg(unix)]
    {
        let Some(mut term) = term else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let () = term;
        let _ = tokio::signal::ctrl_c().await;
    }
}
