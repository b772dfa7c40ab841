//! The ABI-stable interface between the host and a module library.
//!
//! Module authors never touch these types: [`crate::export_module!`] builds
//! them. The host (`molt-runtime`) loads a library's [`ModuleRef`] and drives
//! the [`BehaviourBox`] objects it constructs. Every type here is checked by
//! abi_stable's layout check when a library is loaded, so a library built
//! against another version of this interface is refused before any of its code
//! runs. Evolution is append-only: new root-module fields go after the
//! `last_prefix_field`.

// `#[sabi_trait]` expands to impls outside the trait's module; allowed here only.
#![allow(non_local_definitions)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RArc, RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

pub use crate::error::ErrorKind;

/// An error crossing the boundary: a kind and a message.
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq, StableAbi)]
pub struct ModError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Human-readable detail, written by the module.
    pub message: RString,
}

impl std::fmt::Display for ModError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One module instance's behaviour, owned by one host actor.
///
/// Every method runs the module's code inside `catch_unwind`; a panic comes
/// back as [`ErrorKind::Panicked`].
#[sabi_trait]
pub trait Behaviour: Send {
    /// Handles one msgpack-encoded message. With `want_reply` false (a cast)
    /// the reply is not encoded and an empty vector is returned.
    fn handle(&mut self, msg: RSlice<'_, u8>, want_reply: bool) -> RResult<RVec<u8>, ModError>;

    /// The state as msgpack, at the library's current state version.
    fn snapshot(&self) -> RResult<RVec<u8>, ModError>;

    /// The state as msgpack at an older state version (`code_change(down)`).
    fn downgrade(&self, to: u32) -> RResult<RVec<u8>, ModError>;

    /// Starts serving (after `init` or `migrate`, and after a rollback).
    fn start(&mut self) -> RResult<(), ModError>;

    /// Stops serving: the old behaviour during a swap, or at shutdown.
    fn stop(&mut self) -> RResult<(), ModError>;

    /// Handles a host event (only for modules that asked for events).
    fn event(&mut self, kind: RStr<'_>, json: RStr<'_>) -> RResult<(), ModError>;

    /// Checks that the behaviour is healthy after a swap.
    #[sabi(last_prefix_field)]
    fn verify(&self) -> RResult<(), ModError>;

    // Methods below the prefix were added later (see `HostCtx`): a library
    // built before them gets the default body. Append only.

    /// Handles the answer to a request this actor made with `HostCtx::ask`:
    /// the correlation it chose and the encoded reply (or why there is
    /// none). During the call, `HostCtx::sender` is the actor asked.
    fn answer(
        &mut self,
        correlation: u64,
        reply: RResult<RVec<u8>, ModError>,
    ) -> RResult<(), ModError> {
        let _ = reply;
        RResult::RErr(ModError {
            kind: ErrorKind::Failed,
            message: RString::from(format!(
                "the answer with correlation {correlation} reached a library that predates answers"
            )),
        })
    }

    /// Whether the module has a `verify` of its own. When it has none, the
    /// host does not call `verify` during a swap (it would only return `Ok`)
    /// and spares the hand-off to another thread that bounds it by
    /// `limits.verify_timeout`. A library built before this method counts
    /// as having one (the default body).
    fn has_verify(&self) -> bool {
        true
    }

    /// Writes the state as msgpack (exactly what `snapshot` returns) at the
    /// end of `out`, a buffer the host allocated: the host then keeps the
    /// bytes without copying them out of the library's allocation. A
    /// library built before this method gets the default body, which
    /// copies `snapshot`'s bytes.
    fn snapshot_into(&self, out: &mut RVec<u8>) -> RResult<(), ModError> {
        append_to(out, self.snapshot())
    }

    /// Whether `snapshot` would return exactly `expected`, found by encoding
    /// the state against it without building a buffer of its own (the
    /// verify round trip's comparison): `false` when it would not, or when
    /// the library cannot tell (the default body, for a library built
    /// before this method: the host then takes a full `snapshot`). An
    /// error is the module's: its state does not encode.
    fn snapshot_is(&self, expected: RSlice<'_, u8>) -> RResult<bool, ModError> {
        let _ = expected;
        RResult::ROk(false)
    }

    /// Handles one message as `handle` does, and writes the reply (when
    /// `want_reply`) at the end of `out`, a buffer the host allocated: the
    /// host then hands the reply on without copying it out of the
    /// library's allocation (a call's reply crossed as the library's own
    /// vector, which the host copied into one of its own). A library built
    /// before this method gets the default body, which copies `handle`'s
    /// reply.
    fn handle_into(
        &mut self,
        msg: RSlice<'_, u8>,
        want_reply: bool,
        out: &mut RVec<u8>,
    ) -> RResult<(), ModError> {
        append_to(out, self.handle(msg, want_reply))
    }
}

/// What the default bodies of the `*_into` methods do for a library built
/// before them: the bytes the older method returned, copied at the end of
/// the host's `out`; its error passed on.
fn append_to(out: &mut RVec<u8>, bytes: RResult<RVec<u8>, ModError>) -> RResult<(), ModError> {
    bytes.map(|bytes| out.extend_from_copy_slice(&bytes))
}

/// An actor's address as the host hands it to a module (see
/// [`crate::Address`], which converts to and from it).
#[repr(C)]
#[derive(Debug, Clone, PartialEq, Eq, StableAbi)]
pub struct RAddress {
    /// The node the actor lives on.
    pub node: RString,
    /// Its module.
    pub module: RString,
    /// The instance index, when `key` is none.
    pub instance: u32,
    /// The key, for an actor of a keyed module.
    pub key: ROption<RVec<u8>>,
}

/// An actor's address as a module hands it to the host: borrowed, so a
/// send copies nothing.
#[repr(C)]
#[derive(Debug, Clone, Copy, StableAbi)]
pub struct AddressRef<'a> {
    /// The node the actor lives on.
    pub node: RStr<'a>,
    /// Its module.
    pub module: RStr<'a>,
    /// The instance index, when `key` is none.
    pub instance: u32,
    /// The key, for an actor of a keyed module.
    pub key: ROption<RSlice<'a, u8>>,
}

