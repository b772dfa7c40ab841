//! Sending to an actor on another node (docs/semantics.md "Sending to
//! another node"): the sending side. A cast to an address whose node is a
//! peer gets the next number towards that peer and joins the peer's
//! pending batch ([`super::wire`]); one task ([`flush_batches`]) hands each
//! batch to the peer's inbox actor ([`super::inbox`]) over ractor_cluster's
//! one session to it. Whatever is sent while a batch is handed over goes
//! in the next one: one ractor_cluster message carries many of molt's.
//!
//! Everything towards one peer is numbered and queued under one lock,
//! handed over by one task, into one remote actor, over one session: in
//! order. The peer acknowledges what
//! it received (in batches); what is sent and not acknowledged is *in
//! flight*, at most `cluster.max_in_flight` per peer (ractor_cluster queues
//! without bound behind a frozen peer; this bounds it). When the peer is
//! marked unreachable or restarts, what was in flight is reported as not
//! known to be delivered ([`Outbound::lost`]). molt never retransmits:
//! delivery is at most once, and a report is never followed by a copy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use molt_abi::ffi::ModError;
use molt_abi::Address;
use ractor::{ActorCell, ActorId, ActorStatus};
use tokio::sync::mpsc;

use super::membership::ClusterView;
use super::wire;
use crate::events::{Event, EventBus};
use crate::replies::ReplyPort;
use crate::resolve::NoActor;

/// The process group of node `node`'s inbox actor (one member: ractor's
/// process groups are shared between connected nodes).
pub(crate) fn inbox_group(node: &str) -> String {
    format!("molt.inbox.{node}")
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
    /// The messages sent and not handed to the session yet: the body of
    /// the next batch ([`wire::push`]), its first number and its count.
    pending: Vec<u8>,
    pending_first: u64,
    pending_count: u64,
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
    /// Tells the flusher ([`flush_batches`]) which peer has a batch
    /// waiting.
    flush: mpsc::UnboundedSender<String>,
    /// The requests sent to peers and not answered yet, by number: the
    /// peer asked and where the answer goes.
    requests: Mutex<HashMap<u64, (String, ReplyPort)>>,
    next_request: AtomicU64,
}

impl Outbound {
    /// The sending side of node `node` in incarnation `stream`, and the
    /// receiving end its flusher ([`flush_batches`]) takes.
    pub(crate) fn new(
        node: &str,
        stream: u64,
        view: ClusterView,
        max_in_flight: u64,
        bus: EventBus,
    ) -> (Self, mpsc::UnboundedReceiver<String>) {
        let (flush, flushes) = mpsc::unbounded_channel();
        let out = Outbound {
            node: node.to_string(),
            stream,
            view,
            max_in_flight,
            peers: Mutex::default(),
            bus,
            flush,
            requests: Mutex::default(),
            next_request: AtomicU64::new(1),
        };
        (out, flushes)
    }

