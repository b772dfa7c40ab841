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

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::coordinator::{self, Board};
use super::lease::Leases;
use super::wire::{self, AgentMsg, Answer, Request};
use super::GateReading;
use crate::admin::Admin;
use crate::cluster::membership::ClusterView;
use crate::config::RolloutSpec;
use crate::error::Error;
use crate::events::EventBus;

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
        let leases = Leases::new(
            args.admin.clone(),
            args.bus.clone(),
            args.node.clone(),
            args.spec.lease,
            args.spec.request_timeout.min(Duration::from_secs(5)),
        );
        Ok(AgentState {
            node: args.node,
            admin: args.admin,
            bus: args.bus,
            view: args.view,
            spec: args.spec,
            leases,
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
            AgentMsg::Tick => st.leases.look(),
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
                self.leases.renew(&rollout, lease_ms);
                send(reply, Ok(Answer::Done));
            }
            Request::Commit { rollout } => {
                self.leases.commit(&rollout);
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
                    let answer = admin
                        .figures(&module)
                        .await
                        .map(|f| Answer::Figures(GateReading::of(&f.current)))
                        .map_err(|e| e.to_string());
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
                let leases = self.leases.clone();
                tokio::spawn(async move {
                    let answer = leases
                        .reload(module, library, rollout, coordinator, lease_ms)
                        .await;
                    send(reply, answer);
                });
            }
            Request::Rollback { module, rollout } => {
                let leases = self.leases.clone();
                tokio::spawn(async move {
                    send(reply, leases.roll_back(module, &rollout).await);
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
