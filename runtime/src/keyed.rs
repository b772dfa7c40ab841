//! Keyed modules (issue #9 §3): one actor per key, activated by the first
//! message to the key, passivated into a host-held snapshot when idle and
//! restored from it by the next message.
//!
//! Every key has one entry in [`Keyed`]'s table, in one of four states:
//! live (a [`ModuleActor`] with its route), activating or passivating (its
//! messages wait, in order, in the entry), or passivated (a [`Checkpoint`]
//! the host keeps). Every send decides under the table's lock, so per key
//! nothing is lost, duplicated or reordered across activation and
//! passivation. A reload of the module freezes activations and passivations
//! ([`reload`]): every live actor votes on a rehearsal of its state while it
//! serves on, and a commit then switches each over to the new code
//! ([`switch`]: in place, between two of its messages, or by a passivation
//! and an immediate activation when that fails); passivated
//! snapshots keep their state version and are migrated by the code that
//! activates them.
//!
//! [`crate::directory::route_to_key`] is the one entry point that sends to
//! a key (handles and module contexts both use it).

mod events;
mod hot;
mod passivate;
pub(crate) mod reload;
pub(crate) mod switch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use abi_stable::std_types::RString;
use arc_swap::ArcSwap;
use molt_abi::ffi::ModError;
use molt_abi::ErrorKind;
use ractor::Actor;

use crate::config::{KeyedSpec, Limits};
use crate::delivery::Delivery;
use crate::directory::{
    Checkpoint, Directory, InstanceShared, KeyedActors, KeyedRefusal, Route, Snapshot,
};
use crate::events::EventBus;
use crate::host_ctx::{CtxParts, HostContext};
use crate::loader::Library;
use crate::module_actor::{InstanceArgs, ModuleActor, ModuleMsg, StartFrom};
use crate::restart::RestartSink;
use crate::status::KeyedStatus;

/// The code that activates keys: the serving library and config.
pub(crate) struct Serving {
    pub lib: Arc<Library>,
    pub config: Arc<Vec<u8>>,
}

/// One key's entry.
enum Entry {
    Live {
        route: Route,
        seen: Seen,
    },
    /// Its actor is starting; messages wait here in order.
    Activating {
        queue: Vec<ModuleMsg>,
    },
    /// Its actor is taking its last snapshot; messages wait here in order.
    Passivating {
        queue: Vec<ModuleMsg>,
    },
    Passivated(Checkpoint),
}

/// When a live key last had a message, coarsely, so that a send reads no
/// clock (issue #11 §3): a send only marks the entry `touched`; whoever
/// asks how long the key has been idle (the sweeper, a passivation) first
/// moves `last` to its own now if the entry was touched and clears the mark.
/// `last` is thus never earlier than the key's last message: a key is
/// passivated no sooner than `idle_passivate` after it (and at most one
/// sweep period later than an exact clock would say).
struct Seen {
    last: Instant,
    touched: bool,
}

impl Seen {
    /// Seen now.
    fn now() -> Self {
        Seen {
            last: Instant::now(),
            touched: false,
        }
    }

    /// A message was sent to the key (no clock read).
    fn touch(&mut self) {
        self.touched = true;
    }

    /// How long the key has been idle at `now`, folding a touch into `last`.
    fn idle_at(&mut self, now: Instant) -> Duration {
        if self.touched {
            self.last = now;
            self.touched = false;
        }
        now.saturating_duration_since(self.last)
    }
}

#[derive(Default)]
struct Table {
    keys: HashMap<Vec<u8>, Entry>,
    /// Live keys a sender keeps sending to, found without hashing.
    hot: hot::Hot,
    /// Live, activating and passivating entries.
    live: u64,
    passivated: u64,
}

impl Table {
    /// Folds the idle marks of the hot keys' hits into their entries
    /// (before anyone asks how long a key has been idle).
    fn fold_hot(&mut self) {
        let Table { keys, hot, .. } = self;
        hot.fold(|key| {
            if let Some(Entry::Live { seen, .. }) = keys.get_mut(key) {
                seen.touch();
            }
        });
    }

