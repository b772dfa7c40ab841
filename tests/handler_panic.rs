//! docs/semantics.md "Message order and loss", handler failures: a handler that
//! returns an error or panics gives the caller an error reply, is counted as
//! failed, and the instance keeps its mailbox and state and serves the next
//! message. Repeated panics past `limits.restart_after_failures` restart the
//! instance in place from its newest checkpoint; the mailbox survives. (Here
//! checkpoints are off, so the newest is the start state or the last reload's;
//! see tests/restart_keeps_checkpoint.rs for periodic checkpoints and errors.)

use crate::common;

use common::kv::{dump, put, version};

use kv_proto::{Msg, Proto as KvProto, Reply};
use molt::{CallError, ErrorKind, InstanceStatus, ModuleHandle, ModuleSpec, Node, ReloadOptions};

/// Consecutive failures after which an instance restarts.
const RESTART_AFTER: u32 = 3;

async fn kv_node(name: &str, library: &std::path::Path) -> (Node, ModuleHandle<KvProto>) {
    let mut config = common::config(name, &[]);
    config.limits.restart_after_failures = RESTART_AFTER;
    config.limits.checkpoint_interval = std::time::Duration::ZERO;
    let node = Node::start(config.module(ModuleSpec::new("kv", library)))
        .await
        .expect("node starts");
    let kv = node.module::<KvProto>("kv").unwrap();
    (node, kv)
}

