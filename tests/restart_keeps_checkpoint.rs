//! A restart keeps the newest state (issue #8 item 7, docs/semantics.md
//! "Restarts and checkpoints"): handler errors never restart an instance, only
//! panics count toward `restart_after_failures`; an instance checkpoints its
//! state between messages every `checkpoint_interval` (also when messages
//! stop); a restart restores the newest checkpoint, not the state of the last
//! reload, and says so in a `module.restarted` event and a `restart` history
//! entry with what it restored and how old that state was.

use crate::common;

use std::time::{Duration, Instant};

use common::fault::{log, push};
use common::fault_proto::{Fault, How, Msg, Point};
use common::FaultProto;
use molt::{
    Action, Event, InstanceStatus, ModuleHandle, ModuleSpec, Node, Outcome, ReloadOptions, Trigger,
};

/// Panics in a row after which an instance restarts.
const RESTART_AFTER: u32 = 3;

async fn fault_node(name: &str, interval: Duration) -> (Node, ModuleHandle<FaultProto>) {
    let f = common::fixtures();
    let mut config = common::config(name, &[]);
    config.limits.restart_after_failures = RESTART_AFTER;
    config.limits.checkpoint_interval = interval;
    let node = Node::start(config.module(ModuleSpec::new("fault", &f.fault)))
        .await
        .expect("node starts");
    let h = node.module::<FaultProto>("fault").unwrap();
    (node, h)
}

async fn instance(node: &Node) -> InstanceStatus {
    let status = node.status().await.expect("status");
    status.module("fault").expect("fault runs").instances[0].clone()
}

