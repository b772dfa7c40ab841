//! A handler may keep a call open and answer it from a later message; the
//! host holds the open call, so it survives a reload and a rollback of the
//! module; answering twice or after the caller gave up is an error the
//! module sees (issue #9 §2; `docs/semantics.md` "Replies later").

use std::time::Duration;

use crate::common;
use common::actors::{self, on, sent, until_held};
use common::actors_proto::{Msg, Reply};
use molt::CallError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_kept_open_is_answered_after_a_reload_of_the_module() {
    let node = actors::node("reply-reload", 1).await;
    let a = on(&node, "actors", 0);
    let caller = tokio::spawn({
        let a = a.clone();
        async move { a.call(Msg::Hold).await }
    });
    until_held(&a, 1).await;
    actors::reload(&node, "actors", None)
        .await
        .expect("reload commits");
    assert_eq!(sent(&a, Msg::Release { value: 7 }).await, Ok(()));
    assert_eq!(caller.await.unwrap(), Ok(Reply::Value(7)));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_keeps_every_open_call_open() {
    let node = actors::node("reply-rollback", 1).await;
    let a = on(&node, "actors", 0);
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move { a.call(Msg::Hold).await })
        })
        .collect();
    until_held(&a, 3).await;
    let failed = actors::reload(
        &node,
        "actors",
        Some(serde_json::json!({ "fail_verify": true })),
    )
    .await
    .expect_err("verify fails: the reload rolls back");
    assert!(failed.to_string().contains("verify"), "{failed}");
    assert_eq!(
        actors::held(&a).await,
        3,
        "the rolled-back state still holds them"
    );
    for value in 0..3 {
        assert_eq!(sent(&a, Msg::Release { value }).await, Ok(()));
    }
    let mut got = Vec::new();
    for c in callers {
        match c.await.unwrap() {
            Ok(Reply::Value(v)) => got.push(v),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    got.sort();
    assert_eq!(got, vec![0, 1, 2], "each open call answered once");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_twice_is_an_error_the_module_sees() {
    let node = actors::node("reply-twice", 1).await;
    let a = on(&node, "actors", 0);
    let caller = tokio::spawn({
        let a = a.clone();
        async move { a.call(Msg::Hold).await }
    });
    until_held(&a, 1).await;
    assert_eq!(sent(&a, Msg::Release { value: 1 }).await, Ok(()));
    let err = sent(&a, Msg::ReleaseAgain)
        .await
        .expect_err("second answer");
    assert!(err.contains("answered already"), "{err}");
    assert_eq!(
        caller.await.unwrap(),
        Ok(Reply::Value(1)),
        "the first answer only"
    );
    // The module keeps serving.
    assert_eq!(actors::held(&a).await, 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_after_the_caller_timed_out_is_an_error_the_module_sees() {
    let node = actors::node("reply-timeout", 1).await;
    let a = on(&node, "actors", 0);
    match a
        .call_timeout(Msg::Hold, Duration::from_millis(200))
        .await
        .map_err(CallError::from)
    {
        Err(CallError::Timeout { .. }) => {}
        other => panic!("a call never answered ends at the caller's timeout: {other:?}"),
    }
    let err = sent(&a, Msg::Release { value: 3 })
        .await
        .expect_err("the caller gave up");
    assert!(err.contains("gave up"), "{err}");

    // A dropped call future is a caller that gave up too.
    let dropped = tokio::spawn({
        let a = a.clone();
        async move { a.call(Msg::Hold).await }
    });
    until_held(&a, 1).await;
    dropped.abort();
    let _ = dropped.await;
    let err = sent(&a, Msg::Release { value: 4 })
        .await
        .expect_err("the caller gave up");
    assert!(err.contains("gave up"), "{err}");
    node.shutdown().await;
}
