//! The supervisor's module table: starting modules and their instances,
//! removing and scaling them (draining what leaves), status, and restarting
//! an instance whose actor failed.

use super::*;

use tokio::sync::oneshot;

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

    pub(super) async fn add_module(
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
                Ok(gone) => removed = gone.into_iter().zip(releases).collect(),
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
    pub(super) async fn restart_failed(
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
            Ok(route) => {
                if slot.replace(shared.index, route.clone()).is_err() {
                    // The module is being removed or the node stops.
                    route.actor.stop(None);
                }
            }
            Err(e) => {
                tracing::error!(target: "molt::supervisor", module = %name, "restart failed: {e}")
            }
        }
    }
}
