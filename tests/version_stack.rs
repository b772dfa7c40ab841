//! A module keeps a stack of its last `limits.versions_kept` versions (issue #8
//! item 13, docs/semantics.md "Rollback and forced reloads"): `rollback` walks
//! back one step at a time, `rollback --to VERSION` goes straight to a kept one
//! in one swap (the serving code down-migrates to its state version), and a
//! reload to a library with an older state version down-migrates too.

use crate::common;

use common::kv::{dump, put, version};
use kv_proto::{Dump, Proto as KvProto};
use molt::{Action, Error, ModuleHandle, ModuleSpec, Node, Outcome, ReloadOptions};

/// A node running kv 1.0.0 with some data, then reloaded to 2.0.0 and
/// 2.0.1 (both state version 2). Returns the node, a handle and the data.
async fn three_versions(name: &str, versions_kept: usize) -> (Node, ModuleHandle<KvProto>, Dump) {
    let f = common::fixtures();
    let mut config = common::config(name, &[]).module(ModuleSpec::new("kv", &f.kv));
    config.limits.versions_kept = versions_kept;
    let node = Node::start(config).await.expect("node starts");
    let kv = node.module::<KvProto>("kv").unwrap();
    put(&kv, "a", "1").await;
    node.reload("kv", ReloadOptions::library(&f.kv_v2))
        .await
        .expect("up to 2.0.0");
    put(&kv, "b", "2").await;
    let r = node
        .reload("kv", ReloadOptions::library(&f.kv_v2_1))
        .await
        .expect("up to 2.0.1");
    assert_eq!((r.from.as_str(), r.to.as_str()), ("2.0.0", "2.0.1"));
    put(&kv, "c", "3").await;
    let data = dump(&kv).await;
    (node, kv, data)
}

