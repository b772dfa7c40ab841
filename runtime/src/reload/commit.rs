//! Phase 7, commit / rollback: two-phase across all instances of a module.
//! Every instance reports prepared and waits, still buffering, for the
//! decision; all prepared → commit all; any failure or timeout → roll back all.
//! The coordinator decides once; that decision is what every instance
//! applies and what the coordinator returns (never two outcomes).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::time::{timeout_at, Instant};

use super::drain::Pending;
use super::{Candidate, Committed, Decision, Phase, PhaseFailure, Progress};
use crate::config::Limits;
use crate::directory::Checkpoint;
use crate::loader::Library;
use crate::module_actor::Instance;

/// The coordinator: collects `prepared`, decides once, sends that decision to
/// every instance and returns it as the outcome (docs/semantics.md "Two-phase
/// decision").
///
/// An instance that has voted prepared waits for this decision without a
/// timeout, so coordinator and instances always end in the same outcome;
/// the reports collected afterwards only carry the pauses.
pub(crate) async fn coordinate(
    mut pending: Vec<Pending>,
    limits: &Limits,
    voters: Option<BoxFuture<'static, Result<(), PhaseFailure>>>,
) -> Result<Committed, PhaseFailure> {
    let deadline = Instant::now() + limits.prepare_timeout;
    let lone = pending.len() == 1 && voters.is_none();
    let instances = async {
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
                // Stop waiting for the others: the decision is rollback already.
                return Err(f);
            }
        }
        Ok(())
    };
    let others = async {
        let Some(vote) = voters else {
            return Ok(());
        };
        match timeout_at(deadline, vote).await {
            Ok(voted) => voted,
            Err(_) => Err(PhaseFailure::new(
                Phase::Migrate,
                format!(
                    "the keyed actors did not all vote within limits.prepare_timeout ({:?})",
                    limits.prepare_timeout
                ),
            )),
        }
    };
    // The first failure on either side decides rollback at once.
    let mut failure = futures_util::future::try_join(instances, others)
        .await
        .err();
    let wanted = if failure.is_none() {
        Decision::Commit
    } else {
        Decision::Rollback
    };
    // A lone instance takes the decision itself as soon as it has prepared
    // (no round trip): the coordinator's rollback after a prepare timeout
    // only stands when it comes first; otherwise the instance's commit does.
    let decision = match pending.as_slice() {
        [only] if lone => only.progress.decide(wanted),
        _ => {
            // Recorded where every instance (and the supervisor, should this
            // task die) reads it, before anything is sent.
            for p in &pending {
                p.progress.decide(wanted);
            }
            wanted
        }
    };
    if decision == Decision::Commit {
        failure = None;
    } else {
        // Instances still inside their swap (or yet to reach it) stop at
        // their next step instead of running more of the new code.
        for p in &pending {
            p.progress.abandon();
        }
    }
    hooks::before_decision().await;
    for p in pending.iter_mut() {
        if let Some(tx) = p.decision.take() {
            let _ = tx.send(decision);
        }
    }
    let instances = pending.len();
    let mut pauses = Vec::with_capacity(instances);
    let report_deadline = Instant::now() + limits.decision_timeout + limits.prepare_timeout;
    for p in pending {
        match timeout_at(report_deadline, p.done).await {
            Ok(Ok(mut report)) => {
                if let Some(replaced) = report.replaced.take() {
                    replaced.free_off_pause();
                }
                // Published here, while the instance serves again, and
                // before the outcome (docs/semantics.md "Reload phases").
                if let Some(mut phases) = report.phases.take() {
                    phases.publish();
                }
                if report.committed != (decision == Decision::Commit) {
                    // Cannot happen: a voted instance applies the decision.
                    tracing::error!(target: "molt::reload", instance = report.index, ?decision, "an instance reported an outcome other than the decision");
                }
                pauses.push(report.pause);
            }
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(target: "molt::reload", instance = p.index, ?decision, "an instance did not report within the decision timeout; the decision stands");
            }
        }
    }
    match decision {
        Decision::Commit => Ok(Committed { pauses }),
        Decision::Rollback => Err(failure
            .unwrap_or_else(|| PhaseFailure::new(Phase::Commit, "the reload was rolled back"))),
    }
}

/// A module's only instance decides alone once it has prepared: commit,
/// unless the coordinator has already decided rollback (its prepare timed
/// out). The coordinator records whichever came first.
pub(crate) fn solo_decision(progress: &Progress) -> Decision {
    progress.decide(Decision::Commit)
}

