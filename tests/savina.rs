//! The Savina benchmark modules (`modules/savina/`, run by `benches/savina.rs`)
//! with small parameters: each message flow ends with the right result, and
//! a second run on the same instances does too.

use std::time::Duration;

use molt::{Event, EventStream};

#[path = "../benches/support/savina_node.rs"]
mod savina_node;
use savina_proto::{counting, forkjoin, pingpong, ring};

async fn published(events: &mut EventStream, topic: &str) -> String {
    let wait = async {
        loop {
            match events.next_event().await {
                Some(Event::Published { topic: t, json, .. }) if t == topic => return json,
                Some(_) => continue,
                None => panic!("the node stopped while waiting for {topic}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("no {topic} within 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savina_modules_compute_the_savina_results() {
    let node = savina_node::start("savina-test", false, 5, 3).await;
    let mut events = node.subscribe();
    let pinger = node
        .module::<pingpong::PingerProto>(pingpong::PINGER)
        .unwrap();
    let producer = node
        .module::<counting::ProducerProto>(counting::PRODUCER)
        .unwrap();
    let ring = node.module::<ring::RingProto>(ring::RING).unwrap();
    let worker = node
        .module::<forkjoin::WorkerProto>(forkjoin::WORKER)
        .unwrap();

    for run in 0..2 {
        pinger
            .cast(pingpong::PingerMsg::Start { pings: 10 + run })
            .unwrap();
        assert_eq!(
            published(&mut events, pingpong::DONE).await,
            (10 + run).to_string()
        );

        producer
            .cast(counting::ProducerMsg::Start { count: 1000 })
            .unwrap();
        assert_eq!(published(&mut events, counting::DONE).await, "1000");

        // 12 hops from instance 0 in a ring of 5 stop at 2; the exit lap
        // ends one before, at 1. From instance 3: at 0, ended by 4.
        for (start, stopped, last) in [(0, 2, 1), (3, 0, 4)] {
            ring.on_instance(start)
                .cast(ring::RingMsg::Ping {
                    hops_left: 12,
                    ring: 5,
                })
                .unwrap();
            let done: ring::Done =
                serde_json::from_str(&published(&mut events, ring::DONE).await).unwrap();
            assert_eq!(
                done,
                ring::Done {
                    token_stopped_at: stopped,
                    instance: last
                }
            );
        }

        let workers: Vec<_> = (0..3).map(|i| worker.on_instance(i)).collect();
        for w in &workers {
            w.cast(forkjoin::WorkerMsg::Expect { messages: 20 })
                .unwrap();
        }
        for _ in 0..20 {
            for w in &workers {
                w.cast(forkjoin::WorkerMsg::Work).unwrap();
            }
        }
        let mut done: Vec<String> = Vec::new();
        for _ in 0..3 {
            done.push(published(&mut events, forkjoin::DONE).await);
        }
        done.sort();
        assert_eq!(done, ["0", "1", "2"]);
    }
    node.shutdown().await;
}
