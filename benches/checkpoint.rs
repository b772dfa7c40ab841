//! What checkpoints cost (docs/semantics.md "Restarts and checkpoints"): the
//! time of one checkpoint (the instance's snapshot between messages, from the
//! `molt_checkpoint_seconds` histogram) for 1 KiB, 64 KiB and 4 MiB states, and
//! cast throughput with checkpoints every second vs off, on the `kv` example
//! module (release build).
//!
//! Run: `cargo bench --bench checkpoint` (prints a table; BENCHMARKS.md
//! records it).

use std::time::{Duration, Instant};

use kv_proto::{Msg, Proto};
use molt::cargo_build::{build, BuildRequest};
use molt::{ModuleHandle, ModuleSpec, Node, NodeConfig};

const CASTS: u64 = 1_000_000;
const ROUNDS: usize = 3;

struct Case {
    name: &'static str,
    records: usize,
    value_len: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "1 KiB, 20 records",
        records: 20,
        value_len: 40,
    },
    Case {
        name: "64 KiB, 1.3k records",
        records: 1_300,
        value_len: 40,
    },
    Case {
        name: "4 MiB, 85k records",
        records: 85_000,
        value_len: 40,
    },
];

/// `molt_checkpoint_seconds` sum and count for module kv, from the recorder.
async fn checkpoint_histogram(node: &Node) -> (f64, u64) {
    let status = node.status().await.unwrap();
    let text = molt::metrics::render(&status).expect("molt's recorder");
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("module=\"kv\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("molt_checkpoint_seconds_sum"),
        value("molt_checkpoint_seconds_count") as u64,
    )
}

async fn start(
    lib: &std::path::Path,
    interval: Duration,
    records: usize,
) -> (Node, ModuleHandle<Proto>) {
    let mut config = NodeConfig::new(format!(
        "bench-checkpoint-{records}-{}",
        interval.as_millis()
    ))
    .module(ModuleSpec::new("kv", lib));
    config.limits.checkpoint_interval = interval;
    let node = Node::start(config).await.unwrap();
    let kv = node.module::<Proto>("kv").unwrap();
    (node, kv)
}

async fn fill(kv: &ModuleHandle<Proto>, case: &Case) {
    for i in 0..case.records {
        kv.cast(Msg::Put {
            key: format!("key-{i:08}"),
            value: "x".repeat(case.value_len),
        })
        .unwrap();
    }
    kv.call(Msg::Version).await.unwrap();
}

/// `CASTS` small puts (one hot key), then a call: the time until all are handled.
async fn casts(kv: &ModuleHandle<Proto>) -> Duration {
    let t = Instant::now();
    for i in 0..CASTS {
        kv.cast(Msg::Put {
            key: "hot".into(),
            value: if i % 2 == 0 { "a".into() } else { "b".into() },
        })
        .unwrap();
    }
    kv.call(Msg::Version).await.unwrap();
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    molt::metrics::install();
    let root = molt::workspace_dir();
    eprintln!("building kv (release)...");
    let libs = build(&BuildRequest {
        manifest: root.join("Cargo.toml"),
        packages: vec!["kv".into()],
        release: true,
        target_dir: None,
        progress: false,
    })
    .expect("build the kv library");
    let kv_lib = molt::cargo_build::library_of(&libs, "kv").unwrap();

    println!("| state | one checkpoint (mean) | checkpoints | casts/s, checkpoints every 1 s | casts/s, off | change |");
    println!("|---|---|---|---|---|---|");
    for case in CASES {
        // One checkpoint: a 20 ms interval under a stream of casts, so many
        // are taken; the histogram's mean over this case.
        let (node, kv) = start(&kv_lib, Duration::from_millis(20), case.records).await;
        fill(&kv, case).await;
        let (sum0, n0) = checkpoint_histogram(&node).await;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            for _ in 0..1_000 {
                kv.cast(Msg::Put {
                    key: "hot".into(),
                    value: "v".into(),
                })
                .unwrap();
            }
            kv.call(Msg::Version).await.unwrap();
        }
        let (sum1, n1) = checkpoint_histogram(&node).await;
        node.shutdown().await;
        let n = n1.saturating_sub(n0);
        let mean_us = if n == 0 {
            0.0
        } else {
            (sum1 - sum0) / n as f64 * 1e6
        };

        let mut rates = Vec::new();
        for interval in [Duration::from_secs(1), Duration::ZERO] {
            let (node, kv) = start(&kv_lib, interval, case.records).await;
            fill(&kv, case).await;
            let mut times = Vec::new();
            for _ in 0..ROUNDS {
                times.push(casts(&kv).await);
            }
            node.shutdown().await;
            rates.push(CASTS as f64 / median(times).as_secs_f64() / 1e6);
        }
        println!(
            "| {} | {:.0} µs | {} | {:.2} M | {:.2} M | {:+.1} % |",
            case.name,
            mean_us,
            n,
            rates[0],
            rates[1],
            (rates[0] / rates[1] - 1.0) * 100.0
        );
    }
}
