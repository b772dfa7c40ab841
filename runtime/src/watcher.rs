//! Change detection (docs/semantics.md "Watch and dev mode"): watch the library
//! *directories* (a watch on a file dies with its inode, and cargo replaces the
//! file) and the config file's folder, and reload through the core protocol
//! when a module's library, or the config file, appears complete.
//!
//! - notify's callback feeds an unbounded channel; one tokio task takes the
//!   events in batches.
//! - An event counts when it may leave a complete file at a name: `Create`
//!   (cargo's hard link), a rename's new name, a data write, a close after
//!   writing. Removals (cargo's unlink before the link) do not.
//! - Which module a file belongs to is looked up in the *running* config
//!   when the events arrive (canonical folder + file name), so modules added
//!   by a config change are covered, and after a reload or rollback the
//!   module's file is the one it serves from (a rollback restores the path
//!   of the version it returns to: docs/semantics.md "Rollback and forced
//!   reloads").
//! - Per target (a module, or the config file), a quiet period of
//!   `debounce_ms` that every new change restarts merges a burst into one
//!   reload. At most one reload per module runs; changes seen while it runs
//!   give exactly one more reload after it (see `schedule.rs`).
//! - A reload is [`Admin::reload`] with the module's configured library: a
//!   file that is not a valid module fails in *prepare* and the old version
//!   keeps serving; a file briefly missing is retried by prepare, and a file
//!   still missing when its quiet period ends is skipped (its reappearance is
//!   a new change). A config file change is [`Admin::apply_config_file`].
//!
//! - A watch dies with its folder's inode, so the *parent* of each library
//!   folder is watched too: a library folder deleted (or moved away) is
//!   logged as a warning, and when a folder appears at its path again the
//!   watch is re-established (logged at info level) and every module whose
//!   library is in it is checked, as after a change.
//!
//! The supervisor publishes the events and keeps the history; the watcher
//! logs each trigger at debug level and each outcome at info level.

mod changes;
mod schedule;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::admin::{Admin, ReloadOptions};
use crate::config::NodeConfig;
use crate::error::Error;
use crate::history::Trigger;

use changes::{changed_paths, FileKey};
use schedule::{Schedule, Target};

const LOG: &str = "molt::watch";

/// Watches a node's library directories (and its config file) and reloads
/// what changed. Stops watching when dropped or [`Watcher::stop`]ped; a
/// reload already running finishes in the supervisor.
pub struct Watcher {
    dirs: Vec<PathBuf>,
    /// The only strong reference: dropping it ends notify's thread and the
    /// event channel (the event loop holds a weak one, to re-watch folders).
    notify: Option<Arc<Mutex<notify::RecommendedWatcher>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("dirs", &self.dirs)
            .field("running", &self.task.is_some())
            .finish()
    }
}

/// The watched config file.
#[derive(Debug, Clone)]
struct ConfigFile {
    /// As given: what `apply_config_file` reads.
    path: PathBuf,
    key: FileKey,
}

