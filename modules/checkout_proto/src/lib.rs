//! The protocol of the example `checkout` module (`examples/shop.rs`),
//! shared by the module and the applications that call it.
//!
//! ```ignore
//! let checkout = node.module::<checkout_proto::Proto>("checkout")?;
//! let total: checkout_proto::Total =
//!     checkout.request(checkout_proto::Checkout { user: "user-42".into() }).await?;
//! ```
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// The checkout protocol, for typed handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Proto;

impl molt_abi::Protocol for Proto {
    type Msg = Msg;
    type Reply = Reply;
}

molt_abi::requests! {
    Proto {
        /// Totals the cart of `user` ([`Msg::Checkout`]).
        Checkout { user: String } -> Total {
            Msg::Checkout, Reply::Total { user, lines, units } => Total { user, lines, units }
        }
        /// How many checkouts this actor has open now ([`Msg::Open`]).
        Open -> u32 { Msg::Open, Reply::Open(open) => open }
    }
}

/// The total of a cart: the reply to a [`Checkout`] request.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Total {
    /// The cart's key.
    pub user: String,
    /// How many lines (distinct items) the cart holds.
    pub lines: u32,
    /// The sum of the quantities of its lines.
    pub units: u64,
}

/// What clients send to a checkout actor.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Totals the cart of `user` (the actor for key `user` of the keyed
    /// module `cart`). The call stays open while the checkout actor asks the
    /// cart; answers [`Reply::Total`], or the cart's error.
    Checkout {
        /// The cart's key.
        user: String,
    },
    /// How many checkouts this actor has open now; answers [`Reply::Open`].
    Open,
}

/// What a checkout actor answers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The total of a cart.
    Total {
        /// The cart's key.
        user: String,
        /// How many lines (distinct items) the cart holds.
        lines: u32,
        /// The sum of the quantities of its lines.
        units: u64,
    },
    /// The checkouts open at this actor.
    Open(u32),
    /// Never sent to a caller: what the handler returns for a call it keeps
    /// open (the host drops it; the real answer comes later).
    Pending,
}
