//! The design's floor for a cast (issue #11 §1): what every molt message
//! does that a plain ractor message does not, and that no host work can
//! take away in this design, on plain ractor's own chassis. The sender
//! encodes the message as named-field msgpack (the wire format: "add a
//! field with `#[serde(default)]`") into a reused buffer and copies the
//! bytes into the message inline, as molt does for short messages; the
//! actor hands the bytes through an indirect call (a library boundary: the
//! module's `handle` is reached through a vtable) guarded by
//! `catch_unwind` (modules catch their own panics), which decodes and does
//! the `counter` module's `Add`. No routing, no status counters, no sender,
//! no metrics of molt's own: those are the host's share, which
//! `molt − floor` shows.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;

use counter_proto::Msg;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::{PlainState, CASTS};

/// Bytes of up to this length travel inside the message (molt: 46).
const INLINE: usize = 46;

/// A message's bytes, inline.
pub(super) struct Bytes {
    len: u8,
    buf: [u8; INLINE],
}

/// The floor actor's messages.
pub(super) enum FloorMsg {
    /// A cast: the encoded `Msg`.
    Cast(Bytes),
    /// A cast without a codec: the `Msg` value itself crosses the
    /// boundary (what a typed fast path, issue #11 §1, could do at most).
    Typed(Msg),
    /// Answers the total.
    Get(RpcReplyPort<i64>),
}

#[cfg(feature = "cluster")]
impl ractor::Message for FloorMsg {}

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
}

/// The sender's side: encode into the thread's buffer, copy inline.
fn encode(msg: &Msg) -> Bytes {
    BUFFER.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        rmp_serde::encode::write_named(&mut *b, msg).expect("encode");
        let mut out = Bytes {
            len: b.len() as u8,
            buf: [0; INLINE],
        };
        out.buf[..b.len()].copy_from_slice(&b);
        out
    })
}

/// The module's side of the boundary: decode, then the `counter` module's
/// `Add`, a panic caught.
fn handle_bytes(state: &mut PlainState, bytes: &[u8]) -> Result<(), String> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        let msg: Msg = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
        match msg {
            Msg::Add(n) => state.add(n).map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    })) {
        Ok(r) => r,
        Err(_) => Err("panicked".into()),
    }
}

/// The module's side of a typed boundary: no decode, the same `Add`, a
/// panic caught.
fn handle_typed(state: &mut PlainState, msg: Msg) -> Result<(), String> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| match msg {
        Msg::Add(n) => state.add(n).map_err(|e| e.to_string()),
        _ => Ok(()),
    })) {
        Ok(r) => r,
        Err(_) => Err("panicked".into()),
    }
}

/// The two ways into the module: bytes, typed.
type Entry = (
    fn(&mut PlainState, &[u8]) -> Result<(), String>,
    fn(&mut PlainState, Msg) -> Result<(), String>,
);

/// The floor actor.
pub(super) struct Floor;

impl Actor for Floor {
    type Msg = FloorMsg;
    type State = (PlainState, Entry);
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<FloorMsg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        // An opaque function pointer: the call stays indirect, as a call
        // through the library's vtable is.
        let entry: Entry = (handle_bytes, handle_typed);
        Ok((
            PlainState {
                total: 0,
                adds: 0,
                adds_metric: metrics::counter!("floor_adds", "actor" => "floor"),
            },
            std::hint::black_box(entry),
        ))
    }

    async fn handle(
        &self,
        _: ActorRef<FloorMsg>,
        msg: FloorMsg,
        (state, (bytes, typed)): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FloorMsg::Cast(b) => bytes(state, &b.buf[..b.len as usize])?,
            FloorMsg::Typed(m) => typed(state, m)?,
            FloorMsg::Get(reply) => {
                let _ = reply.send(state.total);
            }
        }
        Ok(())
    }
}

/// `CASTS` casts of `Add(1)` through the floor, then a call that waits for
/// them all (the `throughput` cast row's shape).
pub(super) async fn casts(a: &ActorRef<FloorMsg>) -> std::time::Duration {
    let t = std::time::Instant::now();
    for _ in 0..CASTS {
        a.cast(FloorMsg::Cast(encode(&Msg::Add(1)))).unwrap();
    }
    ractor::call!(a, FloorMsg::Get).unwrap();
    t.elapsed()
}

/// The same casts, typed: no codec on either side.
pub(super) async fn typed_casts(a: &ActorRef<FloorMsg>) -> std::time::Duration {
    let t = std::time::Instant::now();
    for _ in 0..CASTS {
        a.cast(FloorMsg::Typed(Msg::Add(1))).unwrap();
    }
    ractor::call!(a, FloorMsg::Get).unwrap();
    t.elapsed()
}
