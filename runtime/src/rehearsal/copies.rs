//! Rehearsing a set of actors at once: each takes a snapshot between two of
//! its messages (a `Rehearse` delivery through its mailbox, its only pause)
//! and serves on; off the actors, the new library migrates and verifies a
//! copy of each snapshot ([`super::copy`]), a bounded number at a time. Used
//! by dry runs and by the vote of a keyed module's live actors
//! (docs/semantics.md "Keyed actors").

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::copy::{self, CopyResult};
use super::instance::{RehearseRequest, Taken};
use crate::config::Limits;
use crate::directory::{Route, Snapshot};
use crate::loader::Library;
use crate::module_actor::ModuleMsg;
use crate::reload::{Phase, PhaseFailure, SwapMode};

/// Blocking workers migrating and verifying copies at once: enough to keep
/// both cores busy, few enough that the actors keep theirs.
const COPIES_AT_ONCE: usize = 3;

/// What to rehearse: the library, its config and how the state is handed
/// over.
pub(crate) struct Rehearse {
    pub module: Arc<str>,
    pub target: Arc<Library>,
    pub config: Arc<Vec<u8>>,
    pub mode: SwapMode,
    pub limits: Limits,
}

/// One actor's rehearsal.
#[derive(Debug)]
pub(crate) struct Copied {
    /// The actor's instance index.
    pub index: u32,
    /// How long its snapshot took (its pause).
    pub snapshot: Duration,
    /// The size of its serving state, when the snapshot was taken.
    pub before: u64,
    /// What its copy did; `failure` is also set when no copy was made
    /// (no snapshot).
    pub copy: CopyResult,
}

impl Copied {
    fn failed(index: u32, snapshot: Duration, failure: PhaseFailure) -> Self {
        Copied {
            index,
            snapshot,
            before: 0,
            copy: CopyResult {
                failure: Some(failure),
                ..CopyResult::default()
            },
        }
    }
}

/// Every actor asked for its snapshot, in the routes' order.
pub(crate) struct Asked(Vec<(u32, oneshot::Receiver<Taken>)>);

/// Rehearses `what` on every route, in the routes' order. Every actor is
/// asked for its snapshot at once; each snapshot must arrive within
/// `limits.prepare_timeout`.
pub(crate) async fn rehearse_routes(routes: &[Route], what: &Rehearse) -> Vec<Copied> {
    copy_snapshots(ask_snapshots(routes, what.mode), what).await
}

/// Delivers `Rehearse` to every route now: whatever is sent to an actor
/// after this is handled after its snapshot.
pub(crate) fn ask_snapshots(routes: &[Route], mode: SwapMode) -> Asked {
    Asked(
        routes
            .iter()
            .map(|route| {
                let (reply, taken) = oneshot::channel();
                let req = RehearseRequest { mode, reply };
                // A failed send drops `reply`: reported as a closed instance.
                let _ = route.actor.send_message(ModuleMsg::Rehearse(Box::new(req)));
                (route.shared.index, taken)
            })
            .collect(),
    )
}