/// The error a default method body returns: the host is older than the
/// method the module called.
fn host_predates(what: &str) -> ModError {
    ModError {
        kind: ErrorKind::Failed,
        message: RString::from(format!("this host predates {what}")),
    }
}

/// A behaviour as the host owns it.
pub type BehaviourBox = Behaviour_TO<'static, RBox<()>>;

/// What a module may call back into the host. Implemented by the host; a
/// module sees it through [`crate::Ctx`].
///
/// A cdylib has its own copy of every static (its own `tracing` dispatcher
/// and `metrics` recorder, which talk to nobody), so logs, metrics, events and
/// messages to other modules all go through this object.
///
/// The `send*` methods are what [`crate::Ctx`]'s `cast*` methods call: they
/// keep the names they were built with, since the layout check compares
/// them and a rename would refuse every library built before it. Instance
/// indices are `u32` here and `usize` in the SDK ([`crate::index`]).
#[sabi_trait]
pub trait HostCtx: Send + Sync + Clone {
    /// The module's name.
    fn module(&self) -> RStr<'_>;
    /// The instance index (0-based) this behaviour runs as.
    fn instance(&self) -> u32;
    /// Logs a message at a level (see [`crate::Level`]) in the host's subscriber.
    fn log(&self, level: u8, message: RStr<'_>);
    /// Adds to a counter, labelled with the module's name.
    fn counter(&self, name: RStr<'_>, delta: u64);
    /// Sets a gauge, labelled with the module's name.
    fn gauge(&self, name: RStr<'_>, value: f64);
    /// Publishes an application event (a JSON payload) on the host's event bus.
    fn publish(&self, topic: RStr<'_>, json: RStr<'_>);
    /// Sends (casts) a msgpack-encoded message to another module.
    #[sabi(last_prefix_field)]
    fn send(&self, module: RStr<'_>, msg: RSlice<'_, u8>) -> RResult<(), ModError>;

    // Methods below the prefix were added later. abi_stable makes each an
    // optional vtable entry: a library built against this interface can run
    // on a host built before the method existed, and then gets the default
    // body. Append only, always with a default.

    /// Sends (casts) a msgpack-encoded message to one instance of a module:
    /// `instance`, which must be below its instance count (an index out of
    /// range is an error naming the module, the index and the count; hosts
    /// before `send_addr` took it modulo the count).
    fn send_to(
        &self,
        module: RStr<'_>,
        instance: u32,
        msg: RSlice<'_, u8>,
    ) -> RResult<(), ModError> {
        let _ = (instance, msg);
        RResult::RErr(ModError {
            kind: ErrorKind::Failed,
            message: RString::from(format!(
                "cannot cast to an instance of {module}: this host predates cast_to"
            )),
        })
    }

    /// The name of the node this instance runs on.
    fn node(&self) -> RString {
        RString::from("local")
    }

    /// The address of the sender of the message being handled: an actor of
    /// a module, or none (an application handle, HTTP, the CLI, or outside
    /// a delivery).
    fn sender(&self) -> ROption<RAddress> {
        ROption::RNone
    }

    /// How many instances `module` runs now.
    fn instances(&self, module: RStr<'_>) -> RResult<u32, ModError> {
        let _ = module;
        RResult::RErr(host_predates("instances"))
    }

    /// Sends (casts) a msgpack-encoded message to the actor at `to`,
    /// resolved now: an actor that does not exist is an error.
    fn send_addr(&self, to: AddressRef<'_>, msg: RSlice<'_, u8>) -> RResult<(), ModError> {
        let _ = (to, msg);
        RResult::RErr(host_predates("cast_addr"))
    }

    /// Sends a request to the actor at `to`; its reply (or why there is
    /// none) comes back later through `Behaviour::answer` with
    /// `correlation`. Never blocks.
    fn ask(
        &self,
        to: AddressRef<'_>,
        msg: RSlice<'_, u8>,
        correlation: u64,
    ) -> RResult<(), ModError> {
        let _ = (to, msg, correlation);
        RResult::RErr(host_predates("ask"))
    }

    /// Keeps the call being handled open: its reply port moves to the host,
    /// under the returned token, and the handler's return value is dropped.
    fn reply_later(&self) -> RResult<u64, ModError> {
        RResult::RErr(host_predates("reply_later"))
    }

    /// Answers the open call `token` (taken with `reply_later`).
    fn reply(&self, token: u64, reply: RResult<RSlice<'_, u8>, ModError>) -> RResult<(), ModError> {
        let _ = (token, reply);
        RResult::RErr(host_predates("reply"))
    }

    /// Sends (casts) a msgpack-encoded message to the actor of `key` in the
    /// keyed module `module`, activating it if it is not live.
    fn send_key(
        &self,
        module: RStr<'_>,
        key: RSlice<'_, u8>,
        msg: RSlice<'_, u8>,
    ) -> RResult<(), ModError> {
        let _ = (module, key, msg);
        RResult::RErr(host_predates("cast_key"))
    }

    /// Sends (casts) a msgpack-encoded message to the sender of the
    /// message being handled (`Ctx::cast_sender`): the host routes it back
    /// from what it knows of the sender, so no address crosses the
    /// boundary. An error ([`no_sender`]) when the message has none (it
    /// came from an application handle, HTTP or the CLI, or no message is
    /// being handled on the calling thread).
    ///
    /// Added after `send_key` (append-only, issue #11): libraries built
    /// before it never call it and load and run as before. A library built
    /// with it, on a host that predates it, gets this default body, which
    /// does the same through `sender` and `send_addr`.
    fn send_sender(&self, msg: RSlice<'_, u8>) -> RResult<(), ModError> {
        match self.sender() {
            ROption::RSome(to) => {
                let to = AddressRef {
                    node: to.node.as_rstr(),
                    module: to.module.as_rstr(),
                    instance: to.instance,
                    key: to.key.as_ref().map(|k| k.as_rslice()),
                };
                self.send_addr(to, msg)
            }
            ROption::RNone => RResult::RErr(no_sender()),
        }
    }
}

/// The error of a cast to the sender ([`HostCtx::send_sender`]) when the
/// message being handled has none.
pub fn no_sender() -> ModError {
    ModError {
        kind: ErrorKind::Failed,
        message: RString::from(
            "the message being handled has no sender to answer: it came from an application \
             handle, HTTP or the CLI (or no message is being handled on this thread)",
        ),
    }
}

/// The context as it crosses the boundary.
pub type HostCtxBox = HostCtx_TO<'static, RArc<()>>;

/// Builds a fresh behaviour from a msgpack config.
pub type InitFn =
    extern "C" fn(config: RSlice<'_, u8>, ctx: HostCtxBox) -> RResult<BehaviourBox, ModError>;

/// Builds a behaviour from a state of some state version (`from`), converting
/// it to the library's current version.
pub type MigrateFn = extern "C" fn(
    from: u32,
    state: RSlice<'_, u8>,
    config: RSlice<'_, u8>,
    ctx: HostCtxBox,
) -> RResult<BehaviourBox, ModError>;

/// The type of the `state_version` field (changed only by the test-only
/// `abi-mismatch-fixture` feature, to build a library with another layout).
#[cfg(not(feature = "abi-mismatch-fixture"))]
pub type StateVersionField = u32;
/// The type of the `state_version` field (changed only by the test-only
/// `abi-mismatch-fixture` feature, to build a library with another layout).
#[cfg(feature = "abi-mismatch-fixture")]
pub type StateVersionField = u64;

/// The root module every molt library exports.
#[repr(C)]
#[derive(Debug, StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ModuleRef)))]
#[sabi(missing_field(panic))]
pub struct ModuleRoot {
    /// The module's name; a library may only replace a module of the same name.
    pub name: RStr<'static>,
    /// The module's code version (free-form, e.g. "2.1.0").
    pub code_version: RStr<'static>,
    /// The version of the state layout this library produces.
    pub state_version: StateVersionField,
    /// Whether the module wants host events delivered to `Behaviour::event`.
    pub wants_events: bool,
    /// Constructs a fresh behaviour (see [`InitFn`]).
    pub init:
        extern "C" fn(config: RSlice<'_, u8>, ctx: HostCtxBox) -> RResult<BehaviourBox, ModError>,
    /// Constructs a behaviour from an existing state (see [`MigrateFn`]).
    #[sabi(last_prefix_field)]
    pub migrate: extern "C" fn(
        from: u32,
        state: RSlice<'_, u8>,
        config: RSlice<'_, u8>,
        ctx: HostCtxBox,
    ) -> RResult<BehaviourBox, ModError>,
}

impl RootModule for ModuleRef {
    declare_root_module_statics! {ModuleRef}
    const BASE_NAME: &'static str = "molt_module";
    const NAME: &'static str = "molt_module";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

#[cfg(test)]
mod tests {
    use abi_stable::sabi_trait::TD_Opaque;

    use super::*;

    /// A behaviour as a library built before `handle_into` has it: only
    /// the methods of its time.
    struct Old {
        fails: bool,
    }

    impl Behaviour for Old {
        fn handle(&mut self, msg: RSlice<'_, u8>, want_reply: bool) -> RResult<RVec<u8>, ModError> {
            if self.fails {
                return RResult::RErr(ModError {
                    kind: ErrorKind::Failed,
                    message: "refused".into(),
                });
            }
            let mut reply = RVec::from(msg.to_vec());
            if want_reply {
                reply.push(b'!');
            }
            RResult::ROk(reply)
        }
        fn snapshot(&self) -> RResult<RVec<u8>, ModError> {
            RResult::ROk(RVec::new())
        }
        fn downgrade(&self, _to: u32) -> RResult<RVec<u8>, ModError> {
            RResult::ROk(RVec::new())
        }
        fn start(&mut self) -> RResult<(), ModError> {
            RResult::ROk(())
        }
        fn stop(&mut self) -> RResult<(), ModError> {
            RResult::ROk(())
        }
        fn event(&mut self, _kind: RStr<'_>, _json: RStr<'_>) -> RResult<(), ModError> {
            RResult::ROk(())
        }
        fn verify(&self) -> RResult<(), ModError> {
            RResult::ROk(())
        }
    }

    #[test]
    fn handle_into_of_a_library_that_predates_it_appends_handles_reply() {
        let mut old = Behaviour_TO::from_value(Old { fails: false }, TD_Opaque);
        let mut out = RVec::from(vec![b'>']);
        let done = old.handle_into(RSlice::from_slice(b"ping"), true, &mut out);
        assert_eq!(done, RResult::ROk(()));
        assert_eq!(out.as_slice(), b">ping!");
    }

    #[test]
    fn handle_into_of_a_library_that_predates_it_passes_its_error_on() {
        let mut old = Behaviour_TO::from_value(Old { fails: true }, TD_Opaque);
        let mut out = RVec::new();
        let done = old.handle_into(RSlice::from_slice(b"ping"), true, &mut out);
        let RResult::RErr(e) = done else {
            panic!("the handler's error was lost: {done:?}");
        };
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Failed, "refused"));
        assert!(out.is_empty(), "an error writes no reply: {out:?}");
    }
}
