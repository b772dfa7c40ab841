//! docs/semantics.md "Sending to another node": a send the other node may
//! not get is an error the sending module sees, never a silent loss. A node
//! that is not a member is named in the error with the members; a frozen
//! node (SIGSTOP), once marked unreachable, refuses sends with the
//! unreachable error, and takes them again after SIGCONT; past
//! `cluster.max_in_flight` unacknowledged messages to a node (3,000 here;
//! 10,000 by default), sends fail; and messages in flight to a node that is killed
//! (kill -9) are reported on the sender as undelivered
//! (`cluster.messages_undelivered`, with their count, and a log line), not
//! assumed delivered.

use std::time::Duration;

use crate::common;

use common::actors_proto::{BurstOutcome, Msg, Reply};
use common::cluster::{
    all_reachable, await_seqs, two_actor_nodes_with, ClusterNode, DETECTED_WITHIN, JOINED_WITHIN,
};
use common::event_feed::EventFeed;
use molt::Address;

/// The limit of unacknowledged messages to one node the nodes are
/// configured with (`cluster.max_in_flight`).
const MAX_IN_FLIGHT: u64 = 3_000;

/// `count` numbered casts from a's actors#0 to `to`: what the module saw.
fn burst(a: &ClusterNode, to: &Address, first: u64, count: u64) -> BurstOutcome {
    let reply: Reply = a.call(
        "actors",
        &Msg::Burst {
            to: to.clone(),
            first,
            count,
            answer: false,
        },
    );
    match reply {
        Reply::Burst(out) => out,
        other => panic!("Burst answers Burst, not {other:?}"),
    }
}

#[test]
fn sends_to_a_lost_node_fail_or_are_reported() {
    let dir = common::scratch_dir();
    let (a, b) = two_actor_nodes_with(dir.path(), &format!("max_in_flight = {MAX_IN_FLIGHT}"));
    let events = EventFeed::open(a.admin.unwrap());
    let on_b = Address::instance("b", "actors", 0);
    let all = |sent| BurstOutcome {
        sent,
        failed: 0,
        first_error: None,
    };
    assert_eq!(burst(&a, &on_b, 1, 10), all(10));

    // Not a member: named, with the members.
    let out = burst(&a, &Address::instance("nowhere", "actors", 0), 1, 1);
    assert_eq!(out.failed, 1);
    let e = out.first_error.unwrap();
    assert!(
        e.contains("node \"nowhere\" is not a member of the cluster (members: a, b)"),
        "{e}"
    );

    // Frozen, then marked unreachable: every send fails, the module sees it.
    b.process().signal("STOP");
    a.await_view("b unreachable", DETECTED_WITHIN, |v| {
        v.member("b").is_some_and(|m| !m.reachable)
    });
    let out = burst(&a, &on_b, 11, 5);
    assert_eq!((out.sent, out.failed), (0, 5), "{out:?}");
    let e = out.first_error.unwrap();
    assert!(
        e.contains("actors#0@b: node \"b\" is unreachable; the message was not sent"),
        "{e}"
    );

    // Back: sends work again and arrive.
    b.process().signal("CONT");
    a.await_view("b reachable again", JOINED_WITHIN, |v| {
        all_reachable(v, &["a", "b"])
    });
    assert_eq!(burst(&a, &on_b, 11, 5), all(5));
    let at_b = await_seqs(&b, 15);
    let numbers: Vec<u64> = at_b.seen.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        numbers,
        (1..=15).collect::<Vec<_>>(),
        "none of the refused ones"
    );
    // Everything so far was acknowledged: nothing is reported.
    assert!(
        !events
            .seen()
            .iter()
            .any(|e| e.kind == "cluster.messages_undelivered"),
        "{:#?}",
        events.seen()
    );

    // Frozen again and sent to before it is marked unreachable: the
    // messages wait in flight, up to the limit; past it, sends fail (the
    // module sees it); killed, the ones in flight are reported, every one.
    b.process().signal("STOP");
    let in_flight = burst(&a, &on_b, 16, MAX_IN_FLIGHT + 20);
    assert_eq!(
        (in_flight.sent, in_flight.failed),
        (MAX_IN_FLIGHT, 20),
        "{in_flight:?}"
    );
    let e = in_flight.first_error.as_deref().unwrap();
    assert!(
        e.contains("3000 messages to node \"b\" are not acknowledged yet (the limit)"),
        "{e}"
    );
    b.process().signal("KILL");
    let report = events.await_event(
        "cluster.messages_undelivered",
        DETECTED_WITHIN + Duration::from_secs(5),
        |e| e["node"] == "b",
    );
    assert_eq!(report["count"], in_flight.sent, "{report}");
    assert_eq!(report["reason"], "unreachable", "{report}");
    assert!(
        a.process()
            .output()
            .contains("messages sent to the peer were not acknowledged"),
        "a logs the loss:\n{}",
        a.process().output()
    );
    // Reported once.
    let reports = events
        .seen()
        .into_iter()
        .filter(|e| e.kind == "cluster.messages_undelivered")
        .count();
    assert_eq!(reports, 1, "{:#?}", events.seen());
}