/// Collects the snapshots [`ask_snapshots`] asked for (each within
/// `limits.prepare_timeout` from now) and has [`COPIES_AT_ONCE`] blocking
/// workers migrate and verify a copy of each as it arrives; the copies are
/// done within `limits.prepare_timeout + limits.verify_timeout` after the
/// last snapshot (past it, a copy fails in the phase it is in). The workers
/// take the copies one after the other without going back to the async
/// runtime, so a busy runtime does not slow them down.
pub(crate) async fn copy_snapshots(asked: Asked, what: &Rehearse) -> Vec<Copied> {
    let Asked(asked) = asked;
    let deadline = tokio::time::Instant::now() + what.limits.prepare_timeout;
    let jobs = spawn_workers(what);
    let mut copying = Vec::with_capacity(asked.len());
    for (index, taken) in asked {
        let taken = match tokio::time::timeout_at(deadline, taken).await {
            Ok(Ok(taken)) => taken,
            Ok(Err(_)) => {
                copying.push(Err(Copied::failed(
                    index,
                    Duration::ZERO,
                    PhaseFailure::new(Phase::Drain, "the instance stopped before its snapshot"),
                )));
                continue;
            }
            Err(_) => {
                copying.push(Err(Copied::failed(
                    index,
                    Duration::ZERO,
                    PhaseFailure::new(
                        Phase::Drain,
                        format!(
                            "the instance did not reach the snapshot within limits.prepare_timeout ({:?}): the messages ahead of it took longer",
                            what.limits.prepare_timeout
                        ),
                    ),
                )));
                continue;
            }
        };
        // Only a reset takes no state, and a rehearsal never resets.
        let state = taken.state.and_then(|s| {
            s.ok_or_else(|| PhaseFailure::new(Phase::Snapshot, "no state was taken"))
        });
        let state = match state {
            Ok(state) => state,
            Err(failure) => {
                copying.push(Err(Copied::failed(index, taken.took, failure)));
                continue;
            }
        };
        let before = state.bytes.len() as u64;
        let (done, result) = oneshot::channel();
        let phase = Arc::new(Mutex::new(Phase::Migrate));
        // A send fails only when every worker is gone: `result` then reports it.
        let _ = jobs.send(Job {
            index,
            state,
            phase: phase.clone(),
            done,
        });
        copying.push(Ok((index, taken.took, before, phase, result)));
    }
    drop(jobs);
    // Every actor serves on from here: what it handles next is after its
    // snapshot and does not show in the rehearsal.
    tracing::info!(target: "molt::rehearsal", module = &*what.module, library = %what.target.path.display(), "rehearsal: {} snapshot(s) taken, the instances serve on; migrating copies in {}", copying.len(), what.target.describe());
    let bound = what.limits.prepare_timeout + what.limits.verify_timeout;
    let copies_deadline = tokio::time::Instant::now() + bound;
    let mut out = Vec::with_capacity(copying.len());
    for c in copying {
        out.push(match c {
            Err(failed) => failed,
            Ok((index, snapshot, before, phase, result)) => {
                let copy = match tokio::time::timeout_at(copies_deadline, result).await {
                    Ok(Ok(copy)) => copy,
                    Ok(Err(_)) => CopyResult {
                        failure: Some(PhaseFailure::new(
                            copy::current(&phase),
                            "the rehearsal's worker failed",
                        )),
                        ..CopyResult::default()
                    },
                    Err(_) => {
                        let p = copy::current(&phase);
                        CopyResult {
                            failure: Some(PhaseFailure::new(
                                p,
                                format!(
                                    "{p} did not finish within {bound:?} (limits.prepare_timeout + limits.verify_timeout)"
                                ),
                            )),
                            ..CopyResult::default()
                        }
                    }
                };
                Copied {
                    index,
                    snapshot,
                    before,
                    copy,
                }
            }
        });
    }
    out
}

/// One copy for a worker.
struct Job {
    index: u32,
    state: Snapshot,
    phase: Arc<Mutex<Phase>>,
    done: oneshot::Sender<CopyResult>,
}

/// Starts the workers; they end when the returned sender is dropped and
/// the jobs sent are done. A copy that hangs holds its worker (and its
/// thread) until it returns; the others go on.
fn spawn_workers(what: &Rehearse) -> std::sync::mpsc::Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..COPIES_AT_ONCE {
        let (rx, module, target, config) = (
            rx.clone(),
            what.module.clone(),
            what.target.clone(),
            what.config.clone(),
        );
        let round_trip = what.limits.verify_round_trip;
        tokio::task::spawn_blocking(move || loop {
            let next = match rx.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            let Ok(job) = next else {
                return;
            };
            let result = copy::run(
                &module, job.index, &target, &job.state, &config, round_trip, &job.phase,
            );
            let _ = job.done.send(result);
        });
    }
    tx
}
