//! The in-process event bus: reload events for application code, module
//! actors (through `Module::handle_event`) and the HTTP admin's `/events` stream.
//!
//! Events are published by the supervisor, one at a time, so every subscriber
//! sees them in the order they happened; the cluster's membership changes
//! (`cluster.*`) are published by its heartbeat actor, in the order it saw
//! them, and a cluster rollout's steps (`rollout.*`) by the node's rollout
//! agent, in the order its coordinator announced them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::directory::Directory;
use crate::module_actor::ModuleMsg;
use crate::phase::Phase;

/// One event. Serializes as `{"kind": "module.reloaded", ...fields}`.
///
/// Non-exhaustive: new kinds come as molt grows (the cluster's membership
/// events came this way), so a program that matches events keeps a `_` arm
/// and keeps compiling when one is added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
#[non_exhaustive]
pub enum Event {
    /// A module started with its first library.
    #[serde(rename = "module.loaded")]
    ModuleLoaded {
        /// The module.
        name: String,
        /// Its code version.
        version: String,
        /// Its instance count.
        instances: u32,
    },
    /// A reload committed: every instance runs the new code.
    #[serde(rename = "module.reloaded")]
    ModuleReloaded {
        /// The module.
        name: String,
        /// The code version before.
        from: String,
        /// The code version now serving.
        to: String,
        /// The longest pause of any instance, in microseconds.
        pause_us: u64,
    },
    /// A phase of a reload finished on one instance (`instance` is absent
    /// for the coordinator's phases: prepare, commit).
    #[serde(rename = "module.reload_phase")]
    ReloadPhase {
        /// The module.
        name: String,
        /// The phase (`prepare`, `snapshot`, `migrate`, `swap`, `verify`).
        phase: Phase,
        /// The instance, for the per-instance phases.
        instance: Option<usize>,
        /// How long it took, in microseconds.
        took_us: u64,
        /// Whether it succeeded.
        ok: bool,
    },
    /// A reload failed in a phase; the old version keeps serving.
    #[serde(rename = "module.reload_failed")]
    ModuleReloadFailed {
        /// The module.
        name: String,
        /// The phase that failed (`prepare`, `migrate`, ...).
        phase: Phase,
        /// What failed.
        error: String,
    },
    /// An instance restarted from its newest checkpoint (docs/semantics.md
    /// "Restarts and checkpoints"): after repeated handler panics, after its
    /// actor failed, or in a forced reload whose old code could not hand over
    /// its state.
    #[serde(rename = "module.restarted")]
    ModuleRestarted {
        /// The module.
        name: String,
        /// The instance.
        instance: usize,
        /// Why it restarted.
        reason: String,
        /// `"checkpoint"` or `"start"` (the state it started with).
        restored: String,
        /// How old the restored state was, in milliseconds.
        state_age_ms: u64,
        /// Whether a forced reload restarted it (with the new code).
        forced: bool,
        /// Messages a replaced (hung) actor had not handled: never handled
        /// by any code. 0 for a restart in place, which keeps its mailbox.
        stuck_messages: u64,
    },
    /// Dev mode: a save started a `cargo build` of the module's crate. A
    /// `module.reloaded` (or `module.reload_failed`, phase `build` for a
    /// compile error) follows.
    #[serde(rename = "module.building")]
    ModuleBuilding {
        /// The module.
        name: String,
    },
    /// An explicit rollback to the previous library committed.
    #[serde(rename = "module.rolled_back")]
    ModuleRolledBack {
        /// The module.
        name: String,
        /// The code version rolled back from.
        from: String,
        /// The code version now serving.
        to: String,
        /// Whether the state was reset instead of down-migrated.
        reset_state: bool,
    },
    /// A reload was rehearsed (a dry run, DESIGN.md §6 "Rehearsal"): the
    /// new library was loaded and each instance's state migrated and
    /// verified in a throwaway copy; nothing that serves was touched. Not a
    /// reload: no history entry, no reload metrics.
    #[serde(rename = "module.rehearsed")]
    ModuleRehearsed {
        /// The module.
        name: String,
        /// The code version serving.
        from: String,
        /// The code version rehearsed ("" when its library did not load).
        to: String,
        /// Whether the reload would commit (every instance migrated and
        /// verified).
        ok: bool,
        /// The expected pause (the longest instance's), in microseconds.
        expected_pause_us: u64,
        /// The first failure (with its phase and instance), when not `ok`.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A committed reload of a keyed module could not switch one live key
    /// over to the new code (docs/semantics.md "Keyed actors"): its state
    /// changed after its vote into one the new code refuses, or the new
    /// code's `start` failed. The key's exact snapshot is kept as its
    /// passivated entry (its waiting calls failed with `error`); its next
    /// message, or a rollback to the old code, activates it again. Also sent
    /// when the old actor took no snapshot: it then keeps serving the old
    /// code until it passivates.
    #[serde(rename = "keyed.switch_failed")]
    KeyedSwitchFailed {
        /// The keyed module.
        module: String,
        /// The key (lossy UTF-8).
        key: String,
        /// Why.
        error: String,
        /// Whether the key was kept passivated (else its old actor serves on).
        passivated: bool,
    },
    /// A configuration change was applied (each change listed; failed ones
    /// were rolled back).
    #[serde(rename = "config.applied")]
    ConfigApplied {
        /// The changes applied, one line each.
        changes: Vec<String>,
        /// The changes that failed, with their error.
        failed: Vec<String>,
    },
    /// A configuration change was rejected; nothing of it was applied.
    #[serde(rename = "config.rejected")]
    ConfigRejected {
        /// Why (an invalid file, or the node-level keys that need a restart).
        error: String,
    },
    /// An application event a module published through its context.
    #[serde(rename = "module.published")]
    Published {
        /// The publishing module.
        module: String,
        /// The module's topic.
        topic: String,
        /// The payload, as JSON text.
        json: String,
    },
    /// A peer joined this node's view of the cluster (docs/semantics.md
    /// "Cluster membership"): its first heartbeat was heard.
    #[serde(rename = "cluster.member_joined")]
    MemberJoined {
        /// The peer's node name.
        node: String,
        /// Its cluster address.
        address: String,
        /// Its incarnation (16 hex digits).
        incarnation: String,
    },
    /// A peer was not heard from within `cluster.unreachable_after_ms`
    /// (dead, frozen or cut off): this node marked it unreachable.
    #[serde(rename = "cluster.member_unreachable")]
    MemberUnreachable {
        /// The peer's node name.
        node: String,
        /// Its cluster address.
        address: String,
        /// Its incarnation (the one last heard).
        incarnation: String,
    },
    /// A peer stayed unreachable for `cluster.forget_after_ms`: this node
    /// dropped it from its view (no longer a member, no longer reconnected
    /// to; heard again, it joins anew).
    #[serde(rename = "cluster.member_forgotten")]
    MemberForgotten {
        /// The peer's node name.
        node: String,
        /// Its cluster address.
        address: String,
        /// Its incarnation (the one last heard).
        incarnation: String,
    },
    /// A peer marked unreachable was heard from again, with the same
    /// incarnation (it did not restart).
    #[serde(rename = "cluster.member_reachable")]
    MemberReachable {
        /// The peer's node name.
        node: String,
        /// Its cluster address.
        address: String,
        /// Its incarnation.
        incarnation: String,
    },
    /// A known peer was heard from with a new incarnation: it restarted and
    /// lost its in-memory state. It is reachable (no `member_reachable`
    /// follows).
    #[serde(rename = "cluster.member_restarted")]
    MemberRestarted {
        /// The peer's node name.
        node: String,
        /// Its cluster address.
        address: String,
        /// Its new incarnation.
        incarnation: String,
        /// The incarnation it had before.
        previous_incarnation: String,
    },
    /// A cluster rollout began (README "Rolling out a new version"): the
    /// library is the same file on every member, and this is the plan.
    /// Published on every member, as each step below.
    #[serde(rename = "rollout.started")]
    RolloutStarted {
        /// The rollout's id (unique per coordinator run).
        rollout: String,
        /// The module.
        module: String,
        /// The code version serving on the canary before.
        from: String,
        /// The library's path (the same file on every member).
        library: String,
        /// The node coordinating it.
        coordinator: String,
        /// The canary node.
        canary: String,
        /// The remaining nodes, wave by wave.
        waves: Vec<Vec<String>>,
    },
    /// The canary took the new version (a normal reload there).
    #[serde(rename = "rollout.canary")]
    RolloutCanary {
        /// The rollout's id.
        rollout: String,
        /// The module.
        module: String,
        /// The canary node.
        node: String,
        /// The code version before.
        from: String,
        /// The code version now serving there.
        to: String,
        /// How long its reload took, in milliseconds.
        took_ms: u64,
    },
    /// The canary's figures over the gate window stayed within the
    /// thresholds against the old version's on the same node.
    #[serde(rename = "rollout.gate_passed")]
    RolloutGatePassed {
        /// The rollout's id.
        rollout: String,
        /// The module.
        module: String,
        /// The canary node.
        node: String,
        /// The figures compared, in words.
        reading: String,
    },
    /// The canary's figures crossed a threshold (or could not be read):
    /// the rollout halts.
    #[serde(rename = "rollout.gate_failed")]
    RolloutGateFailed {
        /// The rollout's id.
        rollout: String,
        /// The module.
        module: String,
        /// The canary node.
        node: String,
        /// Which threshold, with the figures.
        reason: String,
    },
    /// A wave of nodes took the new version (a normal reload on each, in
    /// parallel).
    #[serde(rename = "rollout.wave")]
    RolloutWave {
        /// The rollout's id.
        rollout: String,
        /// The module.
        module: String,
        /// The wave's number, from 1.
        wave: usize,
        /// Its nodes.
        nodes: Vec<String>,
        /// How long its reloads took, in milliseconds.
        took_ms: u64,
    },
    /// Every member runs the new version: the rollout is over.
    #[serde(rename = "rollout.committed")]
    RolloutCommitted {
        /// The rollout's id.
        rollout: String,
        /// The module.
        module: String,
        /// The code version now serving everywhere.
        to: String,
        /// The members.
        nodes: Vec<String>,
        /// How long the whole rollout took, in milliseconds.
        took_ms: u64,
    },
    /// A failed gate, a failed wave or a lost node stopped the rollout;
    /// every node that took the new version is rolled back.
    #[serde(rename = "rollout.halted")]
    RolloutHalted {
        /// The rollout's id.
        rollout: String,
        /// The module.
        module: String,
        /// Why.
        reason: String,
    },
    /// The nodes that had taken the new version are back on the old one
    /// (`unreached`: those whose rollback could not be asked in time; each
    /// rolls itself back when it finds its coordinator's rollout halted or
    /// lost).
    #[serde(rename = "rollout.rolled_back")]
    RolloutRolledBack {
        /// The rollout's id.
        rollout: String,
        /// The module.
        module: String,
        /// The nodes rolled back.
        nodes: Vec<String>,
        /// The nodes whose rollback was tried and failed, each as "NODE:
        /// why" (the new version keeps serving there).
        #[serde(default)]
        failed: Vec<String>,
        /// The nodes that could not be reached for it.
        unreached: Vec<String>,
    },
    /// Messages this node sent to a peer were not acknowledged when the
    /// peer was marked unreachable or restarted: they are not known to be
    /// delivered (docs/semantics.md "Sending to another node"). molt does
    /// not send them again.
    #[serde(rename = "cluster.messages_undelivered")]
    MessagesUndelivered {
        /// The peer's node name.
        node: String,
        /// How many messages.
        count: u64,
        /// `unreachable`, `restarted` or `reconnected`.
        reason: String,
    },
    /// An entry could not be appended to the history's audit file (disk
    /// full, out of file descriptors, ...): it is kept in memory only.
    #[serde(rename = "history.write_failed")]
    HistoryWriteFailed {
        /// The audit file.
        file: String,
        /// The error.
        error: String,
    },
}

impl Event {
    /// The event's kind, as the README lists them (`module.reloaded`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ModuleLoaded { .. } => "module.loaded",
            Event::ModuleReloaded { .. } => "module.reloaded",
            Event::ReloadPhase { .. } => "module.reload_phase",
            Event::ModuleReloadFailed { .. } => "module.reload_failed",
            Event::ModuleBuilding { .. } => "module.building",
            Event::ModuleRestarted { .. } => "module.restarted",
            Event::ModuleRolledBack { .. } => "module.rolled_back",
            Event::ModuleRehearsed { .. } => "module.rehearsed",
            Event::ConfigApplied { .. } => "config.applied",
            Event::ConfigRejected { .. } => "config.rejected",
            Event::Published { .. } => "module.published",
            Event::HistoryWriteFailed { .. } => "history.write_failed",
            Event::KeyedSwitchFailed { .. } => "keyed.switch_failed",
            Event::MemberJoined { .. } => "cluster.member_joined",
            Event::MemberUnreachable { .. } => "cluster.member_unreachable",
            Event::MemberForgotten { .. } => "cluster.member_forgotten",
            Event::MemberReachable { .. } => "cluster.member_reachable",
            Event::MemberRestarted { .. } => "cluster.member_restarted",
            Event::RolloutStarted { .. } => "rollout.started",
            Event::RolloutCanary { .. } => "rollout.canary",
            Event::RolloutGatePassed { .. } => "rollout.gate_passed",
            Event::RolloutGateFailed { .. } => "rollout.gate_failed",
            Event::RolloutWave { .. } => "rollout.wave",
            Event::RolloutCommitted { .. } => "rollout.committed",
            Event::RolloutHalted { .. } => "rollout.halted",
            Event::RolloutRolledBack { .. } => "rollout.rolled_back",
            Event::MessagesUndelivered { .. } => "cluster.messages_undelivered",
        }
    }

    /// Whether this is reload progress (`module.reload_phase`): for
    /// operators who ask for it, never delivered to modules.
    pub fn is_progress(&self) -> bool {
        matches!(self, Event::ReloadPhase { .. })
    }

    /// The module the event is about ("" for config, history and cluster
    /// events).
    pub fn module(&self) -> &str {
        match self {
            Event::ConfigApplied { .. }
            | Event::ConfigRejected { .. }
            | Event::HistoryWriteFailed { .. }
            | Event::MemberJoined { .. }
            | Event::MemberUnreachable { .. }
            | Event::MemberForgotten { .. }
            | Event::MemberReachable { .. }
            | Event::MemberRestarted { .. }
            | Event::MessagesUndelivered { .. } => "",
            Event::ModuleLoaded { name, .. }
            | Event::ModuleReloaded { name, .. }
            | Event::ReloadPhase { name, .. }
            | Event::ModuleReloadFailed { name, .. }
            | Event::ModuleBuilding { name }
            | Event::ModuleRestarted { name, .. }
            | Event::ModuleRolledBack { name, .. }
            | Event::ModuleRehearsed { name, .. } => name,
            Event::Published { module, .. }
            | Event::KeyedSwitchFailed { module, .. }
            | Event::RolloutStarted { module, .. }
            | Event::RolloutCanary { module, .. }
            | Event::RolloutGatePassed { module, .. }
            | Event::RolloutGateFailed { module, .. }
            | Event::RolloutWave { module, .. }
            | Event::RolloutCommitted { module, .. }
            | Event::RolloutHalted { module, .. }
            | Event::RolloutRolledBack { module, .. } => module,
        }
    }

    /// The event as a JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"kind\":\"{}\"}}", self.kind()))
    }
}

