//! The untyped send path under [`crate::ModuleHandle`]: msgpack bytes in,
//! msgpack bytes out, through one lane of a module's routing slot. The
//! typed handle encodes and decodes around it; the HTTP `call` / `cast`
//! endpoints transcode JSON around it (issue #10 §1).

use std::sync::Arc;
use std::time::Duration;

use molt_abi::ffi::ModError;
use tokio::sync::oneshot;

use crate::directory::{Lane, ModuleSlot};
use crate::error::CallError;
use crate::module_actor::ModuleMsg;
use crate::msg_bytes::MsgBytes;

/// Where the reply of a delivered call arrives.
pub(crate) type PendingReply = oneshot::Receiver<Result<Vec<u8>, molt_abi::ffi::ModError>>;

/// A handle to a module that sends already-encoded messages. Pinned to one
/// instance, resolved once when made, like [`crate::ModuleHandle`].
#[derive(Clone)]
pub(crate) struct RawHandle {
    slot: Arc<ModuleSlot>,
    /// `None` when the module had no instance when the handle was made.
    lane: Option<Arc<Lane>>,
    call_timeout: Duration,
    /// Set: the handle reaches the actor of this key of a keyed module.
    key: Option<Arc<[u8]>>,
}

impl RawHandle {
    /// A handle on the next instance in round-robin order.
    pub(crate) fn new(slot: Arc<ModuleSlot>, call_timeout: Duration) -> Self {
        let lane = slot.resolve(slot.next_pin());
        RawHandle {
            slot,
            lane,
            call_timeout,
            key: None,
        }
    }

    /// The same handle pinned to instance `index` (modulo the instance count now).
    pub(crate) fn on_instance(&self, index: usize) -> Self {
        RawHandle {
            lane: self.slot.resolve(index),
            ..self.clone()
        }
    }

    /// The same module, addressed to the actor of `key` (a keyed module).
    pub(crate) fn on_key(&self, key: &[u8]) -> Self {
        RawHandle {
            key: Some(Arc::from(key)),
            ..self.clone()
        }
    }

    /// The key this handle reaches, if it was made for one.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    pub(crate) fn module(&self) -> &str {
        &self.slot.name
    }

    pub(crate) fn instances(&self) -> usize {
        self.slot.routes.load().len()
    }

    pub(crate) fn instance(&self) -> usize {
        self.lane.as_ref().map_or(0, |l| l.serving_index() as usize)
    }

    pub(crate) fn default_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// Sends through this handle's lane (the hot path: one atomic load, one
    /// `ArcSwap` load, one atomic add, one channel send).
    fn send(&self, msg: ModuleMsg) -> Result<(), CallError> {
        let not_running = || CallError::NotRunning(self.slot.name.to_string());
        if let Some(key) = &self.key {
            return self
                .slot
                .send_to_key(key, msg)
                .map_err(|r| r.into_call_error(&self.slot.name));
        }
        if self.slot.keyed().is_some() {
            return Err(CallError::KeyRequired(self.slot.name.to_string()));
        }
        let Some(lane) = &self.lane else {
            return Err(not_running());
        };
        if self.slot.is_closed() {
            return Err(not_running());
        }
        lane.send(msg).map_err(|_| not_running())
    }

    /// Sends an encoded message without waiting for its handling.
    pub(crate) fn cast_bytes(&self, bytes: impl Into<MsgBytes>) -> Result<(), CallError> {
        self.send(ModuleMsg::Cast(bytes.into(), None))
    }

    /// Sends an encoded message and waits up to `timeout` for the encoded
    /// reply.
    pub(crate) async fn call_bytes(
        &self,
        bytes: impl Into<MsgBytes>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let pending = self.send_call(bytes)?;
        self.reply(pending, timeout).await
    }

    /// Puts an encoded call in the mailbox; the receiver gets its reply.
    pub(crate) fn send_call(&self, bytes: impl Into<MsgBytes>) -> Result<PendingReply, CallError> {
        let (tx, rx) = oneshot::channel();
        self.send(ModuleMsg::Call(bytes.into(), tx, None))?;
        Ok(rx)
    }

    /// Waits up to `timeout` for the reply of a call [`RawHandle::send_call`]
    /// delivered.
    pub(crate) async fn reply(
        &self,
        rx: PendingReply,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        await_reply(&self.slot.name, rx, timeout).await
    }
}

/// Waits up to `timeout` for the reply of a call to `module` on `rx`.
pub(crate) async fn await_reply(
    module: &str,
    rx: oneshot::Receiver<Result<Vec<u8>, ModError>>,
    timeout: Duration,
) -> Result<Vec<u8>, CallError> {
    let reply = match tokio::time::timeout(timeout, rx).await {
        Err(_) => {
            return Err(CallError::Timeout {
                module: module.to_string(),
                timeout,
            })
        }
        Ok(Err(_)) => return Err(CallError::NotRunning(module.to_string())),
        Ok(Ok(r)) => r,
    };
    reply.map_err(|e| CallError::Handler {
        module: module.to_string(),
        kind: e.kind,
        message: e.message.into_string(),
    })
}

/// A node's modules by name, for untyped sends (what the HTTP server holds).
#[derive(Clone)]
pub(crate) struct RawModules {
    pub directory: crate::directory::Directory,
    pub call_timeout: Duration,
}

impl RawModules {
    /// A raw handle to `module` (round robin), `None` when no module of
    /// that name runs.
    pub(crate) fn handle(&self, module: &str) -> Option<RawHandle> {
        crate::directory::lookup(&self.directory, module)
            .map(|slot| RawHandle::new(slot, self.call_timeout))
    }
}
