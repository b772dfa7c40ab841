//! A reload of a keyed module (docs/semantics.md "Keyed actors"), in two
//! rounds. The coordinator freezes the registry (no activation or
//! passivation runs until the decision), so the live set it decides on is
//! the live set at the freeze.
//!
//! Round 1, the vote: the template instance takes the binding `Swap`; every
//! live actor instead takes a snapshot between two of its messages and goes
//! on serving the old code, while off the actors the new library migrates
//! and verifies a copy of each snapshot ([`crate::rehearsal`]). The vote
//! commits when the template prepared and every copy passed; a rollback has
//! nothing to undo on the live actors: they never stopped serving.
//!
//! Round 2, after a commit ([`Frozen::finish`]): the new code activates keys
//! from then on, and every actor that voted is switched over in place,
//! between two of its messages ([`super::switch`]). Passivated snapshots are not touched: they keep
//! their state version and the code that activates them migrates them (on
//! activation), so a rollback leaves them readable by the old code as they
//! were.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::OwnedRwLockWriteGuard;

use super::switch::{switch_over, Target};
use super::{Entry, Keyed, Serving};
use crate::directory::Route;
use crate::history::KeySwitchFailure;
use crate::loader::Library;
use crate::rehearsal::{ask_snapshots, copy_snapshots, Rehearse};
use crate::reload::voters::{Ballot, Voters};
use crate::reload::{PhaseFailure, SwapMode};

/// A keyed module held still for a reload.
pub(crate) struct Frozen {
    keyed: Arc<Keyed>,
    gate: OwnedRwLockWriteGuard<()>,
    /// The live actors at the freeze, with their keys: the voters.
    live: Vec<(Vec<u8>, Route)>,
    /// Each voter's snapshot pause in the vote, by instance index.
    snapshots: Arc<Mutex<HashMap<u32, Duration>>>,
}

/// What the live actors of a committed keyed reload went through.
#[derive(Debug, Default)]
pub(crate) struct KeyedOutcome {
    /// Each switched actor's time not serving: its vote's snapshot plus its
    /// switch-over (from its last snapshot to the waiting messages enqueued
    /// on the new actor).
    pub pauses: Vec<Duration>,
    /// The keys the switch-over could not move to the new code.
    pub failures: Vec<KeySwitchFailure>,
}

impl Keyed {
    /// Forgets every passivated snapshot (a committed reset).
    fn drop_passivated(&self) {
        let mut t = self.table();
        t.keys.retain(|_, e| !matches!(e, Entry::Passivated(_)));
        t.passivated = 0;
    }

    /// Waits for the activations and passivations under way, then holds
    /// the others back until [`Frozen::finish`].
    pub(crate) async fn freeze(self: &Arc<Self>) -> Frozen {
        let gate = self.gate.clone().write_owned().await;
        let live = self
            .table()
            .keys
            .iter()
            .filter_map(|(k, e)| match e {
                Entry::Live { route, .. } => Some((k.clone(), route.clone())),
                _ => None,
            })
            .collect();
        Frozen {
            keyed: self.clone(),
            gate,
            live,
            snapshots: Arc::default(),
        }
    }
}

impl Frozen {
    /// The live actors' vote, for the coordinator.
    pub(crate) fn voters(&self) -> Box<dyn Voters> {
        Box::new(LiveVoters {
            module: self.keyed.module.clone(),
            live: self.live.clone(),
            snapshots: self.snapshots.clone(),
        })
    }

    /// The reload is decided. A committed one (`to`: its library and
    /// config) makes the new code the code that activates keys, then
    /// switches every actor that voted over to it, with activations and
    /// passivations running again beside it. A rolled-back one only lets
    /// activations and passivations resume (those that waited run with the
    /// old code).
    ///
    /// `mode` is how the state was handed over: a committed reset drops the
    /// passivated snapshots and starts every switched actor with `init`.
    pub(crate) async fn finish(
        self,
        to: Option<(Arc<Library>, Arc<Vec<u8>>)>,
        mode: SwapMode,
    ) -> KeyedOutcome {
        let Frozen {
            keyed,
            gate,
            live,
            snapshots,
        } = self;
        let Some((lib, config)) = to else {
            return KeyedOutcome::default();
        };
        let mode = mode.toward(keyed.serving.load().lib.state_version, &lib);
        keyed.serving.store(Arc::new(Serving {
            lib: lib.clone(),
            config: config.clone(),
        }));
        if mode == SwapMode::Reset {
            keyed.drop_passivated();
        }
        // Held (read) like a sweep: a next reload waits for the switch-over.
        let _open = gate.downgrade();
        let index_of: HashMap<Vec<u8>, u32> = live
            .iter()
            .map(|(k, r)| (k.clone(), r.shared.index))
            .collect();
        let voted = live
            .into_iter()
            .map(|(k, r)| (k, r.actor.get_id()))
            .collect();
        let switched = switch_over(&keyed, voted, &Target { lib, config, mode }).await;
        let snapshots = snapshots.lock().map(|s| s.clone()).unwrap_or_default();
        KeyedOutcome {
            pauses: switched
                .pauses
                .into_iter()
                .map(|(key, pause)| {
                    let snapshot = index_of
                        .get(&key)
                        .and_then(|i| snapshots.get(i))
                        .copied()
                        .unwrap_or_default();
                    let pause = snapshot + pause;
                    crate::metrics::pause(&keyed.module, pause);
                    pause
                })
                .collect(),
            failures: switched.failures,
        }
    }
}

/// The live actors of a keyed module as voters.
struct LiveVoters {
    module: Arc<str>,
    live: Vec<(Vec<u8>, Route)>,
    snapshots: Arc<Mutex<HashMap<u32, Duration>>>,
}

impl Voters for LiveVoters {
    /// Asks every live actor for its snapshot before it returns (so
    /// whatever is sent to a key after the reload's `Swap` is handled after
    /// the key's vote), then votes on the copies.
    fn vote(self: Box<Self>, ballot: Ballot) -> BoxFuture<'static, Result<(), PhaseFailure>> {
        let routes: Vec<Route> = self.live.iter().map(|(_, r)| r.clone()).collect();
        if ballot.mode == SwapMode::Reset {
            // No state is carried over: nothing of theirs to rehearse (the
            // template instance's swap runs the new code's `init`).
            return async { Ok(()) }.boxed();
        }
        let asked = ask_snapshots(&routes, ballot.mode);
        async move {
            let what = Rehearse {
                module: self.module.clone(),
                target: ballot.target,
                config: ballot.config,
                mode: ballot.mode,
                limits: ballot.limits,
            };
            let copies = copy_snapshots(asked, &what).await;
            if let Ok(mut s) = self.snapshots.lock() {
                s.extend(copies.iter().map(|c| (c.index, c.snapshot)));
            }
            // Copies come back in the routes' order.
            for ((key, _), copied) in self.live.iter().zip(copies) {
                if let Some(f) = copied.copy.failure {
                    return Err(PhaseFailure {
                        error: format!("key {:?}: {}", String::from_utf8_lossy(key), f.error),
                        ..f
                    });
                }
            }
            Ok(())
        }
        .boxed()
    }
}
