//! The protocol of the example `cart` module, a keyed module (one actor per
//! cart key), shared by `cart` 1.x, `cart_v2` 2.x and the applications.
//!
//! ```ignore
//! let cart = node.module::<cart_proto::Proto>("cart")?.key("user-42");
//! cart.call(cart_proto::Msg::Add { item: "tea".into(), qty: 2 }).await?;
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
