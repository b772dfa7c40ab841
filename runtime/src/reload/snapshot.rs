//! Phase 3, snapshot: the old behaviour's state as bytes, at the old state
//! version (upgrade) or down-migrated to an older one (explicit rollback).
//! Taking it changes nothing, so a failure here leaves the old code serving.

use abi_stable::std_types::RVec;
use molt_abi::ffi::{BehaviourBox, ModError};

use super::{Phase, PhaseFailure, SwapMode};
use crate::directory::Snapshot;
use crate::module_actor::Instance;
use std::sync::Arc;

/// The state to hand to the new library; `None` for a reset.
pub(crate) fn take(inst: &Instance, mode: SwapMode) -> Result<Option<Snapshot>, PhaseFailure> {
    match mode {
        SwapMode::Reset => Ok(None),
        SwapMode::Upgrade => bytes_of(&inst.behaviour, size_hint(inst))
            .map(|bytes| {
                Some(Snapshot {
                    version: inst.lib.state_version,
                    bytes: Arc::new(bytes),
                })
            })
            .map_err(|e| PhaseFailure::module(Phase::Snapshot, "snapshot", e)),
        SwapMode::Downgrade { to } => inst
            .behaviour
            .downgrade(to)
            .into_result()
            .map(|b| {
                Some(Snapshot {
                    version: to,
                    bytes: Arc::new(b.into_vec()),
                })
            })
            .map_err(|e| PhaseFailure::module(Phase::Snapshot, "downgrade", e)),
    }
}

/// `behaviour`'s snapshot, written by the module into a buffer the host
/// allocated (`snapshot_into`), so the bytes are not copied again out of the
/// library's allocation (a library built before `snapshot_into` copies them
/// once, as `snapshot` did). `hint`: the size expected.
///
/// # Errors
/// The module's error when its state does not encode.
pub(crate) fn bytes_of(behaviour: &BehaviourBox, hint: usize) -> Result<Vec<u8>, ModError> {
    let mut out = RVec::with_capacity(hint);
    behaviour.snapshot_into(&mut out).into_result()?;
    Ok(out.into_vec())
}

/// The size an instance's next snapshot is expected to have: that of its
/// last checkpoint, with some room to grow (a large state's buffer is then
/// not reallocated, and copied, while it is written).
pub(crate) fn size_hint(inst: &Instance) -> usize {
    let last = inst
        .shared
        .last_good
        .lock()
        .ok()
        .and_then(|g| g.as_ref().map(|c| c.snapshot.bytes.len()))
        .unwrap_or(0);
    last + last / 16 + 256
}
