//! The reload history: every attempt, with its outcome, bounded in memory.

use std::collections::VecDeque;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::phase::Phase;

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
    /// An instance restarted (repeated handler panics, or its actor failed):
    /// `error` says why, `restored` what state it restarted from.
    Restart,
    /// A cluster rollout of `module` ended (README "Rolling out a new
    /// version"): recorded on every node it reached, with its outcome
    /// (committed everywhere, or rolled back: `error` says why it halted).
    Rollout,
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
    /// The node itself: a restart after repeated handler panics or a
    /// failed instance actor.
    Node,
    /// A cluster rollout (`molt rollout`): its coordinator asked this
    /// node's rollout agent, or the agent rolled back on its own when its
    /// coordinator was lost.
    Rollout,
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
    /// The failing phase, when it failed (a phase this version does not
    /// know, in a file written by another, reads as none).
    #[serde(default, deserialize_with = "crate::phase::known_or_none")]
    pub phase: Option<Phase>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// The longest instance pause, in microseconds (0 when nothing paused).
    pub pause_us: u64,
    /// The state a restart or a forced reload restored instead of a state
    /// handed over by the running code (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<Restored>,
    /// A committed reload of a keyed module: the live keys it could not
    /// switch over to the new code, kept passivated with their exact state
    /// (docs/semantics.md "Keyed actors"; each also sent as a
    /// `keyed.switch_failed` event). 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keys_kept_passivated: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A live key a committed reload of a keyed module could not switch over to
/// the new code (docs/semantics.md "Keyed actors").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySwitchFailure {
    /// The key (lossy UTF-8).
    pub key: String,
    /// Why: the new code refused the key's state (changed after its vote),
    /// its `start` failed, or the old actor took no snapshot.
    pub error: String,
    /// Kept passivated with its exact snapshot (its next message, or a
    /// rollback, activates it again); `false`: its old actor serves on.
    pub passivated: bool,
}

/// What a restart or a forced reload restored (docs/semantics.md "Restarts and
/// checkpoints").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// `"checkpoint"` (the newest checkpoint or the state of the last
    /// committed reload) or `"start"` (the state the instance started with).
    pub from: String,
    /// How old that state was when it was restored, in milliseconds (the
    /// oldest, when several instances were restored).
    pub state_age_ms: u64,
    /// Whether a forced reload restored it (the old code could not hand over
    /// its state).
    pub forced: bool,
    /// The instances restored.
    pub instances: Vec<usize>,
    /// Messages the replaced actors of hung instances had not handled (the
    /// one each was stuck in and those queued behind it): not handled by
    /// any code. 0 for restarts, which keep the mailbox.
    pub stuck_messages: u64,
}

mod unix_millis {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        s.serialize_u64(ms)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        u64::deserialize(d).map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    }
}

/// Called when an entry could not be written to the audit file: the file
/// and the error (the supervisor turns it into `history.write_failed` and
/// `molt_history_write_failures_total`).
pub type WriteFailureHook = Box<dyn Fn(&Path, &std::io::Error) + Send + Sync>;

