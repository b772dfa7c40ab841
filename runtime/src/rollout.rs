//! Cluster rollouts (README "Rolling out a new version", docs/semantics.md
//! "Rollouts"): one module, one library file, every member of the cluster.
//!
//! The node that gets the request coordinates (`rollout/coordinator.rs`): it checks
//! that every member has the same file at the path (`rollout/plan.rs`), reloads a
//! canary, watches it through a gate against the old version's figures on
//! the same node (`rollout/gate.rs`), then reloads the other members in waves
//! (`rollout/waves.rs`). A failed gate, a failed wave or a member lost halts it and
//! rolls back every node that took the new version. Each node's rollout
//! agent (`rollout/agent.rs`) does what the coordinator asks on its node (a normal
//! reload or rollback there) and holds a lease (`rollout/lease.rs`) on an
//! uncommitted new version: it rolls back on its own when its coordinator
//! is lost.
//!
//! The types here are plain data (the admin and HTTP surfaces use them);
//! the machinery needs molt-runtime's `cluster` feature.

#[cfg(feature = "cluster")]
pub(crate) mod agent;
#[cfg(feature = "cluster")]
mod coordinator;
// Without the feature only the reading type is used.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub mod gate;
#[cfg(feature = "cluster")]
mod lease;
#[cfg(feature = "cluster")]
mod plan;
#[cfg(feature = "cluster")]
mod waves;
#[cfg(feature = "cluster")]
pub(crate) mod wire;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use gate::GateReading;

/// A rollout to start: `POST /rollout`'s body, `molt rollout NAME --library
/// PATH`. What it leaves out comes from the coordinating node's
/// `[rollout]` config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// The module.
    pub module: String,
    /// The library, an absolute path: the same file (content hash) must be
    /// at this path on every member.
    pub library: PathBuf,
    /// The canary node; default: the coordinating node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// How many nodes each wave takes (`rollout.wave_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave_size: Option<usize>,
    /// How long the gate watches the canary, in milliseconds
    /// (`rollout.gate_window_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_window_ms: Option<u64>,
    /// How long each wave is watched before the next, in milliseconds
    /// (`rollout.wave_watch_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave_watch_ms: Option<u64>,
    /// How many messages the canary must handle in the gate window
    /// (`rollout.min_handled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_handled: Option<u64>,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutOutcome {
    /// Under way.
    Running,
    /// Every member runs the new version.
    Committed,
    /// Stopped; the nodes that took the new version were rolled back
    /// (those unreached roll back on their own).
    Halted,
}

/// One step of a rollout, as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStep {
    /// `check`, `canary`, `gate`, `wave N`, `commit`, `rollback`.
    pub step: String,
    /// The nodes it concerned.
    pub nodes: Vec<String>,
    /// When it began, in milliseconds since the rollout began.
    pub started_ms: u64,
    /// How long it took, in milliseconds.
    pub took_ms: u64,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it found, in words.
    pub detail: String,
}

/// A rollout, as its coordinator knows it: `GET /rollout`, `molt rollout
/// --status`, and the answer of `POST /rollout` once it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutReport {
    /// Its id (the coordinator's name and a number).
    pub id: String,
    /// The module.
    pub module: String,
    /// The library.
    pub library: PathBuf,
    /// The code version serving on the canary before.
    pub from: String,
    /// The new code version (once the canary loaded it).
    pub to: String,
    /// The coordinating node.
    pub coordinator: String,
    /// The canary node.
    pub canary: String,
    /// The other members, wave by wave.
    pub waves: Vec<Vec<String>>,
    /// Where it is.
    pub outcome: RolloutOutcome,
    /// Its steps so far.
    pub steps: Vec<RolloutStep>,
    /// Why it halted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
    /// The nodes rolled back after a halt.
    #[serde(default)]
    pub rolled_back: Vec<String>,
    /// The nodes whose rollback was tried and failed, each as "NODE: why"
    /// (the new version keeps serving there, e.g. its code cannot
    /// down-migrate the state to the old version's).
    #[serde(default)]
    pub rollback_failed: Vec<String>,
    /// The nodes whose rollback could not be asked in time (each rolls
    /// back on its own when its lease runs out and it finds the rollout
    /// halted or its coordinator lost).
    #[serde(default)]
    pub unreached: Vec<String>,
    /// How long it took (so far), in milliseconds.
    pub took_ms: u64,
}
