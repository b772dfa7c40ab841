//! The supervisor actor: owns the module table, spawns module instances
//! linked to itself, runs reloads (each in a task of its own), answers admin
//! messages and restarts instances whose actor failed. It overrides ractor's
//! default child-failure handling, which would stop the supervisor.

mod cluster;
mod config_changes;
mod modules;
mod rehearsals;
mod reloads;
mod restarts;
mod versions;

use config_changes::ConfigDone;
use modules::AddDone;
use reloads::{ReloadDone, Request};
use versions::{Stack, Version};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use molt_abi::ErrorKind;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::admin::{
    Admin, AdminMsg, ConfigReport, InstanceStatus, LibrarySource, ModuleStatus, NodeStatus,
    ReloadOptions, ReloadReport,
};
use crate::config::diff::{self, Change};
use crate::config::{Limits, ModuleSpec, NodeConfig};
use crate::directory::{Directory, InstanceShared, ModuleSlot, Route};
use crate::error::Error;
use crate::events::{Event, EventBus};
use crate::figures::ModuleFigures;
use crate::history::{Action, History, HistoryEntry, Outcome, Trigger};
use crate::loader::{mapped_libraries, Library, Loader};
use crate::module_actor::{InstanceArgs, ModuleActor, StartFrom};
use crate::reload::{self, Phase, Plan, Source, SwapMode};

/// The supervisor's messages: admin requests, and internal ones.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// An admin request.
    Admin(AdminMsg),
    /// Internal bookkeeping (opaque).
    Internal(InternalMsg),
}

// With ractor's `cluster` feature (molt-runtime's `cluster`) ractor has no
// blanket `Message` impl: a local-only message type says so.
#[cfg(feature = "cluster")]
impl ractor::Message for SupervisorMsg {}

impl From<AdminMsg> for SupervisorMsg {
    fn from(m: AdminMsg) -> Self {
        SupervisorMsg::Admin(m)
    }
}

/// The supervisor's internal messages; not constructible outside the runtime.
pub struct InternalMsg(pub(crate) Internal);

impl std::fmt::Debug for InternalMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalMsg")
    }
}

pub(crate) enum Internal {
    ReloadDone(Box<ReloadDone>),
    ConfigDone(Box<ConfigDone>),
    /// A module's library is loaded (or failed to): start its instances.
    AddDone(Box<AddDone>),
    /// An admin request whose caller waits a bounded time for it to be
    /// taken: the supervisor says so on the sender before running it, and
    /// drops it unrun when the caller has given up ([`crate::Admin`]).
    Bounded(Box<AdminMsg>, tokio::sync::oneshot::Sender<()>),
    /// An instance restarted from a checkpoint (in place, or replaced by a
    /// forced reload): publish and record it.
    Restarted(Box<crate::restart::Restarted>),
}

/// A running module. `spec.library`, `spec.config` and `config` always
/// describe the serving version (`current`); the versions before it are in
/// `versions`.
struct ModuleEntry {
    spec: ModuleSpec,
    config: Arc<Vec<u8>>,
    current: Arc<Library>,
    /// Where the serving library came from.
    source: LibrarySource,
    /// The versions it ran before, for `rollback` (docs/semantics.md "Rollback
    /// and forced reloads").
    versions: Stack,
    slot: Arc<ModuleSlot>,
    /// A keyed module's actors (also in `slot`, for senders): a reload
    /// freezes them and swaps the live ones.
    keyed: Option<Arc<crate::keyed::Keyed>>,
    reloading: bool,
    /// Its handling figures, per serving version (docs/semantics.md
    /// "Handling figures").
    figures: Arc<crate::figures_book::FiguresBook>,
}

impl ModuleEntry {
    /// The serving version, as the stack keeps it.
    fn serving(&self) -> Version {
        Version {
            lib: self.current.clone(),
            library: self.spec.library.clone(),
            config_value: self.spec.config.clone(),
            config: self.config.clone(),
            source: self.source,
        }
    }

    /// Makes `version` the serving one (its library, path and config).
    fn serve(&mut self, version: Version) {
        self.slot
            .wants_events
            .store(version.lib.wants_events, Ordering::Relaxed);
        self.current = version.lib;
        self.spec.library = version.library;
        self.spec.config = version.config_value;
        self.config = version.config;
        self.source = version.source;
        // A new version serves: its figures start a period of their own.
        self.figures
            .new_period(&self.slot.routes.load(), &self.current.code_version);
    }
}

/// Arguments of the supervisor.
pub(crate) struct SupervisorArgs {
    /// The node-level settings (its `modules` are ignored: the table is the
    /// truth about modules).
    pub base: NodeConfig,
    pub node: String,
    pub loader: Loader,
    pub bus: EventBus,
    pub directory: Directory,
    pub limits: Limits,
    pub history_len: usize,
    /// The cluster membership view (empty when the node is not in one).
    pub cluster: crate::cluster::membership::ClusterView,
}

pub(crate) struct SupState {
    base: NodeConfig,
    /// The configuration as last declared (the node's start, or the last
    /// config change applied whole): a config change is diffed against it,
    /// not against the running modules, so an edit applies only what it
    /// changed and an admin reload is not undone by an unrelated edit.
    declared: NodeConfig,
    applying_config: bool,
    node: String,
    started: Instant,
    table: BTreeMap<String, ModuleEntry>,
    /// Modules whose library is being loaded (in a task, never in the
    /// actor): a name is in `table` or here, never both, so it is added
    /// once.
    adding: std::collections::BTreeSet<String>,
    history: History,
    loader: Loader,
    bus: EventBus,
    directory: Directory,
    limits: Limits,
    cluster: crate::cluster::membership::ClusterView,
}

