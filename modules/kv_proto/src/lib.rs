//! The protocol of the example `kv` module, shared by the module libraries
//! (`kv` 1.x, `kv_v2` 2.x) and the applications that call them.
//!
//! Each message is also a typed request (a struct of the same name,
//! declared with [`molt_abi::requests!`]) whose reply has its exact type:
//!
//! ```ignore
//! let kv = node.module::<kv_proto::Proto>("kv")?;
//! kv.request(kv_proto::Put { key: "a".into(), value: "1".into() }).await?;
//! let value: Option<String> = kv.request(kv_proto::Get { key: "a".into() }).await?;
//! // The same message as the protocol's enum, answered with the whole Reply enum:
//! let reply = kv.call(kv_proto::Msg::Get { key: "a".into() }).await?;
//! ```
#![warn(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kv protocol, for typed handles (`node.module::<Proto>("kv")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Proto;

impl molt_abi::Protocol for Proto {
    type Msg = Msg;
    type Reply = Reply;
}

molt_abi::requests! {
    Proto {
        /// Sets `key` to `value` ([`Msg::Put`]).
        Put { key: String, value: String } -> () { Msg::Put, Reply::Ok => () }
        /// Reads a key: its value, if it is set ([`Msg::Get`]).
        Get { key: String } -> Option<String> { Msg::Get, Reply::Value(value) => value }
        /// Removes a key; absent keys are fine ([`Msg::Delete`]).
        Delete { key: String } -> () { Msg::Delete, Reply::Ok => () }
        /// Appends `seq` to the journal `stream` ([`Msg::Push`]).
        Push { stream: String, seq: u64 } -> () { Msg::Push, Reply::Ok => () }
        /// Reads a journal, empty if unknown ([`Msg::Stream`]).
        Stream { stream: String } -> Vec<u64> { Msg::Stream, Reply::Stream(seqs) => seqs }
        /// The whole user-visible state ([`Msg::Dump`]).
        GetDump -> Dump { Msg::Dump, Reply::Dump(dump) => dump }
        /// How often a key was read; kv 2.x only ([`Msg::Hits`]).
        Hits { key: String } -> u64 { Msg::Hits, Reply::Hits(hits) => hits }
        /// The code and state version of the running code ([`Msg::Version`]).
        Version -> (String, u32) { Msg::Version, Reply::Version { code, state } => (code, state) }
        /// Demo: the handler returns an error with this reason ([`Msg::Fail`]).
        Fail { reason: String } -> () { Msg::Fail, Reply::Ok => () }
        /// Demo: the handler panics with this reason ([`Msg::Panic`]).
        Panic { reason: String } -> () { Msg::Panic, Reply::Ok => () }
    }
}

/// What clients send to the kv module.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Sets `key` to `value`; answers [`Reply::Ok`].
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Reads a key; answers [`Reply::Value`].
    Get {
        /// The key.
        key: String,
    },
    /// Removes a key (absent keys are fine); answers [`Reply::Ok`].
    Delete {
        /// The key.
        key: String,
    },
    /// Appends `seq` to the append-only journal `stream`; answers [`Reply::Ok`].
    Push {
        /// The journal's name (created on first push).
        stream: String,
        /// The value appended.
        seq: u64,
    },
    /// Reads a journal (empty if unknown); answers [`Reply::Stream`].
    Stream {
        /// The journal's name.
        stream: String,
    },
    /// Reads the whole user-visible state; answers [`Reply::Dump`].
    Dump,
    /// How often a key was read; answers [`Reply::Hits`]. kv 2.x only: 1.x
    /// answers an error.
    Hits {
        /// The key.
        key: String,
    },
    /// The code and state version of the running code; answers [`Reply::Version`].
    Version,
    /// Demo: the handler returns an error with this reason.
    Fail {
        /// The error message.
        reason: String,
    },
    /// Demo: the handler panics with this reason.
    Panic {
        /// The panic message.
        reason: String,
    },
}

/// What the kv module answers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done (`Put`, `Delete`, `Push`).
    Ok,
    /// A key's value, if it is set (`Get`).
    Value(Option<String>),
    /// A journal (`Stream`).
    Stream(Vec<u64>),
    /// The whole user-visible state (`Dump`).
    Dump(Dump),
    /// How often a key was read (`Hits`).
    Hits(u64),
    /// The running code (`Version`).
    Version {
        /// The code version, e.g. "2.0.0".
        code: String,
        /// The state version.
        state: u32,
    },
}

/// The user-visible state of a kv module: the same shape in every version.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Dump {
    /// Every key and its value.
    pub entries: BTreeMap<String, String>,
    /// Every journal and its values, in push order.
    pub streams: BTreeMap<String, Vec<u64>>,
}
