//! Keyed actors: the cost of a keyed actor next to what it replaces (issue
//! #11 §3), and a reload with 10,000 live actors (issue #9 §3).
//!
//! Side by side, interleaved (the method of `support/side_by_side.rs`:
//! warm-up, then rounds running both sides back to back, the first side
//! alternating; the median and spread of the per-round ratios):
//! - `activate`: the first call to a new key of the keyed `cart` module
//!   (spawn, `init`, `start`, the first checkpoint, the call handled and
//!   answered) against spawning a plain ractor actor whose `pre_start` builds
//!   the same state (an empty cart) and calling it once with the same work
//!   (the cart's `Push`: append to its log, answer). Each side makes
//!   [`ACTIVATIONS`] new actors per round, and both keep them live until the
//!   bench ends (an activated key stays live: its idle time here is an
//!   hour), so both sides grow their heaps alike. `MOLT_BENCH_PLAIN_STOP=1`
//!   stops the plain actors after each round's clock instead, as the row
//!   did before 2026-11-30 (the baseline then reuses one round's memory in
//!   the next, while the keys' memory grows: glibc grows a worker thread's
//!   heap one `mprotect` at a time, BENCHMARKS.md "Keyed activation after
//!   lazy figures").
//! - `cast`: [`CASTS`] casts of the cart's `Add` to one live key of the keyed
//!   module, against the same casts to the one instance of the same library
//!   run as a plain (pool) module; each run ends with one call (`Items`)
//!   that waits for them. Molt on both sides: the row measures what the key
//!   costs per message.
//! - `call`: [`CALLS`] calls of `Add` the same way (round trips).
//!
//! Then, once, a reload of the keyed module with [`LIVE`] live actors under
//! load (per-actor pause p50/p99, whole reload time, messages lost: must be
//! 0), on a node of its own.
//!
//! Run: `cargo bench --bench keyed` (prints the tables; BENCHMARKS.md
//! records them). `MOLT_BENCH_ROUNDS`, `MOLT_BENCH_SIDE` and
//! `MOLT_BENCH_ROWS` (`activate`, `cast`, `call`, `reload`) as in
//! `support/side_by_side.rs`; with `MOLT_BENCH_SIDE=molt` the keyed side
//! runs alone, with `ractor` the plain / pool side.
//! `MOLT_BENCH_DRIVER=task` runs the side-by-side rows in a task on a
//! runtime worker instead of on the main thread (`block_on`): the plain
//! side then spawns its actors from a worker, as molt activates its keys
//! (glibc gives each thread its own heap, and a worker's grows one
//! `mprotect` at a time, the main thread's by 128 KiB `brk` steps).
//! `MOLT_BENCH_CHECKPOINT_MS` sets `limits.checkpoint_interval` of the
//! side-by-side nodes (default: the node default, 1 s; `0` turns periodic
//! checkpoints off, to see what scheduling them costs an activation).

#[path = "support/side_by_side.rs"]
#[allow(dead_code)] // the ratio cells here are costs (`cost_cells`)
mod side_by_side;
use side_by_side::{both, Pair};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cart_proto::{Msg, Proto, Reply, Seqs};
use molt::cargo_build::{build, BuildRequest};
use molt::{KeyedSpec, ModuleHandle, ModuleSpec, Node, NodeConfig, ReloadOptions};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

const LIVE: usize = 10_000;
const LOADERS: usize = 2;
/// New actors per side per round in the `activate` row.
const ACTIVATIONS: usize = 2_000;
/// Casts per side per round in the `cast` row.
const CASTS: u64 = 200_000;
/// Calls per side per round in the `call` row.
const CALLS: u64 = 20_000;

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A plain ractor actor doing what one cart does on activation and on
/// `Push`: the baseline of the `activate` row.
struct PlainCart;

/// The cart's state (`modules/cart`): what `init` builds.
#[derive(Default)]
struct CartState {
    items: std::collections::BTreeMap<String, u32>,
    seqs: Vec<u64>,
}

enum PlainMsg {
    /// The cart's `Push`: appends, answers.
    Push(u64, RpcReplyPort<()>),
}

// ractor's `cluster` feature (on in molt by default) removes its
// blanket `Message` impl: a plain actor's message type says it is one.
#[cfg(feature = "cluster")]
impl ractor::Message for PlainMsg {}

