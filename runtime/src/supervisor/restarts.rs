//! Restarts (docs/semantics.md "Restarts and checkpoints"): an instance whose
//! actor failed is respawned from its newest checkpoint; every restart (in
//! place, by the actor itself, or here) publishes `module.restarted` and is
//! recorded in the history with what it restored and how old that state was.

use super::*;
use crate::history::Restored;
use crate::reload::force::Respawn;
use crate::restart::{RestartSink, Restarted};

impl Supervisor {
    /// Where instances report their restarts in place: a message to this
    /// supervisor (the history is its own).
    pub(super) fn restart_sink(myself: &ActorRef<SupervisorMsg>) -> RestartSink {
        let me = myself.clone();
        Arc::new(move |r: Restarted| {
            let _ = me.send_message(SupervisorMsg::Internal(InternalMsg(Internal::Restarted(
                Box::new(r),
            ))));
        })
    }

    /// Publishes `module.restarted` and records a `restart` history entry.
    pub(super) fn record_restart(st: &mut SupState, r: Restarted) {
        crate::metrics::restarted(&r.module, r.restored);
        let state_age_ms = r.state_age.as_millis() as u64;
        st.bus.publish(Event::ModuleRestarted {
            name: r.module.clone(),
            instance: molt_abi::index::from_ffi(r.instance),
            reason: r.reason.clone(),
            restored: r.restored.to_string(),
            state_age_ms,
            forced: r.forced,
            stuck_messages: r.stuck_messages,
        });
        // A forced reload's restarts are in its own history entry.
        if r.forced {
            return;
        }
        st.history.push(HistoryEntry {
            id: 0,
            at: SystemTime::now(),
            module: r.module,
            action: Action::Restart,
            trigger: Trigger::Node,
            from: r.code_version.clone(),
            to: r.code_version,
            outcome: Outcome::Committed,
            phase: None,
            error: Some(format!("instance {}: {}", r.instance, r.reason)),
            pause_us: 0,
            restored: Some(Restored {
                from: r.restored.to_string(),
                state_age_ms,
                forced: false,
                instances: vec![molt_abi::index::from_ffi(r.instance)],
                stuck_messages: 0,
            }),
            keys_kept_passivated: 0,
        });
    }

    /// An instance's actor failed (a host bug: module panics are caught in
    /// the library). Respawn it from its newest checkpoint; messages that
    /// were in its mailbox are lost with the actor.
    pub(super) async fn restart_failed(
        myself: &ActorRef<SupervisorMsg>,
        st: &mut SupState,
        cell: ractor::ActorCell,
        reason: String,
    ) {
        let id = cell.get_id();
        let found = st.table.iter().find_map(|(name, e)| {
            e.slot
                .routes
                .load()
                .iter()
                .find(|r| r.actor.get_id() == id)
                .map(|r| (name.clone(), r.shared.clone()))
        });
        let Some((name, shared)) = found else { return };
        let (slot, config) = {
            let e = &st.table[&name];
            (e.slot.clone(), e.config.clone())
        };
        let Some(checkpoint) = shared.checkpoint() else {
            return;
        };
        let (restored, age) = (checkpoint.source(), checkpoint.at.elapsed());
        tracing::error!(target: "molt::supervisor", module = %name, instance = shared.index, restored, state_age_ms = age.as_millis() as u64, "instance actor failed ({reason}); restarting it from its newest checkpoint");
        shared.restarts.fetch_add(1, Ordering::Relaxed);
        let handled = shared.handled.load(Ordering::Relaxed);
        let lost = shared.mailbox_depth();
        shared.enqueued.store(handled, Ordering::Relaxed);
        let module: Arc<str> = Arc::from(name.as_str());
        let lib = checkpoint.lib.clone();
        let code_version = lib.code_version.clone();
        match Self::spawn_instance(
            myself,
            st,
            &module,
            lib,
            config,
            shared.clone(),
            StartFrom::Checkpoint(checkpoint),
        )
        .await
        {
            Ok(route) => {
                if slot.replace(shared.index, route.clone()).is_err() {
                    // The module is being removed or the node stops.
                    route.actor.stop(None);
                    return;
                }
                Self::record_restart(
                    st,
                    Restarted {
                        module: name,
                        instance: shared.index,
                        code_version,
                        reason: format!("its actor failed ({reason}); {lost} message(s) in its mailbox were lost"),
                        restored,
                        state_age: age,
                        forced: false,
                        stuck_messages: 0,
                    },
                );
            }
            Err(e) => {
                tracing::error!(target: "molt::supervisor", module = %name, "restart failed: {e}")
            }
        }
    }

    /// What a forced reload of `module` needs to replace a hung instance.
    pub(super) fn respawn(
        myself: &ActorRef<SupervisorMsg>,
        node: Arc<str>,
        bus: EventBus,
        directory: Directory,
        limits: Limits,
        module: &str,
        slot: Arc<ModuleSlot>,
    ) -> Respawn {
        Respawn {
            supervisor: myself.get_cell(),
            slot,
            node,
            module: Arc::from(module),
            bus,
            directory,
            limits,
            on_restart: Self::restart_sink(myself),
        }
    }

    /// A forced reload's restores: one `module.restarted` event each, and
    /// the summary for its history entry and report (`None` when every
    /// instance handed over its state).
    pub(super) fn forced_restores(
        st: &mut SupState,
        module: &str,
        outcome: &reload::Outcome,
    ) -> Option<Restored> {
        if outcome.restored.is_empty() {
            return None;
        }
        let code_version = outcome
            .target
            .as_ref()
            .map(|t| t.code_version.clone())
            .unwrap_or_default();
        let mut summary = Restored {
            from: "checkpoint".into(),
            state_age_ms: 0,
            forced: true,
            instances: Vec::new(),
            stuck_messages: 0,
        };
        for r in &outcome.restored {
            let state_age_ms = r.state_age.as_millis() as u64;
            summary.state_age_ms = summary.state_age_ms.max(state_age_ms);
            summary.instances.push(molt_abi::index::from_ffi(r.index));
            summary.stuck_messages += r.stuck_messages;
            if r.restored == "start" {
                summary.from = "start".into();
            }
            Self::record_restart(
                st,
                Restarted {
                    module: module.to_string(),
                    instance: r.index,
                    code_version: code_version.clone(),
                    reason: format!("forced reload: {}", r.reason),
                    restored: r.restored,
                    state_age: r.state_age,
                    forced: true,
                    stuck_messages: r.stuck_messages,
                },
            );
        }
        summary.instances.sort_unstable();
        Some(summary)
    }
}
