//! The errors of the runtime's public API.

use std::path::PathBuf;
use std::time::Duration;

use molt_abi::ErrorKind;

use crate::phase::Phase;

/// Why a library could not be loaded (the `prepare` phase).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadCause {
    /// There is no file at the path.
    #[error("no such file")]
    NotFound,
    /// The path is not inside any configured library directory.
    #[error("outside the configured library directories ({allowed})")]
    OutsideLibraryDirs {
        /// The allowed directories, comma separated.
        allowed: String,
    },
    /// The path names something other than a regular file (a FIFO, a
    /// device, a directory, a socket): refused before it is opened for a
    /// blocking read.
    #[error("not a regular file (it is {kind})")]
    NotARegularFile {
        /// What it is: "a FIFO", "a directory", ...
        kind: String,
    },
    /// The file is larger than `limits.max_library_bytes`: refused before
    /// anything is copied.
    #[error("{size} bytes, more than limits.max_library_bytes = {max}")]
    TooLarge {
        /// The file's size in bytes.
        size: u64,
        /// The configured cap.
        max: u64,
    },
    /// This process has mapped `limits.max_mapped_libraries` library copies
    /// already (they are never unmapped): the load is refused; restarting
    /// the node frees them.
    #[error(
        "this process has mapped {mapped} library copies, the cap limits.max_mapped_libraries \
         is {max} (copies are never unmapped: restart the node to free them)"
    )]
    TooManyMappings {
        /// Copies mapped so far (or being loaded).
        mapped: usize,
        /// The configured cap.
        max: usize,
    },
    /// Loading took longer than `limits.prepare_timeout`.
    #[error("loading it took longer than limits.prepare_timeout ({after:?})")]
    TimedOut {
        /// The timeout that elapsed.
        after: Duration,
    },
    /// Reading or copying the file failed.
    #[error("cannot read or copy it: {0}")]
    Io(String),
    /// The dynamic loader refused the file (truncated, empty, not ELF, ...).
    #[error("not a loadable shared library: {0}")]
    NotALibrary(String),
    /// A shared library, but it exports no molt module.
    #[error("not a molt module (it exports no molt root module)")]
    NotAMoltModule,
    /// Built against an incompatible version of `molt-abi`.
    #[error("built against an incompatible molt-abi: {0}")]
    IncompatibleAbiVersion(String),
    /// Built against a `molt-abi` whose layout differs from the host's.
    #[error("ABI layout mismatch: {0}")]
    LayoutMismatch(String),
    /// The library's module has another name than the module it should replace.
    #[error("it is module {found:?}, not {expected:?}")]
    WrongModule {
        /// The module being loaded or reloaded.
        expected: String,
        /// The name the library declares.
        found: String,
    },
    /// The library's root-module constructor failed or panicked.
    #[error("its root module failed to initialize: {0}")]
    RootModule(String),
}

