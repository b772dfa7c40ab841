//! docs/semantics.md "Rollouts": a member lost mid-rollout halts it and
//! every node that took the new version is rolled back within the bound.
//! Killed (kill -9): its connection closes and the coordinator halts at
//! its next look. Frozen (SIGSTOP): the failure detector marks it
//! unreachable within its bound, the rollout halts, its rollback cannot
//! be asked (reported unreached); resumed (SIGCONT), it rejoins and rolls
//! itself back, reporting its own old version. A node whose coordinator
//! froze rolls itself back when its lease runs out. The surviving nodes
//! handled every message in order.

use std::time::{Duration, Instant};

use crate::common;

use common::cluster::{versions, ClusterNode, DETECTED_WITHIN, JOINED_WITHIN};
use common::event_feed::EventFeed;
use common::rollout::{
    assert_all_handled_in_order, await_wave, history, start_rollout, three_nodes, version, Traffic,
    ROLLOUT_WITHIN,
};

/// The rollout's request bound in the test nodes (`[rollout]
/// request_timeout_ms`), plus slack for a loaded machine.
const ROLLBACK_WITHIN: Duration = Duration::from_millis(3000 + 4000);

/// Starts a rollout from a (canary a, then b, then c, the waves watched
/// long enough to lose b during b's) and waits until b took the new
/// version: the running CLI and a's events.
fn rollout_until_b_upgraded(
    nodes: &[ClusterNode],
    dir: &std::path::Path,
) -> (common::MoltProcess, EventFeed) {
    let f = common::fixtures();
    let feed = EventFeed::open(nodes[0].admin.unwrap());
    let mut cli = start_rollout(
        &nodes[0],
        dir,
        &f.fault_v2,
        &["--gate-window-ms", "1000", "--wave-watch-ms", "15000"],
    );
    await_wave(&feed, &mut cli, &["b"]);
    (cli, feed)
}

/// The halt after losing b at `lost`: within the detector's bound, then
/// the rollback within the request bound; the CLI exits 1. Returns the
/// `rollout.rolled_back` event.
fn assert_halted_and_rolled_back(
    feed: &EventFeed,
    cli: &mut common::MoltProcess,
    lost: Instant,
) -> serde_json::Value {
    let halted = feed.await_event("rollout.halted", DETECTED_WITHIN, |_| true);
    assert!(
        halted["reason"].as_str().unwrap().contains("node b"),
        "{halted}"
    );
    let back = feed.await_event("rollout.rolled_back", ROLLBACK_WITHIN, |_| true);
    assert!(
        lost.elapsed() < DETECTED_WITHIN + ROLLBACK_WITHIN,
        "{:?}",
        lost.elapsed()
    );
    let status = cli
        .wait_exit(ROLLOUT_WITHIN)
        .unwrap_or_else(|| panic!("molt rollout still runs:\n{}", cli.output()));
    let out = cli.output();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("HALTED: node b"), "{out}");
    back
}

/// a (the canary) serves the old version again; c never loaded the new one.
fn assert_survivors_on_the_old_version(nodes: &[ClusterNode]) {
    assert_eq!(version(&nodes[0]), "1.0.0");
    let h = history(&nodes[0]);
    assert!(
        h.iter().any(|e| e["action"] == "rollback"
            && e["trigger"] == "rollout"
            && e["outcome"] == "committed"),
        "{h:#?}"
    );
    assert_eq!(version(&nodes[2]), "1.0.0");
    let h = history(&nodes[2]);
    assert!(
        !h.iter().any(|e| e["action"] == "reload"),
        "c loaded it: {h:#?}"
    );
}

#[test]
fn a_killed_node_halts_the_rollout_and_the_upgraded_nodes_roll_back() {
    let dir = common::scratch_dir();
    let mut nodes = three_nodes(dir.path(), "");
    let traffic = Traffic::start(&nodes);
    let (mut cli, feed) = rollout_until_b_upgraded(&nodes, dir.path());

    nodes[1].process().signal("KILL");
    let lost = Instant::now();
    let back = assert_halted_and_rolled_back(&feed, &mut cli, lost);
    assert_eq!(back["nodes"], serde_json::json!(["a"]), "{back}");
    assert_eq!(back["unreached"], serde_json::json!(["b"]), "{back}");
    let sent = traffic.stop();
    nodes[1].process = None;

    assert_survivors_on_the_old_version(&nodes);
    for i in [0, 2] {
        assert_eq!(sent[i].error, None, "{:?}", sent[i]);
        assert_all_handled_in_order(&nodes[i], &sent[i]);
    }
}

