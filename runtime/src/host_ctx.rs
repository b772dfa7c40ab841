//! The host side of a module's context: logs into the host's `tracing`
//! subscriber, metrics into the host's `metrics` recorder, events onto the
//! node's bus, messages to other actors through the directory, and the
//! current delivery (sender, calls kept open).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RErr, ROk, ROption, RResult, RSlice, RStr, RString};
use molt_abi::ffi::{AddressRef, ErrorKind, HostCtx, HostCtxBox, HostCtx_TO, ModError, RAddress};
use molt_abi::{index, Address, Level};
use tokio::sync::oneshot;

use crate::delivery::Delivery;
use crate::directory::{lookup, Directory, Lane, ModuleSlot};
use crate::events::{Event, EventBus};
use crate::module_actor::{AnswerMsg, ModuleMsg};
use crate::resolve::{self, NoActor};
use crate::routes::{Routes, To};
use crate::sender::Sender;

mod metric_handles;
use metric_handles::MetricHandles;

/// A routing slot by module name, with the lanes this instance resolved in
/// it (by the instance index asked for).
type CachedSlot = (String, Arc<ModuleSlot>, Vec<(u32, Arc<Lane>)>);

/// The routing slots this instance sends to.
type SlotCache = Mutex<Vec<CachedSlot>>;

/// A lane `ctx.cast` resolved (module name, instance index asked for, the
/// module's slot, the lane), found without a lock: see
/// [`HostContext::send_pinned`].
type PinnedLane = (Box<str>, u32, Arc<ModuleSlot>, Arc<Lane>);

/// How many of the lanes `ctx.cast` resolves are found without a lock.
const PINNED_FAST: usize = 4;

/// What one instance's module code can reach.
#[derive(Clone)]
pub(crate) struct HostContext {
    module: Arc<str>,
    instance: u32,
    /// This actor's address: the sender of what it sends (an instance's is
    /// interned: no reference count per message).
    me: Sender,
    bus: EventBus,
    directory: Directory,
    /// The message being handled (sender, call kept open).
    delivery: Delivery,
    /// How long a request made with `ask` waits for its reply.
    call_timeout: Duration,
    /// What it learns as it runs, shared with its clones.
    caches: Arc<Caches>,
}

/// What an instance's context learns as it runs (routes, metric handles),
/// shared by the context's clones: one allocation per context, the metric
/// handles made at the first use (a keyed module makes a context per
/// activation, and most modules never call `ctx.counter`; issue #11 §3).
#[derive(Default)]
struct Caches {
    /// Routing slots of the modules this one sends to, by name.
    slots: SlotCache,
    /// The first lanes `ctx.cast` resolved, in order, each set once under
    /// `slots`' lock (the same `Arc<Lane>` as there): read without a lock.
    pinned: [OnceLock<PinnedLane>; PINNED_FAST],
    /// Metric handles by name: registering (name formatting, label
    /// allocation, registry lookup) happens once per name, not per call; a
    /// name already registered is found without a lock.
    counters: OnceLock<Box<MetricHandles<metrics::Counter>>>,
    gauges: OnceLock<Box<MetricHandles<metrics::Gauge>>>,
}

/// What an instance's context is made of.
pub(crate) struct CtxParts {
    pub node: Arc<str>,
    pub module: Arc<str>,
    pub instance: u32,
    /// The key of a keyed module's actor: its address names the key.
    pub key: Option<Arc<[u8]>>,
    pub bus: EventBus,
    pub directory: Directory,
    pub delivery: Delivery,
    pub call_timeout: Duration,
}

fn failed(message: impl Into<String>) -> ModError {
    ModError {
        kind: ErrorKind::Failed,
        message: RString::from(message.into()),
    }
}

impl From<NoActor> for ModError {
    fn from(e: NoActor) -> Self {
        failed(e.to_string())
    }
}

