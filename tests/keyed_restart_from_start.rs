//! docs/semantics.md "Restarts and checkpoints": a keyed actor activated
//! fresh keeps no copy of its start state (its activation takes no snapshot,
//! issue #11 §3); a restart in place before its first checkpoint still finds
//! a state to rebuild from: `init`'s, reported as `restored: "start"`, and
//! the actor serves on.

use crate::common;

use std::time::Duration;

use common::fault::{log, push};
use common::fault_proto::Msg;
use common::FaultProto;
use molt::{Event, KeyedSpec, ModuleSpec, Node};

/// Panics in a row after which an actor restarts.
const RESTART_AFTER: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_keyed_actor_restarts_from_its_start_state() {
    let mut config = common::config("keyed-restart-from-start", &[]);
    config.limits.restart_after_failures = RESTART_AFTER;
    // No checkpoint is ever taken: the start state is all there is.
    config.limits.checkpoint_interval = Duration::ZERO;
    let spec = ModuleSpec::new("fault", &common::fixtures().fault).keyed(KeyedSpec {
        idle_passivate: Duration::from_secs(600),
        max_live: 16,
    });
    let node = Node::start(config.module(spec)).await.expect("node starts");
    let mut events = node.subscribe();
    let k = node.module::<FaultProto>("fault").unwrap().key("k");
    push(&k, 1).await;
    push(&k, 2).await;
    assert_eq!(log(&k).await, vec![1, 2]);

    for _ in 0..RESTART_AFTER {
        k.cast(Msg::Panic).unwrap();
    }
    match common::next_event(&mut events, "module.restarted").await {
        Event::ModuleRestarted {
            name,
            restored,
            forced,
            ..
        } => {
            assert_eq!(name, "fault");
            assert_eq!(restored, "start");
            assert!(!forced);
        }
        other => panic!("{other:?}"),
    }
    // Rebuilt from the start state, and serving.
    assert_eq!(log(&k).await, Vec::<i64>::new());
    push(&k, 3).await;
    assert_eq!(log(&k).await, vec![3]);
    node.shutdown().await;
}