    /// Sends `msg` (msgpack) from `sender` to the actor at `to` on a peer;
    /// with `reply`, as a request whose answer goes there (an error
    /// answer when the peer is lost first).
    ///
    /// # Errors
    /// [`NoActor::UnknownNode`] when no member has that name,
    /// [`NoActor::Unreachable`] when it is marked unreachable (or its
    /// session is gone), [`NoActor::Backlog`] when `cluster.max_in_flight`
    /// messages to it are unacknowledged.
    pub(crate) fn send(
        &self,
        to: &Address,
        msg: &[u8],
        sender: Option<&Address>,
        reply: Option<ReplyPort>,
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
                // one and is not acknowledged may be lost with it (what is
                // still pending goes over the new one).
                let handed = peer.sent - peer.pending_count;
                let count = handed.saturating_sub(peer.settled);
                peer.settled = peer.settled.max(handed);
                self.report(node, count, "reconnected");
            }
            peer.session = Some(session);
            peer.inbox = Some(inbox);
        }
        let request = reply.map(|port| {
            let id = self.next_request.fetch_add(1, Ordering::Relaxed);
            let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            // Requests whose asker gave up (timed out) are forgotten.
            requests.retain(|_, (_, port)| !port.is_closed());
            requests.insert(id, (node.to_string(), port));
            id
        });
        if let Err(e) = wire::push(&mut peer.pending, to, sender, request, msg) {
            if let Some(id) = request {
                self.requests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            }
            return Err(NoActor::Gone {
                address: format!("{to}: the message cannot be framed ({e})"),
            });
        }
        peer.sent += 1;
        peer.pending_count += 1;
        if peer.pending_count == 1 {
            peer.pending_first = peer.sent;
            // The flusher stops only with the node.
            let _ = self.flush.send(node.to_string());
        }
        Ok(())
    }

    /// Hands what is pending for `peer` to its session, as one batch. A
    /// batch its session does not take stays in flight: reported when the
    /// peer is lost.
    fn flush(&self, peer: &str) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = peers.get_mut(peer) else {
            return;
        };
        if p.pending_count == 0 {
            return;
        }
        let header = wire::BatchHeader {
            from: self.node.clone(),
            stream: self.stream,
            first: p.pending_first,
        };
        let batch = wire::batch(&header, &p.pending);
        p.pending.clear();
        p.pending_count = 0;
        match (batch, &p.inbox) {
            (Ok(batch), Some(inbox)) => {
                if inbox.send_serialized(batch).is_err() {
                    p.inbox = None;
                }
            }
            (Err(e), _) => {
                tracing::warn!(target: "molt::cluster", %peer, "a batch of messages cannot be framed: {e}")
            }
            (Ok(_), None) => {}
        }
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

    /// `peer` answered request `request` (ignored when the asker gave up
    /// or the request was failed already).
    pub(crate) fn answered(&self, peer: &str, request: u64, result: Result<Vec<u8>, ModError>) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if requests.get(&request).is_some_and(|(p, _)| p == peer) {
            if let Some((_, port)) = requests.remove(&request) {
                let _ = port.send(result);
            }
        }
    }

    /// `peer` was marked unreachable or restarted: what is in flight to it
    /// is given up (a late acknowledgement changes nothing), and its
    /// requests not answered yet fail (`why`). Returns how many messages
    /// were in flight.
    pub(crate) fn lost(&self, peer: &str, why: &str) -> u64 {
        {
            let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            let lost: Vec<u64> = requests
                .iter()
                .filter(|(_, (p, _))| p == peer)
                .map(|(id, _)| *id)
                .collect();
            for id in lost {
                if let Some((_, port)) = requests.remove(&id) {
                    let _ = port.send(Err(ModError {
                        kind: molt_abi::ErrorKind::Failed,
                        message: format!("node {peer:?} {why} before it answered").into(),
                    }));
                }
            }
        }
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get_mut(peer) {
            Some(p) => {
                let count = p.sent - p.settled;
                p.settled = p.sent;
                // Reported: not sent after that.
                p.pending.clear();
                p.pending_count = 0;
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
            let count = self.lost(&peer, "was marked unreachable");
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

/// Hands each peer's pending messages to its session, one batch at a time,
/// until the node stops: whatever queues while a batch is handed over
/// goes in the next one (messages are numbered when sent, and one task
/// hands the batches over in turn, so the order is kept).
pub(crate) async fn flush_batches(
    out: Arc<Outbound>,
    mut flushes: mpsc::UnboundedReceiver<String>,
) {
    while let Some(peer) = flushes.recv().await {
        out.flush(&peer);
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
    fn acknowledged_and_lost_messages_settle_once() {
        let (out, _) = Outbound::new("a", 7, ClusterView::default(), 3, EventBus::new(16));
        out.peers.lock().unwrap().insert(
            "b".into(),
            PeerOut {
                sent: 5,
                settled: 0,
                session: None,
                inbox: None,
                pending: Vec::new(),
                pending_first: 0,
                pending_count: 0,
            },
        );
        out.acked("b", 6, 5); // another incarnation's ack: ignored
        assert_eq!(out.in_flight("b"), 5);
        out.acked("b", 7, 2);
        assert_eq!(out.in_flight("b"), 3);
        out.acked("b", 7, 1); // late, lower: no change
        assert_eq!(out.in_flight("b"), 3);
        assert_eq!(out.lost("b", "was lost"), 3);
        assert_eq!(out.lost("b", "was lost"), 0, "reported once");
        out.acked("b", 7, 5); // a late ack after the report
        assert_eq!(out.in_flight("b"), 0);
        assert_eq!(out.lost("c", "was lost"), 0);
    }

    #[test]
    fn a_lost_peers_requests_fail_and_an_answer_reaches_only_its_asker() {
        let (out, _) = Outbound::new("a", 7, ClusterView::default(), 3, EventBus::new(16));
        let (to_b, mut from_b) = tokio::sync::oneshot::channel();
        let (to_c, mut from_c) = tokio::sync::oneshot::channel();
        {
            let mut requests = out.requests.lock().unwrap();
            requests.insert(1, ("b".to_string(), to_b));
            requests.insert(2, ("c".to_string(), to_c));
        }
        out.answered("b", 2, Ok(vec![1])); // not b's request: ignored
        assert!(from_c.try_recv().is_err());
        out.lost("b", "was marked unreachable");
        let e = from_b.try_recv().unwrap().unwrap_err();
        assert_eq!(
            e.message.as_str(),
            "node \"b\" was marked unreachable before it answered"
        );
        out.answered("c", 2, Ok(vec![1]));
        assert_eq!(from_c.try_recv().unwrap(), Ok(vec![1]));
        assert!(out.requests.lock().unwrap().is_empty());
    }
}
