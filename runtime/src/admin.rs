//! The admin surface as supervisor messages (docs/semantics.md "Admin
//! surfaces"): reload, rollback, status, history. This is the primary
//! interface; the CLI and HTTP layers only translate to these messages.
//! [`Admin`] wraps them in async methods.

use std::path::PathBuf;
use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};

use crate::config::diff::Change;
use crate::config::{ModuleSpec, NodeConfig};
use crate::error::Error;
use crate::figures::ModuleFigures;
use crate::history::{HistoryEntry, Trigger};
use crate::rehearsal::RehearsalReport;
use crate::reload::Phase;
pub use crate::status::{InstanceStatus, KeyedStatus, LibrarySource, ModuleStatus, NodeStatus};
use crate::supervisor::{Internal, InternalMsg, SupervisorMsg};

/// Options of a reload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReloadOptions {
    /// The library to load; default: the module's configured library path
    /// (which a rebuild has replaced). Must be inside a library directory.
    pub library: Option<PathBuf>,
    /// A new module config; default: the running one.
    pub config: Option<serde_json::Value>,
    /// Who asks (recorded in the history).
    pub trigger: Trigger,
    /// A forced reload (docs/semantics.md "Rollback and forced reloads"): when
    /// the old code cannot hand over its state (its `snapshot` or `stop` fails,
    /// or it does not return within the prepare timeout, hung in a handler or
    /// entry point), start the new code from the instance's newest checkpoint;
    /// a hung instance is replaced by a new actor and the messages stuck behind
    /// it are counted and reported ([`ReloadReport::restored`]). Without it
    /// such a reload rolls back and the old code keeps serving.
    pub force: bool,
}

impl ReloadOptions {
    /// Reload from this library file.
    pub fn library(path: impl Into<PathBuf>) -> Self {
        ReloadOptions {
            library: Some(path.into()),
            ..ReloadOptions::default()
        }
    }

    /// Records `trigger` as who asked.
    pub fn by(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// Force the reload (see [`ReloadOptions::force`]).
    pub fn forced(mut self) -> Self {
        self.force = true;
        self
    }

    /// Also hand the module this config.
    pub fn with_config(mut self, config: serde_json::Value) -> Self {
        self.config = Some(config);
        self
    }
}

/// A committed reload or rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// The module.
    pub module: String,
    /// The code version before.
    pub from: String,
    /// The code version now serving.
    pub to: String,
    /// The state version now.
    pub state_version: u32,
    /// Each instance's pause (time not serving), in microseconds. A keyed
    /// module: the template instance's, then each switched live actor's
    /// (its vote's snapshot plus its switch-over).
    pub pauses_us: Vec<u64>,
    /// Copy + dlopen + layout check of the new library, in microseconds (0
    /// for a rollback, whose library was already loaded).
    pub load_us: u64,
    /// A forced reload that started instances from their newest checkpoint:
    /// which, from what state, how old, and the messages stuck behind hung
    /// instances (never handled). Absent when every instance handed over
    /// its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<crate::history::Restored>,
    /// A keyed module: the live keys the switch-over to the new code failed
    /// on (the reload stays committed; docs/semantics.md "Keyed actors").
    /// Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub switch_failures: Vec<crate::history::KeySwitchFailure>,
}

impl ReloadReport {
    /// The longest instance pause.
    pub fn max_pause(&self) -> Duration {
        Duration::from_micros(self.pauses_us.iter().copied().max().unwrap_or(0))
    }
}

