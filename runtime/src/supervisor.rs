//! The supervisor actor: owns the module table, spawns module instances
//! linked to itself, runs reloads (each in a task of its own), answers admin
//! messages and restarts instances whose actor failed. It overrides ractor's
//! default child-failure handling, which would stop the supervisor.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use molt_abi::ErrorKind;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::admin::{
    Admin, AdminMsg, ConfigReport, InstanceStatus, ModuleStatus, NodeStatus, ReloadOptions,
    ReloadReport,
};
use crate::config::diff::{self, Change};
use crate::config::{Limits, ModuleSpec, NodeConfig};
use crate::directory::{Directory, InstanceShared, ModuleSlot, Route};
use crate::error::Error;
use crate::events::{Event, EventBus};
use crate::history::{Action, History, HistoryEntry, Outcome};
use crate::loader::{mapped_libraries, Library, Loader};
use crate::module_actor::{InstanceArgs, ModuleActor, StartFrom};
use crate::reload::{self, Phase, Plan, Source, SwapMode};

/// The supervisor's messages: admin requests, and internal ones.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// An admin request.
    Admin(AdminMsg),
    /// Internal bookkeeping (opaque).
    Internal(InternalMsg),
}

impl From<AdminMsg> for SupervisorMsg {
    fn from(m: AdminMsg) -> Self {
        SupervisorMsg::Admin(m)
    }
}

/// The supervisor's internal messages; not constructible outside the runtime.
pub struct InternalMsg(pub(crate) Internal);

impl std::fmt::Debug for InternalMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalMsg")
    }
}

pub(crate) enum Internal {
    ReloadDone(Box<ReloadDone>),
    ConfigDone(Box<ConfigDone>),
}

pub(crate) struct ConfigDone {
    at: SystemTime,
    report: ConfigReport,
    reply: RpcReplyPort<Result<ConfigReport, Error>>,
}

pub(crate) struct ReloadDone {
    module: String,
    action: Action,
    reset_state: bool,
    asked: String,
    new_config: Option<(serde_json::Value, Arc<Vec<u8>>)>,
    new_path: Option<PathBuf>,
    at: SystemTime,
    outcome: reload::Outcome,
    reply: RpcReplyPort<Result<ReloadReport, Error>>,
}

struct ModuleEntry {
    spec: ModuleSpec,
    config: Arc<Vec<u8>>,
    current: Arc<Library>,
    previous: Option<Arc<Library>>,
    slot: Arc<ModuleSlot>,
    reloading: bool,
}

/// Arguments of the supervisor.
pub(crate) struct SupervisorArgs {
    /// The node-level settings (its `modules` are ignored: the table is the
    /// truth about modules).
    pub base: NodeConfig,
    pub node: String,
    pub loader: Loader,
    pub bus: EventBus,
    pub directory: Directory,
    pub limits: Limits,
    pub history_len: usize,
}

pub(crate) struct SupState {
    base: NodeConfig,
    applying_config: bool,
    node: String,
    started: Instant,
    table: BTreeMap<String, ModuleEntry>,
    history: History,
    loader: Loader,
    bus: EventBus,
    directory: Directory,
    limits: Limits,
}

pub(crate) struct Supervisor;

fn encode_config(module: &str, value: &serde_json::Value) -> Result<Arc<Vec<u8>>, Error> {
    if value.is_null() {
        return Ok(Arc::new(Vec::new()));
    }
    rmp_serde::to_vec_named(value)
        .map(Arc::new)
        .map_err(|e| Error::Config(format!("module {module}: cannot encode its config: {e}")))
}

impl Supervisor {
    async fn spawn_instance(
        myself: &ActorRef<SupervisorMsg>,
        st: &SupState,
        module: &Arc<str>,
        lib: Arc<Library>,
        config: Arc<Vec<u8>>,
        shared: Arc<InstanceShared>,
        start: StartFrom,
    ) -> Result<Route, Error> {
        let index = shared.index;
        let args = InstanceArgs {
            module: module.clone(),
            lib,
            config,
            start,
            shared: shared.clone(),
            limits: st.limits.clone(),
            bus: st.bus.clone(),
            directory: st.directory.clone(),
        };
        let (actor, _join) = Actor::spawn_linked(None, ModuleActor, args, myself.get_cell())
            .await
            .map_err(|e| Error::StartFailed {
                module: module.to_string(),
                instance: index,
                error: startup_message(e),
            })?;
        Ok(Route { actor, shared })
    }

