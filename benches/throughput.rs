//! Message throughput, side by side in one run: a molt module (the
//! `counter` example, release build) vs a plain ractor actor vs a tokio mpsc
//! loop doing the same work (add to a counter). Casts, then calls.
//!
//! Also the cost of what molt adds per message for status and metrics (two
//! relaxed atomic adds: one by the sender, one by the actor), measured alone.
//!
//! Run: `cargo bench --bench throughput` (prints a table; BENCHMARKS.md
//! records it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use counter_proto::{Msg, Proto, Reply};
use molt::cargo_build::{build, BuildRequest};
use molt::{ModuleSpec, Node, NodeConfig};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

const CASTS: u64 = 1_000_000;
const CALLS: u64 = 100_000;
const ROUNDS: usize = 5;

enum PlainMsg {
    Add(i64),
    Get(RpcReplyPort<i64>),
}

struct Plain;

impl Actor for Plain {
    type Msg = PlainMsg;
    type State = i64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<PlainMsg>, _: ()) -> Result<i64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<PlainMsg>,
        msg: PlainMsg,
        total: &mut i64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PlainMsg::Add(n) => *total += n,
            PlainMsg::Get(reply) => {
                let _ = reply.send(*total);
            }
        }
        Ok(())
    }
}

fn best(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64() / 1e6
}

async fn molt_casts(h: &molt::ModuleHandle<Proto>) -> Duration {
    let t = Instant::now();
    for _ in 0..CASTS {
        h.cast(Msg::Add(1)).unwrap();
    }
    h.call(Msg::Get).await.unwrap();
    t.elapsed()
}

async fn molt_calls(h: &molt::ModuleHandle<Proto>) -> Duration {
    let t = Instant::now();
    for _ in 0..CALLS {
        let Reply::Total(_) = h.call(Msg::Add(1)).await.unwrap();
    }
    t.elapsed()
}

async fn ractor_casts(a: &ActorRef<PlainMsg>) -> Duration {
    let t = Instant::now();
    for _ in 0..CASTS {
        a.cast(PlainMsg::Add(1)).unwrap();
    }
    ractor::call!(a, PlainMsg::Get).unwrap();
    t.elapsed()
}

async fn ractor_calls(a: &ActorRef<PlainMsg>) -> Duration {
    let t = Instant::now();
    for _ in 0..CALLS {
        a.cast(PlainMsg::Add(1)).unwrap();
        ractor::call!(a, PlainMsg::Get).unwrap();
    }
    t.elapsed()
}

async fn mpsc_casts() -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PlainMsg2>();
    let worker = tokio::spawn(async move {
        let mut total = 0i64;
        while let Some(m) = rx.recv().await {
            match m {
                PlainMsg2::Add(n) => total += n,
                PlainMsg2::Get(tx) => {
                    let _ = tx.send(total);
                }
            }
        }
    });
    let t = Instant::now();
    for _ in 0..CASTS {
        tx.send(PlainMsg2::Add(1)).unwrap();
    }
    let (otx, orx) = tokio::sync::oneshot::channel();
    tx.send(PlainMsg2::Get(otx)).unwrap();
    orx.await.unwrap();
    let d = t.elapsed();
    drop(tx);
    worker.await.unwrap();
    d
}

enum PlainMsg2 {
    Add(i64),
    Get(tokio::sync::oneshot::Sender<i64>),
}

fn counters_cost() -> Duration {
    let (enqueued, handled) = (AtomicU64::new(0), AtomicU64::new(0));
    let t = Instant::now();
    for _ in 0..CASTS {
        enqueued.fetch_add(1, Ordering::Relaxed);
        handled.fetch_add(1, Ordering::Relaxed);
    }
    std::hint::black_box((&enqueued, &handled));
    t.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = molt::workspace_dir();
    eprintln!("building counter (release)...");
    let libs = build(&BuildRequest {
        manifest: root.join("Cargo.toml"),
        packages: vec!["counter".into()],
        release: true,
        target_dir: None,
        progress: false,
    })
    .expect("build counter");
    let node = Node::start(
        NodeConfig::new("throughput").module(ModuleSpec::new("counter", &libs[0].path)),
    )
    .await
    .unwrap();
    let h = node.module::<Proto>("counter").unwrap();
    let (plain, _) = Actor::spawn(None, Plain, ()).await.unwrap();

    let (mut mc, mut rc, mut tc, mut mk, mut rk, mut cc) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        mc.push(molt_casts(&h).await);
        rc.push(ractor_casts(&plain).await);
        tc.push(mpsc_casts().await);
        mk.push(molt_calls(&h).await);
        rk.push(ractor_calls(&plain).await);
        cc.push(counters_cost());
    }
    let (mc, rc, tc, mk, rk, cc) = (best(mc), best(rc), best(tc), best(mk), best(rk), best(cc));
    println!("| what | molt | plain ractor | tokio mpsc | molt / ractor |");
    println!("|---|---|---|---|---|");
    println!(
        "| cast, {CASTS} msgs | {:.2} M msg/s | {:.2} M msg/s | {:.2} M msg/s | {:.0} % |",
        rate(CASTS, mc),
        rate(CASTS, rc),
        rate(CASTS, tc),
        100.0 * rc.as_secs_f64() / mc.as_secs_f64()
    );
    println!(
        "| call (round trip), {CALLS} | {:.0} k/s | {:.0} k/s (cast + call) | | {:.0} % |",
        rate(CALLS, mk) * 1e3,
        rate(CALLS, rk) * 1e3,
        100.0 * rk.as_secs_f64() / mk.as_secs_f64()
    );
    println!();
    println!(
        "per message: molt cast {:.0} ns, ractor cast {:.0} ns; molt's status counters (2 relaxed atomic adds, uncontended) {:.1} ns",
        mc.as_nanos() as f64 / CASTS as f64,
        rc.as_nanos() as f64 / CASTS as f64,
        cc.as_nanos() as f64 / CASTS as f64
    );
    plain.stop(None);
    node.shutdown().await;
}
