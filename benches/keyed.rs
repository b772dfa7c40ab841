//! Keyed actors (issue #9 §3): a reload of a keyed module with 10,000 live
//! actors under load (per-actor pause p50/p99, whole reload time, messages
//! lost: must be 0), and the cost of activating a key (spawn + first reply)
//! next to spawning a plain ractor actor and calling it, in the same run.
//!
//! Run: `cargo bench --bench keyed` (prints a table; BENCHMARKS.md records
//! it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cart_proto::{Msg, Proto, Seqs};
use molt::cargo_build::{build, BuildRequest};
use molt::{KeyedSpec, ModuleSpec, Node, NodeConfig, ReloadOptions};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

const LIVE: usize = 10_000;
const LOADERS: usize = 2;

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A plain ractor actor holding a counter: the baseline for activation.
struct Plain;

enum PlainMsg {
    Add(u32, RpcReplyPort<u32>),
}

impl Actor for Plain {
    type Msg = PlainMsg;
    type State = u32;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<PlainMsg>, _: ()) -> Result<u32, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<PlainMsg>,
        msg: PlainMsg,
        st: &mut u32,
    ) -> Result<(), ActorProcessingErr> {
        let PlainMsg::Add(n, reply) = msg;
        *st += n;
        let _ = reply.send(*st);
        Ok(())
    }
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

    let mut config =
        NodeConfig::new("bench-keyed").module(ModuleSpec::new("cart", &v1).keyed(KeyedSpec {
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
    // The same on plain ractor actors: spawn, then the first call.
    let mut plain = Vec::with_capacity(LIVE);
    let mut plain_refs = Vec::with_capacity(LIVE);
    for _ in 0..LIVE {
        let t = Instant::now();
        let (actor, _join) = Actor::spawn(None, Plain, ()).await.unwrap();
        ractor::call!(actor, PlainMsg::Add, 1).unwrap();
        plain.push(t.elapsed());
        plain_refs.push(actor);
    }
    for a in plain_refs {
        a.stop(None);
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
        .reload("cart", ReloadOptions::library(&v2))
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
        ("spawn a plain ractor actor + first call", plain),
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
