//! Typed client handles: `node.module::<kv_proto::Proto>("kv")`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use molt_abi::Protocol;
use tokio::sync::oneshot;

use crate::directory::ModuleSlot;
use crate::error::CallError;
use crate::module_actor::ModuleMsg;

/// A cloneable handle to a module, typed by its protocol.
///
/// It stays valid across reloads and instance restarts: it resolves the
/// instance through the module's routing slot on every send. A handle is
/// pinned to one instance (chosen round robin when the handle is made, kept
/// by clones), so the messages sent through one handle are handled in the
/// order they were sent. Use [`ModuleHandle::on_instance`] to pick one.
pub struct ModuleHandle<P: Protocol> {
    slot: Arc<ModuleSlot>,
    pin: usize,
    call_timeout: Duration,
    _proto: PhantomData<fn() -> P>,
}

impl<P: Protocol> Clone for ModuleHandle<P> {
    fn clone(&self) -> Self {
        ModuleHandle {
            slot: self.slot.clone(),
            pin: self.pin,
            call_timeout: self.call_timeout,
            _proto: PhantomData,
        }
    }
}

impl<P: Protocol> std::fmt::Debug for ModuleHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleHandle")
            .field("module", &&*self.slot.name)
            .field("instance", &self.pin)
            .finish()
    }
}

impl<P: Protocol> ModuleHandle<P> {
    pub(crate) fn new(slot: Arc<ModuleSlot>, call_timeout: Duration) -> Self {
        let pin = slot.next_pin();
        ModuleHandle {
            slot,
            pin,
            call_timeout,
            _proto: PhantomData,
        }
    }

    /// The module's name.
    pub fn module(&self) -> &str {
        &self.slot.name
    }

    /// How many instances the module runs now.
    pub fn instances(&self) -> usize {
        self.slot.routes.load().len()
    }

    /// The instance this handle sends to.
    pub fn instance(&self) -> usize {
        let n = self.instances().max(1);
        self.pin % n
    }

    /// A handle pinned to instance `index` (modulo the instance count).
    pub fn on_instance(&self, index: usize) -> Self {
        ModuleHandle {
            pin: index,
            ..self.clone()
        }
    }

    /// Sends through this handle's instance without cloning its route (the
    /// hot path: one `ArcSwap` load, one atomic add, one channel send).
    fn send(&self, msg: ModuleMsg) -> Result<(), CallError> {
        let routes = self.slot.routes.load();
        if routes.is_empty() {
            return Err(CallError::NotRunning(self.slot.name.to_string()));
        }
        routes[self.pin % routes.len()]
            .send_counted(msg)
            .map_err(|_| CallError::NotRunning(self.slot.name.to_string()))
    }

    fn encode(&self, msg: &P::Msg) -> Result<Vec<u8>, CallError> {
        rmp_serde::to_vec_named(msg).map_err(|e| CallError::Codec {
            module: self.slot.name.to_string(),
            what: "encode the message",
            error: e.to_string(),
        })
    }

    /// Sends a message without waiting for its handling.
    ///
    /// # Errors
    /// [`CallError::Codec`] when the message does not encode,
    /// [`CallError::NotRunning`] when the module is gone.
    pub fn cast(&self, msg: P::Msg) -> Result<(), CallError> {
        let bytes = self.encode(&msg)?;
        self.send(ModuleMsg::Cast(bytes))
    }

    /// Sends a message and waits for the reply, up to the node's default call
    /// timeout. During a reload the message waits in the mailbox and is
    /// answered by whichever code the reload leaves serving.
    ///
    /// # Errors
    /// [`CallError::Handler`] when the handler failed or panicked (the
    /// instance keeps serving), [`CallError::Timeout`], [`CallError::Codec`],
    /// [`CallError::NotRunning`].
    pub async fn call(&self, msg: P::Msg) -> Result<P::Reply, CallError> {
        self.call_timeout(msg, self.call_timeout).await
    }

    /// [`ModuleHandle::call`] with an explicit timeout.
    ///
    /// # Errors
    /// As [`ModuleHandle::call`].
    pub async fn call_timeout(
        &self,
        msg: P::Msg,
        timeout: Duration,
    ) -> Result<P::Reply, CallError> {
        let module = || self.slot.name.to_string();
        let bytes = self.encode(&msg)?;
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
        match reply {
            Ok(bytes) => rmp_serde::from_slice(&bytes).map_err(|e| CallError::Codec {
                module: module(),
                what: "decode the reply",
                error: e.to_string(),
            }),
            Err(e) => Err(CallError::Handler {
                module: module(),
                kind: e.kind.as_str(),
                message: e.message.into_string(),
            }),
        }
    }
}