/// A bounded list of attempts, oldest first; optionally mirrored to an
/// append-only JSON-lines audit file, rotated at a size limit.
pub struct History {
    entries: VecDeque<HistoryEntry>,
    capacity: usize,
    next_id: u64,
    file: Option<PathBuf>,
    /// Rotate the audit file before it would grow past this (0: never).
    max_bytes: u64,
    on_write_failure: Option<WriteFailureHook>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("entries", &self.entries.len())
            .field("capacity", &self.capacity)
            .field("next_id", &self.next_id)
            .field("file", &self.file)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl History {
    /// Keeps at most `capacity` entries in memory.
    pub fn new(capacity: usize) -> Self {
        History {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_id: 1,
            file: None,
            max_bytes: 0,
            on_write_failure: None,
        }
    }

    /// Keeps at most `capacity` entries in memory and appends every entry
    /// to `file`, after reading back the entries it already holds (the
    /// newest `capacity` of them, the rotated `FILE.1` first). Lines that do
    /// not parse, or are not UTF-8 (a torn multi-byte write), are skipped
    /// with a warning naming the file and the line: the file is an audit
    /// log, not a database.
    ///
    /// # Errors
    /// When the file exists but cannot be read.
    pub fn with_file(capacity: usize, file: &Path) -> std::io::Result<Self> {
        let mut history = History::new(capacity);
        history.read_back(&rotated(file))?;
        history.read_back(file)?;
        history.file = Some(file.to_path_buf());
        Ok(history)
    }

    /// Rotates the audit file when an append would take it past
    /// `max_bytes`: it is renamed to `FILE.1` (replacing the one kept
    /// before) and a new file is started. 0 never rotates.
    pub fn rotate_at(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Calls `hook` whenever an entry cannot be written to the audit file
    /// (it is still kept in memory).
    pub fn on_write_failure(
        mut self,
        hook: impl Fn(&Path, &std::io::Error) + Send + Sync + 'static,
    ) -> Self {
        self.on_write_failure = Some(Box::new(hook));
        self
    }

    /// Reads the entries of one audit file, if it exists.
    fn read_back(&mut self, file: &Path) -> std::io::Result<()> {
        // Never a blocking read of a FIFO or device (issue #8 item 3).
        let f = match crate::regular_file::open(file) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut reader = std::io::BufReader::new(f);
        let mut bytes = Vec::new();
        let mut n = 0usize;
        loop {
            bytes.clear();
            if reader.read_until(b'\n', &mut bytes)? == 0 {
                return Ok(());
            }
            n += 1;
            let line = match std::str::from_utf8(&bytes) {
                Ok(line) => line,
                Err(e) => {
                    tracing::warn!(
                        target: "molt::history",
                        "{}:{n}: skipping a history line that is not UTF-8: {e}",
                        file.display()
                    );
                    continue;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<HistoryEntry>(line) {
                Ok(entry) => {
                    // Saturating: the file is input (an id at the top of the
                    // range must not panic the node).
                    self.next_id = self.next_id.max(entry.id.saturating_add(1));
                    self.keep(entry);
                }
                Err(e) => tracing::warn!(
                    target: "molt::history",
                    "{}:{n}: skipping a history line that does not parse: {e}",
                    file.display()
                ),
            }
        }
    }

    fn keep(&mut self, entry: HistoryEntry) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Records an attempt, giving it the next id, and appends it to the
    /// audit file if there is one. A write failure is never fatal: it is
    /// logged and reported to the [`History::on_write_failure`] hook.
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
            if let Err(e) = append(path, &entry, self.max_bytes) {
                tracing::error!(target: "molt::history", "cannot append to the audit file {}: {e}", path.display());
                if let Some(hook) = &self.on_write_failure {
                    hook(path, &e);
                }
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

/// Where a rotated audit file goes: `FILE.1`.
pub fn rotated(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".1");
    PathBuf::from(name)
}

fn append(path: &Path, entry: &HistoryEntry, max_bytes: u64) -> std::io::Result<()> {
    let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    line.push('\n');
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
    };
    let mut f = open()?;
    let mut len = f.metadata()?.len();
    if max_bytes > 0 && len > 0 && len + line.len() as u64 > max_bytes {
        // One old file is kept; the newest entries stay readable at start.
        drop(f);
        std::fs::rename(path, rotated(path))?;
        f = open()?;
        len = f.metadata()?.len();
    }
    // A last line without its newline (a write cut short by a crash, an
    // edit) would swallow this entry: both would be skipped when the file is
    // read back. Start a line of its own.
    if len > 0 {
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
            restored: None,
            keys_kept_passivated: 0,
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

    #[test]
    fn a_line_that_is_not_utf8_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.jsonl");
        let mut bytes = serde_json::to_string(&entry(1)).unwrap().into_bytes();
        bytes.extend_from_slice(b"\n{\"module\":\"\xe2\x82\n");
        bytes.extend_from_slice(serde_json::to_string(&entry(3)).unwrap().as_bytes());
        bytes.push(b'\n');
        std::fs::write(&file, bytes).unwrap();
        let ids: Vec<u64> = History::with_file(10, &file)
            .unwrap()
            .entries()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec![1, 3]);
    }

    /// A line as the code before typed phases wrote it (`phase` a string).
    const OLD_LINE: &str = r#"{"id":7,"at":1700000000000,"module":"kv","action":"reload","trigger":"watch","from":"1.0.0","to":"2.0.0","outcome":"rolled_back","phase":"migrate","error":"boom","pause_us":12}"#;

    #[test]
    fn a_history_line_written_before_typed_phases_reads_back_the_same() {
        let e: HistoryEntry = serde_json::from_str(OLD_LINE).unwrap();
        assert_eq!(e.phase, Some(Phase::Migrate));
        assert_eq!(serde_json::to_string(&e).unwrap(), OLD_LINE);
    }

    #[test]
    fn an_unknown_phase_in_the_file_keeps_the_entry_and_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.jsonl");
        let unknown = OLD_LINE
            .replace(r#""id":7"#, r#""id":8"#)
            .replace(r#""phase":"migrate""#, r#""phase":"teleport""#);
        std::fs::write(&file, format!("{OLD_LINE}\n{unknown}\n")).unwrap();
        let back = History::with_file(10, &file).unwrap().entries();
        let read: Vec<(u64, Option<Phase>)> = back.iter().map(|e| (e.id, e.phase)).collect();
        assert_eq!(read, vec![(7, Some(Phase::Migrate)), (8, None)]);
        assert_eq!(
            back[1].error.as_deref(),
            Some("boom"),
            "the rest of it reads"
        );
    }

    #[test]
    fn rotation_keeps_one_old_file_and_reads_both_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.jsonl");
        let one = serde_json::to_string(&entry(1)).unwrap().len() as u64 + 1;
        let mut h = History::with_file(100, &file).unwrap().rotate_at(one * 2);
        for _ in 0..5 {
            h.push(entry(0));
        }
        // 1 2 | 3 4 | 5: the file holds 5, FILE.1 holds 3 4, 1 2 are gone.
        let ids: Vec<u64> = History::with_file(100, &file)
            .unwrap()
            .entries()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec![3, 4, 5]);
    }
}