/// An event with the time it was published.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped {
    /// When.
    pub at: SystemTime,
    /// What.
    pub event: Event,
}

/// A subscription to the event bus. Lagging too far behind (more than the
/// bus capacity) skips events; [`EventStream::recv`] says how many.
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<Stamped>,
    /// Whether `module.reload_phase` progress events are delivered.
    progress: bool,
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// The next event.
    Event(Stamped),
    /// This many events were skipped because the subscriber fell behind.
    Lagged(u64),
    /// The node stopped.
    Closed,
}

impl EventStream {
    /// Waits for the next event.
    pub async fn recv(&mut self) -> Received {
        loop {
            return match self.rx.recv().await {
                Ok(e) if !self.progress && e.event.is_progress() => continue,
                Ok(e) => Received::Event(e),
                Err(broadcast::error::RecvError::Lagged(n)) => Received::Lagged(n),
                Err(broadcast::error::RecvError::Closed) => Received::Closed,
            };
        }
    }

    /// This subscription with (`true`) or without `module.reload_phase`
    /// progress events.
    pub fn with_progress(mut self, progress: bool) -> EventStream {
        self.progress = progress;
        self
    }

    /// A new subscription to the same bus, receiving the events published
    /// from now on. Unlike holding the bus, holding a stream does not keep
    /// the bus open: its subscriptions still see [`Received::Closed`] when
    /// the node stops.
    pub fn resubscribe(&self) -> EventStream {
        EventStream {
            rx: self.rx.resubscribe(),
            progress: self.progress,
        }
    }

