//! DESIGN.md §6 "Rehearsal": a dry run of a reload loads the new library and
//! migrates and verifies a copy of each instance's state in it, and never
//! touches what serves: the serving code, its state and its version stay;
//! messages keep being handled while the copy migrates; no history entry is
//! written. The answer has the versions, each instance's result (a failure
//! named with its phase), the state sizes and the expected pause.

use crate::common;

use std::time::Duration;

use common::fault::{log, push, tag};
use common::fault_proto::{Fault, How, Msg, Point};
use common::FaultProto;
use molt::{Error, Event, ModuleHandle, ModuleSpec, Node, Phase, ReloadOptions};
use serde_json::json;

/// Bound on anything a test waits for.
const DEADLINE: Duration = Duration::from_secs(60);

/// The fault module's snapshot: its log, as msgpack with named fields.
fn state_size(log: &[i64]) -> u64 {
    #[derive(serde::Serialize)]
    struct Saved<'a> {
        log: &'a [i64],
    }
    rmp_serde::to_vec_named(&Saved { log }).unwrap().len() as u64
}

/// A node with `instances` instances of fault 1.0.0 (tag "a"), each with a
/// log of its own; the per-instance handles and logs.
async fn fault_node(
    name: &str,
    instances: usize,
    extra_dir: &std::path::Path,
) -> (Node, Vec<ModuleHandle<FaultProto>>, Vec<Vec<i64>>) {
    let f = common::fixtures();
    let spec = ModuleSpec::new("fault", &f.fault)
        .instances(instances as u32)
        .config(json!({ "tag": "a" }));
    let node = Node::start(common::config(name, &[extra_dir]).module(spec))
        .await
        .expect("node starts");
    let any = node.module::<FaultProto>("fault").unwrap();
    let handles: Vec<_> = (0..instances).map(|i| any.on_instance(i)).collect();
    let mut logs = vec![];
    for (i, h) in handles.iter().enumerate() {
        for k in 0..(3 + 4 * i as i64) {
            push(h, 1000 * i as i64 + k).await;
        }
        logs.push(log(h).await);
    }
    (node, handles, logs)
}

/// What serves: each instance's tag and log, the module's versions.
async fn assert_untouched(
    node: &Node,
    handles: &[ModuleHandle<FaultProto>],
    logs: &[Vec<i64>],
    history_len: usize,
) {
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(tag(h).await, "a", "instance {i} serves the old load");
        assert_eq!(&log(h).await, &logs[i], "instance {i} keeps its state");
    }
    let status = node.status().await.unwrap();
    let m = status.modules.iter().find(|m| m.name == "fault").unwrap();
    assert_eq!((m.code_version.as_str(), m.state_version), ("1.0.0", 1));
    assert!(!m.reloading);
    assert_eq!(
        node.admin().history().await.unwrap().len(),
        history_len,
        "a rehearsal writes no history entry"
    );
}