impl Actor for PlainCart {
    type Msg = PlainMsg;
    type State = CartState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<PlainMsg>,
        _: (),
    ) -> Result<CartState, ActorProcessingErr> {
        Ok(CartState::default())
    }

    async fn handle(
        &self,
        _: ActorRef<PlainMsg>,
        msg: PlainMsg,
        st: &mut CartState,
    ) -> Result<(), ActorProcessingErr> {
        let PlainMsg::Push(seq, reply) = msg;
        st.seqs.push(seq);
        std::hint::black_box(&st.items);
        let _ = reply.send(());
        Ok(())
    }
}

/// `n` first calls to new keys (made before the clock starts).
async fn activate_keys(carts: &ModuleHandle<Proto>, round: usize) -> Duration {
    let keys: Vec<_> = (0..ACTIVATIONS)
        .map(|k| carts.key(format!("r{round}-k{k}")))
        .collect();
    let t = Instant::now();
    for cart in &keys {
        cart.call(Msg::Push { seq: 0 }).await.unwrap();
    }
    t.elapsed()
}

/// `n` plain actors spawned and called once, kept in `live` (after the
/// clock); stopped at once instead with `MOLT_BENCH_PLAIN_STOP=1`.
async fn spawn_plain(live: &mut Vec<ActorRef<PlainMsg>>) -> Duration {
    let mut refs = Vec::with_capacity(ACTIVATIONS);
    let t = Instant::now();
    for _ in 0..ACTIVATIONS {
        let (actor, _join) = Actor::spawn(None, PlainCart, ()).await.unwrap();
        ractor::call!(actor, PlainMsg::Push, 0).unwrap();
        refs.push(actor);
    }
    let d = t.elapsed();
    if plain_stop() {
        for a in refs {
            a.stop(None);
        }
    } else {
        live.append(&mut refs);
    }
    d
}

/// `MOLT_BENCH_PLAIN_STOP=1`: the `activate` row's plain actors stop after
/// each round's clock (the row before 2026-11-30).
fn plain_stop() -> bool {
    std::env::var("MOLT_BENCH_PLAIN_STOP").is_ok_and(|v| v == "1")
}

fn add() -> Msg {
    Msg::Add {
        item: "tea".into(),
        qty: 1,
    }
}

/// [`CASTS`] casts of `Add` through `h`, then one call that waits for them.
async fn casts(h: &ModuleHandle<Proto>) -> Duration {
    let t = Instant::now();
    for _ in 0..CASTS {
        h.cast(add()).unwrap();
    }
    let Reply::Items(_) = h.call(Msg::Items).await.unwrap() else {
        panic!("Items answers Items");
    };
    t.elapsed()
}

