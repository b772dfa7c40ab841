//! The reload protocol (`docs/semantics.md`, "Reload phases"), one file per
//! phase group:
//!
//! | # | phase | where | file |
//! |---|---|---|---|
//! | 1 | prepare | coordinator, blocking pool | `prepare` |
//! | 2 | drain | coordinator → each instance's mailbox | `drain` |
//! | 3 | snapshot | instance | `snapshot` |
//! | 4 | migrate | instance | `migrate` |
//! | 5 | swap | instance | `swap` |
//! | 6 | verify | instance | `verify` |
//! | 7 | commit / rollback | coordinator + instances (two-phase) | `commit` |
//! | 8 | replay | instance (ractor hands over the queued messages) | `replay` |
//!
//! The coordinator (`run_guarded`) runs as a task of its own, so the
//! supervisor keeps answering while a module reloads and different modules
//! reload at once.

pub(crate) mod commit;
pub(crate) mod drain;
pub(crate) mod force;
pub(crate) mod migrate;
pub(crate) mod phase_log;
pub(crate) mod prepare;
pub(crate) mod replay;
pub(crate) mod snapshot;
pub(crate) mod swap;
pub(crate) mod switch_over;
pub(crate) mod verify;
pub(crate) mod voters;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::Instrument;

use crate::config::Limits;
use crate::directory::{Route, Snapshot};
use crate::error::Error;
use crate::events::Event;
use crate::loader::{Library, Loader};
use crate::module_actor::Instance;

pub use crate::phase::Phase;

#[doc(hidden)]
pub use commit::hooks as test_hooks;

/// A phase that failed on one instance (or in the coordinator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PhaseFailure {
    pub phase: Phase,
    pub error: String,
    /// The module's error kind, when the module reported the failure.
    pub kind: Option<molt_abi::ErrorKind>,
}

impl PhaseFailure {
    pub(crate) fn new(phase: Phase, error: impl Into<String>) -> Self {
        PhaseFailure {
            phase,
            error: error.into(),
            kind: None,
        }
    }

    pub(crate) fn module(phase: Phase, what: &str, e: molt_abi::ffi::ModError) -> Self {
        PhaseFailure {
            phase,
            error: format!("{what}: {} ({})", e.message, e.kind.as_str()),
            kind: Some(e.kind),
        }
    }
}

/// How the new behaviour gets its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SwapMode {
    /// `old.snapshot()` at the old library's state version.
    Upgrade,
    /// `old.downgrade(to)`: an explicit rollback to an older state version.
    Downgrade { to: u32 },
    /// No state is carried over: `new = init(config)`.
    Reset,
}

impl SwapMode {
    /// The mode a swap from state version `from_state` to `target` runs
    /// with: a library that writes an older state version than the serving
    /// one cannot read the serving state, so an upgrade becomes a downgrade
    /// by the serving code (docs/semantics.md "Rollback and forced
    /// reloads"), and "reload the old file" goes back.
    pub(crate) fn toward(self, from_state: u32, target: &Library) -> SwapMode {
        match self {
            SwapMode::Upgrade if target.state_version < from_state => SwapMode::Downgrade {
                to: target.state_version,
            },
            mode => mode,
        }
    }
}

/// The coordinator's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Commit,
    Rollback,
}

/// One instance's swap as the coordinator sees it: the phase the instance is
/// in, so a timeout names where it was stuck (still handling the messages
/// ahead of `Swap`: drain; or inside a phase whose module entry point has
/// not returned); and whether the coordinator has rolled back already.
///
/// Once it has, the swap is abandoned (docs/semantics.md "Two-phase decision"):
/// the instance runs no more module code for it than the entry point it is in,
/// undoes what it did and resumes serving. A `Swap` it reaches only after that
/// (a drain timeout) is skipped. Without this, a late swap would still stop the
/// old code and run the new library's `migrate`, `start` and `verify` for a
/// reload already reported as rolled back.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    phase: Mutex<Option<Phase>>,
    abandoned: AtomicBool,
    /// The decision about this instance's swap, taken once (docs/semantics.md
    /// "Two-phase decision"): by the coordinator, or, for a module's only
    /// instance, by whichever of the instance (prepared: commit) and the
    /// coordinator (prepare timed out: rollback) comes first.
    decided: Mutex<Option<Decision>>,
}