impl HostContext {
    pub(crate) fn boxed(parts: CtxParts) -> HostCtxBox {
        let me = Sender::of(match &parts.key {
            Some(key) => Address::key(&*parts.node, &*parts.module, key.to_vec()),
            None => Address::instance(
                &*parts.node,
                &*parts.module,
                index::from_ffi(parts.instance),
            ),
        });
        HostCtx_TO::from_ptr(
            RArc::new(HostContext {
                module: parts.module,
                instance: parts.instance,
                me,
                bus: parts.bus,
                directory: parts.directory,
                delivery: parts.delivery,
                call_timeout: parts.call_timeout,
                caches: Arc::default(),
            }),
            TD_Opaque,
        )
    }
}

/// A module's log line as a `tracing` event with target `molt::module`
/// (`rehearsal`: the line comes from a rehearsal's throwaway copy, and says
/// so with a `rehearsal = true` field).
pub(crate) fn module_log(level: u8, module: &str, instance: u32, rehearsal: bool, msg: &str) {
    let rehearsal = rehearsal.then_some(true);
    match Level::from_u8(level) {
        Level::Trace => {
            tracing::trace!(target: "molt::module", module, instance, rehearsal, "{msg}")
        }
        Level::Debug => {
            tracing::debug!(target: "molt::module", module, instance, rehearsal, "{msg}")
        }
        Level::Info => tracing::info!(target: "molt::module", module, instance, rehearsal, "{msg}"),
        Level::Warn => tracing::warn!(target: "molt::module", module, instance, rehearsal, "{msg}"),
        Level::Error => {
            tracing::error!(target: "molt::module", module, instance, rehearsal, "{msg}")
        }
    }
}

