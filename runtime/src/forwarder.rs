//! The forwarder of a retired lane (issue #8 item 11): a scale-down removes
//! an instance, but handles resolved to it keep their lane. The lane then
//! leads here; the forwarder waits until the removed instance has handled
//! everything queued before the scale-down (and stopped), then passes every
//! message on, in the order it arrived, to the lane of instance
//! `index % new_count`. The lane keeps pointing here, so nothing sent later
//! through it can overtake what is forwarded. The removed instance's state
//! is dropped with it: the messages go on to another instance's state.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use crate::directory::{InstanceShared, Lane};
use crate::module_actor::ModuleMsg;

/// The forwarder's actor type.
pub(crate) struct Forwarder;

/// What a forwarder needs: the lane it passes messages on to, the counters
/// of its own route, and the signal that the removed instance is done.
pub(crate) struct ForwarderArgs {
    pub to: Arc<Lane>,
    pub shared: Arc<InstanceShared>,
    pub released: oneshot::Receiver<()>,
}

/// The forwarder's state.
pub(crate) struct ForwarderState {
    to: Arc<Lane>,
    shared: Arc<InstanceShared>,
    released: Option<oneshot::Receiver<()>>,
}

impl Actor for Forwarder {
    type Msg = ModuleMsg;
    type State = ForwarderState;
    type Arguments = ForwarderArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ModuleMsg>,
        args: ForwarderArgs,
    ) -> Result<ForwarderState, ActorProcessingErr> {
        Ok(ForwarderState {
            to: args.to,
            shared: args.shared,
            released: Some(args.released),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ModuleMsg>,
        msg: ModuleMsg,
        st: &mut ForwarderState,
    ) -> Result<(), ActorProcessingErr> {
        // Everything behind this message waits in the mailbox meanwhile. A
        // dropped signal (the drain gave up) releases too.
        if let Some(released) = st.released.take() {
            let _ = released.await;
        }
        match msg {
            ModuleMsg::Cast(..) | ModuleMsg::Call(..) | ModuleMsg::Answer(_) => {
                st.shared.handled.fetch_add(1, Ordering::Relaxed);
                // A closed target drops the message: a caller sees its
                // reply port closed (not running).
                if st.to.send(msg).is_err() {
                    st.shared.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: "molt::supervisor", instance = st.to.index, "forwarder: the instance to forward to is gone; a message was dropped");
                }
            }
            // Reloads, checkpoints and events concern serving instances only.
            ModuleMsg::Swap(_)
            | ModuleMsg::Checkpoint
            | ModuleMsg::Event(_)
            | ModuleMsg::Rehearse(_) => {}
            // Only keyed actors are passivated or switched over, and they
            // have no forwarder.
            ModuleMsg::Passivate(_) | ModuleMsg::SwitchOver(_) => {}
        }
        Ok(())
    }
}
