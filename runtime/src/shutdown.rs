//! Draining modules at shutdown and at removal (issue #8 item 8): every
//! instance handles what is already in its mailbox, then stops (its `stop`
//! runs), instances and modules in parallel, within a bound; what could not
//! be handled in time is counted per instance and reported.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use ractor::ActorRef;

use crate::directory::{ModuleSlot, Route};
use crate::module_actor::ModuleMsg;

/// How long, after the drain's bound, an instance stopped mid-queue may take
/// to finish the message it is handling before it is counted as unhandled.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// What a node shutdown ([`crate::Node::shutdown`]) left unhandled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// One entry per module, in name order.
    pub modules: Vec<ModuleDrain>,
    /// Whether the drain ran into `limits.shutdown_timeout`.
    pub timed_out: bool,
    /// How long the drain took.
    pub took: Duration,
}

/// One module's drain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleDrain {
    /// The module's name.
    pub module: String,
    /// Its instances (and the forwarders of instances a scale-down removed).
    pub instances: Vec<InstanceDrain>,
}

/// One instance's drain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceDrain {
    /// The instance index.
    pub index: usize,
    /// A forwarder left by a scale-down (its messages were on their way to
    /// instance `index % count`), not a serving instance.
    pub forwarder: bool,
    /// Messages that were in its mailbox and were not handled.
    pub unhandled: u64,
}

impl ShutdownReport {
    /// Messages not handled, over every module.
    pub fn unhandled(&self) -> u64 {
        self.modules.iter().map(ModuleDrain::unhandled).sum()
    }

    /// One module's drain.
    pub fn module(&self, name: &str) -> Option<&ModuleDrain> {
        self.modules.iter().find(|m| m.module == name)
    }
}

impl ModuleDrain {
    /// Messages of this module not handled.
    pub fn unhandled(&self) -> u64 {
        self.instances.iter().map(|i| i.unhandled).sum()
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.unhandled();
        if total == 0 {
            return write!(f, "every queued message was handled ({:?})", self.took);
        }
        write!(f, "{total} queued message(s) not handled")?;
        if self.timed_out {
            write!(f, " within the shutdown timeout")?;
        }
        let mut sep = ": ";
        for m in &self.modules {
            for i in m.instances.iter().filter(|i| i.unhandled > 0) {
                let what = if i.forwarder { " (forwarding)" } else { "" };
                write!(f, "{sep}{}#{}{what} {}", m.module, i.index, i.unhandled)?;
                sep = ", ";
            }
        }
        Ok(())
    }
}

/// Closes every slot (new sends fail with not running) and drains them all
/// within `timeout`.
pub(crate) async fn drain_slots(
    slots: Vec<(String, Arc<ModuleSlot>)>,
    timeout: Duration,
) -> ShutdownReport {
    let started = Instant::now();
    let mut taken: Vec<(String, Vec<Route>, Vec<Route>)> = slots
        .into_iter()
        .map(|(name, slot)| {
            let (forwarders, routes) = slot.close();
            (name, forwarders, routes)
        })
        .collect();
    taken.sort_by(|a, b| a.0.cmp(&b.0));
    if taken.iter().all(|(_, f, r)| f.is_empty() && r.is_empty()) {
        return ShutdownReport::default();
    }
    let all = join_all(taken.iter().map(|(_, f, r)| drain_module(f, r)));
    let timed_out = tokio::time::timeout(timeout, all).await.is_err();
    if timed_out {
        // Stop what is left: each finishes the message it is in (within the
        // grace), the rest of its mailbox is dropped and counted below.
        let left = taken
            .iter()
            .flat_map(|(_, f, r)| f.iter().chain(r.iter()))
            .map(|route| stop(&route.actor));
        join_all(left).await;
    }
    let modules = taken
        .into_iter()
        .map(|(module, forwarders, routes)| ModuleDrain {
            module,
            instances: routes
                .iter()
                .map(|r| count(r, false))
                .chain(forwarders.iter().map(|r| count(r, true)))
                .collect(),
        })
        .collect();
    let report = ShutdownReport {
        modules,
        timed_out,
        took: started.elapsed(),
    };
    if report.unhandled() == 0 {
        tracing::info!(target: "molt::supervisor", "drained: {report}");
    } else {
        tracing::warn!(target: "molt::supervisor", unhandled = report.unhandled(), "drained: {report}");
    }
    report
}

/// The forwarders first, oldest first (each passes its messages on into a
/// later one or a serving instance, which must still take them), then the
/// serving instances in parallel.
async fn drain_module(forwarders: &[Route], routes: &[Route]) {
    for f in forwarders {
        let _ = f.actor.drain_and_wait(None).await;
    }
    join_all(routes.iter().map(|r| r.actor.drain_and_wait(None))).await;
}

async fn stop(actor: &ActorRef<ModuleMsg>) {
    if actor.get_status() != ractor::ActorStatus::Stopped {
        let _ = actor.stop_and_wait(None, Some(STOP_GRACE)).await;
    }
}

fn count(route: &Route, forwarder: bool) -> InstanceDrain {
    let s = &route.shared;
    let left = s.mailbox_depth();
    InstanceDrain {
        index: molt_abi::index::from_ffi(s.index),
        forwarder,
        unhandled: if forwarder {
            left + s.failed.load(Ordering::Relaxed)
        } else {
            left
        },
    }
}
