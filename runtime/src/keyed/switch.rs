//! Round 2 of a keyed reload (docs/semantics.md "Keyed actors"): once the
//! reload is committed and the new code serves activations, every actor
//! that voted is switched over. That is a passivation followed at once by
//! an activation with the new code ([`super::passivate`], the sweeper's
//! path): its messages ahead of the `Passivate` are handled by the old code,
//! those sent meanwhile wait in order in its entry and go to the new actor.
//! A bounded number of keys switch at once, so each key's pause stays short
//! and the whole round is bounded by the live count.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ractor::ActorId;

use super::passivate::{passivate, Passivated, Why};
use super::Keyed;
use crate::events::Event;
use crate::history::KeySwitchFailure;

/// Keys switched at once. A key's wait for its actor to reach the
/// `Passivate` (the messages ahead of it, handled by the old code) is no
/// pause, and under load it is most of the time a switch takes: many keys
/// wait at once, as the sweeper's batches do.
const SWITCH_AT_ONCE: usize = 256;

/// What round 2 did.
#[derive(Debug, Default)]
pub(crate) struct Switched {
    /// Each switched key's pause, by key.
    pub pauses: Vec<(Vec<u8>, Duration)>,
    /// The keys not switched.
    pub failures: Vec<KeySwitchFailure>,
}

/// Switches every actor in `voted` (key, the actor that voted) over to the
/// serving code; the gate is held (read) by the caller. A key no longer
/// live with that actor (passivated or activated again meanwhile) already
/// runs the serving code and is skipped.
///
/// `fresh` (a reset): each new actor starts with `init`, its old state
/// dropped.
pub(super) async fn switch_over(
    keyed: &Arc<Keyed>,
    voted: Vec<(Vec<u8>, ActorId)>,
    fresh: bool,
) -> Switched {
    let done: Vec<(Vec<u8>, Passivated)> = futures_util::stream::iter(voted)
        .map(|(key, actor)| async move {
            let why = Why::SwitchOver {
                voted: actor,
                fresh,
            };
            let did = passivate(keyed, &key, why).await;
            (key, did)
        })
        .buffer_unordered(SWITCH_AT_ONCE)
        .collect()
        .await;
    let mut out = Switched::default();
    for (key, did) in done {
        let (error, passivated) = match did {
            Passivated::Activated(Ok(pause)) => {
                out.pauses.push((key, pause));
                continue;
            }
            Passivated::Skipped | Passivated::Kept => continue,
            Passivated::Activated(Err(e)) => (e, true),
            Passivated::Failed(e) => (format!("its actor took no snapshot: {e}"), false),
        };
        let shown = String::from_utf8_lossy(&key).into_owned();
        tracing::warn!(target: "molt::keyed", module = &*keyed.module, key = %shown, passivated, "switch-over to the new code failed: {error}");
        keyed.bus.publish(Event::KeyedSwitchFailed {
            module: keyed.module.to_string(),
            key: shown.clone(),
            error: error.clone(),
            passivated,
        });
        out.failures.push(KeySwitchFailure {
            key: shown,
            error,
            passivated,
        });
    }
    out
}
