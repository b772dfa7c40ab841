//! Issue #8 item 11: scaling keeps per-handle order. A handle resolves its
//! instance once, when it is made: a scale-up never moves it; when a
//! scale-down removes its instance, that instance first handles what was
//! queued before, then the handle's messages go on, in order, to instance
//! `index % new_count`. Under load from eight handles across scaling
//! 4 → 2 → 3, nothing is lost, duplicated or reordered per handle.
//!
//! Checker: the fault fixture appends every `Push` it handles to a journal
//! file (`push INSTANCE VALUE`), whichever instance handles it; a value
//! carries its handle and its sequence number, so the file's order is each
//! handle's handling order, across instances.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fault::tag;
use common::fault_proto::Msg;
use common::FaultProto;
use molt::{ModuleSpec, Node};
use serde_json::json;

const HANDLES: i64 = 8;
/// A value is `handle * SEQ_SPAN + seq`.
const SEQ_SPAN: i64 = 1_000_000;
/// Messages sent between two scale changes (at least).
const PER_PHASE: u64 = 3_000;

/// Asserts that `held` is exactly `0..count`: nothing lost, duplicated or
/// reordered (a short message naming the first difference).
fn assert_sequence<T: Copy + PartialEq + std::fmt::Debug>(held: &[T], expected: &[T], what: &str) {
    if held != expected {
        let first = held.iter().zip(expected).position(|(a, b)| a != b);
        let around = first.map(|i| &held[i.saturating_sub(2)..(i + 3).min(held.len())]);
        panic!(
            "{what}: expected {}, got {} (first difference at {first:?}: {around:?})",
            expected.len(),
            held.len()
        );
    }
}

/// Waits (bounded) until `sent` reaches `at_least`.
async fn sent_at_least(sent: &AtomicU64, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent.load(Ordering::Relaxed) < at_least {
        assert!(Instant::now() < deadline, "the senders stalled");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scaling_4_2_3_under_load_keeps_every_handles_order() {
    let f = common::fixtures();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let node = Node::start(
        common::config("scale-keeps-order", &[]).module(
            ModuleSpec::new("fault", &f.fault)
                .instances(4)
                .config(json!({ "tag": "a", "journal": path.to_str().unwrap() })),
        ),
    )
    .await
    .expect("node starts");
    // Eight handles, two per instance (round robin).
    let handles: Vec<_> = (0..HANDLES)
        .map(|_| node.module::<FaultProto>("fault").unwrap())
        .collect();
    for (h, handle) in handles.iter().enumerate() {
        assert_eq!(handle.instance(), h % 4);
    }

    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(h, handle)| {
            let (handle, sent, stop) = (handle.clone(), sent.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    handle
                        .cast(Msg::Push(h as i64 * SEQ_SPAN + seq))
                        .expect("cast is accepted while scaling");
                    seq += 1;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if seq % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                seq
            })
        })
        .collect();

    sent_at_least(&sent, PER_PHASE).await;
    node.admin().scale("fault", 2).await.expect("scale 4 -> 2");
    for (h, handle) in handles.iter().enumerate() {
        assert_eq!(
            handle.instance(),
            h % 4 % 2,
            "handle {h} goes on to index % 2"
        );
    }
    let at = sent.load(Ordering::Relaxed);
    sent_at_least(&sent, at + PER_PHASE).await;
    node.admin().scale("fault", 3).await.expect("scale 2 -> 3");
    for (h, handle) in handles.iter().enumerate() {
        assert_eq!(
            handle.instance(),
            h % 4 % 2,
            "a scale-up moves no handle ({h})"
        );
    }
    let fresh = node.module::<FaultProto>("fault").unwrap();
    let at = sent.load(Ordering::Relaxed);
    sent_at_least(&sent, at + PER_PHASE).await;
    stop.store(true, Ordering::Relaxed);
    let mut counts = Vec::new();
    for s in senders {
        counts.push(s.await.expect("sender"));
    }
    // A call through a handle is answered after everything sent before it
    // through that handle.
    for handle in &handles {
        assert_eq!(tag(handle).await, "a");
    }
    assert!(fresh.instance() < 3);

    let text = std::fs::read_to_string(&path).unwrap();
    let mut seen: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        if words.next() != Some("push") {
            continue;
        }
        let value: i64 = words.nth(1).unwrap().parse().unwrap();
        seen.entry(value / SEQ_SPAN)
            .or_default()
            .push(value % SEQ_SPAN);
    }
    for (h, &count) in counts.iter().enumerate() {
        let held = seen.remove(&(h as i64)).unwrap_or_default();
        let expected: Vec<i64> = (0..count).collect();
        assert_sequence(&held, &expected, &format!("handle {h}"));
    }
    let status = node.status().await.unwrap();
    assert_eq!(status.module("fault").unwrap().instances.len(), 3);
    let report = node.shutdown().await;
    assert_eq!(report.unhandled(), 0, "{report}");
}

/// A module context's `cast` (routed by the sender's index) follows the same
/// rule: fault instance 2 sends to `kv` instance `2 % 2 = 0`; scaling `kv` up
/// to 3 instances does not move it to the new instance 2, so kv#0 holds the
/// whole sequence, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_contexts_sends_stay_put_when_the_target_scales_up() {
    use kv_proto::{Msg as KvMsg, Proto as KvProto, Reply as KvReply};
    let f = common::fixtures();
    let node = Node::start(
        common::config("scale-keeps-context-order", &[])
            .module(ModuleSpec::new("kv", &f.kv).instances(2))
            .module(ModuleSpec::new("fault", &f.fault).instances(3)),
    )
    .await
    .expect("node starts");
    let sender = node.module::<FaultProto>("fault").unwrap().on_instance(2);
    let forward = |seq: u64| Msg::Forward {
        module: "kv".into(),
        instance: None,
        key: "from-2".into(),
        value: String::new(),
        seq: Some(seq),
    };
    // The first send, handled before the scale: fault#2's context resolves
    // its lane to kv while kv runs 2 instances (2 % 2 = 0).
    sender.call(forward(0)).await.expect("first forward");
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (sender, stop) = (sender.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seq = 1;
            while !stop.load(Ordering::Relaxed) || seq < 2 * PER_PHASE {
                sender.cast(forward(seq)).expect("cast");
                seq += 1;
                if seq % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            seq
        })
    };
    node.admin().scale("kv", 3).await.expect("scale 2 -> 3");
    stop.store(true, Ordering::Relaxed);
    let sent = load.await.expect("sender");
    // Answered once fault#2 has sent everything before it on to kv.
    assert_eq!(tag(&sender).await, "");
    let kv = node.module::<KvProto>("kv").unwrap();
    let stream = |i: usize| {
        let h = kv.on_instance(i);
        async move {
            match h
                .call(KvMsg::Stream {
                    stream: "from-2".into(),
                })
                .await
                .unwrap()
            {
                KvReply::Stream(s) => s,
                other => panic!("unexpected reply {other:?}"),
            }
        }
    };
    let expected: Vec<u64> = (0..sent).collect();
    assert_sequence(&stream(0).await, &expected, "kv#0 has it all, in order");
    assert_eq!(
        stream(2).await,
        Vec::<u64>::new(),
        "nothing moved to the new instance"
    );
    node.shutdown().await;
}
