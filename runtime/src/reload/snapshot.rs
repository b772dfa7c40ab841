//! Phase 3, snapshot: the old behaviour's state as bytes, at the old state
//! version (upgrade) or down-migrated to an older one (explicit rollback).
//! Taking it changes nothing, so a failure here leaves the old code serving.

use super::{Phase, PhaseFailure, SwapMode};
use crate::directory::Snapshot;
use crate::module_actor::Instance;
use std::sync::Arc;

/// The state to hand to the new library; `None` for a reset.
pub(crate) fn take(inst: &Instance, mode: SwapMode) -> Result<Option<Snapshot>, PhaseFailure> {
    match mode {
        SwapMode::Reset => Ok(None),
        SwapMode::Upgrade => inst
            .snapshot_now()
            .map(Some)
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
