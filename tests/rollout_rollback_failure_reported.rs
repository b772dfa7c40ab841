//! docs/semantics.md "Rollouts": a rollback the rollout asks for and that
//! fails is reported as failed, with the node's reason, never as "rolled
//! back" nor as "not reached". Two nodes run `counter` 1.0.0; a rollout to
//! 2.0.0 (whose code cannot down-migrate its state to 1.0.0's) takes the
//! canary a, then b; b is killed during its wave's watch, the rollout halts
//! and asks a to roll back, which fails: the CLI, the `rollout.rolled_back`
//! event and `GET /rollout` name a and the cause, and a keeps serving 2.0.0.

use std::time::Duration;

use crate::common;

use common::cluster::{all_reachable, ClusterNode, DETECTED_WITHIN, JOINED_WITHIN};
use common::event_feed::EventFeed;
use common::rollout::{await_wave, start_rollout_of, ROLLOUT, ROLLOUT_WITHIN};

/// `counter`'s code version on `node` (`GET /modules/counter`).
fn counter_version(node: &ClusterNode) -> String {
    let (code, body) = common::http_get(
        node.admin.unwrap(),
        "/modules/counter",
        Duration::from_secs(10),
    )
    .unwrap_or_else(|| panic!("{}: GET /modules/counter not answered", node.name));
    assert_eq!(code, 200, "{body}");
    let m: serde_json::Value = serde_json::from_str(&body).unwrap();
    m["code_version"].as_str().unwrap().to_string()
}

#[test]
fn a_rollback_that_fails_is_reported_as_failed_with_its_cause() {
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let mut a = ClusterNode::running(
        dir.path(),
        "a",
        ("counter", &f.counter, ""),
        &[],
        "",
        ROLLOUT,
    );
    a.start();
    let seed = [a.listen];
    let mut b = ClusterNode::running(
        dir.path(),
        "b",
        ("counter", &f.counter, ""),
        &seed,
        "",
        ROLLOUT,
    );
    b.start();
    for n in [&a, &b] {
        n.await_view("a and b reachable", JOINED_WITHIN, |v| {
            all_reachable(v, &["a", "b"])
        });
    }

    let feed = EventFeed::open(a.admin.unwrap());
    let mut cli = start_rollout_of(
        "counter",
        &a,
        dir.path(),
        &f.counter_v2,
        &[
            "--gate-window-ms",
            "300",
            // No traffic here: the gate is not what this test is about.
            "--min-handled",
            "0",
            "--wave-watch-ms",
            "15000",
        ],
    );
    await_wave(&feed, &mut cli, &["b"]);
    assert_eq!(counter_version(&a), "2.0.0");

    b.process().signal("KILL");
    let back = feed.await_event(
        "rollout.rolled_back",
        DETECTED_WITHIN + ROLLOUT_WITHIN,
        |_| true,
    );
    assert_eq!(back["nodes"], serde_json::json!([]), "{back}");
    let failed = back["failed"]
        .as_array()
        .unwrap_or_else(|| panic!("{back}"));
    assert_eq!(failed.len(), 1, "{back}");
    let failed = failed[0].as_str().unwrap();
    assert!(
        failed.starts_with("a: ") && failed.contains("cannot downgrade"),
        "{back}"
    );
    assert!(
        !back["unreached"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "a"),
        "a answered, it is not unreached: {back}"
    );

    let status = cli
        .wait_exit(ROLLOUT_WITHIN)
        .unwrap_or_else(|| panic!("molt rollout still runs:\n{}", cli.output()));
    let out = cli.output();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("ROLLBACK FAILED on a: "), "{out}");

    let (code, body) = common::http_get(a.admin.unwrap(), "/rollout", Duration::from_secs(10))
        .expect("GET /rollout answered");
    assert_eq!(code, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        report["rollback_failed"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert_eq!(
        counter_version(&a),
        "2.0.0",
        "the failed rollback left 2.0.0 serving"
    );
    b.process = None;
}
