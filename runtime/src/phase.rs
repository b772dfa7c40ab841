//! The phases of the reload protocol (docs/semantics.md "Reload phases"): plain
//! data, named in errors, events, metrics and the history.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A phase of the reload protocol.
///
/// Serializes as its lower-case name ([`Phase::as_str`]), in events, the
/// history and HTTP error bodies alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Every phase, in protocol order.
    pub const ALL: [Phase; 9] = [
        Phase::Build,
        Phase::Prepare,
        Phase::Drain,
        Phase::Snapshot,
        Phase::Migrate,
        Phase::Swap,
        Phase::Verify,
        Phase::Commit,
        Phase::Replay,
    ];

    /// The phase named `name` (as [`Phase::as_str`] spells it), if any.
    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == name)
    }

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

/// Reads an optional phase leniently, for records written by other versions
/// (the history's audit file, a report from another node): a phase name this
/// version does not know reads as no phase instead of failing the whole
/// record. Use with `#[serde(default, deserialize_with = ...)]`.
pub(crate) fn known_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Phase>, D::Error> {
    let name = Option::<String>::deserialize(d)?;
    Ok(name.as_deref().and_then(Phase::from_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_serializes_as_its_name() {
        for p in Phase::ALL {
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
            assert_eq!(Phase::from_name(p.as_str()), Some(p));
            assert_eq!(
                serde_json::from_str::<Phase>(&format!("\"{p}\"")).unwrap(),
                p
            );
        }
    }

    #[derive(Deserialize)]
    struct Record {
        #[serde(default, deserialize_with = "known_or_none")]
        phase: Option<Phase>,
    }

    #[test]
    fn an_unknown_phase_reads_as_none() {
        let read = |json: &str| serde_json::from_str::<Record>(json).unwrap().phase;
        assert_eq!(read(r#"{"phase": "migrate"}"#), Some(Phase::Migrate));
        assert_eq!(read(r#"{"phase": "teleport"}"#), None);
        assert_eq!(read(r#"{"phase": null}"#), None);
        assert_eq!(read(r#"{}"#), None);
    }
}
