use std::sync::OnceLock;

use abi_stable::std_types::{RResult, RSlice, RStr};
use serde::Serialize;

use crate::encode::with_encoded;
use crate::{ffi::HostCtxBox, index, Address, Error, Protocol, ReplyToken, Request};

/// Log levels a module can use through [`Ctx::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Very verbose detail.
    Trace = 0,
    /// Debugging detail.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something odd that the module handled.
    Warn = 3,
    /// Something failed.
    Error = 4,
}

impl Level {
    /// The level for a wire value; unknown values map to `Info`.
    pub fn from_u8(v: u8) -> Level {
        match v {
            0 => Level::Trace,
            1 => Level::Debug,
            3 => Level::Warn,
            4 => Level::Error,
            _ => Level::Info,
        }
    }
}

/// What module code may call back into the host: logging, metrics, events
/// and messages to other modules.
///
/// A module library has its own copy of every static, so calling `tracing` or
/// `metrics` macros directly in a module talks to nobody. Use the context.
#[derive(Clone)]
pub struct Ctx {
    host: HostCtxBox,
    /// This actor's address, built at the first [`Ctx::me`] (its node,
    /// module and instance never change for a context).
    me: OnceLock<Address>,
}

impl Ctx {
    /// Wraps the host's context object. Used by the generated code and by
    /// hosts that test module code in process.
    pub fn from_host(host: HostCtxBox) -> Self {
        Ctx {
            host,
            me: OnceLock::new(),
        }
    }

    /// The module's name.
    pub fn module(&self) -> &str {
        self.host.module().as_str()
    }

    /// This instance's index (0-based).
    pub fn instance(&self) -> usize {
        index::from_ffi(self.host.instance())
    }

    /// Logs through the host's `tracing` subscriber, tagged with the module.
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        self.host.log(level as u8, RStr::from_str(message.as_ref()));
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(Level::Debug, message);
    }

    /// Logs at info level.
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Logs at error level.
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(Level::Error, message);
    }

    /// Adds `delta` to the counter `name` (labelled with the module by the host).
    pub fn counter(&self, name: &str, delta: u64) {
        self.host.counter(RStr::from_str(name), delta);
    }

    /// Sets the gauge `name` (labelled with the module by the host).
    pub fn gauge(&self, name: &str, value: f64) {
        self.host.gauge(RStr::from_str(name), value);
    }

    /// Publishes an application event on the host's event bus.
    ///
    /// # Errors
    /// When the payload cannot be serialized to JSON.
    pub fn publish<T: Serialize + ?Sized>(&self, topic: &str, payload: &T) -> Result<(), Error> {
        let json = serde_json::to_string(payload)
            .map_err(|e| Error::msg(format!("cannot encode event {topic}: {e}")))?;
        self.host
            .publish(RStr::from_str(topic), RStr::from_str(&json));
        Ok(())
    }

    /// Casts a message to another module, typed by its protocol: queued,
    /// no reply (the host's `ModuleHandle::cast` is the same word). Which
    /// instance: the one with this instance's index, modulo the count.
    ///
    /// # Errors
    /// When the message cannot be encoded or the module is not running.
    pub fn cast<P: Protocol>(&self, module: &str, msg: &P::Msg) -> Result<(), Error> {
        encode_to_module(module, msg, |bytes| {
            self.host
                .send(RStr::from_str(module), RSlice::from_slice(bytes))
                .into_result()
                .map_err(Error::from)
        })
    }

    /// Casts a message to instance `instance` of a module (the
    /// same as [`Ctx::cast_addr`] to `Address::instance(node, module,
    /// instance)`). [`Ctx::cast`] instead picks the instance from this
    /// instance's index. The next instance in a ring is
    /// `(ctx.instance() + 1) % ctx.instances(ctx.module())?`.
    ///
    /// # Errors
    /// When the message cannot be encoded, the module is not running,
    /// `instance` is out of range (the error names the module, the index and
    /// the instance count: an index never wraps), or the host is older than
    /// this method.
    pub fn cast_to<P: Protocol>(
        &self,
        module: &str,
        instance: usize,
        msg: &P::Msg,
    ) -> Result<(), Error> {
        let instance = index::to_ffi(instance)?;
        encode_to_module(module, msg, |bytes| {
            self.host
                .send_to(RStr::from_str(module), instance, RSlice::from_slice(bytes))
                .into_result()
                .map_err(Error::from)
        })
    }

    /// Casts a message to the actor of `key` in a keyed module
    /// (`keyed = true` in its config), activating it if it is not live:
    /// `ctx.cast_key::<cart_proto::Proto>("cart", "user-42", &msg)`.
    ///
    /// # Errors
    /// When the message cannot be encoded, the module is not running or not
    /// keyed, its live limit (`max_live`) is reached, or the host is older
    /// than this method.
    pub fn cast_key<P: Protocol>(
        &self,
        module: &str,
        key: impl Into<crate::Key>,
        msg: &P::Msg,
    ) -> Result<(), Error> {
        let key = key.into();
        encode_to_module(module, msg, |bytes| {
            self.host
                .send_key(
                    RStr::from_str(module),
                    RSlice::from_slice(key.as_bytes()),
                    RSlice::from_slice(bytes),
                )
                .into_result()
                .map_err(Error::from)
        })
    }
}

