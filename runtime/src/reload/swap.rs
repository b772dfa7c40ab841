//! Phase 5, swap: `old.stop()` then `new.start()` (shutdown → initialize). On
//! failure: `new.stop()` and `old.start()` again, with its untouched state. A
//! forced reload (docs/semantics.md "Rollback and forced reloads") goes on past
//! a failing old `stop`: the state was handed over already.

use molt_abi::ffi::BehaviourBox;

use super::{Phase, PhaseFailure, Progress};
use crate::module_actor::Instance;

/// Stops the old behaviour and starts the new one. On failure (or when the
/// coordinator rolled back while the old `stop` ran) the old one is started
/// again and the error returned; `forced`: a failing old `stop` is only
/// logged.
pub(crate) fn start_new(
    inst: &mut Instance,
    mut new: BehaviourBox,
    progress: &Progress,
    forced: bool,
) -> Result<BehaviourBox, PhaseFailure> {
    if let Err(e) = inst.behaviour.stop().into_result() {
        if !forced {
            restart_old(inst);
            return Err(PhaseFailure::module(Phase::Swap, "old stop", e));
        }
        tracing::warn!(target: "molt::reload", module = &*inst.module, instance = inst.index(), "forced reload: the old code's stop failed ({e}); going on with the state it handed over");
    }
    if let Err(abandoned) = progress.go_on("the new start") {
        restart_old(inst);
        return Err(abandoned);
    }
    if let Err(e) = new.start().into_result() {
        let _ = new.stop();
        restart_old(inst);
        return Err(PhaseFailure::module(Phase::Swap, "start", e));
    }
    Ok(new)
}

/// Starts the old behaviour again (a rollback after it was stopped).
pub(crate) fn restart_old(inst: &mut Instance) {
    if let Err(e) = inst.behaviour.start().into_result() {
        tracing::error!(
            target: "molt::reload",
            module = &*inst.module,
            instance = inst.index(),
            "rollback: the old behaviour's start failed ({e}); it keeps its state and serves anyway"
        );
    }
}
