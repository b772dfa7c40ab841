//! docs/semantics.md "Cluster membership": a peer unreachable for
//! `cluster.forget_after_ms` is forgotten (dropped from every other
//! node's view, `cluster.member_forgotten`), so a node that is gone for
//! good stops being a member without a restart of the others; started
//! again, it joins anew.

use std::time::Duration;

use crate::common;

use common::cluster::{all_reachable, ClusterNode, DETECTED_WITHIN, JOINED_WITHIN};
use common::event_feed::EventFeed;

/// Forgotten one second after being marked unreachable.
const FORGET: &str = "forget_after_ms = 1000";

#[test]
fn a_peer_lost_for_forget_after_is_forgotten_and_rejoins_when_started_again() {
    let dir = common::scratch_dir();
    let lib = &common::fixtures().counter;
    let mut a = ClusterNode::new(dir.path(), "a", lib, &[], FORGET);
    let mut b = ClusterNode::new(dir.path(), "b", lib, &[a.listen], FORGET);
    let mut c = ClusterNode::new(dir.path(), "c", lib, &[a.listen], FORGET);
    a.start();
    b.start();
    c.start();
    for n in [&a, &b, &c] {
        n.await_view("a, b and c reachable", JOINED_WITHIN, |v| {
            all_reachable(v, &["a", "b", "c"])
        });
    }
    let feed = EventFeed::open(a.admin.unwrap());

    c.process = None; // kill -9 on drop
    let bound = DETECTED_WITHIN + Duration::from_secs(10);
    for n in [&a, &b] {
        let v = n.await_view("c forgotten", bound, |v| v.member("c").is_none());
        assert!(all_reachable(&v, &["a", "b"]), "{v:?}");
        assert_eq!(v.members.len(), 2, "{v:?}");
    }
    let kinds: Vec<String> = feed
        .seen()
        .into_iter()
        .filter(|e| e.data["node"] == "c")
        .map(|e| e.kind)
        .collect();
    let unreachable = kinds.iter().position(|k| k == "cluster.member_unreachable");
    let forgotten = kinds.iter().position(|k| k == "cluster.member_forgotten");
    assert!(
        unreachable.is_some() && forgotten.is_some() && unreachable < forgotten,
        "{kinds:?}"
    );
    let text = a.status_cli();
    assert!(text.contains("2 member(s), 2 reachable"), "{text}");

    // Started again (it knows a as its seed): a member again everywhere.
    c.start();
    for n in [&a, &b, &c] {
        n.await_view("c back", JOINED_WITHIN, |v| {
            all_reachable(v, &["a", "b", "c"])
        });
    }
    feed.await_event("cluster.member_joined", JOINED_WITHIN, |e| e["node"] == "c");
}
