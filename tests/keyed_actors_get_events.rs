//! Bus events reach keyed actors (docs/semantics.md "Keyed actors"): every
//! live actor of a keyed module that asked for events gets each event
//! through its mailbox, like an instance; an event never activates a key,
//! so a passivated key misses the events published while it sleeps.

use std::time::Duration;

use crate::common;

use common::fault_proto::{Msg, Reply};
use common::FaultProto as Proto;
use molt::{Event, KeyedSpec, ModuleSpec, Node};

async fn events(h: &molt::ModuleHandle<Proto>) -> Vec<String> {
    match h.call(Msg::Events).await.expect("Events answers") {
        Reply::Events(kinds) => kinds,
        other => panic!("unexpected reply {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_keyed_actors_get_bus_events_and_no_key_is_activated_by_one() {
    let f = common::fixtures();
    let spec = KeyedSpec {
        idle_passivate: Duration::from_millis(300),
        max_live: 100,
    };
    let node = Node::start(
        common::config("keyed-events", &[]).module(ModuleSpec::new("fault", &f.fault).keyed(spec)),
    )
    .await
    .expect("node starts");
    let faults = node.module::<Proto>("fault").unwrap();
    let (a, b, sleeper) = (faults.key("a"), faults.key("b"), faults.key("sleeper"));

    // One key passivates before the event.
    sleeper.call(Msg::Push(1)).await.unwrap();
    common::cart::await_status_of(&node, "fault", "the sleeper passivated", |s| {
        s.passivated >= 1
    })
    .await;

    // Two keys live when it is published.
    assert!(!events(&a).await.contains(&"module.published".to_string()));
    assert!(!events(&b).await.contains(&"module.published".to_string()));
    node.events().publish(Event::Published {
        module: "test".into(),
        topic: "news".into(),
        json: "{}".into(),
    });
    // Enqueued by `publish` itself, so the next call comes after it.
    assert!(events(&a).await.contains(&"module.published".to_string()));
    assert!(events(&b).await.contains(&"module.published".to_string()));

    // The passivated key was not woken for it: activated by this call, it
    // never saw the event (it would have, queued before this call, had the
    // event activated it).
    let woken = events(&sleeper).await;
    assert!(
        !woken.contains(&"module.published".to_string()),
        "{woken:?}"
    );
    node.shutdown().await;
}
