//! The reload history: every attempt, with its outcome, bounded in memory.

use std::collections::VecDeque;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A reload to a new (or the same) library.
    Reload,
    /// A rollback to a kept version (the previous one, or `--to`).
    Rollback,
    /// A configuration change (`module` is empty; `to` lists the changes).
    ApplyConfig,
}

/// Who asked for an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The in-process admin API (`Admin`, `AdminMsg`, `Node`).
    #[default]
    Admin,
    /// The HTTP admin surface (and so the `molt` CLI).
    Http,
    /// The file watcher: a library or the config file changed.
    Watch,
    /// A configuration change being applied.
    Config,
    /// Dev mode: a module crate was rebuilt.
    Dev,
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
    /// Who asked for it (absent in audit files written before it existed:
    /// read as `admin`).
    #[serde(default)]
    pub trigger: Trigger,
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
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        s.serialize_u64(ms)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        u64::deserialize(d).map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    }
}

/// A bounded list of attempts, oldest first; optionally mirrored to an
/// append-only JSON-lines audit file.
#[derive(Debug)]
pub struct History {
    entries: VecDeque<HistoryEntry>,
    capacity: usize,
    next_id: u64,
    file: Option<PathBuf>,
}

impl History {
    /// Keeps at most `capacity` entries in memory.
    pub fn new(capacity: usize) -> Self {
        History {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_id: 1,
            file: None,
        }
    }

    /// Keeps at most `capacity` entries in memory and appends every entry
    /// to `file`, after reading back the entries it already holds (the
    /// newest `capacity` of them). Lines that do not parse are skipped with
    /// a warning: the file is an audit log, not a database.
    ///
    /// # Errors
    /// When the file exists but cannot be read.
    pub fn with_file(capacity: usize, file: &Path) -> std::io::Result<Self> {
        let mut history = History::new(capacity);
        match std::fs::File::open(file) {
            Ok(f) => {
                for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
                    let line = line?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<HistoryEntry>(&line) {
                        Ok(entry) => {
                            // Saturating: the file is input (an id at the
                            // top of the range must not panic the node).
                            history.next_id = history.next_id.max(entry.id.saturating_add(1));
                            history.keep(entry);
                        }
                        Err(e) => tracing::warn!(
                            target: "molt::history",
                            "{}:{}: skipping a history line that does not parse: {e}",
                            file.display(),
                            n + 1
                        ),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        history.file = Some(file.to_path_buf());
        Ok(history)
    }

    fn keep(&mut self, entry: HistoryEntry) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Records an attempt, giving it the next id, and appends it to the
    /// audit file if there is one (a write failure is logged, never fatal).
    pub fn push(&mut self, mut entry: HistoryEntry) -> u64 {
        entry.id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        // Millisecond precision, as the audit file keeps it.
        if let Ok(since) = entry.at.duration_since(std::time::UNIX_EPOCH) {
            entry.at =
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(since.as_millis() as u64);
        }
        let id = entry.id;
        if let Some(path) = &self.file {
            if let Err(e) = append(path, &entry) {
                tracing::error!(target: "molt::history", "cannot append to the audit file {}: {e}", path.display());
            }
        }
        self.keep(entry);
        id
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> Vec<HistoryEntry> {
        self.entries.iter().cloned().collect()
    }
}

fn append(path: &Path, entry: &HistoryEntry) -> std::io::Result<()> {
    let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    // A last line without its newline (a write cut short by a crash, an
    // edit) would swallow this entry: both would be skipped when the file is
    // read back. Start a line of its own.
    if f.metadata()?.len() > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::End(-1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.insert(0, '\n');
        }
    }
    f.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64) -> HistoryEntry {
        HistoryEntry {
            trigger: Trigger::Admin,
            id,
            at: SystemTime::UNIX_EPOCH,
            module: "m".into(),
            action: Action::Reload,
            from: "1".into(),
            to: "2".into(),
            outcome: Outcome::Committed,
            phase: None,
            error: None,
            pause_us: 0,
        }
    }

    #[test]
    fn an_id_at_the_top_of_the_range_does_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.jsonl");
        let line = serde_json::to_string(&entry(u64::MAX)).unwrap();
        std::fs::write(&file, format!("{line}\n")).unwrap();
        let mut h = History::with_file(10, &file).unwrap();
        assert_eq!(h.push(entry(0)), u64::MAX);
        assert_eq!(h.push(entry(0)), u64::MAX);
    }

    #[test]
    fn an_append_after_a_torn_last_line_starts_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.jsonl");
        let whole = serde_json::to_string(&entry(1)).unwrap();
        let torn = serde_json::to_string(&entry(2)).unwrap();
        std::fs::write(&file, format!("{whole}\n{}", &torn[..torn.len() / 2])).unwrap();
        let mut h = History::with_file(10, &file).unwrap();
        h.push(entry(0));
        let back = History::with_file(10, &file).unwrap().entries();
        let ids: Vec<u64> = back.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![1, 2], "the torn line is skipped, nothing else");
    }
}
