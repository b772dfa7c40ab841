//! The supervisor's module table: starting modules and their instances,
//! removing and scaling them (draining what leaves), status.

use super::*;

use tokio::sync::oneshot;

use crate::keyed::{Keyed, KeyedArgs, Serving};

/// A module's library, loaded (or not) in a task for [`Supervisor::add_module`].
pub(crate) struct AddDone {
    spec: ModuleSpec,
    config: Arc<Vec<u8>>,
    loaded: Result<Arc<Library>, Error>,
    reply: RpcReplyPort<Result<(), Error>>,
}

pub(super) fn encode_config(
    module: &str,
    value: &serde_json::Value,
) -> Result<Arc<Vec<u8>>, Error> {
    if value.is_null() {
        return Ok(Arc::new(Vec::new()));
    }
    rmp_serde::to_vec_named(value)
        .map(Arc::new)
        .map_err(|e| Error::Config(format!("module {module}: cannot encode its config: {e}")))
}

/// How long a removed module or instance may take to handle its queue.
const REMOVAL_DRAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Lets each instance a scale-down removed handle what is already in its
/// mailbox, then stops it (its `stop` runs in `post_stop`); then releases
/// its forwarder (issue #8 item 11), which passes on what came after.
pub(super) async fn drain_retired(retired: Vec<(Route, oneshot::Sender<()>)>) {
    let drains = retired.into_iter().map(|(route, release)| async move {
        if let Err(e) = route.actor.drain_and_wait(Some(REMOVAL_DRAIN)).await {
            tracing::warn!(target: "molt::supervisor", instance = route.shared.index, "drain did not finish: {e}");
            let _ = route.actor.stop_and_wait(None, Some(REMOVAL_DRAIN)).await;
        }
        let _ = release.send(());
    });
    futures_util::future::join_all(drains).await;
}

