//! Sending to an actor on another node (docs/semantics.md "Sending to
//! another node"): the sending side. A cast to an address whose node is a
//! peer is framed with this node's name, its incarnation (the stream) and
//! the next sequence number towards that peer, and handed to the peer's
//! inbox actor ([`super::inbox`]) over ractor_cluster's one session to it.
//!
//! Everything towards one peer is numbered and sent under one lock, into
//! one remote actor, over one session: in order. The peer acknowledges what
//! it received (in batches); what is sent and not acknowledged is *in
//! flight*, at most [`MAX_IN_FLIGHT`] per peer (ractor_cluster queues
//! without bound behind a frozen peer; this bounds it). When the peer is
//! marked unreachable or restarts, what was in flight is reported as not
//! known to be delivered ([`Outbound::lost`]). molt never retransmits:
//! delivery is at most once, and a report is never followed by a copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use molt_abi::Address;
use ractor::message::SerializedMessage;
use ractor::{ActorCell, ActorId, ActorStatus};
use serde::{Deserialize, Serialize};

use super::membership::ClusterView;
use crate::events::{Event, EventBus};
use crate::resolve::NoActor;

/// How many messages to one peer may be in flight (sent, not acknowledged)
/// at once; a send past it is refused with [`NoActor::Backlog`]. At one
/// acknowledgement per [`super::inbox::ACK_EVERY`] messages or
/// [`super::inbox::ACK_INTERVAL`], a peer that keeps up never gets near it.
pub(crate) const MAX_IN_FLIGHT: u64 = 10_000;

/// The variant name of a message on the wire.
pub(crate) const DELIVER: &str = "molt.remote.deliver.v1";
/// The variant name of an acknowledgement on the wire.
pub(crate) const ACK: &str = "molt.remote.ack.v1";

/// The process group of node `node`'s inbox actor (one member: ractor's
/// process groups are shared between connected nodes).
pub(crate) fn inbox_group(node: &str) -> String {
    format!("molt.inbox.{node}")
}

/// The header of a message on the wire; its bytes (already msgpack) follow
/// it as they are, not encoded again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// The sending node.
    pub from: String,
    /// The sending node's incarnation: its sequence numbers count from its
    /// start.
    pub stream: u64,
    /// This message's number towards the receiving node (from 1, no gaps
    /// on the wire).
    pub seq: u64,
    /// The receiver.
    pub to: Address,
    /// The sending actor (`ctx.sender()` on the receiving side).
    pub sender: Option<Address>,
}

/// The receiving node acknowledges everything up to `upto` of `stream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ack {
    /// The acknowledging node.
    pub from: String,
    /// The incarnation of the node whose messages are acknowledged.
    pub stream: u64,
    /// The highest sequence number received.
    pub upto: u64,
}

/// Frames a message: the header's length (4 bytes, little-endian), the
/// header (msgpack), the message's bytes.
pub(crate) fn frame(header: &Header, msg: &[u8]) -> Result<SerializedMessage, String> {
    let head = rmp_serde::to_vec_named(header).map_err(|e| e.to_string())?;
    let len = u32::try_from(head.len()).map_err(|_| "header too long".to_string())?;
    let mut args = Vec::with_capacity(4 + head.len() + msg.len());
    args.extend_from_slice(&len.to_le_bytes());
    args.extend_from_slice(&head);
    args.extend_from_slice(msg);
    Ok(SerializedMessage::Cast {
        variant: DELIVER.to_string(),
        args,
        metadata: None,
    })
}

/// A framed message's header and bytes (`None`: not a frame).
pub(crate) fn unframe(args: &[u8]) -> Option<(Header, &[u8])> {
    let len = u32::from_le_bytes(args.get(..4)?.try_into().ok()?) as usize;
    let head = args.get(4..4 + len)?;
    let header = rmp_serde::from_slice(head).ok()?;
    Some((header, &args[4 + len..]))
}

/// The inbox actor of node `node`, as this process knows it now: the
/// member of its group on the newest session (a restarted peer's old
/// session may linger for a moment).
/// Returns it with the id of that session.
pub(crate) fn inbox_of(node: &str) -> Option<(u64, ActorCell)> {
    ractor::pg::get_members(&inbox_group(node))
        .into_iter()
        .filter_map(|cell| match cell.get_id() {
            ActorId::Remote { node_id, .. } => Some((node_id, cell)),
            ActorId::Local(_) => None,
        })
        .max_by_key(|(node_id, _)| *node_id)
}

