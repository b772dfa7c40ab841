//! `molt run` and `molt dev`: start a node, print what runs, follow its
//! events until Ctrl-C (or SIGTERM), then stop it cleanly.
//!
//! Stopping is bounded whatever the node is doing: the orderly stop gets
//! `limits.shutdown_timeout` plus [`STOP_MARGIN`]; past it the process
//! exits with status 1, saying what it abandoned. A second Ctrl-C/SIGTERM
//! exits at once (status 130). A signal during start-up ends the process
//! at once too.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use molt::cargo_build::{build, by_workspace, library_of, BuildError, BuildRequest};
use molt::{Event, Node, NodeConfig, Received};

use super::DEFAULT_ADMIN_ADDR;

/// What the orderly stop gets beyond `limits.shutdown_timeout` (the HTTP
/// server's requests in flight, stopping the supervisor).
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// Exit status when a signal ended the process before an orderly stop.
const INTERRUPTED: i32 = 130;

pub async fn run(config_path: Option<PathBuf>, dev: bool) -> ExitCode {
    let mut signals = Signals::install();
    let root = molt::workspace_dir();
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
    let started = tokio::select! {
        r = Node::start_configured(config.clone(), bus, config_path.clone()) => r,
        () = signals.next() => abandon("signal while the node was starting: abandoning the start"),
    };
    let node = match started {
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
    let try_status = status_hint(admin.local_addr());
    match admin.token_file() {
        Some(file) => println!(
            "molt: HTTP admin on http://{} (token for changes in {}); try `{try_status}`",
            admin.local_addr(),
            file.display()
        ),
        None => println!(
            "molt: HTTP admin on http://{}; try `{try_status}`",
            admin.local_addr()
        ),
    }
    println!(
        "molt: dashboard on http://{}/ (in a browser)",
        admin.local_addr()
    );
    let follower = tokio::spawn(follow(events));
    signals.next().await;
    println!("molt: stopping");
    follower.abort();
    let bound = config.limits.shutdown_timeout + STOP_MARGIN;
    let stage = Arc::new(Mutex::new("the HTTP admin server's requests in flight"));
    watchdog(bound, stage.clone());
    let orderly = async {
        admin.shutdown().await;
        set_stage(
            &stage,
            "stopping the modules (messages still queued, module stop code)",
        );
        // Each instance handles what is queued first (within the shutdown
        // timeout); what could not be is reported.
        let report = node.shutdown().await;
        println!("molt: stopped: {report}");
        set_stage(
            &stage,
            "the runtime's blocking tasks (a library load, a build)",
        );
    };
    tokio::select! {
        () = orderly => ExitCode::SUCCESS,
        () = signals.next() => {
            let what = *stage.lock().unwrap_or_else(|e| e.into_inner());
            abandon(&format!("second signal: exiting at once, abandoning {what}"))
        }
    }
}

fn set_stage(stage: &Mutex<&'static str>, what: &'static str) {
    *stage.lock().unwrap_or_else(|e| e.into_inner()) = what;
}

/// Ends the process after `bound` unless it has ended before, saying what
/// it was still waiting for. A thread of its own: it fires even when every
/// worker of the async runtime is stuck.
fn watchdog(bound: Duration, stage: Arc<Mutex<&'static str>>) {
    let spawned = std::thread::Builder::new()
        .name("molt-stop-watchdog".into())
        .spawn(move || {
            std::thread::sleep(bound);
            let what = *stage.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "molt: the node did not stop within {bound:?} (limits.shutdown_timeout + {STOP_MARGIN:?}); \
                 exiting, abandoning {what}"
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        eprintln!("molt: cannot bound the stop ({e}); a second Ctrl-C exits at once");
    }
}

/// Ends the process at once (no orderly stop: the async runtime is not
/// waited for).
fn abandon(why: &str) -> ! {
    eprintln!("molt: {why}");
    std::process::exit(INTERRUPTED)
}

/// Builds the libraries the node needs: every module of the built-in config
/// (cargo makes it a no-op when fresh, and the user never runs stale example
/// code), and for a config file the modules whose crate is named and whose
/// library is missing, or every one of them in dev mode (a source edited
/// while no node ran must not start as the stale library; cargo makes a
/// fresh one a no-op). Release profile unless dev mode. One `cargo build`
/// per workspace builds all of its crates (issue #11 §4); a failed build
/// names the module whose crate failed.
///
/// Only the built-in config's library paths are derived (by molt): there
/// the build output is run wherever cargo put it, and its folder allowed. A
/// config file's `library` is the user's word (issue #8 item 15): when the
/// build does not produce that file, that is an error naming both paths,
/// never a silent switch to a file outside `library_dirs`.
fn build_libraries(config: &mut NodeConfig, builtin: bool) -> Result<(), String> {
    let release = !config.dev;
    // The modules to build (their index in `config.modules`) and their crates.
    let (wanted, dirs): (Vec<usize>, Vec<PathBuf>) = config
        .modules
        .iter()
        .enumerate()
        .filter(|(_, spec)| builtin || config.dev || !spec.library.exists())
        .filter_map(|(i, spec)| spec.crate_dir.clone().map(|dir| (i, dir)))
        .unzip();
    let names: Vec<String> = wanted
        .iter()
        .map(|&i| config.modules[i].name.clone())
        .collect();
    let name = |k: usize| names[k].clone();
    let groups = by_workspace(&dirs).map_err(|(k, e)| format!("module {}: {e}", name(k)))?;
    // One `cargo build -p a -p b ...` per workspace: each invocation checks
    // the whole dependency graph again.
    for group in groups {
        let group_names: Vec<String> = group.crates.iter().map(|(k, _)| name(*k)).collect();
        println!(
            "molt: building {} {} ({})...",
            if group_names.len() == 1 {
                "module"
            } else {
                "modules"
            },
            group_names.join(", "),
            if release { "release" } else { "debug" }
        );
        let libs = build(&BuildRequest {
            manifest: group.manifest.clone(),
            // Two modules may run the same crate: ask for it once.
            packages: group.crates.iter().fold(Vec::new(), |mut ps, (_, c)| {
                if !ps.contains(&c.package) {
                    ps.push(c.package.clone());
                }
                ps
            }),
            release,
            target_dir: config.target_dir.clone(),
            progress: true,
        })
        .map_err(|e| {
            // The module whose crate failed, when cargo said which.
            let failed = match &e {
                BuildError::Compile {
                    failed_target: Some(t),
                    ..
                } => group
                    .crates
                    .iter()
                    .find(|(_, c)| c.lib_name.as_ref() == Some(t) || c.package == *t)
                    .map(|(k, _)| name(*k)),
                _ => None,
            };
            match failed {
                Some(module) => format!("module {module}: {e}"),
                None if group_names.len() == 1 => format!("module {}: {e}", group_names[0]),
                None => format!("modules {}: {e}", group_names.join(", ")),
            }
        })?;
        for (k, krate) in &group.crates {
            let lib = krate
                .lib_name
                .as_deref()
                .ok_or_else(|| BuildError::NoLibrary {
                    package: krate.package.clone(),
                    built: String::new(),
                })
                .and_then(|lib| library_of(&libs, lib))
                .map_err(|e| format!("module {}: {e}", name(*k)))?;
            set_library(config, wanted[*k], &dirs[*k], lib, builtin)?;
        }
    }
    Ok(())
}

/// Points module `index` at the library its build produced: the built-in
/// config runs whatever cargo built (and allows its folder); a config
/// file's `library` must be that file.
fn set_library(
    config: &mut NodeConfig,
    index: usize,
    crate_dir: &Path,
    lib: PathBuf,
    builtin: bool,
) -> Result<(), String> {
    let spec = &config.modules[index];
    if lib == spec.library {
        return Ok(());
    }
    if !builtin {
        return Err(format!(
            "modules.{}.library = {} does not exist; the build of crate {} produced {} \
             (set `library` to it, inside library_dirs)",
            spec.name,
            spec.library.display(),
            crate_dir.display(),
            lib.display()
        ));
    }
    // The built-in config: cargo put it elsewhere (CARGO_TARGET_DIR, a
    // debug build in dev mode): run what was built, and allow its folder.
    if let Some(dir) = lib.parent() {
        if !config.library_dirs.is_empty() && !config.library_dirs.iter().any(|d| d == dir) {
            config.library_dirs.push(dir.to_path_buf());
        }
    }
    config.modules[index].library = lib;
    Ok(())
}

async fn print_summary(node: &Node, config: &NodeConfig, file: Option<&Path>, root: &Path) {
    let source = file.map_or("the built-in configuration".to_string(), |f| {
        f.display().to_string()
    });
    println!("molt: node {:?} running on {source}", node.name());
    if let Ok(status) = node.status().await {
        for m in &status.modules {
            let serving = match &m.keyed {
                Some(k) => format!("keyed (max_live {})", k.max_live),
                None => format!("{} instance(s)", m.instances.len()),
            };
            println!(
                "  {:<10} {} (state v{}), {serving}, {}",
                m.name,
                m.code_version,
                m.state_version,
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
    if let Some(c) = &config.cluster {
        let seeds = if c.seeds.is_empty() {
            "no seeds: peers connect to it".to_string()
        } else {
            format!("seeds {}", c.seeds.join(", "))
        };
        println!(
            "  cluster    listening on {} for peers, {seeds}; see `molt status --cluster`",
            c.listen
        );
    }
    let example = config.modules.iter().find(|m| m.crate_dir.is_some());
    match example {
        Some(m) if config.dev => println!(
            "molt: to see a hot swap, edit {}/src/lib.rs and save: it is rebuilt and reloaded",
            rel(m.crate_dir.as_deref().unwrap_or(root), root)
        ),
        Some(m) => {
            let crate_dir = m.crate_dir.as_deref().unwrap_or(root);
            println!(
                "molt: to see a hot swap, edit {}/src/lib.rs (e.g. its CODE_VERSION) and {} (or run `molt dev`)",
                rel(crate_dir, root),
                build_hint(m, crate_dir, root)
            )
        }
        None => println!("molt: to see a hot swap, rebuild a module's library in a watched folder"),
    }
    println!("molt: Ctrl-C stops the node");
}

/// `molt status`, with `--addr` when the admin is not where `molt status`
/// looks by default (the hint must work when pasted).
fn status_hint(admin: std::net::SocketAddr) -> String {
    if DEFAULT_ADMIN_ADDR.parse() == Ok(admin) {
        "molt status".to_string()
    } else {
        format!("molt status --addr {admin}")
    }
}

/// The command that rebuilds module `m`'s library where it is loaded from:
/// the cargo profile is the one the library's folder belongs to
/// (`target/debug` or `target/release`), the package the crate's own name.
fn build_hint(m: &molt::ModuleSpec, crate_dir: &Path, root: &Path) -> String {
    let profile = m
        .library
        .parent()
        .and_then(Path::file_name)
        .and_then(|p| p.to_str());
    let flag = match profile {
        Some("debug") => "",
        Some("release") => " --release",
        _ => return format!("rebuild {}", m.library.display()),
    };
    let package = package_name(crate_dir).unwrap_or_else(|| m.name.clone());
    if crate_dir.starts_with(root) {
        format!("run `cargo build{flag} -p {package}`")
    } else {
        format!(
            "run `cargo build{flag} --manifest-path {}`",
            crate_dir.join("Cargo.toml").display()
        )
    }
}

/// The `[package] name` of the crate in `dir`, when its manifest says.
fn package_name(dir: &Path) -> Option<String> {
    let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
        .ok()?
        .parse()
        .ok()?;
    Some(manifest.get("package")?.get("name")?.as_str()?.to_string())
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
                Event::ModuleRestarted {
                    name,
                    instance,
                    reason,
                    restored,
                    state_age_ms,
                    stuck_messages,
                    ..
                } => {
                    let stuck = if stuck_messages > 0 {
                        format!("; {stuck_messages} stuck message(s) were not handled")
                    } else {
                        String::new()
                    };
                    println!("molt: {name}#{instance} restarted from its {restored} ({state_age_ms} ms old): {reason}{stuck}")
                }
                // Rollout steps and cluster membership changes.
                other => {
                    let line = serde_json::to_value(&other)
                        .ok()
                        .and_then(|v| super::rollout::describe(other.kind(), &v));
                    if let Some(line) = line {
                        println!("molt: {line}");
                    }
                }
            },
            Received::Lagged(n) => println!("molt: ({n} events skipped)"),
            Received::Closed => return,
        }
    }
}

/// Ctrl-C and SIGTERM, counted from the start of `molt run`.
struct Signals {
    rx: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl Signals {
    /// Listens from now on: a signal during start-up is not lost.
    fn install() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let term = signal(SignalKind::terminate());
            let int = signal(SignalKind::interrupt());
            tokio::spawn(async move {
                let (Ok(mut term), Ok(mut int)) = (term, int) else {
                    eprintln!("molt: cannot listen for SIGTERM/SIGINT");
                    return;
                };
                loop {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    if tx.send(()).is_err() {
                        return;
                    }
                }
            });
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if tx.send(()).is_err() {
                    return;
                }
            }
        });
        Signals { rx }
    }

    /// The next signal.
    async fn next(&mut self) {
        if self.rx.recv().await.is_none() {
            // Cannot listen: wait forever, as without signals.
            std::future::pending::<()>().await;
        }
    }
}
