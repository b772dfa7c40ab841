//! The live keys a sender sends to over and over, found without hashing the
//! key (issue #11 §3): a small direct-mapped cache in the registry's table,
//! by the address of the sender's key bytes (a handle keeps its key at one
//! address while it lives), each hit checked against the key's bytes, so an
//! address reused for another key only misses.
//!
//! It lives under the table's lock, like the entries, and holds only live
//! keys' routes: a key is forgotten here before its entry stops being live
//! (a passivation, the registry's close), so a hit decides exactly as the
//! entry would. A hit does not touch the entry's idle mark; it marks its
//! slot, and whoever asks how long keys have been idle folds the slots'
//! marks into the entries first ([`Hot::fold`]).
//!
//! A slot is filled only when the same address misses it twice in a row: a
//! sender cycling over many keys (more than there are slots) never pays
//! for filling slots it would not hit again.

use std::sync::Arc;

use crate::directory::Route;

/// How many slots (a power of two).
const SLOTS: usize = 64;

/// The cache: one slot per address hash.
pub(super) struct Hot {
    slots: Vec<Slot>,
}

#[derive(Default)]
struct Slot {
    /// The address that missed this slot last.
    missed: usize,
    cached: Option<Cached>,
}

struct Cached {
    /// The address of the sender's key bytes.
    at: usize,
    key: Arc<[u8]>,
    route: Route,
    /// Sent to since the last [`Hot::fold`].
    touched: bool,
}

impl Default for Hot {
    fn default() -> Self {
        Hot {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
        }
    }
}

/// The slot of an address (a multiplicative hash: allocations are aligned,
/// the low bits alone would use a few slots).
fn slot_of(at: usize) -> usize {
    ((at as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros())) as usize
}

impl Hot {
    /// The live route of `key` if its address hits, marking the slot
    /// touched.
    pub(super) fn get(&mut self, key: &[u8]) -> Option<&Route> {
        let at = key.as_ptr() as usize;
        let cached = self.slots[slot_of(at)].cached.as_mut()?;
        if cached.at != at || *cached.key != *key {
            return None;
        }
        cached.touched = true;
        Some(&cached.route)
    }

    /// After a miss that found `key` live with `route`: fills the slot if
    /// the same address missed it last time too.
    pub(super) fn offer(&mut self, key: &[u8], route: &Route) {
        let at = key.as_ptr() as usize;
        let slot = &mut self.slots[slot_of(at)];
        if slot.missed != at {
            slot.missed = at;
            return;
        }
        slot.cached = Some(Cached {
            at,
            key: Arc::from(key),
            route: route.clone(),
            touched: false,
        });
    }

    /// Calls `touch` with every key sent to through a hit since the last
    /// fold, and clears the marks.
    pub(super) fn fold(&mut self, mut touch: impl FnMut(&[u8])) {
        for cached in self.slots.iter_mut().filter_map(|s| s.cached.as_mut()) {
            if std::mem::take(&mut cached.touched) {
                touch(&cached.key);
            }
        }
    }

    /// Forgets `key` (its entry stops being live).
    pub(super) fn forget(&mut self, key: &[u8]) {
        for slot in &mut self.slots {
            if slot.cached.as_ref().is_some_and(|c| *c.key == *key) {
                slot.cached = None;
            }
        }
    }

    /// Forgets every key.
    pub(super) fn clear(&mut self) {
        for slot in &mut self.slots {
            slot.cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::InstanceShared;
    use ractor::{Actor, ActorProcessingErr, ActorRef};

    struct Idle;

    impl Actor for Idle {
        type Msg = crate::module_actor::ModuleMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    async fn route() -> Route {
        let (actor, _) = Actor::spawn(None, Idle, ()).await.expect("spawn");
        Route {
            actor,
            shared: InstanceShared::new(1),
        }
    }

    /// A slot fills on the second miss of one address, hits only that
    /// address with those bytes, marks hits for the fold, and forgets.
    #[tokio::test]
    async fn hits_only_the_same_bytes_at_the_same_address() {
        let route = route().await;
        let mut hot = Hot::default();
        let key: Arc<[u8]> = Arc::from(&b"cart-1"[..]);
        assert!(hot.get(&key).is_none());
        hot.offer(&key, &route);
        assert!(hot.get(&key).is_none(), "one miss does not fill");
        hot.offer(&key, &route);
        assert!(hot.get(&key).is_some(), "the second miss fills");

        // The same bytes elsewhere miss (they are looked up in the table).
        let copy: Arc<[u8]> = Arc::from(&b"cart-1"[..]);
        assert!(hot.get(&copy).is_none());

        let mut touched = Vec::new();
        hot.fold(|k| touched.push(k.to_vec()));
        assert_eq!(touched, vec![b"cart-1".to_vec()], "the hit is folded");
        touched.clear();
        hot.fold(|k| touched.push(k.to_vec()));
        assert!(touched.is_empty(), "once");

        hot.forget(b"cart-1");
        assert!(hot.get(&key).is_none(), "forgotten");
        route.actor.stop(None);
    }
}
