//! Bus events for keyed actors: every live actor of a keyed module that
//! asked for events gets each one through its mailbox, like an instance.
//! An event never activates a key: a passivated key (or one passivating)
//! misses the events published while it sleeps, as a stopped actor would;
//! a key being activated gets them after the messages waiting for it.

use std::sync::Arc;

use super::{deliver, Entry, Keyed};
use crate::events::Event;
use crate::module_actor::ModuleMsg;

impl Keyed {
    /// Hands `event` to every live (or activating) actor.
    pub(super) fn deliver_event(&self, event: &Arc<Event>) {
        let mut t = self.table();
        for entry in t.keys.values_mut() {
            match entry {
                Entry::Live { route, .. } => {
                    let _ = deliver(route, ModuleMsg::Event(event.clone()));
                }
                Entry::Activating { queue } => queue.push(ModuleMsg::Event(event.clone())),
                Entry::Passivating { .. } | Entry::Passivated(_) => {}
            }
        }
    }
}
