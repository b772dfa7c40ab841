//! docs/semantics.md "Rollouts": a canary whose new version errors under
//! traffic, or handles it much slower (p99), fails its gate; the rollout
//! halts, the canary rolls back to the old version, and the other nodes
//! never load the new one (their history has no reload). Nothing is lost
//! or reordered on any node, the canary included (its new version records
//! each message before failing it).

use std::time::Duration;

use crate::common;

use common::event_feed::EventFeed;
use common::rollout::{
    assert_all_handled_in_order, await_handled_more, history, run_rollout, three_nodes, version,
    Traffic,
};

#[test]
fn a_canary_that_fails_its_gate_is_rolled_back_and_no_other_node_loads_it() {
    let dir = common::scratch_dir();
    let f = common::fixtures();
    // 2.0.0 fails every Seq message it handles; 1.0.0 none.
    let nodes = three_nodes(dir.path(), "fail_seq_in = \"2.0.0\"");
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
        &["--gate-window-ms", "5000"],
    );
    // Traffic goes on after the rollout ended, and is handled.
    await_handled_more(&nodes, 20);
    let sent = traffic.stop();
    assert_eq!(status.code(), Some(1), "{out}");
    for step in [
        "canary a: 1.0.0 -> 2.0.0",
        "gate FAILED on a: error rate",
        "HALTED: the canary a failed its gate",
        "rolled back: [a]",
    ] {
        assert!(out.contains(step), "no {step:?} in:\n{out}");
    }
    assert!(!out.contains("wave 1"), "{out}");

    for (node, sent) in nodes.iter().zip(&sent) {
        assert_eq!(sent.error, None, "{}: {sent:?}", node.name);
        assert_eq!(version(node), "1.0.0", "{}", node.name);
        assert_all_handled_in_order(node, sent);
        let h = history(node);
        let reloads: Vec<_> = h.iter().filter(|e| e["action"] == "reload").collect();
        if node.name == "a" {
            assert_eq!(reloads.len(), 1, "{h:#?}");
            assert!(
                h.iter().any(|e| e["action"] == "rollback"
                    && e["trigger"] == "rollout"
                    && e["outcome"] == "committed"
                    && e["to"] == "1.0.0"),
                "{h:#?}"
            );
        } else {
            assert!(reloads.is_empty(), "{} loaded it: {h:#?}", node.name);
        }
        assert!(
            h.iter()
                .any(|e| e["action"] == "rollout" && e["outcome"] == "rolled_back"),
            "{}: {h:#?}",
            node.name
        );
    }
    for (node, feed) in nodes.iter().zip(&feeds) {
        let failed = feed.await_event("rollout.gate_failed", Duration::from_secs(10), |_| true);
        assert_eq!(failed["node"], "a", "{}", node.name);
        feed.await_event("rollout.halted", Duration::from_secs(10), |_| true);
        let back = feed.await_event("rollout.rolled_back", Duration::from_secs(10), |_| true);
        assert_eq!(back["nodes"], serde_json::json!(["a"]), "{}", node.name);
        assert!(
            !feed.seen().iter().any(|e| e.kind == "rollout.wave"),
            "{}",
            node.name
        );
    }
}

#[test]
fn a_canary_much_slower_than_the_old_version_fails_its_gate() {
    let dir = common::scratch_dir();
    // 2.0.0 sleeps 8 ms in each Seq handler; 1.0.0 takes microseconds.
    let nodes = three_nodes(dir.path(), "slow_seq_in = \"2.0.0\"\nslow_seq_ms = 8");
    // A cast every 20 ms or more: slower, 2.0.0 still keeps up, so no
    // backlog builds that the canary's rollback would have to wait behind
    // (with one, the rollback outlasted the 3 s request bound on a loaded
    // CI machine and the canary was reported not reached).
    let traffic = Traffic::paced(&nodes, Duration::from_millis(20));
    let (status, out) = roll_out_the_slow_version(&nodes, dir.path());
    let sent = traffic.stop();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("gate FAILED on a: p99 handling time"), "{out}");
    assert!(!out.contains("wave 1"), "{out}");
    for (node, sent) in nodes.iter().zip(&sent) {
        assert_eq!(version(node), "1.0.0", "{}:\n{out}", node.name);
        assert_all_handled_in_order(node, sent);
        if node.name != "a" {
            assert!(
                !history(node).iter().any(|e| e["action"] == "reload"),
                "{} loaded it",
                node.name
            );
        }
    }
}