/// Waits (bounded) until the newest checkpoint holds every message handled
/// so far (read after a call returned: see tests/handler_panic.rs).
async fn checkpoint_covers_everything(node: &Node) -> InstanceStatus {
    let handled = instance(node).await.handled;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = instance(node).await;
        if st.checkpoint_covers >= handled {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint covering {handled} messages within 20 s: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Casts `RESTART_AFTER` panics, then waits for the restart event.
async fn panic_until_restart(
    h: &ModuleHandle<FaultProto>,
    events: &mut molt::EventStream,
) -> Event {
    for _ in 0..RESTART_AFTER {
        h.cast(Msg::Panic).unwrap();
    }
    common::next_event(events, "module.restarted").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_never_restart_an_instance() {
    let (node, h) = fault_node("restart-errors-never", Duration::from_millis(50)).await;
    for v in 0..5 {
        push(&h, v).await;
    }
    // Many more errors in a row than the limit: each answers its caller.
    for _ in 0..(RESTART_AFTER * 4) {
        let err = h.call(Msg::Fail).await.expect_err("Fail answers an error");
        assert!(err.to_string().contains("failed on purpose"), "{err}");
    }
    // And a panic between errors does not make a row of panics.
    h.cast(Msg::Panic).unwrap();
    for _ in 0..RESTART_AFTER {
        let _ = h.call(Msg::Fail).await;
    }
    h.cast(Msg::Panic).unwrap();
    assert_eq!(log(&h).await, (0..5).collect::<Vec<_>>(), "state intact");
    let st = instance(&node).await;
    assert_eq!(st.restarts, 0, "{st:?}");
    assert_eq!(
        st.failed,
        u64::from(RESTART_AFTER * 5 + 2),
        "every failure counted: {st:?}"
    );
    node.shutdown().await;
}

/// State A, a committed reload (its snapshot = A), state B, a checkpoint of
/// B, then panics: the restart returns to B (at least: a later checkpoint
/// may hold more), never to A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_restart_from_the_newest_checkpoint_not_the_reload_snapshot() {
    let f = common::fixtures();
    let (node, h) = fault_node("restart-newest-checkpoint", Duration::from_millis(100)).await;
    let mut events = node.subscribe();
    for v in 0..3 {
        push(&h, v).await;
    }
    node.reload("fault", ReloadOptions::library(&f.fault_v2))
        .await
        .expect("fault 1 → 2 commits");
    let state_b_started = Instant::now();
    for v in 3..200 {
        push(&h, v).await;
    }
    checkpoint_covers_everything(&node).await;
    // Pushed after that checkpoint: may or may not survive.
    for v in 200..210 {
        push(&h, v).await;
    }

    let event = panic_until_restart(&h, &mut events).await;
    let after = log(&h).await;
    assert!(
        after.len() >= 200 && after[..] == (0..after.len() as i64).collect::<Vec<_>>()[..],
        "restored at least the checkpointed state B, in order: {} values",
        after.len()
    );
    let Event::ModuleRestarted {
        name,
        instance: index,
        restored,
        state_age_ms,
        forced,
        stuck_messages,
        reason,
    } = event
    else {
        panic!("not a restart event: {event:?}")
    };
    assert_eq!((name.as_str(), index), ("fault", 0));
    assert_eq!(restored, "checkpoint");
    assert!(!forced);
    assert_eq!(stuck_messages, 0);
    assert!(reason.contains("panics"), "{reason}");
    assert!(
        u128::from(state_age_ms) <= state_b_started.elapsed().as_millis(),
        "the restored checkpoint was taken after state B began: {state_age_ms} ms old"
    );

    let st = instance(&node).await;
    assert_eq!(st.restarts, 1, "{st:?}");
    let history = node.history().await.unwrap();
    let entry = history.last().expect("a history entry");
    assert_eq!(entry.action, Action::Restart);
    assert_eq!(entry.outcome, Outcome::Committed);
    assert_eq!(entry.trigger, Trigger::Node);
    assert_eq!((entry.from.as_str(), entry.to.as_str()), ("2.0.0", "2.0.0"));
    assert!(
        entry.error.as_deref().unwrap().contains("panics"),
        "{entry:?}"
    );
    let restored = entry.restored.as_ref().expect("what it restored");
    assert_eq!(restored.from, "checkpoint");
    assert_eq!(restored.state_age_ms, state_age_ms);
    assert_eq!(restored.instances, vec![0]);
    assert!(!restored.forced);

    // It serves on, on the restored state, with the committed code.
    push(&h, 1000).await;
    assert_eq!(log(&h).await.last(), Some(&1000));
    node.shutdown().await;
}

/// Messages, then silence: the checkpoint is still taken (a scheduled
/// `Checkpoint` message, not the next application message, triggers it), so
/// a restart keeps every value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_messages_stop_the_checkpoint_is_still_taken() {
    let (node, h) = fault_node("restart-silence", Duration::from_millis(200)).await;
    let mut events = node.subscribe();
    for v in 0..50 {
        push(&h, v).await;
    }
    // Nothing else is sent until the checkpoint covers the pushes.
    let st = checkpoint_covers_everything(&node).await;
    assert_eq!(st.checkpoint_failures, 0, "{st:?}");

    match panic_until_restart(&h, &mut events).await {
        Event::ModuleRestarted { restored, .. } => assert_eq!(restored, "checkpoint"),
        e => panic!("{e:?}"),
    }
    assert_eq!(log(&h).await, (0..50).collect::<Vec<_>>());
    node.shutdown().await;
}

/// A checkpoint whose snapshot fails keeps the previous one (counted, the
/// instance serves on), and a restart returns to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_checkpoint_keeps_the_previous_one() {
    let (node, h) = fault_node("restart-failed-checkpoint", Duration::from_millis(100)).await;
    let mut events = node.subscribe();
    for v in 0..10 {
        push(&h, v).await;
    }
    checkpoint_covers_everything(&node).await;
    h.call(Msg::Arm(Some(Fault {
        at: Point::Snapshot,
        how: How::Panic,
    })))
    .await
    .unwrap();
    for v in 10..20 {
        push(&h, v).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while instance(&node).await.checkpoint_failures == 0 {
        assert!(
            Instant::now() < deadline,
            "no failed checkpoint within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(log(&h).await, (0..20).collect::<Vec<_>>(), "still serving");

    panic_until_restart(&h, &mut events).await;
    assert_eq!(
        log(&h).await,
        (0..10).collect::<Vec<_>>(),
        "back to the last checkpoint that succeeded"
    );
    node.shutdown().await;
}

/// Without checkpoints (interval 0) and without a reload, the newest good
/// state is the start state, and the restart says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_checkpoints_off_a_restart_says_it_restored_the_start_state() {
    let (node, h) = fault_node("restart-from-start", Duration::ZERO).await;
    let mut events = node.subscribe();
    for v in 0..10 {
        push(&h, v).await;
    }
    match panic_until_restart(&h, &mut events).await {
        Event::ModuleRestarted { restored, .. } => assert_eq!(restored, "start"),
        e => panic!("{e:?}"),
    }
    assert_eq!(log(&h).await, Vec::<i64>::new());
    node.shutdown().await;
}
