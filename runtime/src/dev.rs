//! Dev mode (docs/semantics.md "Watch and dev mode"): watch each module crate's
//! sources, `cargo build` the crate when a file is saved, show a compile error
//! as a failed reload (phase `build`; the old code keeps serving), and reload
//! the new library when the build succeeds.
//!
//! One notify watcher serves every crate: `<crate>/src` recursively, and the
//! crate folder itself (not recursively) for `Cargo.toml` and `build.rs`; a
//! watch on a file would die with its inode the first time an editor replaces
//! it (FINDINGS.md). The watcher's events go to one task, the scheduler, which
//! debounces per crate and starts builds. A build (cargo in the blocking pool,
//! then the reloads) runs as a task of its own, so two crates build at once
//! (cargo's lock on a shared target dir serializes the compilers), while one
//! crate never has two builds: a save during its build schedules exactly one
//! more build after it.
//!
//! ## Debounce
//! A build starts once a crate's files have been quiet for
//! `max(debounce_ms, 50 ms)` (a trailing debounce: every event restarts the
//! wait). Editors save in several steps: vim renames the old file away,
//! writes the new one and deletes the backup; "safe write" editors write a
//! temporary file and rename it over the old one; formatters rewrite the file
//! right after the save; `git checkout` or a search-and-replace touch many
//! files at once. The few milliseconds that merge a library rename
//! (`debounce_ms`, default 5) can split such a save and start a build on a
//! half-written file: a spurious compile error, then a second build. 50 ms
//! covers these multi-step writes, is below what a person notices, and is
//! small next to any build (a second or more).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::admin::{Admin, ReloadOptions};
use crate::cargo_build::{self, BuildError, BuildRequest};
use crate::config::NodeConfig;
use crate::error::Error;
use crate::events::{Event, EventBus};
use crate::history::Trigger;
use crate::reload::Phase;

/// The shortest quiet time before a build (see the module docs).
pub const MIN_DEBOUNCE: Duration = Duration::from_millis(50);

/// Running dev mode: the source watcher and its builds. Stops when dropped
/// (or [`DevMode::stop`]ped); a build already running finishes, but nothing
/// is reloaded after the stop.
pub struct DevMode {
    watcher: Option<RecommendedWatcher>,
    scheduler: Option<JoinHandle<()>>,
    stopped: Arc<AtomicBool>,
}

impl DevMode {
    /// Stops watching; no build starts and nothing is reloaded afterwards.
    pub fn stop(self) {}
}

impl Drop for DevMode {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.watcher.take();
        if let Some(task) = self.scheduler.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for DevMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevMode")
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// One watched crate and the modules built from it.
#[derive(Debug)]
struct Crate {
    /// The crate folder, canonical (notify reports paths under the watched
    /// path as given).
    dir: PathBuf,
    /// `<dir>/src`.
    src: PathBuf,
    /// The package (`-p`).
    package: String,
    /// The library target's name (`[lib] name`, else the package name with
    /// `_` for `-`): how cargo names the artifact.
    lib_name: String,
    /// cargo's `--target-dir`.
    target_dir: PathBuf,
    /// The modules that run this crate's library.
    modules: Vec<String>,
    /// The library (path, modification time) dev mode last reloaded: a build
    /// that left it untouched reloads nothing.
    last_loaded: Mutex<Option<(PathBuf, SystemTime)>>,
}

impl Crate {
    /// Whether a change to `path` can change the crate's library.
    fn watches(&self, path: &Path) -> bool {
        if is_editor_noise(path) {
            return false;
        }
        if path.starts_with(&self.src) {
            return true;
        }
        path.parent() == Some(self.dir.as_path())
            && matches!(
                path.file_name().and_then(|n| n.to_str()),
                Some("Cargo.toml" | "build.rs")
            )
    }

    fn describe_modules(&self) -> String {
        self.modules.join(", ")
    }
}

/// Files editors write next to the real one: hidden files (`.x.swp`,
/// `.#x` locks, `.x.tmp`), backups (`x~`), swap and temp files, emacs
/// auto-saves (`#x#`) and vim's write test (`4913`).
fn is_editor_noise(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || name == "4913"
}

/// Whether a notify event says something changed (not a read).
fn is_change(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Any | EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
    )
}

/// What the scheduler reacts to.
enum Input {
    Fs(notify::Result<notify::Event>),
    /// The build (and reloads) of crate `.0` finished.
    Done(usize),
}

