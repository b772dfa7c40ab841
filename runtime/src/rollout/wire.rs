//! What a rollout coordinator and the nodes' rollout agents say to each
//! other: the agent's messages, the requests that cross nodes (msgpack,
//! through ractor_cluster's remote calls: a call carries a reply port of
//! bytes), and [`ask`], which bounds every request: a dead or frozen node
//! never holds its asker longer than the bound.

use std::path::PathBuf;
use std::time::Duration;

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};

use super::{GateReading, RolloutOutcome, RolloutReport, RolloutRequest};
use crate::error::Error;
use crate::events::Event;

/// The variant name of a request on the wire.
const REQUEST: &str = "molt.rollout.v1";

/// The process group of node `node`'s rollout agent (ractor_cluster shares
/// the groups' members between connected nodes).
pub(crate) fn group(node: &str) -> String {
    format!("molt.rollout.agent/{node}")
}

/// Node `node`'s rollout agent, if this node knows one (it is this node,
/// or connected).
pub(crate) fn agent_of(node: &str) -> Option<ActorRef<AgentMsg>> {
    ractor::pg::get_members(&group(node))
        .into_iter()
        .last()
        .map(ActorRef::from)
}

/// This node's own rollout agent (node `node` is this node).
pub(crate) fn local_agent(node: &str) -> Option<ActorRef<AgentMsg>> {
    ractor::pg::get_members(&group(node))
        .into_iter()
        .find(|a| a.get_id().is_local())
        .map(ActorRef::from)
}

/// A request to a node's rollout agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Request {
    /// The content hash of the file at `library`, and `module`'s version.
    Hash { module: String, library: PathBuf },
    /// Reload `module` from `library` (a normal reload on that node), then
    /// hold a lease on the new version for `lease_ms`.
    Reload {
        module: String,
        library: PathBuf,
        rollout: String,
        coordinator: String,
        lease_ms: u64,
    },
    /// Roll `module` back to the version it ran before `rollout`'s reload
    /// (only while the node holds that rollout's lease).
    Rollback { module: String, rollout: String },
    /// `module`'s figures now.
    Figures { module: String },
    /// The coordinator is alive: extend `rollout`'s lease.
    Renew { rollout: String, lease_ms: u64 },
    /// `rollout` committed: drop its lease.
    Commit { rollout: String },
    /// Publish this rollout event on the node's bus.
    Announce(Event),
    /// Record the rollout's end in the node's history.
    Record {
        module: String,
        from: String,
        to: String,
        committed: bool,
        error: Option<String>,
    },
    /// How `rollout` ended, as its coordinator knows it (`None`: not this
    /// coordinator's current or last rollout, e.g. it restarted).
    Outcome { rollout: String },
}

/// An agent's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Answer {
    /// The file's SHA-256 (hex) or why it could not be read; the module's
    /// code version (`None`: no such module on that node).
    Hash {
        hash: Result<String, String>,
        version: Option<String>,
    },
    /// Reloaded.
    Reloaded {
        from: String,
        to: String,
        took_ms: u64,
    },
    /// Rolled back.
    RolledBack { from: String, to: String },
    /// The rollback was tried and failed (the new version keeps serving
    /// there): why, in words (e.g. the new code cannot down-migrate).
    RollbackFailed(String),
    /// The node held no lease of that rollout: nothing to roll back (it
    /// never took the version, or rolled back already).
    NotHeld,
    /// The module's figures.
    Figures(GateReading),
    /// A rollout's outcome.
    Outcome(Option<RolloutOutcome>),
    /// Done.
    Done,
}

/// The rollout agent's messages.
#[derive(Debug)]
pub(crate) enum AgentMsg {
    /// A request from a coordinator (on this node or another), answered
    /// on the port when there is one (msgpack of `Result<Answer, String>`).
    Remote(Request, Option<RpcReplyPort<Vec<u8>>>),
    /// Coordinate a rollout from this node (local only).
    Rollout(RolloutRequest, RpcReplyPort<Result<RolloutReport, Error>>),
    /// The current or last rollout coordinated here (local only).
    Status(RpcReplyPort<Option<RolloutReport>>),
    /// Time to look at the leases (local only).
    Tick,
}

