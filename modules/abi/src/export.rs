//! What [`crate::export_module!`] expands to: the root module of a library and
//! the adapter that turns a [`Module`] into a [`Behaviour`], with every entry
//! point guarded by `catch_unwind`.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    prefix_type::WithMetadata,
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, RResult, RSlice, RStr, RVec},
};

use crate::{
    ffi::{Behaviour, BehaviourBox, Behaviour_TO, HostCtxBox, ModError, ModuleRef, ModuleRoot},
    state, Answer, Ctx, Error, ErrorKind, Module,
};

/// Runs module code, turning an error or a panic into a [`ModError`].
fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, Error>) -> RResult<T, ModError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => ROk(value),
        Ok(Err(err)) => RErr(err.into()),
        Err(payload) => {
            let message = format!("{what} panicked: {}", panic_message(&*payload));
            drop_payload(payload);
            RErr(Error::new(ErrorKind::Panicked, message).into())
        }
    }
}

/// Drops a panic payload without letting its own `Drop` unwind out of the
/// library: a payload whose drop panics too is leaked.
fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// msgpack `nil`: how a host may encode "no config".
const MSGPACK_NIL: [u8; 1] = [0xc0];

fn config<M: Module>(bytes: &[u8]) -> Result<M::Config, Error> {
    if bytes.is_empty() || bytes == MSGPACK_NIL {
        Ok(M::Config::default())
    } else {
        state::decode("module config", bytes)
            .map_err(|e| explain_config::<M::Config>(bytes).unwrap_or(e))
    }
}

/// Why a config does not decode, naming the key and the type the module
/// expected (msgpack's own error names only the marker it found, e.g.
/// `wrong msgpack marker FixStr(4)`). The host encodes the config from
/// JSON (`ModuleSpec::config`), so decoding it back to JSON loses nothing;
/// only run once the direct decode failed. `None` when it cannot say more.
fn explain_config<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<Error> {
    let value: serde_json::Value = rmp_serde::from_slice(bytes).ok()?;
    let e = serde_path_to_error::deserialize::<_, T>(value).err()?;
    let path = e.path().to_string();
    let inner = e.into_inner();
    let why = if path == "." {
        inner.to_string()
    } else {
        format!("key `{path}`: {inner}")
    };
    Some(Error::bad_input("module config", why))
}

/// One live module instance inside the library.
///
/// The host drops it through abi_stable's box destructor, which aborts the
/// process if a panic unwinds out of it: the module value is dropped inside
/// `catch_unwind` here (see the `Drop` impl), never by the drop glue.
struct Instance<M: Module> {
    /// Always `Some` until the instance is dropped.
    module: Option<M>,
    ctx: Ctx,
}

impl<M: Module> Instance<M> {
    fn module(&self) -> Result<&M, Error> {
        self.module.as_ref().ok_or_else(gone)
    }

    /// Decodes `msg` and runs the module's handler on it: its reply, not
    /// yet encoded (`handle` and `handle_into` encode it where they must).
    fn handled(&mut self, msg: RSlice<'_, u8>) -> Result<M::Reply, Error> {
        let msg: M::Msg = state::decode("message", msg.as_slice())?;
        let module = self.module.as_mut().ok_or_else(gone)?;
        module.handle(msg, &self.ctx)
    }
}

/// Never happens: an instance's module is only taken when it is dropped.
fn gone() -> Error {
    Error::msg("the module instance was already dropped")
}

impl<M: Module> Drop for Instance<M> {
    /// Drops the module's state inside `catch_unwind`: a `Drop` that panics
    /// leaks what it left (it cannot be dropped again) and is reported
    /// through the context's log, and the host keeps running.
    fn drop(&mut self) {
        let Some(module) = self.module.take() else {
            return;
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(module))) {
            let why = panic_message(&*payload);
            drop_payload(payload);
            self.ctx.error(format!(
                "{}: dropping its state panicked: {why}; what the panic left of it is leaked",
                M::NAME
            ));
        }
    }
}

impl<M: Module> Behaviour for Instance<M> {
    fn handle(&mut self, msg: RSlice<'_, u8>, want_reply: bool) -> RResult<RVec<u8>, ModError> {
        guard("handle", || {
            let reply = self.handled(msg)?;
            if want_reply {
                state::encode(&reply).map(RVec::from)
            } else {
                Ok(RVec::new())
            }
        })
    }

    fn handle_into(
        &mut self,
        msg: RSlice<'_, u8>,
        want_reply: bool,
        out: &mut RVec<u8>,
    ) -> RResult<(), ModError> {
        guard("handle", || {
            let reply = self.handled(msg)?;
            if want_reply {
                state::encode_into(out, &reply)
            } else {
                Ok(())
            }
        })
    }

    fn snapshot(&self) -> RResult<RVec<u8>, ModError> {
        guard("snapshot", || state::encode(self.module()?).map(RVec::from))
    }

    fn downgrade(&self, to: u32) -> RResult<RVec<u8>, ModError> {
        guard("downgrade", || {
            let module = self.module()?;
            if to == M::STATE_VERSION {
                state::encode(module).map(RVec::from)
            } else if to > M::STATE_VERSION {
                Err(Error::cannot_downgrade(M::NAME, M::STATE_VERSION, to))
            } else {
                module.downgrade(to).map(RVec::from)
            }
        })
    }