impl Ctx {
    /// The name of the node this instance runs on (`"local"` on a host that
    /// predates addresses).
    pub fn node(&self) -> String {
        self.host.node().into_string()
    }

    /// This actor's address: put it in a message so that the receiver can
    /// answer, or keep it. Valid across reloads and restarts in place.
    pub fn me(&self) -> Address {
        self.me
            .get_or_init(|| Address::instance(self.node(), self.module(), self.instance()))
            .clone()
    }

    /// The address of the actor that sent the message being handled: an
    /// actor of a module (its [`Ctx::me`]) when a module sent it with
    /// [`Ctx::cast`], [`Ctx::cast_to`], [`Ctx::cast_addr`] or
    /// [`Ctx::ask`]; during [`crate::Module::handle_answer`], the actor asked.
    /// `None` for a message from an application handle, HTTP or the CLI,
    /// and outside a delivery (`init`, `start`, `handle_event`...).
    pub fn sender(&self) -> Option<Address> {
        self.host.sender().into_option().map(Address::from)
    }

    /// How many instances `module` runs now (this module's own name
    /// included).
    ///
    /// # Errors
    /// When no module of that name runs on this node.
    pub fn instances(&self, module: &str) -> Result<usize, Error> {
        self.host
            .instances(RStr::from_str(module))
            .into_result()
            .map(index::from_ffi)
            .map_err(Error::from)
    }

    /// Casts a message to the actor at `to`, typed by its module's
    /// protocol. The address is resolved on every send, so it stays valid
    /// across reloads of either side and restarts in place; the receiver
    /// sees this actor as its [`Ctx::sender`].
    ///
    /// # Errors
    /// When the message cannot be encoded, or the actor does not exist (its
    /// module is not running, its instance index is out of range after a
    /// scale-down, its node is not this one, or its module is not keyed for
    /// a key address), or its instance index does not fit the host
    /// interface.
    pub fn cast_addr<P: Protocol>(&self, to: &Address, msg: &P::Msg) -> Result<(), Error> {
        let to_ffi = to.as_ffi()?;
        encode_to_address(to, msg, |bytes| {
            self.host
                .send_addr(to_ffi, RSlice::from_slice(bytes))
                .into_result()
                .map_err(Error::from)
        })
    }

    /// Casts a message to the sender of the message being handled (the
    /// actor [`Ctx::sender`] names), typed by its module's protocol:
    /// `ctx.cast_sender::<PingerProto>(&PingerMsg::Pong)`. The same as
    /// `ctx.cast_addr::<P>(&ctx.sender()?, msg)`, without building the
    /// sender's address: the host routes the message back from what it
    /// knows of the sender, so answering costs what a cast costs. The
    /// sender is resolved now, as for [`Ctx::cast_addr`] (valid across
    /// reloads and restarts in place of either side).
    ///
    /// # Errors
    /// When the message cannot be encoded; when the message being handled
    /// has no sender (it came from an application handle, HTTP or the CLI,
    /// or no message is being handled on this thread: `init`, `start`,
    /// `handle_event`, a thread the module started); or when the sender no
    /// longer exists (its module was removed, its instance is gone after a
    /// scale-down).
    pub fn cast_sender<P: Protocol>(&self, msg: &P::Msg) -> Result<(), Error> {
        let on_error = |e| Error::msg(format!("cannot encode a message to the sender: {e}"));
        with_encoded(msg, on_error, |bytes| {
            self.host
                .send_sender(RSlice::from_slice(bytes))
                .into_result()
                .map_err(Error::from)
        })
    }

    /// Asks the actor at `to`: a call whose answer comes back as a message.
    /// Nothing waits: the reply arrives later as a message to this actor,
    /// [`crate::Module::handle_answer`], carrying `correlation` (any number
    /// this module chooses to match the answer to its request). No thread waits
    /// meanwhile; the pending request is held by the host, so it survives a
    /// reload of either side. An actor that does not answer within the
    /// node's call timeout gives an answer carrying a timeout error.
    ///
    /// # Errors
    /// As [`Ctx::cast_addr`]: when the request cannot be sent at all (no
    /// answer follows then), or `to`'s instance index does not fit the
    /// host interface.
    ///
    /// [`Ctx::request`] is the same with a typed request, whose answer
    /// decodes to the request's exact reply type.
    pub fn ask<P: Protocol>(
        &self,
        to: &Address,
        msg: &P::Msg,
        correlation: u64,
    ) -> Result<(), Error> {
        let to_ffi = to.as_ffi()?;
        encode_to_address(to, msg, |bytes| {
            self.host
                .ask(to_ffi, RSlice::from_slice(bytes), correlation)
                .into_result()
                .map_err(Error::from)
        })
    }

