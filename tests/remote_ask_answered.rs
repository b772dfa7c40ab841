//! docs/semantics.md "Sending to another node": a request (`ctx.ask`) to an
//! actor on another node is answered back to the asking actor, with the
//! reply or the handler's error, as a local one is; a request whose node is
//! lost before it answers fails with an error naming the node (never left
//! waiting for the call timeout).

use std::time::{Duration, Instant};

use crate::common;

use common::actors_proto::{Msg, Reply, Seen};
use common::cluster::{two_actor_nodes, ClusterNode, ARRIVED_WITHIN, DETECTED_WITHIN};
use molt::Address;

/// `ctx.ask` from a's actors#0 to `to` with `msg`, correlation `c`.
fn ask(a: &ClusterNode, to: &Address, msg: Msg, c: u64) {
    let reply: Reply = a.call(
        "actors",
        &Msg::Ask {
            to: to.clone(),
            msg: Box::new(msg),
            correlation: c,
        },
    );
    assert_eq!(reply, Reply::Sent(Ok(())), "the ask is sent");
}

/// The answer with correlation `c` a's actors#0 received, awaited for at
/// most `within`.
fn answer(a: &ClusterNode, c: u64, within: Duration) -> Seen {
    let deadline = Instant::now() + within;
    loop {
        let Reply::Answers(answers) = a.call("actors", &Msg::Answers) else {
            panic!("Answers answers Answers")
        };
        if let Some(seen) = answers.into_iter().find(|s| s.correlation == c) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "no answer {c} within {within:?}\noutput:\n{}",
            a.process().output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_request_to_another_node_is_answered_or_fails_naming_the_lost_node() {
    let dir = common::scratch_dir();
    let (a, b) = two_actor_nodes(dir.path());
    let on_b = Address::instance("b", "actors", 0);

    // Answered: the reply comes back from b's actor.
    ask(&a, &on_b, Msg::Me, 7);
    assert_eq!(
        answer(&a, 7, ARRIVED_WITHIN),
        Seen {
            correlation: 7,
            from: Some(on_b.clone()),
            reply: Ok(Reply::Me(on_b.clone())),
        }
    );

    // The handler's error comes back as the answer.
    ask(&a, &on_b, Msg::Release { value: 1 }, 8);
    let seen = answer(&a, 8, ARRIVED_WITHIN);
    let e = seen.reply.expect_err("b's handler fails");
    assert!(e.contains("no call is held"), "{e}");

    // Kept open by b (reply later), then b is killed: the request fails
    // once b is marked unreachable, well before the call timeout (30 s).
    ask(&a, &on_b, Msg::Hold, 9);
    let held = Instant::now() + ARRIVED_WITHIN;
    loop {
        let Reply::Count(Ok(n)) = b.call("actors", &Msg::HeldCount) else {
            panic!("HeldCount answers Count")
        };
        if n == 1 {
            break;
        }
        assert!(Instant::now() < held, "b never held the request");
        std::thread::sleep(Duration::from_millis(50));
    }
    b.process().signal("KILL");
    let seen = answer(&a, 9, DETECTED_WITHIN);
    let e = seen.reply.expect_err("b is lost");
    assert!(
        e.contains("node \"b\" was marked unreachable before it answered"),
        "{e}"
    );
}
