//! The difference between the running configuration and a new one, classified
//! as docs/semantics.md "Watch and dev mode" says: module added / removed /
//! reconfigured / library changed / instance count changed are applied live;
//! node-level keys need a restart, and a change touching any of them is
//! rejected whole.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{ModuleSpec, NodeConfig};

/// One live change to one module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A new module: load its library and start its instances.
    Added {
        /// The new module.
        spec: ModuleSpec,
    },
    /// A module no longer in the config: stop taking messages, drain its
    /// mailboxes, stop.
    Removed {
        /// The module.
        module: String,
    },
    /// Its library and/or its `config` table changed: one reload through the
    /// protocol (rolled back on failure).
    Reload {
        /// The module.
        module: String,
        /// The new library, when it changed.
        library: Option<PathBuf>,
        /// The new module config, when it changed.
        config: Option<serde_json::Value>,
    },
    /// Its instance count changed: scale up, or drain and stop the removed
    /// instances.
    Instances {
        /// The module.
        module: String,
        /// Instances now.
        from: u32,
        /// Instances wanted.
        to: u32,
    },
}

impl Change {
    /// The module the change is about.
    pub fn module(&self) -> &str {
        match self {
            Change::Added { spec } => &spec.name,
            Change::Removed { module }
            | Change::Reload { module, .. }
            | Change::Instances { module, .. } => module,
        }
    }

    /// One line for a person: "kv: library changed -> target/release/libkv.so".
    pub fn describe(&self) -> String {
        match self {
            Change::Added { spec } => format!(
                "{}: added ({} instance(s) of {})",
                spec.name,
                spec.instances,
                spec.library.display()
            ),
            Change::Removed { module } => {
                format!("{module}: removed (drain its mailboxes, then stop)")
            }
            Change::Reload {
                module,
                library,
                config,
            } => match (library, config) {
                (Some(l), Some(_)) => format!(
                    "{module}: library changed to {} and config changed: reload",
                    l.display()
                ),
                (Some(l), None) => format!("{module}: library changed to {}: reload", l.display()),
                (None, Some(_)) => {
                    format!("{module}: config changed: reconfigure (reload with the same library)")
                }
                (None, None) => format!("{module}: reload"),
            },
            Change::Instances { module, from, to } if to > from => {
                format!("{module}: instances {from} -> {to} (scale up)")
            }
            Change::Instances { module, from, to } => {
                format!(
                    "{module}: instances {from} -> {to} (drain and stop {})",
                    from - to
                )
            }
        }
    }
}

/// What applying a new configuration would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The live changes, in the order they are applied: reloads and scaling
    /// up, then additions, then what cannot be undone last (scaling down,
    /// removals), so a failure can undo everything applied before it.
    pub changes: Vec<Change>,
    /// Node-level keys that differ; when not empty the whole change is
    /// rejected and nothing of it is applied.
    pub restart_keys: Vec<String>,
}

impl Plan {
    /// Whether the plan can be applied live.
    pub fn is_applicable(&self) -> bool {
        self.restart_keys.is_empty()
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.restart_keys.is_empty()
    }
}

/// Compares the running configuration with a new one.
pub fn plan(running: &NodeConfig, new: &NodeConfig) -> Plan {
    let mut restart_keys = Vec::new();
    let mut node_key = |key: &str, differs: bool| {
        if differs {
            restart_keys.push(format!("node.{key}"));
        }
    };
    node_key("name", running.name != new.name);
    node_key("admin_listen", running.admin_listen != new.admin_listen);
    node_key(
        "admin_token_file",
        running.admin_token_file != new.admin_token_file,
    );
    node_key("library_dirs", running.library_dirs != new.library_dirs);
    node_key("copy_dir", running.copy_dir != new.copy_dir);
    node_key("hot_reload", running.hot_reload != new.hot_reload);
    node_key("debounce_ms", running.debounce_ms != new.debounce_ms);
    node_key("dev", running.dev != new.dev);
    node_key("target_dir", running.target_dir != new.target_dir);
    node_key("limits", running.limits != new.limits);
    node_key("history_len", running.history_len != new.history_len);
    node_key("history_file", running.history_file != new.history_file);
    if running.cluster != new.cluster {
        restart_keys.push("cluster".to_string());
    }

    let mut removed = Vec::new();
    let mut changed = Vec::new();
    let mut added = Vec::new();
    let mut shrunk = Vec::new();
    for old in &running.modules {
        if !new.modules.iter().any(|m| m.name == old.name) {
            removed.push(Change::Removed {
                module: old.name.clone(),
            });
        }
    }
    for m in &new.modules {
        let Some(old) = running.modules.iter().find(|o| o.name == m.name) else {
            added.push(Change::Added { spec: m.clone() });
            continue;
        };
        let library = (old.library != m.library).then(|| m.library.clone());
        let config = (old.config != m.config).then(|| m.config.clone());
        if library.is_some() || config.is_some() {
            changed.push(Change::Reload {
                module: m.name.clone(),
                library,
                config,
            });
        }
        if old.instances > m.instances {
            shrunk.push(Change::Instances {
                module: m.name.clone(),
                from: old.instances,
                to: m.instances,
            });
        } else if old.instances < m.instances {
            changed.push(Change::Instances {
                module: m.name.clone(),
                from: old.instances,
                to: m.instances,
            });
        }
        if old.crate_dir != m.crate_dir {
            restart_keys.push(format!("modules.{}.crate", m.name));
        }
        // Whether a module is keyed, and its keyed settings, are fixed for
        // the module's life (its live actors and passivated snapshots).
        if old.keyed != m.keyed {
            restart_keys.push(format!("modules.{}.keyed", m.name));
        }
    }
    // Atomic application (docs/semantics.md "Watch and dev mode"): everything
    // that can be undone first; scaling down and removals drain and stop
    // instances (their state goes), so they come last, after everything that
    // can fail.
    let mut changes = changed;
    changes.extend(added);
    changes.extend(shrunk);
    changes.extend(removed);
    Plan {
        changes,
        restart_keys,
    }
}

/// The plan for a person (what `molt config check FILE` prints): one line
/// per change, or why the whole change is rejected, or "no changes".
pub fn render(plan: &Plan) -> String {
    if !plan.is_applicable() {
        return format!(
            "rejected: {} need a restart; nothing would be applied",
            plan.restart_keys.join(", ")
        );
    }
    if plan.is_empty() {
        return "no changes".into();
    }
    plan.changes
        .iter()
        .map(Change::describe)
        .collect::<Vec<_>>()
        .join("\n")
}
