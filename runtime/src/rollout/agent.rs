//! A node's rollout agent (docs/semantics.md "Rollouts"): one actor per
//! node in a cluster, in the process group [`wire::group`] of its node,
//! that does what a rollout coordinator (on this node or another) asks on
//! this node: hash a library file, reload or roll back a module (normal
//! molt reloads, all their guarantees), report a module's figures,
//! publish a rollout's events, record its end in the history. It also
//! coordinates the rollouts asked of this node ([`super::coordinator`]).
//!
//! A reload it does for a rollout holds a **lease**: until the coordinator
//! commits, the new version is provisional. The coordinator renews the
//! lease while the rollout runs; when it runs out (the coordinator died,
//! froze, or this node was cut off or frozen itself) the agent asks the
//! coordinator how the rollout ended and rolls back unless it committed,
//! or when the coordinator cannot be asked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::coordinator::{self, Board};
use super::wire::{self, AgentMsg, Answer, Request};
use super::{GateReading, RolloutOutcome};
use crate::admin::{Admin, ReloadOptions};
use crate::cluster::membership::ClusterView;
use crate::config::RolloutSpec;
use crate::error::Error;
use crate::events::{Event, EventBus};
use crate::history::Trigger;

/// The rollout agent actor.
pub(crate) struct Agent;

/// What it starts with.
pub(crate) struct AgentArgs {
    /// This node's name.
    pub node: String,
    pub admin: Admin,
    pub bus: EventBus,
    /// The membership view (the coordinator's plan and lost members).
    pub view: ClusterView,
    /// `[rollout]`.
    pub spec: RolloutSpec,
}

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

/// The leases by module (one rollout of a module at a time).
type Leases = Arc<Mutex<HashMap<String, Lease>>>;

