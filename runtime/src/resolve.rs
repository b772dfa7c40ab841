//! Addresses to actors (issue #9 §1, `docs/semantics.md` "Addresses"): an
//! [`Address`] names a module's actor, and is resolved through the
//! directory on every send, so it stays valid across reloads of either side
//! and restarts in place (the routing slot keeps each instance's lane and
//! replaces its route). An actor that does not exist is an error, never a
//! wrap or a silent drop.

use molt_abi::Address;

use crate::directory::{lookup, Directory, Lane, ModuleSlot};
use crate::module_actor::ModuleMsg;

/// Why a message to an address could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoActor {
    /// The address names another node and this node is not in a cluster.
    #[error("{address}: it names node {node:?}, this node is {this:?} and not in a cluster (add [cluster] to its config to send to other nodes)")]
    OtherNode {
        address: String,
        node: String,
        this: String,
    },
    /// The address names a node that is not a member of this node's
    /// cluster.
    #[error("{address}: node {node:?} is not a member of the cluster (members: {members})")]
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    UnknownNode {
        address: String,
        node: String,
        members: String,
    },
    /// The address names a member that is marked unreachable (or whose
    /// session is gone): the message was not sent.
    #[error("{address}: node {node:?} is unreachable; the message was not sent")]
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    Unreachable { address: String, node: String },
    /// Too many messages to that node are not acknowledged yet.
    #[error("{address}: {limit} messages to node {node:?} are not acknowledged yet (the limit); the message was not sent")]
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    Backlog {
        address: String,
        node: String,
        limit: u64,
    },
    /// Something other than a message (a cast or a request) to another node.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    #[error("{address}: only casts and requests go to other nodes")]
    NotAMessage { address: String },
    /// No module of that name runs here (removed, or never added).
    #[error("{address}: module {module} is not running (removed, or never added to this node)")]
    NoModule { address: String, module: String },
    /// The instance index is out of range (after a scale-down, say).
    #[error("{address}: module {module} has {count} instance(s), there is no instance {index}")]
    NoInstance {
        address: String,
        module: String,
        index: usize,
        count: usize,
    },
    /// A key address to a module that is not keyed.
    #[error("{address}: module {module} is not keyed (a key address needs a keyed module)")]
    NotKeyed { address: String, module: String },
    /// An instance address to a keyed module (its actors are named by key).
    #[error("{address}: module {module} is keyed: address one of its actors by key")]
    KeyRequired { address: String, module: String },
    /// The keyed module has `max_live` actors live and this key is not one
    /// of them: the message was not taken.
    #[error("{address}: module {module} has {max_live} keyed actors live (max_live); the message to a key that is not live was refused")]
    TooManyLive {
        address: String,
        module: String,
        max_live: u32,
    },
    /// The actor stopped (its module is being removed, or the node stops).
    #[error("{address}: the actor is gone (its module was removed or the node is stopping)")]
    Gone { address: String },
}

/// Sends `msg` to instance `index` of the module in `slot`, resolved now:
/// no wrap. The lane is borrowed for the send, not cloned (no reference
/// count touched per message on a lane every sender shares).
pub(crate) fn send_to_instance(
    slot: &ModuleSlot,
    index: usize,
    address: impl Fn() -> String,
    msg: ModuleMsg,
) -> Result<(), NoActor> {
    with_lane(slot, index, &address, |lane| lane.send(msg))?
        .map_err(|_| NoActor::Gone { address: address() })
}

/// The lane of instance `index` of the module in `slot`, resolved now (as
/// [`send_to_instance`] resolves it), for a cache that keeps it while it
/// stays valid (`crate::routes`).
pub(crate) fn lane_of(
    slot: &ModuleSlot,
    index: usize,
    address: impl Fn() -> String,
) -> Result<std::sync::Arc<Lane>, NoActor> {
    with_lane(slot, index, address, |lane| lane.clone())
}

/// Calls `f` with the lane of instance `index` of the module in `slot`:
/// an error when the module is removed or keyed, or has no such instance.
fn with_lane<R>(
    slot: &ModuleSlot,
    index: usize,
    address: impl Fn() -> String,
    f: impl FnOnce(&std::sync::Arc<Lane>) -> R,
) -> Result<R, NoActor> {
    let lanes = slot.lanes.load();
    if slot.is_closed() {
        return Err(NoActor::NoModule {
            address: address(),
            module: slot.name.to_string(),
        });
    }
    if slot.keyed().is_some() {
        return Err(NoActor::KeyRequired {
            address: address(),
            module: slot.name.to_string(),
        });
    }
    let lane = lanes.get(index).ok_or_else(|| NoActor::NoInstance {
        address: address(),
        module: slot.name.to_string(),
        index,
        count: lanes.len(),
    })?;
    Ok(f(lane))
}

/// Sends `msg` to the actor for `key` of the keyed module `module`. The
/// one entry of key addresses (module contexts and application handles
/// both come here): activates the key's actor when it is not live.
pub(crate) fn send_to_key(
    directory: &Directory,
    module: &str,
    key: &[u8],
    msg: ModuleMsg,
) -> Result<(), NoActor> {
    use crate::directory::{route_to_key, KeyedRefusal};
    let address = || format!("{module}[{}]", molt_abi::Key::from(key));
    route_to_key(directory, module, key, msg).map_err(|refusal| match refusal {
        KeyedRefusal::NotRunning => NoActor::NoModule {
            address: address(),
            module: module.to_string(),
        },
        KeyedRefusal::NotKeyed => NoActor::NotKeyed {
            address: address(),
            module: module.to_string(),
        },
        KeyedRefusal::TooManyLive { max_live } => NoActor::TooManyLive {
            address: address(),
            module: module.to_string(),
            max_live,
        },
    })
}

/// Sends `msg` to the actor at `to` on node `this`, resolved now.
pub(crate) fn send(
    directory: &Directory,
    this: &str,
    to: &Address,
    msg: ModuleMsg,
) -> Result<(), NoActor> {
    if to.node != this {
        return send_remote(this, to, msg);
    }
    match &to.target {
        molt_abi::Target::Key(key) => send_to_key(directory, &to.module, key.as_bytes(), msg),
        molt_abi::Target::Instance(index) => {
            let slot = lookup(directory, &to.module).ok_or_else(|| NoActor::NoModule {
                address: to.to_string(),
                module: to.module.clone(),
            })?;
            send_to_instance(&slot, *index, || to.to_string(), msg)
        }
    }
}

/// Sends `msg` from node `this` to the actor at `to` on another node
/// (docs/semantics.md "Sending to another node"): a cast or a request goes
/// through the cluster's sending side.
///
/// # Errors
/// [`NoActor::OtherNode`] when `this` is not in a cluster, the errors of
/// `cluster::remote::Outbound::send`.
pub(crate) fn send_remote(this: &str, to: &Address, msg: ModuleMsg) -> Result<(), NoActor> {
    #[cfg(feature = "cluster")]
    if let Some(out) = crate::cluster::remote::outbound(this) {
        return match msg {
            ModuleMsg::Cast(bytes, sender) => out.send(to, &bytes, sender.as_deref(), None),
            ModuleMsg::Call(bytes, reply, sender) => {
                out.send(to, &bytes, sender.as_deref(), Some(reply))
            }
            _ => Err(NoActor::NotAMessage {
                address: to.to_string(),
            }),
        };
    }
    drop(msg);
    Err(NoActor::OtherNode {
        address: to.to_string(),
        node: to.node.clone(),
        this: this.to_string(),
    })
}
