//! The sender a message carries (`ctx.sender()`), without a shared
//! reference count per message (issue #11 §1).
//!
//! A message used to carry its sender as an `Arc<Address>`: cloned by the
//! sending thread, dropped by the receiving actor's thread, so the count's
//! cache line moved between the two cores on every message (3–5 points of
//! Savina counting, BENCHMARKS.md "Where a message's time goes, after the
//! second round"). An instance's address is a handful of names and an
//! index that its actor keeps for its whole life, restarts and reloads
//! included: it is interned once, node-wide, when the instance's context is
//! made, and a message carries a plain reference to it (copied, never
//! counted). Interned addresses are kept for the process's life: one small
//! allocation per instance address a process ever ran (a module removed and
//! added again, or an instance restarted, finds its entry again).
//!
//! A keyed actor's address names its key: keys come and go without bound,
//! so those (and the address of an actor asked with `ctx.ask`, which a
//! module names) stay shared (`Arc`), counted as before.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use molt_abi::Address;

/// The sender of a message: the address of the actor that sent it.
#[derive(Debug, Clone)]
pub(crate) enum Sender {
    /// An instance's address, interned: copied per message, not counted.
    Instance(&'static Address),
    /// Any other address (a keyed actor's, the actor a request asked).
    Shared(Arc<Address>),
}

impl Sender {
    /// The sender of what an actor at `address` sends: interned when it is
    /// an instance's address (see the module's doc), shared otherwise.
    pub(crate) fn of(address: Address) -> Self {
        match address.target {
            molt_abi::Target::Instance(_) => Sender::Instance(intern(address)),
            molt_abi::Target::Key(_) => Sender::Shared(Arc::new(address)),
        }
    }

    /// Whether `self` and `other` are the same sender by identity (one
    /// interned entry, or one shared allocation): no names compared. A
    /// holder of a `Sender` keeps its address alive, so the identity is
    /// never another address's.
    pub(crate) fn same(&self, other: &Sender) -> bool {
        std::ptr::eq::<Address>(&**self, &**other)
    }
}

impl std::ops::Deref for Sender {
    type Target = Address;
    fn deref(&self) -> &Address {
        match self {
            Sender::Instance(a) => a,
            Sender::Shared(a) => a,
        }
    }
}

/// The interned instance addresses of this process.
static INTERNED: OnceLock<Mutex<HashSet<&'static Address>>> = OnceLock::new();

/// `address`'s interned copy: the same reference for equal addresses, made
/// once and kept for the process's life.
fn intern(address: Address) -> &'static Address {
    let table = INTERNED.get_or_init(Mutex::default);
    let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = table.get(&address) {
        return found;
    }
    let leaked: &'static Address = Box::leak(Box::new(address));
    table.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_address_is_interned_once_a_key_address_is_shared() {
        let a = Sender::of(Address::instance("n", "m", 3));
        let b = Sender::of(Address::instance("n", "m", 3));
        assert!(matches!(a, Sender::Instance(_)));
        assert!(a.same(&b), "equal instance addresses share one entry");
        assert!(!a.same(&Sender::of(Address::instance("n", "m", 4))));
        let k = Sender::of(Address::key("n", "m", b"k".to_vec()));
        assert!(matches!(k, Sender::Shared(_)));
        assert!(k.same(&k.clone()));
        assert!(!k.same(&Sender::of(Address::key("n", "m", b"k".to_vec()))));
        assert_eq!(*a, Address::instance("n", "m", 3));
    }

    /// A message carries its origin inline (ractor boxes every message):
    /// the sender adds two words at most.
    #[test]
    fn an_origin_is_two_words() {
        assert_eq!(std::mem::size_of::<Option<Sender>>(), 16);
    }
}
