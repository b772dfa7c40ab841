//! Where messages go: each module's slot holds the actor refs of its
//! instances. Handles and module contexts resolve through it, so a handle
//! stays valid when the supervisor restarts an instance or swaps its code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
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

/// The newest good state of an instance (docs/semantics.md "Restarts and
/// checkpoints"): what a restart in place, an actor-failure restart and a
/// forced reload restore.
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
    pub(crate) fn source(&self) -> &'static str {
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
    /// Panics, written by the instance's actor only, and where its sampled
    /// handling times go (`crate::figures`: cells of its own on lines of
    /// their own, or a keyed actor's module's).
    pub figures: crate::figures::FigureCells,
    /// The newest checkpoint (a periodic one, the state of the last
    /// committed swap, or the start state): what a restart rebuilds the
    /// instance from.
    pub last_good: Mutex<Option<Checkpoint>>,
}

impl InstanceShared {
    /// A pool instance's (latency cells of its own).
    pub(crate) fn new(index: u32) -> Arc<Self> {
        Self::with_figures(index, crate::figures::FigureCells::default())
    }

    /// A keyed actor's: its sampled handling times go into its module's
    /// `latency` cells.
    pub(crate) fn keyed(index: u32, latency: &Arc<crate::figures::LatencyCells>) -> Arc<Self> {
        Self::with_figures(index, crate::figures::FigureCells::keyed(latency))
    }

    fn with_figures(index: u32, figures: crate::figures::FigureCells) -> Arc<Self> {
        Arc::new(InstanceShared {
            index,
            enqueued: CacheLine(AtomicU64::new(0)),
            handled: CacheLine(AtomicU64::new(0)),
            failed: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            checkpoint_failures: AtomicU64::new(0),
            figures,
            last_good: Mutex::new(None),
        })
    }

    /// The newest checkpoint.
    pub(crate) fn checkpoint(&self) -> Option<Checkpoint> {
        self.last_good.lock().ok().and_then(|g| g.clone())
    }

    pub(crate) fn mailbox_depth(&self) -> u64 {
        let handled = self.handled.load(Ordering::Relaxed);
        self.enqueued
            .load(Ordering::Relaxed)
            .saturating_sub(handled)
    }
}

/// Why a message to a key was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyedRefusal {
    /// No such module, or it is removed / the node is stopping.
    NotRunning,
    /// The module is not keyed.
    NotKeyed,
    /// `max_live` actors are live or activating and this key is not.
    TooManyLive { max_live: u32 },
}

impl KeyedRefusal {
    /// The refusal as a host caller of `module` sees it.
    pub(crate) fn into_call_error(self, module: &str) -> crate::error::CallError {
        use crate::error::CallError;
        match self {
            KeyedRefusal::NotRunning => CallError::NotRunning(module.to_string()),
            KeyedRefusal::NotKeyed => CallError::NotKeyed(module.to_string()),
            KeyedRefusal::TooManyLive { max_live } => CallError::TooManyLive {
                module: module.to_string(),
                max_live,
            },
        }
    }
}

/// Sends `msg` to the actor of `key` in the keyed module `module`,
/// activating it if needed: the routing entry point of keyed actors (host
/// handles and `HostContext::send_key` call it).
///
/// # Errors
/// [`KeyedRefusal`]: the module is not running or not keyed, or its live
/// limit is reached.
pub(crate) fn route_to_key(
    dir: &Directory,
    module: &str,
    key: &[u8],
    msg: ModuleMsg,
) -> Result<(), KeyedRefusal> {
    lookup(dir, module)
        .ok_or(KeyedRefusal::NotRunning)?
        .send_to_key(key, msg)
}

/// A keyed module's actors as its slot and its senders see them (one actor
/// per key, created on demand: `crate::keyed::Keyed` implements it).
pub(crate) trait KeyedActors: Send + Sync + std::fmt::Debug {
    /// Sends to `key`'s actor, activating it when it is not live.
    fn send(&self, key: &[u8], msg: ModuleMsg) -> Result<(), KeyedRefusal>;
    /// The counts status and metrics show.
    fn status(&self) -> crate::status::KeyedStatus;
    /// Refuses sends from now on and takes out the live actors, to drain.
    fn close(&self) -> Vec<Route>;
    /// Hands a bus event to the live actors (it activates no key).
    fn event(&self, event: &Arc<crate::events::Event>);
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

/// One way in to a module instance, as a handle (or a module context)
/// resolved it once (issue #8 item 11): scaling never moves it to another
/// instance. While its instance runs, it leads there (the route is replaced
/// when the supervisor restarts the actor); when a scale-down removes its
/// instance, it leads to a forwarder ([`crate::forwarder`]) that passes
/// everything on, in order, to the lane of instance `index % new_count`
/// once the removed instance has handled what was queued before.
#[derive(Debug)]
pub(crate) struct Lane {
    /// The instance index the lane was made for.
    pub index: u32,
    route: ArcSwap<Route>,
    /// Where a retired lane's messages go on to.
    forward: std::sync::OnceLock<Arc<Lane>>,
}

impl Lane {
    pub(crate) fn new(route: Route) -> Arc<Self> {
        Arc::new(Lane {
            index: route.shared.index,
            route: ArcSwap::from_pointee(route),
            forward: std::sync::OnceLock::new(),
        })
    }