impl Watcher {
    /// Starts watching, non-recursively, each of
    /// [`NodeConfig::effective_library_dirs`] (a folder that does not exist
    /// is skipped with a warning) and the folder of `config_file`, reloading
    /// through `admin` after `config.debounce_ms` of quiet. Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Watch`] when the platform watcher cannot start or a folder
    /// cannot be watched.
    pub fn start(
        admin: Admin,
        config: &NodeConfig,
        config_file: Option<PathBuf>,
    ) -> Result<Watcher, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Watch("the watcher must start inside a tokio runtime".into()))?;
        let config_file = config_file
            .map(|path| {
                let key = FileKey::of(&path).ok_or_else(|| {
                    Error::Watch(format!(
                        "config file {}: its folder cannot be resolved",
                        path.display()
                    ))
                })?;
                Ok::<_, Error>(ConfigFile { path, key })
            })
            .transpose()?;
        let mut dirs: Vec<PathBuf> = Vec::new();
        for dir in config.effective_library_dirs() {
            match dir.canonicalize() {
                Ok(d) if !dirs.contains(&d) => dirs.push(d),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(target: LOG, dir = %dir.display(), "not watching library directory {}: {e}", dir.display())
                }
            }
        }
        if let Some(cf) = &config_file {
            if !dirs.contains(&cf.key.dir) {
                dirs.push(cf.key.dir.clone());
            }
        }

        let (tx, rx) = mpsc::unbounded_channel();
        let mut notify = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })
        .map_err(|e| Error::Watch(e.to_string()))?;
        for dir in &dirs {
            notify
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| Error::Watch(format!("{}: {e}", dir.display())))?;
        }
        // The parents, to see a library folder deleted and made again (its
        // own watch dies with it). Best effort: without it, only that case
        // goes unnoticed.
        let mut parents: Vec<PathBuf> = Vec::new();
        for parent in dirs.iter().filter_map(|d| d.parent()) {
            if dirs.iter().any(|d| d == parent) || parents.iter().any(|p| p == parent) {
                continue;
            }
            match notify.watch(parent, RecursiveMode::NonRecursive) {
                Ok(()) => parents.push(parent.to_path_buf()),
                Err(e) => {
                    tracing::debug!(target: LOG, "not watching {} (a library folder deleted and made again there will not be noticed): {e}", parent.display())
                }
            }
        }
        let notify = Arc::new(Mutex::new(notify));
        let debounce = Duration::from_millis(config.debounce_ms);
        let list = dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match &config_file {
            Some(cf) => {
                tracing::info!(target: LOG, debounce_ms = config.debounce_ms, "hot reload: watching {list} and the config file {}", cf.path.display())
            }
            None => {
                tracing::info!(target: LOG, debounce_ms = config.debounce_ms, "hot reload: watching {list}")
            }
        }
        let task = runtime.spawn(
            EventLoop {
                admin,
                notify: Arc::downgrade(&notify),
                dirs: dirs.clone(),
                lost: HashSet::new(),
                config_file,
                schedule: Schedule::new(debounce),
                debounce,
                paths: HashMap::new(),
                running: JoinSet::new(),
                tasks: HashMap::new(),
            }
            .run(rx),
        );
        Ok(Watcher {
            dirs,
            notify: Some(notify),
            task: Some(task),
        })
    }

    /// The folders watched (canonical).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Stops watching. A reload already running finishes in the supervisor;
    /// nothing new starts.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        // Dropping notify's watcher ends its thread and the event channel.
        self.notify.take();
        if let Some(task) = self.task.take() {
            task.abort();
            tracing::debug!(target: LOG, "hot reload: stopped watching");
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.halt();
    }
}

type NotifyResult = notify::Result<notify::Event>;

struct EventLoop {
    admin: Admin,
    /// To watch a library folder again when it is made again.
    notify: Weak<Mutex<notify::RecommendedWatcher>>,
    /// The watched folders (canonical): the library folders and the config
    /// file's.
    dirs: Vec<PathBuf>,
    /// Watched folders seen deleted or moved away, not watched again yet.
    lost: HashSet<PathBuf>,
    config_file: Option<ConfigFile>,
    schedule: Schedule,
    debounce: Duration,
    /// The library path of each module with a pending change, as configured
    /// when the change was seen.
    paths: HashMap<String, PathBuf>,
    running: JoinSet<()>,
    tasks: HashMap<tokio::task::Id, Target>,
}

