//! A lane's route, read per message without an `ArcSwap` guard (issue #11
//! §1): each thread keeps copies of the routes it sent through last,
//! checked against the lane's generation.
//!
//! `Lane::send` loaded its route from an `ArcSwap` for every message: a
//! thread-local debt slot taken with a sequentially consistent swap and
//! given back with a compare-and-swap, two locked instructions per message
//! on the sender's core. A lane's route changes rarely (a restart in place,
//! a forced reload, a scale-down switching it to its forwarder): the lane
//! counts its changes, and a thread that sent through it before reuses its
//! copy while the count is the one it saw, one plain load per message. The
//! count is raised after the new route is stored, so a thread that sees
//! the old count sends as if it had loaded the route just before the
//! change, which `ArcSwap::load` allowed too (the caller retries with the
//! route stored now when the old actor refuses).
//!
//! A thread keeps at most [`WAYS`] copies (the lanes it sent through last);
//! a copy holds the route's actor reference until it is replaced or the
//! thread ends, as a handle holds its lane.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Route;

/// How many lanes' routes a thread keeps.
const WAYS: usize = 4;

/// Gives every [`VersionedRoute`] an identity no other one ever has.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A lane's route and the count of its changes.
#[derive(Debug)]
pub(super) struct VersionedRoute {
    id: u64,
    /// Raised after each store of `route`.
    generation: AtomicU64,
    route: ArcSwap<Route>,
}

/// A thread's copy of one lane's route.
struct Copy {
    id: u64,
    generation: u64,
    route: Arc<Route>,
}

/// A thread's copies, replaced round robin.
struct Copies {
    ways: [Option<Copy>; WAYS],
    next: usize,
}

impl Copies {
    /// Keeps `copy`, in place of an older copy of the same lane, else of
    /// an empty way, else of the way next in turn.
    fn keep(&mut self, copy: Copy) {
        let at = self
            .ways
            .iter()
            .position(|c| c.as_ref().is_none_or(|c| c.id == copy.id))
            .unwrap_or_else(|| {
                let at = self.next;
                self.next = (at + 1) % WAYS;
                at
            });
        self.ways[at] = Some(copy);
    }
}

thread_local! {
    static COPIES: RefCell<Copies> = const {
        RefCell::new(Copies {
            ways: [const { None }; WAYS],
            next: 0,
        })
    };
}

impl VersionedRoute {
    pub(super) fn new(route: Route) -> Self {
        VersionedRoute {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            route: ArcSwap::from_pointee(route),
        }
    }

    /// The route stored now.
    pub(super) fn load(&self) -> arc_swap::Guard<Arc<Route>> {
        self.route.load()
    }

    /// Replaces the route; threads holding a copy of the old one load the
    /// new one at their next send.
    pub(super) fn store(&self, route: Route) {
        self.route.store(Arc::new(route));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Calls `f` with the route: this thread's copy while it is current,
    /// else the route stored now (and kept as this thread's copy).
    pub(super) fn with<R>(&self, f: impl FnOnce(&Route) -> R) -> R {
        // Read before the route is: a copy is never newer than its count.
        let generation = self.generation.load(Ordering::Acquire);
        // At the thread's end its copies are gone: the route stored now.
        if COPIES.try_with(|_| ()).is_err() {
            return f(&self.route.load());
        }
        COPIES.with(|copies| {
            // Only `send` borrows, and it does not send again meanwhile;
            // should that change, the route stored now is still right.
            let Ok(mut copies) = copies.try_borrow_mut() else {
                return f(&self.route.load());
            };
            if let Some(copy) = copies
                .ways
                .iter()
                .flatten()
                .find(|c| c.id == self.id && c.generation == generation)
            {
                return f(&copy.route);
            }
            let route = self.route.load_full();
            let out = f(&route);
            copies.keep(Copy {
                id: self.id,
                generation,
                route,
            });
            out
        })
    }
}
