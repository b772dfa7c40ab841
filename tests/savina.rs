//! The Savina benchmark modules (`modules/savina/`, run by `benches/savina.rs`)
//! with small parameters: each message flow ends with the right result, and
//! a second run on the same instances does too.

use std::time::Duration;

use molt::cargo_build::{build, BuildRequest};
use molt::{Event, EventStream, ModuleSpec, Node, NodeConfig};
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
    let packages = [
        "savina-pinger",
        "savina-ponger",
        "savina-producer",
        "savina-counter",
        "savina-ring",
        "savina-fj-worker",
    ];
    let libs = build(&BuildRequest {
        manifest: molt::workspace_dir().join("Cargo.toml"),
        packages: packages.iter().map(|p| p.to_string()).collect(),
        release: false,
        target_dir: None,
        progress: false,
    })
    .expect("build the savina modules");
    let lib = |package: &str| {
        molt::cargo_build::library_of(&libs, package).unwrap_or_else(|e| panic!("{e}"))
    };
    let node = Node::start(
        NodeConfig::new("savina-test")
            .module(ModuleSpec::new(pingpong::PINGER, lib("savina-pinger")))
            .module(ModuleSpec::new(pingpong::PONGER, lib("savina-ponger")))
            .module(ModuleSpec::new(counting::PRODUCER, lib("savina-producer")))
            .module(ModuleSpec::new(counting::COUNTER, lib("savina-counter")))
            .module(ModuleSpec::new(ring::RING, lib("savina-ring")).instances(5))
            .module(ModuleSpec::new(forkjoin::WORKER, lib("savina-fj-worker")).instances(3)),
    )
    .await
    .expect("start the node");
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
