//! What module code reaches through its context: messages to other modules,
//! host events (for modules that ask for them), and events it publishes.

use crate::common;

use common::fault_proto::{Msg as FMsg, Reply as FReply};
use kv_proto::{Msg, Proto, Reply};
use molt::{Event, ModuleSpec, Node, ReloadOptions};
use serde_json::json;

fn two_modules(name: &str) -> molt::NodeConfig {
    let f = common::fixtures();
    common::config(name, &[])
        .module(ModuleSpec::new("kv", &f.kv))
        .module(ModuleSpec::new("fault", &f.fault).config(json!({ "tag": "a" })))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_sends_to_another_module() {
    let node = Node::start(two_modules("ctx-send")).await.unwrap();
    let fault = node.module::<common::FaultProto>("fault").unwrap();
    let kv = node.module::<Proto>("kv").unwrap();
    fault
        .call(FMsg::Forward {
            module: "kv".into(),
            instance: None,
            key: "from-fault".into(),
            value: "hello".into(),
            seq: None,
        })
        .await
        .expect("forward succeeds");
    // The forwarded Put entered kv's mailbox before this Get.
    assert_eq!(
        kv.call(Msg::Get {
            key: "from-fault".into()
        })
        .await
        .unwrap(),
        Reply::Value(Some("hello".into()))
    );
    let err = fault
        .call(FMsg::Forward {
            module: "nobody".into(),
            instance: None,
            key: "k".into(),
            value: "v".into(),
            seq: None,
        })
        .await
        .expect_err("no such module");
    assert!(
        err.to_string().contains("module nobody is not running"),
        "{err}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_sends_to_one_instance_of_another_module() {
    let f = common::fixtures();
    let node = Node::start(
        common::config("ctx-send-to", &[])
            .module(ModuleSpec::new("kv", &f.kv).instances(3))
            .module(ModuleSpec::new("fault", &f.fault)),
    )
    .await
    .unwrap();
    let fault = node.module::<common::FaultProto>("fault").unwrap();
    let kv = node.module::<Proto>("kv").unwrap();
    // Instances 2 and 1; fault runs as instance 0, so `cast` would have
    // reached kv's instance 0. (An index out of range is an error, not a
    // wrap: tests/send_to_gone_actor_errors.rs.)
    for (instance, key) in [(2, "two"), (1, "one")] {
        fault
            .call(FMsg::Forward {
                module: "kv".into(),
                instance: Some(instance),
                key: key.into(),
                value: "v".into(),
                seq: None,
            })
            .await
            .expect("forward succeeds");
    }
    let get = |i: usize, key: &str| {
        let h = kv.on_instance(i);
        let key = key.to_string();
        async move { h.call(Msg::Get { key }).await.unwrap() }
    };
    assert_eq!(get(2, "two").await, Reply::Value(Some("v".into())));
    assert_eq!(get(1, "one").await, Reply::Value(Some("v".into())));
    for (i, key) in [(0, "two"), (1, "two"), (0, "one"), (2, "one")] {
        assert_eq!(get(i, key).await, Reply::Value(None), "instance {i} {key}");
    }
    let err = fault
        .call(FMsg::Forward {
            module: "nobody".into(),
            instance: Some(0),
            key: "k".into(),
            value: "v".into(),
            seq: None,
        })
        .await
        .expect_err("no such module");
    assert!(
        err.to_string().contains("module nobody is not running"),
        "{err}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_that_ask_for_events_receive_them_in_order() {
    let f = common::fixtures();
    let node = Node::start(two_modules("ctx-events")).await.unwrap();
    let fault = node.module::<common::FaultProto>("fault").unwrap();
    node.reload("kv", ReloadOptions::library(&f.kv_v2))
        .await
        .unwrap();
    node.reload("kv", ReloadOptions::library(&f.counter))
        .await
        .unwrap_err();
    node.rollback("kv", false).await.unwrap();
    // Events enter the module's mailbox before `reload` returns, so this
    // call is handled after all three.
    assert_eq!(
        fault.call(FMsg::Events).await.unwrap(),
        FReply::Events(vec![
            // its own start (kv's came before fault was running)
            "module.loaded".into(),
            "module.reloaded".into(),
            "module.reload_failed".into(),
            "module.rolled_back".into(),
        ])
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_by_a_module_reach_subscribers() {
    let f = common::fixtures();
    let node = Node::start(two_modules("ctx-publish")).await.unwrap();
    let mut events = node.subscribe();
    // The fault fixture publishes "fault.migrating" (its tag) in migrate.
    node.reload(
        "fault",
        ReloadOptions::library(&f.fault).with_config(json!({ "tag": "b" })),
    )
    .await
    .unwrap();
    match common::next_event(&mut events, "module.published").await {
        Event::Published {
            module,
            topic,
            json,
        } => {
            assert_eq!(
                (module.as_str(), topic.as_str(), json.as_str()),
                ("fault", "fault.migrating", "\"b\"")
            );
        }
        e => panic!("unexpected {e:?}"),
    }
    node.shutdown().await;
}

/// A module that sends to another keeps reaching it by name when that module
/// is removed (an error) and added again (a new routing slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_to_a_removed_then_re_added_module() {
    let f = common::fixtures();
    let node = Node::start(two_modules("ctx-send-readd")).await.unwrap();
    let fault = node.module::<common::FaultProto>("fault").unwrap();
    let forward = |value: &str| FMsg::Forward {
        module: "kv".into(),
        instance: None,
        key: "k".into(),
        value: value.into(),
        seq: None,
    };
    fault.call(forward("first")).await.expect("kv is running");

    node.admin().remove_module("kv").await.unwrap();
    let err = fault
        .call(forward("gone"))
        .await
        .expect_err("kv was removed");
    assert!(
        err.to_string().contains("module kv is not running"),
        "{err}"
    );

    node.admin()
        .add_module(ModuleSpec::new("kv", &f.kv))
        .await
        .unwrap();
    fault.call(forward("second")).await.expect("kv is back");
    let kv = node.module::<Proto>("kv").unwrap();
    assert_eq!(
        kv.call(Msg::Get { key: "k".into() }).await.unwrap(),
        Reply::Value(Some("second".into())),
        "the message reached the new kv (fresh state)"
    );
    node.shutdown().await;
}
