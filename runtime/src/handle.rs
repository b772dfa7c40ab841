//! Typed client handles: `node.module::<kv_proto::Proto>("kv")`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use molt_abi::{Protocol, Request};

use crate::directory::ModuleSlot;
use crate::error::{CallError, SendError};
use crate::msg_bytes::MsgBytes;
use crate::raw_handle::RawHandle;

/// A cloneable handle to a module, typed by its protocol.
///
/// It stays valid across reloads and instance restarts. A handle is pinned
/// to one instance, resolved once when the handle is made (round robin,
/// kept by clones; [`ModuleHandle::on_instance`] picks one), so the messages
/// sent through one handle are handled in the order they were sent, also
/// across scaling: a scale-up never moves a handle; when a scale-down
/// removes its instance, that instance first handles what was queued before
/// the scale-down, then the handle's messages go on, in order, to instance
/// `index % new_count`. The removed instance's state is dropped once its
/// queue is handled: later messages meet the other instance's state.
pub struct ModuleHandle<P: Protocol> {
    raw: RawHandle,
    _proto: PhantomData<fn() -> P>,
}

impl<P: Protocol> Clone for ModuleHandle<P> {
    fn clone(&self) -> Self {
        ModuleHandle {
            raw: self.raw.clone(),
            _proto: PhantomData,
        }
    }
}

impl<P: Protocol> std::fmt::Debug for ModuleHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleHandle")
            .field("module", &self.raw.module())
            .field("instance", &self.raw.instance())
            .field("key", &self.raw.key().map(String::from_utf8_lossy))
            .finish()
    }
}

impl<P: Protocol> ModuleHandle<P> {
    pub(crate) fn new(slot: Arc<ModuleSlot>, call_timeout: Duration) -> Self {
        ModuleHandle {
            raw: RawHandle::new(slot, call_timeout),
            _proto: PhantomData,
        }
    }

    /// The module's name.
    pub fn module(&self) -> &str {
        self.raw.module()
    }

    /// How many instances the module runs now.
    pub fn instances(&self) -> usize {
        self.raw.instances()
    }

    /// The instance this handle's messages are handled by (after a
    /// scale-down removed its own: the one they are forwarded to).
    pub fn instance(&self) -> usize {
        self.raw.instance()
    }

    /// A handle pinned to instance `index` (modulo the instance count now),
    /// resolved once, like every handle.
    pub fn on_instance(&self, index: usize) -> Self {
        ModuleHandle {
            raw: self.raw.on_instance(index),
            _proto: PhantomData,
        }
    }

    /// The same module, addressed to the actor of `key`: a keyed module
    /// (`keyed = true`) runs one actor per key, activated by the key's first
    /// message (from its passivated snapshot, if it has one). Messages
    /// through handles of one key are handled by that key's actor in the
    /// order they were sent, across activation, passivation and reloads.
    ///
    /// ```no_run
    /// # async fn demo(node: &molt_runtime::Node) -> Result<(), Box<dyn std::error::Error>> {
    /// let cart = node.module::<cart_proto::Proto>("cart")?.key("user-42");
    /// cart.call(cart_proto::Msg::Add { item: "tea".into(), qty: 2 }).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Sends through it fail with [`CallError::NotKeyed`] when the module is
    /// not keyed, and with [`CallError::TooManyLive`] when the key is not
    /// live and `max_live` actors are.
    pub fn key(&self, key: impl Into<molt_abi::Key>) -> Self {
        ModuleHandle {
            raw: self.raw.on_key(key.into().as_bytes()),
            _proto: PhantomData,
        }
    }

    /// The message's bytes, inline when small (no allocation per send:
    /// see [`MsgBytes`]).
    fn encode(&self, msg: &P::Msg) -> Result<MsgBytes, CallError> {
        MsgBytes::encode(msg).map_err(|e| CallError::Codec {
            module: self.module().to_string(),
            what: "encode the message",
            error: e.to_string(),
        })
    }

    /// Sends a message without waiting for its handling.
    ///
    /// The message is in the instance's mailbox when `cast` returns: it is
    /// handled after everything this handle sent before it, also across a
    /// reload. Nobody hears of its outcome; a handler failure is only
    /// counted (`failed` in the module's status).
    ///
    /// # Errors
    /// [`CallError::Codec`] when the message does not encode,
    /// [`CallError::NotRunning`] when the module is gone; either way the
    /// [`SendError`] hands the message back.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(node: &molt_runtime::Node) -> Result<(), Box<dyn std::error::Error>> {
    /// let kv = node.module::<kv_proto::Proto>("kv")?;
    /// kv.cast(kv_proto::Msg::Put { key: "a".into(), value: "1".into() })?;
    /// # Ok(()) }
    /// ```
    pub fn cast(&self, msg: P::Msg) -> Result<(), SendError<P::Msg>> {
        let sent = self
            .encode(&msg)
            .and_then(|bytes| self.raw.cast_bytes(bytes));
        sent.map_err(|e| SendError::unsent(e, msg))
    }

