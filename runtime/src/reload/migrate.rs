//! Phase 4, migrate: the new library builds its behaviour from the old state
//! (converting older state versions it knows), or from its config on a reset.

use std::sync::Arc;

use molt_abi::ffi::BehaviourBox;

use super::{Phase, PhaseFailure};
use crate::directory::Snapshot;
use crate::loader::Library;
use crate::module_actor::Instance;

/// Builds the new behaviour. The old one is untouched.
pub(crate) fn restore(
    inst: &Instance,
    target: &Arc<Library>,
    state: Option<&Snapshot>,
    config: &Arc<Vec<u8>>,
) -> Result<BehaviourBox, PhaseFailure> {
    let built = match state {
        Some(s) => target.migrate(s.version, &s.bytes, config, inst.ctx.clone()),
        None => target.init(config, inst.ctx.clone()),
    };
    built.map_err(|e| PhaseFailure::module(Phase::Migrate, "migrate", e))
}
