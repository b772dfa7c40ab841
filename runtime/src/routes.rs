//! The routes an actor's handlers resolved by address (issue #11 §1): the
//! module's routing slot and the instance's lane, kept by the actor and
//! reused while they stay what a resolution now would give, so that a send
//! by address skips the context's slot cache (its lock, the module name
//! search) and the slot's lane table.
//!
//! An address is still resolved on every send (`docs/semantics.md`,
//! "Addresses"): a kept route is used only while its slot is open (a
//! module removed closes its slot; one added again under that name has a
//! new one) and its lane is not retired (a scale-down retires the lanes of
//! the instances it removes; a scale-up adds new lanes and leaves the
//! others). A reload or a restart in place replaces the route inside the
//! lane, which a kept lane follows. Otherwise the address is resolved
//! again, with the errors of a first resolution.

use std::sync::Arc;

use crate::directory::{Lane, ModuleSlot};
use crate::sender::Sender;

/// How many routes an actor keeps (a handler sends to a handful of actors;
/// past that, the oldest is replaced).
const KEEP: usize = 8;

/// An address whose route is kept.
pub(crate) enum To<'a> {
    /// The sender of a message this actor handled, by identity (its
    /// interned or shared address, which the kept route holds: so it is
    /// never another address's).
    Sender(&'a Sender),
    /// An instance of a module on this node.
    Instance { module: &'a str, index: usize },
}

enum Kept {
    Sender(Sender),
    Instance { module: Box<str>, index: usize },
}

impl Kept {
    fn is(&self, to: &To<'_>) -> bool {
        match (self, to) {
            (Kept::Sender(a), To::Sender(b)) => a.same(b),
            (
                Kept::Instance { module, index },
                To::Instance {
                    module: m,
                    index: i,
                },
            ) => index == i && **module == **m,
            _ => false,
        }
    }
}

struct Route {
    to: Kept,
    slot: Arc<ModuleSlot>,
    lane: Arc<Lane>,
}

/// One actor's kept routes (owned by the actor, used by its handlers on
/// their thread through its delivery: no lock).
#[derive(Default)]
pub(crate) struct Routes {
    kept: Vec<Route>,
    /// The next position to replace when full.
    next: usize,
}

impl Routes {
    /// The lane kept for `to`, when it is still what resolving `to` now
    /// would give. A route that is not is dropped (a retired lane no actor
    /// holds lets the host drain its forwarder).
    pub(crate) fn lane(&mut self, to: &To<'_>) -> Option<&Lane> {
        let pos = self.kept.iter().position(|r| r.to.is(to))?;
        let route = &self.kept[pos];
        // A retired lane forwards to another instance's lane: its serving
        // index is not its own.
        if !route.slot.is_closed() && route.lane.serving_index() == route.lane.index {
            return Some(&*self.kept[pos].lane);
        }
        self.kept.swap_remove(pos);
        self.next = 0;
        None
    }

    /// Keeps the route just resolved for `to`.
    pub(crate) fn keep(&mut self, to: &To<'_>, slot: Arc<ModuleSlot>, lane: Arc<Lane>) {
        let kept = match to {
            To::Sender(a) => Kept::Sender((*a).clone()),
            To::Instance { module, index } => Kept::Instance {
                module: (*module).into(),
                index: *index,
            },
        };
        let route = Route {
            to: kept,
            slot,
            lane,
        };
        if let Some(pos) = self.kept.iter().position(|r| r.to.is(to)) {
            self.kept[pos] = route;
        } else if self.kept.len() < KEEP {
            self.kept.push(route);
        } else {
            self.kept[self.next] = route;
            self.next = (self.next + 1) % KEEP;
        }
    }
}