pub(super) fn startup_message(e: ractor::SpawnErr) -> String {
    match e {
        ractor::SpawnErr::StartupFailed(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

impl Supervisor {
    pub(super) async fn spawn_instance(
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
            key: None,
            node: Arc::from(st.node.as_str()),
            module: module.clone(),
            lib,
            config,
            start,
            shared: shared.clone(),
            limits: st.limits.clone(),
            bus: st.bus.clone(),
            directory: st.directory.clone(),
            on_restart: Self::restart_sink(myself),
            keyed_figures: None,
        };
        let (actor, _join) = Actor::spawn_linked(None, ModuleActor, args, myself.get_cell())
            .await
            .map_err(|e| Error::StartFailed {
                module: module.to_string(),
                instance: molt_abi::index::from_ffi(index),
                error: startup_message(e),
            })?;
        Ok(Route { actor, shared })
    }

    /// Starts adding a module: checks the request, then loads the library
    /// in a task (a slow or hanging load never blocks the supervisor:
    /// status, admin and `/healthz` keep answering); [`Self::finish_add`]
    /// starts the instances when it is loaded. The name is reserved
    /// meanwhile, so a module is added once.
    pub(super) fn add_module(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        spec: ModuleSpec,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
        let refused = if st.table.contains_key(&spec.name) {
            Some(Error::Config(format!(
                "module {:?} is already running",
                spec.name
            )))
        } else if st.adding.contains(&spec.name) {
            Some(Error::Config(format!(
                "module {:?} is already being added (its library is loading)",
                spec.name
            )))
        } else if spec.instances == 0 {
            Some(Error::Config(format!(
                "module {:?}: instances must be at least 1",
                spec.name
            )))
        } else {
            None
        };
        if let Some(e) = refused {
            let _ = reply.send(Err(e));
            return;
        }
        let config = match encode_config(&spec.name, &spec.config) {
            Ok(c) => c,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        st.adding.insert(spec.name.clone());
        let loader = st.loader.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let loaded = reload::prepare::load(&loader, spec.library.clone(), &spec.name).await;
            let done = AddDone {
                spec,
                config,
                loaded,
                reply,
            };
            // Fails only when the supervisor has stopped: the reply port
            // goes with the message, and the caller learns NodeDown.
            let _ = me.send_message(SupervisorMsg::Internal(InternalMsg(Internal::AddDone(
                Box::new(done),
            ))));
        });
    }

    /// The library of a module being added is loaded (or not): starts its
    /// instances and enters it in the table.
    pub(super) async fn finish_add(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        done: AddDone,
    ) {
        let AddDone {
            spec,
            config,
            loaded,
            reply,
        } = done;
        st.adding.remove(&spec.name);
        let result = match loaded {
            Ok(lib) => Self::start_module(myself, st, spec, config, lib).await,
            Err(e) => Err(e),
        };
        let _ = reply.send(result);
    }

    async fn start_module(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        spec: ModuleSpec,
        config: Arc<Vec<u8>>,
        lib: Arc<Library>,
    ) -> Result<(), Error> {
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
        let figures = crate::figures_book::FiguresBook::new(&lib.code_version);
        let keyed = spec.keyed.as_ref().map(|keyed| {
            let keyed = Keyed::start(KeyedArgs {
                node: Arc::from(st.node.as_str()),
                module: module.clone(),
                spec: keyed.clone(),
                serving: Serving {
                    lib: lib.clone(),
                    config: config.clone(),
                },
                limits: st.limits.clone(),
                bus: st.bus.clone(),
                directory: st.directory.clone(),
                on_restart: Self::restart_sink(myself),
                figures: figures.clone(),
            });
            slot.set_keyed(keyed.clone());
            keyed
        });
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
                source: LibrarySource::Config,
                versions: Stack::default(),
                slot,
                keyed,
                reloading: false,
                figures,
            },
        );
        Ok(())
    }

    pub(super) fn running_config(st: &SupState) -> NodeConfig {
        let mut c = st.base.clone();
        c.modules = st.table.values().map(|e| e.spec.clone()).collect();
        c
    }

    /// Takes the module out of the directory (new sends fail), then drains
    /// and stops its instances in a task; replies when they have stopped.
    pub(super) fn remove_module(
        st: &mut SupState,
        module: String,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
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
        tracing::info!(target: "molt::supervisor", module = %module, "removing: draining {} instance(s)", entry.slot.routes.load().len());
        tokio::spawn(async move {
            crate::shutdown::drain_slots(vec![(module, entry.slot)], REMOVAL_DRAIN).await;
            let _ = reply.send(Ok(()));
        });
    }

    pub(super) async fn scale(
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
                    drain_retired(removed).await;
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

    /// Scales and returns the routes of the removed instances (to drain),
    /// each with the release of its forwarder (see [`drain_retired`]).
    pub(super) async fn scale_inner(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        module: &str,
        instances: u32,
    ) -> Result<Vec<(Route, oneshot::Sender<()>)>, Error> {
        if instances == 0 {
            return Err(Error::Config(format!(
                "module {module:?}: instances must be at least 1"
            )));
        }
        let Some(entry) = st.table.get(module) else {
            return Err(Error::UnknownModule(module.to_string()));
        };
        if entry.keyed.is_some() {
            return Err(Error::NotForKeyed {
                module: module.to_string(),
                what: "scaling (it runs one actor per key, not a pool of instances)",
            });
        }
        if entry.reloading {
            return Err(Error::ReloadInProgress(module.to_string()));
        }
        let (lib, config, slot) = (
            entry.current.clone(),
            entry.config.clone(),
            entry.slot.clone(),
        );
        let current = slot.routes.load().len() as u32;
        let name: Arc<str> = Arc::from(module);
        // Forwarders nobody can reach any more pass on what they hold, then stop.
        let unreachable = slot.prune_retired();
        if !unreachable.is_empty() {
            tokio::spawn(async move {
                for f in unreachable {
                    let _ = f.actor.drain_and_wait(Some(REMOVAL_DRAIN)).await;
                }
            });
        }
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
                // Each started instance is visible at once: a failure later
                // leaves the ones already started serving. A scale-up never
                // moves a handle: the new instance gets a lane of its own.
                if slot.push(route.clone()).is_err() {
                    route.actor.stop(None);
                    return Err(Error::UnknownModule(module.to_string()));
                }
            }
        } else if instances < current {
            // Issue #8 item 11: each removed instance's lane switches to a
            // forwarder to instance `index % instances`, released once the
            // removed instance has handled its queue.
            let lanes = slot.lanes.load_full();
            let mut forwarders: Vec<Route> = Vec::new();
            let mut releases = Vec::new();
            for index in instances..current {
                let (release, released) = oneshot::channel();
                let shared = InstanceShared::new(index);
                let args = crate::forwarder::ForwarderArgs {
                    to: lanes[(index % instances) as usize].clone(),
                    shared: shared.clone(),
                    released,
                };
                let actor = match Actor::spawn(None, crate::forwarder::Forwarder, args).await {
                    Ok((actor, _join)) => actor,
                    Err(e) => {
                        for f in &forwarders {
                            f.actor.stop(None);
                        }
                        return Err(Error::Spawn(e.to_string()));
                    }
                };
                forwarders.push(Route { actor, shared });
                releases.push(release);
            }
            match slot.retire_from(instances as usize, forwarders.clone()) {
                Ok(gone) => {
                    if let Some(entry) = st.table.get(module) {
                        for route in &gone {
                            entry.figures.retire_instance(&route.shared);
                        }
                    }
                    removed = gone.into_iter().zip(releases).collect()
                }
                Err(_) => {
                    for f in forwarders {
                        f.actor.stop(None);
                    }
                    return Err(Error::UnknownModule(module.to_string()));
                }
            }
        }
        if let Some(entry) = st.table.get_mut(module) {
            entry.spec.instances = instances;
        }
        tracing::info!(target: "molt::supervisor", module, from = current, to = instances, "scaled");
        Ok(removed)
    }

    /// A module's handling figures (docs/semantics.md "Handling figures").
    pub(super) fn figures(st: &SupState, module: &str) -> Result<ModuleFigures, Error> {
        let entry = st
            .table
            .get(module)
            .ok_or_else(|| Error::UnknownModule(module.to_string()))?;
        Ok(entry.figures.read(module, &entry.slot.routes.load()))
    }

    pub(super) fn status(st: &SupState) -> NodeStatus {
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
                    previous: e.versions.previous().map(|p| p.lib.code_version.clone()),
                    versions: {
                        let mut v = e.versions.code_versions();
                        v.push(e.current.code_version.clone());
                        v
                    },
                    source: e.source,
                    reloading: e.reloading,
                    instances: e
                        .slot
                        .routes
                        .load()
                        .iter()
                        .map(|r| {
                            let checkpoint = r.shared.checkpoint();
                            InstanceStatus {
                                index: molt_abi::index::from_ffi(r.shared.index),
                                mailbox_depth: r.shared.mailbox_depth(),
                                handled: r.shared.handled.load(Ordering::Relaxed),
                                failed: r.shared.failed.load(Ordering::Relaxed),
                                restarts: r.shared.restarts.load(Ordering::Relaxed),
                                checkpoint_covers: checkpoint.map_or(0, |c| c.handled),
                                checkpoint_failures: r
                                    .shared
                                    .checkpoint_failures
                                    .load(Ordering::Relaxed),
                            }
                        })
                        .collect(),
                    keyed: e.slot.keyed().map(|k| k.status()),
                })
                .collect(),
            libraries_mapped: mapped_libraries(),
            uptime_s: st.started.elapsed().as_secs(),
        }
    }
}