/// A gate that saw no traffic has nothing to judge: with no message sent
/// to the canary, the gate fails at the window's end (`min_handled`, 20)
/// and the canary rolls back; `--min-handled 0` says the module has no
/// traffic and lets the same rollout commit (here with `--wave-size 2`:
/// b and c take it in one wave).
#[test]
fn a_canary_without_traffic_fails_its_gate_unless_min_handled_is_0() {
    let dir = common::scratch_dir();
    let f = common::fixtures();
    let nodes = three_nodes(dir.path(), "");

    let (status, out) = run_rollout(
        &nodes[0],
        dir.path(),
        &f.fault_v2,
        &["--gate-window-ms", "500"],
    );
    assert_eq!(status.code(), Some(1), "{out}");
    for step in [
        "gate FAILED on a: the canary handled 0 message(s) in the 500 ms window, fewer than the 20",
        "--min-handled 0",
        "rolled back: [a]",
    ] {
        assert!(out.contains(step), "no {step:?} in:\n{out}");
    }
    for node in &nodes {
        assert_eq!(version(node), "1.0.0", "{}:\n{out}", node.name);
    }

    let (status, out) = run_rollout(
        &nodes[0],
        dir.path(),
        &f.fault_v2,
        &[
            "--gate-window-ms",
            "500",
            "--min-handled",
            "0",
            "--wave-size",
            "2",
            "--wave-watch-ms",
            "300",
        ],
    );
    assert!(status.success(), "{out}");
    assert!(out.contains("gate passed on a"), "{out}");
    assert!(out.contains("wave 1 [b, c] reloaded"), "{out}");
    assert!(!out.contains("wave 2"), "{out}");
    for node in &nodes {
        assert_eq!(version(node), "2.0.0", "{}:\n{out}", node.name);
    }
}

/// A rollback comes after the messages queued before it: a canary 20 ms
/// per message under ~5× the traffic it keeps up with builds a backlog its
/// rollback waits behind, past the 3 s request bound. The node is then
/// reported not reached, with why: it is reachable and its rollback is
/// still waiting behind its queue (docs/semantics.md "Rollouts").
#[test]
fn a_rollback_behind_a_backlog_is_reported_as_waiting_not_lost() {
    let dir = common::scratch_dir();
    let nodes = three_nodes(dir.path(), "slow_seq_in = \"2.0.0\"\nslow_seq_ms = 20");
    let traffic = Traffic::start(&nodes);
    let (status, out) = roll_out_the_slow_version(&nodes, dir.path());
    traffic.stop();
    assert_eq!(status.code(), Some(1), "{out}");
    for step in [
        "gate FAILED on a: p99 handling time",
        "not reached: [a]",
        "rollback: node a: no answer within 3000 ms (the node is reachable: its rollback waits \
         behind the messages queued before it",
    ] {
        assert!(out.contains(step), "no {step:?} in:\n{out}");
    }
}

/// Rolls out 2.0.0 (the slow version) from the first node once the canary
/// has handled enough traffic for the old version's p99 (20 timed
/// messages: the first, then one in 16), with a gate window long enough
/// for the slow version's p99 to be judged: the CLI's exit status and
/// output.
fn roll_out_the_slow_version(
    nodes: &[common::cluster::ClusterNode],
    dir: &std::path::Path,
) -> (std::process::ExitStatus, String) {
    await_handled_more(&nodes[..1], 330);
    run_rollout(
        &nodes[0],
        dir,
        &common::fixtures().fault_v2,
        &["--gate-window-ms", "60000"],
    )
}
