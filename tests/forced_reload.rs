//! Forced reload (issue #8 item 16, docs/semantics.md "Rollback and forced
//! reloads"): when the old code cannot hand over its state, a reload with
//! `force` starts the new code from the newest checkpoint; an instance hung in
//! old code is replaced by a new actor and the messages stuck behind the hang
//! are counted and reported, never silently lost. Without `force`, such a
//! reload rolls back and the old code keeps serving. The report, the history
//! entry and a `module.restarted` event say it was forced and how old the state
//! was.

use crate::common;

use std::time::{Duration, Instant};

use common::fault::{log, push};
use common::fault_proto::{Fault, How, Msg, Point};
use common::FaultProto;
use molt::{Action, Error, Event, InstanceStatus, ModuleSpec, Node, Outcome, Phase};

const TOKEN: &str = "forced-reload-token-0123456789abcdef";

/// A node running `fault` with checkpoints every 100 ms. `prepare` bounds
/// how long a reload waits for an instance, and (with the decision timeout,
/// set to 2 s when `prepare` is short) how long a failed reload waits for a
/// hung instance's report.
async fn fault_node(name: &str, instances: u32, prepare: Duration) -> Node {
    let f = common::fixtures();
    let mut config = common::config(name, &[]);
    config.limits.checkpoint_interval = Duration::from_millis(100);
    config.limits.prepare_timeout = prepare;
    config.limits.decision_timeout = config.limits.decision_timeout.min(Duration::from_secs(2));
    Node::start(config.module(ModuleSpec::new("fault", &f.fault).instances(instances)))
        .await
        .expect("node starts")
}

async fn instance(node: &Node, index: usize) -> InstanceStatus {
    let status = node.status().await.expect("status");
    status.module("fault").expect("fault runs").instances[index].clone()
}

/// Waits (bounded) until instance `index`'s newest checkpoint holds every
/// message it handled so far.
async fn checkpointed(node: &Node, index: usize) {
    let handled = instance(node, index).await.handled;
    let deadline = Instant::now() + Duration::from_secs(20);
    while instance(node, index).await.checkpoint_covers < handled {
        assert!(Instant::now() < deadline, "no checkpoint within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The old code's `snapshot` panics: a normal reload rolls back in the
/// snapshot phase; a forced one (over HTTP) commits, starting the new code
/// from the newest checkpoint. What was handled after that checkpoint is
/// gone, and everything says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_snapshot_panics_a_forced_reload_starts_from_the_checkpoint() {
    let f = common::fixtures();
    let node = fault_node("forced-snapshot-panics", 1, Duration::from_secs(20)).await;
    let h = node.module::<FaultProto>("fault").unwrap();
    let mut events = node.subscribe();
    for v in 0..20 {
        push(&h, v).await;
    }
    checkpointed(&node, 0).await;
    // The checkpoint is older than this.
    let armed = Instant::now();
    h.call(Msg::Arm(Some(Fault {
        at: Point::Snapshot,
        how: How::Panic,
    })))
    .await
    .unwrap();
    // After the last checkpoint that can succeed.
    for v in 20..25 {
        push(&h, v).await;
    }

    // Without force: refused in the snapshot phase, the old code serves on.
    let err = node
        .reload("fault", molt::ReloadOptions::library(&f.fault_v2))
        .await
        .expect_err("the old snapshot panics");
    match &err {
        Error::ReloadFailed { phase, .. } => assert_eq!(*phase, Phase::Snapshot, "{err}"),
        other => panic!("expected a snapshot failure, got {other}"),
    }
    assert_eq!(log(&h).await, (0..25).collect::<Vec<_>>());

    // With force, over HTTP: committed from the checkpoint.
    let (server, client) = common::serve_admin(&node, TOKEN).await;
    let asked = Instant::now();
    let report = client
        .reload_with("fault", Some(f.fault_v2.clone()), true)
        .await
        .expect("the forced reload commits");
    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        ("1.0.0", "2.0.0")
    );
    let restored = report.restored.expect("the report says what was restored");
    assert!(restored.forced);
    assert_eq!(restored.from, "checkpoint");
    assert_eq!(restored.instances, vec![0]);
    assert_eq!(restored.stuck_messages, 0);
    assert_eq!(
        log(&h).await,
        (0..20).collect::<Vec<_>>(),
        "the new code serves the checkpointed state; what came after it is lost"
    );
    let st = node.status().await.unwrap();
    assert_eq!(st.module("fault").unwrap().code_version, "2.0.0");

    let event = common::next_event(&mut events, "module.restarted").await;
    match event {
        Event::ModuleRestarted {
            instance,
            restored: from,
            state_age_ms,
            forced,
            stuck_messages,
            reason,
            ..
        } => {
            assert_eq!(instance, 0);
            assert_eq!(from, "checkpoint");
            assert!(forced);
            assert_eq!(stuck_messages, 0);
            assert!(reason.contains("snapshot"), "{reason}");
            assert_eq!(state_age_ms, restored.state_age_ms);
            assert!(
                u128::from(state_age_ms) >= (asked - armed).as_millis(),
                "the age is the checkpoint's (taken before the fault was armed): {state_age_ms} ms"
            );
        }
        e => panic!("{e:?}"),
    }
    let history = node.history().await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.action, last.outcome, last.trigger),
        (Action::Reload, Outcome::Committed, molt::Trigger::Http)
    );
    assert_eq!(last.restored.as_ref(), Some(&restored));
    let failed = &history[history.len() - 2];
    assert_eq!(
        (failed.action, failed.outcome, failed.phase),
        (Action::Reload, Outcome::RolledBack, Some(Phase::Snapshot))
    );

    // It serves on with the new code.
    push(&h, 99).await;
    assert_eq!(log(&h).await.last(), Some(&99));
    server.shutdown().await;
    node.shutdown().await;
}