/// fault 1.0.0 → 2.0.0 rehearsed on two instances: the copies hang in
/// `migrate` while the instances handle messages; the answer has the
/// versions and the state sizes at the snapshot; nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearsal_answers_while_the_instances_serve_on() {
    let f = common::fixtures();
    let libs = common::scratch_dir();
    // A file of its own, so this test's log lines are its own.
    let v2 = libs.path().join("libfault_rehearsed.so");
    std::fs::copy(&f.fault_v2, &v2).unwrap();
    let (node, handles, mut logs) = fault_node("dry-run-serves", 2, libs.path()).await;
    let sizes: Vec<u64> = logs.iter().map(|l| state_size(l)).collect();
    let history = node.admin().history().await.unwrap().len();
    let mut events = node.subscribe();

    let release = common::Release::new();
    let config = json!({ "tag": "b", "fault": { "at": "Migrate", "how": release.hang() } });
    let admin = node.admin();
    let options = ReloadOptions::library(&v2).with_config(config);
    let rehearsal = tokio::spawn(async move { admin.rehearse("fault", options).await });

    // Once every snapshot is taken the copies hang in migrate: the
    // instances handle messages meanwhile (the rehearsal is no pause).
    let marker = v2.display().to_string();
    common::await_logged(1, &["snapshot(s) taken", &marker]).await;
    for (i, h) in handles.iter().enumerate() {
        push(h, -1 - i as i64).await;
        logs[i].push(-1 - i as i64);
        assert_eq!(&log(h).await, &logs[i], "instance {i} serves during it");
    }
    assert!(
        !rehearsal.is_finished(),
        "the copies were still migrating while the instances served"
    );
    release.now();
    let report = tokio::time::timeout(DEADLINE, rehearsal)
        .await
        .expect("the rehearsal ends")
        .unwrap()
        .expect("rehearsed");

    assert_eq!(report.module, "fault");
    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        ("1.0.0", "2.0.0")
    );
    assert_eq!((report.from_state_version, report.to_state_version), (1, 2));
    assert!(report.would_commit, "{report:#?}");
    assert_eq!(report.instances.len(), 2);
    for (i, r) in report.instances.iter().enumerate() {
        assert_eq!(r.instance, i);
        assert!(r.ok && r.phase.is_none() && r.error.is_none(), "{r:#?}");
        // The state at the snapshot, before the messages handled during
        // the rehearsal; 2.0.0 writes the same log.
        assert_eq!(r.state_bytes_before, sizes[i], "instance {i}");
        assert_eq!(r.state_bytes_after, Some(sizes[i]), "instance {i}");
        assert_eq!(
            r.expected_pause_us,
            r.snapshot_us + r.migrate_us + r.verify_us
        );
    }
    assert_eq!(
        report.expected_pause_us,
        report
            .instances
            .iter()
            .map(|i| i.expected_pause_us)
            .max()
            .unwrap()
    );
    // The copies' `migrate` publishes `fault.migrating`: nothing of a copy
    // reaches the bus, only the rehearsal's own event.
    let rehearsed = tokio::time::timeout(DEADLINE, async {
        loop {
            match events.next_event().await.expect("the bus is open") {
                e @ Event::ModuleRehearsed { .. } => return e,
                Event::Published { topic, .. } => {
                    panic!("a rehearsal's copy published {topic}")
                }
                _ => continue,
            }
        }
    })
    .await
    .expect("module.rehearsed");
    match rehearsed {
        Event::ModuleRehearsed {
            name,
            from,
            to,
            ok,
            error,
            ..
        } => {
            assert_eq!(
                (name.as_str(), from.as_str(), to.as_str()),
                ("fault", "1.0.0", "2.0.0")
            );
            assert!(ok && error.is_none());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_untouched(&node, &handles, &logs, history).await;
    node.shutdown().await;
}

/// A migrate that fails on one instance, and a snapshot that fails on
/// another, are reported per instance with their phase; the reload would
/// not commit; the node is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_reported_per_instance_and_touch_nothing() {
    let f = common::fixtures();
    let libs = common::scratch_dir();
    let (node, handles, logs) = fault_node("dry-run-fails", 3, libs.path()).await;
    let history = node.admin().history().await.unwrap().len();
    let mut events = node.subscribe();
    // Instance 2's serving code cannot snapshot.
    let snapshot_fault = Some(Fault {
        at: Point::Snapshot,
        how: How::Error,
    });
    handles[2]
        .call(Msg::Arm(snapshot_fault))
        .await
        .expect("armed");

    let config =
        json!({ "tag": "b", "only_instance": 1, "fault": { "at": "Migrate", "how": "Error" } });
    let report = node
        .rehearse(
            "fault",
            ReloadOptions::library(&f.fault_v2).with_config(config),
        )
        .await
        .expect("rehearsed");
    handles[2].call(Msg::Arm(None)).await.expect("disarmed");

    assert!(!report.would_commit, "{report:#?}");
    let r = &report.instances;
    assert!(r[0].ok, "{:#?}", r[0]);
    assert_eq!(r[1].phase, Some(Phase::Migrate), "{:#?}", r[1]);
    assert!(
        r[1].error
            .as_deref()
            .unwrap()
            .contains("injected error at Migrate"),
        "{:#?}",
        r[1]
    );
    assert_eq!(r[1].state_bytes_before, state_size(&logs[1]));
    assert_eq!(r[1].state_bytes_after, None);
    assert_eq!(r[2].phase, Some(Phase::Snapshot), "{:#?}", r[2]);
    assert!(
        r[2].error
            .as_deref()
            .unwrap()
            .contains("injected error at Snapshot"),
        "{:#?}",
        r[2]
    );
    assert_eq!(
        report.first_failure().map(|i| i.instance),
        Some(1),
        "the first failed instance"
    );
    match common::next_event(&mut events, "module.rehearsed").await {
        Event::ModuleRehearsed { ok, error, .. } => {
            assert!(!ok);
            let error = error.expect("names the failure");
            assert!(
                error.contains("instance 1") && error.contains("migrate"),
                "{error}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_untouched(&node, &handles, &logs, history).await;
    // The rehearsal changed nothing a real reload depends on: it commits.
    node.reload("fault", ReloadOptions::library(&f.fault_v2))
        .await
        .expect("the real reload commits");
    node.shutdown().await;
}

/// A library that would fail in prepare: the rehearsal answers the load
/// error naming the file; a library with an older state version is
/// rehearsed as the downgrade a reload to it would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_failures_and_downgrades_are_rehearsed_too() {
    let f = common::fixtures();
    let libs = common::scratch_dir();
    let (node, handles, logs) = fault_node("dry-run-prepare", 1, libs.path()).await;
    let history = node.admin().history().await.unwrap().len();
    match node
        .rehearse("fault", ReloadOptions::library(&f.not_a_module))
        .await
    {
        Err(e @ Error::Load { .. }) => {
            assert!(e.to_string().contains("not_a_module"), "{e}")
        }
        other => panic!("expected a load error, got {other:?}"),
    }
    assert_untouched(&node, &handles, &logs, history).await;

    // Serving 2.0.0 (state 2), rehearsing 1.0.0 (state 1): 2.0.0
    // down-migrates in the snapshot.
    node.reload("fault", ReloadOptions::library(&f.fault_v2))
        .await
        .expect("reloaded to 2.0.0");
    let report = node
        .rehearse("fault", ReloadOptions::library(&f.fault))
        .await
        .expect("rehearsed");
    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        ("2.0.0", "1.0.0")
    );
    assert_eq!((report.from_state_version, report.to_state_version), (2, 1));
    assert!(report.would_commit, "{report:#?}");
    assert_eq!(report.instances[0].state_bytes_before, state_size(&logs[0]));
    let status = node.status().await.unwrap();
    assert_eq!(status.modules[0].code_version, "2.0.0");
    node.shutdown().await;
}