/// Starts dev mode for every module of `config` that has a
/// [`crate_dir`](crate::ModuleSpec::crate_dir): watches its sources and, on a
/// save, builds it (debug profile, `--target-dir`
/// [`NodeConfig::dev_target_dir`]) and reloads its modules through `admin`.
/// Build starts are published on `bus` (`module.building`). Must be called
/// inside a tokio runtime.
///
/// # Errors
/// [`Error::Config`] when a crate folder has no readable `Cargo.toml` with a
/// package, or its sources cannot be watched; [`Error::Spawn`] outside a
/// tokio runtime.
pub fn start(admin: Admin, bus: EventBus, config: &NodeConfig) -> Result<DevMode, Error> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| Error::Spawn("dev mode needs a tokio runtime".into()))?;
    let crates = crates(config)?;
    let stopped = Arc::new(AtomicBool::new(false));
    if crates.is_empty() {
        tracing::warn!(target: "molt::dev", "dev mode: no module has a crate_dir; nothing to watch");
        return Ok(DevMode {
            watcher: None,
            scheduler: None,
            stopped,
        });
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let fs_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = fs_tx.send(Input::Fs(event));
    })
    .map_err(|e| Error::Config(format!("dev mode cannot watch files: {e}")))?;
    for c in &crates {
        for (path, mode) in [
            (&c.src, RecursiveMode::Recursive),
            (&c.dir, RecursiveMode::NonRecursive),
        ] {
            watcher.watch(path, mode).map_err(|e| {
                Error::Config(format!("dev mode cannot watch {}: {e}", path.display()))
            })?;
        }
        tracing::info!(target: "molt::dev", modules = %c.describe_modules(), "dev mode watches {}", c.dir.display());
    }
    let debounce = Duration::from_millis(config.debounce_ms).max(MIN_DEBOUNCE);
    let scheduler = Scheduler {
        crates: crates.into_iter().map(Arc::new).collect(),
        admin,
        bus,
        debounce,
        stopped: stopped.clone(),
        tx,
    };
    let scheduler = runtime.spawn(scheduler.run(rx));
    Ok(DevMode {
        watcher: Some(watcher),
        scheduler: Some(scheduler),
        stopped,
    })
}

/// The crates to watch, one per crate folder (modules sharing a crate build
/// it once).
fn crates(config: &NodeConfig) -> Result<Vec<Crate>, Error> {
    let mut by_dir: HashMap<PathBuf, usize> = HashMap::new();
    let mut crates: Vec<Crate> = Vec::new();
    for m in &config.modules {
        let Some(dir) = &m.crate_dir else {
            tracing::warn!(target: "molt::dev", module = %m.name, "module has no crate_dir; dev mode does not rebuild it");
            continue;
        };
        let bad = |what: String| {
            Error::Config(format!(
                "module {:?}: crate_dir {}: {what}",
                m.name,
                dir.display()
            ))
        };
        let canonical = dir.canonicalize().map_err(|e| bad(e.to_string()))?;
        if let Some(&i) = by_dir.get(&canonical) {
            crates[i].modules.push(m.name.clone());
            continue;
        }
        let manifest = canonical.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| bad(format!("cannot read Cargo.toml: {e}")))?;
        let toml: toml::Table = text
            .parse()
            .map_err(|e| bad(format!("invalid Cargo.toml: {e}")))?;
        let Some(package) = toml
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
        else {
            return Err(bad("its Cargo.toml has no [package] name".into()));
        };
        let lib_name = toml
            .get("lib")
            .and_then(|l| l.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| package.replace('-', "_"));
        by_dir.insert(canonical.clone(), crates.len());
        crates.push(Crate {
            src: canonical.join("src"),
            package: package.to_string(),
            lib_name,
            target_dir: config.dev_target_dir(&canonical),
            modules: vec![m.name.clone()],
            last_loaded: Mutex::new(None),
            dir: canonical,
        });
    }
    Ok(crates)
}

/// Per crate: when its quiet time ends, and whether it is building.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    due: Option<Instant>,
    building: bool,
}

struct Scheduler {
    crates: Vec<Arc<Crate>>,
    admin: Admin,
    bus: EventBus,
    debounce: Duration,
    stopped: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<Input>,
}

impl Scheduler {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Input>) {
        let mut slots = vec![Slot::default(); self.crates.len()];
        loop {
            // A crate that is building waits for its build, whatever its due.
            let next = slots
                .iter()
                .filter(|s| !s.building)
                .filter_map(|s| s.due)
                .min();
            let far = Instant::now() + Duration::from_secs(3600);
            let input = tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => Some(input),
                    None => return,
                },
                () = tokio::time::sleep_until(next.unwrap_or(far)), if next.is_some() => None,
            };
            match input {
                Some(Input::Fs(Ok(event))) if is_change(&event.kind) => {
                    for (c, slot) in self.crates.iter().zip(slots.iter_mut()) {
                        if event.paths.iter().any(|p| c.watches(p)) {
                            tracing::trace!(target: "molt::dev", paths = ?event.paths, kind = ?event.kind, "change in {}", c.dir.display());
                            slot.due = Some(Instant::now() + self.debounce);
                        }
                    }
                }
                Some(Input::Fs(Ok(_))) | None => {}
                Some(Input::Fs(Err(e))) => {
                    tracing::warn!(target: "molt::dev", "dev mode file watch error: {e}");
                }
                Some(Input::Done(i)) => slots[i].building = false,
            }
            let now = Instant::now();
            for (i, slot) in slots.iter_mut().enumerate() {
                if !slot.building && slot.due.is_some_and(|due| due <= now) {
                    slot.due = None;
                    slot.building = true;
                    self.spawn_build(i);
                }
            }
        }
    }

    fn spawn_build(&self, i: usize) {
        let c = self.crates[i].clone();
        let admin = self.admin.clone();
        let bus = self.bus.clone();
        let stopped = self.stopped.clone();
        let done = DoneGuard {
            tx: self.tx.clone(),
            index: i,
        };
        tokio::spawn(async move {
            build_and_reload(&c, &admin, &bus, &stopped).await;
            drop(done);
        });
    }
}

