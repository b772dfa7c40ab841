//! How long a reload keeps an instance from serving (the swap pause), next to
//! the raw cost of what it must do anyway: encode the state with rmp-serde and
//! decode it again, measured in the same process on the same data,
//! interleaved: every round measures the raw cost and one reload with the
//! verify round trip on (the default) and one with it off, in an order that
//! alternates from round to round, and the ratio pause / raw is taken per
//! round (a round shares the moment's load). Reported: the median of those
//! ratios and their interquartile range; the per-phase breakdown of the
//! default reload (medians of the `module.reload_phase` events; "rest" is the
//! median of each round's pause minus its phases: the commit, resuming the
//! mailbox; the events are published after the pause). `kv` declares no
//! `verify` of its own; the last case reloads `kv_v2`, which has one (its
//! swap hands it to the blocking pool), onto a new copy of itself (its raw
//! cost is still that of the `kv` state's map).
//! Also the library load time (copy + dlopen + layout check).
//!
//! Run: `cargo bench --bench reload_pause` (prints tables; BENCHMARKS.md
//! records them). `MOLT_BENCH_ROUNDS=n` sets the counted rounds;
//! `MOLT_BENCH_CASES=1KiB` runs only the cases whose name (spaces removed)
//! contains that text (for a profiler: many rounds of one case).

#[path = "support/side_by_side.rs"]
#[allow(dead_code, unused_imports, unused_macros)]
mod side_by_side;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kv_proto::{Msg, Proto};
use molt::cargo_build::{build, BuildRequest};
use molt::{Event, EventStream, ModuleSpec, Node, NodeConfig, Phase, ReloadOptions};

struct Case {
    name: &'static str,
    records: usize,
    value_len: usize,
    /// The library reloaded onto a new copy of itself: `kv` declares no
    /// `verify` of its own, `kv_v2` has one (its swap hands it over).
    library: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "1 KiB, 20 records",
        records: 20,
        value_len: 40,
        library: "kv",
    },
    Case {
        name: "64 KiB, 1.3k records",
        records: 1_300,
        value_len: 40,
        library: "kv",
    },
    Case {
        name: "1 MiB, 21k records",
        records: 21_000,
        value_len: 40,
        library: "kv",
    },
    Case {
        name: "4 MiB, 85k records",
        records: 85_000,
        value_len: 40,
        library: "kv",
    },
    Case {
        name: "4 MiB, one blob",
        records: 1,
        value_len: 4 << 20,
        library: "kv",
    },
    Case {
        name: "1 KiB, 20 records, own verify",
        records: 20,
        value_len: 40,
        library: "kv-v2",
    },
];

/// The phases an instance reports, in order.
const PHASES: [Phase; 4] = [Phase::Snapshot, Phase::Migrate, Phase::Swap, Phase::Verify];

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
    let t = Instant::now();
    let bytes = rmp_serde::to_vec_named(state).unwrap();
    let back: BTreeMap<String, String> = rmp_serde::from_slice(&bytes).unwrap();
    let took = t.elapsed();
    assert_eq!(back.len(), state.len());
    took
}

/// The `p` quantile of sorted `v`, linearly interpolated.
fn quantile(v: &[f64], p: f64) -> f64 {
    let at = p * (v.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (at - lo as f64)
}

/// Median and IQR of `v`.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (quantile(&v, 0.5), quantile(&v, 0.25), quantile(&v, 0.75))
}

/// A node serving `kv` with `state`, the round trip on or off.
async fn node_with(
    v1: &std::path::Path,
    state: &BTreeMap<String, String>,
    round_trip: bool,
) -> Node {
    let mut config = NodeConfig::new(format!("bench-{}-{round_trip}", state.len()))
        .module(ModuleSpec::new("kv", v1));
    config.limits.verify_round_trip = round_trip;
    let node = Node::start(config).await.unwrap();
    let kv = node.module::<Proto>("kv").unwrap();
    for (k, v) in state {
        kv.cast(Msg::Put {
            key: k.clone(),
            value: v.clone(),
        })
        .unwrap();
    }
    kv.call(Msg::Version).await.unwrap();
    node
}

