//! docs/semantics.md "Rollouts": `molt rollout` takes a new version to
//! every member of a three-node cluster under load (canary, gate, waves),
//! each step published on every node's bus and the end recorded in every
//! node's history; nothing is lost, duplicated or reordered on any node.

use std::time::Duration;

use crate::common;

use common::cluster::{versions, JOINED_WITHIN};
use common::event_feed::EventFeed;
use common::rollout::{
    assert_all_handled_in_order, await_handled_more, history, run_rollout, three_nodes, Traffic,
};

#[test]
fn a_rollout_under_load_commits_on_every_node() {
    let dir = common::scratch_dir();
    let f = common::fixtures();
    let nodes = three_nodes(dir.path(), "");
    let feeds: Vec<EventFeed> = nodes
        .iter()
        .map(|n| EventFeed::open(n.admin.unwrap()))
        .collect();
    let traffic = Traffic::start(&nodes);
    await_handled_more(&nodes, 20);

    let (status, out) = run_rollout(
        &nodes[0],
        dir.path(),
        &f.fault_v2,
        &["--gate-window-ms", "1500", "--wave-watch-ms", "500"],
    );
    // Traffic goes on after the rollout ended, and is handled.
    await_handled_more(&nodes, 20);
    let sent = traffic.stop();
    assert!(status.success(), "{out}");
    for step in [
        "canary a: 1.0.0 -> 2.0.0",
        "gate passed on a",
        "wave 1 [b] reloaded",
        "wave 2 [c] reloaded",
        "committed: fault 1.0.0 -> 2.0.0 on every member",
    ] {
        assert!(out.contains(step), "no {step:?} in:\n{out}");
    }

    // Where it is: the coordinator keeps the last rollout with its steps.
    let admin = nodes[0].admin.unwrap().to_string();
    let mut status =
        common::MoltProcess::start(&["rollout", "--status", "--addr", &admin], dir.path());
    assert_eq!(
        status
            .wait_exit(Duration::from_secs(30))
            .and_then(|s| s.code()),
        Some(0),
        "{}",
        status.output()
    );
    let shown = status.output();
    for step in [
        "(Committed)",
        "canary",
        "gate",
        "wave 1",
        "wave 2",
        "commit",
    ] {
        assert!(shown.contains(step), "no {step:?} in:\n{shown}");
    }

    for (node, sent) in nodes.iter().zip(&sent) {
        assert_eq!(sent.error, None, "{}: {sent:?}", node.name);
        assert_all_handled_in_order(node, sent);
        // Every member sees every member on the new version.
        node.await_view("every member on 2.0.0", JOINED_WITHIN, |v| {
            v.members
                .iter()
                .all(|m| versions(m) == [("fault", "2.0.0")])
        });
        let h = history(node);
        assert!(
            h.iter().any(|e| e["action"] == "reload"
                && e["trigger"] == "rollout"
                && e["outcome"] == "committed"
                && e["to"] == "2.0.0"),
            "{}: {h:#?}",
            node.name
        );
        assert!(
            h.iter()
                .any(|e| e["action"] == "rollout" && e["outcome"] == "committed"),
            "{}: {h:#?}",
            node.name
        );
    }
    for (node, feed) in nodes.iter().zip(&feeds) {
        // `molt run` prints the rollout's steps on every node.
        let printed = node.process().output();
        assert!(
            printed.contains("committed: fault 2.0.0 on [a, b, c]"),
            "{}:\n{printed}",
            node.name
        );
        for kind in [
            "rollout.started",
            "rollout.canary",
            "rollout.gate_passed",
            "rollout.wave",
            "rollout.committed",
        ] {
            feed.await_event(kind, Duration::from_secs(10), |d| d["module"] == "fault");
        }
        assert!(
            !feed.seen().iter().any(|e| e.kind == "rollout.halted"),
            "{}",
            node.name
        );
    }
}
