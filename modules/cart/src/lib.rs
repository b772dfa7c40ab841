//! The example keyed `cart` module, code version 1.0.0, state version 1:
//! one actor per cart key (`keyed = true` in its config), speaking
//! [`cart_proto`]. `cart_v2` migrates this state and can write it again.
#![warn(missing_docs)]

use std::collections::BTreeMap;

use cart_proto::{Msg, Reply};
use molt_abi::{Ctx, Error, Module};
use serde::{Deserialize, Serialize};

/// One cart's state (state version 1).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Cart {
    items: BTreeMap<String, u32>,
    seqs: Vec<u64>,
}

impl Module for Cart {
    const NAME: &'static str = "cart";
    const CODE_VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 1;

    type Config = ();
    type Msg = Msg;
    type Reply = Reply;

    fn init(_config: (), _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Cart::default())
    }

    fn migrate(from: u32, bytes: &[u8], _config: (), _ctx: &Ctx) -> Result<Self, Error> {
        if from != Self::STATE_VERSION {
            return Err(Error::unknown_state_version(
                Self::NAME,
                from,
                Self::STATE_VERSION,
            ));
        }
        molt_abi::state::decode("cart state v1", bytes)
    }

    fn handle(&mut self, msg: Msg, ctx: &Ctx) -> Result<Reply, Error> {
        Ok(match msg {
            Msg::Add { item, qty } => {
                *self.items.entry(item).or_default() += qty;
                Reply::Ok
            }
            Msg::Items => Reply::Items(self.items.iter().map(|(k, v)| (k.clone(), *v)).collect()),
            Msg::Push { seq } => {
                self.seqs.push(seq);
                Reply::Ok
            }
            Msg::Seqs => Reply::Seqs(self.seqs.clone()),
            Msg::Give {
                module,
                key,
                item,
                qty,
            } => {
                ctx.cast_key::<cart_proto::Proto>(&module, key, &Msg::Add { item, qty })?;
                Reply::Ok
            }
            Msg::Version => Reply::Version {
                code: Self::CODE_VERSION.to_owned(),
                state: Self::STATE_VERSION,
            },
        })
    }
}

molt_abi::export_module!(Cart);
