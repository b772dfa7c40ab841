//! The instance's part of a rehearsal: a snapshot taken between messages,
//! the way checkpoints are (a `Rehearse` delivery through the mailbox). It is
//! the only pause a rehearsal costs the instance; everything else runs off
//! the actor.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::directory::Snapshot;
use crate::module_actor::Instance;
use crate::reload::{snapshot, PhaseFailure, SwapMode};

/// The `Rehearse` message's payload.
pub(crate) struct RehearseRequest {
    /// Upgrade (the state as it is) or downgrade (the state down-migrated
    /// to the rehearsed library's older state version).
    pub mode: SwapMode,
    /// Where the snapshot goes.
    pub reply: oneshot::Sender<Taken>,
}

/// The snapshot an instance took for a rehearsal.
pub(crate) struct Taken {
    /// The state (never `None`: a rehearsal never resets), or why not.
    pub state: Result<Option<Snapshot>, PhaseFailure>,
    /// How long the snapshot took (the instance's pause).
    pub took: Duration,
}

/// Takes the snapshot and hands it over. The behaviour and its state are
/// untouched: nothing is stopped, started or swapped.
pub(crate) fn on_instance(inst: &Instance, req: RehearseRequest) {
    let started = Instant::now();
    let state = snapshot::take(inst, req.mode);
    let _ = req.reply.send(Taken {
        state,
        took: started.elapsed(),
    });
}
