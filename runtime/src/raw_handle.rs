//! The untyped send path under [`crate::ModuleHandle`]: msgpack bytes in,
//! msgpack bytes out, through one lane of a module's routing slot. The
//! typed handle encodes and decodes around it; the HTTP `call` / `cast`
//! endpoints transcode JSON around it (issue #10 §1).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::directory::{Lane, ModuleSlot};
use crate::error::CallError;
use crate::module_actor::ModuleMsg;

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
    pub fn new(slot: Arc<ModuleSlot>, call_timeout: Duration) -> Self {
        let lane = slot.resolve(slot.next_pin());
        RawHandle {
            slot,
            lane,
            call_timeout,
            key: None,
        }
    }

    /// The same handle pinned to instance `index` (modulo the instance count now).
    pub fn on_instance(&self, index: usize) -> Self {
        RawHandle {
            lane: self.slot.resolve(index),
            ..self.clone()
        }
    }

    /// The same module, addressed to the actor of `key` (a keyed module).
    pub fn on_key(&self, key: &[u8]) -> Self {
        RawHandle {
            key: Some(Arc::from(key)),
            ..self.clone()
        }
    }

    /// The key this handle reaches, if it was made for one.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    pub fn module(&self) -> &str {
        &self.slot.name
    }

    pub fn instances(&self) -> usize {
        self.slot.routes.load().len()
    }

    pub fn instance(&self) -> usize {
        self.lane.as_ref().map_or(0, |l| l.serving_index() as usize)
    }

    pub fn default_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// Sends through this handle's lane (the hot path: one atomic load, one
    /// `ArcSwap` load, one atomic add, one channel send).
    fn send(&self, msg: ModuleMsg) -> Result<(), CallError> {
        let not_running = || CallError::NotRunning(self.slot.name.to_string());
        if let Some(key) = &self.key {
            if self.slot.is_closed() {
                return Err(not_running());
            }
            let Some(keyed) = self.slot.keyed() else {
                return Err(CallError::NotKeyed(self.slot.name.to_string()));
            };
            return keyed
                .send(key, msg)
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
    pub fn cast_bytes(&self, bytes: Vec<u8>) -> Result<(), CallError> {
        self.send(ModuleMsg::Cast(bytes))
    }

    /// Sends an encoded message and waits up to `timeout` for the encoded
    /// reply.
    pub async fn call_bytes(
        &self,
        bytes: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let module = || self.slot.name.to_string();
        let (tx, rx) = oneshot::channel();
        self.send(ModuleMsg::Call(bytes, tx))?;
        let reply = match tokio::time::timeout(timeout, rx).await {
            Err(_) => {
                return Err(CallError::Timeout {
                    module: module(),
                    timeout,
                })
            }
            Ok(Err(_)) => return Err(CallError::NotRunning(module())),
            Ok(Ok(r)) => r,
        };
        reply.map_err(|e| CallError::Handler {
            module: module(),
            kind: e.kind.as_str(),
            message: e.message.into_string(),
        })
    }
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
    pub fn handle(&self, module: &str) -> Option<RawHandle> {
        crate::directory::lookup(&self.directory, module)
            .map(|slot| RawHandle::new(slot, self.call_timeout))
    }
}
