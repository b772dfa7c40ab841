//! What an instance reports when it restarted from a checkpoint
//! (docs/semantics.md "Restarts and checkpoints"): plain data the module actor
//! and the reload protocol hand to the supervisor, which publishes
//! `module.restarted` and records the history.

use std::sync::Arc;
use std::time::Duration;

/// One instance restarted from a checkpoint instead of a state handed over
/// by its running code.
#[derive(Debug, Clone)]
pub(crate) struct Restarted {
    pub module: String,
    pub instance: u32,
    /// The code version serving after the restart.
    pub code_version: String,
    /// Why.
    pub reason: String,
    /// `"checkpoint"` or `"start"`.
    pub restored: &'static str,
    /// How old the restored state was.
    pub state_age: Duration,
    /// A forced reload restarted it (with the new code).
    pub forced: bool,
    /// Messages a replaced actor had not handled (0 for a restart in place).
    pub stuck_messages: u64,
}

/// Where module actors report their restarts in place (the supervisor: it
/// owns the history). Never blocks.
pub(crate) type RestartSink = Arc<dyn Fn(Restarted) + Send + Sync>;