    async fn add_module(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        spec: ModuleSpec,
    ) -> Result<(), Error> {
        if st.table.contains_key(&spec.name) {
            return Err(Error::Config(format!(
                "module {:?} is already running",
                spec.name
            )));
        }
        if spec.instances == 0 {
            return Err(Error::Config(format!(
                "module {:?}: instances must be at least 1",
                spec.name
            )));
        }
        let config = encode_config(&spec.name, &spec.config)?;
        let lib = reload::prepare::load(&st.loader, spec.library.clone(), &spec.name).await?;
        let module: Arc<str> = Arc::from(spec.name.as_str());
        let mut routes = Vec::with_capacity(spec.instances as usize);
        for index in 0..spec.instances {
            let shared = InstanceShared::new(index);
            match Self::spawn_instance(
                myself,
                st,
                &module,
                lib.clone(),
                config.clone(),
                shared,
                StartFrom::Fresh,
            )
            .await
            {
                Ok(route) => routes.push(route),
                Err(e) => {
                    for r in routes {
                        r.actor.stop(None);
                    }
                    return Err(e);
                }
            }
        }
        let slot = ModuleSlot::new(&spec.name, routes);
        slot.wants_events.store(lib.wants_events, Ordering::Relaxed);
        if let Ok(mut dir) = st.directory.write() {
            dir.insert(spec.name.clone(), slot.clone());
        }
        tracing::info!(target: "molt::supervisor", module = %spec.name, instances = spec.instances, "loaded {}", lib.describe());
        st.bus.publish(Event::ModuleLoaded {
            name: spec.name.clone(),
            version: lib.code_version.clone(),
            instances: spec.instances,
        });
        st.table.insert(
            spec.name.clone(),
            ModuleEntry {
                spec,
                config,
                current: lib,
                previous: None,
                slot,
                reloading: false,
            },
        );
        Ok(())
    }

    fn refuse(st: &mut SupState, module: &str, action: Action, from: String, error: &Error) {
        crate::metrics::reload_finished(module, Outcome::Refused);
        st.history.push(HistoryEntry {
            id: 0,
            at: SystemTime::now(),
            module: module.to_string(),
            action,
            from,
            to: String::new(),
            outcome: Outcome::Refused,
            phase: None,
            error: Some(error.to_string()),
            pause_us: 0,
        });
    }