/// Everything the node, the supervisor and the admin surface can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A library could not be loaded.
    #[error("library {path}: {cause}")]
    Load {
        /// The library file as given.
        path: PathBuf,
        /// What was wrong with it.
        cause: LoadCause,
    },
    /// The node configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The config file is invalid.
    #[error("{}:{line}:{column}: {message}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when the file could not be read).
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// No module of that name runs on this node.
    #[error("no module named {0:?} runs on this node")]
    UnknownModule(String),
    /// A module failed to start (in `init` or `start`).
    #[error("module {module} instance {instance} failed to start: {error}")]
    StartFailed {
        /// The module.
        module: String,
        /// The instance index.
        instance: usize,
        /// The module's error.
        error: String,
    },
    /// A reload of this module is already running; it was not interleaved.
    #[error("module {0} is already reloading; try again when it has finished")]
    ReloadInProgress(String),
    /// The reload failed in a phase and was rolled back: the old version keeps serving.
    #[error(
        "reload of {module} failed in phase {phase}: {error} (rolled back; {from} keeps serving)"
    )]
    ReloadFailed {
        /// The module.
        module: String,
        /// The phase that failed.
        phase: Phase,
        /// What failed.
        error: String,
        /// The code version that keeps serving.
        from: String,
    },
    /// A rollback was refused; nothing changed.
    #[error("rollback of {module} refused: {reason}")]
    RollbackRefused {
        /// The module.
        module: String,
        /// Why.
        reason: String,
    },
    /// The request does not apply to a keyed module (one actor per key):
    /// scaling, a forced reload, a rollback that resets the state. Nothing
    /// changed.
    #[error(
        "module {module} is keyed: {what} is not supported for a keyed module; nothing changed"
    )]
    NotForKeyed {
        /// The module.
        module: String,
        /// What was asked ("scaling", "a forced reload", ...).
        what: &'static str,
    },
    /// A configuration change touches node-level keys, which need a
    /// restart: the whole change was rejected and nothing of it applied.
    #[error("configuration change rejected: {} need(s) a restart; nothing was applied", keys.join(", "))]
    ConfigRejected {
        /// The node-level keys that differ.
        keys: Vec<String>,
    },
    /// The supervisor did not answer (the node is shutting down or gone).
    #[error("the node's supervisor is not running")]
    NodeDown,
    /// The supervisor did not take the request within `limits.admin_timeout`
    /// (it is busy with something slow): the request was dropped, nothing
    /// of it was done.
    #[error("the node is busy: it did not take the {what} request within {waited:?}; nothing was done, try again")]
    Busy {
        /// The request (`status`, `reload`, ...).
        what: &'static str,
        /// How long the request waited.
        waited: Duration,
    },
    /// The supervisor could not be started.
    #[error("cannot start the node: {0}")]
    Spawn(String),
    /// Change detection (hot reload) could not start watching.
    #[error("cannot watch for changes: {0}")]
    Watch(String),
    /// A cluster request to a node that is not in a cluster (its config has
    /// no `[cluster]`).
    #[error("this node is not in a cluster (its config has no [cluster] section)")]
    NotInCluster,
    /// A cluster rollout was refused before any node changed (README
    /// "Rolling out a new version"): a member unreachable, a library
    /// missing or different on a node (named, with both hashes), the module
    /// unknown somewhere, or another rollout under way.
    #[error("rollout refused: {0}")]
    RolloutRefused(String),
}

impl Error {
    /// The reload phase that failed, for `ReloadFailed` and `Load` errors.
    pub fn phase(&self) -> Option<Phase> {
        match self {
            Error::ReloadFailed { phase, .. } => Some(*phase),
            Error::Load { .. } => Some(Phase::Prepare),
            _ => None,
        }
    }
}

