//! The phases of the reload protocol (docs/semantics.md "Reload phases"): plain
//! data, named in errors, events, metrics and the history.

use std::fmt;

use serde::Serialize;

/// A phase of the reload protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Dev mode: `cargo build` of the module's crate (before prepare).
    Build,
    /// Load and check the new library.
    Prepare,
    /// Deliver `Swap` through every instance's mailbox.
    Drain,
    /// Take the old state (or its down-migrated form).
    Snapshot,
    /// Build the new behaviour from that state.
    Migrate,
    /// Stop the old behaviour, start the new one.
    Swap,
    /// Check the new behaviour.
    Verify,
    /// Decide across all instances.
    Commit,
    /// Hand the queued messages to the committed behaviour.
    Replay,
}

impl Phase {
    /// The phase's name as used in events, metrics and history.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Build => "build",
            Phase::Prepare => "prepare",
            Phase::Drain => "drain",
            Phase::Snapshot => "snapshot",
            Phase::Migrate => "migrate",
            Phase::Swap => "swap",
            Phase::Verify => "verify",
            Phase::Commit => "commit",
            Phase::Replay => "replay",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
