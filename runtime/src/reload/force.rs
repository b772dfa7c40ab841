//! Forced reload (docs/semantics.md "Rollback and forced reloads", OTP's brutal
//! purge done carefully): when the old code cannot hand over its state, the new
//! code starts from the instance's newest checkpoint.
//!
//! - The old `snapshot` fails: the instance migrates its newest checkpoint
//!   instead ([`from_checkpoint`], inside the instance's swap); an old `stop`
//!   that fails is logged and the swap goes on.
//! - The instance does not prepare within `prepare_timeout` while in old
//!   code (a handler ahead of `Swap`, the old `snapshot` or `stop`): the
//!   coordinator starts a new actor (new code, newest checkpoint) for it
//!   ([`replace_hung`]). It joins the two-phase decision as prepared: on
//!   commit it takes the instance's routing slot, the old actor is told to
//!   stop (it is not waited for) and the messages it had not handled (its
//!   mailbox depth, the one it hangs in included) are counted and reported;
//!   on rollback the new actor stops and the old one stays as it is.
//!
//! Every restore is reported ([`Restore`]): the reload report, the history
//! entry and a `module.restarted` event per instance say it was forced and
//! how old the restored state was.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorCell};
use tokio::sync::oneshot;
use tokio::time::{timeout, timeout_at, Instant};

use super::drain::Pending;
use super::{Decision, InstanceReport, Phase, PhaseFailure, Progress};
use crate::config::Limits;
use crate::directory::{Directory, InstanceShared, ModuleSlot, Route, Snapshot};
use crate::events::EventBus;
use crate::loader::Library;
use crate::module_actor::{Instance, InstanceArgs, ModuleActor, StartFrom};
use crate::restart::RestartSink;

/// One instance a forced reload started from its newest checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct Restore {
    pub index: u32,
    /// `"checkpoint"` or `"start"`.
    pub restored: &'static str,
    pub state_age: Duration,
    /// Why the old code could not hand over its state.
    pub reason: String,
    /// Messages the replaced actor had not handled (0 when the instance
    /// itself restored its checkpoint).
    pub stuck_messages: u64,
}

/// The restores of one forced reload.
#[derive(Debug, Default)]
pub(crate) struct ForceLog(Mutex<Vec<Restore>>);

impl ForceLog {
    pub(crate) fn push(&self, r: Restore) {
        if let Ok(mut v) = self.0.lock() {
            v.push(r);
        }
    }

    pub(crate) fn take(&self) -> Vec<Restore> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// What a forced reload needs to start a new actor for a hung instance
/// (filled by the supervisor, which owns the instances).
pub(crate) struct Respawn {
    /// The supervisor: new actors are linked to it.
    pub supervisor: ActorCell,
    pub slot: Arc<ModuleSlot>,
    /// The node's name (the node part of the instances' addresses).
    pub node: Arc<str>,
    pub module: Arc<str>,
    pub bus: EventBus,
    pub directory: Directory,
    pub limits: Limits,
    pub on_restart: RestartSink,
}

/// Inside the instance's swap: the old `snapshot` failed (`failure`), so
/// the state handed to the new code is the newest checkpoint. `None` when
/// there is none.
pub(crate) fn from_checkpoint(
    inst: &Instance,
    failure: &PhaseFailure,
) -> Option<(Snapshot, Restore)> {
    let cp = inst.shared.checkpoint()?;
    let restore = Restore {
        index: inst.index(),
        restored: cp.source(),
        state_age: cp.at.elapsed(),
        reason: format!("the old code's snapshot failed: {}", failure.error),
        stuck_messages: 0,
    };
    tracing::warn!(
        target: "molt::reload",
        module = &*inst.module,
        instance = inst.index(),
        restored = restore.restored,
        state_age_ms = restore.state_age.as_millis() as u64,
        "forced reload: {}; starting the new code from the newest checkpoint",
        restore.reason
    );
    Some((cp.snapshot, restore))
}

/// Whether an instance that did not prepare in time is stuck in old code:
/// still handling the messages ahead of `Swap`, or in the old `snapshot` or
/// `stop` (the swap phase also covers the new `start`: a replacement that
/// hangs there fails its own bounded start).
fn stuck_in_old_code(progress: &Progress) -> bool {
    matches!(
        progress.current(),
        None | Some(Phase::Drain) | Some(Phase::Snapshot) | Some(Phase::Swap)
    )
}

/// Waits for every instance to prepare within `prepare_timeout`; one stuck
/// in old code past it is replaced by a new actor (new code, its newest
/// checkpoint) that joins the decision as prepared. Returns the pending
/// swaps for [`super::commit::coordinate`], every `prepared` already
/// answered.
pub(crate) async fn replace_hung(
    pending: Vec<Pending>,
    routes: &[Route],
    respawn: &Respawn,
    target: &Arc<Library>,
    config: &Arc<Vec<u8>>,
    log: &Arc<ForceLog>,
) -> Vec<Pending> {
    let started = Instant::now();
    let deadline = started + respawn.limits.prepare_timeout;
    let mut out = Vec::with_capacity(pending.len());
    for mut p in pending {
        let got = timeout_at(deadline, &mut p.prepared).await;
        let (tx, rx) = oneshot::channel();
        p.prepared = rx;
        match got {
            Ok(Ok(result)) => {
                let _ = tx.send(result);
                out.push(p);
            }
            // Not running: `coordinate` reports it.
            Ok(Err(_closed)) => out.push(p),
            Err(_) => {
                let phase = p.progress.current().unwrap_or(Phase::Drain);
                let limit = respawn.limits.prepare_timeout;
                let Some(old) = routes.iter().find(|r| r.shared.index == p.index) else {
                    out.push(p);
                    continue;
                };
                if !stuck_in_old_code(&p.progress) {
                    let _ = tx.send(Err(PhaseFailure::new(
                        phase,
                        format!(
                            "instance {} did not prepare within {limit:?}: still in {phase} (the new code; a forced reload only replaces old code)",
                            p.index
                        ),
                    )));
                    out.push(p);
                    continue;
                }
                let reason = format!(
                    "instance {} was stuck in the old code ({phase}) for {limit:?}",
                    p.index
                );
                match spawn_replacement(respawn, old, target, config).await {
                    Ok((route, restored, state_age)) => {
                        tracing::warn!(target: "molt::reload", module = &*respawn.module, instance = p.index, restored, state_age_ms = state_age.as_millis() as u64, "forced reload: {reason}; a new actor runs the new code from the newest checkpoint");
                        // The old actor never runs the swap now.
                        p.progress.abandon();
                        let restore = Restore {
                            index: p.index,
                            restored,
                            state_age,
                            reason,
                            stuck_messages: 0,
                        };
                        out.push(replaced(
                            p.index,
                            old.clone(),
                            route,
                            restore,
                            respawn.slot.clone(),
                            log.clone(),
                            started,
                        ));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(PhaseFailure::new(
                            phase,
                            format!("{reason}, and its replacement did not start: {e}"),
                        )));
                        out.push(p);
                    }
                }
            }
        }
    }
    out
}