/// Instance 1 hangs in a handler with messages queued behind it; instance 0
/// is healthy. A normal reload times out in drain; a forced one commits:
/// instance 0 hands over its state as usual, instance 1 is replaced by a new
/// actor (new code, its newest checkpoint) that serves from its slot, and the
/// messages stuck behind the hang are reported with the right count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_hung_in_a_handler_is_replaced_and_its_stuck_messages_reported() {
    let f = common::fixtures();
    // The hang outlasts the failed reload (which waits up to prepare +
    // decision timeout for the hung instance's report) and the forced one
    // by far; the test waits for it only at the end, when the runtime
    // shuts down. The prepare timeout also bounds the library's load: 400 ms
    // timed that load out once on a loaded 2-core machine.
    let prepare = Duration::from_millis(1_200);
    let hang_ms = 10_000;
    let node = fault_node("forced-hung-handler", 2, prepare).await;
    let h0 = node.module::<FaultProto>("fault").unwrap().on_instance(0);
    let h1 = h0.on_instance(1);
    let mut events = node.subscribe();
    for v in 0..10 {
        push(&h0, v).await;
        push(&h1, 100 + v).await;
    }
    checkpointed(&node, 1).await;

    // Instance 1 hangs, with 5 pushes queued behind the hang.
    h1.cast(Msg::Sleep(hang_ms)).unwrap();
    const QUEUED: u64 = 5;
    for v in 0..QUEUED as i64 {
        h1.cast(Msg::Push(200 + v)).unwrap();
    }
    // Instance 0 goes on after the checkpoint: handed over, not lost.
    for v in 10..15 {
        push(&h0, v).await;
    }

    let err = node
        .reload("fault", molt::ReloadOptions::library(&f.fault_v2))
        .await
        .expect_err("instance 1 does not reach the reload");
    match &err {
        Error::ReloadFailed { phase, .. } => assert_eq!(*phase, Phase::Drain, "{err}"),
        other => panic!("expected a drain timeout, got {other}"),
    }
    assert_eq!(log(&h0).await, (0..15).collect::<Vec<_>>(), "rolled back");

    let report = node
        .reload("fault", molt::ReloadOptions::library(&f.fault_v2).forced())
        .await
        .expect("the forced reload commits");
    assert_eq!(report.to, "2.0.0");
    let restored = report.restored.expect("instance 1 was restored");
    assert_eq!(restored.instances, vec![1]);
    assert!(restored.forced);
    assert_eq!(restored.from, "checkpoint");
    assert_eq!(
        restored.stuck_messages,
        1 + QUEUED,
        "the message it hung in and the ones queued behind it"
    );

    // The new actor serves instance 1 from its checkpoint (the old one,
    // still asleep, would answer with the queued pushes too); instance 0
    // kept everything.
    assert_eq!(log(&h1).await, (100..110).collect::<Vec<_>>());
    assert_eq!(log(&h0).await, (0..15).collect::<Vec<_>>());
    let st = instance(&node, 1).await;
    assert_eq!(st.restarts, 1, "{st:?}");
    assert_eq!(st.mailbox_depth, 0, "{st:?}");

    match common::next_event(&mut events, "module.restarted").await {
        Event::ModuleRestarted {
            instance,
            forced,
            stuck_messages,
            restored: from,
            ..
        } => {
            assert_eq!((instance, forced, from.as_str()), (1, true, "checkpoint"));
            assert_eq!(stuck_messages, 1 + QUEUED);
        }
        e => panic!("{e:?}"),
    }
    let last = node.history().await.unwrap().pop().unwrap();
    assert_eq!(
        (last.action, last.outcome),
        (Action::Reload, Outcome::Committed)
    );
    assert_eq!(last.restored.as_ref(), Some(&restored));

    push(&h1, 300).await;
    assert_eq!(log(&h1).await.last(), Some(&300));
    node.shutdown().await;
}

