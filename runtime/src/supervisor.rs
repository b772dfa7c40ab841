//! The supervisor actor: owns the module table, spawns module instances
//! linked to itself, runs reloads (each in a task of its own), answers admin
//! messages and restarts instances whose actor failed. It overrides ractor's
//! default child-failure handling, which would stop the supervisor.

mod config_changes;
mod modules;
mod reloads;

use config_changes::ConfigDone;
use reloads::{ReloadDone, Request};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use molt_abi::ErrorKind;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::admin::{
    Admin, AdminMsg, ConfigReport, InstanceStatus, ModuleStatus, NodeStatus, ReloadOptions,
    ReloadReport,
};
use crate::config::diff::{self, Change};
use crate::config::{Limits, ModuleSpec, NodeConfig};
use crate::directory::{Directory, InstanceShared, ModuleSlot, Route};
use crate::error::Error;
use crate::events::{Event, EventBus};
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
}

struct ModuleEntry {
    spec: ModuleSpec,
    config: Arc<Vec<u8>>,
    current: Arc<Library>,
    previous: Option<Arc<Library>>,
    slot: Arc<ModuleSlot>,
    reloading: bool,
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
}

pub(crate) struct SupState {
    base: NodeConfig,
    applying_config: bool,
    node: String,
    started: Instant,
    table: BTreeMap<String, ModuleEntry>,
    history: History,
    loader: Loader,
    bus: EventBus,
    directory: Directory,
    limits: Limits,
}

pub(crate) struct Supervisor;

impl Supervisor {}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupState, ActorProcessingErr> {
        let mut base = args.base;
        base.modules.clear();
        let history = match &base.history_file {
            Some(file) => History::with_file(args.history_len, file)
                .map_err(|e| format!("cannot read the history file {}: {e}", file.display()))?,
            None => History::new(args.history_len),
        };
        Ok(SupState {
            base,
            applying_config: false,
            node: args.node,
            started: Instant::now(),
            table: BTreeMap::new(),
            history,
            loader: args.loader,
            bus: args.bus,
            directory: args.directory,
            limits: args.limits,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Admin(AdminMsg::Reload {
                module,
                options,
                reply,
            }) => Self::start_reload(&myself, st, module, Request::Reload, options, reply),
            SupervisorMsg::Admin(AdminMsg::Rollback {
                module,
                reset_state,
                trigger,
                reply,
            }) => Self::start_reload(
                &myself,
                st,
                module,
                Request::Rollback { reset_state },
                ReloadOptions::default().by(trigger),
                reply,
            ),
            SupervisorMsg::Admin(AdminMsg::Status { reply }) => {
                let _ = reply.send(Self::status(st));
            }
            SupervisorMsg::Admin(AdminMsg::History { reply }) => {
                let _ = reply.send(st.history.entries());
            }
            SupervisorMsg::Admin(AdminMsg::AddModule { spec, reply }) => {
                let result = Self::add_module(&myself, st, spec).await;
                let _ = reply.send(result);
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
            SupervisorMsg::Internal(InternalMsg(Internal::ConfigDone(done))) => {
                Self::finish_config(st, *done)
            }
            SupervisorMsg::Internal(InternalMsg(Internal::ReloadDone(done))) => {
                Self::finish_reload(st, *done)
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
