//! Rehearsing a set of actors at once: each takes a snapshot between two of
//! its messages (a `Rehearse` delivery through its mailbox, its only pause)
//! and serves on; off the actors, the new library migrates and verifies a
//! copy of each snapshot ([`super::copy`]), a bounded number at a time. Used
//! by dry runs and by the vote of a keyed module's live actors
//! (docs/semantics.md "Keyed actors").

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};

use super::copy::{self, CopyResult};
use super::instance::{RehearseRequest, Taken};
use crate::config::Limits;
use crate::directory::Route;
use crate::loader::Library;
use crate::module_actor::ModuleMsg;
use crate::reload::{Phase, PhaseFailure, SwapMode};

/// Copies migrated and verified at once (each on a blocking thread): enough
/// to keep both cores busy, few enough that the actors keep theirs.
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
/// `limits.prepare_timeout` from now) and migrates and verifies a copy of
/// each, [`COPIES_AT_ONCE`] at a time.
pub(crate) async fn copy_snapshots(asked: Asked, what: &Rehearse) -> Vec<Copied> {
    let Asked(asked) = asked;
    let deadline = tokio::time::Instant::now() + what.limits.prepare_timeout;
    let mut states = Vec::with_capacity(asked.len());
    for (index, taken) in asked {
        let taken = match tokio::time::timeout_at(deadline, taken).await {
            Ok(Ok(taken)) => taken,
            Ok(Err(_)) => {
                states.push(Err(Copied::failed(
                    index,
                    Duration::ZERO,
                    PhaseFailure::new(Phase::Drain, "the instance stopped before its snapshot"),
                )));
                continue;
            }
            Err(_) => {
                states.push(Err(Copied::failed(
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
        states.push(match state {
            Ok(state) => Ok((index, taken.took, state)),
            Err(failure) => Err(Copied::failed(index, taken.took, failure)),
        });
    }
    // Every actor serves on from here: what it handles next is after its
    // snapshot and does not show in the rehearsal.
    tracing::info!(target: "molt::rehearsal", module = &*what.module, library = %what.target.path.display(), "rehearsal: {} snapshot(s) taken, the instances serve on; migrating copies in {}", states.len(), what.target.describe());
    let permits = Arc::new(Semaphore::new(COPIES_AT_ONCE));
    let running: Vec<_> = states
        .into_iter()
        .map(|state| {
            let (index, took, state) = state?;
            let before = state.bytes.len() as u64;
            let (module, target, config, limits, permits) = (
                what.module.clone(),
                what.target.clone(),
                what.config.clone(),
                what.limits.clone(),
                permits.clone(),
            );
            let task = tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                copy::rehearse(module, index, target, state, config, &limits).await
            });
            Ok((index, took, before, task))
        })
        .collect();
    let mut out = Vec::with_capacity(running.len());
    for r in running {
        out.push(match r {
            Err(failed) => failed,
            Ok((index, snapshot, before, task)) => {
                let started = Instant::now();
                let copy = task.await.unwrap_or_else(|e| CopyResult {
                    failure: Some(PhaseFailure::new(
                        Phase::Migrate,
                        format!("the rehearsal task failed: {e}"),
                    )),
                    migrate: started.elapsed(),
                    ..CopyResult::default()
                });
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
