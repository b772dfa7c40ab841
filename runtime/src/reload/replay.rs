//! Phase 8, replay: the actor returns from `Swap` and ractor hands it the
//! messages that queued meanwhile, in order, now to whichever behaviour was
//! committed. Nothing to do but measure the pause.

use std::time::{Duration, Instant};

use crate::module_actor::Instance;

/// Ends the pause; returns how long the instance did not serve.
pub(crate) fn resume(inst: &Instance, paused_at: Instant) -> Duration {
    let pause = paused_at.elapsed();
    tracing::debug!(
        target: "molt::reload",
        module = &*inst.module,
        instance = inst.index(),
        pause_us = pause.as_micros() as u64,
        queued = inst.shared.mailbox_depth(),
        "replaying queued messages"
    );
    pause
}