pub(crate) struct AgentState {
    node: String,
    admin: Admin,
    bus: EventBus,
    view: ClusterView,
    spec: RolloutSpec,
    leases: Leases,
    /// The rollout coordinated here (current or last).
    board: Board,
    /// A rollout coordinated here is under way.
    coordinating: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Actor for Agent {
    type Msg = AgentMsg;
    type State = AgentState;
    type Arguments = AgentArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AgentMsg>,
        args: AgentArgs,
    ) -> Result<AgentState, ActorProcessingErr> {
        ractor::pg::join(wire::group(&args.node), vec![myself.get_cell()]);
        let every = (args.spec.lease / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let ticker = myself.send_interval(every, || AgentMsg::Tick);
        Ok(AgentState {
            node: args.node,
            admin: args.admin,
            bus: args.bus,
            view: args.view,
            spec: args.spec,
            leases: Arc::default(),
            board: Board::default(),
            coordinating: Arc::default(),
            ticker: Some(ticker),
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<AgentMsg>,
        st: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::leave(wire::group(&st.node), vec![myself.get_cell()]);
        if let Some(t) = st.ticker.take() {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<AgentMsg>,
        msg: AgentMsg,
        st: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AgentMsg::Remote(request, reply) => st.answer(request, reply),
            AgentMsg::Rollout(request, reply) => st.coordinate(request, reply),
            AgentMsg::Status(reply) => {
                let _ = reply.send(st.board.report());
            }
            AgentMsg::Tick => st.look_at_leases(),
        }
        Ok(())
    }
}

/// Sends `answer` on `reply`, if the asker waits for one.
fn send(reply: Option<RpcReplyPort<Vec<u8>>>, answer: Result<Answer, String>) {
    if let Some(reply) = reply {
        let _ = reply.send(wire::encode(&answer));
    }
}

impl AgentState {
    /// Answers a coordinator's request: the quick ones here, the reloads,
    /// rollbacks, hashes and figures in a task of their own (this actor
    /// keeps taking renewals and announcements meanwhile).
    fn answer(&mut self, request: Request, reply: Option<RpcReplyPort<Vec<u8>>>) {
        match request {
            Request::Announce(event) => {
                self.bus.publish(event);
                send(reply, Ok(Answer::Done));
            }
            Request::Renew { rollout, lease_ms } => {
                let until = Instant::now() + Duration::from_millis(lease_ms);
                for lease in lock(&self.leases).values_mut() {
                    if lease.rollout == rollout {
                        lease.expires = lease.expires.max(until);
                    }
                }
                send(reply, Ok(Answer::Done));
            }
            Request::Commit { rollout } => {
                lock(&self.leases).retain(|_, l| l.rollout != rollout);
                send(reply, Ok(Answer::Done));
            }
            Request::Outcome { rollout } => {
                let outcome = self
                    .board
                    .report()
                    .filter(|r| r.id == rollout)
                    .map(|r| r.outcome);
                send(reply, Ok(Answer::Outcome(outcome)));
            }
            Request::Hash { module, library } => {
                let admin = self.admin.clone();
                tokio::spawn(async move {
                    let hash = match tokio::task::spawn_blocking(move || hash_file(&library)).await
                    {
                        Ok(h) => h,
                        Err(e) => Err(e.to_string()),
                    };
                    let version = match admin.status().await {
                        Ok(s) => s.module(&module).map(|m| m.code_version.clone()),
                        Err(e) => return send(reply, Err(e.to_string())),
                    };
                    send(reply, Ok(Answer::Hash { hash, version }));
                });
            }
            Request::Figures { module } => {
                let admin = self.admin.clone();
                tokio::spawn(async move {
                    let answer = match admin.status().await {
                        Ok(s) => s
                            .module(&module)
                            .map(|m| Answer::Figures(GateReading::of(m)))
                            .ok_or_else(|| Error::UnknownModule(module).to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    send(reply, answer);
                });
            }
            Request::Reload {
                module,
                library,
                rollout,
                coordinator,
                lease_ms,
            } => {
                let (admin, leases) = (self.admin.clone(), self.leases.clone());
                tokio::spawn(async move {
                    let answer = reload(
                        &admin,
                        &leases,
                        module,
                        library,
                        Lease {
                            rollout,
                            coordinator,
                            from: String::new(),
                            expires: Instant::now() + Duration::from_millis(lease_ms),
                            checking: false,
                        },
                    )
                    .await;
                    send(reply, answer);
                });
            }
            Request::Rollback { module, rollout } => {
                let lease = {
                    let mut leases = lock(&self.leases);
                    match leases.get(&module) {
                        Some(l) if l.rollout == rollout => leases.remove(&module),
                        _ => None,
                    }
                };
                let Some(lease) = lease else {
                    return send(reply, Ok(Answer::NotHeld));
                };
                let admin = self.admin.clone();
                tokio::spawn(async move {
                    send(reply, roll_back(&admin, &module, &lease).await);
                });
            }
            Request::Record {
                module,
                from,
                to,
                committed,
                error,
            } => {
                let _ = self
                    .admin
                    .record_rollout(&module, from, to, committed, error);
                send(reply, Ok(Answer::Done));
            }
        }
    }

    /// Starts coordinating a rollout from this node, one at a time.
    fn coordinate(
        &mut self,
        request: super::RolloutRequest,
        reply: RpcReplyPort<Result<super::RolloutReport, Error>>,
    ) {
        if self.coordinating.swap(true, Ordering::SeqCst) {
            let running = self
                .board
                .report()
                .map(|r| format!("{} of {}", r.id, r.module))
                .unwrap_or_default();
            let _ = reply.send(Err(Error::RolloutRefused(format!(
                "rollout {running} is under way on this node; wait for it (molt rollout --status)"
            ))));
            return;
        }
        let ctx = coordinator::Ctx {
            me: self.node.clone(),
            view: self.view.clone(),
            board: self.board.clone(),
            spec: self.spec.clone(),
        };
        let busy = self.coordinating.clone();
        tokio::spawn(async move {
            let result = coordinator::run(&ctx, request).await;
            busy.store(false, Ordering::SeqCst);
            let _ = reply.send(result);
        });
    }

    /// Looks into the leases that ran out, each once at a time.
    fn look_at_leases(&mut self) {
        let now = Instant::now();
        let expired: Vec<(String, Lease)> = lock(&self.leases)
            .iter_mut()
            .filter(|(_, l)| !l.checking && l.expires <= now)
            .map(|(m, l)| {
                l.checking = true;
                (m.clone(), l.clone())
            })
            .collect();
        for (module, lease) in expired {
            let (admin, leases, bus, node) = (
                self.admin.clone(),
                self.leases.clone(),
                self.bus.clone(),
                self.node.clone(),
            );
            let (within, extend) = (
                self.spec.request_timeout.min(Duration::from_secs(5)),
                self.spec.lease,
            );
            tokio::spawn(async move {
                lease_ran_out(admin, leases, bus, node, module, lease, within, extend).await;
            });
        }
    }
}

/// A lease ran out without word from the coordinator: asks it how the
/// rollout ended; committed → the lease is dropped, still running → it is
/// extended, anything else (halted, unknown to it, no answer) → this node
/// rolls back on its own.
#[allow(clippy::too_many_arguments)]
async fn lease_ran_out(
    admin: Admin,
    leases: Leases,
    bus: EventBus,
    node: String,
    module: String,
    lease: Lease,
    within: Duration,
    extend: Duration,
) {
    let outcome = match wire::agent_of(&lease.coordinator) {
        Some(agent) => wire::ask(
            &agent,
            Request::Outcome {
                rollout: lease.rollout.clone(),
            },
            within,
        )
        .await
        .map_err(|e| format!("coordinator {}: {e}", lease.coordinator)),
        None => Err(format!(
            "coordinator {} is not connected",
            lease.coordinator
        )),
    };
    let why = match outcome {
        Ok(Answer::Outcome(Some(RolloutOutcome::Committed))) => {
            lock(&leases).retain(|_, l| l.rollout != lease.rollout);
            return;
        }
        Ok(Answer::Outcome(Some(RolloutOutcome::Running))) => {
            if let Some(l) = lock(&leases).get_mut(&module) {
                l.expires = Instant::now() + extend;
                l.checking = false;
            }
            return;
        }
        Ok(Answer::Outcome(Some(RolloutOutcome::Halted))) => "the rollout halted".to_string(),
        Ok(Answer::Outcome(None)) => format!(
            "coordinator {} does not know the rollout (it restarted)",
            lease.coordinator
        ),
        Ok(other) => format!("coordinator {} answered {other:?}", lease.coordinator),
        Err(e) => e,
    };
    // Still ours? (The coordinator's rollback may have come meanwhile.)
    let held = {
        let mut l = lock(&leases);
        match l.get(&module) {
            Some(x) if x.rollout == lease.rollout => l.remove(&module),
            _ => None,
        }
    };
    let Some(lease) = held else { return };
    tracing::warn!(target: "molt::rollout", rollout = %lease.rollout, %module, "lease ran out ({why}): rolling back to {}", lease.from);
    let ok = roll_back(&admin, &module, &lease).await.is_ok();
    bus.publish(Event::RolloutRolledBack {
        rollout: lease.rollout,
        module,
        nodes: if ok { vec![node.clone()] } else { Vec::new() },
        unreached: if ok { Vec::new() } else { vec![node] },
    });
}

/// A rollout's reload on this node; on success the lease is held.
async fn reload(
    admin: &Admin,
    leases: &Leases,
    module: String,
    library: PathBuf,
    mut lease: Lease,
) -> Result<Answer, String> {
    if let Some(other) = lock(leases).get(&module) {
        return Err(format!(
            "{module} is in rollout {} here, not committed yet",
            other.rollout
        ));
    }
    let started = Instant::now();
    let report = admin
        .reload(
            &module,
            ReloadOptions::library(library).by(Trigger::Rollout),
        )
        .await
        .map_err(|e| e.to_string())?;
    lease.from = report.from.clone();
    lock(leases).insert(module, lease);
    Ok(Answer::Reloaded {
        from: report.from,
        to: report.to,
        took_ms: started.elapsed().as_millis() as u64,
    })
}

/// Rolls `module` back to the version before `lease`'s rollout.
async fn roll_back(admin: &Admin, module: &str, lease: &Lease) -> Result<Answer, String> {
    admin
        .rollback_to(module, Some(&lease.from), false, Trigger::Rollout)
        .await
        .map(|r| Answer::RolledBack {
            from: r.from,
            to: r.to,
        })
        .map_err(|e| e.to_string())
}

/// The SHA-256 of the file at `path`, hex; or why it cannot be read.
fn hash_file(path: &Path) -> Result<String, String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file =
        crate::regular_file::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts this node's rollout agent.
///
/// # Errors
/// [`Error::Spawn`] when the actor cannot start.
pub(crate) async fn start(args: AgentArgs) -> Result<ActorRef<AgentMsg>, Error> {
    Actor::spawn(None, Agent, args)
        .await
        .map(|(a, _)| a)
        .map_err(|e| Error::Spawn(format!("the rollout agent: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hash_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("lib.so");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            hash_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let e = hash_file(&dir.path().join("none.so")).unwrap_err();
        assert!(e.contains("none.so"), "{e}");
    }
}