/// The admin messages the supervisor takes.
#[derive(Debug)]
pub enum AdminMsg {
    /// Reload a module (docs/semantics.md "Reload phases"). Refused if it is
    /// already reloading.
    Reload {
        /// The module.
        module: String,
        /// Library and config.
        options: ReloadOptions,
        /// Where the result goes.
        reply: RpcReplyPort<Result<ReloadReport, Error>>,
    },
    /// Go back to the previous library (or, with `to`, to an older one in the
    /// module's version stack), with the library path and config it ran with,
    /// the serving code down-migrating the state to that version's state
    /// version (or resetting it when asked). docs/semantics.md "Rollback and
    /// forced reloads".
    Rollback {
        /// The module.
        module: String,
        /// The code version to return to (the newest kept with it);
        /// default: the previous one.
        to: Option<String>,
        /// Start the previous library with a fresh state instead.
        reset_state: bool,
        /// Who asks (recorded in the history).
        trigger: Trigger,
        /// Where the result goes.
        reply: RpcReplyPort<Result<ReloadReport, Error>>,
    },
    /// Rehearse a reload (a dry run, DESIGN.md §6 "Rehearsal"): load the
    /// library, then migrate and verify a copy of each instance's state in
    /// it, never swapping and never touching what serves. `force` is not
    /// rehearsed (ignored). Refused while the module reloads.
    Rehearse {
        /// The module.
        module: String,
        /// Library and config, as for a reload.
        options: ReloadOptions,
        /// Where the result goes.
        reply: RpcReplyPort<Result<RehearsalReport, Error>>,
    },
    /// The node's status.
    Status {
        /// Where the result goes.
        reply: RpcReplyPort<NodeStatus>,
    },
    /// The cluster as this node sees it (README "Cluster"): its members,
    /// their reachability and incarnations, each one's module versions.
    /// [`Error::NotInCluster`] when the node has no `[cluster]`.
    Cluster {
        /// Where the result goes.
        reply: RpcReplyPort<Result<crate::cluster::ClusterStatus, Error>>,
    },
    /// Every reload attempt, oldest first.
    History {
        /// Where the result goes.
        reply: RpcReplyPort<Vec<HistoryEntry>>,
    },
    /// Starts a new module (load, then start its instances).
    AddModule {
        /// The module.
        spec: ModuleSpec,
        /// Where the result goes.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Removes a module: it stops taking new messages, drains its
    /// mailboxes, then stops.
    RemoveModule {
        /// The module.
        module: String,
        /// Where the result goes.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Changes a module's instance count: new instances start fresh; removed
    /// ones (the highest indices) drain their mailboxes, then stop.
    Scale {
        /// The module.
        module: String,
        /// The instance count wanted.
        instances: u32,
        /// Where the result goes.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// The configuration the node runs now (each module's serving library
    /// and config, whatever put it there).
    RunningConfig {
        /// Where the result goes.
        reply: RpcReplyPort<NodeConfig>,
    },
    /// The configuration last declared (the node's start, or the last
    /// config change applied): what a new config is diffed against.
    DeclaredConfig {
        /// Where the result goes.
        reply: RpcReplyPort<NodeConfig>,
    },
    /// Applies a new configuration: diffs it against the configuration last
    /// declared (the node's start, or the last change applied), so only what
    /// the new one changes is applied and admin reloads of other things stay;
    /// applies the live changes whole or not at all (a failure undoes the
    /// changes applied before it), or rejects it whole when node-level keys
    /// differ (docs/semantics.md "Watch and dev mode").
    ApplyConfig {
        /// The new configuration.
        config: Box<NodeConfig>,
        /// Where the result goes.
        reply: RpcReplyPort<Result<ConfigReport, Error>>,
    },
    /// Reads, parses and validates a config file, then applies it like
    /// [`AdminMsg::ApplyConfig`]; an invalid file is rejected (history,
    /// `config.rejected`) and the running config stays untouched.
    ApplyConfigFile {
        /// The config file.
        path: PathBuf,
        /// Where the result goes.
        reply: RpcReplyPort<Result<ConfigReport, Error>>,
    },
    /// A module's handling figures on this node (docs/semantics.md
    /// "Handling figures"): the serving version's since it took over and
    /// the previous version's as they stood when it was replaced.
    /// [`Error::UnknownModule`] when no such module runs.
    Figures {
        /// The module.
        module: String,
        /// Where the result goes.
        reply: RpcReplyPort<Result<ModuleFigures, Error>>,
    },
    /// Records a reload that failed before the protocol could start (dev
    /// mode: a compile error, `phase` = build): history and
    /// `module.reload_failed`. The old version keeps serving.
    RecordFailure {
        /// The module.
        module: String,
        /// The phase that failed.
        phase: Phase,
        /// The error.
        error: String,
    },
}

/// The outcome of an applied configuration change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigReport {
    /// Each change attempted, in order, with its result (an error text when
    /// it failed; a failed reload was rolled back and the old version keeps
    /// serving). Changes after a failed one are not attempted.
    pub changes: Vec<(Change, Result<(), String>)>,
    /// After a failure: the changes applied before it, undone in reverse
    /// order, each with the undo's result (an error when it could not be
    /// undone: then that change stays applied).
    pub undone: Vec<(Change, Result<(), String>)>,
}

impl ConfigReport {
    /// Whether every change applied.
    pub fn all_applied(&self) -> bool {
        self.changes.iter().all(|(_, r)| r.is_ok())
    }
}

/// A client of a node's supervisor. Cheap to clone.
///
/// Every request waits at most `limits.admin_timeout` for the supervisor to
/// *take* it (the supervisor may be busy): past it, the request is dropped
/// unrun and the call answers [`Error::Busy`]. Once taken, a call waits for
/// its outcome, however long a reload takes.
///
/// # Examples
/// ```no_run
/// # async fn demo(node: &molt_runtime::Node) -> Result<(), molt_runtime::Error> {
/// use molt_runtime::{Error, ReloadOptions};
///
/// let admin = node.admin(); // cheap to clone, for any task
/// admin.scale("kv", 4).await?;
/// match admin.reload("kv", ReloadOptions::library("target/release/libkv_v2.so")).await {
///     Err(Error::Busy { .. }) => println!("the supervisor is busy: nothing was done, try again"),
///     other => println!("{other:?}"),
/// }
/// admin.rollback("kv", false).await?; // back, the state down-migrated
/// for entry in admin.history().await? {
///     println!("{entry:?}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Admin {
    sup: ActorRef<SupervisorMsg>,
    /// How long a request waits to be taken; `None`: as long as it takes
    /// (the supervisor's own tasks, which must not give up).
    taken_within: Option<Duration>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("supervisor", &self.sup.get_id())
            .field("taken_within", &self.taken_within)
            .finish()
    }
}

