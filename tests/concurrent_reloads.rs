//! Guarantees: concurrent reloads of different modules do not interfere; a
//! second reload of a module while its first is in flight is rejected with a
//! clear error, never interleaved.

use crate::common;

use counter_proto::{Msg as CMsg, Proto as CounterProto, Reply as CReply};
use kv_proto::{Msg, Proto, Reply};
use molt::{Error, Event, ModuleSpec, Outcome, ReloadOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_modules_reload_at_the_same_time() {
    let f = common::fixtures();
    let config = common::config("two-modules", &[])
        .module(ModuleSpec::new("kv", &f.kv))
        .module(ModuleSpec::new("counter", &f.counter));
    let node = molt::Node::start(config).await.unwrap();
    let kv = node.module::<Proto>("kv").unwrap();
    let counter = node.module::<CounterProto>("counter").unwrap();
    kv.call(Msg::Put {
        key: "a".into(),
        value: "1".into(),
    })
    .await
    .unwrap();
    counter.call(CMsg::Add(41)).await.unwrap();

    let (a, b) = tokio::join!(
        node.reload("kv", ReloadOptions::library(&f.kv_v2)),
        node.reload("counter", ReloadOptions::library(&f.counter_v2)),
    );
    assert_eq!(a.expect("kv reload commits").to, "2.0.0");
    assert_eq!(b.expect("counter reload commits").to, "2.0.0");

    assert_eq!(
        kv.call(Msg::Get { key: "a".into() }).await.unwrap(),
        Reply::Value(Some("1".into()))
    );
    assert_eq!(counter.call(CMsg::Add(1)).await.unwrap(), CReply::Total(42));
    let status = node.status().await.unwrap();
    for m in ["kv", "counter"] {
        let s = status.module(m).unwrap();
        assert_eq!(s.code_version, "2.0.0", "{m}");
        assert!(!s.reloading, "{m}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_reload_while_first_in_flight_is_rejected() {
    let f = common::fixtures();
    let node = common::start(
        "second-reload",
        ModuleSpec::new("fault", &f.fault).config(json!({ "tag": "v1" })),
    )
    .await;
    let fault = node.module::<common::FaultProto>("fault").unwrap();
    fault.call(common::fault_proto::Msg::Push(7)).await.unwrap();
    let mut events = node.subscribe();

    // The first reload's migrate hangs until this file exists: the second
    // reload meets it in flight however slow the machine is.
    let scratch = common::scratch_dir();
    let release = scratch.path().join("release");
    let admin = node.admin();
    let lib = f.fault.clone();
    let hang =
        json!({ "HangUntil": { "release": release.display().to_string(), "max_ms": 120_000 } });
    let first = tokio::spawn(async move {
        admin
            .reload(
                "fault",
                ReloadOptions::library(lib).with_config(json!({
                    "tag": "v2",
                    "fault": { "at": "Migrate", "how": hang }
                })),
            )
            .await
    });
    // The first reload is inside its migrate now.
    loop {
        if let Event::Published { topic, .. } =
            common::next_event(&mut events, "module.published").await
        {
            if topic == "fault.migrating" {
                break;
            }
        }
    }
    let second = node
        .reload(
            "fault",
            ReloadOptions::library(&f.fault).with_config(json!({ "tag": "v3" })),
        )
        .await;
    std::fs::write(&release, b"").unwrap();
    match second {
        Err(Error::ReloadInProgress(m)) => assert_eq!(m, "fault"),
        other => panic!("expected ReloadInProgress, got {other:?}"),
    }
    assert!(
        first.await.unwrap().is_ok(),
        "the first reload still commits"
    );
    assert_eq!(
        fault.call(common::fault_proto::Msg::Tag).await.unwrap(),
        common::fault_proto::Reply::Tag("v2".into()),
        "the first reload's code serves; the second never ran"
    );
    let history = node.history().await.unwrap();
    let outcomes: Vec<Outcome> = history.iter().map(|h| h.outcome).collect();
    assert_eq!(outcomes, vec![Outcome::Refused, Outcome::Committed]);
    assert!(history[0]
        .error
        .as_deref()
        .unwrap()
        .contains("already reloading"));

    // Once the first is done, a new reload is accepted again.
    node.reload(
        "fault",
        ReloadOptions::library(&f.fault).with_config(json!({ "tag": "v3" })),
    )
    .await
    .expect("a reload after the first finished commits");
    node.shutdown().await;
}