/// A test-only delay before the coordinator sends its decision: the only
/// reliable way to starve the coordinator past the point where an instance
/// used to give up on its own (`tests/two_phase_never_splits.rs`).
#[doc(hidden)]
pub mod hooks {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    static DELAY_MS: AtomicU64 = AtomicU64::new(0);

    /// Delays every coordinator of this process by `delay` between its
    /// decision and sending it (zero: no delay). For tests only.
    pub fn delay_decision(delay: Duration) {
        DELAY_MS.store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) async fn before_decision() {
        let ms = DELAY_MS.load(Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
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

/// Waits for the coordinator's decision, without a timeout: an instance
/// that has voted never decides alone. The coordinator always sends one; if
/// its task dies first (the sender is dropped unsent), the decision it
/// recorded stands, and when it recorded none, rollback, taken in the same
/// cell the supervisor reads, so both sides agree.
pub(crate) async fn await_decision(
    rx: oneshot::Receiver<Decision>,
    progress: &Progress,
) -> Decision {
    match rx.await {
        Ok(d) => d,
        Err(_) => progress.decide(Decision::Rollback),
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
    swap_in(inst, candidate, target, config).free_off_pause();
}

/// Commit on this instance, as [`apply`], but returns what the commit
/// replaced instead of freeing it: a swap hands it to its coordinator with
/// its report, after its pause, so even handing it to the blocking pool is
/// not inside the pause.
pub(crate) fn swap_in(
    inst: &mut Instance,
    candidate: Candidate,
    target: Arc<Library>,
    config: Arc<Vec<u8>>,
) -> Replaced {
    let old = std::mem::replace(&mut inst.behaviour, candidate.behaviour);
    inst.lib = target.clone();
    inst.config = config;
    let checkpoint = if let Some(snapshot) = candidate.snapshot {
        inst.set_last_good(target, snapshot)
    } else if let Ok(snapshot) = inst.snapshot_now() {
        inst.set_last_good(target.clone(), snapshot)
    } else {
        None
    };
    Replaced { old, checkpoint }
}

/// What a commit replaced: the old behaviour (stopped) with its state, and
/// the checkpoint the new state replaced. Freeing a large state takes
/// milliseconds: never inside a pause.
pub(crate) struct Replaced {
    old: molt_abi::ffi::BehaviourBox,
    checkpoint: Option<Checkpoint>,
}

impl Replaced {
    /// Drops it on the blocking pool (the old behaviour's library stays
    /// mapped).
    pub(crate) fn free_off_pause(self) {
        let Replaced { old, checkpoint } = self;
        tokio::task::spawn_blocking(move || drop((old, checkpoint)));
    }
}

impl std::fmt::Debug for Replaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replaced")
            .field("checkpoint", &self.checkpoint.is_some())
            .finish_non_exhaustive()
    }
}

/// Rollback on this instance: stop the new behaviour, start the old one again.
pub(crate) fn undo(inst: &mut Instance, mut candidate: Candidate) {
    let _ = candidate.behaviour.stop();
    super::swap::restart_old(inst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_coordinator_dropped_before_deciding_means_rollback() {
        let (tx, rx) = oneshot::channel::<Decision>();
        drop(tx);
        let p = Progress::default();
        assert_eq!(await_decision(rx, &p).await, Decision::Rollback);
        assert_eq!(p.decide(Decision::Commit), Decision::Rollback, "recorded");
    }

    #[tokio::test]
    async fn a_coordinator_dropped_after_deciding_means_its_decision() {
        let (tx, rx) = oneshot::channel::<Decision>();
        let p = Progress::default();
        p.decide(Decision::Commit);
        drop(tx);
        assert_eq!(await_decision(rx, &p).await, Decision::Commit);
    }

    #[tokio::test]
    async fn a_voted_instance_waits_for_a_late_decision() {
        let (tx, rx) = oneshot::channel();
        let waiter = tokio::spawn(async move { await_decision(rx, &Progress::default()).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "it decided alone");
        tx.send(Decision::Commit).unwrap();
        assert_eq!(waiter.await.unwrap(), Decision::Commit);
    }

    #[test]
    fn a_lone_instance_and_its_coordinator_take_one_decision() {
        let p = Progress::default();
        assert_eq!(solo_decision(&p), Decision::Commit);
        assert_eq!(p.decide(Decision::Rollback), Decision::Commit);
        let p = Progress::default();
        assert_eq!(p.decide(Decision::Rollback), Decision::Rollback);
        assert_eq!(solo_decision(&p), Decision::Rollback);
    }
}
