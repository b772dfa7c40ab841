//! The module actor: one instance of a module. It owns the current behaviour
//! and *becomes* the new one during a reload; its `ActorRef` never changes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use abi_stable::std_types::{RSlice, RStr};
use molt_abi::ffi::{BehaviourBox, HostCtxBox, ModError};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use crate::config::Limits;
use crate::directory::{Directory, InstanceShared, Snapshot};
use crate::events::{Event, EventBus};
use crate::host_ctx::HostContext;
use crate::loader::Library;
use crate::reload::{self, SwapRequest};

/// The messages a module instance takes.
pub(crate) enum ModuleMsg {
    /// A message whose reply nobody waits for.
    Cast(Vec<u8>),
    /// A message with a reply port.
    Call(Vec<u8>, oneshot::Sender<Result<Vec<u8>, ModError>>),
    /// Phase 2 of a reload: everything sent before this is handled by the old
    /// code, everything after it by whatever code the reload leaves.
    Swap(Box<SwapRequest>),
    /// A bus event for modules that asked for them.
    Event(Arc<Event>),
}

/// How an instance gets its first state.
pub(crate) enum StartFrom {
    /// `init` with the config.
    Fresh,
    /// `migrate` from a snapshot (a restart after the actor itself failed).
    Snapshot(Snapshot),
}

/// Everything an instance needs to start.
pub(crate) struct InstanceArgs {
    pub module: Arc<str>,
    pub lib: Arc<Library>,
    pub config: Arc<Vec<u8>>,
    pub start: StartFrom,
    pub shared: Arc<InstanceShared>,
    pub limits: Limits,
    pub bus: EventBus,
    pub directory: Directory,
}

/// A running instance: the actor's state.
pub(crate) struct Instance {
    pub module: Arc<str>,
    pub bus: EventBus,
    pub lib: Arc<Library>,
    pub behaviour: BehaviourBox,
    pub config: Arc<Vec<u8>>,
    pub ctx: HostCtxBox,
    pub shared: Arc<InstanceShared>,
    pub limits: Limits,
    consecutive_failures: u32,
}

impl Instance {
    pub fn index(&self) -> u32 {
        self.shared.index
    }

    /// Records the state a restart would rebuild this instance from.
    pub fn set_last_good(&self, lib: Arc<Library>, snapshot: Snapshot) {
        if let Ok(mut g) = self.shared.last_good.lock() {
            *g = Some((lib, snapshot));
        }
    }

    /// Counts a handled message; true when the failure limit is reached and
    /// the caller should [`Instance::restart_in_place`] (after replying).
    fn record(&mut self, ok: bool) -> bool {
        self.shared.handled.fetch_add(1, Ordering::Relaxed);
        if ok {
            self.consecutive_failures = 0;
            return false;
        }
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
        self.consecutive_failures += 1;
        let limit = self.limits.restart_after_failures;
        if limit > 0 && self.consecutive_failures >= limit {
            self.consecutive_failures = 0;
            return true;
        }
        false
    }

    /// Rebuilds the behaviour from the last good snapshot, keeping the actor
    /// (and so its mailbox). State changes since that snapshot are lost.
    fn restart_in_place(&mut self) {
        let last = self.shared.last_good.lock().ok().and_then(|g| g.clone());
        let Some((lib, snap)) = last else { return };
        // Stop before start, as in a swap (DESIGN.md §2 phase 5).
        let _ = self.behaviour.stop();
        let rebuilt = lib
            .migrate(snap.version, &snap.bytes, &self.config, self.ctx.clone())
            .and_then(|mut b| b.start().into_result().map(|()| b));
        match rebuilt {
            Ok(new) => {
                self.behaviour = new;
                self.lib = lib;
                self.shared.restarts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "molt::supervisor",
                    module = &*self.module,
                    instance = self.index(),
                    "restarted in place from the last good snapshot after repeated handler failures"
                );
            }
            Err(e) => {
                let _ = self.behaviour.start();
                tracing::error!(
                    target: "molt::supervisor",
                    module = &*self.module,
                    instance = self.index(),
                    "restart from the last good snapshot failed, keeping the current behaviour: {e}"
                );
            }
        }
    }
}

/// The actor type of module instances.
pub(crate) struct ModuleActor;

impl Actor for ModuleActor {
    type Msg = ModuleMsg;
    type State = Instance;
    type Arguments = InstanceArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ModuleMsg>,
        args: InstanceArgs,
    ) -> Result<Instance, ActorProcessingErr> {
        let index = args.shared.index;
        let ctx = HostContext::boxed(
            args.module.clone(),
            index,
            args.bus.clone(),
            args.directory.clone(),
        );
        let built = match &args.start {
            StartFrom::Fresh => args.lib.init(&args.config, ctx.clone()),
            StartFrom::Snapshot(s) => {
                args.lib
                    .migrate(s.version, &s.bytes, &args.config, ctx.clone())
            }
        };
        let mut behaviour = built.map_err(|e| format!("{}: {e}", e.kind.as_str()))?;
        behaviour
            .start()
            .into_result()
            .map_err(|e| format!("start {}: {e}", e.kind.as_str()))?;
        let snapshot = match args.start {
            StartFrom::Snapshot(s) => s,
            StartFrom::Fresh => Snapshot {
                version: args.lib.state_version,
                bytes: Arc::new(
                    behaviour
                        .snapshot()
                        .into_result()
                        .map_err(|e| format!("snapshot {}: {e}", e.kind.as_str()))?
                        .into_vec(),
                ),
            },
        };
        let instance = Instance {
            module: args.module,
            bus: args.bus,
            lib: args.lib,
            behaviour,
            config: args.config,
            ctx,
            shared: args.shared,
            limits: args.limits,
            consecutive_failures: 0,
        };
        instance.set_last_good(instance.lib.clone(), snapshot);
        Ok(instance)
    }

    async fn handle(
        &self,
        _myself: ActorRef<ModuleMsg>,
        msg: ModuleMsg,
        inst: &mut Instance,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ModuleMsg::Cast(bytes) => {
                let ok = inst
                    .behaviour
                    .handle(RSlice::from_slice(&bytes), false)
                    .is_ok();
                if inst.record(ok) {
                    inst.restart_in_place();
                }
            }
            ModuleMsg::Call(bytes, reply) => {
                let result = inst
                    .behaviour
                    .handle(RSlice::from_slice(&bytes), true)
                    .into_result()
                    .map(|v| v.into_vec());
                // Counted before the reply, so a status read after the
                // reply includes this message.
                let restart = inst.record(result.is_ok());
                let _ = reply.send(result);
                if restart {
                    inst.restart_in_place();
                }
            }
            ModuleMsg::Swap(req) => reload::on_instance(inst, *req).await,
            ModuleMsg::Event(event) => {
                if inst.lib.wants_events {
                    let json = event.to_json();
                    if let Err(e) = inst
                        .behaviour
                        .event(RStr::from_str(event.kind()), RStr::from_str(&json))
                        .into_result()
                    {
                        tracing::warn!(target: "molt::module", module = &*inst.module, "on_event failed: {e}");
                    }
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ModuleMsg>,
        inst: &mut Instance,
    ) -> Result<(), ActorProcessingErr> {
        if let Err(e) = inst.behaviour.stop().into_result() {
            tracing::warn!(target: "molt::module", module = &*inst.module, "stop failed: {e}");
        }
        Ok(())
    }
}
