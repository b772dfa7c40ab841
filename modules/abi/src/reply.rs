//! Replies later and answers to requests between actors (issue #9 §2):
//! the [`ReplyToken`] a handler takes to keep a call open, and the
//! [`Answer`] a module receives for a request it made with [`crate::Ctx::ask`].

use serde::{Deserialize, Serialize};

use crate::{request_name, state, Address, Error, ErrorKind, Protocol, Request};

/// An open call, taken with [`crate::Ctx::reply_later`] and answered with
/// [`crate::Ctx::reply`].
///
/// Plain data: keep it in the module's state (it survives a snapshot, a
/// reload, a rollback and a restart in place, because the host, not the
/// module, holds the caller's reply port). A token answers one call once:
/// answering again, or after the caller gave up (its call timed out or its
/// future was dropped), is an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplyToken {
    id: u64,
}

impl ReplyToken {
    /// The token the host issued as `id`.
    pub(crate) fn from_id(id: u64) -> Self {
        ReplyToken { id }
    }

    /// The host's number for the open call (unique in the host process).
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// The answer to a request this actor made with [`crate::Ctx::ask`],
/// delivered to [`crate::Module::handle_answer`] as a later message.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The correlation the asker chose when it asked.
    pub correlation: u64,
    /// The actor that was asked (none when the answer is a failure to
    /// deliver the request at all).
    pub from: Option<Address>,
    /// The encoded reply, or why there is none (the handler failed, the
    /// actor is gone, or it did not answer within the node's call timeout).
    pub(crate) result: Result<Vec<u8>, Error>,
}

impl Answer {
    /// The reply, decoded as the reply type of the protocol `P` of the
    /// actor asked.
    ///
    /// # Errors
    /// The asked actor's error (its handler failed, it is gone, it did not
    /// answer within the call timeout) or a reply that does not decode as
    /// `P::Reply`.
    pub fn reply<P: Protocol>(&self) -> Result<P::Reply, Error> {
        match &self.result {
            Ok(bytes) => state::decode("answer", bytes),
            Err(e) => Err(e.clone()),
        }
    }

    /// The reply to the typed request `R` (sent with [`crate::Ctx::request`]),
    /// decoded and narrowed to `R`'s exact reply type.
    ///
    /// ```
    /// # use molt_abi::{Answer, Error};
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
    /// fn units(answer: &Answer) -> Result<u64, Error> {
    ///     let items: Vec<(String, u32)> = answer.decode::<cart_proto::Items>()?;
    ///     Ok(items.iter().map(|(_, qty)| u64::from(*qty)).sum())
    /// }
    /// ```
    ///
    /// # Errors
    /// As [`Answer::reply`], and an [`ErrorKind::BadInput`] error naming the
    /// request and the reply when the actor answered with a reply variant
    /// `R` does not answer with (another library version, or a bug).
    pub fn decode<R: Request>(&self) -> Result<R::Reply, Error>
    where
        <R::Protocol as Protocol>::Reply: std::fmt::Debug,
    {
        let reply = self.reply::<R::Protocol>()?;
        R::from_reply(reply).map_err(|wrong| {
            let from = self
                .from
                .as_ref()
                .map_or_else(|| "the actor asked".to_string(), |a| a.to_string());
            Error::new(
                ErrorKind::BadInput,
                format!(
                    "{from} answered the request {} with {:?}, not its reply",
                    request_name::<R>(),
                    wrong.reply
                ),
            )
        })
    }

    /// Whether the request got a reply (as opposed to an error).
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}
