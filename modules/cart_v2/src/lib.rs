//! The example keyed `cart` module, code version 2.0.0, state version 2:
//! each line also counts how many times it was added to. [`Module::migrate`]
//! reads the 1.x state (every line counted once) and [`Module::downgrade`]
//! writes it again (dropping the counts), so a rollback keeps the carts.
//! Its `verify` refuses a cart holding an item named `"poison"`: the tests'
//! way to make one actor fail a reload.
#![warn(missing_docs)]

use std::collections::BTreeMap;

use cart_proto::{Msg, Reply};
use molt_abi::{state, Ctx, Error, Module};
use serde::{Deserialize, Serialize};

/// One line of a cart.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Line {
    qty: u32,
    /// How many `Add`s made it (1 for a line migrated from 1.x).
    adds: u32,
}

/// One cart's state (state version 2).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Cart {
    lines: BTreeMap<String, Line>,
    seqs: Vec<u64>,
}

/// State version 1, as `cart` 1.x writes it.
#[derive(Serialize, Deserialize)]
struct V1 {
    items: BTreeMap<String, u32>,
    seqs: Vec<u64>,
}

impl Module for Cart {
    const NAME: &'static str = "cart";
    const CODE_VERSION: &'static str = "2.0.0";
    const STATE_VERSION: u32 = 2;

    type Config = ();
    type Msg = Msg;
    type Reply = Reply;

    fn init(_config: (), _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Cart::default())
    }

    fn migrate(from: u32, bytes: &[u8], _config: (), _ctx: &Ctx) -> Result<Self, Error> {
        match from {
            1 => {
                let v1: V1 = state::decode("cart state v1", bytes)?;
                Ok(Cart {
                    lines: v1
                        .items
                        .into_iter()
                        .map(|(k, qty)| (k, Line { qty, adds: 1 }))
                        .collect(),
                    seqs: v1.seqs,
                })
            }
            2 => state::decode("cart state v2", bytes),
            _ => Err(Error::unknown_state_version(
                Self::NAME,
                from,
                Self::STATE_VERSION,
            )),
        }
    }

    fn downgrade(&self, to: u32) -> Result<Vec<u8>, Error> {
        match to {
            1 => state::encode(&V1 {
                items: self.lines.iter().map(|(k, l)| (k.clone(), l.qty)).collect(),
                seqs: self.seqs.clone(),
            }),
            _ => Err(Error::cannot_downgrade(Self::NAME, Self::STATE_VERSION, to)),
        }
    }

    fn handle(&mut self, msg: Msg, ctx: &Ctx) -> Result<Reply, Error> {
        Ok(match msg {
            Msg::Add { item, qty } => {
                let line = self.lines.entry(item).or_default();
                line.qty += qty;
                line.adds += 1;
                Reply::Ok
            }
            Msg::Items => {
                Reply::Items(self.lines.iter().map(|(k, l)| (k.clone(), l.qty)).collect())
            }
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

    fn verify(&self, _ctx: &Ctx) -> Result<(), Error> {
        if self.lines.contains_key("poison") {
            return Err(Error::msg("this cart holds poison"));
        }
        Ok(())
    }
}

molt_abi::export_module!(Cart);