/// Starts a new actor (the target library, the old instance's newest
/// checkpoint) for the instance of `old`, bounded by `prepare_timeout`.
async fn spawn_replacement(
    respawn: &Respawn,
    old: &Route,
    target: &Arc<Library>,
    config: &Arc<Vec<u8>>,
) -> Result<(Route, &'static str, Duration), String> {
    let cp = old
        .shared
        .checkpoint()
        .ok_or_else(|| "the instance has no checkpoint".to_string())?;
    let (restored, state_age) = (cp.source(), cp.at.elapsed());
    // Its counters go on; the mailbox is new (empty).
    let shared = InstanceShared::new(old.shared.index);
    let handled = old.shared.handled.load(Ordering::Relaxed);
    shared.handled.store(handled, Ordering::Relaxed);
    shared.enqueued.store(handled, Ordering::Relaxed);
    let copy = |from: &std::sync::atomic::AtomicU64, to: &std::sync::atomic::AtomicU64| {
        to.store(from.load(Ordering::Relaxed), Ordering::Relaxed)
    };
    copy(&old.shared.failed, &shared.failed);
    copy(&old.shared.checkpoint_failures, &shared.checkpoint_failures);
    shared.figures.copy_from(&old.shared.figures);
    shared.restarts.store(
        old.shared.restarts.load(Ordering::Relaxed) + 1,
        Ordering::Relaxed,
    );
    let args = InstanceArgs {
        key: None,
        node: respawn.node.clone(),
        module: respawn.module.clone(),
        lib: target.clone(),
        config: config.clone(),
        start: StartFrom::Checkpoint(cp),
        shared: shared.clone(),
        limits: respawn.limits.clone(),
        bus: respawn.bus.clone(),
        directory: respawn.directory.clone(),
        on_restart: respawn.on_restart.clone(),
        keyed_figures: None,
    };
    let spawn = Actor::spawn_linked(None, ModuleActor, args, respawn.supervisor.clone());
    match timeout(respawn.limits.prepare_timeout, spawn).await {
        Ok(Ok((actor, _join))) => Ok((Route { actor, shared }, restored, state_age)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "its start did not return within {:?}",
            respawn.limits.prepare_timeout
        )),
    }
}

/// The replaced instance as the coordinator sees it: prepared; on commit
/// the new actor takes its routing slot and the old one is told to stop.
fn replaced(
    index: u32,
    old: Route,
    new: Route,
    mut restore: Restore,
    slot: Arc<ModuleSlot>,
    log: Arc<ForceLog>,
    since: Instant,
) -> Pending {
    let (prepared_tx, prepared) = oneshot::channel();
    let _ = prepared_tx.send(Ok(()));
    let (decision_tx, decision_rx) = oneshot::channel::<Decision>();
    let (done_tx, done) = oneshot::channel();
    let progress = Arc::new(Progress::default());
    let cell = progress.clone();
    tokio::spawn(async move {
        // As any voted instance (docs/semantics.md "Two-phase decision"): the
        // decision the coordinator recorded, also if its task died before
        // sending it.
        let decision = super::commit::await_decision(decision_rx, &cell).await;
        let committed = decision == Decision::Commit;
        if committed {
            if slot.replace(index, new.clone()).is_err() {
                // The module is being removed or the node stops.
                new.actor.stop(None);
            }
            // Not handled by any code: the one it hangs in and those
            // queued behind it (stop goes before them).
            restore.stuck_messages = old.shared.mailbox_depth();
            old.actor
                .stop(Some("replaced by a forced reload".to_string()));
            tracing::warn!(target: "molt::reload", module = &*slot.name, instance = index, stuck_messages = restore.stuck_messages, "forced reload: the hung actor was replaced; {} message(s) it had not handled are dropped", restore.stuck_messages);
            log.push(restore);
        } else {
            new.actor
                .stop(Some("the forced reload rolled back".to_string()));
        }
        let _ = done_tx.send(InstanceReport {
            index,
            committed,
            pause: since.elapsed(),
            replaced: None,
            phases: None,
        });
    });
    Pending {
        index,
        prepared,
        decision: Some(decision_tx),
        done,
        progress,
    }
}