/// One reload of `kv` to a new copy of `v1` (the same state layout on both
/// sides, like the raw measurement): its pause, load time and per-phase
/// times (from the events, in `PHASES` order).
async fn reload(
    node: &Node,
    events: &mut EventStream,
    v1: &std::path::Path,
) -> (Duration, Duration, [f64; 4]) {
    let r = node.reload("kv", ReloadOptions::library(v1)).await.unwrap();
    let mut phases = [0.0; 4];
    let mut seen = 0;
    while seen < PHASES.len() {
        let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(5), events.next_event()).await
        else {
            break;
        };
        if let Event::ReloadPhase {
            phase,
            took_us,
            instance: Some(_),
            ..
        } = event
        {
            if let Some(i) = PHASES.iter().position(|p| *p == phase) {
                phases[i] = took_us as f64;
                seen += 1;
            }
        }
    }
    (r.max_pause(), Duration::from_micros(r.load_us), phases)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = molt::workspace_dir();
    eprintln!("building kv and kv_v2 (release)...");
    let libs = build(&BuildRequest {
        manifest: root.join("Cargo.toml"),
        packages: vec!["kv".into(), "kv-v2".into()],
        release: true,
        target_dir: None,
        progress: false,
    })
    .expect("build the kv library");
    let library = |name: &str| molt::cargo_build::library_of(&libs, name).unwrap();
    let v1 = library("kv");
    let v1_size = std::fs::metadata(&v1).unwrap().len();
    let rounds = side_by_side::rounds();
    let load_before = side_by_side::load_average();

    let mut table = vec![
        "| state | raw encode+decode | pause, round trip on (default) | pause / raw: median (IQR) | pause, round trip off | pause / raw: median (IQR) |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    let mut breakdown = vec![
        "| state | pause | snapshot | migrate | swap | verify | rest |".to_string(),
        "|---|---|---|---|---|---|---|".to_string(),
    ];
    let mut loads = Vec::new();
    let only = std::env::var("MOLT_BENCH_CASES").unwrap_or_default();
    for case in CASES
        .iter()
        .filter(|c| c.name.replace(' ', "").contains(&only))
    {
        let state = state_of(case);
        let v1 = library(case.library);
        let on = node_with(&v1, &state, true).await;
        let off = node_with(&v1, &state, false).await;
        let (mut ev_on, mut ev_off) = (
            on.subscribe().with_progress(true),
            off.subscribe().with_progress(true),
        );
        let (mut raws, mut pauses_on, mut pauses_off) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ratios_on, mut ratios_off) = (Vec::new(), Vec::new());
        let mut phases: Vec<[f64; 4]> = Vec::new();
        let mut rests = Vec::new();
        for round in side_by_side::schedule(rounds) {
            // The order alternates: raw first, then on, off; next round off,
            // on, raw.
            let (raw, (p_on, l_on, ph), (p_off, l_off, _)) = if round.molt_first {
                let raw = raw_cost(&state);
                let a = reload(&on, &mut ev_on, &v1).await;
                let b = reload(&off, &mut ev_off, &v1).await;
                (raw, a, b)
            } else {
                let b = reload(&off, &mut ev_off, &v1).await;
                let a = reload(&on, &mut ev_on, &v1).await;
                (raw_cost(&state), a, b)
            };
            if !round.counted {
                continue;
            }
            raws.push(raw);
            pauses_on.push(p_on);
            pauses_off.push(p_off);
            ratios_on.push(us(p_on) / us(raw));
            ratios_off.push(us(p_off) / us(raw));
            rests.push(us(p_on) - ph.iter().sum::<f64>());
            phases.push(ph);
            loads.extend([l_on, l_off]);
        }
        on.shutdown().await;
        off.shutdown().await;
        let (r_on, q1_on, q3_on) = spread(ratios_on);
        let (r_off, q1_off, q3_off) = spread(ratios_off);
        let pause_on = side_by_side::median(pauses_on);
        table.push(format!(
            "| {} | {:.0} µs | {:.0} µs | {r_on:.2}× ({q1_on:.2}–{q3_on:.2}) | {:.0} µs | {r_off:.2}× ({q1_off:.2}–{q3_off:.2}) |",
            case.name,
            us(side_by_side::median(raws)),
            us(pause_on),
            us(side_by_side::median(pauses_off)),
        ));
        let per_phase: Vec<f64> = (0..PHASES.len())
            .map(|i| spread(phases.iter().map(|p| p[i]).collect()).0)
            .collect();
        let rest = spread(rests).0;
        breakdown.push(format!(
            "| {} | {:.0} µs | {} | {rest:.0} µs |",
            case.name,
            us(pause_on),
            per_phase
                .iter()
                .map(|p| format!("{p:.0} µs"))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    for line in &table {
        println!("{line}");
    }
    println!();
    println!("Breakdown of the default reload (round trip on), medians:");
    println!();
    for line in &breakdown {
        println!("{line}");
    }
    println!();
    println!(
        "{rounds} counted rounds after {} warm-up round(s); per round raw, round trip on and off back to back, the order alternating; load average {load_before} before, {} after",
        side_by_side::WARMUP_ROUNDS,
        side_by_side::load_average()
    );
    let load = side_by_side::median(loads.clone());
    loads.sort();
    println!(
        "library load (copy {:.0} KiB + dlopen + layout check): median {:.0} µs, max {:.0} µs over {} loads; mapped libraries now: {}",
        v1_size as f64 / 1024.0,
        us(load),
        us(*loads.last().unwrap()),
        loads.len(),
        molt::mapped_libraries()
    );
}