impl Progress {
    /// The instance enters `phase`.
    pub(crate) fn enter(&self, phase: Phase) {
        if let Ok(mut p) = self.phase.lock() {
            *p = Some(phase);
        }
    }

    /// The phase the instance is in; `None` until it takes `Swap`.
    pub(crate) fn current(&self) -> Option<Phase> {
        self.phase.lock().ok().and_then(|p| *p)
    }

    /// The coordinator rolls back.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }

    /// Whether the coordinator has rolled back.
    pub(crate) fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Takes `decision` unless one was taken already; returns the decision
    /// that stands. Both sides of a lone instance's swap call it, so they
    /// can never end in different outcomes.
    pub(crate) fn decide(&self, decision: Decision) -> Decision {
        let mut d = self.decided.lock().unwrap_or_else(|p| p.into_inner());
        *d.get_or_insert(decision)
    }

    /// Before the instance runs more module code for the swap (`next`):
    /// fails when the swap is abandoned.
    pub(crate) fn go_on(&self, next: &str) -> Result<(), PhaseFailure> {
        if !self.abandoned() {
            return Ok(());
        }
        let phase = self.current().unwrap_or(Phase::Drain);
        Err(PhaseFailure::new(
            phase,
            format!("abandoned in {phase}: the reload was rolled back before {next}"),
        ))
    }
}

/// What an instance reports when it leaves `Swap`.
#[derive(Debug)]
pub(crate) struct InstanceReport {
    pub index: u32,
    pub committed: bool,
    pub pause: Duration,
    /// What a commit replaced, for the coordinator to free off the pause.
    pub replaced: Option<commit::Replaced>,
    /// The instance's phase records and pause, for the coordinator to
    /// publish while the instance serves again (`None`: an instance
    /// replaced by a forced reload, which went through no phase).
    pub phases: Option<phase_log::PhaseLog>,
}

impl InstanceReport {
    /// Sends the report; what it carries is freed here (off the pause)
    /// when the coordinator no longer listens.
    fn send(self, done: oneshot::Sender<InstanceReport>) {
        if let Err(unread) = done.send(self) {
            if let Some(replaced) = unread.replaced {
                replaced.free_off_pause();
            }
        }
    }
}

/// The `Swap` message's payload.
pub(crate) struct SwapRequest {
    pub target: Arc<Library>,
    pub config: Arc<Vec<u8>>,
    pub mode: SwapMode,
    pub limits: Limits,
    pub prepared: oneshot::Sender<Result<(), PhaseFailure>>,
    pub decision: oneshot::Receiver<Decision>,
    pub done: oneshot::Sender<InstanceReport>,
    /// Where this instance is in the swap (read by the coordinator).
    pub progress: Arc<Progress>,
    /// The coordinator's reload span: each instance's span is its child.
    pub span: tracing::Span,
    /// The module's only instance: it commits as soon as it has prepared.
    pub solo: bool,
    /// A forced reload: where the instance reports that it started the new code
    /// from its newest checkpoint (docs/semantics.md "Rollback and forced
    /// reloads").
    pub force: Option<Arc<force::ForceLog>>,
}

