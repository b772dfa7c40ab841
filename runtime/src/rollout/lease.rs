//! The leases a node holds on uncommitted new versions (docs/semantics.md
//! "Rollouts"): a rollout's reload on this node takes one, the coordinator
//! renews it while the rollout goes on, a commit drops it, a rollback gives
//! it back. When one runs out without word, the node asks the coordinator
//! how the rollout ended and rolls back unless it committed. Whichever
//! comes first takes the lease: a node rolls back once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::wire::{self, Answer, Request};
use super::RolloutOutcome;
use crate::admin::{Admin, ReloadOptions};
use crate::events::{Event, EventBus};
use crate::history::Trigger;

/// An uncommitted new version on this node.
#[derive(Debug, Clone)]
struct Lease {
    rollout: String,
    coordinator: String,
    /// The version to go back to.
    from: String,
    expires: Instant,
    /// Its expiry is being looked into.
    checking: bool,
}

/// This node's leases, by module (one rollout of a module at a time), and
/// what acting on them needs. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Leases {
    held: Arc<Mutex<HashMap<String, Lease>>>,
    admin: Admin,
    bus: EventBus,
    /// This node's name.
    node: String,
    /// How long a lease lasts without word.
    lease: Duration,
    /// The bound on asking a coordinator how a rollout ended.
    ask_within: Duration,
}

impl Leases {
    /// No leases yet: each lasts `lease`; asking a coordinator waits at
    /// most `ask_within`.
    pub(super) fn new(
        admin: Admin,
        bus: EventBus,
        node: String,
        lease: Duration,
        ask_within: Duration,
    ) -> Self {
        Leases {
            held: Arc::default(),
            admin,
            bus,
            node,
            lease,
            ask_within,
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<String, Lease>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `module`'s lease if it belongs to `rollout`.
    fn take(&self, module: &str, rollout: &str) -> Option<Lease> {
        let mut held = self.held();
        match held.get(module) {
            Some(l) if l.rollout == rollout => held.remove(module),
            _ => None,
        }
    }

    /// A rollout's reload on this node (a normal reload, trigger
    /// `rollout`); on success the node holds its lease for `lease_ms`.
    ///
    /// # Errors
    /// The module is in another rollout here, or the reload failed (the old
    /// version serves on), in words.
    pub(super) async fn reload(
        &self,
        module: String,
        library: PathBuf,
        rollout: String,
        coordinator: String,
        lease_ms: u64,
    ) -> Result<Answer, String> {
        if let Some(other) = self.held().get(&module) {
            return Err(format!(
                "{module} is in rollout {} here, not committed yet",
                other.rollout
            ));
        }
        let started = Instant::now();
        let report = self
            .admin
            .reload(
                &module,
                ReloadOptions::library(library).by(Trigger::Rollout),
            )
            .await
            .map_err(|e| e.to_string())?;
        let lease = Lease {
            rollout,
            coordinator,
            from: report.from.clone(),
            expires: Instant::now() + Duration::from_millis(lease_ms),
            checking: false,
        };
        self.held().insert(module, lease);
        Ok(Answer::Reloaded {
            from: report.from,
            to: report.to,
            took_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The coordinator's rollback of `rollout` on this node: back to the
    /// version before it, if this node still holds its lease.
    ///
    /// # Errors
    /// The rollback failed, in words.
    pub(super) async fn roll_back(&self, module: String, rollout: &str) -> Result<Answer, String> {
        match self.take(&module, rollout) {
            Some(lease) => self.back(&module, &lease).await,
            None => Ok(Answer::NotHeld),
        }
    }

    async fn back(&self, module: &str, lease: &Lease) -> Result<Answer, String> {
        self.admin
            .rollback_to(module, Some(&lease.from), false, Trigger::Rollout)
            .await
            .map(|r| Answer::RolledBack {
                from: r.from,
                to: r.to,
            })
            .or_else(|e| Ok(Answer::RollbackFailed(e.to_string())))
    }

    /// The coordinator is alive: `rollout`'s leases last `lease_ms` more.
    pub(super) fn renew(&self, rollout: &str, lease_ms: u64) {
        let until = Instant::now() + Duration::from_millis(lease_ms);
        for lease in self.held().values_mut() {
            if lease.rollout == rollout {
                lease.expires = lease.expires.max(until);
            }
        }
    }

    /// `rollout` committed: its leases are dropped.
    pub(super) fn commit(&self, rollout: &str) {
        self.held().retain(|_, l| l.rollout != rollout);
    }

    /// Looks into each lease that ran out (once at a time), in a task.
    pub(super) fn look(&self) {
        let now = Instant::now();
        let expired: Vec<(String, Lease)> = self
            .held()
            .iter_mut()
            .filter(|(_, l)| !l.checking && l.expires <= now)
            .map(|(m, l)| {
                l.checking = true;
                (m.clone(), l.clone())
            })
            .collect();
        for (module, lease) in expired {
            let this = self.clone();
            tokio::spawn(async move { this.ran_out(module, lease).await });
        }
    }

    /// A lease ran out without word from the coordinator: asks it how the
    /// rollout ended; committed → the lease is dropped, still running → it
    /// is extended, anything else (halted, unknown to it, no answer) →
    /// this node rolls back on its own and publishes `rollout.rolled_back`.
    async fn ran_out(&self, module: String, lease: Lease) {
        let coordinator = &lease.coordinator;
        let outcome = match wire::agent_of(coordinator) {
            Some(agent) => wire::ask(
                &agent,
                Request::Outcome {
                    rollout: lease.rollout.clone(),
                },
                self.ask_within,
            )
            .await
            .map_err(|e| format!("coordinator {coordinator}: {e}")),
            None => Err(format!("coordinator {coordinator} is not connected")),
        };
        let why = match outcome {
            Ok(Answer::Outcome(Some(RolloutOutcome::Committed))) => {
                return self.commit(&lease.rollout);
            }
            Ok(Answer::Outcome(Some(RolloutOutcome::Running))) => {
                if let Some(l) = self.held().get_mut(&module) {
                    l.expires = Instant::now() + self.lease;
                    l.checking = false;
                }
                return;
            }
            Ok(Answer::Outcome(Some(RolloutOutcome::Halted))) => "the rollout halted".to_string(),
            Ok(Answer::Outcome(None)) => {
                format!("coordinator {coordinator} does not know the rollout (it restarted)")
            }
            Ok(other) => format!("coordinator {coordinator} answered {other:?}"),
            Err(e) => e,
        };
        // Still held? (The coordinator's rollback may have come meanwhile.)
        let Some(lease) = self.take(&module, &lease.rollout) else {
            return;
        };
        tracing::warn!(target: "molt::rollout", rollout = %lease.rollout, %module, "lease ran out ({why}): rolling back to {}", lease.from);
        let answer = self.back(&module, &lease).await;
        let me = vec![self.node.clone()];
        let (nodes, failed) = match answer {
            Ok(Answer::RolledBack { .. }) => (me, Vec::new()),
            Ok(Answer::RollbackFailed(why)) => (Vec::new(), vec![format!("{}: {why}", self.node)]),
            other => (Vec::new(), vec![format!("{}: {other:?}", self.node)]),
        };
        self.bus.publish(Event::RolloutRolledBack {
            rollout: lease.rollout,
            module,
            nodes,
            failed,
            unreached: Vec::new(),
        });
    }
}
