//! The receiving side of sends between nodes (docs/semantics.md "Sending
//! to another node"): one inbox actor per node, the one member of the
//! process group [`super::remote::inbox_group`]. It puts each message from
//! a peer into the receiving actor's mailbox as it arrives (no handler is
//! awaited), so what one node sends to another is delivered in the order
//! it was sent; it drops a repeated sequence number, and acknowledges what
//! it received in batches. It also takes the acknowledgements of this
//! node's own sends, and reports what was in flight to a peer that is
//! marked unreachable or restarts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::remote::{self, Outbound};
use super::wire::{self, Ack, AnswerHeader, Batch};
use molt_abi::ffi::ModError;
use molt_abi::ErrorKind;
use tokio::sync::oneshot;

use crate::directory::Directory;
use crate::events::{Event, EventBus, Received};
use crate::module_actor::ModuleMsg;
use crate::msg_bytes::MsgBytes;
use crate::sender::Sender;

/// A peer's messages are acknowledged after this many...
pub(crate) const ACK_EVERY: u64 = 256;
/// ...or this long after the first one not yet acknowledged.
pub(crate) const ACK_INTERVAL: Duration = Duration::from_millis(20);

/// The inbox actor's messages.
#[derive(Debug)]
pub(crate) enum InboxMsg {
    /// Messages from a peer, for actors of this node.
    Deliver(Batch),
    /// A peer acknowledges this node's messages.
    Ack(Ack),
    /// A peer answers a request of this node's.
    Answer(AnswerHeader, Vec<u8>),
    /// Time to acknowledge what arrived since the last time.
    Flush,
}

impl ractor::Message for InboxMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        // Sent already framed (`remote::frame`, `send_ack`).
        Err(BoxedDowncastErr)
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match bytes {
            // Anything else (another version's format, garbage) is dropped
            // by ractor, never a panic.
            SerializedMessage::Cast { variant, args, .. } if variant == wire::DELIVER => {
                wire::unbatch(args)
                    .map(InboxMsg::Deliver)
                    .ok_or(BoxedDowncastErr)
            }
            SerializedMessage::Cast { variant, args, .. } if variant == wire::ANSWER => {
                wire::unanswer(&args)
                    .map(|(header, reply)| InboxMsg::Answer(header, reply))
                    .ok_or(BoxedDowncastErr)
            }
            SerializedMessage::Cast { variant, args, .. } if variant == wire::ACK => {
                rmp_serde::from_slice(&args)
                    .map(InboxMsg::Ack)
                    .map_err(|_| BoxedDowncastErr)
            }
            _ => Err(BoxedDowncastErr),
        }
    }
}

/// The inbox actor.
pub(crate) struct Inbox;

/// What it starts with.
pub(crate) struct InboxArgs {
    /// This node's name.
    pub node: String,
    pub directory: Directory,
    pub outbound: Arc<Outbound>,
    /// Where membership changes are heard and lost messages reported.
    pub bus: EventBus,
}

/// One peer's stream of messages to this node.
#[derive(Debug)]
struct Stream {
    /// The peer's incarnation.
    stream: u64,
    /// The highest sequence number received.
    last: u64,
    /// The highest sequence number acknowledged.
    acked: u64,
}

