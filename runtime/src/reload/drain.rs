//! Phase 2, drain: deliver `Swap` through each instance's normal mailbox.
//! Messages sent before it are handled by the old code; while the instance is
//! inside `Swap`, everything sent after it waits in the mailbox.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::force::ForceLog;
use super::{Decision, InstanceReport, PhaseFailure, Progress, SwapMode, SwapRequest};
use crate::config::Limits;
use crate::directory::Route;
use crate::loader::Library;
use crate::module_actor::ModuleMsg;

/// The coordinator's end of one instance's swap.
pub(crate) struct Pending {
    pub index: u32,
    pub prepared: oneshot::Receiver<Result<(), PhaseFailure>>,
    pub decision: Option<oneshot::Sender<Decision>>,
    pub done: oneshot::Receiver<InstanceReport>,
    /// Where the instance is in its swap.
    pub progress: Arc<Progress>,
}

/// Sends `Swap` to every instance. An instance whose mailbox is closed shows
/// up as a failed `prepared` (its sender is dropped with the message).
/// `solo`: the module's only voter, which decides alone once prepared.
pub(crate) fn send_swaps(
    routes: &[Route],
    target: &Arc<Library>,
    config: &Arc<Vec<u8>>,
    mode: SwapMode,
    limits: &Limits,
    force: Option<&Arc<ForceLog>>,
    solo: bool,
) -> Vec<Pending> {
    routes
        .iter()
        .map(|route| {
            let (prepared_tx, prepared) = oneshot::channel();
            let (decision_tx, decision_rx) = oneshot::channel();
            let (done_tx, done) = oneshot::channel();
            let progress = Arc::new(Progress::default());
            let req = SwapRequest {
                target: target.clone(),
                config: config.clone(),
                mode,
                limits: limits.clone(),
                prepared: prepared_tx,
                decision: decision_rx,
                done: done_tx,
                progress: progress.clone(),
                span: tracing::Span::current(),
                solo,
                force: force.cloned(),
            };
            // A failed send drops the request and with it `prepared_tx`.
            let _ = route.actor.send_message(ModuleMsg::Swap(Box::new(req)));
            Pending {
                index: route.shared.index,
                prepared,
                decision: Some(decision_tx),
                done,
                progress,
            }
        })
        .collect()
}
