//! The rollout coordinator (docs/semantics.md "Rollouts"): runs on the node
//! that gets the request, in a task of that node's rollout agent. It makes
//! the plan ([`super::plan`]), then goes forward step by step
//! ([`super::waves`]: canary, gate, waves) and either commits everywhere
//! or halts and rolls back every node that took the new version. Each step
//! is published on every member's bus and kept on the [`Board`]
//! (`molt rollout --status`); the end is recorded in every member's
//! history.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::plan::{self, Plan};
use super::wire::{self, Answer, Request};
use super::{RolloutOutcome, RolloutReport, RolloutRequest, RolloutStep};
use crate::cluster::membership::ClusterView;
use crate::config::RolloutSpec;
use crate::error::Error;
use crate::events::Event;

/// What a coordinator works with.
pub(crate) struct Ctx {
    /// This node.
    pub me: String,
    pub view: ClusterView,
    pub board: Board,
    /// `[rollout]`.
    pub spec: RolloutSpec,
}

/// The rollout coordinated on this node, current or last, as its report.
#[derive(Debug, Clone, Default)]
pub(crate) struct Board(Arc<Mutex<Option<RolloutReport>>>);

impl Board {
    /// The report now.
    pub(crate) fn report(&self) -> Option<RolloutReport> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, report: &RolloutReport) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.clone());
    }
}

/// Why a rollout halts.
#[derive(Debug)]
pub(super) enum Halt {
    /// The canary failed its gate.
    Gate(String),
    /// Anything else: a failed reload, a lost member.
    Other(String),
}

/// A rollout under way.
pub(super) struct Run {
    pub me: String,
    pub view: ClusterView,
    pub board: Board,
    pub spec: RolloutSpec,
    pub plan: Plan,
    pub report: RolloutReport,
    /// The nodes asked to take the new version, in order.
    pub upgraded: Vec<String>,
    pub started: Instant,
}

/// Coordinates `request` from this node to its end.
///
/// # Errors
/// [`Error::NotInCluster`], or [`Error::RolloutRefused`] when the plan's
/// checks refuse it (nothing changed anywhere). A rollout that started
/// returns its report, committed or halted.
pub(crate) async fn run(ctx: &Ctx, request: RolloutRequest) -> Result<RolloutReport, Error> {
    let mut spec = ctx.spec.clone();
    if let Some(n) = request.wave_size {
        spec.wave_size = n;
    }
    if let Some(ms) = request.gate_window_ms {
        spec.gate_window = Duration::from_millis(ms);
    }
    if let Some(ms) = request.wave_watch_ms {
        spec.wave_watch = Duration::from_millis(ms);
    }
    if let Some(n) = request.min_handled {
        spec.min_handled = n;
    }
    if let Err((key, why)) = spec.check() {
        return Err(Error::RolloutRefused(format!("{key}: {why}")));
    }
    let started = Instant::now();
    let plan = plan::make(ctx, &request, spec.wave_size).await?;
    let report = RolloutReport {
        id: plan.id.clone(),
        module: plan.module.clone(),
        library: plan.library.clone(),
        from: plan.from.clone(),
        to: String::new(),
        coordinator: ctx.me.clone(),
        canary: plan.canary.clone(),
        waves: plan.waves.clone(),
        outcome: RolloutOutcome::Running,
        steps: Vec::new(),
        halted: None,
        rolled_back: Vec::new(),
        rollback_failed: Vec::new(),
        unreached: Vec::new(),
        took_ms: 0,
    };
    let mut run = Run {
        me: ctx.me.clone(),
        view: ctx.view.clone(),
        board: ctx.board.clone(),
        spec,
        plan,
        report,
        upgraded: Vec::new(),
        started,
    };
    tracing::info!(target: "molt::rollout", rollout = %run.plan.id, module = %run.plan.module, canary = %run.plan.canary, waves = ?run.plan.waves, "rollout started");
    run.announce(Event::RolloutStarted {
        rollout: run.plan.id.clone(),
        module: run.plan.module.clone(),
        from: run.plan.from.clone(),
        library: run.plan.library.display().to_string(),
        coordinator: run.me.clone(),
        canary: run.plan.canary.clone(),
        waves: run.plan.waves.clone(),
    });
    let members: Vec<String> = run.plan.members.keys().cloned().collect();
    let detail = format!(
        "the same library (sha256) on {} member(s), each running {}",
        members.len(),
        run.plan.module
    );
    // The check began with the rollout; it ends here, after announcing the
    // plan it made (a log line and a message to each agent).
    run.step("check", members, Duration::ZERO, true, detail);
    match run.forward().await {
        Ok(()) => run.commit().await,
        Err(Halt::Gate(why) | Halt::Other(why)) => run.halt(why).await,
    }
    Ok(run.report)
}

