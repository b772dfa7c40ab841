//! The count of mapped library copies, and its cap (docs/semantics.md "Loading
//! and libraries": copies are never unmapped, so each load costs memory for the
//! process's life).
//!
//! A library is mapped once `dlopen` succeeded, whatever happens next (a
//! layout mismatch, another module's name, a failing root module): abi_stable
//! never `dlclose`s it. Only a failed `dlopen`, or a library without a root
//! module header (abi_stable closes that one), maps nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::LoadCause;

/// Copies mapped by this process.
static MAPPED: AtomicUsize = AtomicUsize::new(0);
/// Copies mapped plus loads holding a [`Slot`]: what the cap is checked against.
static TAKEN: AtomicUsize = AtomicUsize::new(0);

/// How many library copies this process has mapped.
pub(super) fn mapped() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

/// The right to map one more copy, taken before copying; returned on drop
/// unless [`Slot::mapped`] was called.
pub(super) struct Slot(());

/// Takes a slot, unless `max` copies are mapped or being loaded.
pub(super) fn reserve(max: usize) -> Result<Slot, LoadCause> {
    TAKEN
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
            (taken < max).then_some(taken + 1)
        })
        .map(|_| Slot(()))
        .map_err(|taken| LoadCause::TooManyMappings { mapped: taken, max })
}

impl Slot {
    /// `dlopen` succeeded: the copy stays mapped for the process's life.
    pub(super) fn mapped(self) {
        MAPPED.fetch_add(1, Ordering::Relaxed);
        std::mem::forget(self);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        TAKEN.fetch_sub(1, Ordering::AcqRel);
    }
}
