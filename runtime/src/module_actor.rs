//! The module actor: one instance of a module. It owns the current behaviour
//! and *becomes* the new one during a reload; its `ActorRef` never changes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

mod checkpoint;

use std::time::Instant;

use abi_stable::std_types::{RSlice, RStr, RVec};
use molt_abi::ffi::{BehaviourBox, HostCtxBox, ModError};
use molt_abi::ErrorKind;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::Limits;
use crate::delivery::{Delivery, Origin, Runner};
use crate::directory::{Checkpoint, Directory, InstanceShared, Snapshot};
use crate::events::{Event, EventBus};
use crate::figures::SAMPLE_EVERY;
use crate::figures_book::{FiguresBook, KeyedSeat};
use crate::host_ctx::{CtxParts, HostContext};
use crate::loader::Library;
use crate::msg_bytes::MsgBytes;
use crate::rehearsal::RehearseRequest;
use crate::reload::{self, SwapRequest};
use crate::replies::{self, ReplyPort};
use crate::restart::RestartSink;

/// The messages a module instance takes.
pub(crate) enum ModuleMsg {
    /// A message whose reply nobody waits for, and its sender.
    Cast(MsgBytes, Origin),
    /// A message with a reply port, and its sender.
    Call(MsgBytes, ReplyPort, Origin),
    /// The answer to a request this instance made with `ctx.ask`.
    Answer(Box<AnswerMsg>),
    /// Phase 2 of a reload: everything sent before this is handled by the old
    /// code, everything after it by whatever code the reload leaves.
    Swap(Box<SwapRequest>),
    /// A bus event for modules that asked for them.
    Event(Arc<Event>),
    /// A rehearsal (dry run) of a reload: take a snapshot between messages
    /// and hand it over; nothing else changes (DESIGN.md §6 "Rehearsal").
    Rehearse(Box<RehearseRequest>),
    /// The checkpoint interval ended: take a checkpoint if the instance
    /// handled something since the last one (sent by the instance to itself,
    /// through the mailbox, so it is taken between messages).
    Checkpoint,
    /// A committed reload of a keyed module switches this live actor over
    /// to the new code, between two messages (`reload::switch_over`).
    SwitchOver(Box<reload::switch_over::SwitchRequest>),
    /// A keyed actor is passivated (`crate::keyed`: idle, or a switch-over
    /// its actor could not make): take a last snapshot, send it with the instant the
    /// actor stopped handling messages, and stop. Its key's later messages
    /// wait in the host meanwhile, so this is the last message the actor gets.
    Passivate(tokio::sync::oneshot::Sender<Result<(Checkpoint, Instant), String>>),
}

// With ractor's `cluster` feature (molt-runtime's `cluster`) ractor has no
// blanket `Message` impl: a local-only message type says so.
#[cfg(feature = "cluster")]
impl ractor::Message for ModuleMsg {}

/// The answer to a request an instance made (`ctx.ask`), delivered to it
/// through its mailbox like any message.
pub(crate) struct AnswerMsg {
    /// What the asker chose to recognise it by.
    pub correlation: u64,
    /// The actor asked.
    pub from: Origin,
    /// Its reply, or why there is none.
    pub result: Result<Vec<u8>, ModError>,
}

/// How an instance gets its first state.
pub(crate) enum StartFrom {
    /// `init` with the config.
    Fresh,
    /// `migrate` from a checkpoint (a restart after the actor itself failed,
    /// or a forced reload replacing a hung actor).
    Checkpoint(Checkpoint),
}

/// Everything an instance needs to start.
pub(crate) struct InstanceArgs {
    /// The node's name (the node part of the instance's address).
    pub node: Arc<str>,
    /// The key of a keyed module's actor (its address names the key).
    pub key: Option<Arc<[u8]>>,
    pub module: Arc<str>,
    pub lib: Arc<Library>,
    pub config: Arc<Vec<u8>>,
    pub start: StartFrom,
    pub shared: Arc<InstanceShared>,
    pub limits: Limits,
    pub bus: EventBus,
    pub directory: Directory,
    /// Where restarts in place are reported.
    pub on_restart: RestartSink,
    /// A keyed actor's module figures, which it joins while it runs (a pool
    /// instance's are read through the module's routes: `None`).
    pub keyed_figures: Option<Arc<FiguresBook>>,
}