/// `molt reload NAME --force` against a running node: a reload the old
/// snapshot blocks commits and the CLI says what it restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn molt_reload_force_from_the_command_line() {
    let f = common::fixtures();
    let node = fault_node("forced-cli", 1, Duration::from_secs(20)).await;
    let h = node.module::<FaultProto>("fault").unwrap();
    for v in 0..5 {
        push(&h, v).await;
    }
    checkpointed(&node, 0).await;
    h.call(Msg::Arm(Some(Fault {
        at: Point::Snapshot,
        how: How::Error,
    })))
    .await
    .unwrap();
    let server = molt::http::serve(&node, "127.0.0.1:0".parse().unwrap(), Some(TOKEN.into()))
        .await
        .expect("the admin server starts");
    let addr = server.local_addr().to_string();
    let lib = f.fault_v2.to_str().unwrap().to_string();
    let run = |force: bool| {
        let (addr, lib) = (addr.clone(), lib.clone());
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_molt"));
            cmd.args(["reload", "fault", "--library", &lib]);
            if force {
                cmd.arg("--force");
            }
            cmd.args(["--addr", &addr, "--token", TOKEN])
                .env("NO_COLOR", "1")
                .output()
                .expect("molt runs")
        })
    };
    let plain = run(false).await.unwrap();
    let out = String::from_utf8_lossy(&plain.stdout).to_string();
    assert_eq!(plain.status.code(), Some(1), "{out}");
    assert!(out.contains("snapshot"), "{out}");

    let forced = run(true).await.unwrap();
    let out = String::from_utf8_lossy(&forced.stdout).to_string();
    assert_eq!(forced.status.code(), Some(0), "{out}");
    assert!(out.contains("1.0.0 -> 2.0.0"), "{out}");
    assert!(
        out.contains("forced") && out.contains("checkpoint") && out.contains("[0]"),
        "{out}"
    );
    assert_eq!(log(&h).await, (0..5).collect::<Vec<_>>());
    server.shutdown().await;
    node.shutdown().await;
}