/// The instance side of a reload: phases 3 to 8, run inside the actor's
/// `Swap` handler. While it runs, everything else waits in the mailbox.
pub(crate) async fn on_instance(inst: &mut Instance, req: SwapRequest) {
    let paused_at = Instant::now();
    let SwapRequest {
        target,
        config,
        mode,
        limits,
        prepared,
        decision,
        done,
        progress,
        span: reload_span,
        solo,
        force,
    } = req;
    let span = tracing::info_span!(
        parent: &reload_span,
        "instance",
        module = &*inst.module,
        instance = inst.index(),
        from = %inst.lib.code_version,
        to = %target.code_version
    );
    let mut log = phase_log::PhaseLog::new(
        inst.module.clone(),
        inst.bus.clone(),
        molt_abi::index::from_ffi(inst.index()),
    );
    if progress.abandoned() {
        // The coordinator gave up before this instance took `Swap` (the
        // messages ahead of it took too long): nothing of the new code runs.
        tracing::debug!(target: "molt::reload", module = &*inst.module, instance = inst.index(), "skipping a swap rolled back before it began");
        InstanceReport {
            index: inst.index(),
            committed: false,
            pause: paused_at.elapsed(),
            replaced: None,
            phases: Some(log),
        }
        .send(done);
        return;
    }
    let swapping = Swapping {
        target: &target,
        config: &config,
        mode,
        limits: &limits,
        progress: &progress,
        forced: force.is_some(),
    };
    let outcome = prepare_instance(inst, &swapping, &mut log)
        .instrument(span)
        .await;
    // A lone instance's vote, sent once its pause is over: the decision is
    // taken in `progress` already, and waking the coordinator inside the
    // pause would only delay the instance.
    let mut vote_after_pause = None;
    let mut replaced = None;
    let committed = match outcome {
        Err(failure) => {
            let _ = prepared.send(Err(failure));
            false
        }
        Ok((candidate, restore)) => {
            progress.enter(Phase::Commit);
            let t = Instant::now();
            // A module's only instance decides alone: all (one) prepared means
            // commit, without a round trip to the coordinator, unless the
            // coordinator decided first (docs/semantics.md "Two-phase
            // decision").
            let decided = if solo {
                vote_after_pause = Some(prepared);
                commit::solo_decision(&progress)
            } else {
                // Having voted, the instance never decides alone: it waits
                // for the coordinator, however long that takes.
                let _ = prepared.send(Ok(()));
                commit::await_decision(decision, &progress).await
            };
            log.record_commit(t.elapsed());
            match decided {
                Decision::Commit => {
                    replaced = Some(commit::swap_in(
                        inst,
                        candidate,
                        target.clone(),
                        config.clone(),
                    ));
                    if let (Some(log), Some(restore)) = (&force, restore) {
                        log.push(restore);
                    }
                    true
                }
                Decision::Rollback => {
                    commit::undo(inst, candidate);
                    false
                }
            }
        }
    };
    let pause = replay::resume(inst, paused_at);
    if let Some(prepared) = vote_after_pause {
        let _ = prepared.send(Ok(()));
    }
    log.record_pause(pause);
    InstanceReport {
        index: inst.index(),
        committed,
        pause,
        replaced,
        phases: Some(log),
    }
    .send(done);
}

/// A new behaviour that passed phases 3–6 and waits for the decision. The old
/// behaviour is stopped but untouched in `inst.behaviour`. `snapshot` is what
/// a restart of the new behaviour would rebuild from (any state version the
/// new library can migrate).
pub(crate) struct Candidate {
    pub behaviour: molt_abi::ffi::BehaviourBox,
    pub snapshot: Option<Snapshot>,
}

/// What one instance's swap runs with (its `SwapRequest`'s inputs).
struct Swapping<'a> {
    target: &'a Arc<Library>,
    config: &'a Arc<Vec<u8>>,
    mode: SwapMode,
    limits: &'a Limits,
    progress: &'a Progress,
    /// A forced reload.
    forced: bool,
}

