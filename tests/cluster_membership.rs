//! docs/semantics.md "Cluster membership": three `molt` processes on
//! 127.0.0.1 form a full mesh (the third knows only the second, yet the
//! first sees it) and agree on the view; a node killed with SIGKILL is
//! marked unreachable by the others within the failure detector's bound;
//! restarted at the same address it is reachable again with a new
//! incarnation. `molt status --cluster` shows the same view. A node with
//! no `[cluster]` answers that it is in none.

use crate::common;

use std::collections::BTreeMap;

use common::cluster::{
    all_reachable, versions, ClusterNode, DETECTED_WITHIN, JOINED_WITHIN, UNREACHABLE_MS,
};
use molt::ClusterStatus;

/// Each member's (address, incarnation) in a view.
fn members(view: &ClusterStatus) -> BTreeMap<String, (String, String)> {
    view.members
        .iter()
        .map(|m| (m.node.clone(), (m.address.clone(), m.incarnation.clone())))
        .collect()
}

#[test]
fn nodes_mesh_agree_and_see_a_killed_node_leave_and_come_back_new() {
    let dir = common::scratch_dir();
    let lib = &common::fixtures().counter;
    let mut a = ClusterNode::new(dir.path(), "a", lib, &[], "");
    let mut b = ClusterNode::new(dir.path(), "b", lib, &[a.listen], "");
    // c knows only b: the mesh is full when a sees c all the same.
    let mut c = ClusterNode::new(dir.path(), "c", lib, &[b.listen], "");
    a.start();
    b.start();
    c.start();
    let nodes = [&a, &b, &c];
    let views: Vec<ClusterStatus> = nodes
        .iter()
        .map(|n| {
            n.await_view("a, b and c reachable", JOINED_WITHIN, |v| {
                all_reachable(v, &["a", "b", "c"])
            })
        })
        .collect();
    // They agree: the same members, addresses and incarnations everywhere,
    // each node's own module version seen by all.
    let agreed = members(&views[0]);
    for (n, v) in nodes.iter().zip(&views) {
        assert_eq!(members(v), agreed, "{}'s view", n.name);
        assert!(v.member(&n.name).unwrap().this_node);
        for m in &v.members {
            assert_eq!(
                versions(m),
                [("counter", "1.0.0")],
                "{} seen from {}",
                m.node,
                n.name
            );
        }
    }
    assert_eq!(agreed["c"].0, c.listen.to_string());

    // The CLI shows it.
    let text = a.status_cli();
    assert!(text.contains("3 member(s), 3 reachable"), "{text}");
    for (name, (address, incarnation)) in &agreed {
        assert!(
            text.lines().any(|l| l.contains(name.as_str())
                && l.contains(address.as_str())
                && l.contains(incarnation.as_str())),
            "{name} {address} {incarnation} in:\n{text}"
        );
    }

    // SIGKILL: no goodbye; the others notice within the bound.
    let old_c = agreed["c"].1.clone();
    c.process = None; // killed on drop
    for n in [&a, &b] {
        let v = n.await_view("c unreachable", DETECTED_WITHIN, |v| {
            v.member("c").is_some_and(|m| !m.reachable)
        });
        let m = v.member("c").unwrap();
        assert!(m.last_heard_ms.unwrap() >= UNREACHABLE_MS, "{m:?}");
        assert!(
            v.member(if n.name == "a" { "b" } else { "a" })
                .unwrap()
                .reachable
        );
    }

    // Restarted at the same address: a new incarnation, reachable again.
    c.start();
    for n in [&a, &b, &c] {
        let v = n.await_view("c back with a new incarnation", JOINED_WITHIN, |v| {
            all_reachable(v, &["a", "b", "c"])
                && v.member("c").is_some_and(|m| m.incarnation != old_c)
        });
        assert_eq!(v.member("c").unwrap().address, c.listen.to_string());
        assert_eq!(
            v.member("a").unwrap().incarnation,
            agreed["a"].1,
            "a did not restart"
        );
    }
}

#[tokio::test]
async fn a_node_without_a_cluster_says_so() {
    let node = common::start(
        "alone",
        molt::ModuleSpec::new("counter", &common::fixtures().counter),
    )
    .await;
    assert!(matches!(
        node.cluster().await,
        Err(molt::Error::NotInCluster)
    ));
    let (_server, client) = common::serve_admin(&node, "0123456789abcdef0123456789abcdef").await;
    let (status, body) = common::api_error(client.cluster().await);
    assert_eq!(
        (status, body.kind.as_str()),
        (404, "not_in_cluster"),
        "{body:?}"
    );
    node.shutdown().await;
}
