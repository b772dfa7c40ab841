//! docs/semantics.md "Cluster membership": each change of a node's view of
//! the cluster is one bus event, seen over `GET /events` as a user would:
//! `cluster.member_joined` for each peer, `cluster.member_unreachable` for a
//! frozen one (SIGSTOP), `cluster.member_reachable` when it resumes
//! (SIGCONT), `cluster.member_restarted` with the new and the previous
//! incarnation for one killed (SIGKILL) and started again; each with the
//! peer's name, address and incarnation, once per change.

use crate::common;

use common::cluster::{all_reachable, ClusterNode, DETECTED_WITHIN, JOINED_WITHIN};
use common::event_feed::EventFeed;
use serde_json::Value;

/// The `cluster.*` event kinds about `node` the feed saw, in order.
fn changes_of(feed: &EventFeed, node: &str) -> Vec<String> {
    feed.seen()
        .into_iter()
        .filter(|e| e.kind.starts_with("cluster.") && e.data["node"] == node)
        .map(|e| e.kind)
        .collect()
}

/// Whether an event is about `node`.
fn about(node: &str) -> impl Fn(&Value) -> bool + '_ {
    move |d| d["node"] == node
}

#[test]
fn each_change_of_the_view_is_one_event() {
    let dir = common::scratch_dir();
    let lib = &common::fixtures().counter;
    let mut a = ClusterNode::new(dir.path(), "a", lib, &[], "");
    let mut b = ClusterNode::new(dir.path(), "b", lib, &[a.listen], "");
    let mut c = ClusterNode::new(dir.path(), "c", lib, &[a.listen], "");
    a.start();
    // a's events from before its peers start: it sees each of them join.
    let feed = EventFeed::open(a.admin.unwrap());
    b.start();
    c.start();
    let view = a.await_view("a, b and c reachable", JOINED_WITHIN, |v| {
        all_reachable(v, &["a", "b", "c"])
    });
    for peer in [&b, &c] {
        let joined = feed.await_event("cluster.member_joined", JOINED_WITHIN, about(&peer.name));
        let member = view.member(&peer.name).unwrap();
        assert_eq!(joined["address"], peer.listen.to_string(), "{joined}");
        assert_eq!(joined["incarnation"], member.incarnation, "{joined}");
    }
    let first = view.member("c").unwrap().incarnation.clone();

    c.process().signal("STOP");
    let lost = feed.await_event("cluster.member_unreachable", DETECTED_WITHIN, about("c"));
    assert_eq!(lost["address"], c.listen.to_string(), "{lost}");
    assert_eq!(lost["incarnation"], first, "{lost}");

    c.process().signal("CONT");
    let back = feed.await_event("cluster.member_reachable", JOINED_WITHIN, about("c"));
    assert_eq!(back["incarnation"], first, "the same c: {back}");

    // SIGKILL, then a new start at the same address.
    c.process = None;
    c.start();
    let restarted = feed.await_event("cluster.member_restarted", JOINED_WITHIN, about("c"));
    assert_eq!(restarted["previous_incarnation"], first, "{restarted}");
    assert_eq!(restarted["address"], c.listen.to_string(), "{restarted}");
    let now = a.await_view("c's new incarnation", JOINED_WITHIN, |v| {
        v.member("c").is_some_and(|m| m.incarnation != first)
    });
    assert_eq!(
        restarted["incarnation"],
        now.member("c").unwrap().incarnation,
        "{restarted}"
    );

    // Once per change: c's changes in order (marked unreachable again while
    // it restarted, if that took longer than the timeout); b never changed.
    let seen = changes_of(&feed, "c");
    let unreachable_while_down = seen.len() == 5;
    let mut expected = vec![
        "cluster.member_joined",
        "cluster.member_unreachable",
        "cluster.member_reachable",
    ];
    if unreachable_while_down {
        expected.push("cluster.member_unreachable");
    }
    expected.push("cluster.member_restarted");
    assert_eq!(seen, expected, "{:#?}", feed.seen());
    assert_eq!(changes_of(&feed, "b"), ["cluster.member_joined"]);
    assert!(changes_of(&feed, "a").is_empty(), "no event about itself");
}
