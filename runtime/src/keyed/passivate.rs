//! Passivation: a key's actor idle for `idle_passivate` (no message sent to
//! it, nothing in its mailbox) takes a last snapshot through its mailbox and
//! stops; the host keeps the snapshot, and the key's next message activates
//! it again from there. A committed reload's switch-over ([`super::switch`])
//! takes the same path for an actor that could not switch in place, with an
//! activation by the new code right after.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ractor::ActorId;
use tokio::sync::oneshot;

use super::{deliver, Entry, Keyed, Seen};
use crate::module_actor::ModuleMsg;

/// Runs until the registry is closed or dropped: every quarter of the idle
/// time (at least every 5 ms, at most every second), passivates the actors
/// idle that long. Skips a round while a reload holds the gate.
pub(super) fn spawn_sweeper(keyed: &Arc<Keyed>) {
    let weak = Arc::downgrade(keyed);
    let every =
        (keyed.spec.idle_passivate / 4).clamp(Duration::from_millis(5), Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(keyed) = Weak::upgrade(&weak) else {
                return;
            };
            if keyed.closed.load(Ordering::Acquire) {
                return;
            }
            sweep(&keyed).await;
        }
    });
}

/// One round: passivates every idle actor, a bounded number at a time.
async fn sweep(keyed: &Arc<Keyed>) {
    let Ok(_open) = keyed.gate.clone().try_read_owned() else {
        return;
    };
    let idle = keyed.spec.idle_passivate;
    let due: Vec<Vec<u8>> = {
        let mut t = keyed.table();
        t.fold_hot();
        let now = Instant::now();
        t.keys
            .iter_mut()
            .filter_map(|(k, e)| match e {
                Entry::Live { route, seen } => (seen.idle_at(now) >= idle
                    && route.shared.mailbox_depth() == 0)
                    .then(|| k.clone()),
                _ => None,
            })
            .collect()
    };
    for batch in due.chunks(256) {
        futures_util::future::join_all(batch.iter().map(|k| passivate(keyed, k, Why::Idle))).await;
    }
}

/// Why a key's actor takes its last snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// It has been idle for `idle_passivate`: it stays passivated unless a
    /// message came while it took its snapshot.
    Idle,
    /// A committed reload's switch-over ([`super::switch`]) of an actor that
    /// could not switch in place: activated again at once from its snapshot. Only
    /// the actor that voted (`voted`) is switched; a key passivated or
    /// activated again since then already runs the serving code. `fresh` (a
    /// reset): the new actor starts with `init`, the snapshot is dropped.
    SwitchOver { voted: ActorId, fresh: bool },
}

/// What [`passivate`] did.
#[derive(Debug)]
pub(super) enum Passivated {
    /// Nothing: the key is not live (or not idle, or not the actor asked for).
    Skipped,
    /// The key is passivated: the host keeps its snapshot.
    Kept,
    /// The actor took no snapshot (or none in time): it keeps serving.
    Failed(String),
    /// The key was activated again from its snapshot: how long it did not
    /// serve (from the snapshot's start to the waiting messages enqueued on
    /// the new actor), or why the activation failed (the snapshot is then
    /// the key's passivated entry and the waiting calls failed).
    Activated(Result<Duration, String>),
}

/// Passivates `key` if it is still live (and, for [`Why::Idle`], idle; the
/// gate is held by the caller). Messages sent meanwhile wait in the entry;
/// the key is activated again at once from the snapshot just taken if any
/// did, or always for [`Why::SwitchOver`]. The sweeper and a reload's
/// switch-over share this one path.
pub(super) async fn passivate(keyed: &Arc<Keyed>, key: &[u8], why: Why) -> Passivated {
    let (tx, rx) = oneshot::channel();
    let route = {
        let mut t = keyed.table();
        t.fold_hot();
        let Some(entry) = t.keys.get_mut(key) else {
            return Passivated::Skipped;
        };
        let Entry::Live { route, seen } = entry else {
            return Passivated::Skipped;
        };
        let wanted = match why {
            Why::Idle => {
                seen.idle_at(Instant::now()) >= keyed.spec.idle_passivate
                    && route.shared.mailbox_depth() == 0
            }
            Why::SwitchOver { voted, .. } => route.actor.get_id() == voted,
        };
        if !wanted {
            return Passivated::Skipped;
        }
        let route = route.clone();
        if route.actor.send_message(ModuleMsg::Passivate(tx)).is_err() {
            return Passivated::Skipped;
        }
        *entry = Entry::Passivating { queue: Vec::new() };
        t.leaving_live(key);
        route
    };
    let taken = match tokio::time::timeout(keyed.limits.prepare_timeout, rx).await {
        Ok(Ok(Ok(cp))) => Ok(cp),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err("the actor stopped".to_string()),
        Err(_) => Err("no snapshot within prepare_timeout".to_string()),
    };
    let again = {
        let mut t = keyed.table();
        let queue = match t.keys.remove(key) {
            Some(Entry::Passivating { queue }) => queue,
            _ => Vec::new(),
        };
        match taken {
            Ok((cp, began)) => {
                keyed.passivations.fetch_add(1, Ordering::Relaxed);
                if queue.is_empty() && why == Why::Idle {
                    t.live -= 1;
                    t.passivated += 1;
                    t.keys.insert(key.to_vec(), Entry::Passivated(cp));
                    None
                } else {
                    // Still counted live: it is activated again right away.
                    t.keys.insert(key.to_vec(), Entry::Activating { queue });
                    Some((cp, began))
                }
            }
            Err(e) => {
                tracing::warn!(target: "molt::keyed", module = &*keyed.module, key = %String::from_utf8_lossy(key), "passivation failed, the actor keeps serving: {e}");
                for msg in queue {
                    let _ = deliver(&route, msg);
                }
                t.keys.insert(
                    key.to_vec(),
                    Entry::Live {
                        route,
                        seen: Seen::now(),
                    },
                );
                return Passivated::Failed(e);
            }
        }
    };
    match again {
        None => Passivated::Kept,
        Some((cp, began)) => Passivated::Activated(
            keyed
                .activate(
                    Arc::from(key),
                    (!matches!(why, Why::SwitchOver { fresh: true, .. })).then_some(cp),
                )
                .await
                .map(|enqueued| enqueued.saturating_duration_since(began)),
        ),
    }
}