/// Tells the scheduler a build finished, even if its task panicked.
struct DoneGuard {
    tx: mpsc::UnboundedSender<Input>,
    index: usize,
}

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.tx.send(Input::Done(self.index));
    }
}

/// Builds the crate; reports a failure as a `build` reload failure of each of
/// its modules, or reloads them from the new library.
async fn build_and_reload(c: &Crate, admin: &Admin, bus: &EventBus, stopped: &AtomicBool) {
    if stopped.load(Ordering::SeqCst) {
        return;
    }
    for m in &c.modules {
        tracing::info!(target: "molt::dev", module = %m, "building {m}…");
        bus.publish(Event::ModuleBuilding { name: m.clone() });
    }
    let req = BuildRequest {
        manifest: c.dir.join("Cargo.toml"),
        packages: vec![c.package.clone()],
        release: false,
        target_dir: Some(c.target_dir.clone()),
        progress: true,
    };
    let built = tokio::task::spawn_blocking(move || cargo_build::build(&req)).await;
    if stopped.load(Ordering::SeqCst) {
        return;
    }
    let libs = match built {
        Ok(Ok(libs)) => libs,
        Ok(Err(BuildError::Compile { first_error, .. })) => {
            return build_failed(c, admin, &first_error);
        }
        Ok(Err(e)) => return build_failed(c, admin, &e.to_string()),
        Err(e) => return build_failed(c, admin, &format!("the build task failed: {e}")),
    };
    let lib = match cargo_build::library_of(&libs, &c.lib_name) {
        Ok(path) => path,
        Err(e) => {
            return build_failed(
                c,
                admin,
                &format!("{e}; is the crate's crate-type \"cdylib\"?"),
            )
        }
    };
    let stamp = std::fs::metadata(&lib)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| (lib.clone(), t));
    if stamp.is_some() && *lock(&c.last_loaded) == stamp {
        tracing::info!(target: "molt::dev", modules = %c.describe_modules(), "{} is up to date; nothing to reload", lib.display());
        return;
    }
    let mut all_reloaded = true;
    for m in &c.modules {
        match admin
            .reload(m, ReloadOptions::library(lib.clone()).by(Trigger::Dev))
            .await
        {
            Ok(report) => {
                tracing::info!(target: "molt::dev", module = %m, from = %report.from, to = %report.to, "rebuilt and reloaded {m}");
            }
            Err(Error::NodeDown) => return,
            Err(e) => {
                // The supervisor has recorded it (history, event); the old
                // code keeps serving.
                all_reloaded = false;
                eprintln!("molt dev: module {m}: built, but the reload failed: {e}");
            }
        }
    }
    if all_reloaded {
        *lock(&c.last_loaded) = stamp;
    }
}

fn build_failed(c: &Crate, admin: &Admin, error: &str) {
    eprintln!(
        "\n── molt dev: module {} ({}) does not build; the running version keeps serving ──\n{}",
        c.describe_modules(),
        c.dir.display(),
        error.trim_end()
    );
    for m in &c.modules {
        tracing::warn!(target: "molt::dev", module = %m, "build failed; the running version keeps serving");
        let _ = admin.record_failure(m, Phase::Build, error);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate() -> Crate {
        Crate {
            dir: "/w/m".into(),
            src: "/w/m/src".into(),
            package: "m".into(),
            lib_name: "m".into(),
            target_dir: "/w/target".into(),
            modules: vec!["m".into()],
            last_loaded: Mutex::new(None),
        }
    }

    #[test]
    fn sources_and_the_manifest_are_watched() {
        let c = krate();
        for p in [
            "/w/m/src/lib.rs",
            "/w/m/src/a/b.rs",
            "/w/m/src/data.json",
            "/w/m/Cargo.toml",
            "/w/m/build.rs",
        ] {
            assert!(c.watches(Path::new(p)), "{p}");
        }
        for p in [
            "/w/m/Cargo.lock",
            "/w/m/target/debug/libm.so",
            "/w/m/README.md",
            "/w/other/src/lib.rs",
            "/w/m/srcx/lib.rs",
        ] {
            assert!(!c.watches(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn editor_noise_is_ignored() {
        let c = krate();
        for name in [
            ".lib.rs.swp",
            "lib.rs.swp",
            ".#lib.rs",
            "#lib.rs#",
            "lib.rs~",
            "lib.rs.tmp",
            ".lib.rs.tmp",
            "4913",
        ] {
            let p = Path::new("/w/m/src").join(name);
            assert!(!c.watches(&p), "{name}");
        }
    }
}
