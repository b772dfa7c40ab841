//! The previous library is kept: an explicit rollback returns to it by
//! down-migrating the state, and is refused with a clear error when the
//! module cannot downgrade (unless the caller asks to reset the state).

use crate::common;

use counter_proto::{Msg, Proto, Reply};
use molt::{Error, ModuleSpec, Outcome, ReloadOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_without_previous_library_is_refused() {
    let f = common::fixtures();
    let node = common::start(
        "rollback-no-previous",
        ModuleSpec::new("counter", &f.counter),
    )
    .await;
    match node.rollback("counter", false).await {
        Err(Error::RollbackRefused { module, reason }) => {
            assert_eq!(module, "counter");
            assert!(reason.contains("no previous library"), "{reason}");
        }
        other => panic!("expected RollbackRefused, got {other:?}"),
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_after_committed_upgrade_down_migrates() {
    // kv v2 implements downgrade: covered in full in upgrade_downgrade.rs;
    // here the rollback after two upgrades returns to the one before the last.
    let f = common::fixtures();
    let node = common::start("rollback-after-upgrade", ModuleSpec::new("kv", &f.kv)).await;
    let kv = node.module::<kv_proto::Proto>("kv").unwrap();
    kv.call(kv_proto::Msg::Put {
        key: "k".into(),
        value: "v".into(),
    })
    .await
    .unwrap();
    node.reload("kv", ReloadOptions::library(&f.kv_v2))
        .await
        .unwrap();
    let r = node.rollback("kv", false).await.unwrap();
    assert_eq!(
        (r.from.as_str(), r.to.as_str(), r.state_version),
        ("2.0.0", "1.0.0", 1)
    );
    assert_eq!(
        kv.call(kv_proto::Msg::Get { key: "k".into() })
            .await
            .unwrap(),
        kv_proto::Reply::Value(Some("v".into()))
    );
    // A rollback leaves the version it came from: there is nothing older
    // than 1.0.0 to go back to (tests/version_stack.rs walks a longer stack).
    assert!(matches!(
        node.rollback("kv", false).await,
        Err(molt::Error::RollbackRefused { .. })
    ));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_refused_for_module_without_downgrade_unless_state_reset() {
    let f = common::fixtures();
    let node = common::start(
        "rollback-refused",
        ModuleSpec::new("counter", &f.counter).config(json!({ "start": 100 })),
    )
    .await;
    let counter = node.module::<Proto>("counter").unwrap();
    counter.call(Msg::Add(5)).await.unwrap();
    node.reload("counter", ReloadOptions::library(&f.counter_v2))
        .await
        .expect("upgrade to counter v2 commits");
    assert_eq!(counter.call(Msg::Add(1)).await.unwrap(), Reply::Total(106));

    // counter v2 has no downgrade: the rollback is refused, nothing changes.
    match node.rollback("counter", false).await {
        Err(Error::RollbackRefused { module, reason }) => {
            assert_eq!(module, "counter");
            assert!(reason.contains("cannot downgrade"), "{reason}");
            assert!(
                reason.contains("reset_state"),
                "the error says how to proceed: {reason}"
            );
        }
        other => panic!("expected RollbackRefused, got {other:?}"),
    }
    assert_eq!(
        counter.call(Msg::Get).await.unwrap(),
        Reply::Total(106),
        "v2 state untouched"
    );
    let status = node.status().await.unwrap();
    assert_eq!(status.module("counter").unwrap().code_version, "2.0.0");

    // With reset_state the previous library starts from its config.
    let r = node
        .rollback("counter", true)
        .await
        .expect("rollback with reset commits");
    assert_eq!((r.from.as_str(), r.to.as_str()), ("2.0.0", "1.0.0"));
    assert_eq!(
        counter.call(Msg::Get).await.unwrap(),
        Reply::Total(100),
        "fresh state from config"
    );

    let outcomes: Vec<Outcome> = node
        .history()
        .await
        .unwrap()
        .iter()
        .map(|h| h.outcome)
        .collect();
    assert_eq!(
        outcomes,
        vec![Outcome::Committed, Outcome::Refused, Outcome::Committed]
    );
    node.shutdown().await;
}