/// A running instance: the actor's state.
pub(crate) struct Instance {
    pub module: Arc<str>,
    pub bus: EventBus,
    pub lib: Arc<Library>,
    pub behaviour: BehaviourBox,
    pub config: Arc<Vec<u8>>,
    pub ctx: HostCtxBox,
    /// Runs the deliveries (the message being handled, as the context sees it).
    delivery: Runner,
    pub shared: Arc<InstanceShared>,
    pub limits: Limits,
    on_restart: RestartSink,
    /// Handler panics in a row (errors neither count nor reset it).
    consecutive_panics: u32,
    myself: ActorRef<ModuleMsg>,
    checkpoints: checkpoint::Schedule,
    /// Messages since the instance started, for sampling: one in
    /// [`SAMPLE_EVERY`] is timed (docs/semantics.md "Handling figures").
    sample_tick: u32,
    /// A keyed actor's place in its module's figures (see
    /// [`InstanceArgs::keyed_figures`]), handed back when it stops.
    keyed_seat: Option<KeyedSeat>,
}

/// `behaviour`'s state as bytes, written by the module into a buffer the
/// host allocated (`snapshot_into`), so the bytes are not copied again out
/// of the library's allocation (a library built before `snapshot_into`
/// copies them once, as `snapshot` did). `hint`: the size expected.
///
/// # Errors
/// The module's error when its state does not encode.
pub(crate) fn snapshot_bytes(behaviour: &BehaviourBox, hint: usize) -> Result<Vec<u8>, ModError> {
    let mut out = RVec::with_capacity(hint);
    behaviour.snapshot_into(&mut out).into_result()?;
    Ok(out.into_vec())
}

impl Instance {
    pub(crate) fn index(&self) -> u32 {
        self.shared.index
    }

    /// The state now, at the library's state version (what a reload hands
    /// to the new code, a checkpoint keeps and a passivation stores; see
    /// [`snapshot_bytes`]).
    ///
    /// # Errors
    /// The module's error when its state does not encode.
    pub(crate) fn snapshot_now(&self) -> Result<Snapshot, ModError> {
        let bytes = snapshot_bytes(&self.behaviour, self.snapshot_size_hint())?;
        Ok(Snapshot {
            version: self.lib.state_version,
            bytes: Arc::new(bytes),
        })
    }