impl HostCtx for HostContext {
    fn module(&self) -> RStr<'_> {
        RStr::from_str(&self.module)
    }

    fn instance(&self) -> u32 {
        self.instance
    }

    fn log(&self, level: u8, message: RStr<'_>) {
        module_log(level, &self.module, self.instance, false, message.as_str());
    }

    fn counter(&self, name: RStr<'_>, delta: u64) {
        let name = name.as_str();
        self.caches.counters.get_or_init(Box::default).with(
            name,
            || metrics::counter!(format!("molt_module_{name}"), "module" => self.module.to_string()),
            |c| c.increment(delta),
        );
    }

    fn gauge(&self, name: RStr<'_>, value: f64) {
        let name = name.as_str();
        self.caches.gauges.get_or_init(Box::default).with(
            name,
            || metrics::gauge!(format!("molt_module_{name}"), "module" => self.module.to_string()),
            |g| g.set(value),
        );
    }

    fn publish(&self, topic: RStr<'_>, json: RStr<'_>) {
        self.bus.publish(Event::Published {
            module: self.module.to_string(),
            topic: topic.as_str().to_string(),
            json: json.as_str().to_string(),
        });
    }

    fn send(&self, module: RStr<'_>, msg: RSlice<'_, u8>) -> RResult<(), ModError> {
        self.cast_pinned(module, self.instance, msg)
    }

    fn send_to(
        &self,
        module: RStr<'_>,
        instance: u32,
        msg: RSlice<'_, u8>,
    ) -> RResult<(), ModError> {
        let to = AddressRef {
            node: RStr::from_str(&self.me.node),
            module,
            instance,
            key: ROption::RNone,
        };
        self.send_addr(to, msg)
    }

    fn node(&self) -> RString {
        RString::from(self.me.node.as_str())
    }

    fn sender(&self) -> ROption<RAddress> {
        self.delivery.with_sender(|sender| match sender {
            // A sender's index is one the host gave out (a `u32`), so it
            // always converts.
            Some(a) => RAddress::try_from(&**a).ok().into(),
            None => ROption::RNone,
        })
    }

    fn instances(&self, module: RStr<'_>) -> RResult<u32, ModError> {
        match self.slot(module.as_str()) {
            Some(slot) => index::to_ffi(slot.lanes.load().len())
                .map_err(ModError::from)
                .into(),
            None => RErr(failed(format!(
                "module {} is not running (removed, or never added to this node)",
                module.as_str()
            ))),
        }
    }

    fn send_addr(&self, to: AddressRef<'_>, msg: RSlice<'_, u8>) -> RResult<(), ModError> {
        let msg = ModuleMsg::Cast(msg.as_slice().into(), Some(self.me.clone()));
        self.deliver(Dest::from(to), msg)
            .map_err(ModError::from)
            .into()
    }

    fn ask(
        &self,
        to: AddressRef<'_>,
        msg: RSlice<'_, u8>,
        correlation: u64,
    ) -> RResult<(), ModError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return RErr(failed(
                "ask is only possible while the host runs the module (inside a handler)",
            ));
        };
        let (port, reply) = oneshot::channel();
        let call = ModuleMsg::Call(msg.as_slice().into(), port, Some(self.me.clone()));
        if let Err(e) = self.deliver(Dest::from(to), call) {
            return RErr(e.into());
        }
        let asked = Arc::new(Address::from(to));
        let (asker, directory, timeout) =
            (self.me.clone(), self.directory.clone(), self.call_timeout);
        // The request is pending here, not in the asker: a reload of either
        // side waits for nothing, and the answer queues behind whatever the
        // asker is handling then.
        runtime.spawn(async move {
            let result = match tokio::time::timeout(timeout, reply).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(failed(format!(
                    "{asked} stopped before it answered (its module was removed or the node \
                     is stopping)"
                ))),
                Err(_) => Err(ModError {
                    kind: ErrorKind::Failed,
                    message: RString::from(format!(
                        "{asked} did not answer within the call timeout ({timeout:?})"
                    )),
                }),
            };
            let answer = ModuleMsg::Answer(Box::new(AnswerMsg {
                correlation,
                from: Some(Sender::Shared(asked)),
                result,
            }));
            if let Err(e) = resolve::send(&directory, &asker.node, &asker, answer) {
                tracing::warn!(target: "molt::module", asker = %*asker, correlation, "the answer to a request is dropped: the asker is gone ({e})");
            }
        });
        ROk(())
    }

    fn reply_later(&self) -> RResult<u64, ModError> {
        self.delivery.keep_open().map_err(failed).into()
    }

    fn reply(&self, token: u64, reply: RResult<RSlice<'_, u8>, ModError>) -> RResult<(), ModError> {
        let reply = reply.into_result().map(|b| b.to_vec());
        crate::replies::answer(token, reply)
            .map_err(|e| failed(e.describe(token)))
            .into()
    }

    fn send_key(
        &self,
        module: RStr<'_>,
        key: RSlice<'_, u8>,
        msg: RSlice<'_, u8>,
    ) -> RResult<(), ModError> {
        let msg = ModuleMsg::Cast(msg.as_slice().into(), Some(self.me.clone()));
        self.send_to_key(module.as_str(), key.as_slice(), msg)
            .map_err(ModError::from)
            .into()
    }

    fn send_sender(&self, msg: RSlice<'_, u8>) -> RResult<(), ModError> {
        self.delivery
            .with_sender(|to| {
                let to = to.ok_or_else(molt_abi::ffi::no_sender)?;
                let msg = ModuleMsg::Cast(msg.as_slice().into(), Some(self.me.clone()));
                self.deliver(Dest::from(to), msg).map_err(ModError::from)
            })
            .into()
    }
}

/// An actor's address as [`HostContext::deliver`] takes it: borrowed, from
/// the library ([`AddressRef`]) or from the host (a message's sender).
#[derive(Clone, Copy)]
struct Dest<'a> {
    node: &'a str,
    module: &'a str,
    instance: usize,
    key: Option<&'a [u8]>,
    /// The sender this address is, by identity (a kept route is found by
    /// it: no name compared).
    origin: Option<&'a Sender>,
}

