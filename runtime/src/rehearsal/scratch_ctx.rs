//! The context a throwaway behaviour gets during a rehearsal or a config
//! check: its logs reach the host's subscriber (marked `rehearsal`), and
//! nothing else leaves it. A rehearsal must never touch what serves, so
//! messages to other modules are refused, events are not published and
//! metrics are not recorded (they would count the copy as real traffic).

use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RErr, RResult, RSlice, RStr, RString};
use molt_abi::ffi::{ErrorKind, HostCtx, HostCtxBox, HostCtx_TO, ModError};

/// A context that reaches nothing but the log.
#[derive(Clone)]
pub(crate) struct ScratchCtx {
    module: Arc<str>,
    instance: u32,
}

impl ScratchCtx {
    /// The boxed context for instance `instance` of `module`.
    pub(super) fn boxed(module: Arc<str>, instance: u32) -> HostCtxBox {
        HostCtx_TO::from_ptr(RArc::new(ScratchCtx { module, instance }), TD_Opaque)
    }

    fn refuse(&self, to: RStr<'_>) -> RResult<(), ModError> {
        RErr(ModError {
            kind: ErrorKind::Failed,
            message: RString::from(format!(
                "{} is being rehearsed: its throwaway copy cannot send to {}",
                self.module,
                to.as_str()
            )),
        })
    }
}

impl HostCtx for ScratchCtx {
    fn module(&self) -> RStr<'_> {
        RStr::from_str(&self.module)
    }

    fn instance(&self) -> u32 {
        self.instance
    }

    fn log(&self, level: u8, message: RStr<'_>) {
        crate::host_ctx::module_log(level, &self.module, self.instance, true, message.as_str());
    }

    fn counter(&self, _name: RStr<'_>, _delta: u64) {}

    fn gauge(&self, _name: RStr<'_>, _value: f64) {}

    fn publish(&self, topic: RStr<'_>, _json: RStr<'_>) {
        tracing::debug!(target: "molt::rehearsal", module = &*self.module, topic = topic.as_str(), "not published: the publisher is a rehearsal's copy");
    }

    fn send(&self, module: RStr<'_>, _msg: RSlice<'_, u8>) -> RResult<(), ModError> {
        self.refuse(module)
    }

    fn send_to(
        &self,
        module: RStr<'_>,
        _instance: u32,
        _msg: RSlice<'_, u8>,
    ) -> RResult<(), ModError> {
        self.refuse(module)
    }
}