    /// The size the next snapshot is expected to have: that of the last
    /// checkpoint, with some room to grow (a large state's buffer is then
    /// not reallocated, and copied, while it is written).
    fn snapshot_size_hint(&self) -> usize {
        let last = self
            .shared
            .last_good
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|c| c.snapshot.bytes.len()))
            .unwrap_or(0);
        last + last / 16 + 256
    }

    /// Records the state a restart would rebuild this instance from: a
    /// checkpoint taken now (a committed swap's state). Returns the
    /// checkpoint it replaces.
    pub(crate) fn set_last_good(
        &mut self,
        lib: Arc<Library>,
        snapshot: Snapshot,
    ) -> Option<Checkpoint> {
        self.store_checkpoint(lib, snapshot, Instant::now())
    }

    /// When the message about to be handled is one of the sampled ones
    /// (one in [`SAMPLE_EVERY`]), the instant its handling begins: a counter
    /// check per message, a clock read per sampled one.
    #[inline]
    fn timer(&mut self) -> Option<Instant> {
        let tick = self.sample_tick;
        self.sample_tick = tick.wrapping_add(1);
        (tick % SAMPLE_EVERY == 0).then(Instant::now)
    }

    /// Counts a handled message (`failed`: the error kind when its handler
    /// failed; `timer`: from [`Instance::timer`], its sampled handling time
    /// ends now); true when the panic limit is reached and the caller should
    /// [`Instance::restart_in_place`] (after replying). Only panics count
    /// toward `restart_after_failures` (docs/semantics.md "Restarts and
    /// checkpoints"): an error is an answer (a refused request, an undecodable
    /// message), not a broken state.
    fn record(&mut self, failed: Option<ErrorKind>, timer: Option<Instant>) -> bool {
        if let Some(began) = timer {
            self.shared.figures.timed(began.elapsed().as_nanos() as u64);
        }
        // This actor is the only writer of its `handled` (a replacement
        // after a forced reload gets an `InstanceShared` of its own): a
        // load and a store, no locked read-modify-write per message.
        let handled = &self.shared.handled;
        handled.store(handled.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.handled_one();
        let Some(kind) = failed else {
            self.consecutive_panics = 0;
            return false;
        };
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
        if kind != ErrorKind::Panicked {
            return false;
        }
        self.shared.figures.panicked();
        self.consecutive_panics += 1;
        let limit = self.limits.restart_after_failures;
        if limit > 0 && self.consecutive_panics >= limit {
            self.consecutive_panics = 0;
            return true;
        }
        false
    }

    /// Handles `msg` now, on the actor's task, between two messages: every
    /// message but phase 2 of a reload, which is handed back for the actor
    /// to await ([`ModuleActor`]'s `handle`).
    fn handle_now(
        &mut self,
        myself: &ActorRef<ModuleMsg>,
        msg: ModuleMsg,
    ) -> Option<Box<SwapRequest>> {
        match msg {
            ModuleMsg::Cast(bytes, sender) => {
                let timer = self.timer();
                let (failed, _) = self.delivery.run(sender, None, || {
                    // No reply is written: `out` stays empty (no allocation).
                    let mut out = RVec::new();
                    self.behaviour
                        .handle_into(RSlice::from_slice(&bytes), false, &mut out)
                        .into_result()
                        .err()
                        .map(|e| e.kind)
                });
                if self.record(failed, timer) {
                    self.restart_in_place();
                }
            }
            ModuleMsg::Call(bytes, reply, sender) => {
                let timer = self.timer();
                let (result, ended) = self.delivery.run(sender, Some(reply), || {
                    // The reply is written into the host's own vector
                    // (`handle_into`), so `into_vec` hands it on without
                    // a copy.
                    let mut out = RVec::new();
                    self.behaviour
                        .handle_into(RSlice::from_slice(&bytes), true, &mut out)
                        .into_result()
                        .map(|()| out.into_vec())
                });
                // Counted before the reply, so a status read after the
                // reply includes this message.
                let restart = self.record(result.as_ref().err().map(|e| e.kind), timer);
                match (ended.port, ended.kept) {
                    (Some(port), _) => {
                        let _ = port.send(result);
                    }
                    // Kept open, but the handler failed: its error is the
                    // answer (the module may never have stored the token).
                    (None, Some(token)) => {
                        if let Err(e) = result {
                            let _ = replies::answer(token, Err(e));
                        }
                    }
                    (None, None) => {}
                }
                if restart {
                    self.restart_in_place();
                }
            }
            ModuleMsg::Answer(answer) => {
                let AnswerMsg {
                    correlation,
                    from,
                    result,
                } = *answer;
                let timer = self.timer();
                let (outcome, _) = self.delivery.run(from, None, || {
                    self.behaviour
                        .answer(correlation, result.map(RVec::from).into())
                        .into_result()
                });
                let failed = outcome.as_ref().err().map(|e| e.kind);
                if let Err(e) = outcome {
                    tracing::warn!(target: "molt::module", module = &*self.module, instance = self.index(), correlation, "handle_answer failed: {e}");
                }
                if self.record(failed, timer) {
                    self.restart_in_place();
                }
            }
            ModuleMsg::Swap(req) => return Some(req),
            ModuleMsg::SwitchOver(req) => reload::switch_over::on_instance(self, *req),
            ModuleMsg::Checkpoint => self.checkpoint_due(),
            ModuleMsg::Rehearse(req) => crate::rehearsal::on_instance(self, *req),
            ModuleMsg::Passivate(reply) => {
                let began = Instant::now();
                let taken = self
                    .snapshot_now()
                    .map(|snapshot| self.checkpoint_of(self.lib.clone(), snapshot, Instant::now()))
                    .map(|cp| (cp, began))
                    .map_err(|e| format!("snapshot {}: {e}", e.kind.as_str()));
                let ok = taken.is_ok();
                // Stopped only when the host took the snapshot (it may have
                // given up waiting: then the actor keeps serving).
                if reply.send(taken).is_ok() && ok {
                    myself.stop(Some("passivated".into()));
                }
            }
            ModuleMsg::Event(event) => {
                if self.lib.wants_events {
                    let json = event.to_json();
                    if let Err(e) = self
                        .behaviour
                        .event(RStr::from_str(event.kind()), RStr::from_str(&json))
                        .into_result()
                    {
                        tracing::warn!(target: "molt::module", module = &*self.module, "handle_event failed: {e}");
                    }
                }
            }
        }
        None
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
        myself: ActorRef<ModuleMsg>,
        args: InstanceArgs,
    ) -> Result<Instance, ActorProcessingErr> {
        let index = args.shared.index;
        let delivery = Delivery::default();
        let ctx = HostContext::boxed(CtxParts {
            node: args.node.clone(),
            module: args.module.clone(),
            instance: index,
            key: args.key.clone(),
            bus: args.bus.clone(),
            directory: args.directory.clone(),
            delivery: delivery.clone(),
            call_timeout: args.limits.call_timeout,
        });
        let built = match &args.start {
            StartFrom::Fresh => args.lib.init(&args.config, ctx.clone()),
            StartFrom::Checkpoint(c) => args.lib.migrate(
                c.snapshot.version,
                &c.snapshot.bytes,
                &args.config,
                ctx.clone(),
            ),
        };
        let mut behaviour = built.map_err(|e| format!("{}: {e}", e.kind.as_str()))?;
        behaviour
            .start()
            .into_result()
            .map_err(|e| format!("start {}: {e}", e.kind.as_str()))?;
        let checkpoint = match args.start {
            // Restarted with the code that wrote the checkpoint: it stays
            // the newest (and keeps its age).
            StartFrom::Checkpoint(c) if Arc::ptr_eq(&c.lib, &args.lib) => c,
            // New code (a forced reload): a restart must rebuild with it, so
            // its own snapshot of the same state, dated as the checkpoint.
            start => {
                let (at, from_start, handled) = match start {
                    StartFrom::Checkpoint(c) => (c.at, c.from_start, c.handled),
                    StartFrom::Fresh => (
                        Instant::now(),
                        true,
                        args.shared.handled.load(Ordering::Relaxed),
                    ),
                };
                let bytes = snapshot_bytes(&behaviour, 0)
                    .map_err(|e| format!("snapshot {}: {e}", e.kind.as_str()))?;
                Checkpoint {
                    lib: args.lib.clone(),
                    snapshot: Snapshot {
                        version: args.lib.state_version,
                        bytes: Arc::new(bytes),
                    },
                    at,
                    from_start,
                    handled,
                }
            }
        };
        let mut instance = Instance {
            module: args.module,
            bus: args.bus,
            lib: args.lib,
            behaviour,
            config: args.config,
            ctx,
            delivery: Runner::new(delivery),
            shared: args.shared,
            limits: args.limits,
            on_restart: args.on_restart,
            consecutive_panics: 0,
            myself,
            checkpoints: checkpoint::Schedule::new(checkpoint.at),
            sample_tick: 0,
            keyed_seat: None,
        };
        if let Ok(mut g) = instance.shared.last_good.lock() {
            *g = Some(checkpoint);
        }
        instance.keyed_seat = args
            .keyed_figures
            .map(|book| book.register_keyed(&instance.shared));
        Ok(instance)
    }

    /// Not an `async fn`: ractor builds the future `handle` returns for
    /// every message and moves it, nested in its own loop's futures, several
    /// times before it is polled; an `async fn` holding the message and the
    /// arms' state made each move a copy of all of it. The message is
    /// handled here, when ractor calls `handle` (it awaits the future at
    /// once, on the same task), and the future returned holds only a
    /// reload's boxed swap, if the message is one (BENCHMARKS.md "The
    /// host's share, fourth round").
    fn handle(
        &self,
        myself: ActorRef<ModuleMsg>,
        msg: ModuleMsg,
        inst: &mut Instance,
    ) -> impl std::future::Future<Output = Result<(), ActorProcessingErr>> + Send {
        // Boxed: the reload's state machine is ~1,900 bytes (BENCHMARKS.md,
        // "Where a message's time goes").
        let swap = inst
            .handle_now(&myself, msg)
            .map(|req| Box::pin(reload::on_instance(inst, *req)));
        async move {
            if let Some(swap) = swap {
                swap.await;
            }
            Ok(())
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ModuleMsg>,
        inst: &mut Instance,
    ) -> Result<(), ActorProcessingErr> {
        if let Err(e) = inst.behaviour.stop().into_result() {
            tracing::warn!(target: "molt::module", module = &*inst.module, "stop failed: {e}");
        }
        if let Some(seat) = inst.keyed_seat.take() {
            seat.retire();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a closure returns, without running it.
    fn future_size<F: std::future::Future>(_: impl FnOnce() -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// ractor builds `handle`'s future for every message and moves it,
    /// nested in its own loop's futures, several times: a reload's state
    /// machine inlined in it made every cast pay a copy of ~2 KiB, and the
    /// message and the arms' state held in it ~200 bytes (BENCHMARKS.md,
    /// "Where a message's time goes" and "The host's share, fourth round").
    /// The message is handled when `handle` is called; its future holds a
    /// boxed swap at most. This keeps it so.
    #[test]
    #[allow(unreachable_code, clippy::diverging_sub_expression)]
    fn the_handle_future_stays_small() {
        static ACTOR: ModuleActor = ModuleActor;
        let size = future_size(|| ACTOR.handle(unreachable!(), unreachable!(), unreachable!()));
        assert!(size <= 32, "ModuleActor::handle's future is {size} bytes");
    }

    /// ractor boxes every message: a module message is the size of its
    /// call variant (inline bytes, a reply port, a sender) and must not grow
    /// unnoticed (a larger box and more bytes moved per message).
    #[test]
    fn a_module_message_stays_72_bytes() {
        assert_eq!(std::mem::size_of::<ModuleMsg>(), 72);
    }
}
