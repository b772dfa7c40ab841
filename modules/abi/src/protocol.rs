use serde::{de::DeserializeOwned, Serialize};

/// The message and reply types of one module, shared by the module crate and
/// the applications that talk to it.
///
/// Put the protocol in its own small crate (see `modules/kv_proto`): the module
/// library implements its handler with these types and the application sends
/// them through a typed handle (`node.module::<kv_proto::Proto>("kv")`), so
/// neither side ever sees bytes. This is abi_stable's interface / implementation
/// / user crate split.
pub trait Protocol: Send + Sync + 'static {
    /// What clients send.
    type Msg: Serialize + DeserializeOwned + Send + 'static;
    /// What the module answers to a call.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}
