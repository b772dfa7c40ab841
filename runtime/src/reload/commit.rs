//! Phase 7, commit / rollback: two-phase across all instances of a module.
//! Every instance reports prepared and waits, still buffering, for the
//! decision; all prepared → commit all; any failure or timeout → roll back all.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{timeout_at, Instant};

use super::drain::Pending;
use super::{Candidate, Committed, Decision, Phase, PhaseFailure, Progress};
use crate::config::Limits;
use crate::directory::Snapshot;
use crate::loader::Library;
use crate::module_actor::Instance;

/// The coordinator: collects `prepared`, decides, collects the reports.
pub(crate) async fn coordinate(
    mut pending: Vec<Pending>,
    limits: &Limits,
) -> Result<Committed, PhaseFailure> {
    let deadline = Instant::now() + limits.prepare_timeout;
    let mut failure: Option<PhaseFailure> = None;
    for p in pending.iter_mut() {
        let got = timeout_at(deadline, &mut p.prepared).await;
        let this = match got {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(f))) => Some(PhaseFailure {
                error: format!("instance {}: {}", p.index, f.error),
                ..f
            }),
            Ok(Err(_closed)) => Some(PhaseFailure::new(
                Phase::Drain,
                format!("instance {} is not running", p.index),
            )),
            Err(_) => Some(timed_out(p, limits)),
        };
        if let Some(f) = this {
            failure.get_or_insert(f);
            // Stop waiting for the others: the decision is rollback already.
            break;
        }
    }
    let decision = if failure.is_none() {
        Decision::Commit
    } else {
        // Instances still inside their swap (or yet to reach it) stop at
        // their next step instead of running more of the new code.
        for p in &pending {
            p.progress.abandon();
        }
        Decision::Rollback
    };
    for p in pending.iter_mut() {
        if let Some(tx) = p.decision.take() {
            let _ = tx.send(decision);
        }
    }
    let instances = pending.len();
    let mut pauses = Vec::with_capacity(instances);
    let mut committed = 0;
    let report_deadline = Instant::now() + limits.decision_timeout + limits.prepare_timeout;
    for p in pending {
        match timeout_at(report_deadline, p.done).await {
            Ok(Ok(report)) => {
                if report.committed {
                    committed += 1;
                } else if decision == Decision::Commit {
                    failure.get_or_insert(PhaseFailure::new(
                        Phase::Commit,
                        format!("instance {} did not commit", report.index),
                    ));
                }
                pauses.push(report.pause);
            }
            Ok(Err(_)) | Err(_) => {
                failure.get_or_insert(PhaseFailure::new(
                    Phase::Commit,
                    format!("instance {} did not report after the decision", p.index),
                ));
            }
        }
    }
    // What the instances report is the truth: a lone instance commits on
    // its own when it prepared just as the coordinator's wait ran out.
    if committed == instances {
        return Ok(Committed { pauses });
    }
    Err(failure.unwrap_or_else(|| PhaseFailure::new(Phase::Commit, "not every instance committed")))
}

/// A module's only instance decides alone once it has prepared: commit,
/// unless the coordinator has already given up on it (its prepare timed out
/// and it sent rollback). Either way the instance's report tells the
/// coordinator what happened.
pub(crate) fn solo_decision(mut rx: oneshot::Receiver<Decision>, progress: &Progress) -> Decision {
    if progress.abandoned() {
        return Decision::Rollback;
    }
    match rx.try_recv() {
        Err(oneshot::error::TryRecvError::Empty) => Decision::Commit,
        Ok(d) => d,
        Err(oneshot::error::TryRecvError::Closed) => Decision::Rollback,
    }
}

/// An instance that did not report prepared in time fails the phase it is
/// stuck in: drain when it has not taken `Swap` yet (it is still handling the
/// messages sent before it), else the phase whose module entry point has not
/// returned.
fn timed_out(p: &Pending, limits: &Limits) -> PhaseFailure {
    let (index, limit) = (p.index, limits.prepare_timeout);
    match p.progress.current() {
        None => PhaseFailure::new(
            Phase::Drain,
            format!(
                "instance {index} did not reach the reload within {limit:?}: it is still handling the messages sent before it"
            ),
        ),
        Some(phase) => PhaseFailure::new(
            phase,
            format!("instance {index} did not prepare within {limit:?}: still in {phase}"),
        ),
    }
}

/// Waits for the coordinator's decision; no decision (or a dropped
/// coordinator) means rollback.
pub(crate) async fn await_decision(rx: oneshot::Receiver<Decision>, wait: Duration) -> Decision {
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(d)) => d,
        _ => Decision::Rollback,
    }
}

/// Commit on this instance: the new behaviour replaces the (stopped) old one,
/// which is dropped on the blocking pool; its library stays mapped.
pub(crate) fn apply(
    inst: &mut Instance,
    candidate: Candidate,
    target: Arc<Library>,
    config: Arc<Vec<u8>>,
) {
    let old = std::mem::replace(&mut inst.behaviour, candidate.behaviour);
    // Freeing a large old state takes milliseconds: not inside the pause.
    tokio::task::spawn_blocking(move || drop(old));
    inst.lib = target.clone();
    inst.config = config;
    if let Some(snapshot) = candidate.snapshot {
        inst.set_last_good(target, snapshot);
    } else if let Ok(bytes) = inst.behaviour.snapshot().into_result() {
        inst.set_last_good(
            target.clone(),
            Snapshot {
                version: target.state_version,
                bytes: Arc::new(bytes.into_vec()),
            },
        );
    }
}

/// Rollback on this instance: stop the new behaviour, start the old one again.
pub(crate) fn undo(inst: &mut Instance, mut candidate: Candidate) {
    let _ = candidate.behaviour.stop();
    super::swap::restart_old(inst);
}