impl ractor::Message for AgentMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        match self {
            AgentMsg::Remote(request, reply) => {
                let args = rmp_serde::to_vec_named(&request).map_err(|_| BoxedDowncastErr)?;
                let variant = REQUEST.to_string();
                Ok(match reply {
                    Some(reply) => SerializedMessage::Call {
                        variant,
                        args,
                        reply,
                        metadata: None,
                    },
                    None => SerializedMessage::Cast {
                        variant,
                        args,
                        metadata: None,
                    },
                })
            }
            AgentMsg::Rollout(..) | AgentMsg::Status(_) | AgentMsg::Tick => Err(BoxedDowncastErr),
        }
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        // Anything else (another version's format, garbage) is dropped by
        // ractor, never a panic; a call's port is then dropped: its asker
        // sees no answer.
        match bytes {
            SerializedMessage::Call {
                variant,
                args,
                reply,
                ..
            } if variant == REQUEST => rmp_serde::from_slice(&args)
                .map(|r| AgentMsg::Remote(r, Some(reply)))
                .map_err(|_| BoxedDowncastErr),
            SerializedMessage::Cast { variant, args, .. } if variant == REQUEST => {
                rmp_serde::from_slice(&args)
                    .map(|r| AgentMsg::Remote(r, None))
                    .map_err(|_| BoxedDowncastErr)
            }
            _ => Err(BoxedDowncastErr),
        }
    }
}

/// Encodes an answer for its port.
pub(crate) fn encode(answer: &Result<Answer, String>) -> Vec<u8> {
    rmp_serde::to_vec_named(answer).unwrap_or_default()
}

/// Asks `agent` and waits at most `within` for the answer.
///
/// # Errors
/// The agent's own error, or why there was no answer (gone, or not within
/// the bound), in words.
pub(crate) async fn ask(
    agent: &ActorRef<AgentMsg>,
    request: Request,
    within: Duration,
) -> Result<Answer, String> {
    let (tx, rx) = ractor::concurrency::oneshot();
    agent
        .send_message(AgentMsg::Remote(request, Some((tx, within).into())))
        .map_err(|_| "its rollout agent is gone".to_string())?;
    match tokio::time::timeout(within, rx).await {
        Ok(Ok(bytes)) => rmp_serde::from_slice::<Result<Answer, String>>(&bytes)
            .map_err(|e| format!("an answer it could not decode: {e}"))?,
        Ok(Err(_)) => Err("no answer (its connection closed)".to_string()),
        Err(_) => Err(format!("no answer within {} ms", within.as_millis())),
    }
}

/// Tells `agent` without waiting for an answer (lost if it is gone).
pub(crate) fn tell(agent: &ActorRef<AgentMsg>, request: Request) {
    let _ = agent.send_message(AgentMsg::Remote(request, None));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::Message;

    #[test]
    fn requests_cross_the_wire_and_garbage_is_refused() {
        let request = Request::Reload {
            module: "kv".into(),
            library: "/srv/libkv.so".into(),
            rollout: "a-1".into(),
            coordinator: "a".into(),
            lease_ms: 100,
        };
        let (tx, _rx) = ractor::concurrency::oneshot();
        let wire = AgentMsg::Remote(request.clone(), Some(tx.into()))
            .serialize()
            .unwrap();
        match AgentMsg::deserialize(wire).unwrap() {
            AgentMsg::Remote(back, Some(_)) => assert_eq!(back, request),
            other => panic!("{other:?}"),
        }
        let announce = Request::Announce(Event::RolloutHalted {
            rollout: "a-1".into(),
            module: "kv".into(),
            reason: "gate".into(),
        });
        let wire = AgentMsg::Remote(announce.clone(), None)
            .serialize()
            .unwrap();
        match AgentMsg::deserialize(wire).unwrap() {
            AgentMsg::Remote(back, None) => assert_eq!(back, announce),
            other => panic!("{other:?}"),
        }
        let garbage = SerializedMessage::Cast {
            variant: REQUEST.to_string(),
            args: vec![0xc1],
            metadata: None,
        };
        assert!(AgentMsg::deserialize(garbage).is_err());
        assert!(AgentMsg::Tick.serialize().is_err());
        let answer: Result<Answer, String> = Ok(Answer::Outcome(Some(RolloutOutcome::Halted)));
        let back: Result<Answer, String> = rmp_serde::from_slice(&encode(&answer)).unwrap();
        assert_eq!(back, answer);
    }
}
