//! Guarantee: no message is lost, duplicated or reordered across a reload,
//! whether it commits or rolls back; calls made during a reload get replies.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kv_proto::{Msg, Proto, Reply};
use molt::{Event, ModuleSpec, ReloadOptions};
use serde_json::json;

const SENDERS: u64 = 4;
const PER_SENDER_MIN: u64 = 25_000;
const RELOADS_MIN: u32 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_zero_loss_100k_messages_4_senders_20_reloads() {
    let f = common::fixtures();
    let node = common::start("zero-loss", ModuleSpec::new("kv", &f.kv)).await;
    let reloads = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // Senders: casts with per-sender sequence numbers, paced by a call every
    // 256 messages (the reply also proves calls are answered mid-reload).
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let kv = node.module::<Proto>("kv").unwrap();
        let (reloads, stop) = (reloads.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let stream = format!("sender-{s}");
            let mut seq = 0u64;
            let mut calls = 0u64;
            while seq < PER_SENDER_MIN || reloads.load(Ordering::Relaxed) < RELOADS_MIN {
                kv.cast(Msg::Push {
                    stream: stream.clone(),
                    seq,
                })
                .expect("cast is accepted");
                seq += 1;
                if seq % 256 == 0 {
                    let reply = kv.call(Msg::Version).await.expect("a call gets its reply");
                    assert!(matches!(reply, Reply::Version { .. }));
                    calls += 1;
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            (stream, seq, calls)
        }));
    }

    // Reloader: upgrade to v2, roll back to v1 (down-migration), reload the
    // same version again, and one rejected library, over and over.
    let mut committed = 0u32;
    let mut rejected = 0u32;
    let mut cycle = 0u32;
    while senders.iter().any(|h| !h.is_finished()) {
        let result = match cycle % 4 {
            0 => node.reload("kv", ReloadOptions::library(&f.kv_v2)).await,
            1 => node.reload("kv", ReloadOptions::library(&f.kv_v2)).await, // v2 → v2
            2 => node.rollback("kv", false).await,                          // v2 → v1
            _ => node.reload("kv", ReloadOptions::library(&f.counter)).await, // rejected
        };
        match (cycle % 4, result) {
            (3, Err(molt::Error::Load { .. })) => rejected += 1,
            (3, other) => panic!("the counter library must be rejected for kv: {other:?}"),
            (_, Ok(_)) => {
                committed += 1;
                reloads.store(committed, Ordering::Relaxed);
            }
            (_, Err(e)) => panic!("reload {cycle} failed: {e}"),
        }
        cycle += 1;
        if committed > 200 {
            stop.store(true, Ordering::Relaxed);
        }
    }

    let kv = node.module::<Proto>("kv").unwrap();
    let mut total = 0u64;
    for h in senders {
        let (stream, sent, calls) = h.await.expect("sender task");
        assert!(calls > 0);
        total += sent;
        let Reply::Stream(held) = kv
            .call(Msg::Stream {
                stream: stream.clone(),
            })
            .await
            .unwrap()
        else {
            panic!("unexpected reply")
        };
        // Complete, in order, no duplicates: exactly 0..sent.
        let expected: Vec<u64> = (0..sent).collect();
        if held != expected {
            let lost = expected.iter().filter(|s| !held.contains(s)).count();
            panic!(
                "{stream}: sent {sent}, module holds {} (lost {lost}, first difference at {:?})",
                held.len(),
                held.iter().zip(&expected).position(|(a, b)| a != b)
            );
        }
    }
    assert!(total >= SENDERS * PER_SENDER_MIN, "sent {total}");
    assert!(
        committed >= RELOADS_MIN,
        "only {committed} reloads committed"
    );
    assert!(rejected >= 1);
    let history = node.history().await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|h| h.outcome == molt::Outcome::Committed)
            .count() as u32,
        committed
    );
    node.shutdown().await;
}

/// Calls sent while the instance is inside its reload wait in the mailbox
/// and are answered, in order, by the code the reload leaves serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_during_a_reload_get_their_replies() {
    use common::fault_proto::{Msg as FMsg, Reply as FReply};
    let f = common::fixtures();
    let node = common::start(
        "calls-during-reload",
        ModuleSpec::new("fault", &f.fault).config(json!({ "tag": "old" })),
    )
    .await;
    let fault = node.module::<common::FaultProto>("fault").unwrap();
    for v in 0..10 {
        fault.cast(FMsg::Push(v)).unwrap();
    }
    let mut events = node.subscribe();

    // The new code's migrate hangs until this file exists: the reload stays
    // in flight until the calls below are queued.
    let scratch = common::scratch_dir();
    let release = scratch.path().join("release");
    let hang =
        json!({ "HangUntil": { "release": release.display().to_string(), "max_ms": 120_000 } });
    let admin = node.admin();
    let lib = f.fault.clone();
    let reload = tokio::spawn(async move {
        admin
            .reload(
                "fault",
                ReloadOptions::library(lib).with_config(json!({
                    "tag": "new",
                    "fault": { "at": "Migrate", "how": hang }
                })),
            )
            .await
    });
    // Wait until the instance is inside its reload, then call and cast.
    loop {
        match common::next_event(&mut events, "module.published").await {
            Event::Published { topic, .. } if topic == "fault.migrating" => break,
            _ => continue,
        }
    }
    let mut calls = Vec::new();
    for v in 10..20 {
        fault.cast(FMsg::Push(v)).unwrap();
        let h = fault.clone();
        calls.push(tokio::spawn(async move { h.call(FMsg::Tag).await }));
    }
    // Every call is queued behind the reload's `Swap` once the mailbox
    // depth says so; then the migrate may end.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while node
        .status()
        .await
        .unwrap()
        .module("fault")
        .unwrap()
        .instances[0]
        .mailbox_depth
        < 20
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the calls were not queued within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    std::fs::write(&release, b"").unwrap();
    let report = reload.await.unwrap().expect("the reload commits");
    assert_eq!(report.to, "1.0.0");
    for c in calls {
        assert_eq!(
            c.await
                .unwrap()
                .expect("a call made during the reload gets its reply"),
            FReply::Tag("new".into()),
            "queued calls are handled by the new code after the swap"
        );
    }
    let FReply::Log(log) = fault.call(FMsg::Get).await.unwrap() else {
        panic!("unexpected reply")
    };
    assert_eq!(
        log,
        (0..20).collect::<Vec<i64>>(),
        "nothing lost or reordered"
    );
    node.shutdown().await;
}