    /// The instance index this lane's messages end up at (following
    /// retired lanes to the serving one).
    pub(crate) fn serving_index(&self) -> u32 {
        let mut lane = self;
        while let Some(next) = lane.forward.get() {
            lane = next;
        }
        lane.index
    }

    /// Sends through the lane's current route. When the route's actor
    /// refuses (it is draining for a scale-down and the lane was switched to
    /// its forwarder meanwhile), the message goes to the new route: it is
    /// later than everything the old actor took, so order holds.
    pub(crate) fn send(&self, mut msg: ModuleMsg) -> Result<(), Closed> {
        loop {
            let route = self.route.load();
            route.shared.enqueued.fetch_add(1, Ordering::Relaxed);
            match route.actor.send_message(msg) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    route.shared.enqueued.fetch_sub(1, Ordering::Relaxed);
                    let ractor::MessagingErr::SendErr(back) = e else {
                        return Err(Closed);
                    };
                    if self.route.load().actor.get_id() == route.actor.get_id() {
                        return Err(Closed);
                    }
                    msg = back;
                }
            }
        }
    }

    fn set_route(&self, route: Route) {
        self.route.store(Arc::new(route));
    }
}

/// A module's routing slot.
#[derive(Debug)]
pub(crate) struct ModuleSlot {
    pub name: Arc<str>,
    /// The serving instances, by index (what reloads, status and events use).
    pub routes: ArcSwap<Vec<Route>>,
    /// The serving instances' lanes, by index (what new handles resolve).
    pub lanes: ArcSwap<Vec<Arc<Lane>>>,
    /// Whether the serving library wants host events.
    pub wants_events: AtomicBool,
    /// A keyed module's actors, one per key (set once, at its start).
    keyed: std::sync::OnceLock<Arc<dyn KeyedActors>>,
    next: AtomicUsize,
    /// Set when the module is removed or the node shuts down: sends through
    /// handles and contexts fail from then on.
    closed: AtomicBool,
    /// Serializes changes of the routes, the lanes and `closed`; holds the
    /// forwarders of retired lanes, oldest first, each with its lane.
    edit: Mutex<Vec<(Route, Weak<Lane>)>>,
}

impl ModuleSlot {
    pub(crate) fn new(name: &str, routes: Vec<Route>) -> Arc<Self> {
        let lanes = routes.iter().cloned().map(Lane::new).collect();
        Arc::new(ModuleSlot {
            name: Arc::from(name),
            routes: ArcSwap::from_pointee(routes),
            lanes: ArcSwap::from_pointee(lanes),
            wants_events: AtomicBool::new(false),
            keyed: std::sync::OnceLock::new(),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            edit: Mutex::new(Vec::new()),
        })
    }

    /// Makes the slot keyed (once; a second call is ignored).
    pub(crate) fn set_keyed(&self, keyed: Arc<dyn KeyedActors>) {
        let _ = self.keyed.set(keyed);
    }

    /// A keyed module's actors; `None` for a pool module.
    pub(crate) fn keyed(&self) -> Option<&Arc<dyn KeyedActors>> {
        self.keyed.get()
    }

    /// Sends to `key`'s actor of this keyed module, activating it when it
    /// is not live: the one way to a keyed actor (names and handles alike).
    ///
    /// # Errors
    /// [`KeyedRefusal`]: the module is removed or not keyed, or its live
    /// limit is reached.
    pub(crate) fn send_to_key(&self, key: &[u8], msg: ModuleMsg) -> Result<(), KeyedRefusal> {
        if self.is_closed() {
            return Err(KeyedRefusal::NotRunning);
        }
        self.keyed().ok_or(KeyedRefusal::NotKeyed)?.send(key, msg)
    }

