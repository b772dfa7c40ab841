//! docs/semantics.md "Cluster membership": a frozen node (SIGSTOP: its
//! connections stay open, so ractor_cluster alone never notices) is marked
//! unreachable by the others within the failure detector's bound; after
//! SIGCONT it is reachable again, with the same incarnation (it did not
//! restart), reporting its own module version (2.0.0 where the others run
//! 1.0.0).

use crate::common;

use common::cluster::{
    all_reachable, versions, ClusterNode, DETECTED_WITHIN, JOINED_WITHIN, UNREACHABLE_MS,
};

#[test]
fn a_frozen_node_is_marked_unreachable_then_rejoins_with_its_own_version() {
    let dir = common::scratch_dir();
    let f = common::fixtures();
    let mut a = ClusterNode::new(dir.path(), "a", &f.counter, &[], "");
    let mut b = ClusterNode::new(dir.path(), "b", &f.counter, &[a.listen], "");
    let mut c = ClusterNode::new(dir.path(), "c", &f.counter_v2, &[a.listen], "");
    a.start();
    b.start();
    c.start();
    let before = a.await_view("a, b and c reachable", JOINED_WITHIN, |v| {
        all_reachable(v, &["a", "b", "c"])
    });
    let incarnation = before.member("c").unwrap().incarnation.clone();

    c.process().signal("STOP");
    for n in [&a, &b] {
        let v = n.await_view("c unreachable", DETECTED_WITHIN, |v| {
            v.member("c").is_some_and(|m| !m.reachable)
        });
        assert!(v.member("c").unwrap().last_heard_ms.unwrap() >= UNREACHABLE_MS);
        // Only c: the others still hear each other.
        assert!(
            v.members
                .iter()
                .filter(|m| m.node != "c")
                .all(|m| m.reachable),
            "{v:#?}"
        );
    }

    c.process().signal("CONT");
    for n in [&a, &b, &c] {
        let v = n.await_view("c reachable again", JOINED_WITHIN, |v| {
            all_reachable(v, &["a", "b", "c"])
        });
        let m = v.member("c").unwrap();
        assert_eq!(m.incarnation, incarnation, "c did not restart");
        assert_eq!(
            versions(m),
            [("counter", "2.0.0")],
            "c's own version, seen from {}",
            n.name
        );
    }
}
