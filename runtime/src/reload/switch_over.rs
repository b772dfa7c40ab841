//! A committed keyed reload's switch-over of one live actor
//! (docs/semantics.md "Keyed actors"): between two of its messages, the
//! actor takes its snapshot, the new library migrates it (phases 3 and 4),
//! the old behaviour stops and the new one starts (phase 5), and the new one
//! serves from the next message on (phase 7's commit, already decided). It
//! runs inside the actor, so its pause is only that work: the messages sent
//! meanwhile wait in its mailbox, in order, and no task of the host stands
//! between them and the new code. There is no vote left to take: the actor
//! voted on a rehearsal of its state before the decision.
//!
//! On failure (its state changed after its vote into one the new code
//! refuses, or `start` failed) the old behaviour serves on unchanged and the
//! host passivates the key instead ([`crate::keyed`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{commit, migrate, snapshot, swap, Candidate, PhaseFailure, Progress, SwapMode};
use crate::loader::Library;
use crate::module_actor::Instance;

/// The `SwitchOver` message's payload.
pub(crate) struct SwitchRequest {
    /// The committed library.
    pub target: Arc<Library>,
    /// Its config.
    pub config: Arc<Vec<u8>>,
    /// How the state is handed over (a reset: `init`).
    pub mode: SwapMode,
    /// The actor's pause, or why it still runs the old code.
    pub reply: oneshot::Sender<Result<Duration, PhaseFailure>>,
}

/// Switches the actor over to the committed code.
pub(crate) fn on_instance(inst: &mut Instance, req: SwitchRequest) {
    let paused_at = Instant::now();
    let switched = switch(inst, &req);
    let _ = req.reply.send(switched.map(|()| paused_at.elapsed()));
}

fn switch(inst: &mut Instance, req: &SwitchRequest) -> Result<(), PhaseFailure> {
    let state = snapshot::take(inst, req.mode)?;
    let new = migrate::restore(inst, &req.target, state.as_ref(), &req.config)?;
    let new = swap::start_new(inst, new, &Progress::default(), false)?;
    commit::apply(
        inst,
        Candidate {
            behaviour: new,
            // The new library has just migrated it: what a restart rebuilds
            // from until the next checkpoint.
            snapshot: state,
        },
        req.target.clone(),
        req.config.clone(),
    );
    Ok(())
}
