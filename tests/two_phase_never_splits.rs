//! docs/semantics.md "Two-phase decision" (issue #8 item 10): the two-phase
//! commit never splits. An instance that has voted prepared never decides
//! alone: it waits for the coordinator's decision however late it comes, so
//! coordinator and instances always end in the same outcome.
//!
//! The coordinator is starved with a test hook
//! (`molt::reload::test_hooks::delay_decision`): a delay between its decision
//! and sending it. Real means (a busy runtime) cannot hold it back reliably
//! for seconds.

use crate::common;

use std::time::Duration;

use common::fault::{log, push, tag};
use common::FaultProto;
use molt::{ModuleSpec, Node, Outcome, ReloadOptions};
use serde_json::json;

const INSTANCES: usize = 4;

/// Instances 0–2 prepare at once; instance 3 hangs this long in `verify`
/// first, so the instances' waits for the decision start far apart.
const VERIFY_HANG_MS: u64 = 3000;
/// What used to be an instance's own limit: `prepare_timeout` +
/// `decision_timeout` after it voted, it rolled back alone.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(6);
const DECISION_TIMEOUT: Duration = Duration::from_millis(100);
/// The coordinator sends its decision this long after the last vote (about
/// 7 s after the first ones): after instances 0–2 used to give up (6.1 s
/// after their vote), before instance 3 did (9.1 s).
const STARVED_BY: Duration = Duration::from_millis(4000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_coordinator_commits_on_every_instance() {
    let f = common::fixtures();
    let mut config = common::config("never-splits", &[]);
    config.limits.prepare_timeout = PREPARE_TIMEOUT;
    config.limits.decision_timeout = DECISION_TIMEOUT;
    config.limits.verify_timeout = Duration::from_secs(20);
    let node = Node::start(
        config.module(
            ModuleSpec::new("fault", &f.fault)
                .instances(INSTANCES as u32)
                .config(json!({ "tag": "a" })),
        ),
    )
    .await
    .expect("node starts");
    let any = node.module::<FaultProto>("fault").unwrap();
    let handles: Vec<_> = (0..INSTANCES).map(|i| any.on_instance(i)).collect();
    for (i, h) in handles.iter().enumerate() {
        push(h, i as i64).await;
    }

    molt::reload::test_hooks::delay_decision(STARVED_BY);
    let mut events = node.subscribe();
    let reload = {
        let admin = node.admin();
        let library = f.fault.clone();
        tokio::spawn(async move {
            admin
                .reload(
                    "fault",
                    ReloadOptions::library(library).with_config(json!({
                        "tag": "b",
                        "fault": { "at": "Verify", "how": { "Hang": { "ms": VERIFY_HANG_MS } } },
                        "only_instance": 3,
                    })),
                )
                .await
        })
    };
    // Sent while instance 0 waits for the decision: it stays buffered and is
    // answered by whichever code the decision leaves (the new one).
    common::next_event(&mut events, "module.published").await;
    let during = tag(&handles[0]).await;

    let result = reload.await.expect("the reload task");
    molt::reload::test_hooks::delay_decision(Duration::ZERO);
    let report = result.expect("every instance prepared: the late decision is commit");
    assert_eq!(report.pauses_us.len(), INSTANCES, "every instance reported");
    assert_eq!(
        during, "b",
        "instance 0 waited for the decision instead of rolling back alone"
    );
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(
            tag(h).await,
            "b",
            "instance {i} applied the decision: commit"
        );
        assert_eq!(log(h).await, vec![i as i64], "instance {i} kept its state");
    }
    let last = node.history().await.unwrap().pop().unwrap();
    assert_eq!(
        last.outcome,
        Outcome::Committed,
        "the record is the decision"
    );
    node.shutdown().await;
}
