//! A molt node: the supervisor, its modules, the event bus, in one process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use molt_abi::Protocol;
use ractor::{Actor, ActorRef};

use crate::admin::{Admin, NodeStatus, ReloadOptions, ReloadReport};
use crate::config::{Limits, NodeConfig};
use crate::directory::{lookup, Directory};
use crate::error::Error;
use crate::events::{EventBus, EventStream};
use crate::handle::ModuleHandle;
use crate::history::HistoryEntry;
use crate::loader::{CopyDir, Loader};
use crate::shutdown::ShutdownReport;
use crate::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use crate::watcher::Watcher;

mod address;

/// A running node.
///
/// ```no_run
/// # async fn demo() -> Result<(), molt_runtime::Error> {
/// use molt_runtime::{ModuleSpec, Node, NodeConfig, ReloadOptions};
///
/// let node = Node::start(
///     NodeConfig::new("demo").module(ModuleSpec::new("kv", "target/release/libkv.so")),
/// )
/// .await?;
/// node.reload("kv", ReloadOptions::library("target/release/libkv_v2.so")).await?;
/// node.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Node {
    name: String,
    sup: ActorRef<SupervisorMsg>,
    bus: EventBus,
    directory: Directory,
    limits: Limits,
    /// The default copy folder, removed at shutdown when empty.
    temp_copy_dir: Option<std::path::PathBuf>,
    /// Dev mode's source watcher (`config.dev`), stopped at shutdown.
    dev: Option<crate::dev::DevMode>,
    /// Change detection (hot reload); `None` when `hot_reload` is off.
    watcher: Option<Watcher>,
    /// Its part in a cluster (`config.cluster`), left at shutdown.
    cluster: Option<crate::cluster::Cluster>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("supervisor", &self.sup.get_id())
            .field("hot_reload", &self.watcher.is_some())
            .field("dev", &self.dev.is_some())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node: loads every module's library and starts its instances.
    /// Nothing starts half-configured: on any error everything started is
    /// stopped again. With `hot_reload` on (the default) it then watches the
    /// library directories and reloads a module whose library is replaced
    /// (see [`Watcher`]); with [`NodeConfig::dev`], dev mode ([`crate::dev`])
    /// rebuilds and reloads module crates on save.
    ///
    /// # Errors
    /// [`Error::Config`] (also: a dev-mode crate that cannot be read or
    /// watched), [`Error::Load`] naming the library and the cause,
    /// [`Error::StartFailed`] when a module's `init` or `start` fails.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use molt_runtime::{Limits, ModuleSpec, Node, NodeConfig};
    ///
    /// let mut config = NodeConfig::new("app")
    ///     .module(ModuleSpec::new("kv", "target/release/libkv.so").instances(2));
    /// config.limits = Limits { call_timeout: std::time::Duration::from_secs(5), ..Limits::default() };
    /// let node = Node::start(config).await?;
    /// println!("{:?}", node.status().await?);
    /// let report = node.shutdown().await; // handles what is queued, then stops
    /// # let _ = report; Ok(()) }
    /// ```
    pub async fn start(config: NodeConfig) -> Result<Node, Error> {
        Self::start_with_bus(config, EventBus::new(1024)).await
    }

    /// [`Node::start`] on a bus created beforehand, so a subscriber sees the
    /// `module.loaded` events of the start.
    ///
    /// # Errors
    /// As [`Node::start`].
    pub async fn start_with_bus(config: NodeConfig, bus: EventBus) -> Result<Node, Error> {
        Self::start_configured(config, bus, None).await
    }

    /// Starts a node on `config` (read from `config_file`, possibly adjusted
    /// by the caller, as the `molt` CLI does) on a bus created beforehand;
    /// with `hot_reload` on it also watches `config_file`, like
    /// [`Node::start_from_file`].
    ///
    /// # Errors
    /// As [`Node::start`].
    pub async fn start_configured(
        config: NodeConfig,
        bus: EventBus,
        config_file: Option<PathBuf>,
    ) -> Result<Node, Error> {
        config.validate()?;
        crate::metrics::install();
        // The copy folder (issue #8 items 1 and 18): what dead nodes left is
        // removed first; the default folder is created fresh and private, a
        // configured one must be safe or the node does not start.
        let temp = std::env::temp_dir();
        crate::loader::stale::remove_stale(&temp, config.copy_dir.as_deref());
        let copy_dir = match &config.copy_dir {
            Some(dir) => CopyDir::configured(dir)?,
            None => CopyDir::create_private(&temp)?,
        };
        let loader = Loader::new(
            copy_dir.clone(),
            config.effective_library_dirs(),
            &config.limits,
        );
        let directory: Directory = Arc::new(RwLock::new(HashMap::new()));
        let cluster_view = crate::cluster::membership::ClusterView::default();
        let args = SupervisorArgs {
            base: config.clone(),
            node: config.name.clone(),
            loader,
            bus: bus.clone(),
            directory: directory.clone(),
            limits: config.limits.clone(),
            history_len: config.history_len,
            cluster: cluster_view.clone(),
        };
        let (sup, _join) = Actor::spawn(
            Some(format!("molt.supervisor/{}", config.name)),
            Supervisor,
            args,
        )
        .await
        .map_err(|e| Error::Spawn(e.to_string()))?;
        bus.attach(directory.clone());
        let mut node = Node {
            name: config.name.clone(),
            sup,
            bus,
            directory,
            limits: config.limits.clone(),
            temp_copy_dir: copy_dir.is_private().then(|| copy_dir.path().to_path_buf()),
            dev: None,
            watcher: None,
            cluster: None,
        };
        for spec in config.modules.iter().cloned() {
            if let Err(e) = node.admin().add_module(spec).await {
                node.shutdown().await;
                return Err(e);
            }
        }
        if let Err(e) = node.watch(&config, config_file) {
            node.shutdown().await;
            return Err(e);
        }
        // The cluster (docs/semantics.md "Cluster membership"), once the
        // modules run: the first heartbeat reports their versions.
        if let Some(spec) = &config.cluster {
            match crate::cluster::start(
                spec,
                &config.name,
                cluster_view,
                node.admin(),
                node.bus.clone(),
                &config.rollout,
                node.directory.clone(),
            )
            .await
            {
                Ok(cluster) => node.cluster = Some(cluster),
                Err(e) => {
                    node.shutdown().await;
                    return Err(e);
                }
            }
        }
        // Dev mode (docs/semantics.md "Watch and dev mode"): rebuild and reload
        // module crates on save.
        if config.dev {
            match crate::dev::start(node.unbounded_admin(), node.bus.clone(), &config) {
                Ok(dev) => node.dev = Some(dev),
                Err(e) => {
                    node.shutdown().await;
                    return Err(e);
                }
            }
        }
        Ok(node)
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A typed handle to a module.
    ///
    /// # Errors
    /// [`Error::UnknownModule`] when no module of that name runs.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(node: &molt_runtime::Node) -> Result<(), Box<dyn std::error::Error>> {
    /// let kv = node.module::<kv_proto::Proto>("kv")?; // pinned to one instance
    /// let second = kv.on_instance(1); // pinned to instance 1 % count
    /// second.cast(kv_proto::Msg::Delete { key: "a".into() })?;
    /// # Ok(()) }
    /// ```
    pub fn module<P: Protocol>(&self, name: &str) -> Result<ModuleHandle<P>, Error> {
        lookup(&self.directory, name)
            .map(|slot| ModuleHandle::new(slot, self.limits.call_timeout))
            .ok_or_else(|| Error::UnknownModule(name.to_string()))
    }

    /// The node's modules for untyped (msgpack bytes) sends: the HTTP
    /// `call` / `cast` endpoints.
    pub(crate) fn raw_modules(&self) -> crate::raw_handle::RawModules {
        crate::raw_handle::RawModules {
            directory: self.directory.clone(),
            call_timeout: self.limits.call_timeout,
        }
    }

    /// The limits the node was started with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The admin client (reload, rollback, status, history); its requests
    /// wait at most `limits.admin_timeout` for the supervisor to take them.
    pub fn admin(&self) -> Admin {
        Admin::new(self.sup.clone(), Some(self.limits.admin_timeout))
    }

    /// The admin client of the node's own automation (the watcher, dev
    /// mode): a change it detected waits for a busy supervisor instead of
    /// being dropped as busy.
    fn unbounded_admin(&self) -> Admin {
        Admin::new(self.sup.clone(), None)
    }

    /// The supervisor's actor, for sending [`crate::AdminMsg`]s directly.
    pub fn supervisor(&self) -> ActorRef<SupervisorMsg> {
        self.sup.clone()
    }

    /// Subscribes to the node's events (those published from now on).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(node: &molt_runtime::Node) {
    /// use molt_runtime::Event;
    ///
    /// let mut events = node.subscribe();
    /// while let Some(event) = events.next_event().await {
    ///     if let Event::ModuleReloadFailed { .. } = event {
    ///         eprintln!("{}: {}", event.kind(), event.to_json());
    ///     }
    /// }
    /// # }
    /// ```
    pub fn subscribe(&self) -> EventStream {
        self.bus.subscribe()
    }

    /// The node's event bus.
    pub fn events(&self) -> &EventBus {
        &self.bus
    }

    /// Reloads a module. See [`Admin::reload`].
    ///
    /// # Errors
    /// As [`Admin::reload`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(node: &molt_runtime::Node) {
    /// use molt_runtime::{Error, ReloadOptions};
    ///
    /// match node.reload("kv", ReloadOptions::library("target/release/libkv_v2.so")).await {
    ///     Ok(report) => println!("{} -> {}, paused {:?}", report.from, report.to, report.max_pause()),
    ///     // Rolled back: the old version serves with its old state.
    ///     Err(Error::ReloadFailed { phase, .. }) => println!("failed in {phase}"),
    ///     Err(e) => println!("not reloaded: {e}"),
    /// }
    /// # }
    /// ```
    pub async fn reload(
        &self,
        module: &str,
        options: ReloadOptions,
    ) -> Result<ReloadReport, Error> {
        self.admin().reload(module, options).await
    }

    /// Rehearses a reload without doing it (a dry run). See
    /// [`Admin::rehearse`].
    ///
    /// # Errors
    /// As [`Admin::rehearse`].
    pub async fn rehearse(
        &self,
        module: &str,
        options: ReloadOptions,
    ) -> Result<crate::RehearsalReport, Error> {
        self.admin().rehearse(module, options).await
    }

    /// Rolls a module back to its previous library. See [`Admin::rollback`].
    ///
    /// # Errors
    /// As [`Admin::rollback`].
    pub async fn rollback(&self, module: &str, reset_state: bool) -> Result<ReloadReport, Error> {
        self.admin().rollback(module, reset_state).await
    }

    /// Rolls a module back to the kept version `to` (its code version), in
    /// one swap. See [`Admin::rollback_to`].
    ///
    /// # Errors
    /// As [`Admin::rollback_to`].
    pub async fn rollback_to(
        &self,
        module: &str,
        to: &str,
        reset_state: bool,
    ) -> Result<ReloadReport, Error> {
        self.admin()
            .rollback_to(
                module,
                Some(to),
                reset_state,
                crate::history::Trigger::Admin,
            )
            .await
    }

    /// The node's status. See [`Admin::status`].
    ///
    /// # Errors
    /// [`Error::NodeDown`].
    pub async fn status(&self) -> Result<NodeStatus, Error> {
        self.admin().status().await
    }

    /// The cluster as this node sees it. See [`Admin::cluster`].
    ///
    /// # Errors
    /// As [`Admin::cluster`].
    pub async fn cluster(&self) -> Result<crate::cluster::ClusterStatus, Error> {
        self.admin().cluster().await
    }

    /// A module's handling figures. See [`Admin::figures`].
    ///
    /// # Errors
    /// As [`Admin::figures`].
    pub async fn figures(&self, module: &str) -> Result<crate::ModuleFigures, Error> {
        self.admin().figures(module).await
    }

    /// The reload history. See [`Admin::history`].
    ///
    /// # Errors
    /// [`Error::NodeDown`].
    pub async fn history(&self) -> Result<Vec<HistoryEntry>, Error> {
        self.admin().history().await
    }

    /// Stops the node: every module instance first handles the messages
    /// already in its mailbox, then stops (its `stop` runs); instances and
    /// modules drain in parallel, within `limits.shutdown_timeout` (plus at
    /// most a second for an instance to finish the message it is in). Sends
    /// during the shutdown fail with [`crate::CallError::NotRunning`]. Then
    /// the supervisor stops.
    ///
    /// Returns what could not be handled in time, per module and instance
    /// (also logged); ignoring it is fine.
    pub async fn shutdown(mut self) -> ShutdownReport {
        // Out of the cluster first: peers mark it unreachable.
        if let Some(cluster) = self.cluster.take() {
            cluster.stop();
        }
        // Then dev mode: no build may reload a module that is stopping.
        if let Some(dev) = self.dev.take() {
            dev.stop();
        }
        if let Some(watcher) = self.watcher.take() {
            watcher.stop();
        }
        // Issue #8 item 8: out of the directory first (new handles and
        // sends fail), then drain what is queued.
        let slots: Vec<_> = match self.directory.write() {
            Ok(mut dir) => dir.drain().collect(),
            Err(_) => Vec::new(),
        };
        let report = crate::shutdown::drain_slots(slots, self.limits.shutdown_timeout).await;
        let _ = self
            .sup
            .stop_and_wait(Some("node shutdown".into()), Some(Duration::from_secs(10)))
            .await;
        // Copies are unlinked right after loading; only the folder is left.
        // (A node killed before this leaves it: the next start removes it.)
        if let Some(dir) = &self.temp_copy_dir {
            let _ = std::fs::remove_dir(dir);
        }
        report
    }
}

// Change detection (docs/semantics.md "Watch and dev mode"): the watcher the
// node keeps.
impl Node {
    /// Starts a node from a config file ([`crate::config::file::load`]) and,
    /// when `hot_reload` is on, watches that file too: a change is parsed,
    /// validated, diffed against the running config and applied live, or
    /// rejected whole (see [`Admin::apply_config_file`]).
    ///
    /// # Errors
    /// [`Error::ConfigFile`] for an invalid file; as [`Node::start`].
    pub async fn start_from_file(path: impl AsRef<Path>) -> Result<Node, Error> {
        let path = path.as_ref().to_path_buf();
        let config = crate::config::file::load(&path)?;
        Self::start_configured(config, EventBus::new(1024), Some(path)).await
    }

    /// Starts watching the library directories (and `config_file`) when
    /// `hot_reload` is on; says once that it is off otherwise.
    fn watch(&mut self, config: &NodeConfig, config_file: Option<PathBuf>) -> Result<(), Error> {
        if !config.hot_reload {
            tracing::info!(target: "molt::watch", node = %self.name, "hot reload is off: not watching");
            return Ok(());
        }
        self.watcher = Some(Watcher::start(self.unbounded_admin(), config, config_file)?);
        Ok(())
    }
}
