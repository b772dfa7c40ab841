//! What a status report says about a node, its modules and their instances:
//! plain data, shared by the supervisor (which fills it), the admin surfaces
//! and the metrics (which read it).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One instance in a status report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// The instance index.
    pub index: usize,
    /// Messages sent to it but not handled yet.
    pub mailbox_depth: u64,
    /// Messages handled.
    pub handled: u64,
    /// Messages whose handler failed or panicked.
    pub failed: u64,
    /// Restarts from the newest checkpoint.
    pub restarts: u64,
    /// The messages handled before the newest checkpoint (what a restart
    /// restores) was taken: their effects survive a restart.
    #[serde(default)]
    pub checkpoint_covers: u64,
    /// Checkpoints whose snapshot failed (the previous one was kept).
    #[serde(default)]
    pub checkpoint_failures: u64,
}

/// Where a module's serving library came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LibrarySource {
    /// The configuration: the node's start, or a config change.
    #[default]
    Config,
    /// The in-process admin API.
    Admin,
    /// The HTTP admin surface (and so the `molt` CLI).
    Http,
    /// The file watcher (the library file was replaced).
    Watch,
    /// Dev mode (the module crate was rebuilt).
    Dev,
    /// A rollback to a version kept in the stack.
    Rollback,
    /// The node itself (it never picks a library on its own today; kept so
    /// every [`crate::Trigger`] has a source).
    Node,
    /// A cluster rollout (`molt rollout`, README "Rolling out a new
    /// version").
    Rollout,
}

impl LibrarySource {
    /// Its name as in status and JSON: `config`, `admin`, `http`, `watch`,
    /// `dev`, `rollback`, `rollout`.
    pub fn as_str(self) -> &'static str {
        match self {
            LibrarySource::Config => "config",
            LibrarySource::Admin => "admin",
            LibrarySource::Http => "http",
            LibrarySource::Watch => "watch",
            LibrarySource::Dev => "dev",
            LibrarySource::Node => "node",
            LibrarySource::Rollback => "rollback",
            LibrarySource::Rollout => "rollout",
        }
    }
}

impl std::fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One module in a status report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleStatus {
    /// The module.
    pub name: String,
    /// The library file it was loaded from.
    pub library: PathBuf,
    /// The code version serving.
    pub code_version: String,
    /// The state version serving.
    pub state_version: u32,
    /// The previous library's code version (what `rollback` returns to).
    pub previous: Option<String>,
    /// The version stack (docs/semantics.md "Rollback and forced reloads"): the
    /// code versions kept, oldest first, the serving one last; `rollback --to
    /// VERSION` reaches any.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Where the serving library (and its config) came from: the config
    /// (file or start), an admin request, the file watcher, dev mode, or a
    /// rollback. Differs from `config` when an operator drifted from the file.
    #[serde(default)]
    pub source: LibrarySource,
    /// Whether a reload is running.
    pub reloading: bool,
    /// Its instances (a keyed module has one, its template: see README
    /// "Keyed actors").
    pub instances: Vec<InstanceStatus>,
    /// A keyed module's actor counts; absent for a pool module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyed: Option<KeyedStatus>,
}

/// The counts that status and metrics show for a keyed module (never one
/// series per key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedStatus {
    /// Actors live now (activating ones included).
    pub live: u64,
    /// Keys whose state the host holds as a passivated snapshot.
    pub passivated: u64,
    /// Actors activated since the module started (fresh or from a snapshot).
    pub activations: u64,
    /// Actors passivated since the module started.
    pub passivations: u64,
    /// The live limit (`max_live`).
    pub max_live: u32,
    /// The idle time before passivation, in milliseconds.
    pub idle_passivate_ms: u64,
    /// Messages waiting in the live actors' mailboxes, summed.
    #[serde(default)]
    pub mailbox_depth: u64,
}

/// The node's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's name.
    pub node: String,
    /// Its modules, by name.
    pub modules: Vec<ModuleStatus>,
    /// Library copies mapped by this process (never unmapped).
    pub libraries_mapped: usize,
    /// Time since the node started, in seconds.
    pub uptime_s: u64,
}

impl NodeStatus {
    /// The status of one module.
    pub fn module(&self, name: &str) -> Option<&ModuleStatus> {
        self.modules.iter().find(|m| m.name == name)
    }
}