    /// [`Ctx::ask`] with a typed request: `request` is sent as its
    /// protocol's message, and its answer, delivered to
    /// [`crate::Module::handle_answer`] with `correlation`, decodes to the
    /// request's exact reply type with [`crate::Answer::decode`]`::<R>()`.
    ///
    /// ```
    /// # use molt_abi::{Address, Ctx, Error};
    /// # mod cart_proto {
    /// #     use serde::{Deserialize, Serialize};
    /// #     pub struct Proto;
    /// #     impl molt_abi::Protocol for Proto { type Msg = Msg; type Reply = Reply; }
    /// #     #[derive(Serialize, Deserialize, Debug)] pub enum Msg { Items }
    /// #     #[derive(Serialize, Deserialize, Debug)] pub enum Reply { Items(Vec<(String, u32)>) }
    /// #     molt_abi::requests! { Proto {
    /// #         Items -> Vec<(String, u32)> { Msg::Items, Reply::Items(items) => items }
    /// #     } }
    /// # }
    /// fn ask_items(ctx: &Ctx, user: &str, correlation: u64) -> Result<(), Error> {
    ///     let cart = Address::key(ctx.node(), "cart", user);
    ///     ctx.request(&cart, cart_proto::Items, correlation)
    ///     // later, in handle_answer: answer.decode::<cart_proto::Items>()
    /// }
    /// ```
    ///
    /// # Errors
    /// As [`Ctx::ask`].
    pub fn request<R: Request>(
        &self,
        to: &Address,
        request: R,
        correlation: u64,
    ) -> Result<(), Error> {
        self.ask::<R::Protocol>(to, &request.into_msg(), correlation)
    }

    /// Keeps the call being handled open, to answer it later with
    /// [`Ctx::reply`] (from this or a later message). The value the handler
    /// returns is then dropped; an error it returns answers the call with
    /// that error. The token is plain data: keep it in the state.
    ///
    /// # Errors
    /// When the message being handled is not a call (a cast: nobody waits
    /// for a reply), when the call was already taken, or outside a
    /// delivery.
    pub fn reply_later(&self) -> Result<ReplyToken, Error> {
        self.host
            .reply_later()
            .into_result()
            .map(ReplyToken::from_id)
            .map_err(Error::from)
    }

    /// Answers the open call `token` with `reply` (the module's reply type).
    ///
    /// # Errors
    /// When the token was answered already, or its caller gave up (its
    /// call timed out or its future was dropped), or the reply cannot be
    /// encoded. The module keeps running either way.
    pub fn reply<R: Serialize>(&self, token: &ReplyToken, reply: &R) -> Result<(), Error> {
        let on_error = |e| {
            Error::msg(format!(
                "cannot encode the reply to call {}: {e}",
                token.id()
            ))
        };
        with_encoded(reply, on_error, |bytes| {
            self.host
                .reply(token.id(), RResult::ROk(RSlice::from_slice(bytes)))
                .into_result()
                .map_err(Error::from)
        })
    }

    /// Answers the open call `token` with an error: its caller gets it as a
    /// handler error.
    ///
    /// # Errors
    /// As [`Ctx::reply`].
    pub fn reply_error(&self, token: &ReplyToken, error: Error) -> Result<(), Error> {
        self.host
            .reply(token.id(), RResult::RErr(error.into()))
            .into_result()
            .map_err(Error::from)
    }
}

/// Encodes a message to `module` (see [`with_encoded`]) and hands its bytes
/// to `send`.
fn encode_to_module<T: Serialize + ?Sized>(
    module: &str,
    msg: &T,
    send: impl FnOnce(&[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    let on_error = |e| Error::msg(format!("cannot encode a message to {module}: {e}"));
    with_encoded(msg, on_error, send)
}

/// Encodes a message to the actor at `to` (see [`with_encoded`]) and hands
/// its bytes to `send`.
fn encode_to_address<T: Serialize + ?Sized>(
    to: &Address,
    msg: &T,
    send: impl FnOnce(&[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    let on_error = |e| Error::msg(format!("cannot encode a message to {to}: {e}"));
    with_encoded(msg, on_error, send)
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("module", &self.module())
            .field("instance", &self.instance())
            .finish()
    }
}