    fn start(&mut self) -> RResult<(), ModError> {
        guard("start", || {
            let module = self.module.as_mut().ok_or_else(gone)?;
            module.start(&self.ctx)
        })
    }

    fn stop(&mut self) -> RResult<(), ModError> {
        guard("stop", || {
            let module = self.module.as_mut().ok_or_else(gone)?;
            module.stop(&self.ctx);
            Ok(())
        })
    }

    fn event(&mut self, kind: RStr<'_>, json: RStr<'_>) -> RResult<(), ModError> {
        guard("handle_event", || {
            let module = self.module.as_mut().ok_or_else(gone)?;
            module.handle_event(kind.as_str(), json.as_str(), &self.ctx)
        })
    }

    fn verify(&self) -> RResult<(), ModError> {
        guard("verify", || self.module()?.verify(&self.ctx))
    }

    fn has_verify(&self) -> bool {
        M::HAS_VERIFY
    }

    fn snapshot_into(&self, out: &mut RVec<u8>) -> RResult<(), ModError> {
        guard("snapshot", || state::encode_into(out, self.module()?))
    }

    fn snapshot_is(&self, expected: RSlice<'_, u8>) -> RResult<bool, ModError> {
        guard("snapshot", || {
            state::encodes_to(self.module()?, expected.as_slice())
        })
    }

    fn answer(
        &mut self,
        correlation: u64,
        reply: RResult<RVec<u8>, ModError>,
    ) -> RResult<(), ModError> {
        guard("handle_answer", || {
            let module = self.module.as_mut().ok_or_else(gone)?;
            let answer = Answer {
                correlation,
                from: self.ctx.sender(),
                result: reply.into_result().map(RVec::into_vec).map_err(Error::from),
            };
            module.handle_answer(answer, &self.ctx)
        })
    }
}

fn boxed<M: Module>(module: M, ctx: Ctx) -> BehaviourBox {
    Behaviour_TO::from_value(
        Instance {
            module: Some(module),
            ctx,
        },
        TD_Opaque,
    )
}

extern "C" fn init<M: Module>(
    config_bytes: RSlice<'_, u8>,
    host: HostCtxBox,
) -> RResult<BehaviourBox, ModError> {
    guard("init", || {
        let ctx = Ctx::from_host(host);
        let cfg = config::<M>(config_bytes.as_slice())?;
        M::init(cfg, &ctx).map(|m| boxed(m, ctx))
    })
}

extern "C" fn migrate<M: Module>(
    from: u32,
    state_bytes: RSlice<'_, u8>,
    config_bytes: RSlice<'_, u8>,
    host: HostCtxBox,
) -> RResult<BehaviourBox, ModError> {
    guard("migrate", || {
        if from > M::STATE_VERSION {
            return Err(Error::unknown_state_version(
                M::NAME,
                from,
                M::STATE_VERSION,
            ));
        }
        let ctx = Ctx::from_host(host);
        let cfg = config::<M>(config_bytes.as_slice())?;
        M::migrate(from, state_bytes.as_slice(), cfg, &ctx).map(|m| boxed(m, ctx))
    })
}

/// Builds the root module of a library exporting `M`. Called once per load by
/// the code [`crate::export_module!`] generates.
pub fn root_module<M: Module>() -> ModuleRef {
    // This library has its own copy of std and so its own panic hook. Panics
    // in module code are caught and returned to the host as errors carrying
    // the message, so the library's hook stays quiet instead of printing
    // outside the host's logging.
    std::panic::set_hook(Box::new(|_| {}));
    let root = ModuleRoot {
        name: RStr::from_str(M::NAME),
        code_version: RStr::from_str(M::CODE_VERSION),
        state_version: M::STATE_VERSION as _,
        wants_events: M::EVENTS,
        init: init::<M>,
        migrate: migrate::<M>,
    };
    // One small allocation per load of the library: the root module lives as
    // long as the (never unloaded) library.
    let leaked: &'static WithMetadata<ModuleRoot> = Box::leak(Box::new(WithMetadata::new(root)));
    ModuleRef(leaked.static_as_prefix())
}

/// Exports a [`Module`] implementation as the root module of this `cdylib`.
///
/// Call it exactly once, at the crate root of the module library:
///
/// ```ignore
/// molt_abi::export_module!(Counter);
/// ```
///
/// The crate must be built as `crate-type = ["cdylib"]` with `panic = "unwind"`
/// (the default): panics are caught inside the library and reported as errors.
#[macro_export]
macro_rules! export_module {
    ($module:ty) => {
        /// The header abi_stable looks up when the host loads this library.
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader = {
            extern "C" fn __molt_root_module() -> $crate::__private::RootModuleResult {
                $crate::__private::__call_root_module_loader(
                    $crate::__private::root_module::<$module>,
                )
            }
            // SAFETY: the constructor returns the `ModuleRef` that
            // `root_module` builds, erased by abi_stable's own loader helper,
            // which is what `from_constructor::<ModuleRef>` requires.
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::ffi::ModuleRef>(
                    __molt_root_module,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}
