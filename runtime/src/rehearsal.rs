//! Rehearsing a reload (a dry run, DESIGN.md §6 "Rehearsal"): what a reload
//! would do, found out without doing it.
//!
//! prepare (the same bounded load as a real reload) → each instance takes a
//! snapshot between messages (a `Rehearse` delivery through its mailbox, the
//! way checkpoints are taken: the only pause it costs) → off the actor, the
//! new library migrates a copy of that state into a throwaway behaviour,
//! verifies it and drops it (`copy`). Nothing is stopped, started or
//! swapped; messages keep flowing. The answer ([`RehearsalReport`]) gives the
//! versions, each instance's result (with the phase that failed), the state
//! sizes before and after, and the expected pause. A rehearsal publishes
//! `module.rehearsed`; it writes no history entry and counts as no reload in
//! the metrics. [`check_modules`] uses the same machinery to check the
//! modules of a config file.

mod copies;
mod copy;
mod instance;
mod modules_check;
mod scratch_ctx;

pub(crate) use copies::{ask_snapshots, copy_snapshots, Rehearse};
pub(crate) use instance::{on_instance, RehearseRequest};
pub use modules_check::{check_modules, ModuleCheck};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Limits;
use crate::directory::Route;
use crate::error::Error;
use crate::events::{Event, EventBus};
use crate::loader::{Library, Loader};
use crate::reload::{prepare, Phase, SwapMode};
use serde::{Deserialize, Serialize};

/// What a reload of a module would do, found out by a rehearsal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RehearsalReport {
    /// The module.
    pub module: String,
    /// The code version serving.
    pub from: String,
    /// The code version rehearsed.
    pub to: String,
    /// The state version serving.
    pub from_state_version: u32,
    /// The state version the rehearsed library writes (lower than
    /// `from_state_version`: the serving code would down-migrate).
    pub to_state_version: u32,
    /// Copy + dlopen + layout check of the new library, in microseconds.
    pub load_us: u64,
    /// Whether the reload would commit: every instance migrated and
    /// verified its copy.
    pub would_commit: bool,
    /// The longest instance's expected pause, in microseconds.
    pub expected_pause_us: u64,
    /// Each instance's rehearsal, by index.
    pub instances: Vec<InstanceRehearsal>,
}

impl RehearsalReport {
    /// The first instance that failed, if any.
    pub fn first_failure(&self) -> Option<&InstanceRehearsal> {
        self.instances.iter().find(|i| !i.ok)
    }
}

/// One instance's rehearsal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRehearsal {
    /// The instance index.
    pub instance: usize,
    /// Whether its state migrated and verified in the new library.
    pub ok: bool,
    /// The phase that failed (`drain`, `snapshot`, `migrate`, `verify`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::phase::known_or_none"
    )]
    pub phase: Option<Phase>,
    /// What failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The serving state's size (its snapshot), in bytes.
    pub state_bytes_before: u64,
    /// The migrated state's size, in bytes, when migrate succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_bytes_after: Option<u64>,
    /// How long the snapshot took, in microseconds.
    pub snapshot_us: u64,
    /// How long the new library's migrate took, in microseconds.
    pub migrate_us: u64,
    /// How long verify and the snapshot round trip took, in microseconds.
    pub verify_us: u64,
    /// The expected pause of this instance: snapshot + migrate + verify
    /// (`start` is not run: a rehearsal never starts the copy).
    pub expected_pause_us: u64,
}

/// What a rehearsal needs, taken from the supervisor's table.
pub(crate) struct Plan {
    pub module: String,
    pub bus: EventBus,
    /// The serving library.
    pub from: Arc<Library>,
    /// The library to rehearse.
    pub library: PathBuf,
    /// The config the new library would get.
    pub config: Arc<Vec<u8>>,
    pub routes: Vec<Route>,
    pub limits: Limits,
    pub loader: Loader,
}

/// Rehearses the reload and publishes `module.rehearsed`.
///
/// # Errors
/// [`Error::Load`] when the library does not load (the reload would fail
/// in prepare).
pub(crate) async fn run(plan: Plan) -> Result<RehearsalReport, Error> {
    let (bus, name, from) = (
        plan.bus.clone(),
        plan.module.clone(),
        plan.from.code_version.clone(),
    );
    let result = rehearse(plan).await;
    let event = match &result {
        Ok(r) => Event::ModuleRehearsed {
            name,
            from,
            to: r.to.clone(),
            ok: r.would_commit,
            expected_pause_us: r.expected_pause_us,
            error: r.first_failure().map(|i| {
                format!(
                    "instance {} failed in {}: {}",
                    i.instance,
                    i.phase.map_or("?", Phase::as_str),
                    i.error.as_deref().unwrap_or("")
                )
            }),
        },
        Err(e) => Event::ModuleRehearsed {
            name,
            from,
            to: String::new(),
            ok: false,
            expected_pause_us: 0,
            error: Some(format!("prepare: {e}")),
        },
    };
    bus.publish(event);
    result
}

async fn rehearse(plan: Plan) -> Result<RehearsalReport, Error> {
    let target = prepare::load(&plan.loader, plan.library.clone(), &plan.module).await?;
    let mode = if target.state_version < plan.from.state_version {
        SwapMode::Downgrade {
            to: target.state_version,
        }
    } else {
        SwapMode::Upgrade
    };
    let module: Arc<str> = Arc::from(plan.module.as_str());
    let what = copies::Rehearse {
        module,
        target: target.clone(),
        config: plan.config.clone(),
        mode,
        limits: plan.limits.clone(),
    };
    let copies = copies::rehearse_routes(&plan.routes, &what).await;
    let instances: Vec<InstanceRehearsal> = copies
        .into_iter()
        .map(|c| {
            let (snapshot_us, migrate_us, verify_us) = (
                micros(c.snapshot),
                micros(c.copy.migrate),
                micros(c.copy.verify),
            );
            InstanceRehearsal {
                instance: molt_abi::index::from_ffi(c.index),
                ok: c.copy.failure.is_none(),
                phase: c.copy.failure.as_ref().map(|f| f.phase),
                error: c.copy.failure.map(|f| f.error),
                state_bytes_before: c.before,
                state_bytes_after: c.copy.bytes_after,
                snapshot_us,
                migrate_us,
                verify_us,
                expected_pause_us: snapshot_us + migrate_us + verify_us,
            }
        })
        .collect();
    Ok(RehearsalReport {
        module: plan.module,
        from: plan.from.code_version.clone(),
        to: target.code_version.clone(),
        from_state_version: plan.from.state_version,
        to_state_version: target.state_version,
        load_us: micros(target.load_time),
        would_commit: !instances.is_empty() && instances.iter().all(|i| i.ok),
        expected_pause_us: instances
            .iter()
            .map(|i| i.expected_pause_us)
            .max()
            .unwrap_or(0),
        instances,
    })
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}