impl Admin {
    pub(crate) fn new(sup: ActorRef<SupervisorMsg>, taken_within: Option<Duration>) -> Self {
        Admin { sup, taken_within }
    }

    /// Reloads `module` through the protocol and waits for the outcome.
    ///
    /// # Errors
    /// [`Error::Load`] (prepare), [`Error::ReloadFailed`] naming the phase
    /// (rolled back, old version serving), [`Error::ReloadInProgress`],
    /// [`Error::UnknownModule`], [`Error::NodeDown`].
    pub async fn reload(
        &self,
        module: &str,
        options: ReloadOptions,
    ) -> Result<ReloadReport, Error> {
        let module = module.to_string();
        self.ask("reload", |reply| AdminMsg::Reload {
            module,
            options,
            reply,
        })
        .await?
    }

    /// Rehearses a reload of `module` without doing it (a dry run): the
    /// library is loaded as a reload would, and each instance's state,
    /// snapshotted between two of its messages, is migrated and verified in
    /// a throwaway copy that is never started. Nothing that serves changes;
    /// no history entry is written; `module.rehearsed` is published. The
    /// report says whether the reload would commit, per instance.
    ///
    /// # Errors
    /// [`Error::Load`] when the library would fail in prepare,
    /// [`Error::Config`] for a config that cannot be encoded,
    /// [`Error::ReloadInProgress`], [`Error::UnknownModule`],
    /// [`Error::NodeDown`].
    pub async fn rehearse(
        &self,
        module: &str,
        options: ReloadOptions,
    ) -> Result<RehearsalReport, Error> {
        let module = module.to_string();
        self.ask("rehearse", |reply| AdminMsg::Rehearse {
            module,
            options,
            reply,
        })
        .await?
    }

    /// Returns `module` to its previous library.
    ///
    /// # Errors
    /// [`Error::RollbackRefused`] when there is no previous library or the
    /// module cannot downgrade its state (and `reset_state` is false); the
    /// errors of [`Admin::reload`] otherwise.
    pub async fn rollback(&self, module: &str, reset_state: bool) -> Result<ReloadReport, Error> {
        self.rollback_by(module, reset_state, Trigger::Admin).await
    }

