//! The example `checkout` module (`examples/shop.rs`), code 1.0.0, state
//! version 1: a pool of actors that total a user's cart.
//!
//! A `Checkout { user }` call is kept open ([`Ctx::reply_later`]); the actor
//! asks the user's cart actor (the key `user` of the keyed module `cart`,
//! by [`Address::key`]) for its items with the typed request
//! `cart_proto::Items` ([`Ctx::request`]) and answers the kept call from
//! [`Module::handle_answer`], where [`Answer::decode`] gives the items as their
//! exact type. No thread waits in between, and both the
//! open call and the pending request are held by the host, so either module
//! can be reloaded meanwhile.
#![warn(missing_docs)]

use std::collections::BTreeMap;

use checkout_proto::{Msg, Reply};
use molt_abi::{Address, Answer, Ctx, Error, Module, ReplyToken};
use serde::{Deserialize, Serialize};

/// The keyed module holding the carts.
const CARTS: &str = "cart";

/// One checkout waiting for its cart's items.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Open {
    user: String,
    call: ReplyToken,
}

/// The state (version 1): the open checkouts by correlation.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Checkout {
    next: u64,
    open: BTreeMap<u64, Open>,
}

impl Module for Checkout {
    const NAME: &'static str = "checkout";
    const CODE_VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 1;

    type Config = ();
    type Msg = Msg;
    type Reply = Reply;

    fn init(_config: (), _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Checkout::default())
    }

    fn migrate(from: u32, bytes: &[u8], _config: (), _ctx: &Ctx) -> Result<Self, Error> {
        if from != Self::STATE_VERSION {
            return Err(Error::unknown_state_version(
                Self::NAME,
                from,
                Self::STATE_VERSION,
            ));
        }
        molt_abi::state::decode("checkout state v1", bytes)
    }

    fn handle(&mut self, msg: Msg, ctx: &Ctx) -> Result<Reply, Error> {
        match msg {
            Msg::Checkout { user } => {
                let cart = Address::key(ctx.node(), CARTS, user.as_str());
                let correlation = self.next;
                let call = ctx.reply_later()?;
                // When the cart cannot be asked, the error this returns
                // answers the kept call right away (nothing stays open).
                ctx.request(&cart, cart_proto::Items, correlation)?;
                self.next += 1;
                self.open.insert(correlation, Open { user, call });
                Ok(Reply::Pending)
            }
            Msg::Open => Ok(Reply::Open(self.open.len() as u32)),
        }
    }

    fn handle_answer(&mut self, answer: Answer, ctx: &Ctx) -> Result<(), Error> {
        let Some(Open { user, call }) = self.open.remove(&answer.correlation) else {
            return Err(Error::msg(format!(
                "an answer with correlation {} matches no open checkout",
                answer.correlation
            )));
        };
        match answer.decode::<cart_proto::Items>() {
            Ok(items) => ctx.reply(
                &call,
                &Reply::Total {
                    user,
                    lines: items.len() as u32,
                    units: items.iter().map(|(_, qty)| u64::from(*qty)).sum(),
                },
            ),
            // Also a cart that answered another variant (another version):
            // the error names the request and the reply.
            Err(e) => ctx.reply_error(
                &call,
                Error::msg(format!("cart {user} could not be read: {e}")),
            ),
        }
    }
}

molt_abi::export_module!(Checkout);