/// What was sent to one peer.
#[derive(Debug, Default)]
struct PeerOut {
    /// The last sequence number sent.
    sent: u64,
    /// Everything up to here is acknowledged or reported lost.
    settled: u64,
    /// The session the last message went over.
    session: Option<u64>,
    /// The peer's inbox on that session, kept while it runs (a lookup in
    /// the process groups allocates).
    inbox: Option<ActorCell>,
}

/// This node's sending side: sequence numbers and what is in flight, per
/// peer.
#[derive(Debug)]
pub(crate) struct Outbound {
    node: String,
    stream: u64,
    view: ClusterView,
    max_in_flight: u64,
    peers: Mutex<HashMap<String, PeerOut>>,
    /// Where lost messages are reported.
    bus: EventBus,
}

impl Outbound {
    /// The sending side of node `node` in incarnation `stream`.
    pub(crate) fn new(
        node: &str,
        stream: u64,
        view: ClusterView,
        max_in_flight: u64,
        bus: EventBus,
    ) -> Self {
        Outbound {
            node: node.to_string(),
            stream,
            view,
            max_in_flight,
            peers: Mutex::default(),
            bus,
        }
    }

    /// Sends `msg` (msgpack) from `sender` to the actor at `to` on a peer.
    ///
    /// # Errors
    /// [`NoActor::UnknownNode`] when no member has that name,
    /// [`NoActor::Unreachable`] when it is marked unreachable (or its
    /// session is gone), [`NoActor::Backlog`] when [`MAX_IN_FLIGHT`]
    /// messages to it are unacknowledged.
    pub(crate) fn send(
        &self,
        to: &Address,
        msg: &[u8],
        sender: Option<&Address>,
    ) -> Result<(), NoActor> {
        let node = to.node.as_str();
        let reachable = self.view.with(|v| v.reachable(node)).flatten();
        match reachable {
            Some(true) => {}
            Some(false) => {
                return Err(NoActor::Unreachable {
                    address: to.to_string(),
                    node: node.to_string(),
                })
            }
            None => {
                let members = self.view.with(|v| v.names()).unwrap_or_default();
                return Err(NoActor::UnknownNode {
                    address: to.to_string(),
                    node: node.to_string(),
                    members: members.join(", "),
                });
            }
        }
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let peer = peers.entry(node.to_string()).or_default();
        if peer.sent - peer.settled >= self.max_in_flight {
            return Err(NoActor::Backlog {
                address: to.to_string(),
                node: node.to_string(),
                limit: self.max_in_flight,
            });
        }
        let unreachable = || NoActor::Unreachable {
            address: to.to_string(),
            node: node.to_string(),
        };
        let kept = peer
            .inbox
            .as_ref()
            .is_some_and(|c| c.get_status() == ActorStatus::Running);
        if !kept {
            let (session, inbox) = inbox_of(node).ok_or_else(unreachable)?;
            if peer.session.is_some_and(|s| s != session) {
                // The connection broke and came back (same incarnation, or
                // the restart is not heard of yet): what went over the old
                // one and is not acknowledged may be lost with it.
                let count = peer.sent - peer.settled;
                peer.settled = peer.sent;
                self.report(node, count, "reconnected");
            }
            peer.session = Some(session);
            peer.inbox = Some(inbox);
        }
        let header = Header {
            from: self.node.clone(),
            stream: self.stream,
            seq: peer.sent + 1,
            to: to.clone(),
            sender: sender.cloned(),
        };
        let framed = frame(&header, msg).map_err(|e| NoActor::Gone {
            address: format!("{to}: the message cannot be framed ({e})"),
        })?;
        let inbox = peer.inbox.as_ref().ok_or_else(unreachable)?;
        if inbox.send_serialized(framed).is_err() {
            peer.inbox = None;
            return Err(unreachable());
        }
        peer.sent += 1;
        Ok(())
    }

    /// `peer` acknowledged everything up to `upto` of `stream` (ignored
    /// when `stream` is not this node's incarnation: an old one's).
    pub(crate) fn acked(&self, peer: &str, stream: u64, upto: u64) {
        if stream != self.stream {
            return;
        }
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = peers.get_mut(peer) {
            p.settled = p.settled.max(upto.min(p.sent));
        }
    }