    /// The next instance index for a new handle (round robin).
    pub(crate) fn next_pin(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the module was removed or the node is shutting down.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The lane of serving instance `index % count`, resolved now.
    pub(crate) fn resolve(&self, index: usize) -> Option<Arc<Lane>> {
        let lanes = self.lanes.load();
        if lanes.is_empty() {
            return None;
        }
        Some(lanes[index % lanes.len()].clone())
    }

    fn edit(&self) -> std::sync::MutexGuard<'_, Vec<(Route, Weak<Lane>)>> {
        self.edit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the route of one instance (after a restart). Refused (the
    /// caller stops the new actor) once the slot is closed.
    pub(crate) fn replace(&self, index: u32, route: Route) -> Result<(), Closed> {
        let _edit = self.edit();
        if self.is_closed() {
            return Err(Closed);
        }
        let mut routes: Vec<Route> = self.routes.load().as_ref().clone();
        if let Some(r) = routes.iter_mut().find(|r| r.shared.index == index) {
            *r = route.clone();
        }
        if let Some(lane) = self.lanes.load().iter().find(|l| l.index == index) {
            lane.set_route(route);
        }
        self.routes.store(Arc::new(routes));
        Ok(())
    }

    /// Adds a serving instance (a scale-up) with a lane of its own: lanes
    /// already resolved, even retired ones of the same index, keep leading
    /// where they led. Refused once the slot is closed.
    pub(crate) fn push(&self, route: Route) -> Result<(), Closed> {
        let _edit = self.edit();
        if self.is_closed() {
            return Err(Closed);
        }
        let mut routes: Vec<Route> = self.routes.load().as_ref().clone();
        let mut lanes: Vec<Arc<Lane>> = self.lanes.load().as_ref().clone();
        lanes.push(Lane::new(route.clone()));
        routes.push(route);
        self.lanes.store(Arc::new(lanes));
        self.routes.store(Arc::new(routes));
        Ok(())
    }

    /// A scale-down to `count` instances: takes the instances from `count`
    /// on out of the serving set and switches each one's lane to its
    /// forwarder (`forwarders[k]` for instance `count + k`, made to pass
    /// messages on to the lane of instance `(count + k) % count`). Returns
    /// the removed routes, to drain; refused once the slot is closed.
    pub(crate) fn retire_from(
        &self,
        count: usize,
        forwarders: Vec<Route>,
    ) -> Result<Vec<Route>, Closed> {
        let mut retired = self.edit();
        if self.is_closed() {
            return Err(Closed);
        }
        let mut routes: Vec<Route> = self.routes.load().as_ref().clone();
        let mut lanes: Vec<Arc<Lane>> = self.lanes.load().as_ref().clone();
        if count == 0 || count >= routes.len() || forwarders.len() != routes.len() - count {
            return Err(Closed);
        }
        let removed = routes.split_off(count);
        let removed_lanes = lanes.split_off(count);
        self.routes.store(Arc::new(routes));
        self.lanes.store(Arc::new(lanes.clone()));
        for (lane, via) in removed_lanes.into_iter().zip(forwarders) {
            lane.set_route(via.clone());
            let _ = lane.forward.set(lanes[lane.index as usize % count].clone());
            retired.push((via, Arc::downgrade(&lane)));
        }
        Ok(removed)
    }

    /// Closes the slot (sends through handles and contexts fail from now
    /// on) and takes out what is left to drain: the forwarders, oldest
    /// first, then the serving instances.
    pub(crate) fn close(&self) -> (Vec<Route>, Vec<Route>) {
        let mut retired = self.edit();
        self.closed.store(true, Ordering::Release);
        let mut routes = self.routes.load().as_ref().clone();
        if let Some(keyed) = self.keyed() {
            routes.extend(keyed.close());
        }
        self.routes.store(Arc::new(Vec::new()));
        self.lanes.store(Arc::new(Vec::new()));
        let forwarders = std::mem::take(&mut *retired);
        (forwarders.into_iter().map(|(r, _)| r).collect(), routes)
    }

    /// Takes out the forwarders whose lane no handle or context holds any
    /// more (nothing can reach them but what is already queued), to drain.
    pub(crate) fn prune_retired(&self) -> Vec<Route> {
        let mut retired = self.edit();
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *retired)
            .into_iter()
            .partition(|(_, lane)| lane.strong_count() == 0);
        *retired = kept;
        gone.into_iter().map(|(r, _)| r).collect()
    }
}

/// All modules of a node by name.
pub(crate) type Directory = Arc<RwLock<HashMap<String, Arc<ModuleSlot>>>>;

pub(crate) fn lookup(dir: &Directory, module: &str) -> Option<Arc<ModuleSlot>> {
    dir.read().ok().and_then(|d| d.get(module).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::{Actor, ActorProcessingErr};

    /// An actor that takes module messages and drops them.
    struct Sink;

    impl Actor for Sink {
        type Msg = ModuleMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<ModuleMsg>,
            _args: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    async fn route(index: u32) -> Route {
        let (actor, _join) = Actor::spawn(None, Sink, ()).await.unwrap();
        Route {
            actor,
            shared: InstanceShared::new(index),
        }
    }

    #[tokio::test]
    async fn a_retired_lane_forwards_to_index_mod_count_and_goes_once_unheld() {
        let slot = ModuleSlot::new("m", vec![route(0).await, route(1).await]);
        let held = slot.resolve(1).unwrap();
        let removed = slot.retire_from(1, vec![route(1).await]).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(held.serving_index(), 0, "instance 1 goes on to 1 % 1");
        assert_eq!(
            slot.resolve(5).unwrap().index,
            0,
            "new handles: serving lanes only"
        );
        slot.push(route(1).await).unwrap();
        assert_eq!(held.serving_index(), 0, "a scale-up moves no lane");
        assert_eq!(slot.resolve(1).unwrap().index, 1);
        assert!(
            slot.prune_retired().is_empty(),
            "a handle still holds the lane"
        );
        drop(held);
        assert_eq!(slot.prune_retired().len(), 1);
        let (forwarders, routes) = slot.close();
        assert!(forwarders.is_empty());
        assert_eq!(routes.len(), 2);
        assert!(slot.is_closed());
        assert!(
            slot.push(route(2).await).is_err(),
            "a closed slot takes nothing"
        );
    }
}
