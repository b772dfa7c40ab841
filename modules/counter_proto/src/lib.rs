//! The protocol of the example `counter` module, shared by the module
//! libraries (`counter`, `counter_v2`) and the applications that call them.
//!
//! ```ignore
//! let counter = node.module::<counter_proto::Proto>("counter")?;
//! let total: i64 = counter.request(counter_proto::Add(5)).await?;
//! // or, with the protocol's enums:
//! let counter_proto::Reply::Total(n) = counter.call(counter_proto::Msg::Add(5)).await?;
//! ```
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// The counter protocol, for typed handles (`node.module::<Proto>("counter")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Proto;

impl molt_abi::Protocol for Proto {
    type Msg = Msg;
    type Reply = Reply;
}

molt_abi::requests! {
    Proto {
        /// Adds to the total (negative values subtract); answers the new
        /// total ([`Msg::Add`]).
        Add(i64) -> i64 { Msg::Add, Reply::Total(total) => total }
        /// The current total ([`Msg::Get`]).
        Get -> i64 { Msg::Get, Reply::Total(total) => total }
        /// Sets the total to zero; answers the new total, 0 ([`Msg::Reset`]).
        Reset -> i64 { Msg::Reset, Reply::Total(total) => total }
    }
}

/// What clients send to the counter.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Adds to the total (negative values subtract); answers the new total.
    Add(i64),
    /// Answers the current total.
    Get,
    /// Sets the total to zero; answers the new total (0).
    Reset,
}

/// What the counter answers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The total after the message was handled.
    Total(i64),
}