    /// `key`'s entry stops being live: it leaves the hot keys, its hits
    /// folded into its idle mark first.
    fn leaving_live(&mut self, key: &[u8]) {
        self.fold_hot();
        self.hot.forget(key);
    }
}

/// The keyed actors of one module.
pub(crate) struct Keyed {
    node: Arc<str>,
    module: Arc<str>,
    spec: KeyedSpec,
    serving: ArcSwap<Serving>,
    limits: Limits,
    bus: EventBus,
    directory: Directory,
    on_restart: RestartSink,
    figures: Arc<crate::figures_book::FiguresBook>,
    table: Mutex<Table>,
    /// Held (read) by every activation and passivation while it runs, and
    /// (write) by a reload from its start to its decision: a reload sees
    /// every live actor and no actor starts with code the reload replaces.
    gate: Arc<tokio::sync::RwLock<()>>,
    closed: AtomicBool,
    next_index: AtomicU32,
    activations: AtomicU64,
    passivations: AtomicU64,
    /// Where activations run: a send may come from a thread outside the
    /// node's runtime (a cast needs none).
    runtime: tokio::runtime::Handle,
    /// Itself, for the activation tasks a send starts.
    me: std::sync::Weak<Keyed>,
}

impl std::fmt::Debug for Keyed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyed")
            .field("module", &self.module)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// What a keyed module needs from the supervisor to run its actors.
pub(crate) struct KeyedArgs {
    /// The node's name (the node part of each actor's address).
    pub node: Arc<str>,
    pub module: Arc<str>,
    pub spec: KeyedSpec,
    pub serving: Serving,
    pub limits: Limits,
    pub bus: EventBus,
    pub directory: Directory,
    pub on_restart: RestartSink,
    /// The module's handling figures, which each actor joins while it runs.
    pub figures: Arc<crate::figures_book::FiguresBook>,
}