/// Phases 3 to 6 on one instance. In a forced reload, the state may come
/// from the newest checkpoint instead of the old code: that restore is
/// returned with the candidate (reported only if it commits).
async fn prepare_instance(
    inst: &mut Instance,
    swapping: &Swapping<'_>,
    log: &mut phase_log::PhaseLog,
) -> Result<(Candidate, Option<force::Restore>), PhaseFailure> {
    let Swapping {
        target,
        config,
        mode,
        limits,
        progress,
        forced,
    } = *swapping;
    // One child span per phase (the module's logs in it are in its
    // context); the coordinator sees which phase the instance is in. The
    // duration sample and the progress event of each are noted in `log`
    // and published after the pause (`phase_log`).
    let phase = |phase: Phase| {
        progress.enter(phase);
        tracing::info_span!("phase", name = phase.as_str())
    };
    let t = Instant::now();
    let state = phase(Phase::Snapshot).in_scope(|| snapshot::take(inst, mode));
    log.record(Phase::Snapshot, t.elapsed(), state.is_ok());
    let mut restore = None;
    let state = match state {
        // The old code cannot hand over its state: a forced reload starts
        // the new code from the newest checkpoint.
        Err(failure) if forced && mode == SwapMode::Upgrade => {
            match force::from_checkpoint(inst, &failure) {
                Some((snapshot, r)) => {
                    restore = Some(r);
                    Some(snapshot)
                }
                None => return Err(failure),
            }
        }
        other => other?,
    };
    progress.go_on("migrate")?;
    let t = Instant::now();
    let new =
        phase(Phase::Migrate).in_scope(|| migrate::restore(inst, target, state.as_ref(), config));
    log.record(Phase::Migrate, t.elapsed(), new.is_ok());
    let new = new?;
    // (An abandoned `new` is dropped unstarted.)
    progress.go_on("the swap")?;
    let t = Instant::now();
    let new = phase(Phase::Swap).in_scope(|| swap::start_new(inst, new, progress, forced));
    log.record(Phase::Swap, t.elapsed(), new.is_ok());
    let mut new = new?;
    if let Err(abandoned) = progress.go_on("verify") {
        let _ = new.stop();
        swap::restart_old(inst);
        return Err(abandoned);
    }
    let t = Instant::now();
    let verified = verify::check(
        inst.ctx.clone(),
        new,
        target,
        state.as_ref(),
        config,
        limits,
        progress,
    )
    .instrument(phase(Phase::Verify))
    .await;
    log.record(Phase::Verify, t.elapsed(), verified.is_ok());
    match verified {
        // Without a round-trip snapshot, the state handed over is the last
        // good one: the new library has just migrated it successfully.
        Ok(candidate) => Ok((
            Candidate {
                snapshot: candidate.snapshot.or(state),
                ..candidate
            },
            restore,
        )),
        Err(failure) => {
            swap::restart_old(inst);
            Err(failure)
        }
    }
}

/// What the coordinator needs to run one reload.
pub(crate) struct Plan {
    pub module: String,
    /// Where phase progress is published.
    pub bus: crate::events::EventBus,
    /// The code version serving now.
    pub from: String,
    /// The library to load, or an already loaded one (a rollback).
    pub source: Source,
    pub config: Arc<Vec<u8>>,
    pub mode: SwapMode,
    /// The state version serving now.
    pub from_state: u32,
    pub routes: Vec<Route>,
    pub limits: Limits,
    pub loader: Loader,
    /// A forced reload (docs/semantics.md "Rollback and forced reloads"): what
    /// it needs to replace an instance hung in old code. `None`: a normal
    /// reload.
    pub force: Option<force::Respawn>,
    /// Voters beside the instances (a keyed module's live actors): their
    /// vote counts in the decision; they take no `Swap`.
    pub voters: Option<Box<dyn voters::Voters>>,
}

/// Where the new code comes from.
pub(crate) enum Source {
    Path(PathBuf),
    Loaded(Arc<Library>),
}

/// The coordinator's result.
pub(crate) struct Outcome {
    /// The library that was (or would have been) swapped in.
    pub target: Option<Arc<Library>>,
    /// The loader's error when prepare failed.
    pub load_error: Option<Error>,
    pub result: Result<Committed, PhaseFailure>,
    /// The instances a forced reload started from their newest checkpoint
    /// (only those that committed).
    pub restored: Vec<force::Restore>,
}

/// A committed reload.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    pub pauses: Vec<Duration>,
}

/// Runs phases 1, 2 and 7 for every instance of a module.
async fn run_recorded(plan: Plan, ledger: Arc<Ledger>) -> Outcome {
    let span = tracing::info_span!(
        "reload",
        module = %plan.module,
        from = %plan.from,
        to = tracing::field::Empty
    );
    run_phases(plan, &ledger).instrument(span).await
}

/// What a coordinator has under way, kept outside its task: the target and
/// each instance's decision cell.
#[derive(Default)]
struct Ledger {
    target: Mutex<Option<Arc<Library>>>,
    instances: Mutex<Vec<Arc<Progress>>>,
}

