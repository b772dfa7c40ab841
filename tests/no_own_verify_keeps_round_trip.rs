//! A module that declares it has no `verify` of its own
//! (`Module::HAS_VERIFY = false`) is not handed to the blocking pool for a
//! `verify` during a swap: the host does not call its `verify` at all. Its
//! snapshot round trip is still checked, on the instance (docs/semantics.md
//! "Reload phases", verify).
//!
//! The `fault-no-verify` fixture is the fault module's source declaring
//! `HAS_VERIFY = false`; its config injects a fault at one entry point.

use crate::common::{self, fault};
use molt::{Error, Phase, ReloadOptions};
use serde_json::{json, Value};

fn fault_at(point: &str, tag: &str) -> Value {
    json!({ "fault": { "at": point, "how": "Error" }, "tag": tag })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn its_round_trip_is_still_checked() {
    let (node, h) = fault::node_with_a_log("no-own-verify-round-trip").await;
    let f = common::fixtures();
    // The new code's snapshot fails: only the round trip takes one.
    let result = node
        .reload(
            "fault",
            ReloadOptions::library(&f.fault_no_verify).with_config(fault_at("Snapshot", "b")),
        )
        .await;
    match result {
        Err(Error::ReloadFailed { phase, error, .. }) => {
            assert_eq!(phase, Phase::Verify, "{error}");
            assert!(error.contains("snapshot round trip"), "{error}");
            assert!(error.contains("injected error at Snapshot"), "{error}");
        }
        other => panic!("expected a rollback in verify, got {other:?}"),
    }
    assert_eq!(fault::tag(&h).await, "a", "the old code serves again");
    assert_eq!(fault::log(&h).await, vec![1, 2, 3]);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn its_verify_is_never_called() {
    let (node, h) = fault::node_with_a_log("no-own-verify-not-called").await;
    let f = common::fixtures();
    // Its `verify` would fail: declared absent, it is not called, neither
    // by a rehearsal (which would say so) nor by the reload.
    let rehearsed = node
        .rehearse(
            "fault",
            ReloadOptions::library(&f.fault_no_verify).with_config(fault_at("Verify", "b")),
        )
        .await
        .expect("rehearsed");
    assert!(rehearsed.would_commit, "{rehearsed:#?}");
    let report = node
        .reload(
            "fault",
            ReloadOptions::library(&f.fault_no_verify).with_config(fault_at("Verify", "b")),
        )
        .await
        .expect("the reload commits");
    assert_eq!(report.to, "1.1.0");
    assert_eq!(fault::tag(&h).await, "b");
    assert_eq!(fault::log(&h).await, vec![1, 2, 3]);
    // The same fault in a module that has a `verify` rolls back (the
    // fixture's own check that the fault fires).
    let result = node
        .reload(
            "fault",
            ReloadOptions::library(&f.fault).with_config(fault_at("Verify", "c")),
        )
        .await;
    assert!(
        matches!(
            result,
            Err(Error::ReloadFailed {
                phase: Phase::Verify,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(fault::tag(&h).await, "b");
    node.shutdown().await;
}