impl EventLoop {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<NotifyResult>) {
        loop {
            let due = self.schedule.next_due();
            let wake = due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                received = rx.recv() => {
                    let Some(first) = received else { break };
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    if !self.on_events(batch).await {
                        break;
                    }
                }
                () = tokio::time::sleep_until(wake.into()), if due.is_some() => {}
                Some(done) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    let id = match &done {
                        Ok((id, ())) => *id,
                        Err(e) => e.id(),
                    };
                    if let Some(target) = self.tasks.remove(&id) {
                        if self.schedule.finished(&target, Instant::now()) {
                            tracing::debug!(target: LOG, "{target} changed during its reload: once more");
                        }
                    }
                }
            }
            for target in self.schedule.take_due(Instant::now()) {
                self.launch(target);
            }
        }
        tracing::debug!(target: LOG, "hot reload: the event loop ended");
    }

    /// Schedules the targets a batch of events touches. False when the node
    /// is gone.
    async fn on_events(&mut self, batch: Vec<NotifyResult>) -> bool {
        let mut keys: Vec<FileKey> = Vec::new();
        let mut rescan = false;
        // Library folders watched again: every module in them is checked.
        let mut back: Vec<PathBuf> = Vec::new();
        for event in batch {
            match event {
                Ok(event) => {
                    rescan |= event.need_rescan();
                    if let Some(dir) = self.folder_back(&event) {
                        back.push(dir);
                    }
                    for path in changed_paths(&event) {
                        if let Some(key) = FileKey::of_event_path(path) {
                            // Events from a parent watch about other names.
                            if !keys.contains(&key) && self.dirs.contains(&key.dir) {
                                keys.push(key);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(target: LOG, "file watcher error: {e}"),
            }
        }
        let mut touched: BTreeSet<Target> = BTreeSet::new();
        if let Some(cf) = &self.config_file {
            if rescan || keys.contains(&cf.key) || back.contains(&cf.key.dir) {
                touched.insert(Target::ConfigFile);
            }
            keys.retain(|k| *k != cf.key);
        }
        if rescan || !keys.is_empty() || !back.is_empty() {
            let Ok(running) = self.admin.running_config().await else {
                return false;
            };
            for spec in &running.modules {
                // In dev mode, dev mode owns the modules it builds: it
                // reloads each build's artifact itself, and the artifact
                // appearing in a watched folder must not reload it twice.
                if running.dev && spec.crate_dir.is_some() {
                    continue;
                }
                let Some(key) = FileKey::of(&spec.library) else {
                    continue;
                };
                if rescan || keys.contains(&key) || back.contains(&key.dir) {
                    self.paths.insert(spec.name.clone(), spec.library.clone());
                    touched.insert(Target::Module(spec.name.clone()));
                }
            }
        }
        if rescan {
            tracing::warn!(target: LOG, "the file watcher lost events: checking every module and the config file");
        }
        let now = Instant::now();
        for target in touched {
            let file = match &target {
                Target::Module(m) => self.paths.get(m),
                Target::ConfigFile => self.config_file.as_ref().map(|c| &c.path),
            };
            let file = file.map(|f| f.display().to_string()).unwrap_or_default();
            tracing::debug!(target: LOG, "{target}: {file} changed; acting in {} ms unless it changes again", self.debounce.as_millis());
            self.schedule.touch(target, now);
        }
        true
    }

    /// Follows the watched folders' lives: a watched folder deleted or
    /// moved away is logged (hot reload for it pauses); a folder appearing
    /// at a watched path is watched again. Returns the folder watched again.
    fn folder_back(&mut self, event: &notify::Event) -> Option<PathBuf> {
        use notify::event::{ModifyKind, RenameMode};
        use notify::EventKind;
        let watched = |p: &PathBuf| self.dirs.contains(p);
        match event.kind {
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                for dir in event.paths.iter().filter(|p| watched(p)) {
                    if self.lost.insert(dir.clone()) {
                        tracing::warn!(target: LOG, dir = %dir.display(), "watched folder {} was deleted or moved away: hot reload from it pauses until a folder appears there again", dir.display());
                    }
                }
                None
            }
            EventKind::Create(_)
            | EventKind::Modify(ModifyKind::Name(
                RenameMode::To | RenameMode::Both | RenameMode::Any,
            )) => {
                let dir = event.paths.last().filter(|p| watched(p))?.clone();
                self.watch_again(&dir).then_some(dir)
            }
            _ => None,
        }
    }

    /// Watches `dir` again (its old watch died with its inode). False when
    /// it cannot be watched (it is logged).
    fn watch_again(&mut self, dir: &Path) -> bool {
        let Some(notify) = self.notify.upgrade() else {
            return false;
        };
        let mut notify = notify.lock().unwrap_or_else(|p| p.into_inner());
        // A folder moved away keeps its watch under the old path: drop it.
        let _ = notify.unwatch(dir);
        match notify.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.lost.remove(dir);
                tracing::info!(target: LOG, dir = %dir.display(), "watched folder {} is back: watching it again", dir.display());
                true
            }
            Err(e) => {
                tracing::warn!(target: LOG, dir = %dir.display(), "watched folder {} appeared again but cannot be watched: {e}", dir.display());
                false
            }
        }
    }

    /// Starts the reload (or config apply) of a target whose quiet period
    /// ended.
    fn launch(&mut self, target: Target) {
        let path = match &target {
            Target::Module(m) => self.paths.get(m).cloned(),
            Target::ConfigFile => self.config_file.as_ref().map(|c| c.path.clone()),
        };
        let Some(path) = path else {
            self.schedule.finished(&target, Instant::now());
            return;
        };
        if !path.exists() {
            tracing::debug!(target: LOG, "{target}: {} is missing; waiting for it to appear", path.display());
            self.schedule.finished(&target, Instant::now());
            return;
        }
        let admin = self.admin.clone();
        let handle = match target.clone() {
            Target::Module(module) => {
                tracing::debug!(target: LOG, module = %module, "{} changed: reloading", path.display());
                self.running.spawn(reload_module(admin, module))
            }
            Target::ConfigFile => {
                tracing::debug!(target: LOG, "config file {} changed: applying", path.display());
                self.running.spawn(apply_config_file(admin, path))
            }
        };
        self.tasks.insert(handle.id(), target);
    }
}