impl<'a> From<AddressRef<'a>> for Dest<'a> {
    fn from(a: AddressRef<'a>) -> Self {
        Dest {
            node: a.node.as_str(),
            module: a.module.as_str(),
            instance: index::from_ffi(a.instance),
            key: a.key.into_option().map(|k| k.as_slice()),
            origin: None,
        }
    }
}

impl<'a> From<&'a Sender> for Dest<'a> {
    /// A message's sender.
    fn from(a: &'a Sender) -> Self {
        let (instance, key) = match &a.target {
            molt_abi::Target::Instance(i) => (*i, None),
            molt_abi::Target::Key(k) => (0, Some(k.as_bytes())),
        };
        Dest {
            node: &a.node,
            module: &a.module,
            instance,
            key,
            origin: Some(a),
        }
    }
}

impl Dest<'_> {
    /// The address, for an error message.
    fn address(&self) -> String {
        self.owned().to_string()
    }

    /// The address, owned (a send to another node carries it).
    fn owned(&self) -> Address {
        match (self.origin, self.key) {
            (Some(sender), _) => (**sender).clone(),
            (None, Some(key)) => Address::key(self.node, self.module, key),
            (None, None) => Address::instance(self.node, self.module, self.instance),
        }
    }
}

impl HostContext {
    /// The routing slot of `module`, cached per name: a module sending to
    /// another one skips the directory's lock and hash lookup; a cached slot
    /// that was closed (module removed) is looked up again (a module added
    /// again under that name has a new slot). Returns its cache position.
    fn cached_slot(&self, cache: &mut Vec<CachedSlot>, module: &str) -> Option<usize> {
        let pos = cache
            .iter()
            .position(|(n, slot, _)| n == module && !slot.is_closed());
        match pos {
            Some(pos) => Some(pos),
            None => {
                let fresh = lookup(&self.directory, module)?;
                cache.retain(|(n, _, _)| n != module);
                cache.push((module.to_string(), fresh, Vec::new()));
                Some(cache.len() - 1)
            }
        }
    }

    /// The routing slot of `module` (see [`Self::cached_slot`]).
    fn slot(&self, module: &str) -> Option<Arc<ModuleSlot>> {
        let mut cache = self.caches.slots.lock().unwrap_or_else(|p| p.into_inner());
        let pos = self.cached_slot(&mut cache, module)?;
        Some(cache[pos].1.clone())
    }

    /// Sends `msg` through the lane to instance `instance` (modulo the
    /// instance count) of `module`, resolved at the first send and kept, as
    /// a handle keeps its lane (issue #8 item 11): scaling never reorders
    /// what this instance sends there with `send`. `None` (and `msg`
    /// dropped) when there is no such lane: the module is not running, or
    /// is keyed.
    ///
    /// The first [`PINNED_FAST`] lanes resolved are found without a lock
    /// (a producer's `ctx.cast` per message took the cache's mutex and
    /// compared names under it); the others are used under the cache's
    /// lock, not cloned. Both hold the same lane for a (slot, instance):
    /// the order of what this instance sends is the same either way.
    fn send_pinned(
        &self,
        module: &str,
        instance: u32,
        msg: ModuleMsg,
    ) -> Option<Result<(), crate::directory::Closed>> {
        for entry in self.caches.pinned.iter() {
            match entry.get() {
                Some((name, i, slot, lane))
                    if *i == instance
                        && &**name == module
                        && !slot.is_closed()
                        && slot.keyed().is_none() =>
                {
                    return Some(lane.send(msg));
                }
                Some(_) => {}
                None => break,
            }
        }
        let mut cache = self.caches.slots.lock().unwrap_or_else(|p| p.into_inner());
        let pos = self.cached_slot(&mut cache, module)?;
        let (_, slot, lanes) = &mut cache[pos];
        if slot.keyed().is_some() {
            // A keyed module is reached by key only (`send_key`).
            return None;
        }
        if let Some((_, lane)) = lanes.iter().find(|(i, _)| *i == instance) {
            return Some(lane.send(msg));
        }
        let lane = slot.resolve(instance as usize)?;
        let sent = lane.send(msg);
        // Set under the cache's lock: the first empty entry stays empty
        // until this one is set.
        if let Some(free) = self.caches.pinned.iter().find(|e| e.get().is_none()) {
            let _ = free.set((Box::from(module), instance, slot.clone(), lane.clone()));
        }
        lanes.push((instance, lane));
        Some(sent)
    }

