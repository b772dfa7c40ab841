//! A module's version stack (docs/semantics.md "Rollback and forced reloads"):
//! the versions it ran before the serving one, each with its library, the path
//! it was loaded from and the config it ran with, so a rollback restores all
//! three (status, the watcher's file → module map, the running config).

use std::path::PathBuf;
use std::sync::Arc;

use crate::loader::Library;
use crate::status::LibrarySource;

/// One version of a module.
#[derive(Clone)]
pub(super) struct Version {
    pub lib: Arc<Library>,
    /// The library path as configured or asked for (what the watcher maps).
    pub library: PathBuf,
    /// The module config, as written and encoded.
    pub config_value: serde_json::Value,
    pub config: Arc<Vec<u8>>,
    /// Where it came from when it served.
    pub source: LibrarySource,
}

/// The versions older than the serving one, oldest first.
#[derive(Default)]
pub(super) struct Stack {
    older: Vec<Version>,
}

impl Stack {
    /// Keeps `version` (the one a committed reload replaced) on top, dropping
    /// the oldest so that, with the serving one, at most `kept` remain.
    pub(crate) fn push(&mut self, version: Version, kept: usize) {
        self.older.push(version);
        let max = kept.saturating_sub(1);
        if self.older.len() > max {
            let excess = self.older.len() - max;
            self.older.drain(..excess);
        }
    }

    /// The version `rollback` returns to: the one below the serving one, or
    /// the newest kept with code version `to`.
    ///
    /// # Errors
    /// Why there is none, for the refusal.
    pub(crate) fn find(&self, to: Option<&str>) -> Result<usize, String> {
        match to {
            None if self.older.is_empty() => Err(
                "there is no previous library (the module has not been reloaded, or every kept version was rolled back to already)"
                    .into(),
            ),
            None => Ok(self.older.len() - 1),
            Some(to) => self
                .older
                .iter()
                .rposition(|v| v.lib.code_version == to)
                .ok_or_else(|| {
                    format!(
                        "version {to} is not in the version stack (kept: {})",
                        if self.older.is_empty() {
                            "none".to_string()
                        } else {
                            self.code_versions().join(", ")
                        }
                    )
                }),
        }
    }

    /// The version at `index` (from [`Stack::find`]).
    pub(crate) fn get(&self, index: usize) -> Option<&Version> {
        self.older.get(index)
    }

    /// A committed rollback to `index`: that version serves again, and it
    /// and every newer one leave the stack.
    pub(crate) fn back_to(&mut self, index: usize) {
        self.older.truncate(index);
    }

    /// The newest kept version.
    pub(crate) fn previous(&self) -> Option<&Version> {
        self.older.last()
    }

    /// The kept code versions, oldest first.
    pub(crate) fn code_versions(&self) -> Vec<String> {
        self.older
            .iter()
            .map(|v| v.lib.code_version.clone())
            .collect()
    }
}
