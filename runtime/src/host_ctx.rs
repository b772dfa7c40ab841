//! The host side of a module's context: logs into the host's `tracing`
//! subscriber, metrics into the host's `metrics` recorder, events onto the
//! node's bus, messages to other modules through the directory.

use std::sync::{Arc, Mutex};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RErr, ROk, RResult, RSlice, RStr, RString};
use molt_abi::ffi::{ErrorKind, HostCtx, HostCtxBox, HostCtx_TO, ModError};
use molt_abi::Level;

use crate::directory::{lookup, Directory, Lane, ModuleSlot};
use crate::events::{Event, EventBus};
use crate::module_actor::ModuleMsg;

/// Routing slots by module name, each with the lanes this instance resolved
/// in it (by the instance index asked for).
type SlotCache = Mutex<Vec<(String, Arc<ModuleSlot>, Vec<(u32, Arc<Lane>)>)>>;

/// What one instance's module code can reach.
#[derive(Clone)]
pub(crate) struct HostContext {
    module: Arc<str>,
    instance: u32,
    bus: EventBus,
    directory: Directory,
    /// Metric handles by name: registering (name formatting, label
    /// allocation, registry lookup) happens once per name, not per call. A
    /// module uses a handful of names: a linear scan beats hashing the name.
    counters: Arc<Mutex<Vec<(String, metrics::Counter)>>>,
    /// Routing slots of the modules this one sends to, by name.
    slots: Arc<SlotCache>,
    gauges: Arc<Mutex<Vec<(String, metrics::Gauge)>>>,
}

impl HostContext {
    pub fn boxed(
        module: Arc<str>,
        instance: u32,
        bus: EventBus,
        directory: Directory,
    ) -> HostCtxBox {
        HostCtx_TO::from_ptr(
            RArc::new(HostContext {
                module,
                instance,
                bus,
                directory,
                counters: Arc::default(),
                slots: Arc::default(),
                gauges: Arc::default(),
            }),
            TD_Opaque,
        )
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
        let (module, instance, msg) = (&*self.module, self.instance, message.as_str());
        match Level::from_u8(level) {
            Level::Trace => tracing::trace!(target: "molt::module", module, instance, "{msg}"),
            Level::Debug => tracing::debug!(target: "molt::module", module, instance, "{msg}"),
            Level::Info => tracing::info!(target: "molt::module", module, instance, "{msg}"),
            Level::Warn => tracing::warn!(target: "molt::module", module, instance, "{msg}"),
            Level::Error => tracing::error!(target: "molt::module", module, instance, "{msg}"),
        }
    }

    fn counter(&self, name: RStr<'_>, delta: u64) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = counters.iter().find(|(n, _)| n == name.as_str()) {
            c.increment(delta);
            return;
        }
        let c = metrics::counter!(format!("molt_module_{}", name.as_str()), "module" => self.module.to_string());
        c.increment(delta);
        counters.push((name.as_str().to_string(), c));
    }

    fn gauge(&self, name: RStr<'_>, value: f64) {
        let mut gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, g)) = gauges.iter().find(|(n, _)| n == name.as_str()) {
            g.set(value);
            return;
        }
        let g = metrics::gauge!(format!("molt_module_{}", name.as_str()), "module" => self.module.to_string());
        g.set(value);
        gauges.push((name.as_str().to_string(), g));
    }

    fn publish(&self, topic: RStr<'_>, json: RStr<'_>) {
        self.bus.publish(Event::Published {
            module: self.module.to_string(),
            topic: topic.as_str().to_string(),
            json: json.as_str().to_string(),
        });
    }

    fn send(&self, module: RStr<'_>, msg: RSlice<'_, u8>) -> RResult<(), ModError> {
        self.cast(module, self.instance, msg)
    }

    fn send_to(
        &self,
        module: RStr<'_>,
        instance: u32,
        msg: RSlice<'_, u8>,
    ) -> RResult<(), ModError> {
        self.cast(module, instance, msg)
    }

    fn send_key(
        &self,
        module: RStr<'_>,
        key: RSlice<'_, u8>,
        msg: RSlice<'_, u8>,
    ) -> RResult<(), ModError> {
        let refused = |why: String| {
            RErr(ModError {
                kind: ErrorKind::Failed,
                message: RString::from(why),
            })
        };
        let module = module.as_str();
        match crate::directory::route_to_key(
            &self.directory,
            module,
            key.as_slice(),
            ModuleMsg::Cast(msg.to_vec()),
        ) {
            Ok(()) => ROk(()),
            Err(r) => refused(r.into_call_error(module).to_string()),
        }
    }
}

impl HostContext {
    /// The lane to instance `instance` (modulo the instance count) of
    /// `module`, resolved at the first send and kept, as a handle keeps its
    /// lane (issue #8 item 11): scaling never reorders what this instance
    /// sends there. Slots are cached per name, so a module sending to
    /// another one skips the directory's lock and hash lookup; a cached slot
    /// that was closed (module removed) is looked up again (a module added
    /// again under that name has a new slot).
    fn lane(&self, module: &str, instance: u32) -> Option<Arc<Lane>> {
        let mut cache = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let pos = cache
            .iter()
            .position(|(n, slot, _)| n == module && !slot.is_closed());
        let pos = match pos {
            Some(pos) => pos,
            None => {
                let fresh = lookup(&self.directory, module)?;
                cache.retain(|(n, _, _)| n != module);
                cache.push((module.to_string(), fresh, Vec::new()));
                cache.len() - 1
            }
        };
        let (_, slot, lanes) = &mut cache[pos];
        if slot.keyed().is_some() {
            // A keyed module is reached by key only (`send_key`).
            return None;
        }
        if let Some((_, lane)) = lanes.iter().find(|(i, _)| *i == instance) {
            return Some(lane.clone());
        }
        let lane = slot.resolve(instance as usize)?;
        lanes.push((instance, lane.clone()));
        Some(lane)
    }

    /// Casts to instance `instance` (modulo the instance count) of `module`.
    fn cast(&self, module: RStr<'_>, instance: u32, msg: RSlice<'_, u8>) -> RResult<(), ModError> {
        let not_running = || ModError {
            kind: ErrorKind::Failed,
            message: RString::from(format!("module {} is not running", module.as_str())),
        };
        let Some(lane) = self.lane(module.as_str(), instance) else {
            if crate::directory::lookup(&self.directory, module.as_str())
                .is_some_and(|s| s.keyed().is_some())
            {
                return RErr(ModError {
                    kind: ErrorKind::Failed,
                    message: RString::from(format!(
                        "module {} is keyed: send to one of its actors with send_key",
                        module.as_str()
                    )),
                });
            }
            return RErr(not_running());
        };
        match lane.send(ModuleMsg::Cast(msg.to_vec())) {
            Ok(()) => ROk(()),
            Err(_) => RErr(not_running()),
        }
    }
}
