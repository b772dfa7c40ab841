//! # molt-runtime
//!
//! The runtime of molt: a [`Node`] runs each module as supervised ractor actor
//! instances whose behaviour comes from a `cdylib` built against `molt-abi`,
//! and swaps that behaviour to a new library version in place, following the
//! reload protocol of `docs/semantics.md`: prepare → drain → snapshot → migrate
//! → swap → verify → two-phase commit (or rollback) → replay. Clients keep
//! their [`ModuleHandle`]s across reloads; messages sent during a reload wait
//! in the mailbox; a failed reload leaves the old code serving with exactly its
//! old state.
//!
//! Entry points: [`Node::start`], [`Node::module`], [`Admin`] (the supervisor
//! admin messages), [`EventBus`] / [`Node::subscribe`]; [`dev`] rebuilds and
//! reloads module crates on save (`NodeConfig::dev`); [`http::serve`] is the
//! HTTP admin surface and [`http::AdminClient`] its client.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod admin;
pub mod cargo_build;
mod cluster;
pub mod config;
mod delivery;
pub mod dev;
mod directory;
pub mod error;
pub mod events;
pub mod figures;
mod figures_book;
mod forwarder;
mod handle;
pub mod history;
mod host_ctx;
pub mod http;
mod keyed;
pub mod loader;
pub mod metrics;
mod module_actor;
mod msg_bytes;
mod node;
mod phase;
mod raw_handle;
mod regular_file;
pub mod rehearsal;
pub mod reload;
mod replies;
mod resolve;
mod restart;
mod routes;
mod sender;
pub mod shutdown;
mod status;
mod supervisor;
pub mod watcher;

pub use admin::{
    Admin, AdminMsg, ConfigReport, InstanceStatus, KeyedStatus, LibrarySource, ModuleStatus,
    NodeStatus, ReloadOptions, ReloadReport,
};
pub use cluster::{ClusterStatus, MemberStatus, ModuleVersion};
pub use config::diff::{Change, Plan as ConfigPlan};
pub use config::KeyedSpec;
pub use config::{ClusterSpec, Limits, ModuleSpec, NodeConfig};
pub use dev::DevMode;
pub use error::{CallError, Error, LoadCause, SendError};
pub use events::{Event, EventBus, EventStream, Received, Stamped};
pub use figures::{Figures, Histogram, LatencySummary, ModuleFigures, VersionFigures};
pub use handle::ModuleHandle;
pub use history::{Action, HistoryEntry, KeySwitchFailure, Outcome, Restored, Trigger};
pub use loader::mapped_libraries;
pub use molt_abi::{Address, ErrorKind, Key, Protocol, Request, Target, WrongReply};
pub use node::Node;
pub use rehearsal::{InstanceRehearsal, ModuleCheck, RehearsalReport};
pub use reload::Phase;
pub use shutdown::{InstanceDrain, ModuleDrain, ShutdownReport};
pub use supervisor::{InternalMsg, SupervisorMsg};
pub use watcher::Watcher;