/// Runs phases 1, 2 and 7 for every instance of a module, in a task of its
/// own. If the coordinator dies (a panic in the host), the outcome recorded
/// is the one its instances apply: the decision it had recorded in their
/// cells, else rollback, taken in those cells now (an instance whose
/// decision sender is dropped reads the same cell).
pub(crate) async fn run_guarded(plan: Plan) -> Outcome {
    let ledger = Arc::new(Ledger::default());
    let err = match tokio::spawn(run_recorded(plan, ledger.clone())).await {
        Ok(outcome) => return outcome,
        Err(e) => e,
    };
    let cells = ledger
        .instances
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    let decisions: Vec<Decision> = cells.iter().map(|p| p.decide(Decision::Rollback)).collect();
    let target = ledger.target.lock().ok().and_then(|t| t.clone());
    match (decisions.first(), target) {
        (Some(Decision::Commit), Some(target))
            if decisions.iter().all(|d| *d == Decision::Commit) =>
        {
            tracing::error!(target: "molt::reload", "the reload coordinator failed ({err}) after deciding commit; the commit stands");
            Outcome {
                target: Some(target),
                load_error: None,
                result: Ok(Committed { pauses: Vec::new() }),
                restored: Vec::new(),
            }
        }
        _ => {
            for p in &cells {
                p.abandon();
            }
            Outcome {
                target: None,
                load_error: None,
                result: Err(PhaseFailure::new(
                    Phase::Commit,
                    format!("the reload coordinator failed ({err}); every instance rolled back"),
                )),
                restored: Vec::new(),
            }
        }
    }
}

async fn run_phases(plan: Plan, ledger: &Ledger) -> Outcome {
    let loaded_before = matches!(plan.source, Source::Loaded(_));
    let target = match plan.source {
        Source::Loaded(lib) => lib,
        Source::Path(path) => match prepare::load(&plan.loader, path, &plan.module).await {
            Ok(lib) => {
                crate::metrics::phase(&plan.module, Phase::Prepare, lib.load_time);
                plan.bus.publish(Event::ReloadPhase {
                    name: plan.module.clone(),
                    phase: Phase::Prepare,
                    instance: None,
                    took_us: lib.load_time.as_micros() as u64,
                    ok: true,
                });
                lib
            }
            Err(e) => {
                return Outcome {
                    target: None,
                    result: Err(PhaseFailure::new(Phase::Prepare, e.to_string())),
                    load_error: Some(e),
                    restored: Vec::new(),
                }
            }
        },
    };
    tracing::Span::current().record("to", target.code_version.as_str());
    prepare::warm(&plan.routes, loaded_before.then_some(&target)).await;
    let mode = plan.mode.toward(plan.from_state, &target);
    let log = plan
        .force
        .as_ref()
        .map(|_| Arc::new(force::ForceLog::default()));
    // The voters' vote starts with the instances' swaps: it runs while they
    // prepare.
    let solo = plan.routes.len() == 1 && plan.voters.is_none();
    let voted = plan.voters.map(|v| {
        v.vote(voters::Ballot {
            target: target.clone(),
            config: plan.config.clone(),
            mode,
            limits: plan.limits.clone(),
        })
    });
    let pending = drain::send_swaps(
        &plan.routes,
        &target,
        &plan.config,
        mode,
        &plan.limits,
        log.as_ref(),
        solo,
    );
    let pending = match (&plan.force, &log) {
        (Some(respawn), Some(log)) => {
            force::replace_hung(pending, &plan.routes, respawn, &target, &plan.config, log).await
        }
        _ => pending,
    };
    if let Ok(mut t) = ledger.target.lock() {
        *t = Some(target.clone());
    }
    if let Ok(mut cells) = ledger.instances.lock() {
        *cells = pending.iter().map(|p| p.progress.clone()).collect();
    }
    let result = commit::coordinate(pending, &plan.limits, voted).await;
    Outcome {
        target: Some(target),
        result,
        load_error: None,
        restored: log.map(|l| l.take()).unwrap_or_default(),
    }
}
