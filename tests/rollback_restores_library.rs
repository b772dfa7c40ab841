//! A rollback restores the library path and the config of the version it
//! returns to (issue #8 item 12, docs/semantics.md "Rollback and forced
//! reloads"): status names the old file, the file watcher maps the old file
//! (not the one rolled back from) to the module, and the old code runs with its
//! own config again.

use crate::common;

use std::path::{Path, PathBuf};

use kv_proto::{Msg, Proto as KvProto, Reply};
use molt::{Event, LibrarySource, ModuleHandle, ModuleSpec, Node, NodeConfig, ReloadOptions};
use serde_json::json;

/// Replaces `to` with a copy of `from` the way a build does: written under
/// another name in the same folder, renamed over.
fn put_in_place(from: &Path, to: &Path) {
    let tmp = to.with_extension("partial");
    std::fs::copy(from, &tmp).expect("copy a library");
    std::fs::rename(&tmp, to).expect("rename into place");
}

/// A `Put` of a 5-byte value: refused under `max_value_len = 3`.
async fn put_five_bytes(kv: &ModuleHandle<KvProto>) -> bool {
    kv.call(Msg::Put {
        key: "long".into(),
        value: "12345".into(),
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_path_config_and_watch_mapping() {
    let f = common::fixtures();
    let dir = tempfile::Builder::new()
        .prefix("molt-rollback-lib")
        .tempdir()
        .expect("temp dir");
    let v1: PathBuf = dir.path().join("libkv.so");
    let v2: PathBuf = dir.path().join("libkv_v2.so");
    std::fs::copy(&f.kv, &v1).unwrap();
    std::fs::copy(&f.kv_v2, &v2).unwrap();
    let v1_config = json!({ "max_value_len": 3 });
    let mut config = NodeConfig::new("rollback-restores-library")
        .module(ModuleSpec::new("kv", &v1).config(v1_config.clone()));
    config.library_dirs = vec![dir.path().to_path_buf()];
    config.limits = common::test_limits();
    config.hot_reload = true;
    config.debounce_ms = 5;
    let node = Node::start(config).await.expect("node starts");
    let kv = node.module::<KvProto>("kv").unwrap();
    common::kv::put(&kv, "a", "1").await;
    assert!(!put_five_bytes(&kv).await, "v1's config limits values");

    // Up to v2 from its own file, with another config; then back.
    node.reload(
        "kv",
        ReloadOptions::library(&v2).with_config(json!({ "max_value_len": 100 })),
    )
    .await
    .expect("reload to v2");
    assert!(put_five_bytes(&kv).await, "v2 runs with its config");
    let back = node.rollback("kv", false).await.expect("rollback");
    assert_eq!((back.from.as_str(), back.to.as_str()), ("2.0.0", "1.0.0"));

    // Status names v1's file and says a rollback put it there.
    let status = node.status().await.unwrap();
    let m = status.module("kv").unwrap();
    assert_eq!(m.library, v1, "status names the library rolled back to");
    assert_eq!(m.code_version, "1.0.0");
    assert_eq!(m.source, LibrarySource::Rollback);
    // The running config is v1's again: path and module config.
    let running = node.admin().running_config().await.unwrap();
    let spec = running.modules.iter().find(|m| m.name == "kv").unwrap();
    assert_eq!((&spec.library, &spec.config), (&v1, &v1_config));
    // v1 runs with v1's config: the 5-byte value is refused again.
    common::kv::put(&kv, "b", "2").await;
    assert!(!put_five_bytes(&kv).await, "v1 runs with its own config");
    assert_eq!(
        kv.call(Msg::Get { key: "a".into() }).await.unwrap(),
        Reply::Value(Some("1".into())),
        "the state came back down-migrated"
    );

    // The watcher maps v1's file to kv now, and v2's file to nothing:
    // rebuilding v2 does not re-upgrade kv; rebuilding v1 reloads it.
    let mut events = node.subscribe();
    put_in_place(&f.kv_v2, &v2);
    put_in_place(&f.kv, &v1);
    match common::next_event(&mut events, "module.reloaded").await {
        Event::ModuleReloaded { name, from, to, .. } => assert_eq!(
            (name.as_str(), from.as_str(), to.as_str()),
            ("kv", "1.0.0", "1.0.0"),
            "the rebuilt v1 file reloads kv; v2's file does not"
        ),
        other => panic!("unexpected event {other:?}"),
    }
    let status = node.status().await.unwrap();
    let m = status.module("kv").unwrap();
    assert_eq!(
        (m.code_version.as_str(), &m.library, m.source),
        ("1.0.0", &v1, LibrarySource::Watch)
    );
    // Exactly one reload: an admin action's event is the next one.
    node.rollback("kv", false)
        .await
        .expect("rollback to the v1 load before the watch reload");
    match events.next_event().await {
        Some(Event::ModuleRolledBack { .. }) => {}
        other => panic!("expected module.rolled_back next, got {other:?}"),
    }
    let reloads = node
        .history()
        .await
        .unwrap()
        .iter()
        .filter(|h| h.trigger == molt::Trigger::Watch)
        .count();
    assert_eq!(reloads, 1, "one watch-triggered reload (v1's file)");
    assert!(!put_five_bytes(&kv).await, "still v1's config");
    node.shutdown().await;
}