    /// [`Admin::rollback`], recording `trigger` as who asked.
    ///
    /// # Errors
    /// As [`Admin::rollback`].
    pub async fn rollback_by(
        &self,
        module: &str,
        reset_state: bool,
        trigger: Trigger,
    ) -> Result<ReloadReport, Error> {
        self.rollback_to(module, None, reset_state, trigger).await
    }

    /// Returns `module` to the kept version `to` (code version; default:
    /// the previous one), walking back through the version stack in one
    /// swap: the serving code down-migrates to that version's state version.
    ///
    /// # Errors
    /// [`Error::RollbackRefused`] when `to` is not kept, there is no
    /// previous version, or the serving code cannot down-migrate (and
    /// `reset_state` is false); the errors of [`Admin::reload`] otherwise.
    pub async fn rollback_to(
        &self,
        module: &str,
        to: Option<&str>,
        reset_state: bool,
        trigger: Trigger,
    ) -> Result<ReloadReport, Error> {
        let module = module.to_string();
        let to = to.map(str::to_string);
        self.ask("rollback", |reply| AdminMsg::Rollback {
            module,
            to,
            reset_state,
            trigger,
            reply,
        })
        .await?
    }

    /// The node's status.
    ///
    /// # Errors
    /// [`Error::NodeDown`] when the supervisor is gone, [`Error::Busy`] when
    /// it does not take the request within `limits.admin_timeout` (as for
    /// every request).
    pub async fn status(&self) -> Result<NodeStatus, Error> {
        self.ask("status", |reply| AdminMsg::Status { reply }).await
    }

    /// A module's handling figures on this node: handled, handler errors,
    /// panics, restarts and sampled latency (p50/p99/max) of the serving
    /// version since it took over, and of the version it replaced.
    ///
    /// # Errors
    /// [`Error::UnknownModule`]; [`Error::NodeDown`], [`Error::Busy`] as for
    /// every request.
    pub async fn figures(&self, module: &str) -> Result<ModuleFigures, Error> {
        let module = module.to_string();
        self.ask("figures", |reply| AdminMsg::Figures { module, reply })
            .await?
    }

    /// The cluster as this node sees it: members, reachability,
    /// incarnations, each member's module versions.
    ///
    /// # Errors
    /// [`Error::NotInCluster`] when the node has no `[cluster]`;
    /// [`Error::NodeDown`], [`Error::Busy`] as for every request.
    pub async fn cluster(&self) -> Result<crate::cluster::ClusterStatus, Error> {
        self.ask("cluster", |reply| AdminMsg::Cluster { reply })
            .await?
    }

