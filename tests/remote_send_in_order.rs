//! docs/semantics.md "Sending to another node": a module sends to an actor
//! on another node the same way as to a local one (`ctx.cast_addr` with an
//! address naming node b), and what one actor sends to another arrives all
//! and in order; the receiver's `ctx.sender()` names the sending actor on
//! its own node, so answering it (`ctx.cast_sender`) goes back across, in
//! order too.

use crate::common;

use common::actors_proto::{BurstOutcome, Msg, Reply};
use common::cluster::{await_seqs, two_actor_nodes};
use molt::Address;

/// How many numbered messages a sends to b.
const N: u64 = 3000;
#[test]
fn casts_to_another_node_arrive_in_order_and_the_sender_is_answered() {
    let dir = common::scratch_dir();
    let (a, b) = two_actor_nodes(dir.path());

    let on_b = Address::instance("b", "actors", 0);
    // Two bursts: numbering goes on across handler calls.
    for first in [1, N / 2 + 1] {
        let reply: Reply = a.call(
            "actors",
            &Msg::Burst {
                to: on_b.clone(),
                first,
                count: N / 2,
                answer: true,
            },
        );
        assert_eq!(
            reply,
            Reply::Burst(BurstOutcome {
                sent: N / 2,
                failed: 0,
                first_error: None
            })
        );
    }

    let on_a = Address::instance("a", "actors", 0);
    let at_b = await_seqs(&b, N as usize);
    let numbers: Vec<u64> = at_b.seen.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, (1..=N).collect::<Vec<_>>(), "all, in order, once");
    assert!(
        at_b.seen.iter().all(|(s, _)| s.as_ref() == Some(&on_a)),
        "ctx.sender() names a's actor: {:?}",
        at_b.seen.first()
    );
    assert_eq!(at_b.answers_failed, 0, "{:?}", at_b.answer_error);

    let at_a = await_seqs(&a, N as usize);
    let answers: Vec<u64> = at_a.seen.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        answers,
        (1..=N).collect::<Vec<_>>(),
        "the answers, in order"
    );
    assert!(
        at_a.seen.iter().all(|(s, _)| s.as_ref() == Some(&on_b)),
        "the answers come from b's actor: {:?}",
        at_a.seen.first()
    );
}