async fn kept(node: &Node) -> (Vec<String>, Option<String>) {
    let status = node.status().await.unwrap();
    let m = status.module("kv").unwrap();
    (m.versions.clone(), m.previous.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_goes_straight_back_with_down_migrated_state() {
    let (node, kv, data) = three_versions("stack-to", 4).await;
    assert_eq!(
        kept(&node).await,
        (
            vec!["1.0.0".into(), "2.0.0".into(), "2.0.1".into()],
            Some("2.0.0".into())
        )
    );
    let r = node
        .rollback_to("kv", "1.0.0", false)
        .await
        .expect("rollback --to 1.0.0");
    assert_eq!(
        (r.from.as_str(), r.to.as_str(), r.state_version),
        ("2.0.1", "1.0.0", 1)
    );
    assert_eq!(version(&kv).await, ("1.0.0".to_string(), 1));
    assert_eq!(dump(&kv).await, data, "2.0.1 down-migrated its state");
    assert_eq!(kept(&node).await, (vec!["1.0.0".into()], None));
    // One swap: one rollback in the history, straight from 2.0.1.
    let rollbacks: Vec<_> = node
        .history()
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.action == Action::Rollback)
        .map(|h| (h.from, h.to, h.outcome))
        .collect();
    assert_eq!(
        rollbacks,
        [("2.0.1".into(), "1.0.0".into(), Outcome::Committed)]
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_rollbacks_walk_back_then_refuse() {
    let (node, kv, data) = three_versions("stack-walk", 4).await;
    let r = node.rollback("kv", false).await.expect("back to 2.0.0");
    assert_eq!((r.from.as_str(), r.to.as_str()), ("2.0.1", "2.0.0"));
    assert_eq!(dump(&kv).await, data);
    let r = node.rollback("kv", false).await.expect("back to 1.0.0");
    assert_eq!(
        (r.from.as_str(), r.to.as_str(), r.state_version),
        ("2.0.0", "1.0.0", 1)
    );
    assert_eq!(dump(&kv).await, data);
    match node.rollback("kv", false).await {
        Err(Error::RollbackRefused { reason, .. }) => {
            assert!(reason.contains("no previous library"), "{reason}")
        }
        other => panic!("a rollback below the oldest version must be refused: {other:?}"),
    }
    assert_eq!(version(&kv).await, ("1.0.0".to_string(), 1));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_the_old_file_down_migrates() {
    let f = common::fixtures();
    let (node, kv, data) = three_versions("stack-reload-old", 4).await;
    // From 2.0.1 (state 2), reload the 1.0.0 file (state 1): 2.0.1 writes
    // its state as version 1 for it.
    let r = node
        .reload("kv", ReloadOptions::library(&f.kv))
        .await
        .expect("reloading the v1 file from v2 down-migrates");
    assert_eq!(
        (r.from.as_str(), r.to.as_str(), r.state_version),
        ("2.0.1", "1.0.0", 1)
    );
    assert_eq!(version(&kv).await, ("1.0.0".to_string(), 1));
    assert_eq!(dump(&kv).await, data);
    // A reload is a new version on the stack: a rollback returns to 2.0.1.
    let (versions, previous) = kept(&node).await;
    assert_eq!(versions.last().map(String::as_str), Some("1.0.0"));
    assert_eq!(previous.as_deref(), Some("2.0.1"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_an_old_file_the_code_cannot_downgrade_to_fails_cleanly() {
    let f = common::fixtures();
    let node = common::start("stack-no-downgrade", ModuleSpec::new("counter", &f.counter)).await;
    node.reload("counter", ReloadOptions::library(&f.counter_v2))
        .await
        .expect("up to counter 2");
    let serving = node
        .status()
        .await
        .unwrap()
        .module("counter")
        .unwrap()
        .code_version
        .clone();
    match node
        .reload("counter", ReloadOptions::library(&f.counter))
        .await
    {
        Err(Error::ReloadFailed { error, .. }) => {
            assert!(error.contains("downgrade"), "{error}")
        }
        other => panic!("counter 2 cannot downgrade: the reload must fail, got {other:?}"),
    }
    let status = node.status().await.unwrap();
    assert_eq!(status.module("counter").unwrap().code_version, serving);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_is_capped_by_versions_kept() {
    let (node, _kv, _) = three_versions("stack-cap", 2).await;
    assert_eq!(
        kept(&node).await,
        (vec!["2.0.0".into(), "2.0.1".into()], Some("2.0.0".into()))
    );
    match node.rollback_to("kv", "1.0.0", false).await {
        Err(Error::RollbackRefused { reason, .. }) => assert!(
            reason.contains("1.0.0 is not in the version stack") && reason.contains("2.0.0"),
            "{reason}"
        ),
        other => panic!("1.0.0 was dropped from the stack: {other:?}"),
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_over_http() {
    let (node, kv, data) = three_versions("stack-http", 4).await;
    let token = "stack-http-token-0123456789abcdef0123";
    let (server, client) = common::serve_admin(&node, token).await;
    let m = client.module("kv").await.unwrap();
    assert_eq!(m.versions, ["1.0.0", "2.0.0", "2.0.1"]);
    assert_eq!(m.source, molt::LibrarySource::Admin);
    match client.rollback_to("kv", Some("0.9.0"), false).await {
        Err(molt::http::ClientError::Api { status, body }) => {
            assert_eq!(status, 409, "{body:?}");
            assert!(
                body.error.contains("0.9.0 is not in the version stack"),
                "{body:?}"
            );
        }
        other => panic!("an unknown version must be refused: {other:?}"),
    }
    let r = client
        .rollback_to("kv", Some("1.0.0"), false)
        .await
        .expect("POST rollback {\"to\": \"1.0.0\"}");
    assert_eq!((r.from.as_str(), r.to.as_str()), ("2.0.1", "1.0.0"));
    assert_eq!(dump(&kv).await, data);
    let m = client.module("kv").await.unwrap();
    assert_eq!(
        (m.versions.as_slice(), m.source),
        (&["1.0.0".to_string()][..], molt::LibrarySource::Rollback)
    );
    server.shutdown().await;
    node.shutdown().await;
}
