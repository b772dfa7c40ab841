//! The event bus delivers module.loaded, module.reloaded,
//! module.reload_failed and module.rolled_back, in the order they happened.

use crate::common;

use molt::{Event, EventBus, ModuleSpec, Node, Phase, ReloadOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order() {
    let f = common::fixtures();
    let bus = EventBus::new(64);
    let mut events = bus.subscribe();
    let mut progress = bus.subscribe().with_progress(true);
    let node = Node::start_with_bus(
        common::config("events", &[]).module(ModuleSpec::new("kv", &f.kv)),
        bus,
    )
    .await
    .unwrap();
    node.reload("kv", ReloadOptions::library(&f.kv_v2))
        .await
        .unwrap();
    node.reload("kv", ReloadOptions::library(&f.counter))
        .await
        .unwrap_err();
    node.rollback("kv", false).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 4 {
        match events.next_event().await.expect("bus open") {
            Event::Published { .. } => continue,
            e => seen.push(e),
        }
    }
    match &seen[0] {
        Event::ModuleLoaded {
            name,
            version,
            instances,
        } => {
            assert_eq!(
                (name.as_str(), version.as_str(), *instances),
                ("kv", "1.0.0", 1)
            )
        }
        e => panic!("first event: {e:?}"),
    }
    match &seen[1] {
        Event::ModuleReloaded {
            name,
            from,
            to,
            pause_us,
        } => {
            assert_eq!(
                (name.as_str(), from.as_str(), to.as_str()),
                ("kv", "1.0.0", "2.0.0")
            );
            assert!(*pause_us > 0);
        }
        e => panic!("second event: {e:?}"),
    }
    match &seen[2] {
        Event::ModuleReloadFailed { name, phase, error } => {
            assert_eq!((name.as_str(), phase.as_str()), ("kv", "prepare"));
            assert!(error.contains("libcounter"), "names the file: {error}");
        }
        e => panic!("third event: {e:?}"),
    }
    match &seen[3] {
        Event::ModuleRolledBack {
            name,
            from,
            to,
            reset_state,
        } => {
            assert_eq!(
                (name.as_str(), from.as_str(), to.as_str(), *reset_state),
                ("kv", "2.0.0", "1.0.0", false)
            );
        }
        e => panic!("fourth event: {e:?}"),
    }
    // With progress: each phase of the first reload, in order, before it
    // committed.
    let mut phases = Vec::new();
    while let Some(e) = progress.next_event().await {
        match e {
            Event::ReloadPhase { phase, ok, .. } => {
                assert!(ok, "{phase}");
                phases.push(phase);
            }
            Event::ModuleReloaded { .. } => break,
            _ => continue,
        }
    }
    assert_eq!(
        phases,
        [
            Phase::Prepare,
            Phase::Snapshot,
            Phase::Migrate,
            Phase::Swap,
            Phase::Verify
        ]
    );

    let json = seen[1].to_json();
    assert!(json.contains("\"kind\":\"module.reloaded\""), "{json}");
    node.shutdown().await;
}