    /// Casts to instance `instance` (modulo the instance count) of `module`
    /// through its pinned lane (`ctx.cast`).
    fn cast_pinned(
        &self,
        module: RStr<'_>,
        instance: u32,
        msg: RSlice<'_, u8>,
    ) -> RResult<(), ModError> {
        let not_running = || failed(format!("module {} is not running", module.as_str()));
        let msg = ModuleMsg::Cast(msg.as_slice().into(), Some(self.me.clone()));
        let Some(sent) = self.send_pinned(module.as_str(), instance, msg) else {
            if crate::directory::lookup(&self.directory, module.as_str())
                .is_some_and(|s| s.keyed().is_some())
            {
                return RErr(failed(format!(
                    "module {} is keyed: cast to one of its actors with cast_key",
                    module.as_str()
                )));
            }
            return RErr(not_running());
        };
        match sent {
            Ok(()) => ROk(()),
            Err(_) => RErr(not_running()),
        }
    }

    /// Delivers `msg` to the actor at `to`, resolved now: the lane of its
    /// instance as the module's slot has it (no wrap), or the keyed path.
    fn deliver(&self, to: Dest<'_>, msg: ModuleMsg) -> Result<(), NoActor> {
        let address = || to.address();
        if to.node != self.me.node {
            return resolve::send_remote(&self.me.node, &to.owned(), msg);
        }
        let module = to.module;
        if let Some(key) = to.key {
            return self.send_to_key(module, key, msg);
        }
        let kept = match to.origin {
            Some(sender) => To::Sender(sender),
            None => To::Instance {
                module,
                index: to.instance,
            },
        };
        // On the handler's thread: the route the actor kept, no lock.
        let msg = match self.delivery.with_routes(|routes| match routes {
            Some(routes) => Ok(self.send_kept(routes, &kept, to, msg)),
            None => Err(msg),
        }) {
            Ok(sent) => return sent,
            Err(msg) => msg,
        };
        // The slot is used under the cache's lock, not cloned: no
        // reference count touched per message on a slot that every sender
        // to the module shares.
        let mut cache = self.caches.slots.lock().unwrap_or_else(|p| p.into_inner());
        let pos = self
            .cached_slot(&mut cache, module)
            .ok_or_else(|| NoActor::NoModule {
                address: address(),
                module: module.to_string(),
            })?;
        resolve::send_to_instance(&cache[pos].1, to.instance, address, msg)
    }

    /// Sends `msg` to the instance at `to` through the route `routes` kept
    /// for it while it is valid, else resolved now and kept
    /// ([`crate::routes`]).
    fn send_kept(
        &self,
        routes: &mut Routes,
        kept: &To<'_>,
        to: Dest<'_>,
        msg: ModuleMsg,
    ) -> Result<(), NoActor> {
        let address = || to.address();
        if let Some(lane) = routes.lane(kept) {
            return lane
                .send(msg)
                .map_err(|_| NoActor::Gone { address: address() });
        }
        let slot = self.slot(to.module).ok_or_else(|| NoActor::NoModule {
            address: address(),
            module: to.module.to_string(),
        })?;
        let lane = resolve::lane_of(&slot, to.instance, address)?;
        lane.send(msg)
            .map_err(|_| NoActor::Gone { address: address() })?;
        routes.keep(kept, slot, lane);
        Ok(())
    }

    /// Sends to the actor for `key` of a keyed module (see
    /// [`resolve::send_to_key`]).
    fn send_to_key(&self, module: &str, key: &[u8], msg: ModuleMsg) -> Result<(), NoActor> {
        resolve::send_to_key(&self.directory, module, key, msg)
    }
}