impl Run {
    /// Records a step that began at `began` (since the rollout's start)
    /// and ends now (and shows it on the board).
    pub(super) fn step(
        &mut self,
        step: &str,
        nodes: Vec<String>,
        began: Duration,
        ok: bool,
        detail: String,
    ) {
        let now = self.started.elapsed();
        self.report.steps.push(RolloutStep {
            step: step.to_string(),
            nodes,
            started_ms: began.as_millis() as u64,
            took_ms: now.saturating_sub(began).as_millis() as u64,
            ok,
            detail,
        });
        self.report.took_ms = now.as_millis() as u64;
        self.board.set(&self.report);
    }

    /// Publishes `event` on every member's bus (through its agent; a member
    /// that cannot be reached misses it).
    pub(super) fn announce(&self, event: Event) {
        tracing::info!(target: "molt::rollout", kind = event.kind(), "{}", event.to_json());
        for node in self.plan.members.keys() {
            if let Some(agent) = wire::agent_of(node) {
                wire::tell(&agent, Request::Announce(event.clone()));
            }
        }
    }

    /// Whether `node` is a reachable member with a rollout agent.
    fn reachable(&self, node: &str) -> bool {
        self.view.with(|v| v.reachable(node)).flatten() == Some(true)
            && (node == self.me || wire::agent_of(node).is_some())
    }

    /// A member lost since the plan was made: unreachable in the view,
    /// restarted (a new incarnation), or its connection closed.
    pub(super) fn lost(&self) -> Option<String> {
        let Some(status) = self.view.status(Vec::new()) else {
            return Some("this node left the cluster".into());
        };
        for (node, incarnation) in &self.plan.members {
            if *node == self.me {
                continue;
            }
            match status.member(node) {
                None => return Some(format!("node {node} left the cluster view")),
                Some(m) if !m.reachable => {
                    return Some(format!(
                        "node {node} is unreachable (not heard from within cluster.unreachable_after_ms)"
                    ))
                }
                Some(m) if m.incarnation != *incarnation => {
                    return Some(format!(
                        "node {node} restarted (incarnation {} instead of {incarnation})",
                        m.incarnation
                    ))
                }
                Some(_) => {}
            }
            if wire::agent_of(node).is_none() {
                return Some(format!(
                    "node {node}: its connection closed (its rollout agent is gone)"
                ));
            }
        }
        None
    }

    /// Tells every node that took the new version that the rollout goes on.
    pub(super) fn renew(&self) {
        for node in &self.upgraded {
            if let Some(agent) = wire::agent_of(node) {
                wire::tell(
                    &agent,
                    Request::Renew {
                        rollout: self.plan.id.clone(),
                        lease_ms: self.spec.lease.as_millis() as u64,
                    },
                );
            }
        }
    }

    /// Asks `node`, within `within`.
    pub(super) async fn ask(
        &self,
        node: &str,
        request: Request,
        within: Duration,
    ) -> Result<Answer, String> {
        let agent = wire::agent_of(node)
            .ok_or_else(|| format!("node {node}: not connected (no rollout agent known)"))?;
        wire::ask(&agent, request, within)
            .await
            .map_err(|e| format!("node {node}: {e}"))
    }

