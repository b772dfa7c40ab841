//! Round 2 of a keyed reload (docs/semantics.md "Keyed actors"): once the
//! reload is committed and the new code serves activations, every actor
//! that voted is switched over. Each gets a `SwitchOver` through its mailbox
//! (all at once, like a reload's `Swap`): the messages ahead of it are
//! handled by the old code; then, between two messages, the actor hands its
//! state to the new code and serves on with it
//! ([`crate::reload::switch_over`]); the messages behind it wait in its
//! mailbox, in order. Its pause is that work alone.
//!
//! An actor whose switch fails keeps serving the old code, and its key is
//! then passivated and activated again with the new code instead
//! ([`super::passivate`], the sweeper's path): the messages ahead of its
//! `Passivate` are handled by the old code, the new code gets its exact
//! last snapshot, and if the new code refuses it (or `start` fails) the key
//! stays passivated with that snapshot and its waiting calls fail with the
//! cause.

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorId;
use tokio::sync::oneshot;

use super::passivate::{passivate, Passivated, Why};
use super::{Entry, Keyed};
use crate::events::Event;
use crate::history::KeySwitchFailure;
use crate::loader::Library;
use crate::module_actor::ModuleMsg;
use crate::reload::switch_over::SwitchRequest;
use crate::reload::{PhaseFailure, SwapMode};

/// What round 2 did.
#[derive(Debug, Default)]
pub(crate) struct Switched {
    /// Each switched key's pause, by key.
    pub pauses: Vec<(Vec<u8>, Duration)>,
    /// The keys not switched.
    pub failures: Vec<KeySwitchFailure>,
}

/// The committed code the actors switch to.
pub(crate) struct Target {
    pub lib: Arc<Library>,
    pub config: Arc<Vec<u8>>,
    pub mode: SwapMode,
}

type Reply = oneshot::Receiver<Result<Duration, PhaseFailure>>;

/// Switches every actor in `voted` (key, the actor that voted) over to
/// `to`; the gate is held (read) by the caller. A key no longer live with
/// that actor (passivated or activated again meanwhile) already runs the
/// serving code and is skipped.
pub(super) async fn switch_over(
    keyed: &Arc<Keyed>,
    voted: Vec<(Vec<u8>, ActorId)>,
    to: &Target,
) -> Switched {
    let asked: Vec<(Vec<u8>, ActorId, Reply)> = voted
        .into_iter()
        .filter_map(|(key, actor)| {
            let reply = ask(keyed, &key, actor, to)?;
            Some((key, actor, reply))
        })
        .collect();
    let fresh = to.mode == SwapMode::Reset;
    let mut out = Switched::default();
    // Every actor switches at once: wait for all of them together, so two
    // hung actors cost one `prepare_timeout`, not two.
    let limit = keyed.limits.prepare_timeout;
    let replies =
        futures_util::future::join_all(asked.into_iter().map(|(key, actor, reply)| async move {
            (key, actor, tokio::time::timeout(limit, reply).await)
        }))
        .await;
    for (key, actor, reply) in replies {
        let failed = match reply {
            Ok(Ok(Ok(pause))) => {
                out.pauses.push((key, pause));
                continue;
            }
            // Stopped before it got there (shut down): nothing to switch.
            Ok(Err(_)) => continue,
            Ok(Ok(Err(failure))) => failure.error,
            Err(_) => format!(
                "no switch within limits.prepare_timeout ({:?})",
                keyed.limits.prepare_timeout
            ),
        };
        // The actor still runs the old code: passivate it and activate the
        // key again with the new code from its exact last snapshot.
        tracing::info!(target: "molt::keyed", module = &*keyed.module, key = %String::from_utf8_lossy(&key), "the actor could not switch to the new code ({failed}); passivating and activating it again");
        let why = Why::SwitchOver {
            voted: actor,
            fresh,
        };
        let (error, passivated) = match passivate(keyed, &key, why).await {
            Passivated::Activated(Ok(pause)) => {
                out.pauses.push((key, pause));
                continue;
            }
            Passivated::Skipped | Passivated::Kept => continue,
            Passivated::Activated(Err(e)) => (e, true),
            Passivated::Failed(e) => (
                format!("{failed}; and it took no snapshot ({e}): it serves on with the old code"),
                false,
            ),
        };
        report(keyed, &mut out, &key, error, passivated);
    }
    out
}

/// Sends `SwitchOver` to `key`'s actor if it is still the one that voted.
fn ask(keyed: &Keyed, key: &[u8], actor: ActorId, to: &Target) -> Option<Reply> {
    let t = keyed.table();
    let Some(Entry::Live { route, .. }) = t.keys.get(key) else {
        return None;
    };
    if route.actor.get_id() != actor {
        return None;
    }
    let (tx, rx) = oneshot::channel();
    let req = SwitchRequest {
        target: to.lib.clone(),
        config: to.config.clone(),
        mode: to.mode,
        reply: tx,
    };
    route
        .actor
        .send_message(ModuleMsg::SwitchOver(Box::new(req)))
        .ok()?;
    Some(rx)
}

fn report(keyed: &Keyed, out: &mut Switched, key: &[u8], error: String, passivated: bool) {
    let shown = String::from_utf8_lossy(key).into_owned();
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