/// Reloads `module` from its configured library. When another reload of it
/// (an admin one) is running, waits for it to end and reloads then.
async fn reload_module(admin: Admin, module: String) {
    for _ in 0..100 {
        let started = Instant::now();
        match admin
            .reload(&module, ReloadOptions::default().by(Trigger::Watch))
            .await
        {
            Ok(r) => {
                tracing::info!(target: LOG, module = %module, from = %r.from, to = %r.to, pause_us = r.max_pause().as_micros() as u64, "hot reload of {module}: {} -> {} committed in {} µs", r.from, r.to, started.elapsed().as_micros());
                return;
            }
            Err(Error::ReloadInProgress(_)) => {
                tracing::debug!(target: LOG, module = %module, "another reload of {module} is running; reloading when it ends");
                if !wait_until_idle(&admin, &module).await {
                    return;
                }
            }
            Err(Error::UnknownModule(_)) => {
                tracing::debug!(target: LOG, module = %module, "{module} was removed meanwhile");
                return;
            }
            Err(Error::NodeDown) => return,
            Err(e) => {
                tracing::info!(target: LOG, module = %module, "hot reload of {module} failed, the old version keeps serving: {e}");
                return;
            }
        }
    }
}

/// Waits until `module` is not reloading; false when it is gone or the node
/// is down.
async fn wait_until_idle(admin: &Admin, module: &str) -> bool {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        match admin.status().await {
            Ok(status) => match status.module(module) {
                Some(m) if m.reloading => continue,
                Some(_) => return true,
                None => return false,
            },
            Err(_) => return false,
        }
    }
}

async fn apply_config_file(admin: Admin, path: PathBuf) {
    match admin.apply_config_file(path.as_path()).await {
        Ok(report) => {
            let failed = report.changes.iter().filter(|(_, r)| r.is_err()).count();
            tracing::info!(target: LOG, changes = report.changes.len(), failed, "config file {} applied", path.display());
        }
        Err(e) => {
            tracing::info!(target: LOG, "config file {} rejected, the running config is unchanged: {e}", path.display())
        }
    }
}