impl Keyed {
    /// The registry of a keyed module, with its idle sweeper running.
    /// Called inside the node's runtime.
    pub(crate) fn start(args: KeyedArgs) -> Arc<Self> {
        let keyed = Arc::new_cyclic(|me| Keyed {
            node: args.node,
            module: args.module,
            spec: args.spec,
            serving: ArcSwap::from_pointee(args.serving),
            limits: args.limits,
            bus: args.bus,
            directory: args.directory,
            on_restart: args.on_restart,
            figures: args.figures,
            table: Mutex::new(Table::default()),
            gate: Arc::new(tokio::sync::RwLock::new(())),
            closed: AtomicBool::new(false),
            // 0 is the module's template instance.
            next_index: AtomicU32::new(1),
            activations: AtomicU64::new(0),
            passivations: AtomicU64::new(0),
            runtime: tokio::runtime::Handle::current(),
            me: me.clone(),
        });
        passivate::spawn_sweeper(&keyed);
        keyed
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counts for status and metrics.
    fn counts(&self) -> KeyedStatus {
        let t = self.table();
        let mailbox_depth = t
            .keys
            .values()
            .map(|e| match e {
                Entry::Live { route, .. } => route.shared.mailbox_depth(),
                Entry::Activating { queue } | Entry::Passivating { queue } => queue.len() as u64,
                Entry::Passivated(_) => 0,
            })
            .sum();
        KeyedStatus {
            mailbox_depth,
            live: t.live,
            passivated: t.passivated,
            activations: self.activations.load(Ordering::Relaxed),
            passivations: self.passivations.load(Ordering::Relaxed),
            max_live: self.spec.max_live,
            idle_passivate_ms: self.spec.idle_passivate.as_millis() as u64,
        }
    }

    /// Sends to `key`'s actor, activating it (from its snapshot, if it has
    /// one) when it is not live. Decided under the table's lock: a message
    /// for a key being activated or passivated waits in the key's entry.
    fn send_key(&self, key: &[u8], msg: ModuleMsg) -> Result<(), KeyedRefusal> {
        if self.closed.load(Ordering::Acquire) {
            return Err(KeyedRefusal::NotRunning);
        }
        let mut guard = self.table();
        let t = &mut *guard;
        if let Some(route) = t.hot.get(key) {
            return deliver(route, msg).map_err(|_| KeyedRefusal::NotRunning);
        }
        let from = match t.keys.get_mut(key) {
            Some(Entry::Live { route, seen }) => {
                seen.touch();
                t.hot.offer(key, route);
                return deliver(route, msg).map_err(|_| KeyedRefusal::NotRunning);
            }
            Some(Entry::Activating { queue }) | Some(Entry::Passivating { queue }) => {
                queue.push(msg);
                return Ok(());
            }
            Some(Entry::Passivated(_)) | None => {
                if t.live >= u64::from(self.spec.max_live) {
                    return Err(KeyedRefusal::TooManyLive {
                        max_live: self.spec.max_live,
                    });
                }
                match t
                    .keys
                    .insert(key.to_vec(), Entry::Activating { queue: vec![msg] })
                {
                    Some(Entry::Passivated(cp)) => {
                        t.passivated -= 1;
                        Some(cp)
                    }
                    _ => None,
                }
            }
        };
        t.live += 1;
        drop(guard);
        let Some(me) = self.me.upgrade() else {
            return Err(KeyedRefusal::NotRunning);
        };
        let key: Arc<[u8]> = Arc::from(key);
        self.runtime.spawn(async move {
            let gate = me.gate.clone();
            let _open = gate.read().await;
            // A failure is logged and answered to the waiting calls.
            let _ = me.activate(key, from).await;
        });
        Ok(())
    }

    /// Starts `key`'s actor (the gate is held by the caller), from `from` or
    /// fresh, then hands it the messages that waited, in order; returns when
    /// they were enqueued. A start that fails keeps the snapshot and fails
    /// the waiting calls with the cause, which it returns.
    async fn activate(&self, key: Arc<[u8]>, from: Option<Checkpoint>) -> Result<Instant, String> {
        let serving = self.serving.load_full();
        let started = match self.readable(from.clone(), &serving) {
            Ok(start) => self.spawn(key.clone(), start, &serving).await,
            Err(e) => Err(e),
        };
        let mut guard = self.table();
        let t = &mut *guard;
        // The entry turns live in place (no second insert into the table).
        let entry = t.keys.get_mut(&*key);
        let queue = match entry {
            Some(Entry::Activating { queue }) => std::mem::take(queue),
            _ => Vec::new(),
        };
        match (started, entry) {
            (Ok(route), Some(entry)) if !self.closed.load(Ordering::Acquire) => {
                self.activations.fetch_add(1, Ordering::Relaxed);
                for msg in queue {
                    let _ = deliver(&route, msg);
                }
                let seen = Seen::now();
                let enqueued = seen.last;
                *entry = Entry::Live { route, seen };
                Ok(enqueued)
            }
            (started, _) => {
                t.keys.remove(&*key);
                let why = match started {
                    Ok(route) => {
                        route.actor.stop(None);
                        format!("module {} is not running", self.module)
                    }
                    Err(e) => e,
                };
                tracing::warn!(target: "molt::keyed", module = &*self.module, key = %String::from_utf8_lossy(&key), "activation failed: {why}");
                // (Closed meanwhile: the count was reset to 0.)
                t.live = t.live.saturating_sub(1);
                if let Some(cp) = from {
                    t.keys.insert(key.to_vec(), Entry::Passivated(cp));
                    t.passivated += 1;
                }
                for msg in queue {
                    fail(msg, &why);
                }
                Err(why)
            }
        }
    }

    /// A start from `from` that the serving code can read: a snapshot of a
    /// newer state version (written before a rollback) is first
    /// down-migrated by the library that wrote it.
    fn readable(&self, from: Option<Checkpoint>, serving: &Serving) -> Result<StartFrom, String> {
        let Some(cp) = from else {
            return Ok(StartFrom::Fresh);
        };
        let want = serving.lib.state_version;
        if cp.snapshot.version <= want {
            return Ok(StartFrom::Checkpoint(cp));
        }
        let ctx = HostContext::boxed(CtxParts {
            node: self.node.clone(),
            module: self.module.clone(),
            instance: 0,
            key: None,
            bus: self.bus.clone(),
            directory: self.directory.clone(),
            delivery: Delivery::default(),
            call_timeout: self.limits.call_timeout,
        });
        let writer = cp
            .lib
            .migrate(
                cp.snapshot.version,
                &cp.snapshot.bytes,
                &serving.config,
                ctx,
            )
            .map_err(|e| format!("reading its snapshot: {e}"))?;
        let bytes = writer
            .downgrade(want)
            .into_result()
            .map_err(|e| format!("down-migrating its snapshot to state v{want}: {e}"))?;
        Ok(StartFrom::Checkpoint(Checkpoint {
            lib: serving.lib.clone(),
            snapshot: Snapshot {
                version: want,
                bytes: Arc::new(bytes.into_vec()),
            },
            ..cp
        }))
    }

    async fn spawn(
        &self,
        key: Arc<[u8]>,
        start: StartFrom,
        serving: &Serving,
    ) -> Result<Route, String> {
        let shared = InstanceShared::keyed(
            self.next_index.fetch_add(1, Ordering::Relaxed),
            self.figures.keyed_latency(),
        );
        let args = InstanceArgs {
            node: self.node.clone(),
            key: Some(key),
            module: self.module.clone(),
            lib: serving.lib.clone(),
            config: serving.config.clone(),
            start,
            shared: shared.clone(),
            limits: self.limits.clone(),
            bus: self.bus.clone(),
            directory: self.directory.clone(),
            on_restart: self.on_restart.clone(),
            keyed_figures: Some(self.figures.clone()),
        };
        match Actor::spawn(None, ModuleActor, args).await {
            Ok((actor, _join)) => Ok(Route { actor, shared }),
            Err(e) => Err(format!("its actor did not start: {e}")),
        }
    }

    /// Closes the registry (sends fail from now on) and takes out the live
    /// actors, to drain.
    fn close_all(&self) -> Vec<Route> {
        self.closed.store(true, Ordering::Release);
        let mut t = self.table();
        t.hot.clear();
        let mut routes = Vec::new();
        for (_, entry) in t.keys.drain() {
            if let Entry::Live { route, .. } = entry {
                routes.push(route);
            }
        }
        t.live = 0;
        t.passivated = 0;
        routes
    }
}

impl KeyedActors for Keyed {
    fn send(&self, key: &[u8], msg: ModuleMsg) -> Result<(), KeyedRefusal> {
        self.send_key(key, msg)
    }

