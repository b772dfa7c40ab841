//! How long a reload keeps an instance from serving (the swap pause), next to
//! the raw cost of what it must do anyway: encode the state with rmp-serde and
//! decode it again, measured in the same run on the same data. Also the
//! library load time (copy + dlopen + layout check).
//!
//! Run: `cargo bench --bench reload_pause` (prints a table; BENCHMARKS.md
//! records it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kv_proto::{Msg, Proto};
use molt::cargo_build::{build, BuildRequest};
use molt::{ModuleSpec, Node, NodeConfig, ReloadOptions};

const ROUNDS: usize = 15;

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
    Case {
        name: "4 MiB, one blob",
        records: 1,
        value_len: 4 << 20,
    },
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn state_of(case: &Case) -> BTreeMap<String, String> {
    (0..case.records)
        .map(|i| (format!("key-{i:08}"), "x".repeat(case.value_len)))
        .collect()
}

/// encode + decode of the same map, as rmp-serde does it in the module.
fn raw_cost(state: &BTreeMap<String, String>) -> Duration {
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let bytes = rmp_serde::to_vec_named(state).unwrap();
        let back: BTreeMap<String, String> = rmp_serde::from_slice(&bytes).unwrap();
        times.push(t.elapsed());
        assert_eq!(back.len(), state.len());
    }
    median(times)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = molt::workspace_dir();
    eprintln!("building kv and kv-v2 (release)...");
    let libs = build(&BuildRequest {
        manifest: root.join("Cargo.toml"),
        packages: vec!["kv".into(), "kv-v2".into()],
        release: true,
        target_dir: None,
        progress: false,
    })
    .expect("build the kv libraries");
    let lib = |p: &str| molt::cargo_build::library_of(&libs, p).unwrap();
    let (v1, v2) = (lib("kv"), lib("kv_v2"));
    let v1_size = std::fs::metadata(&v1).unwrap().len();

    println!("| state | raw encode+decode | pause, round trip on | ratio | pause, round trip off | ratio |");
    println!("|---|---|---|---|---|---|");
    let mut loads = Vec::new();
    for case in CASES {
        let state = state_of(case);
        let raw = raw_cost(&state);
        let mut row = vec![format!("{:.0} µs", us(raw))];
        for round_trip in [true, false] {
            let mut config = NodeConfig::new(format!("bench-{}-{round_trip}", case.records))
                .module(ModuleSpec::new("kv", &v1));
            config.limits.verify_round_trip = round_trip;
            let node = Node::start(config).await.unwrap();
            let kv = node.module::<Proto>("kv").unwrap();
            for (k, v) in &state {
                kv.cast(Msg::Put {
                    key: k.clone(),
                    value: v.clone(),
                })
                .unwrap();
            }
            kv.call(Msg::Version).await.unwrap();
            let mut pauses = Vec::new();
            for _ in 0..ROUNDS {
                // v1 -> v1 (a new copy of the same library): the same
                // state layout on both sides, like the raw measurement.
                let r = node
                    .reload("kv", ReloadOptions::library(&v1))
                    .await
                    .unwrap();
                pauses.push(r.max_pause());
                loads.push(Duration::from_micros(r.load_us));
            }
            let pause = median(pauses);
            row.push(format!("{:.0} µs", us(pause)));
            row.push(format!("{:.2}×", us(pause) / us(raw)));
            node.shutdown().await;
        }
        println!("| {} | {} |", case.name, row.join(" | "));
    }
    let load = median(loads.clone());
    loads.sort();
    println!();
    println!(
        "library load (copy {:.0} KiB + dlopen + layout check): median {:.0} µs, max {:.0} µs over {} loads; mapped libraries now: {}",
        v1_size as f64 / 1024.0,
        us(load),
        us(*loads.last().unwrap()),
        loads.len(),
        molt::mapped_libraries()
    );
    let _ = v2;
}