    /// The next event, skipping lag notices; `None` once the node stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.recv().await {
                Received::Event(e) => return Some(e.event),
                Received::Lagged(_) => continue,
                Received::Closed => return None,
            }
        }
    }
}

/// The bus. Cloning shares it.
///
/// Besides its subscribers, every event goes straight into the mailbox of
/// each module instance whose library asked for events (`Module::EVENTS`),
/// before `publish` returns: a module sees an event before anything the
/// publisher does afterwards.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Stamped>,
    nodes: Arc<RwLock<Vec<Directory>>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.tx.receiver_count())
            .field("queued", &self.tx.len())
            .finish_non_exhaustive()
    }
}

impl EventBus {
    /// A bus keeping up to `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        EventBus {
            tx,
            nodes: Arc::new(RwLock::new(Vec::new())),
        }
    }

    /// Publishes an event to every current subscriber.
    pub fn publish(&self, event: Event) {
        tracing::debug!(target: "molt::events", kind = event.kind(), module = event.module(), "event");
        self.deliver_to_modules(&event);
        let _ = self.tx.send(Stamped {
            at: SystemTime::now(),
            event,
        });
    }

    /// Lets the modules of a node's directory receive events.
    pub(crate) fn attach(&self, directory: Directory) {
        if let Ok(mut nodes) = self.nodes.write() {
            nodes.push(directory);
        }
    }

    fn deliver_to_modules(&self, event: &Event) {
        let Ok(nodes) = self.nodes.read() else { return };
        let mut shared: Option<Arc<Event>> = None;
        for dir in nodes.iter() {
            let Ok(dir) = dir.read() else { continue };
            for slot in dir.values() {
                // Phase progress is for operators (the CLI, the HTTP
                // stream), not for modules.
                if !slot.wants_events.load(Ordering::Relaxed) || event.is_progress() {
                    continue;
                }
                // A module does not get the events it published itself.
                if matches!(event, Event::Published { module, .. } if **module == *slot.name) {
                    continue;
                }
                let ev = shared.get_or_insert_with(|| Arc::new(event.clone()));
                for route in slot.routes.load().iter() {
                    let _ = route.actor.send_message(ModuleMsg::Event(ev.clone()));
                }
                if let Some(keyed) = slot.keyed() {
                    keyed.event(ev);
                }
            }
        }
    }

    /// Subscribes to every event published from now on.
    /// The reload-phase progress events (`module.reload_phase`) are left
    /// out; [`EventStream::with_progress`] asks for them too.
    pub fn subscribe(&self) -> EventStream {
        EventStream {
            progress: false,
            rx: self.tx.subscribe(),
        }
    }
}