/// [`CALLS`] calls of `Add` through `h`.
async fn calls(h: &ModuleHandle<Proto>) -> Duration {
    let t = Instant::now();
    for _ in 0..CALLS {
        h.call(add()).await.unwrap();
    }
    t.elapsed()
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// The interleaved rows, on a node of their own: a keyed `cart` and the
/// same library as a plain module.
async fn side_by_side_rows(v1: &std::path::Path) {
    let rounds = side_by_side::rounds();
    let load_before = side_by_side::load_average();
    let mut config =
        NodeConfig::new("bench-keyed-sbs").module(ModuleSpec::new("cart", v1).keyed(KeyedSpec {
            idle_passivate: Duration::from_secs(3600),
            max_live: ((side_by_side::WARMUP_ROUNDS + rounds) * ACTIVATIONS + 16) as u32,
        }));
    // The same library as a plain module (one instance), on a node of its
    // own: a module's name is its library's.
    let mut pool_config = NodeConfig::new("bench-keyed-pool").module(ModuleSpec::new("cart", v1));
    if let Some(ms) = std::env::var("MOLT_BENCH_CHECKPOINT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.limits.checkpoint_interval = Duration::from_millis(ms);
        pool_config.limits.checkpoint_interval = Duration::from_millis(ms);
        eprintln!("checkpoint_interval = {ms} ms");
    }
    let node = Node::start(config).await.unwrap();
    let pool_node = Node::start(pool_config).await.unwrap();
    let carts = node.module::<Proto>("cart").unwrap();
    let pool = pool_node.module::<Proto>("cart").unwrap();
    let live = carts.key("live");
    live.call(Msg::Items).await.unwrap();

    let rows = ["activate", "cast", "call"].map(side_by_side::selected);
    let (mut act, mut cast, mut call) = (Pair::default(), Pair::default(), Pair::default());
    // The `activate` row's plain actors, live until the row's end like the keys.
    let mut plain_live = Vec::new();
    for round in side_by_side::schedule(rounds) {
        let mut line = format!(
            "round {}{}:",
            round.index,
            if round.counted { "" } else { " (warm-up)" }
        );
        if rows[0] {
            let p = both!(
                round,
                activate_keys(&carts, round.index).await,
                spawn_plain(&mut plain_live).await
            );
            act.push(round, p);
            line += &format!(
                " activate {:.0} / {:.0} ms;",
                p.0.as_secs_f64() * 1e3,
                p.1.as_secs_f64() * 1e3
            );
        }
        if rows[1] {
            let p = both!(round, casts(&live).await, casts(&pool).await);
            cast.push(round, p);
            line += &format!(
                " cast {:.0} / {:.0} ms;",
                p.0.as_secs_f64() * 1e3,
                p.1.as_secs_f64() * 1e3
            );
        }
        if rows[2] {
            let p = both!(round, calls(&live).await, calls(&pool).await);
            call.push(round, p);
            line += &format!(
                " call {:.0} / {:.0} ms",
                p.0.as_secs_f64() * 1e3,
                p.1.as_secs_f64() * 1e3
            );
        }
        eprintln!("{line}");
    }
    println!("| what | keyed | baseline | keyed / baseline (median of rounds) | per round, min–max | per round, IQR | keyed's extra per op |");
    println!("|---|---|---|---|---|---|---|");
    if rows[0] {
        let s = act.summary();
        println!(
            "| activate a key (first call) vs spawn a plain ractor actor + first call, same work; {ACTIVATIONS} | {:.1} µs | {:.1} µs | {} | {:.1} µs |",
            us(s.molt) / ACTIVATIONS as f64,
            us(s.ractor) / ACTIVATIONS as f64,
            cost_cells(&s),
            us(s.molt.saturating_sub(s.ractor)) / ACTIVATIONS as f64,
        );
    }
    if rows[1] {
        let s = cast.summary();
        println!(
            "| cast to a live key vs to a pool instance (same library); {CASTS} | {:.2} M msg/s | {:.2} M msg/s | {} | {:.0} ns |",
            rate(CASTS, s.molt) / 1e6,
            rate(CASTS, s.ractor) / 1e6,
            cost_cells(&s),
            s.extra_ns(CASTS),
        );
    }
    if rows[2] {
        let s = call.summary();
        println!(
            "| call a live key vs a pool instance (same library); {CALLS} | {:.0} k/s | {:.0} k/s | {} | {:.0} ns |",
            rate(CALLS, s.molt) / 1e3,
            rate(CALLS, s.ractor) / 1e3,
            cost_cells(&s),
            s.extra_ns(CALLS),
        );
    }
    println!();
    println!(
        "cost ratios (keyed time / baseline time: 100 % costs the same; the targets: activate ≤ 200 %, cast ≤ 110 %); the activate row's plain actors {}. {}",
        if plain_stop() {
            "stop after each round (MOLT_BENCH_PLAIN_STOP=1)"
        } else {
            "stay live, as the keys do"
        },
        side_by_side::method_note(rounds, &load_before)
    );
    for a in plain_live {
        a.stop(None);
    }
    node.shutdown().await;
    pool_node.shutdown().await;
}

/// The ratio cells as costs (keyed time / baseline time), the inverse of
/// the throughput ratios `Summary` keeps: median, min–max, IQR.
fn cost_cells(s: &side_by_side::Summary) -> String {
    let inv = |r: f64| 1e4 / r;
    format!(
        "{:.0} % | {:.0}–{:.0} % | {:.0}–{:.0} %",
        inv(s.ratio),
        inv(s.max),
        inv(s.min),
        inv(s.q3),
        inv(s.q1)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = molt::workspace_dir();
    eprintln!("building cart and cart-v2 (release)...");
    let libs = build(&BuildRequest {
        manifest: root.join("Cargo.toml"),
        packages: vec!["cart".into(), "cart-v2".into()],
        release: true,
        target_dir: None,
        progress: false,
    })
    .expect("build the cart libraries");
    let lib = |p: &str| molt::cargo_build::library_of(&libs, p).unwrap();
    let (v1, v2) = (lib("cart"), lib("cart_v2"));
    if ["activate", "cast", "call"]
        .iter()
        .any(|r| side_by_side::selected(r))
    {
        if std::env::var("MOLT_BENCH_DRIVER").is_ok_and(|v| v == "task") {
            // On a runtime worker, as an application's request handler
            // would be: both sides then allocate in a worker thread's heap.
            let v1 = v1.clone();
            tokio::spawn(async move { side_by_side_rows(&v1).await })
                .await
                .unwrap();
        } else {
            side_by_side_rows(&v1).await;
        }
    }
    if side_by_side::selected("reload") {
        println!();
        reload_row(&v1, &v2).await;
    }
}

/// The reload of a keyed module with [`LIVE`] live actors under load
/// (issue #9 §3).
async fn reload_row(v1: &std::path::Path, v2: &std::path::Path) {
    let mut config =
        NodeConfig::new("bench-keyed").module(ModuleSpec::new("cart", v1).keyed(KeyedSpec {
            idle_passivate: Duration::from_secs(3600),
            max_live: (LIVE * 2) as u32,
        }));
    config.limits.prepare_timeout = Duration::from_secs(60);
    config.limits.decision_timeout = Duration::from_secs(60);
    let node = Node::start(config).await.unwrap();
    let carts = node.module::<Proto>("cart").unwrap();

    // Activation: the first call to a new key (spawn, init, start, reply).
    let mut activation = Vec::with_capacity(LIVE);
    for k in 0..LIVE {
        let cart = carts.key(format!("k{k}"));
        let t = Instant::now();
        cart.call(Msg::Push { seq: 0 }).await.unwrap();
        activation.push(t.elapsed());
    }
    // A call to a live key, for scale.
    let mut warm = Vec::with_capacity(LIVE);
    for k in 0..LIVE {
        let cart = carts.key(format!("k{k}"));
        let t = Instant::now();
        cart.call(Msg::Push { seq: 1 }).await.unwrap();
        warm.push(t.elapsed());
    }

    // Load: each loader owns every LOADERS-th key and casts Push with the
    // key's next sequence number, round robin, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..LOADERS)
        .map(|l| {
            let carts = carts.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let keys: Vec<_> = (l..LIVE)
                    .step_by(LOADERS)
                    .map(|k| carts.key(format!("k{k}")))
                    .collect();
                let mut next = vec![2u64; keys.len()];
                let mut i = 0usize;
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    keys[i].cast(Msg::Push { seq: next[i] }).unwrap();
                    next[i] += 1;
                    sent += 1;
                    i = (i + 1) % keys.len();
                    if sent % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                (l, next, sent)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    let report = node
        .reload("cart", ReloadOptions::library(v2))
        .await
        .expect("the reload commits");
    let whole = t.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut expected = vec![0u64; LIVE];
    let mut sent_total = 0;
    for l in loaders {
        let (l, next, sent) = l.await.unwrap();
        sent_total += sent;
        for (j, n) in next.into_iter().enumerate() {
            expected[l + j * LOADERS] = n;
        }
    }
    let mut lost = 0u64;
    let mut out_of_order = 0u64;
    for (k, n) in expected.iter().enumerate() {
        let seqs: Vec<u64> = carts.key(format!("k{k}")).request(Seqs).await.unwrap();
        lost += n.saturating_sub(seqs.len() as u64);
        if seqs.iter().copied().ne(0..*n) {
            out_of_order += 1;
        }
    }
    let pauses: Vec<Duration> = report
        .pauses_us
        .iter()
        .map(|p| Duration::from_micros(*p))
        .collect();
    let swapped = pauses.len();

    println!("| what | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for (name, v) in [
        ("activate a key (spawn + init + first call)", activation),
        ("call a live key", warm),
        ("per-actor reload pause (10k live, under load)", pauses),
    ] {
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {:.0} µs |",
            us(pct(v.clone(), 0.5)),
            us(pct(v.clone(), 0.99)),
            us(pct(v, 1.0))
        );
    }
    println!();
    println!(
        "whole reload: {:.0} ms for {swapped} actors (the template instance included); \
         {sent_total} casts sent under load; lost {lost}; keys out of order {out_of_order}",
        whole.as_secs_f64() * 1e3
    );
    node.shutdown().await;
    assert_eq!(lost, 0, "messages lost");
    assert_eq!(out_of_order, 0, "keys out of order");
}
