//! The protocol of the example `cart` module, a keyed module (one actor per
//! cart key), shared by `cart` 1.x, `cart_v2` 2.x and the applications.
//!
//! ```ignore
//! let cart = node.module::<cart_proto::Proto>("cart")?.key("user-42");
//! cart.request(cart_proto::Add { item: "tea".into(), qty: 2 }).await?;
//! let items: Vec<(String, u32)> = cart.request(cart_proto::Items).await?;
//! ```
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// The cart protocol, for typed handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Proto;

impl molt_abi::Protocol for Proto {
    type Msg = Msg;
    type Reply = Reply;
}

molt_abi::requests! {
    Proto {
        /// Adds `qty` of `item` ([`Msg::Add`]).
        Add { item: String, qty: u32 } -> () { Msg::Add, Reply::Ok => () }
        /// The cart's items and quantities, sorted by name ([`Msg::Items`]).
        Items -> Vec<(String, u32)> { Msg::Items, Reply::Items(items) => items }
        /// Appends `seq` to the cart's log ([`Msg::Push`]).
        Push { seq: u64 } -> () { Msg::Push, Reply::Ok => () }
        /// The cart's log ([`Msg::Seqs`]).
        Seqs -> Vec<u64> { Msg::Seqs, Reply::Seqs(seqs) => seqs }
        /// Adds `qty` of `item` to the cart `key` of the keyed module
        /// `module`, sent from this cart's actor ([`Msg::Give`]).
        Give { module: String, key: String, item: String, qty: u32 } -> () {
            Msg::Give, Reply::Ok => ()
        }
        /// The serving code and state version ([`Msg::Version`]).
        Version -> (String, u32) { Msg::Version, Reply::Version { code, state } => (code, state) }
    }
}

/// What clients send to one cart (one key).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Adds `qty` of `item`; answers [`Reply::Ok`]. Cart 2.x refuses to
    /// verify a cart holding an item named `"poison"` (a test's way to make
    /// one actor fail a reload).
    Add {
        /// The item.
        item: String,
        /// How many.
        qty: u32,
    },
    /// The cart's items, sorted by name; answers [`Reply::Items`].
    Items,
    /// Appends `seq` to the cart's log (order checks); answers [`Reply::Ok`].
    Push {
        /// The value appended.
        seq: u64,
    },
    /// The cart's log; answers [`Reply::Seqs`].
    Seqs,
    /// Adds `qty` of `item` to the cart `key` of the keyed module `module`,
    /// sent from this cart's actor (`ctx.cast_key`); answers [`Reply::Ok`].
    Give {
        /// The keyed module.
        module: String,
        /// The key of the cart that receives.
        key: String,
        /// The item.
        item: String,
        /// How many.
        qty: u32,
    },
    /// The serving code and state version; answers [`Reply::Version`].
    Version,
}

/// What a cart answers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done.
    Ok,
    /// The items and their quantities.
    Items(Vec<(String, u32)>),
    /// The log.
    Seqs(Vec<u64>),
    /// The serving versions.
    Version {
        /// Code version.
        code: String,
        /// State version.
        state: u32,
    },
}
