//! A reload of a keyed module (issue #9 §3): the coordinator freezes the
//! registry (no activation or passivation runs until the decision), swaps
//! the template instance and every live actor under one two-phase decision,
//! and, if it commits, activations from then on use the new code.
//! Passivated snapshots are not touched: they keep their state version and
//! the code that activates them migrates them (on activation), so a
//! rollback leaves them readable by the old code as they were.

use std::sync::Arc;

use tokio::sync::OwnedRwLockWriteGuard;

use super::{Entry, Keyed, Serving};
use crate::directory::Route;
use crate::loader::Library;

/// A keyed module held still for a reload.
pub(crate) struct Frozen {
    keyed: Arc<Keyed>,
    _gate: OwnedRwLockWriteGuard<()>,
}

impl Keyed {
    /// Waits for the activations and passivations under way, then holds
    /// the others back until [`Frozen::finish`].
    pub(crate) async fn freeze(self: &Arc<Self>) -> Frozen {
        let gate = self.gate.clone().write_owned().await;
        Frozen {
            keyed: self.clone(),
            _gate: gate,
        }
    }
}

impl Frozen {
    /// The live actors now: with the module's instances, the routes the
    /// reload swaps.
    pub(crate) fn live_routes(&self) -> Vec<Route> {
        let t = self.keyed.table();
        t.keys
            .values()
            .filter_map(|e| match e {
                Entry::Live { route, .. } => Some(route.clone()),
                _ => None,
            })
            .collect()
    }

    /// The reload is decided: a committed one leaves `to` (its library and
    /// config) as the code that activates keys. Then activations and
    /// passivations resume (those that waited run with the decided code).
    pub(crate) fn finish(self, to: Option<(Arc<Library>, Arc<Vec<u8>>)>) {
        if let Some((lib, config)) = to {
            self.keyed.serving.store(Arc::new(Serving { lib, config }));
        }
    }
}
