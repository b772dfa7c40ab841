//! docs/semantics.md "Two-phase decision": the decision is two-phase across all
//! instances of a module. One instance failing rolls back all of them (each
//! keeps its old code and its exact old state); a reload with no fault commits
//! on all.

use crate::common;

use common::fault::{log, tag};

use common::fault_proto::Msg;
use common::FaultProto;
use molt::{Error, Event, ModuleHandle, ModuleSpec, Node, Outcome, Phase, ReloadOptions};
use serde_json::{json, Value};

const INSTANCES: usize = 4;

/// A node running the fault module on 4 instances (tag "a"), each with its
/// own log; returns the per-instance handles and logs.
async fn four_instances(name: &str) -> (Node, Vec<ModuleHandle<FaultProto>>, Vec<Vec<i64>>) {
    let f = common::fixtures();
    let spec = ModuleSpec::new("fault", &f.fault)
        .instances(INSTANCES as u32)
        .config(json!({ "tag": "a" }));
    let node = common::start(name, spec).await;
    let any = node.module::<FaultProto>("fault").unwrap();
    assert_eq!(any.instances(), INSTANCES);
    let handles: Vec<_> = (0..INSTANCES).map(|i| any.on_instance(i)).collect();
    let mut logs = vec![];
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(h.instance(), i);
        // Different lengths and values per instance.
        for k in 0..(5 + 3 * i as i64) {
            h.call(Msg::Push(100 * i as i64 + k)).await.expect("push");
        }
        logs.push(log(h).await);
    }
    for (i, l) in logs.iter().enumerate() {
        assert_eq!(l.len(), 5 + 3 * i, "instance {i} has its own log");
    }
    (node, handles, logs)
}

async fn assert_all(handles: &[ModuleHandle<FaultProto>], expected_tag: &str, logs: &[Vec<i64>]) {
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(
            tag(h).await,
            expected_tag,
            "instance {i} serves the load tagged {expected_tag}"
        );
        assert_eq!(
            &log(h).await,
            &logs[i],
            "instance {i} keeps exactly its log"
        );
    }
}

/// A fault on instance 2 only fails the reload for all four; the following
/// clean reload commits on all four.
async fn one_instance_fails_all_roll_back(
    name: &str,
    bad_config: Value,
    phase: Phase,
    error_has: &str,
) {
    let f = common::fixtures();
    let (node, handles, mut logs) = four_instances(name).await;
    let mut events = node.subscribe();

    let result = node
        .reload(
            "fault",
            ReloadOptions::library(&f.fault).with_config(bad_config),
        )
        .await;
    let error = match result {
        Err(Error::ReloadFailed {
            module,
            phase: failed,
            error,
            from,
        }) => {
            assert_eq!(
                (module.as_str(), failed, from.as_str()),
                ("fault", phase, "1.0.0"),
                "{error}"
            );
            error
        }
        other => panic!("expected ReloadFailed in {phase}, got {other:?}"),
    };
    println!("{error}");
    assert!(
        error.contains("instance 2"),
        "the error names the failing instance: {error}"
    );
    assert!(error.contains(error_has), "{error}");
    match common::next_event(&mut events, "module.reload_failed").await {
        Event::ModuleReloadFailed {
            name,
            phase: event_phase,
            error: event_error,
        } => {
            assert_eq!(name, "fault");
            assert_eq!(event_phase, phase);
            assert_eq!(event_error, error);
        }
        other => panic!("unexpected event {other:?}"),
    }

    // All four: the old load, exactly the old logs, and still serving.
    assert_all(&handles, "a", &logs).await;
    let status = node.status().await.unwrap();
    let m = status.module("fault").unwrap();
    assert!(!m.reloading);
    assert_eq!(m.previous, None, "nothing committed");
    assert_eq!(m.instances.len(), INSTANCES);
    assert!(
        m.instances.iter().all(|i| i.failed == 0 && i.restarts == 0),
        "{m:?}"
    );
    let history = node.history().await.unwrap();
    let last = history.last().expect("the attempt is recorded");
    assert_eq!(last.outcome, Outcome::RolledBack);
    assert_eq!(last.phase, Some(phase));
    for (i, h) in handles.iter().enumerate() {
        h.call(Msg::Push(-(i as i64)))
            .await
            .expect("push after the rollback");
        logs[i].push(-(i as i64));
    }
    assert_all(&handles, "a", &logs).await;

    // No fault: commits on all four, each carrying its own log.
    let report = node
        .reload(
            "fault",
            ReloadOptions::library(&f.fault).with_config(json!({ "tag": "b" })),
        )
        .await
        .expect("the clean reload commits");
    assert_eq!(report.pauses_us.len(), INSTANCES, "every instance swapped");
    match common::next_event(&mut events, "module.reloaded").await {
        Event::ModuleReloaded { name, .. } => assert_eq!(name, "fault"),
        other => panic!("unexpected event {other:?}"),
    }
    assert_all(&handles, "b", &logs).await;
    let last = node.history().await.unwrap().pop().unwrap();
    assert_eq!(last.outcome, Outcome::Committed);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_failure_on_one_instance_rolls_back_all_instances() {
    one_instance_fails_all_roll_back(
        "two-phase-migrate",
        json!({ "fault": { "at": "Migrate", "how": "Error" }, "only_instance": 2, "tag": "b" }),
        Phase::Migrate,
        "injected error at Migrate",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_failure_on_one_instance_rolls_back_all_instances() {
    one_instance_fails_all_roll_back(
        "two-phase-verify",
        json!({ "fault": { "at": "Verify", "how": "Error" }, "only_instance": 2, "tag": "b" }),
        Phase::Verify,
        "injected error at Verify",
    )
    .await;
}

/// Instance 3 is the last one the coordinator waits for: the others have
/// all prepared (new code started and verified) when it fails, so all three
/// must undo a prepared swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_on_the_last_instance_rolls_back_the_prepared_ones() {
    let f = common::fixtures();
    let (node, handles, logs) = four_instances("two-phase-last").await;
    let err = node
        .reload(
            "fault",
            ReloadOptions::library(&f.fault)
                .with_config(json!({ "fault": { "at": "Start", "how": "Panic" }, "only_instance": 3, "tag": "b" })),
        )
        .await
        .expect_err("a start panic on instance 3 fails the reload");
    assert_eq!(err.phase(), Some(Phase::Swap), "{err}");
    assert!(err.to_string().contains("instance 3"), "{err}");
    assert_all(&handles, "a", &logs).await;
    node.reload(
        "fault",
        ReloadOptions::library(&f.fault).with_config(json!({ "tag": "b" })),
    )
    .await
    .expect("the clean reload commits");
    assert_all(&handles, "b", &logs).await;
    node.shutdown().await;
}
