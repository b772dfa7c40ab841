//! The rollout admin requests (README "Rolling out a new version"): handed
//! to this node's rollout agent, which coordinates them in a task of its
//! own (a rollout's reloads on this node come back here as admin requests:
//! the supervisor never waits for a rollout), and the history record of a
//! rollout's end.

use std::time::SystemTime;

use ractor::RpcReplyPort;

use super::{SupState, Supervisor};
use crate::error::Error;
use crate::history::{Action, HistoryEntry, Outcome, Trigger};
use crate::rollout::{RolloutReport, RolloutRequest};

impl Supervisor {
    pub(super) fn rollout(
        st: &SupState,
        request: RolloutRequest,
        reply: RpcReplyPort<Result<RolloutReport, Error>>,
    ) {
        #[cfg(feature = "cluster")]
        if let Some(agent) = crate::rollout::wire::local_agent(&st.node) {
            let _ = agent.send_message(crate::rollout::wire::AgentMsg::Rollout(request, reply));
            return;
        }
        let _ = (st, request);
        let _ = reply.send(Err(Error::NotInCluster));
    }

    pub(super) fn rollout_status(
        st: &SupState,
        reply: RpcReplyPort<Result<Option<RolloutReport>, Error>>,
    ) {
        #[cfg(feature = "cluster")]
        if let Some(agent) = crate::rollout::wire::local_agent(&st.node) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if agent
                .send_message(crate::rollout::wire::AgentMsg::Status(tx.into()))
                .is_ok()
            {
                tokio::spawn(async move {
                    let _ = reply.send(rx.await.map_err(|_| Error::NotInCluster));
                });
                return;
            }
        }
        let _ = st;
        let _ = reply.send(Err(Error::NotInCluster));
    }

    pub(super) fn record_rollout(
        st: &mut SupState,
        module: String,
        from: String,
        to: String,
        committed: bool,
        error: Option<String>,
    ) {
        st.history.push(HistoryEntry {
            id: 0,
            at: SystemTime::now(),
            module,
            action: Action::Rollout,
            trigger: Trigger::Rollout,
            from,
            to,
            outcome: if committed {
                Outcome::Committed
            } else {
                Outcome::RolledBack
            },
            phase: None,
            error,
            pause_us: 0,
            restored: None,
            keys_kept_passivated: 0,
        });
    }
}
