//! The failure detector: one actor per node, in the process group
//! [`GROUP`], that tells every peer it is alive each heartbeat interval and
//! marks unreachable a peer not heard from within the timeout
//! (docs/semantics.md "Cluster membership"). ractor_cluster notices only a
//! closed connection; a frozen node (SIGSTOP, a partition) keeps its
//! connection open and is found only this way.
//!
//! A peer marked unreachable gets one heartbeat per timeout instead of one
//! per interval: what is sent to a frozen peer waits in its session's
//! queue, and this keeps that queue small (one heartbeat, not each, lets
//! a peer that resumes hear this node again; both sides of a long freeze
//! mark each other unreachable, so neither may stop sending).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ractor::concurrency::JoinHandle;
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use ractor_cluster::NodeServerMessage;

use super::membership::{Beat, Change, ClusterView, ModuleVersion, What};
use crate::admin::Admin;
use crate::events::{Event, EventBus, Received};

/// The process group of the heartbeat actors (ractor_cluster shares the
/// groups' members between connected nodes).
pub(crate) const GROUP: &str = "molt.cluster.heartbeat";

/// The variant name of a heartbeat on the wire.
const BEAT: &str = "molt.beat.v1";

/// The heartbeat actor's messages.
#[derive(Debug)]
pub(crate) enum BeatMsg {
    /// Time to send this node's heartbeat and to look for silent peers.
    Tick,
    /// A peer's heartbeat (the only message that crosses nodes).
    Beat(Beat),
    /// This node's modules, as the supervisor reports them (`None`: it did
    /// not answer in time; the last known ones are kept).
    Modules(Option<Vec<ModuleVersion>>),
    /// This node's module versions may have changed ([`watch_versions`]):
    /// ask the supervisor at the next tick.
    VersionsChanged,
}

impl ractor::Message for BeatMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        match self {
            BeatMsg::Beat(beat) => Ok(SerializedMessage::Cast {
                variant: BEAT.to_string(),
                args: rmp_serde::to_vec_named(&beat).map_err(|_| BoxedDowncastErr)?,
                metadata: None,
            }),
            // Local only.
            BeatMsg::Tick | BeatMsg::Modules(_) | BeatMsg::VersionsChanged => Err(BoxedDowncastErr),
        }
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match bytes {
            // Anything else (another version's format, garbage) is dropped
            // by ractor, never a panic.
            SerializedMessage::Cast { variant, args, .. } if variant == BEAT => {
                rmp_serde::from_slice(&args)
                    .map(BeatMsg::Beat)
                    .map_err(|_| BoxedDowncastErr)
            }
            _ => Err(BoxedDowncastErr),
        }
    }
}

/// The failure detector actor.
pub(crate) struct Heartbeat;

/// What it starts with.
pub(crate) struct HeartbeatArgs {
    pub view: ClusterView,
    pub interval: Duration,
    pub unreachable_after: Duration,
    /// The node server: which session (node id) is which peer.
    pub server: ActorRef<NodeServerMessage>,
    /// Asked for this node's module versions.
    pub admin: Admin,
    /// Where the view's changes are published (`cluster.member_*`).
    pub bus: EventBus,
}

pub(crate) struct HeartbeatState {
    view: ClusterView,
    admin: Admin,
    bus: EventBus,
    interval: Duration,
    unreachable_after: Duration,
    server: ActorRef<NodeServerMessage>,
    /// When each unreachable peer was last sent a heartbeat.
    slow: HashMap<String, Instant>,
    modules: Vec<ModuleVersion>,
    /// A status request to the supervisor is under way.
    asking: bool,
    /// The versions may have changed since they were last asked for.
    stale: bool,
    ticker: Option<JoinHandle<()>>,
    /// Turns the bus's module events into [`BeatMsg::VersionsChanged`].
    watcher: Option<tokio::task::JoinHandle<()>>,
}

