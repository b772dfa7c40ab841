//! The reload history: every attempt, with its outcome, bounded in memory.

use std::collections::VecDeque;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A reload to a new (or the same) library.
    Reload,
    /// A rollback to the previous library.
    Rollback,
    /// A configuration change (`module` is empty; `to` lists the changes).
    ApplyConfig,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every instance runs the new code.
    Committed,
    /// A phase after prepare failed; every instance kept the old code and state.
    RolledBack,
    /// The new library was rejected in prepare; nothing was touched.
    Rejected,
    /// Refused before anything changed (already reloading, no previous
    /// library, cannot downgrade, ...).
    Refused,
}

/// One attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Sequence number within this node's run.
    pub id: u64,
    /// When it started.
    #[serde(with = "unix_millis")]
    pub at: SystemTime,
    /// The module.
    pub module: String,
    /// Reload or rollback.
    pub action: Action,
    /// The code version before.
    pub from: String,
    /// The code version asked for (the library's path when it did not load).
    pub to: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The failing phase, when it failed.
    pub phase: Option<String>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// The longest instance pause, in microseconds (0 when nothing paused).
    pub pause_us: u64,
}

mod unix_millis {
    use std::time::{SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        s.serialize_u64(ms)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let ms = u64::deserialize(d)?;
        Ok(UNIX_EPOCH + std::time::Duration::from_millis(ms))
    }
}

/// A bounded list of attempts, oldest first.
#[derive(Debug, Clone)]
pub struct History {
    entries: VecDeque<HistoryEntry>,
    capacity: usize,
    next_id: u64,
}

impl History {
    /// Keeps at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        History {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_id: 1,
        }
    }

    /// Records an attempt, giving it the next id.
    pub fn push(&mut self, mut entry: HistoryEntry) -> u64 {
        entry.id = self.next_id;
        self.next_id += 1;
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        let id = entry.id;
        self.entries.push_back(entry);
        id
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> Vec<HistoryEntry> {
        self.entries.iter().cloned().collect()
    }
}