    fn status(&self) -> KeyedStatus {
        self.counts()
    }

    fn close(&self) -> Vec<Route> {
        self.close_all()
    }

    fn event(&self, event: &Arc<crate::events::Event>) {
        self.deliver_event(event)
    }
}

/// Enqueues on a live actor, counting it in the actor's mailbox depth.
fn deliver(route: &Route, msg: ModuleMsg) -> Result<(), ()> {
    route.shared.enqueued.fetch_add(1, Ordering::Relaxed);
    route.actor.send_message(msg).map_err(|_| {
        route.shared.enqueued.fetch_sub(1, Ordering::Relaxed);
    })
}

/// Answers a waiting call whose key could not be activated.
fn fail(msg: ModuleMsg, why: &str) {
    if let ModuleMsg::Call(_, reply, _) = msg {
        let _ = reply.send(Err(ModError {
            kind: ErrorKind::Failed,
            message: RString::from(format!("the key's actor could not be activated: {why}")),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::Seen;
    use std::time::Duration;

    /// A touch (a send, no clock read) counts as a message at the next
    /// look: the key is never seen idle longer than since its last message.
    #[test]
    fn a_touch_restarts_the_idle_time_at_the_next_look() {
        let mut seen = Seen::now();
        let start = seen.last;
        let later = start + Duration::from_secs(10);
        assert_eq!(seen.idle_at(later), Duration::from_secs(10));
        seen.touch();
        assert_eq!(seen.idle_at(later), Duration::ZERO, "touched: busy now");
        assert_eq!(
            seen.idle_at(later + Duration::from_secs(3)),
            Duration::from_secs(3),
            "the touch is dated once"
        );
    }
}
