//! How messages between nodes look on the wire (inside ractor_cluster's
//! serialized casts): batches of messages, and acknowledgements.
//!
//! A batch: the length of its header (4 bytes, little-endian), the header
//! (msgpack: sending node, its incarnation, the first message's number),
//! then per message the length of its envelope, the envelope (msgpack:
//! receiver and sender addresses), the length of its bytes and the bytes
//! (already msgpack, not encoded again). The messages of a batch are
//! numbered from the header's `first`, one by one.

use std::ops::Range;

use molt_abi::Address;
use ractor::message::SerializedMessage;
use serde::{Deserialize, Serialize};

/// The variant name of a batch.
pub(crate) const DELIVER: &str = "molt.remote.deliver.v1";
/// The variant name of an acknowledgement.
pub(crate) const ACK: &str = "molt.remote.ack.v1";
/// The variant name of the answer to a request.
pub(crate) const ANSWER: &str = "molt.remote.answer.v1";

/// What a batch's messages share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BatchHeader {
    /// The sending node.
    pub from: String,
    /// The sending node's incarnation: its numbering starts at its start.
    pub stream: u64,
    /// The number of the batch's first message (numbers count from 1 per
    /// receiving node, without gaps on the wire).
    pub first: u64,
}

/// Who a message is for and from, as written.
#[derive(Serialize)]
struct EnvelopeRef<'a> {
    to: &'a Address,
    sender: Option<&'a Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<u64>,
}

/// Who a message is for and from, as read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Envelope {
    /// The receiver.
    pub to: Address,
    /// The sending actor (`ctx.sender()` on the receiving side).
    pub sender: Option<Address>,
    /// A request (`ctx.ask`, a call): its number on the sending node, to
    /// which the answer goes back ([`AnswerHeader`]).
    #[serde(default)]
    pub request: Option<u64>,
}

/// The answer to a request, sent back to the asking node: this header
/// (length-prefixed, as a batch's), then the reply's bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AnswerHeader {
    /// The answering node.
    pub from: String,
    /// The request's number on the asking node.
    pub request: u64,
    /// The handler's error (its kind's number and its message); the bytes
    /// are empty then.
    pub error: Option<(u8, String)>,
}

/// An answer ready to send.
pub(crate) fn answer(header: &AnswerHeader, reply: &[u8]) -> Result<SerializedMessage, String> {
    let head = rmp_serde::to_vec_named(header).map_err(|e| e.to_string())?;
    let mut args = Vec::with_capacity(4 + head.len() + reply.len());
    put_len(&mut args, head.len())?;
    args.extend_from_slice(&head);
    args.extend_from_slice(reply);
    Ok(SerializedMessage::Cast {
        variant: ANSWER.to_string(),
        args,
        metadata: None,
    })
}

/// Reads an answer: its header and the reply's bytes.
pub(crate) fn unanswer(args: &[u8]) -> Option<(AnswerHeader, Vec<u8>)> {
    let mut at = 0;
    let (head, _) = take(args, &mut at)?;
    let header = rmp_serde::from_slice(head).ok()?;
    Some((header, args[at..].to_vec()))
}

/// The receiving node acknowledges everything up to `upto` of `stream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ack {
    /// The acknowledging node.
    pub from: String,
    /// The incarnation of the node whose messages are acknowledged.
    pub stream: u64,
    /// The highest number received.
    pub upto: u64,
}