    /// `peer` was marked unreachable or restarted: what is in flight to it
    /// is given up (a late acknowledgement changes nothing). Returns how
    /// many messages that is.
    pub(crate) fn lost(&self, peer: &str) -> u64 {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get_mut(peer) {
            Some(p) => {
                let count = p.sent - p.settled;
                p.settled = p.sent;
                // A restarted peer's inbox is another actor.
                p.inbox = None;
                count
            }
            None => 0,
        }
    }

    /// Reports `count` messages to `peer` as not known to be delivered
    /// (`reason`: `unreachable`, `restarted`, `reconnected`): a
    /// `cluster.messages_undelivered` event, a counter, a log line.
    pub(crate) fn report(&self, peer: &str, count: u64, reason: &'static str) {
        if count == 0 {
            return;
        }
        tracing::warn!(target: "molt::cluster", %peer, count, reason, "messages sent to the peer were not acknowledged: not known to be delivered");
        metrics::counter!("molt_cluster_messages_undelivered_total", "peer" => peer.to_string())
            .increment(count);
        self.bus.publish(Event::MessagesUndelivered {
            node: peer.to_string(),
            count,
            reason: reason.to_string(),
        });
    }

    /// Gives up what is in flight to every peer marked unreachable (after
    /// membership events were missed): each reported.
    pub(crate) fn lost_unreachable(&self) {
        for peer in self.view.with(|v| v.unreachable()).unwrap_or_default() {
            let count = self.lost(&peer);
            self.report(&peer, count, "unreachable");
        }
    }

    /// How many messages to `peer` are in flight.
    #[cfg(test)]
    fn in_flight(&self, peer: &str) -> u64 {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.get(peer).map_or(0, |p| p.sent - p.settled)
    }
}

/// The sending sides of the nodes of this process in a cluster, by node
/// name. Process-wide, as ractor's process groups are (a process takes
/// part in a cluster as one node); only a send to another node reads it.
static OUTBOUND: RwLock<Vec<Arc<Outbound>>> = RwLock::new(Vec::new());

/// Node `outbound.node` sends through `outbound` (its cluster started).
pub(crate) fn register(outbound: Arc<Outbound>) {
    let mut all = OUTBOUND.write().unwrap_or_else(|p| p.into_inner());
    all.retain(|o| o.node != outbound.node);
    all.push(outbound);
}

/// Node `node` left its cluster: sends to other nodes fail again.
pub(crate) fn unregister(node: &str) {
    let mut all = OUTBOUND.write().unwrap_or_else(|p| p.into_inner());
    all.retain(|o| o.node != node);
}

/// The sending side of node `this`, when it is in a cluster.
pub(crate) fn outbound(this: &str) -> Option<Arc<Outbound>> {
    let all = OUTBOUND.read().unwrap_or_else(|p| p.into_inner());
    all.iter().find(|o| o.node == this).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_carries_its_header_and_the_bytes_as_they_are() {
        let header = Header {
            from: "a".into(),
            stream: 7,
            seq: 42,
            to: Address::instance("b", "peer", 0),
            sender: Some(Address::key("a", "cart", "u-1")),
        };
        let SerializedMessage::Cast { variant, args, .. } =
            frame(&header, b"\x81\xa1x\x01").unwrap()
        else {
            panic!("a cast")
        };
        assert_eq!(variant, DELIVER);
        let (back, bytes) = unframe(&args).unwrap();
        assert_eq!(back, header);
        assert_eq!(bytes, b"\x81\xa1x\x01");
        assert!(unframe(&args[..3]).is_none());
        assert!(unframe(&[200, 0, 0, 0, 1]).is_none());
    }

    #[test]
    fn acknowledged_and_lost_messages_settle_once() {
        let out = Outbound::new("a", 7, ClusterView::default(), 3, EventBus::new(16));
        out.peers.lock().unwrap().insert(
            "b".into(),
            PeerOut {
                sent: 5,
                settled: 0,
                session: None,
                inbox: None,
            },
        );
        out.acked("b", 6, 5); // another incarnation's ack: ignored
        assert_eq!(out.in_flight("b"), 5);
        out.acked("b", 7, 2);
        assert_eq!(out.in_flight("b"), 3);
        out.acked("b", 7, 1); // late, lower: no change
        assert_eq!(out.in_flight("b"), 3);
        assert_eq!(out.lost("b"), 3);
        assert_eq!(out.lost("b"), 0, "reported once");
        out.acked("b", 7, 5); // a late ack after the report
        assert_eq!(out.in_flight("b"), 0);
        assert_eq!(out.lost("c"), 0);
    }
}