    /// Sends a message and waits for the reply, up to the node's default call
    /// timeout. During a reload the message waits in the mailbox and is
    /// answered by whichever code the reload leaves serving.
    ///
    /// # Errors
    /// A [`SendError`]: [`CallError::Handler`] when the handler failed or
    /// panicked (the instance keeps serving), [`CallError::Timeout`],
    /// [`CallError::Codec`], [`CallError::NotRunning`]. When the message never
    /// reached the mailbox (it did not encode, the module is not running) the
    /// error hands it back.
    ///
    /// # Cancel safety
    /// The message is put in the mailbox the first time the returned future
    /// is polled, before it waits for anything. Dropping the future after
    /// that (a `select!` that took another branch, a caller's own timeout)
    /// does not take the message back: the handler still runs, its effects
    /// stay, and its reply is discarded; the message counts as handled (or
    /// failed) as any other. A timeout ([`CallError::Timeout`]) is the same
    /// case. Dropping the future before its first poll sends nothing. So a
    /// call that did not return `Ok` may still have been handled: retry
    /// only messages that are safe to handle twice.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(node: &molt_runtime::Node) -> Result<(), Box<dyn std::error::Error>> {
    /// use kv_proto::{Msg, Proto, Reply};
    ///
    /// let kv = node.module::<Proto>("kv")?;
    /// kv.call(Msg::Put { key: "a".into(), value: "1".into() }).await?;
    /// match kv.call(Msg::Get { key: "a".into() }).await? {
    ///     Reply::Value(v) => println!("a = {v:?}"),
    ///     other => println!("unexpected reply {other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn call(&self, msg: P::Msg) -> Result<P::Reply, SendError<P::Msg>> {
        self.call_timeout(msg, self.raw.default_timeout()).await
    }

    /// [`ModuleHandle::call`] with an explicit timeout.
    ///
    /// # Errors
    /// As [`ModuleHandle::call`].
    ///
    /// # Cancel safety
    /// As [`ModuleHandle::call`]: once polled, the message is handled
    /// whether or not anybody still waits for the reply.
    pub async fn call_timeout(
        &self,
        msg: P::Msg,
        timeout: Duration,
    ) -> Result<P::Reply, SendError<P::Msg>> {
        let pending = match self
            .encode(&msg)
            .and_then(|bytes| self.raw.send_call(bytes))
        {
            Ok(pending) => pending,
            Err(e) => return Err(SendError::unsent(e, msg)),
        };
        drop(msg);
        let reply = self
            .raw
            .reply(pending, timeout)
            .await
            .map_err(SendError::delivered)?;
        rmp_serde::from_slice(&reply).map_err(|e| {
            SendError::delivered(CallError::Codec {
                module: self.module().to_string(),
                what: "decode the reply",
                error: e.to_string(),
            })
        })
    }

    /// Sends a typed request and waits for its reply, narrowed to the
    /// request's exact type (`kv_proto::Get` answers `Option<String>`), up
    /// to the node's default call timeout. The request goes on the wire as
    /// its protocol's `Msg`, exactly as [`ModuleHandle::call`] would send
    /// it: a library need not know about typed requests.
    ///
    /// This is a method of its own rather than a generic `call` so that
    /// `call(Msg)` keeps its signature and its `Reply` enum.
    ///
    /// # Errors
    /// As [`ModuleHandle::call`] (a message that never reached the mailbox
    /// is handed back as the protocol's `Msg` the request became), plus
    /// [`CallError::WrongReply`], naming the module and the request, when
    /// the module answered with a reply variant the request does not answer
    /// with (another library version): the message was handled.
    ///
    /// # Cancel safety
    /// As [`ModuleHandle::call`]: once polled, the message is handled
    /// whether or not anybody still waits for the reply.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(node: &molt_runtime::Node) -> Result<(), Box<dyn std::error::Error>> {
    /// use kv_proto::{Get, Proto, Put};
    ///
    /// let kv = node.module::<Proto>("kv")?;
    /// kv.request(Put { key: "a".into(), value: "1".into() }).await?;
    /// let value: Option<String> = kv.request(Get { key: "a".into() }).await?;
    /// assert_eq!(value.as_deref(), Some("1"));
    /// # Ok(()) }
    /// ```
    pub async fn request<R>(&self, request: R) -> Result<R::Reply, SendError<P::Msg>>
    where
        R: Request<Protocol = P>,
        P::Reply: std::fmt::Debug,
    {
        self.request_timeout(request, self.raw.default_timeout())
            .await
    }

    /// [`ModuleHandle::request`] with an explicit timeout.
    ///
    /// # Errors
    /// As [`ModuleHandle::request`].
    ///
    /// # Cancel safety
    /// As [`ModuleHandle::call`].
    pub async fn request_timeout<R>(
        &self,
        request: R,
        timeout: Duration,
    ) -> Result<R::Reply, SendError<P::Msg>>
    where
        R: Request<Protocol = P>,
        P::Reply: std::fmt::Debug,
    {
        let reply = self.call_timeout(request.into_msg(), timeout).await?;
        R::from_reply(reply).map_err(|wrong| {
            SendError::delivered(CallError::wrong_reply::<R>(self.module(), wrong))
        })
    }
}
