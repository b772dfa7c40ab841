//! What a status report says about a node, its modules and their instances:
//! plain data, shared by the supervisor (which fills it), the admin surfaces
//! and the metrics (which read it).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One instance in a status report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// The instance index.
    pub index: u32,
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
    /// Whether a reload is running.
    pub reloading: bool,
    /// Its instances.
    pub instances: Vec<InstanceStatus>,
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