    /// The reload history, oldest first.
    ///
    /// # Errors
    /// [`Error::NodeDown`] when the supervisor is gone.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>, Error> {
        self.ask("history", |reply| AdminMsg::History { reply })
            .await
    }

    /// Starts a new module.
    ///
    /// # Errors
    /// [`Error::Config`] (a module of that name runs already),
    /// [`Error::Load`], [`Error::StartFailed`].
    pub async fn add_module(&self, spec: ModuleSpec) -> Result<(), Error> {
        self.ask("add module", |reply| AdminMsg::AddModule { spec, reply })
            .await?
    }

    /// Removes a module after draining its mailboxes.
    ///
    /// # Errors
    /// [`Error::UnknownModule`], [`Error::ReloadInProgress`].
    pub async fn remove_module(&self, module: &str) -> Result<(), Error> {
        let module = module.to_string();
        self.ask("remove module", |reply| AdminMsg::RemoveModule {
            module,
            reply,
        })
        .await?
    }

    /// Changes a module's instance count.
    ///
    /// # Errors
    /// [`Error::UnknownModule`], [`Error::ReloadInProgress`],
    /// [`Error::Config`] for 0 instances, [`Error::StartFailed`].
    pub async fn scale(&self, module: &str, instances: u32) -> Result<(), Error> {
        let module = module.to_string();
        self.ask("scale", |reply| AdminMsg::Scale {
            module,
            instances,
            reply,
        })
        .await?
    }

    /// The configuration the node runs now.
    ///
    /// # Errors
    /// [`Error::NodeDown`].
    pub async fn running_config(&self) -> Result<NodeConfig, Error> {
        self.ask("running config", |reply| AdminMsg::RunningConfig { reply })
            .await
    }

    /// The configuration last declared: what [`Admin::apply_config`] diffs
    /// a new one against (see [`AdminMsg::DeclaredConfig`]).
    ///
    /// # Errors
    /// [`Error::NodeDown`].
    pub async fn declared_config(&self) -> Result<NodeConfig, Error> {
        self.ask("declared config", |reply| AdminMsg::DeclaredConfig {
            reply,
        })
        .await
    }

    /// Applies a new configuration (see [`AdminMsg::ApplyConfig`]).
    ///
    /// # Errors
    /// [`Error::ConfigRejected`] listing the node-level keys that need a
    /// restart (nothing applied), [`Error::Config`] for an invalid config.
    pub async fn apply_config(&self, config: NodeConfig) -> Result<ConfigReport, Error> {
        self.ask("apply config", |reply| AdminMsg::ApplyConfig {
            config: Box::new(config),
            reply,
        })
        .await?
    }

    /// Applies a config file (see [`AdminMsg::ApplyConfigFile`]).
    ///
    /// # Errors
    /// [`Error::ConfigFile`] for an invalid file, and the errors of
    /// [`Admin::apply_config`].
    pub async fn apply_config_file(&self, path: impl Into<PathBuf>) -> Result<ConfigReport, Error> {
        let path = path.into();
        self.ask("apply config file", |reply| AdminMsg::ApplyConfigFile {
            path,
            reply,
        })
        .await?
    }

    /// Records a failure outside the protocol (see [`AdminMsg::RecordFailure`]).
    ///
    /// # Errors
    /// [`Error::NodeDown`].
    pub fn record_failure(
        &self,
        module: &str,
        phase: Phase,
        error: impl Into<String>,
    ) -> Result<(), Error> {
        self.sup
            .send_message(SupervisorMsg::Admin(AdminMsg::RecordFailure {
                module: module.to_string(),
                phase,
                error: error.into(),
            }))
            .map_err(|_| Error::NodeDown)
    }

    /// Sends a request and waits for its answer: at most `taken_within`
    /// for the supervisor to take it (then [`Error::Busy`], and the
    /// supervisor drops it unrun), then as long as its outcome takes.
    async fn ask<T: Send + 'static>(
        &self,
        what: &'static str,
        msg: impl FnOnce(RpcReplyPort<T>) -> AdminMsg,
    ) -> Result<T, Error> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let Some(limit) = self.taken_within else {
            self.sup
                .send_message(SupervisorMsg::Admin(msg(reply.into())))
                .map_err(|_| Error::NodeDown)?;
            return answer.await.map_err(|_| Error::NodeDown);
        };
        let (taken, mut was_taken) = tokio::sync::oneshot::channel();
        let request = Internal::Bounded(Box::new(msg(reply.into())), taken);
        self.sup
            .send_message(SupervisorMsg::Internal(InternalMsg(request)))
            .map_err(|_| Error::NodeDown)?;
        match tokio::time::timeout(limit, &mut was_taken).await {
            Ok(Ok(())) => {}
            // Dropped untaken: the supervisor stopped.
            Ok(Err(_)) => return Err(Error::NodeDown),
            Err(_) => {
                // Closing first makes the outcome exact: either the
                // supervisor took it before (it runs; wait for it), or it
                // finds the request abandoned and drops it.
                was_taken.close();
                if was_taken.try_recv().is_err() {
                    tracing::warn!(target: "molt::admin", request = what, waited = ?limit, "the supervisor is busy: request not taken");
                    return Err(Error::Busy {
                        what,
                        waited: limit,
                    });
                }
            }
        }
        answer.await.map_err(|_| Error::NodeDown)
    }
}