    fn start_reload(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        module: String,
        action: Action,
        options: ReloadOptions,
        reset_state: bool,
        reply: RpcReplyPort<Result<ReloadReport, Error>>,
    ) {
        let Some(entry) = st.table.get_mut(&module) else {
            let _ = reply.send(Err(Error::UnknownModule(module)));
            return;
        };
        let from = entry.current.code_version.clone();
        if entry.reloading {
            let err = Error::ReloadInProgress(module.clone());
            Self::refuse(st, &module, action, from, &err);
            let _ = reply.send(Err(err));
            return;
        }
        let (source, mode, asked) = match action {
            // (A configuration change reloads through `Action::Reload`.)
            Action::Reload | Action::ApplyConfig => {
                let path = options
                    .library
                    .clone()
                    .unwrap_or_else(|| entry.spec.library.clone());
                (
                    Source::Path(path.clone()),
                    SwapMode::Upgrade,
                    path.display().to_string(),
                )
            }
            Action::Rollback => {
                let Some(prev) = entry.previous.clone() else {
                    let err = Error::RollbackRefused {
                        module: module.clone(),
                        reason: "there is no previous library (the module has not been reloaded)"
                            .into(),
                    };
                    Self::refuse(st, &module, action, from, &err);
                    let _ = reply.send(Err(err));
                    return;
                };
                // Back to an older state version: the current code
                // down-migrates. To the same or a newer one (rolling forward
                // again after a rollback): the previous library migrates the
                // current state as in any upgrade.
                let mode = if reset_state {
                    SwapMode::Reset
                } else if prev.state_version < entry.current.state_version {
                    SwapMode::Downgrade {
                        to: prev.state_version,
                    }
                } else {
                    SwapMode::Upgrade
                };
                let asked = prev.code_version.clone();
                (Source::Loaded(prev), mode, asked)
            }
        };
        let new_config = match &options.config {
            Some(value) => match encode_config(&module, value) {
                Ok(bytes) => Some((value.clone(), bytes)),
                Err(e) => {
                    Self::refuse(st, &module, action, from, &e);
                    let _ = reply.send(Err(e));
                    return;
                }
            },
            None => None,
        };
        entry.reloading = true;
        let plan = Plan {
            module: module.clone(),
            bus: st.bus.clone(),
            from: from.clone(),
            source,
            config: new_config
                .as_ref()
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| entry.config.clone()),
            mode,
            routes: entry.slot.routes.load().as_ref().clone(),
            limits: st.limits.clone(),
            loader: st.loader.clone(),
        };
        let me = myself.clone();
        let at = SystemTime::now();
        let new_path = options.library;
        tokio::spawn(async move {
            let outcome = reload::run(plan).await;
            let done = ReloadDone {
                module,
                action,
                reset_state,
                asked,
                new_config,
                new_path,
                at,
                outcome,
                reply,
            };
            let sent = me.send_message(SupervisorMsg::Internal(InternalMsg(Internal::ReloadDone(
                Box::new(done),
            ))));
            // The supervisor is gone: tell the caller.
            if let Err(ractor::MessagingErr::SendErr(SupervisorMsg::Internal(InternalMsg(
                Internal::ReloadDone(d),
            )))) = sent
            {
                let _ = d.reply.send(Err(Error::NodeDown));
            }
        });
    }

    fn finish_reload(st: &mut SupState, done: ReloadDone) {
        let ReloadDone {
            module,
            action,
            reset_state,
            asked,
            new_config,
            new_path,
            at,
            outcome,
            reply,
        } = done;
        let Some(entry) = st.table.get_mut(&module) else {
            let _ = reply.send(Err(Error::UnknownModule(module)));
            return;
        };
        entry.reloading = false;
        let from = entry.current.code_version.clone();
        let mut record = HistoryEntry {
            id: 0,
            at,
            module: module.clone(),
            action,
            from: from.clone(),
            to: outcome
                .target
                .as_ref()
                .map(|l| l.code_version.clone())
                .unwrap_or(asked),
            outcome: Outcome::Committed,
            phase: None,
            error: None,
            pause_us: 0,
        };
        let result = match outcome.result {
            Ok(committed) => {
                let target = outcome.target.expect("a committed reload has a target");
                let pauses_us: Vec<u64> = committed
                    .pauses
                    .iter()
                    .map(|d| d.as_micros() as u64)
                    .collect();
                let pause_us = pauses_us.iter().copied().max().unwrap_or(0);
                record.pause_us = pause_us;
                let old = std::mem::replace(&mut entry.current, target.clone());
                entry.previous = Some(old);
                if let Some(path) = new_path {
                    entry.spec.library = path;
                }
                if let Some((value, bytes)) = new_config {
                    entry.spec.config = value;
                    entry.config = bytes;
                }
                entry
                    .slot
                    .wants_events
                    .store(target.wants_events, Ordering::Relaxed);
                let to = target.code_version.clone();
                tracing::info!(target: "molt::supervisor", module = %module, %from, %to, pause_us, "{} committed", action_name(action));
                st.bus.publish(match action {
                    Action::Reload | Action::ApplyConfig => Event::ModuleReloaded {
                        name: module.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        pause_us,
                    },
                    Action::Rollback => Event::ModuleRolledBack {
                        name: module.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        reset_state,
                    },
                });
                Ok(ReloadReport {
                    module: module.clone(),
                    from,
                    to,
                    state_version: target.state_version,
                    pauses_us,
                    load_us: if action == Action::Reload {
                        target.load_time.as_micros() as u64
                    } else {
                        0
                    },
                })
            }
            Err(failure) => {
                record.phase = Some(failure.phase.to_string());
                record.error = Some(failure.error.clone());
                record.outcome = if failure.phase == Phase::Prepare {
                    Outcome::Rejected
                } else {
                    Outcome::RolledBack
                };
                tracing::warn!(target: "molt::supervisor", module = %module, phase = %failure.phase, "{} failed, {from} keeps serving: {}", action_name(action), failure.error);
                st.bus.publish(Event::ModuleReloadFailed {
                    name: module.clone(),
                    phase: failure.phase.to_string(),
                    error: failure.error.clone(),
                });
                if action == Action::Rollback && failure.kind == Some(ErrorKind::CannotDowngrade) {
                    record.outcome = Outcome::Refused;
                    Err(Error::RollbackRefused {
                        module: module.clone(),
                        reason: format!(
                            "{}; roll back with reset_state to start {} with a fresh state",
                            failure.error, record.to
                        ),
                    })
                } else if let Some(e) = outcome.load_error {
                    Err(e)
                } else {
                    Err(Error::ReloadFailed {
                        module: module.clone(),
                        phase: failure.phase,
                        error: failure.error,
                        from,
                    })
                }
            }
        };
        crate::metrics::reload_finished(&module, record.outcome);
        st.history.push(record);
        let _ = reply.send(result);
    }

    fn running_config(st: &SupState) -> NodeConfig {
        let mut c = st.base.clone();
        c.modules = st.table.values().map(|e| e.spec.clone()).collect();
        c
    }

    /// Takes the module out of the directory (new sends fail), then drains
    /// and stops its instances in a task; replies when they have stopped.
    fn remove_module(st: &mut SupState, module: String, reply: RpcReplyPort<Result<(), Error>>) {
        match st.table.get(&module) {
            None => {
                let _ = reply.send(Err(Error::UnknownModule(module)));
                return;
            }
            Some(e) if e.reloading => {
                let _ = reply.send(Err(Error::ReloadInProgress(module)));
                return;
            }
            Some(_) => {}
        }
        let entry = st.table.remove(&module).expect("checked above");
        if let Ok(mut dir) = st.directory.write() {
            dir.remove(&module);
        }
        let routes = entry.slot.routes.load().as_ref().clone();
        entry.slot.routes.store(Arc::new(Vec::new()));
        tracing::info!(target: "molt::supervisor", module = %module, "removing: draining {} instance(s)", routes.len());
        tokio::spawn(async move {
            drain_all(routes).await;
            let _ = reply.send(Ok(()));
        });
    }

    async fn scale(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        module: String,
        instances: u32,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
        let result = Self::scale_inner(myself, st, &module, instances).await;
        match result {
            Ok(removed) if !removed.is_empty() => {
                tokio::spawn(async move {
                    drain_all(removed).await;
                    let _ = reply.send(Ok(()));
                });
            }
            Ok(_) => {
                let _ = reply.send(Ok(()));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Scales and returns the routes of the removed instances (to drain).
    async fn scale_inner(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        module: &str,
        instances: u32,
    ) -> Result<Vec<Route>, Error> {
        if instances == 0 {
            return Err(Error::Config(format!(
                "module {module:?}: instances must be at least 1"
            )));
        }
        let Some(entry) = st.table.get(module) else {
            return Err(Error::UnknownModule(module.to_string()));
        };
        if entry.reloading {
            return Err(Error::ReloadInProgress(module.to_string()));
        }
        let (lib, config, slot) = (
            entry.current.clone(),
            entry.config.clone(),
            entry.slot.clone(),
        );
        let mut routes = slot.routes.load().as_ref().clone();
        let current = routes.len() as u32;
        let name: Arc<str> = Arc::from(module);
        let mut removed = Vec::new();
        if instances > current {
            for index in current..instances {
                let shared = InstanceShared::new(index);
                let route = Self::spawn_instance(
                    myself,
                    st,
                    &name,
                    lib.clone(),
                    config.clone(),
                    shared,
                    StartFrom::Fresh,
                )
                .await?;
                routes.push(route);
                // Each started instance is visible at once: a failure later
                // leaves the ones already started serving.
                slot.routes.store(Arc::new(routes.clone()));
            }
        } else {
            removed = routes.split_off(instances as usize);
            slot.routes.store(Arc::new(routes));
        }
        if let Some(entry) = st.table.get_mut(module) {
            entry.spec.instances = instances;
        }
        tracing::info!(target: "molt::supervisor", module, from = current, to = instances, "scaled");
        Ok(removed)
    }

    fn apply_config(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        config: NodeConfig,
        reply: RpcReplyPort<Result<ConfigReport, Error>>,
    ) {
        if let Err(e) = config.validate() {
            return Self::reject_config(st, e, reply);
        }
        if st.applying_config {
            let e = Error::Config("another configuration change is being applied".into());
            return Self::reject_config(st, e, reply);
        }
        let plan = diff::plan(&Self::running_config(st), &config);
        if !plan.is_applicable() {
            return Self::reject_config(
                st,
                Error::ConfigRejected {
                    keys: plan.restart_keys,
                },
                reply,
            );
        }
        st.applying_config = true;
        let admin = Admin::new(myself.clone());
        let me = myself.clone();
        let at = SystemTime::now();
        tokio::spawn(async move {
            let mut changes = Vec::with_capacity(plan.changes.len());
            for change in plan.changes {
                let result = apply_change(&admin, &change)
                    .await
                    .map_err(|e| e.to_string());
                changes.push((change, result));
            }
            let done = ConfigDone {
                at,
                report: ConfigReport { changes },
                reply,
            };
            let _ = me.send_message(SupervisorMsg::Internal(InternalMsg(Internal::ConfigDone(
                Box::new(done),
            ))));
        });
    }

    fn reject_config(
        st: &mut SupState,
        e: Error,
        reply: RpcReplyPort<Result<ConfigReport, Error>>,
    ) {
        tracing::warn!(target: "molt::supervisor", "configuration change rejected: {e}");
        st.bus.publish(Event::ConfigRejected {
            error: e.to_string(),
        });
        st.history.push(HistoryEntry {
            id: 0,
            at: SystemTime::now(),
            module: String::new(),
            action: Action::ApplyConfig,
            from: String::new(),
            to: String::new(),
            outcome: Outcome::Refused,
            phase: None,
            error: Some(e.to_string()),
            pause_us: 0,
        });
        let _ = reply.send(Err(e));
    }

    fn record_failure(st: &mut SupState, module: String, phase: Phase, error: String) {
        let from = st
            .table
            .get(&module)
            .map(|e| e.current.code_version.clone())
            .unwrap_or_default();
        tracing::warn!(target: "molt::supervisor", module = %module, phase = %phase, "reload failed, {from} keeps serving: {error}");
        crate::metrics::reload_finished(&module, Outcome::Rejected);
        st.bus.publish(Event::ModuleReloadFailed {
            name: module.clone(),
            phase: phase.to_string(),
            error: error.clone(),
        });
        st.history.push(HistoryEntry {
            id: 0,
            at: SystemTime::now(),
            module,
            action: Action::Reload,
            from,
            to: String::new(),
            outcome: Outcome::Rejected,
            phase: Some(phase.to_string()),
            error: Some(error),
            pause_us: 0,
        });
    }

    fn finish_config(st: &mut SupState, done: ConfigDone) {
        st.applying_config = false;
        let ConfigDone { at, report, reply } = done;
        let applied: Vec<String> = report
            .changes
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(c, _)| c.describe())
            .collect();
        let failed: Vec<String> = report
            .changes
            .iter()
            .filter_map(|(c, r)| r.as_ref().err().map(|e| format!("{}: {e}", c.describe())))
            .collect();
        st.history.push(HistoryEntry {
            id: 0,
            at,
            module: String::new(),
            action: Action::ApplyConfig,
            from: String::new(),
            to: applied.join("; "),
            outcome: if failed.is_empty() {
                Outcome::Committed
            } else {
                Outcome::RolledBack
            },
            phase: None,
            error: (!failed.is_empty()).then(|| failed.join("; ")),
            pause_us: 0,
        });
        tracing::info!(target: "molt::supervisor", applied = applied.len(), failed = failed.len(), "configuration change applied");
        st.bus.publish(Event::ConfigApplied {
            changes: applied,
            failed,
        });
        let _ = reply.send(Ok(report));
    }

    fn status(st: &SupState) -> NodeStatus {
        NodeStatus {
            node: st.node.clone(),
            modules: st
                .table
                .values()
                .map(|e| ModuleStatus {
                    name: e.spec.name.clone(),
                    library: e.spec.library.clone(),
                    code_version: e.current.code_version.clone(),
                    state_version: e.current.state_version,
                    previous: e.previous.as_ref().map(|p| p.code_version.clone()),
                    reloading: e.reloading,
                    instances: e
                        .slot
                        .routes
                        .load()
                        .iter()
                        .map(|r| InstanceStatus {
                            index: r.shared.index,
                            mailbox_depth: r.shared.mailbox_depth(),
                            handled: r.shared.handled.load(Ordering::Relaxed),
                            failed: r.shared.failed.load(Ordering::Relaxed),
                            restarts: r.shared.restarts.load(Ordering::Relaxed),
                        })
                        .collect(),
                })
                .collect(),
            libraries_mapped: mapped_libraries(),
            uptime_s: st.started.elapsed().as_secs(),
        }
    }

    /// An instance's actor failed (a host bug: module panics are caught in
    /// the library). Respawn it from its last good snapshot; messages that
    /// were in its mailbox are lost with the actor.
    async fn restart_failed(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        cell: ractor::ActorCell,
        reason: String,
    ) {
        let id = cell.get_id();
        let found = st.table.iter().find_map(|(name, e)| {
            e.slot
                .routes
                .load()
                .iter()
                .find(|r| r.actor.get_id() == id)
                .map(|r| (name.clone(), r.shared.clone()))
        });
        let Some((name, shared)) = found else { return };
        let (slot, config) = {
            let e = &st.table[&name];
            (e.slot.clone(), e.config.clone())
        };
        let last = shared.last_good.lock().ok().and_then(|g| g.clone());
        let Some((lib, snapshot)) = last else { return };
        tracing::error!(target: "molt::supervisor", module = %name, instance = shared.index, "instance actor failed ({reason}); restarting it from its last good snapshot");
        shared.restarts.fetch_add(1, Ordering::Relaxed);
        let handled = shared.handled.load(Ordering::Relaxed);
        shared.enqueued.store(handled, Ordering::Relaxed);
        let module: Arc<str> = Arc::from(name.as_str());
        match Self::spawn_instance(
            myself,
            st,
            &module,
            lib,
            config,
            shared.clone(),
            StartFrom::Snapshot(snapshot),
        )
        .await
        {
            Ok(route) => slot.replace(shared.index, route),
            Err(e) => {
                tracing::error!(target: "molt::supervisor", module = %name, "restart failed: {e}")
            }
        }
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Reload => "reload",
        Action::Rollback => "rollback",
        Action::ApplyConfig => "configuration change",
    }
}

/// Lets each instance handle what is already in its mailbox, then stops it
/// (its `stop` runs in `post_stop`).
async fn drain_all(routes: Vec<Route>) {
    for route in routes {
        if let Err(e) = route
            .actor
            .drain_and_wait(Some(std::time::Duration::from_secs(60)))
            .await
        {
            tracing::warn!(target: "molt::supervisor", instance = route.shared.index, "drain did not finish: {e}");
            route.actor.stop(None);
        }
    }
}

async fn apply_change(admin: &Admin, change: &Change) -> Result<(), Error> {
    match change {
        Change::Added { spec } => admin.add_module(spec.clone()).await,
        Change::Removed { module } => admin.remove_module(module).await,
        Change::Reload {
            module,
            library,
            config,
        } => admin
            .reload(
                module,
                ReloadOptions {
                    library: library.clone(),
                    config: config.clone(),
                },
            )
            .await
            .map(|_| ()),
        Change::Instances { module, to, .. } => admin.scale(module, *to).await,
    }
}

fn startup_message(e: ractor::SpawnErr) -> String {
    match e {
        ractor::SpawnErr::StartupFailed(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupState, ActorProcessingErr> {
        let mut base = args.base;
        base.modules.clear();
        let history = match &base.history_file {
            Some(file) => History::with_file(args.history_len, file)
                .map_err(|e| format!("cannot read the history file {}: {e}", file.display()))?,
            None => History::new(args.history_len),
        };
        Ok(SupState {
            base,
            applying_config: false,
            node: args.node,
            started: Instant::now(),
            table: BTreeMap::new(),
            history,
            loader: args.loader,
            bus: args.bus,
            directory: args.directory,
            limits: args.limits,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Admin(AdminMsg::Reload {
                module,
                options,
                reply,
            }) => Self::start_reload(&myself, st, module, Action::Reload, options, false, reply),
            SupervisorMsg::Admin(AdminMsg::Rollback {
                module,
                reset_state,
                reply,
            }) => Self::start_reload(
                &myself,
                st,
                module,
                Action::Rollback,
                ReloadOptions::default(),
                reset_state,
                reply,
            ),
            SupervisorMsg::Admin(AdminMsg::Status { reply }) => {
                let _ = reply.send(Self::status(st));
            }
            SupervisorMsg::Admin(AdminMsg::History { reply }) => {
                let _ = reply.send(st.history.entries());
            }
            SupervisorMsg::Admin(AdminMsg::AddModule { spec, reply }) => {
                let result = Self::add_module(&myself, st, spec).await;
                let _ = reply.send(result);
            }
            SupervisorMsg::Admin(AdminMsg::RemoveModule { module, reply }) => {
                Self::remove_module(st, module, reply)
            }
            SupervisorMsg::Admin(AdminMsg::Scale {
                module,
                instances,
                reply,
            }) => Self::scale(&myself, st, module, instances, reply).await,
            SupervisorMsg::Admin(AdminMsg::RunningConfig { reply }) => {
                let _ = reply.send(Self::running_config(st));
            }
            SupervisorMsg::Admin(AdminMsg::ApplyConfig { config, reply }) => {
                Self::apply_config(&myself, st, *config, reply)
            }
            SupervisorMsg::Admin(AdminMsg::ApplyConfigFile { path, reply }) => {
                match crate::config::file::load(&path) {
                    Ok(config) => Self::apply_config(&myself, st, config, reply),
                    Err(e) => Self::reject_config(st, e, reply),
                }
            }
            SupervisorMsg::Admin(AdminMsg::RecordFailure {
                module,
                phase,
                error,
            }) => Self::record_failure(st, module, phase, error),
            SupervisorMsg::Internal(InternalMsg(Internal::ConfigDone(done))) => {
                Self::finish_config(st, *done)
            }
            SupervisorMsg::Internal(InternalMsg(Internal::ReloadDone(done))) => {
                Self::finish_reload(st, *done)
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        // Never stop the supervisor because a child failed (ractor's default).
        if let SupervisionEvent::ActorFailed(cell, err) = evt {
            Self::restart_failed(&myself, st, cell, err.to_string()).await;
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        if let Ok(mut dir) = st.directory.write() {
            dir.clear();
        }
        for entry in st.table.values() {
            for route in entry.slot.routes.load().iter() {
                let _ = route
                    .actor
                    .stop_and_wait(None, Some(std::time::Duration::from_secs(5)))
                    .await;
            }
        }
        Ok(())
    }
}