pub(crate) struct InboxState {
    node: String,
    directory: Directory,
    outbound: Arc<Outbound>,
    streams: HashMap<String, Stream>,
    /// Messages received since the last acknowledgement.
    unacked: u64,
    ticker: Option<JoinHandle<()>>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

impl Actor for Inbox {
    type Msg = InboxMsg;
    type State = InboxState;
    type Arguments = InboxArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<InboxMsg>,
        args: InboxArgs,
    ) -> Result<InboxState, ActorProcessingErr> {
        ractor::pg::join(remote::inbox_group(&args.node), vec![myself.get_cell()]);
        let ticker = myself.send_interval(ACK_INTERVAL, || InboxMsg::Flush);
        let watcher = watch_members(&args.bus, args.outbound.clone());
        Ok(InboxState {
            node: args.node,
            directory: args.directory,
            outbound: args.outbound,
            streams: HashMap::new(),
            unacked: 0,
            ticker: Some(ticker),
            watcher: Some(watcher),
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<InboxMsg>,
        st: &mut InboxState,
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::leave(remote::inbox_group(&st.node), vec![myself.get_cell()]);
        if let Some(t) = st.ticker.take() {
            t.abort();
        }
        if let Some(w) = st.watcher.take() {
            w.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<InboxMsg>,
        msg: InboxMsg,
        st: &mut InboxState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            InboxMsg::Deliver(batch) => {
                st.deliver(&batch);
                if st.unacked >= ACK_EVERY {
                    st.flush();
                }
            }
            InboxMsg::Ack(ack) => st.outbound.acked(&ack.from, ack.stream, ack.upto),
            InboxMsg::Answer(header, reply) => {
                let result = match header.error {
                    None => Ok(reply),
                    Some((kind, message)) => Err(ModError {
                        kind: error_kind(kind),
                        message: message.into(),
                    }),
                };
                st.outbound.answered(&header.from, header.request, result);
            }
            InboxMsg::Flush => st.flush(),
        }
        Ok(())
    }
}

impl InboxState {
    /// Puts a peer's messages into the receiving actors' mailboxes, in
    /// order (a number already seen is dropped).
    fn deliver(&mut self, batch: &Batch) {
        let header = &batch.header;
        let s = match self.streams.get_mut(&header.from) {
            Some(s) => s,
            None => self.streams.entry(header.from.clone()).or_insert(Stream {
                stream: header.stream,
                last: 0,
                acked: 0,
            }),
        };
        if s.stream != header.stream {
            // The peer restarted: its numbering starts again.
            *s = Stream {
                stream: header.stream,
                last: 0,
                acked: 0,
            };
        }
        for (seq, (envelope, bytes)) in (header.first..).zip(&batch.messages) {
            if seq <= s.last {
                tracing::debug!(target: "molt::cluster", peer = %header.from, seq, "a repeated message is dropped");
                continue;
            }
            s.last = seq;
            self.unacked += 1;
            if envelope.to.node != self.node {
                // Never forwarded: a peer sends only what is for this node.
                tracing::warn!(target: "molt::cluster", peer = %header.from, to = %envelope.to, "a message from another node for a third node is dropped");
                metrics::counter!("molt_cluster_messages_unroutable_total", "peer" => header.from.clone())
                    .increment(1);
                if let Some(request) = envelope.request {
                    let why = format!("{}: not an actor of node {:?}", envelope.to, self.node);
                    send_answer(&self.node, &header.from, request, Err(failed(why)));
                }
                continue;
            }
            let sender = envelope.sender.clone().map(|a| Sender::Shared(Arc::new(a)));
            let bytes = MsgBytes::from(batch.bytes(bytes));
            let Some(request) = envelope.request else {
                let msg = ModuleMsg::Cast(bytes, sender);
                if let Err(e) = crate::resolve::send(&self.directory, &self.node, &envelope.to, msg)
                {
                    tracing::warn!(target: "molt::cluster", peer = %header.from, "a message from another node is dropped: {e}");
                    metrics::counter!("molt_cluster_messages_unroutable_total", "peer" => header.from.clone())
                        .increment(1);
                }
                continue;
            };
            let (port, reply) = oneshot::channel();
            let msg = ModuleMsg::Call(bytes, port, sender);
            let (node, asker) = (self.node.clone(), header.from.clone());
            match crate::resolve::send(&self.directory, &self.node, &envelope.to, msg) {
                Ok(()) => {
                    tokio::spawn(async move {
                        let result = match tokio::time::timeout(ANSWER_WITHIN, reply).await {
                            Ok(Ok(result)) => result,
                            Ok(Err(_)) => Err(failed("the actor stopped before it answered")),
                            Err(_) => Err(failed("no answer within 5 minutes")),
                        };
                        send_answer(&node, &asker, request, result);
                    });
                }
                Err(e) => send_answer(&node, &asker, request, Err(failed(e.to_string()))),
            }
        }
    }

    /// Acknowledges to each peer what arrived from it since the last time.
    fn flush(&mut self) {
        if self.unacked == 0 {
            return;
        }
        self.unacked = 0;
        for (peer, s) in &mut self.streams {
            if s.acked == s.last {
                continue;
            }
            let Some((_, inbox)) = remote::inbox_of(peer) else {
                continue;
            };
            let ack = Ack {
                from: self.node.clone(),
                stream: s.stream,
                upto: s.last,
            };
            let Ok(args) = rmp_serde::to_vec_named(&ack) else {
                continue;
            };
            let framed = SerializedMessage::Cast {
                variant: wire::ACK.to_string(),
                args,
                metadata: None,
            };
            if inbox.send_serialized(framed).is_ok() {
                s.acked = s.last;
            }
        }
    }
}

/// How long this node waits for the answer to a peer's request (the asker
/// gives up at its own call timeout, much earlier).
const ANSWER_WITHIN: Duration = Duration::from_secs(300);

fn failed(message: impl Into<String>) -> ModError {
    ModError {
        kind: ErrorKind::Failed,
        message: message.into().into(),
    }
}

/// An error kind from its number on the wire (an unknown one: `Failed`).
fn error_kind(n: u8) -> ErrorKind {
    [
        ErrorKind::Failed,
        ErrorKind::Panicked,
        ErrorKind::UnknownStateVersion,
        ErrorKind::CannotDowngrade,
        ErrorKind::BadInput,
    ]
    .into_iter()
    .find(|k| *k as u8 == n)
    .unwrap_or(ErrorKind::Failed)
}

/// Sends the answer to request `request` of node `asker` back to it (an
/// asker that is gone meanwhile gets none: its request fails there).
fn send_answer(node: &str, asker: &str, request: u64, result: Result<Vec<u8>, ModError>) {
    let (reply, error) = match &result {
        Ok(bytes) => (bytes.as_slice(), None),
        Err(e) => (&[][..], Some((e.kind as u8, e.message.to_string()))),
    };
    let header = AnswerHeader {
        from: node.to_string(),
        request,
        error,
    };
    let Some((_, inbox)) = remote::inbox_of(asker) else {
        return;
    };
    match wire::answer(&header, reply) {
        Ok(answer) => {
            let _ = inbox.send_serialized(answer);
        }
        Err(e) => {
            tracing::warn!(target: "molt::cluster", peer = %asker, "an answer cannot be framed: {e}")
        }
    }
}

/// Reports what was in flight to a peer when it is marked unreachable or
/// restarts ([`Outbound::report`]).
fn watch_members(bus: &EventBus, outbound: Arc<Outbound>) -> tokio::task::JoinHandle<()> {
    let mut events = bus.subscribe();
    tokio::spawn(async move {
        loop {
            let (node, reason) = match events.recv().await {
                Received::Event(e) => match &e.event {
                    Event::MemberUnreachable { node, .. } => (node.clone(), "unreachable"),
                    Event::MemberRestarted { node, .. } => (node.clone(), "restarted"),
                    _ => continue,
                },
                Received::Lagged(_) => {
                    outbound.lost_unreachable();
                    continue;
                }
                Received::Closed => return,
            };
            let why = match reason {
                "restarted" => "restarted",
                _ => "was marked unreachable",
            };
            let count = outbound.lost(&node, why);
            outbound.report(&node, count, reason);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::membership::ClusterView;
    use molt_abi::Address;
    use ractor::message::SerializedMessage;

    /// A batch from `from` (incarnation `stream`) numbered from `first`,
    /// of `count` messages to a module this node does not run.
    fn batch(from: &str, stream: u64, first: u64, count: usize) -> Batch {
        let to = Address::instance("b", "nothing", 0);
        let mut body = Vec::new();
        for _ in 0..count {
            wire::push(&mut body, &to, None, None, b"\xc0").unwrap();
        }
        let header = wire::BatchHeader {
            from: from.into(),
            stream,
            first,
        };
        let SerializedMessage::Cast { args, .. } = wire::batch(&header, &body).unwrap() else {
            panic!("a cast")
        };
        wire::unbatch(args).unwrap()
    }

    #[test]
    fn a_number_seen_before_is_dropped_and_a_restart_numbers_anew() {
        let (outbound, _) = Outbound::new("b", 1, ClusterView::default(), 10, EventBus::new(4));
        let mut st = InboxState {
            node: "b".into(),
            directory: Directory::default(),
            outbound: Arc::new(outbound),
            streams: HashMap::new(),
            unacked: 0,
            ticker: None,
            watcher: None,
        };
        st.deliver(&batch("a", 7, 1, 3));
        assert_eq!((st.streams["a"].last, st.unacked), (3, 3));
        // 2..=4: 2 and 3 were seen; only 4 is taken.
        st.deliver(&batch("a", 7, 2, 3));
        assert_eq!((st.streams["a"].last, st.unacked), (4, 4));
        // a restarted (another incarnation): its numbers start again.
        st.deliver(&batch("a", 8, 1, 2));
        assert_eq!((st.streams["a"].stream, st.streams["a"].last), (8, 2));
        assert_eq!(st.unacked, 6);
    }
}
