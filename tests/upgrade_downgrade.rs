//! Erlang/OTP's release-test shape: upgrade → check → downgrade → check,
//! comparing the full state content each time.

use crate::common;

use common::kv::{dump, version};

use std::collections::BTreeMap;

use kv_proto::{Msg, Proto, Reply};
use molt::{ModuleSpec, ReloadOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_check_downgrade_check_keeps_full_state() {
    let f = common::fixtures();
    let node = common::start("upgrade-downgrade", ModuleSpec::new("kv", &f.kv)).await;
    let kv = node.module::<Proto>("kv").unwrap();

    for i in 0..50u64 {
        kv.call(Msg::Put {
            key: format!("k{i}"),
            value: format!("value {i}"),
        })
        .await
        .unwrap();
        kv.call(Msg::Push {
            stream: format!("s{}", i % 3),
            seq: i,
        })
        .await
        .unwrap();
    }
    let before = dump(&kv).await;
    assert_eq!(before.entries.len(), 50);
    assert_eq!(version(&kv).await, ("1.0.0".to_string(), 1));

    // Upgrade: the state is migrated from layout 1 to layout 2.
    let report = node
        .reload("kv", ReloadOptions::library(&f.kv_v2))
        .await
        .expect("upgrade commits");
    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        ("1.0.0", "2.0.0")
    );
    assert_eq!(version(&kv).await, ("2.0.0".to_string(), 2));
    assert_eq!(dump(&kv).await, before, "v2 holds exactly v1's content");

    // v2's new feature works on migrated data, and changes the v2-only part.
    kv.call(Msg::Get { key: "k7".into() }).await.unwrap();
    kv.call(Msg::Get { key: "k7".into() }).await.unwrap();
    assert_eq!(
        kv.call(Msg::Hits { key: "k7".into() }).await.unwrap(),
        Reply::Hits(2)
    );
    kv.call(Msg::Put {
        key: "added-in-v2".into(),
        value: "x".into(),
    })
    .await
    .unwrap();
    let mut expected = before.clone();
    expected.entries.insert("added-in-v2".into(), "x".into());

    // Downgrade: the explicit rollback down-migrates layout 2 to layout 1.
    let report = node.rollback("kv", false).await.expect("rollback commits");
    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        ("2.0.0", "1.0.0")
    );
    assert_eq!(version(&kv).await, ("1.0.0".to_string(), 1));
    assert_eq!(
        dump(&kv).await,
        expected,
        "v1 holds exactly v2's content, minus v2-only fields"
    );
    assert!(
        kv.call(Msg::Hits { key: "k7".into() }).await.is_err(),
        "v1 code is serving again"
    );

    let status = node.status().await.unwrap();
    let m = status.module("kv").unwrap();
    assert_eq!((m.code_version.as_str(), m.state_version), ("1.0.0", 1));
    // The rollback left 2.0.0 behind: nothing older than 1.0.0 is kept.
    assert_eq!(
        (m.previous.as_deref(), m.versions.as_slice()),
        (None, &["1.0.0".to_string()][..])
    );
    let streams: BTreeMap<_, _> = expected.streams;
    assert_eq!(streams.len(), 3);
    node.shutdown().await;
}