#[test]
fn a_frozen_node_halts_the_rollout_and_rolls_itself_back_when_it_resumes() {
    let dir = common::scratch_dir();
    let nodes = three_nodes(dir.path(), "");
    let traffic = Traffic::start(&nodes);
    let (mut cli, feed) = rollout_until_b_upgraded(&nodes, dir.path());

    nodes[1].process().signal("STOP");
    let lost = Instant::now();
    let back = assert_halted_and_rolled_back(&feed, &mut cli, lost);
    assert_eq!(back["nodes"], serde_json::json!(["a"]), "{back}");
    assert_eq!(back["unreached"], serde_json::json!(["b"]), "{back}");
    assert_survivors_on_the_old_version(&nodes);

    nodes[1].process().signal("CONT");
    // It rolls itself back (the rollback asked while it was frozen, or its
    // lease running out) ...
    let deadline = Instant::now() + JOINED_WITHIN;
    loop {
        let h = history(&nodes[1]);
        if h.iter().any(|e| {
            e["action"] == "rollback" && e["trigger"] == "rollout" && e["outcome"] == "committed"
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b did not roll back: {h:#?}\nb's output:\n{}",
            nodes[1].process().output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(version(&nodes[1]), "1.0.0");
    // ... and rejoins, reporting its own old version.
    for n in [&nodes[0], &nodes[2]] {
        n.await_view("b reachable on 1.0.0", JOINED_WITHIN, |v| {
            v.member("b")
                .is_some_and(|m| m.reachable && versions(m) == [("fault", "1.0.0")])
        });
    }
    let sent = traffic.stop();
    for (node, sent) in nodes.iter().zip(&sent) {
        // b's sender may have given up while b was frozen: a cast it gave
        // up on may or may not have been taken.
        if sent.error.is_none() {
            assert_all_handled_in_order(node, sent);
        } else {
            assert_eq!(node.name, "b", "{sent:?}");
        }
    }
}

#[test]
fn a_node_whose_coordinator_froze_rolls_itself_back_when_its_lease_runs_out() {
    let dir = common::scratch_dir();
    let f = common::fixtures();
    let nodes = three_nodes(dir.path(), "");
    let traffic = Traffic::start(&nodes);
    let b_feed = EventFeed::open(nodes[1].admin.unwrap());
    // Coordinated by a, canary b, a long gate: a freezes during it.
    let mut cli = start_rollout(
        &nodes[0],
        dir.path(),
        &f.fault_v2,
        &["--canary", "b", "--gate-window-ms", "60000"],
    );
    b_feed.await_event("rollout.canary", ROLLOUT_WITHIN, |d| d["node"] == "b");
    assert_eq!(version(&nodes[1]), "2.0.0");

    nodes[0].process().signal("STOP");
    let frozen = Instant::now();
    // b's lease (3 s) runs out, it cannot ask a (3 s bound): it rolls back.
    let back = b_feed.await_event("rollout.rolled_back", Duration::from_secs(20), |_| true);
    assert_eq!(back["nodes"], serde_json::json!(["b"]), "{back}");
    assert!(frozen.elapsed() < Duration::from_secs(20));
    assert_eq!(version(&nodes[1]), "1.0.0");
    assert!(
        !history(&nodes[2]).iter().any(|e| e["action"] == "reload"),
        "c loaded it"
    );

    // Resumed, the coordinator halts (it lost sight of its members while
    // frozen) and finds nothing left to roll back.
    nodes[0].process().signal("CONT");
    let status = cli
        .wait_exit(ROLLOUT_WITHIN)
        .unwrap_or_else(|| panic!("molt rollout still runs:\n{}", cli.output()));
    assert_eq!(status.code(), Some(1), "{}", cli.output());
    for n in &nodes {
        assert_eq!(version(n), "1.0.0", "{}", n.name);
    }
    let sent = traffic.stop();
    for (node, sent) in nodes.iter().zip(&sent) {
        // a's sender may have given up while a was frozen.
        if sent.error.is_none() {
            assert_all_handled_in_order(node, sent);
        } else {
            assert_eq!(node.name, "a", "{sent:?}");
        }
    }
}