    /// Every member runs the new version: tells the upgraded nodes to drop
    /// their leases, publishes `rollout.committed`, records it everywhere.
    async fn commit(&mut self) {
        let began = self.started.elapsed();
        // Outcome first: a node whose lease runs out now asks and hears
        // "committed".
        self.report.outcome = RolloutOutcome::Committed;
        self.board.set(&self.report);
        let within = self.spec.request_timeout;
        let this = &*self;
        let acks = join_all(this.upgraded.iter().map(|node| {
            let request = Request::Commit {
                rollout: this.plan.id.clone(),
            };
            async move { (node.clone(), this.ask(node, request, within).await) }
        }))
        .await;
        for (node, ack) in acks {
            if let Err(e) = ack {
                // Its lease runs out later; it asks and hears "committed".
                tracing::warn!(target: "molt::rollout", %node, "commit not acknowledged: {e}");
            }
        }
        let nodes: Vec<String> = self.plan.members.keys().cloned().collect();
        self.step(
            "commit",
            nodes.clone(),
            began,
            true,
            format!("{} serves {} everywhere", self.plan.module, self.report.to),
        );
        self.announce(Event::RolloutCommitted {
            rollout: self.plan.id.clone(),
            module: self.plan.module.clone(),
            to: self.report.to.clone(),
            nodes,
            took_ms: self.started.elapsed().as_millis() as u64,
        });
        self.record(true, None);
    }

    /// Halts: publishes `rollout.halted`, rolls back every node that took
    /// the new version (in parallel, each within the request bound),
    /// publishes `rollout.rolled_back`, records it everywhere.
    async fn halt(&mut self, why: String) {
        tracing::warn!(target: "molt::rollout", rollout = %self.plan.id, "rollout halted: {why}");
        let began = self.started.elapsed();
        // Outcome first: a node whose lease runs out now asks and hears
        // "halted".
        self.report.outcome = RolloutOutcome::Halted;
        self.report.halted = Some(why.clone());
        self.board.set(&self.report);
        self.announce(Event::RolloutHalted {
            rollout: self.plan.id.clone(),
            module: self.plan.module.clone(),
            reason: why.clone(),
        });
        let within = self.spec.request_timeout;
        let this = &*self;
        let answers = join_all(this.upgraded.iter().map(|node| {
            let request = Request::Rollback {
                module: this.plan.module.clone(),
                rollout: this.plan.id.clone(),
            };
            async move { (node.clone(), this.ask(node, request, within).await) }
        }))
        .await;
        let (mut rolled_back, mut failed, mut unreached, mut notes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (node, answer) in answers {
            match answer {
                Ok(Answer::RolledBack { from, to }) => {
                    notes.push(format!("{node}: {from} -> {to}"));
                    rolled_back.push(node);
                }
                Ok(Answer::NotHeld) => notes.push(format!("{node}: had not taken it")),
                Ok(Answer::RollbackFailed(why)) => {
                    notes.push(format!("{node}: its rollback failed: {why}"));
                    failed.push(format!("{node}: {why}"));
                }
                Ok(other) => {
                    notes.push(format!("{node}: answered {other:?}"));
                    unreached.push(node);
                }
                Err(e) => {
                    // Heard from, yet no answer in time: its rollback comes
                    // after the messages queued before it, and goes on.
                    notes.push(if self.reachable(&node) {
                        format!(
                            "{e} (the node is reachable: its rollback waits behind the messages \
                             queued before it, and lands once they are handled or fails after \
                             limits.prepare_timeout_ms; `molt status --cluster` shows its version)"
                        )
                    } else {
                        e
                    });
                    unreached.push(node);
                }
            }
        }
        self.report.rolled_back = rolled_back.clone();
        self.report.rollback_failed = failed.clone();
        self.report.unreached = unreached.clone();
        let nodes = self.upgraded.clone();
        self.step(
            "rollback",
            nodes,
            began,
            unreached.is_empty() && failed.is_empty(),
            if notes.is_empty() {
                "no node had taken the new version".into()
            } else {
                notes.join("; ")
            },
        );
        self.announce(Event::RolloutRolledBack {
            rollout: self.plan.id.clone(),
            module: self.plan.module.clone(),
            nodes: rolled_back,
            failed,
            unreached,
        });
        self.record(false, Some(why));
    }

    /// Records the rollout's end in every member's history.
    fn record(&self, committed: bool, error: Option<String>) {
        for node in self.plan.members.keys() {
            if let Some(agent) = wire::agent_of(node) {
                wire::tell(
                    &agent,
                    Request::Record {
                        module: self.plan.module.clone(),
                        from: self.plan.from.clone(),
                        to: self.report.to.clone(),
                        committed,
                        error: error.clone(),
                    },
                );
            }
        }
    }
}