/// Why a message to a module got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The handler returned an error or panicked; the instance keeps serving.
    #[error("module {module}: handler {}: {message}", kind.as_str())]
    Handler {
        /// The module.
        module: String,
        /// What kind of failure the module reported: [`ErrorKind::Failed`]
        /// (the handler returned an error), [`ErrorKind::Panicked`] (caught
        /// in the library), [`ErrorKind::BadInput`] (the message did not
        /// decode).
        kind: ErrorKind,
        /// The module's message.
        message: String,
    },
    /// The message could not be encoded, or the reply not decoded.
    #[error("module {module}: cannot {what}: {error}")]
    Codec {
        /// The module.
        module: String,
        /// "encode the message" or "decode the reply".
        what: &'static str,
        /// The serde error.
        error: String,
    },
    /// A typed request ([`molt_abi::Request`]) was answered with a reply
    /// variant it does not answer with: the library serving is another
    /// version than the caller expects, or has a bug. The message was
    /// handled (its effects stay); the reply is described, not lost to a
    /// panic. `call` with the protocol's `Msg` gets the reply as it is.
    #[error("module {module}: the request {request} was answered with {reply}, not its reply")]
    WrongReply {
        /// The module.
        module: String,
        /// The request's type (`kv_proto::Get`).
        request: &'static str,
        /// The reply the module gave (its `Debug` form).
        reply: String,
    },
    /// No reply within the timeout (the message may still be handled).
    #[error("module {module}: no reply within {timeout:?}")]
    Timeout {
        /// The module.
        module: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The module is not running (removed, or the node stopped).
    #[error("module {0} is not running")]
    NotRunning(String),
    /// No actor has this address (its module is not running, its instance
    /// index is out of range, it names another node, or a key address names
    /// a module that is not keyed); the message was not sent.
    #[error("no actor at {0}")]
    NoActor(String),
    /// A key was given for a module that is not keyed.
    #[error(
        "module {0} is not keyed: send to it without a key (no .key(...) in Rust, no --key in the CLI, no ?key= over HTTP), or set keyed = true in its config"
    )]
    NotKeyed(String),
    /// A keyed module was sent to without a key.
    #[error("module {0} is keyed: send to one of its actors by key (.key(...) in Rust, --key KEY in the CLI, ?key=KEY over HTTP)")]
    KeyRequired(String),
    /// A keyed module has `max_live` actors live and the key sent to is not
    /// one of them: the message was not taken (no queueing; retry later,
    /// when idle actors have passivated, or raise `max_live`).
    #[error("module {module}: {max_live} keyed actors are live (max_live); the message to a key that is not live was refused")]
    TooManyLive {
        /// The module.
        module: String,
        /// Its `max_live`.
        max_live: u32,
    },
}

impl CallError {
    /// The error for the typed request `R` to `module` answered with
    /// `wrong`, a reply variant `R` does not answer with.
    pub(crate) fn wrong_reply<R: molt_abi::Request>(
        module: &str,
        wrong: molt_abi::WrongReply<<R::Protocol as molt_abi::Protocol>::Reply>,
    ) -> CallError
    where
        <R::Protocol as molt_abi::Protocol>::Reply: std::fmt::Debug,
    {
        CallError::WrongReply {
            module: module.to_string(),
            request: molt_abi::request_name::<R>(),
            reply: format!("{:?}", wrong.reply),
        }
    }
}

/// A message a [`crate::ModuleHandle`] could not deliver, handed back with
/// the reason (as tokio's `SendError<T>` and ractor's
/// `MessagingErr::SendErr(T)` do).
///
/// `message` is `Some` when the message never reached a mailbox (it did not
/// encode, or the module is not running): the caller still owns it and can
/// send it elsewhere or later. It is `None` when the message was delivered
/// and the failure came after (a handler error, a timeout, a reply that did
/// not decode): it may have been handled, so it is not handed back. A `cast`
/// fails only before delivery, so its error always holds the message.
pub struct SendError<M> {
    /// Why the call or cast failed.
    pub error: CallError,
    /// The message, when it was never delivered.
    pub message: Option<M>,
}

impl<M> SendError<M> {
    /// A message that never reached a mailbox.
    pub(crate) fn unsent(error: CallError, message: M) -> Self {
        SendError {
            error,
            message: Some(message),
        }
    }

    /// A failure after the message was delivered.
    pub(crate) fn delivered(error: CallError) -> Self {
        SendError {
            error,
            message: None,
        }
    }

    /// The message, when it was never delivered.
    pub fn into_message(self) -> Option<M> {
        self.message
    }
}

impl<M> From<SendError<M>> for CallError {
    fn from(e: SendError<M>) -> CallError {
        e.error
    }
}

impl<M> std::fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .field("message_returned", &self.message.is_some())
            .finish()
    }
}

impl<M> std::fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<M> std::error::Error for SendError<M> {}

impl<M: PartialEq> PartialEq for SendError<M> {
    fn eq(&self, other: &Self) -> bool {
        self.error == other.error && self.message == other.message
    }
}
