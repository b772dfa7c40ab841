//! Sending to an [`Address`] from the application (issue #9 §1): the same
//! resolution as a module's `ctx.cast_addr`, done on every send. The
//! receiver's `ctx.sender()` is `None` for these messages.

use molt_abi::{Address, Protocol, Request};
use tokio::sync::oneshot;

use super::Node;
use crate::error::CallError;
use crate::module_actor::ModuleMsg;
use crate::msg_bytes::MsgBytes;
use crate::raw_handle::await_reply;
use crate::resolve;

fn encode<T: serde::Serialize>(to: &Address, msg: &T) -> Result<MsgBytes, CallError> {
    MsgBytes::encode(msg).map_err(|e| CallError::Codec {
        module: to.module.clone(),
        what: "encode the message",
        error: e.to_string(),
    })
}

impl Node {
    /// The address of instance `index` of `module` on this node (not
    /// checked: a send to it is).
    pub fn address(&self, module: &str, index: usize) -> Address {
        Address::instance(self.name(), module, index)
    }

    /// Casts a message to the actor at `to` (queued, no reply), resolved
    /// now, typed by its module's protocol.
    ///
    /// ```no_run
    /// # async fn demo(node: molt_runtime::Node) -> Result<(), molt_runtime::CallError> {
    /// # struct Kv; impl molt_runtime::Protocol for Kv { type Msg = String; type Reply = String; }
    /// let second = node.address("kv", 1);
    /// node.cast_addr::<Kv>(&second, &"hello".to_string())?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`CallError::NoActor`] when no actor has that address (module not
    /// running, instance index out of range, another node, a key of a
    /// module that is not keyed), [`CallError::Codec`].
    pub fn cast_addr<P: Protocol>(&self, to: &Address, msg: &P::Msg) -> Result<(), CallError> {
        let bytes = encode(to, msg)?;
        resolve::send(
            &self.directory,
            self.name(),
            to,
            ModuleMsg::Cast(bytes, None),
        )
        .map_err(|e| CallError::NoActor(e.to_string()))
    }

    /// Sends a message to the actor at `to` and waits for its reply, up to
    /// the node's call timeout.
    ///
    /// # Cancel safety
    /// Dropping the future does not withdraw the message: the actor still
    /// handles it (and a reply it kept open with `reply_later` then fails
    /// with "the caller gave up").
    ///
    /// # Errors
    /// As [`Node::cast_addr`], plus [`CallError::Handler`] and
    /// [`CallError::Timeout`] as [`crate::ModuleHandle::call`].
    pub async fn call_addr<P: Protocol>(
        &self,
        to: &Address,
        msg: &P::Msg,
    ) -> Result<P::Reply, CallError> {
        let bytes = encode(to, msg)?;
        let (tx, rx) = oneshot::channel();
        resolve::send(
            &self.directory,
            self.name(),
            to,
            ModuleMsg::Call(bytes, tx, None),
        )
        .map_err(|e| CallError::NoActor(e.to_string()))?;
        let reply = await_reply(&to.module, rx, self.limits.call_timeout).await?;
        rmp_serde::from_slice(&reply).map_err(|e| CallError::Codec {
            module: to.module.clone(),
            what: "decode the reply",
            error: e.to_string(),
        })
    }

    /// [`Node::call_addr`] with a typed request: sent as its protocol's
    /// message, its reply narrowed to the request's exact type.
    ///
    /// ```no_run
    /// # async fn demo(node: molt_runtime::Node) -> Result<(), molt_runtime::CallError> {
    /// let cart = molt_runtime::Address::key(node.name(), "cart", "user-42");
    /// let items: Vec<(String, u32)> = node.request_addr(&cart, cart_proto::Items).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// As [`Node::call_addr`].
    ///
    /// # Errors
    /// As [`Node::call_addr`], plus [`CallError::WrongReply`] when the actor
    /// answered with a reply variant the request does not answer with.
    pub async fn request_addr<R>(&self, to: &Address, request: R) -> Result<R::Reply, CallError>
    where
        R: Request,
        <R::Protocol as Protocol>::Reply: std::fmt::Debug,
    {
        let reply = self
            .call_addr::<R::Protocol>(to, &request.into_msg())
            .await?;
        R::from_reply(reply).map_err(|wrong| CallError::wrong_reply::<R>(&to.module, wrong))
    }
}