/// The status of kv's only instance. Read it after a *call* returned: the
/// instance counts a message after sending its reply, so a status read
/// right after a reply may not count that message yet; the next message is
/// only handled once the previous one was counted.
async fn instance(node: &Node) -> InstanceStatus {
    let status = node.status().await.expect("status");
    let m = status.module("kv").expect("kv runs");
    assert_eq!(m.instances.len(), 1);
    m.instances[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panic_and_error_reply_to_the_caller_and_the_instance_keeps_serving() {
    let f = common::fixtures();
    let (node, kv) = kv_node("handler-panic-serves", &f.kv).await;
    for i in 0..20 {
        put(&kv, &format!("k{i}"), &format!("v{i}")).await;
        kv.call(Msg::Push {
            stream: "s".into(),
            seq: i,
        })
        .await
        .unwrap();
    }
    let before = dump(&kv).await;

    // A panic: the caller gets the module's message, kind "panicked".
    let err = kv
        .call(Msg::Panic {
            reason: "boom in the handler".into(),
        })
        .await
        .expect_err("a panicking handler answers an error");
    assert!(
        err.message.is_none(),
        "a delivered message is not handed back"
    );
    match &err.error {
        CallError::Handler {
            module,
            kind,
            message,
        } => {
            assert_eq!(module, "kv");
            assert_eq!(*kind, ErrorKind::Panicked);
            assert!(message.contains("boom in the handler"), "{message}");
        }
        other => panic!("expected CallError::Handler, got {other:?}"),
    }
    // The next message is served, on the state from before the panic.
    assert_eq!(
        kv.call(Msg::Get { key: "k7".into() }).await.unwrap(),
        Reply::Value(Some("v7".into()))
    );
    assert_eq!(
        dump(&kv).await,
        before,
        "the state before the panic is intact"
    );

    // An error: kind "failed", the module's message as is.
    let err = kv
        .call(Msg::Fail {
            reason: "refused on purpose".into(),
        })
        .await
        .expect_err("a failing handler answers an error");
    assert_eq!(
        err.error,
        CallError::Handler {
            module: "kv".into(),
            kind: ErrorKind::Failed,
            message: "refused on purpose".into(),
        }
    );
    put(&kv, "after", "both").await;
    let mut expected = before.clone();
    expected.entries.insert("after".into(), "both".into());
    assert_eq!(dump(&kv).await, expected);

    // Counted as failed; never two in a row, so no restart.
    let st = instance(&node).await;
    assert_eq!(st.failed, 2, "{st:?}");
    assert_eq!(st.restarts, 0, "{st:?}");
    assert!(st.handled >= 45, "{st:?}");
    assert_eq!(version(&kv).await, ("1.0.0".to_string(), 1));
    node.shutdown().await;
}

/// Which state a restart returns to: the instance's newest checkpoint; with
/// periodic checkpoints off, the state it started with, replaced by every
/// committed reload (the state the reload carried over, checked by the
/// verify round trip).
/// Everything the instance changed after that snapshot is lost; messages
/// still in the mailbox are not (the actor and its mailbox stay).
///
/// Here: state A, then a committed reload kv 1 → kv 2 (snapshot = A), then
/// state B, then 3 panicking messages with a burst of pushes queued behind
/// them. After the restart: A and the burst, but not B; still kv 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_restart_the_instance_in_place_from_the_last_good_snapshot() {
    let f = common::fixtures();
    let (node, kv) = kv_node("handler-panic-restart", &f.kv).await;

    // State A.
    for i in 0..10 {
        put(&kv, &format!("a{i}"), &format!("A{i}")).await;
        kv.call(Msg::Push {
            stream: "journal-a".into(),
            seq: i,
        })
        .await
        .unwrap();
    }
    let state_a = dump(&kv).await;
    let report = node
        .reload("kv", ReloadOptions::library(&f.kv_v2))
        .await
        .expect("kv 1 → kv 2 commits");
    assert_eq!(report.to, "2.0.0");
    assert_eq!(dump(&kv).await, state_a);

    // State B, after the last good snapshot.
    for i in 0..10 {
        put(&kv, &format!("b{i}"), &format!("B{i}")).await;
    }
    put(&kv, "a0", "changed after the snapshot").await;
    kv.call(Msg::Delete { key: "a1".into() }).await.unwrap();
    kv.call(Msg::Push {
        stream: "journal-a".into(),
        seq: 99,
    })
    .await
    .unwrap();
    assert_ne!(dump(&kv).await, state_a);
    assert_eq!(instance(&node).await.restarts, 0);

    // Panics up to the limit, a burst queued right behind them; nothing awaited.
    kv.cast(Msg::Panic {
        reason: "first".into(),
    })
    .unwrap();
    kv.cast(Msg::Panic {
        reason: "second".into(),
    })
    .unwrap();
    kv.cast(Msg::Panic {
        reason: "third".into(),
    })
    .unwrap();
    let burst: Vec<u64> = (0..500).collect();
    for &seq in &burst {
        kv.cast(Msg::Push {
            stream: "burst".into(),
            seq,
        })
        .unwrap();
    }

    // Every message of the burst was handled, in order, after the restart.
    assert_eq!(
        kv.call(Msg::Stream {
            stream: "burst".into()
        })
        .await
        .unwrap(),
        Reply::Stream(burst.clone()),
        "the mailbox survived the restart"
    );
    let st = instance(&node).await;
    assert_eq!(st.restarts, 1, "{st:?}");
    assert_eq!(st.failed, 3, "{st:?}");

    // Exactly A (the last good snapshot) plus the burst: B is lost.
    let mut expected = state_a.clone();
    expected.streams.insert("burst".into(), burst);
    assert_eq!(
        dump(&kv).await,
        expected,
        "the restart returned to the last good snapshot"
    );
    assert_eq!(
        kv.call(Msg::Get { key: "b0".into() }).await.unwrap(),
        Reply::Value(None),
        "changes after the last good snapshot are lost"
    );
    assert_eq!(
        version(&kv).await,
        ("2.0.0".to_string(), 2),
        "still the committed library"
    );

    // And it serves on.
    put(&kv, "after", "restart").await;
    assert_eq!(
        kv.call(Msg::Get {
            key: "after".into()
        })
        .await
        .unwrap(),
        Reply::Value(Some("restart".into()))
    );
    node.shutdown().await;
}

/// Without any reload, the last good snapshot is the state the instance
/// started with (empty for kv): a restart loses everything since the start,
/// but not what is queued in the mailbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_before_any_reload_restart_from_the_start_state() {
    let f = common::fixtures();
    let (node, kv) = kv_node("handler-panic-restart-start", &f.kv).await;
    for i in 0..10 {
        put(&kv, &format!("k{i}"), "lost").await;
    }
    for i in 0..RESTART_AFTER {
        kv.cast(Msg::Panic {
            reason: format!("failure {i}"),
        })
        .unwrap();
    }
    for seq in 0..100 {
        kv.cast(Msg::Push {
            stream: "queued".into(),
            seq,
        })
        .unwrap();
    }
    let after = dump(&kv).await;
    assert!(
        after.entries.is_empty(),
        "back to the (empty) start state: {after:?}"
    );
    assert_eq!(after.streams.len(), 1);
    assert_eq!(after.streams["queued"], (0..100).collect::<Vec<u64>>());
    let st = instance(&node).await;
    assert_eq!(
        (st.restarts, st.failed),
        (1, u64::from(RESTART_AFTER)),
        "{st:?}"
    );
    node.shutdown().await;
}