impl Actor for Heartbeat {
    type Msg = BeatMsg;
    type State = HeartbeatState;
    type Arguments = HeartbeatArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<BeatMsg>,
        args: HeartbeatArgs,
    ) -> Result<HeartbeatState, ActorProcessingErr> {
        // The first heartbeat already says which versions run here.
        let modules = modules_now(&args.admin, args.interval * 5).await;
        let stale = modules.is_none();
        let modules = modules.unwrap_or_default();
        ractor::pg::join(GROUP.to_string(), vec![myself.get_cell()]);
        let ticker = myself.send_interval(args.interval, || BeatMsg::Tick);
        let watcher = watch_versions(&args.bus, myself.clone());
        Ok(HeartbeatState {
            view: args.view,
            admin: args.admin,
            bus: args.bus,
            interval: args.interval,
            unreachable_after: args.unreachable_after,
            server: args.server,
            slow: HashMap::new(),
            modules,
            asking: false,
            stale,
            ticker: Some(ticker),
            watcher: Some(watcher),
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<BeatMsg>,
        st: &mut HeartbeatState,
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::leave(GROUP.to_string(), vec![myself.get_cell()]);
        if let Some(t) = st.ticker.take() {
            t.abort();
        }
        if let Some(w) = st.watcher.take() {
            w.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<BeatMsg>,
        msg: BeatMsg,
        st: &mut HeartbeatState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BeatMsg::Tick => {
                for change in st
                    .view
                    .with(|v| v.sweep(Instant::now()))
                    .unwrap_or_default()
                {
                    report(&st.bus, change);
                }
                if st.stale {
                    Self::ask_modules(&myself, st);
                }
                Self::send_beats(&myself, st).await;
            }
            BeatMsg::VersionsChanged => st.stale = true,
            BeatMsg::Beat(beat) => {
                if let Some(change) = st.view.with(|v| v.heard(beat, Instant::now())).flatten() {
                    report(&st.bus, change);
                }
            }
            BeatMsg::Modules(modules) => {
                st.asking = false;
                match modules {
                    Some(m) => st.modules = m,
                    None => st.stale = true,
                }
            }
        }
        Ok(())
    }
}

impl Heartbeat {
    /// Asks the supervisor for this node's module versions, one request at
    /// a time, answered within a few heartbeats (else the last known stay
    /// and the next tick asks again). A change noticed while a request is
    /// under way marks the versions stale again: asked once more after it.
    fn ask_modules(myself: &ActorRef<BeatMsg>, st: &mut HeartbeatState) {
        if st.asking {
            return;
        }
        st.asking = true;
        st.stale = false;
        let (admin, me, within) = (st.admin.clone(), myself.clone(), st.interval * 5);
        tokio::spawn(async move {
            let modules = modules_now(&admin, within).await;
            let _ = me.send_message(BeatMsg::Modules(modules));
        });
    }

    /// This node's heartbeat to every peer's heartbeat actor (to an
    /// unreachable one, once per timeout).
    async fn send_beats(myself: &ActorRef<BeatMsg>, st: &mut HeartbeatState) {
        let Some((me, unreachable)) = st.view.with(|v| (v.me().clone(), v.unreachable())) else {
            return;
        };
        let now = Instant::now();
        st.slow.retain(|name, _| unreachable.contains(name));
        // Which session is which peer: asked only while one is unreachable.
        let mut slowed: HashSet<u64> = HashSet::new();
        if !unreachable.is_empty() {
            let sessions = ractor::call_t!(
                st.server,
                NodeServerMessage::GetSessions,
                st.interval.as_millis() as u64
            )
            .unwrap_or_default();
            for (node_id, session) in sessions {
                let Some(peer) = session.peer_name else {
                    continue;
                };
                let name = peer
                    .name
                    .rsplit_once('@')
                    .map_or(peer.name.as_str(), |(n, _)| n);
                if !unreachable.iter().any(|u| u == name) {
                    continue;
                }
                match st.slow.get(name) {
                    Some(&at) if now.duration_since(at) < st.unreachable_after => {
                        slowed.insert(node_id);
                    }
                    _ => {
                        st.slow.insert(name.to_string(), now);
                    }
                }
            }
        }
        for member in ractor::pg::get_members(&GROUP.to_string()) {
            let id = member.get_id();
            if id == myself.get_id() || id.is_local() {
                continue;
            }
            if let ActorId::Remote { node_id, .. } = id {
                if slowed.contains(&node_id) {
                    continue;
                }
            }
            let beat = Beat {
                node: me.node.clone(),
                address: me.address.clone(),
                incarnation: me.incarnation,
                modules: st.modules.clone(),
            };
            // A closed session's actor is gone: nothing to tell.
            let _ = ActorRef::<BeatMsg>::from(member).send_message(BeatMsg::Beat(beat));
        }
    }
}

/// Logs a change of the view and publishes its `cluster.member_*` event
/// (docs/semantics.md "Cluster membership").
fn report(bus: &EventBus, change: Change) {
    let (peer, incarnation) = (&change.node, change.incarnation);
    match change.what {
        What::Joined => {
            tracing::info!(target: "molt::cluster", %peer, %incarnation, "peer joined")
        }
        What::Unreachable => {
            tracing::warn!(target: "molt::cluster", %peer, "peer unreachable: not heard from within cluster.unreachable_after_ms")
        }
        What::Reachable => {
            tracing::info!(target: "molt::cluster", %peer, "peer reachable again")
        }
        What::Restarted { was } => {
            tracing::info!(target: "molt::cluster", %peer, %incarnation, %was, "peer restarted: a new incarnation")
        }
        What::Forgotten => {
            tracing::warn!(target: "molt::cluster", %peer, "peer forgotten: unreachable for cluster.forget_after_ms; no longer a member")
        }
    }
    bus.publish(change.event());
}

/// This node's modules and their versions, as the supervisor answers
/// within `within` (`None` past it).
/// Tells the heartbeat actor whenever this node's module versions may have
/// changed (a module loaded, reloaded, rolled back, restarted, or a config
/// change applied; or events were missed), so that it asks the supervisor
/// then, not on every tick: a status request goes through the
/// supervisor's mailbox, where reloads are coordinated.
fn watch_versions(bus: &EventBus, heartbeat: ActorRef<BeatMsg>) -> tokio::task::JoinHandle<()> {
    let mut events = bus.subscribe();
    tokio::spawn(async move {
        loop {
            let changed = match events.recv().await {
                Received::Event(e) => matches!(
                    e.event,
                    Event::ModuleLoaded { .. }
                        | Event::ModuleReloaded { .. }
                        | Event::ModuleRolledBack { .. }
                        | Event::ModuleRestarted { .. }
                        | Event::ConfigApplied { .. }
                ),
                Received::Lagged(_) => true,
                Received::Closed => return,
            };
            if changed && heartbeat.send_message(BeatMsg::VersionsChanged).is_err() {
                return;
            }
        }
    })
}

async fn modules_now(admin: &Admin, within: Duration) -> Option<Vec<ModuleVersion>> {
    match tokio::time::timeout(within, admin.status()).await {
        Ok(Ok(status)) => Some(
            status
                .modules
                .into_iter()
                .map(|m| ModuleVersion {
                    name: m.name,
                    code_version: m.code_version,
                    state_version: m.state_version,
                })
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::incarnation::Incarnation;
    use ractor::Message;

    #[test]
    fn a_beat_crosses_the_wire_and_garbage_is_refused() {
        let beat = Beat {
            node: "b".into(),
            address: "127.0.0.1:7001".into(),
            incarnation: Incarnation(7),
            modules: vec![ModuleVersion {
                name: "kv".into(),
                code_version: "1.0.0".into(),
                state_version: 1,
            }],
        };
        let wire = BeatMsg::Beat(beat.clone()).serialize().unwrap();
        match BeatMsg::deserialize(wire).unwrap() {
            BeatMsg::Beat(back) => assert_eq!(back, beat),
            other => panic!("{other:?}"),
        }
        let garbage = SerializedMessage::Cast {
            variant: BEAT.to_string(),
            args: vec![0xc1, 0xff],
            metadata: None,
        };
        assert!(BeatMsg::deserialize(garbage).is_err());
        assert!(BeatMsg::Tick.serialize().is_err());
    }
}