/// Appends `bytes` with `len`'s 4-byte length before them.
fn put_len(body: &mut Vec<u8>, len: usize) -> Result<(), String> {
    let len = u32::try_from(len).map_err(|_| format!("{len} bytes: too long for a frame"))?;
    body.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Appends one message to a batch's body. On an error the body is as it
/// was.
pub(crate) fn push(
    body: &mut Vec<u8>,
    to: &Address,
    sender: Option<&Address>,
    request: Option<u64>,
    msg: &[u8],
) -> Result<(), String> {
    let start = body.len();
    body.extend_from_slice(&[0; 4]);
    let envelope = EnvelopeRef {
        to,
        sender,
        request,
    };
    if let Err(e) = rmp_serde::encode::write_named(body, &envelope) {
        body.truncate(start);
        return Err(e.to_string());
    }
    let envelope = body.len() - start - 4;
    body[start..start + 4].copy_from_slice(&(envelope as u32).to_le_bytes());
    if let Err(e) = put_len(body, msg.len()) {
        body.truncate(start);
        return Err(e);
    }
    body.extend_from_slice(msg);
    Ok(())
}

/// A batch ready to send: `header` then `body` (made with [`push`]).
pub(crate) fn batch(header: &BatchHeader, body: &[u8]) -> Result<SerializedMessage, String> {
    let head = rmp_serde::to_vec_named(header).map_err(|e| e.to_string())?;
    let mut args = Vec::with_capacity(4 + head.len() + body.len());
    put_len(&mut args, head.len())?;
    args.extend_from_slice(&head);
    args.extend_from_slice(body);
    Ok(SerializedMessage::Cast {
        variant: DELIVER.to_string(),
        args,
        metadata: None,
    })
}

/// A batch as received: its header, and each message's envelope with
/// where its bytes are in `args`.
#[derive(Debug)]
pub(crate) struct Batch {
    pub header: BatchHeader,
    pub messages: Vec<(Envelope, Range<usize>)>,
    pub args: Vec<u8>,
}

impl Batch {
    /// The bytes of a message of the batch.
    pub(crate) fn bytes(&self, at: &Range<usize>) -> &[u8] {
        &self.args[at.clone()]
    }
}

/// Reads a length-prefixed part of `args` at `*at`, moving past it.
fn take<'a>(args: &'a [u8], at: &mut usize) -> Option<(&'a [u8], Range<usize>)> {
    let len = u32::from_le_bytes(args.get(*at..*at + 4)?.try_into().ok()?) as usize;
    let range = *at + 4..(*at + 4).checked_add(len)?;
    let part = args.get(range.clone())?;
    *at = range.end;
    Some((part, range))
}

/// Reads a batch (`None`: not one, or cut short).
pub(crate) fn unbatch(args: Vec<u8>) -> Option<Batch> {
    let mut at = 0;
    let (head, _) = take(&args, &mut at)?;
    let header = rmp_serde::from_slice(head).ok()?;
    let mut messages = Vec::new();
    while at < args.len() {
        let (envelope, _) = take(&args, &mut at)?;
        let envelope = rmp_serde::from_slice(envelope).ok()?;
        let (_, bytes) = take(&args, &mut at)?;
        messages.push((envelope, bytes));
    }
    Some(Batch {
        header,
        messages,
        args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_carries_its_messages_in_order_and_their_bytes_as_they_are() {
        let header = BatchHeader {
            from: "a".into(),
            stream: 7,
            first: 42,
        };
        let (to, sender) = (
            Address::instance("b", "peer", 0),
            Address::key("a", "cart", "u-1"),
        );
        let mut body = Vec::new();
        push(&mut body, &to, Some(&sender), None, b"\x81\xa1x\x01").unwrap();
        push(&mut body, &to, None, Some(9), b"").unwrap();
        let SerializedMessage::Cast { variant, args, .. } = batch(&header, &body).unwrap() else {
            panic!("a cast")
        };
        assert_eq!(variant, DELIVER);
        let back = unbatch(args.clone()).unwrap();
        assert_eq!(back.header, header);
        assert_eq!(back.messages.len(), 2);
        assert_eq!(
            back.messages[0].0,
            Envelope {
                to: to.clone(),
                sender: Some(sender),
                request: None,
            }
        );
        assert_eq!(back.bytes(&back.messages[0].1), b"\x81\xa1x\x01");
        assert_eq!(
            back.messages[1].0,
            Envelope {
                to,
                sender: None,
                request: Some(9),
            }
        );
        assert_eq!(back.bytes(&back.messages[1].1), b"");
        // Cut short, or garbage: refused, never a panic.
        assert!(unbatch(args[..args.len() - 1].to_vec()).is_none());
        assert!(unbatch(vec![200, 0, 0, 0, 1]).is_none());
        assert!(unbatch(vec![255, 255, 255, 255]).is_none());
    }

    #[test]
    fn an_answer_carries_its_request_and_the_reply_or_the_error() {
        let header = AnswerHeader {
            from: "b".into(),
            request: 3,
            error: Some((0, "refused".into())),
        };
        let SerializedMessage::Cast { variant, args, .. } = answer(&header, b"\x01").unwrap()
        else {
            panic!("a cast")
        };
        assert_eq!(variant, ANSWER);
        assert_eq!(unanswer(&args), Some((header, b"\x01".to_vec())));
        assert!(unanswer(&[9, 0, 0, 0]).is_none());
    }
}