pub(crate) struct Supervisor;

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupState, ActorProcessingErr> {
        let declared = args.base.clone();
        let mut base = args.base;
        base.modules.clear();
        let history = match &base.history_file {
            Some(file) => {
                let bus = args.bus.clone();
                History::with_file(args.history_len, file)
                    .map_err(|e| format!("cannot read the history file {}: {e}", file.display()))?
                    .rotate_at(args.limits.history_file_max_bytes)
                    .on_write_failure(move |file, error| {
                        crate::metrics::history_write_failed();
                        bus.publish(Event::HistoryWriteFailed {
                            file: file.display().to_string(),
                            error: error.to_string(),
                        });
                    })
            }
            None => History::new(args.history_len),
        };
        Ok(SupState {
            base,
            declared,
            applying_config: false,
            node: args.node,
            started: Instant::now(),
            table: BTreeMap::new(),
            adding: Default::default(),
            history,
            loader: args.loader,
            bus: args.bus,
            directory: args.directory,
            limits: args.limits,
            cluster: args.cluster,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        // A bounded request runs only if its caller still waits for it.
        let msg = match msg {
            SupervisorMsg::Internal(InternalMsg(Internal::Bounded(msg, taken))) => {
                if taken.send(()).is_err() {
                    // The caller gave up (limits.admin_timeout) and was
                    // answered Busy: the request must not run.
                    tracing::debug!(target: "molt::supervisor", "dropping an admin request its caller gave up on: {msg:?}");
                    return Ok(());
                }
                SupervisorMsg::Admin(*msg)
            }
            other => other,
        };
        match msg {
            SupervisorMsg::Admin(AdminMsg::Reload {
                module,
                options,
                reply,
            }) => Self::start_reload(&myself, st, module, Request::Reload, options, reply),
            SupervisorMsg::Admin(AdminMsg::Rollback {
                module,
                to,
                reset_state,
                trigger,
                reply,
            }) => Self::start_reload(
                &myself,
                st,
                module,
                Request::Rollback { reset_state, to },
                ReloadOptions::default().by(trigger),
                reply,
            ),
            SupervisorMsg::Admin(AdminMsg::Rehearse {
                module,
                options,
                reply,
            }) => Self::start_rehearsal(st, module, options, reply),
            SupervisorMsg::Admin(AdminMsg::Status { reply }) => {
                let _ = reply.send(Self::status(st));
            }
            SupervisorMsg::Admin(AdminMsg::Figures { module, reply }) => {
                let _ = reply.send(Self::figures(st, &module));
            }
            SupervisorMsg::Admin(AdminMsg::Cluster { reply }) => {
                let _ = reply.send(Self::cluster(st));
            }
            SupervisorMsg::Admin(AdminMsg::History { reply }) => {
                let _ = reply.send(st.history.entries());
            }
            SupervisorMsg::Admin(AdminMsg::AddModule { spec, reply }) => {
                Self::add_module(&myself, st, spec, reply)
            }
            SupervisorMsg::Admin(AdminMsg::RemoveModule { module, reply }) => {
                Self::remove_module(st, module, reply)
            }
            SupervisorMsg::Admin(AdminMsg::Scale {
                module,
                instances,
                reply,
            }) => Self::scale(&myself, st, module, instances, reply).await,
            SupervisorMsg::Admin(AdminMsg::RunningConfig { reply }) => {
                let _ = reply.send(Self::running_config(st));
            }
            SupervisorMsg::Admin(AdminMsg::DeclaredConfig { reply }) => {
                let _ = reply.send(st.declared.clone());
            }
            SupervisorMsg::Admin(AdminMsg::ApplyConfig { config, reply }) => {
                Self::apply_config(&myself, st, *config, Trigger::Admin, reply)
            }
            SupervisorMsg::Admin(AdminMsg::ApplyConfigFile { path, reply }) => {
                match crate::config::file::load(&path) {
                    Ok(config) => Self::apply_config(&myself, st, config, Trigger::Watch, reply),
                    Err(e) => Self::reject_config(st, e, Trigger::Watch, reply),
                }
            }
            SupervisorMsg::Admin(AdminMsg::RecordFailure {
                module,
                phase,
                error,
            }) => Self::record_failure(st, module, phase, error),
            // Unwrapped above.
            SupervisorMsg::Internal(InternalMsg(Internal::Bounded(..))) => {}
            SupervisorMsg::Internal(InternalMsg(Internal::ConfigDone(done))) => {
                Self::finish_config(st, *done)
            }
            SupervisorMsg::Internal(InternalMsg(Internal::ReloadDone(done))) => {
                Self::finish_reload(st, *done)
            }
            SupervisorMsg::Internal(InternalMsg(Internal::AddDone(done))) => {
                Self::finish_add(&myself, st, *done).await
            }
            SupervisorMsg::Internal(InternalMsg(Internal::Restarted(r))) => {
                Self::record_restart(st, *r)
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        // Never stop the supervisor because a child failed (ractor's default).
        if let SupervisionEvent::ActorFailed(cell, err) = evt {
            Self::restart_failed(&myself, st, cell, err.to_string()).await;
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        if let Ok(mut dir) = st.directory.write() {
            dir.clear();
        }
        // Whatever `Node::shutdown` has not drained already (it closes and
        // drains every module first; a module added meanwhile is left):
        // drained too, never dropped with its queue (issue #8 item 8).
        let slots = st
            .table
            .iter()
            .map(|(name, e)| (name.clone(), e.slot.clone()))
            .collect();
        crate::shutdown::drain_slots(slots, st.limits.shutdown_timeout).await;
        Ok(())
    }
}
