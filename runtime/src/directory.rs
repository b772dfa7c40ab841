//! Where messages go: each module's slot holds the actor refs of its
//! instances. Handles and module contexts resolve through it, so a handle
//! stays valid when the supervisor restarts an instance or swaps its code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use ractor::ActorRef;

use crate::loader::Library;
use crate::module_actor::ModuleMsg;

/// A value alone on its cache line (128 bytes: two lines, for CPUs that
/// prefetch lines in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CacheLine<T>(pub T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A state snapshot: the state version and its msgpack bytes.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub version: u32,
    pub bytes: Arc<Vec<u8>>,
}

/// The newest good state of an instance (DESIGN.md §6 "Checkpoint"): what a
/// restart in place, an actor-failure restart and a forced reload restore.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoint {
    /// The library that wrote `snapshot` (its state version is the snapshot's).
    pub lib: Arc<Library>,
    pub snapshot: Snapshot,
    /// When the state was taken.
    pub at: Instant,
    /// Whether this is the state the instance started with (no checkpoint
    /// or committed reload since).
    pub from_start: bool,
    /// The instance's `handled` count when it was taken: the messages whose
    /// effects it holds.
    pub handled: u64,
}

impl Checkpoint {
    /// `"start"` or `"checkpoint"`: what a restore from it says it restored.
    pub fn source(&self) -> &'static str {
        if self.from_start {
            "start"
        } else {
            "checkpoint"
        }
    }
}

/// Counters and recovery data of one instance, shared between the actor, the
/// supervisor and the handles. Depth = enqueued - handled.
#[derive(Debug)]
pub(crate) struct InstanceShared {
    pub index: u32,
    /// Written by every sender.
    pub enqueued: CacheLine<AtomicU64>,
    /// Written by the instance's actor only. On a cache line of its own, so
    /// senders and the actor do not bounce one line between cores on every
    /// message.
    pub handled: CacheLine<AtomicU64>,
    pub failed: AtomicU64,
    pub restarts: AtomicU64,
    /// Checkpoints whose snapshot failed (the previous one was kept).
    pub checkpoint_failures: AtomicU64,
    /// The newest checkpoint (a periodic one, the state of the last
    /// committed swap, or the start state): what a restart rebuilds the
    /// instance from.
    pub last_good: Mutex<Option<Checkpoint>>,
}

impl InstanceShared {
    pub fn new(index: u32) -> Arc<Self> {
        Arc::new(InstanceShared {
            index,
            enqueued: CacheLine(AtomicU64::new(0)),
            handled: CacheLine(AtomicU64::new(0)),
            failed: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            checkpoint_failures: AtomicU64::new(0),
            last_good: Mutex::new(None),
        })
    }

    /// The newest checkpoint.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        self.last_good.lock().ok().and_then(|g| g.clone())
    }

    pub fn mailbox_depth(&self) -> u64 {
        let handled = self.handled.load(Ordering::Relaxed);
        self.enqueued
            .load(Ordering::Relaxed)
            .saturating_sub(handled)
    }
}

/// One instance as senders see it.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub actor: ActorRef<ModuleMsg>,
    pub shared: Arc<InstanceShared>,
}

/// The instance's actor is gone (the node is stopping or the module was removed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closed;

impl Route {
    /// Sends an application message, counting it into the mailbox depth.
    pub fn send_counted(&self, msg: ModuleMsg) -> Result<(), Closed> {
        self.shared.enqueued.fetch_add(1, Ordering::Relaxed);
        self.actor.send_message(msg).map_err(|_| {
            self.shared.enqueued.fetch_sub(1, Ordering::Relaxed);
            Closed
        })
    }
}

/// A module's routing slot.
#[derive(Debug)]
pub(crate) struct ModuleSlot {
    pub name: Arc<str>,
    pub routes: ArcSwap<Vec<Route>>,
    /// Whether the serving library wants host events.
    pub wants_events: AtomicBool,
    next: AtomicUsize,
}

impl ModuleSlot {
    pub fn new(name: &str, routes: Vec<Route>) -> Arc<Self> {
        Arc::new(ModuleSlot {
            name: Arc::from(name),
            routes: ArcSwap::from_pointee(routes),
            wants_events: AtomicBool::new(false),
            next: AtomicUsize::new(0),
        })
    }

    /// The next instance index for a new handle (round robin).
    pub fn next_pin(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Replaces the route of one instance (after a restart).
    pub fn replace(&self, index: u32, route: Route) {
        let mut routes: Vec<Route> = self.routes.load().as_ref().clone();
        if let Some(r) = routes.iter_mut().find(|r| r.shared.index == index) {
            *r = route;
        }
        self.routes.store(Arc::new(routes));
    }
}

/// All modules of a node by name.
pub(crate) type Directory = Arc<RwLock<HashMap<String, Arc<ModuleSlot>>>>;

pub(crate) fn lookup(dir: &Directory, module: &str) -> Option<Arc<ModuleSlot>> {
    dir.read().ok().and_then(|d| d.get(module).cloned())
}
