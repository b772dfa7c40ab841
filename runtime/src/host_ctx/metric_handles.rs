//! A module instance's metric handles by name (`ctx.counter`, `ctx.gauge`),
//! found without a lock on the message path (issue #11 §1).
//!
//! Registering a metric (name formatting, label allocation, the recorder's
//! lookup) happens once per name; after that every `ctx.counter("adds", 1)`
//! only has to find the handle. A module uses a handful of names: the first
//! [`FIRST`] are kept in slots that are written once and read with a plain
//! load (no mutex, no read-modify-write), in the order they were first used;
//! more names go to a list under a mutex. It was one mutex for all, taken on
//! every call: part of the 22 ns `ctx.counter` cost more than a cached
//! `metrics::Counter` (BENCHMARKS.md, "Where a message's time goes").

use std::sync::{Mutex, OnceLock};

/// How many names are found without a lock.
const FIRST: usize = 8;

/// Metric handles (`metrics::Counter`, `metrics::Gauge`) by name.
pub(super) struct MetricHandles<H> {
    /// Filled in order, each once, under `more`'s lock.
    first: [OnceLock<(Box<str>, H)>; FIRST],
    /// The names after the first [`FIRST`]; its lock also serializes
    /// registrations.
    more: Mutex<Vec<(Box<str>, H)>>,
}

impl<H> Default for MetricHandles<H> {
    fn default() -> Self {
        MetricHandles {
            first: std::array::from_fn(|_| OnceLock::new()),
            more: Mutex::new(Vec::new()),
        }
    }
}

impl<H> MetricHandles<H> {
    /// Calls `use_handle` with the handle of `name`, registered with
    /// `register` the first time the name is used.
    pub(super) fn with(
        &self,
        name: &str,
        register: impl FnOnce() -> H,
        use_handle: impl FnOnce(&H),
    ) {
        if let Some(h) = self.find_first(name) {
            return use_handle(h);
        }
        let mut more = self.more.lock().unwrap_or_else(|p| p.into_inner());
        // Looked up again under the lock: another thread may have
        // registered it meanwhile.
        if let Some(h) = self.find_first(name) {
            return use_handle(h);
        }
        if let Some((_, h)) = more.iter().find(|(n, _)| &**n == name) {
            return use_handle(h);
        }
        let handle = register();
        let entry = (Box::<str>::from(name), handle);
        // Slots are only set under `more`'s lock: the first empty one is
        // still empty here.
        match self.first.iter().find(|slot| slot.get().is_none()) {
            Some(slot) => {
                let _ = slot.set(entry);
                if let Some((_, h)) = slot.get() {
                    use_handle(h);
                }
            }
            None => {
                more.push(entry);
                if let Some((_, h)) = more.last() {
                    use_handle(h);
                }
            }
        }
    }

    /// The handle of `name` among the first slots (filled in order: the
    /// first empty one ends the search).
    fn find_first(&self, name: &str) -> Option<&H> {
        for slot in &self.first {
            match slot.get() {
                Some((n, h)) if &**n == name => return Some(h),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Each name is registered once, also past the lock-free slots, and
    /// always finds its own handle.
    #[test]
    fn registers_each_name_once_and_finds_it_again() {
        let handles = MetricHandles::<usize>::default();
        let registered = Cell::new(0);
        let names: Vec<String> = (0..FIRST * 2).map(|i| format!("m{i}")).collect();
        for _ in 0..3 {
            for (i, name) in names.iter().enumerate() {
                let mut seen = None;
                handles.with(
                    name,
                    || {
                        registered.set(registered.get() + 1);
                        i
                    },
                    |h| seen = Some(*h),
                );
                assert_eq!(seen, Some(i), "{name}");
            }
        }
        assert_eq!(registered.get(), names.len());
    }
}
