//! Message throughput, side by side in one run: a molt module (the
//! `counter` example, release build) vs a plain ractor actor doing the same
//! work, plus a tokio mpsc loop as the floor. Casts, then calls.
//!
//! Like with like (issue #11 §5): each row sends the same messages on both
//! sides, and the plain actor does what the `counter` module does per `Add`
//! (a checked add, an add count, a Prometheus counter increment through a
//! cached handle, into the recorder the node installed). A molt call is one
//! `Add` answered with the new total; so is a ractor call. The mpsc loop only
//! adds (no counter, no checked add): the floor of a channel and a task.
//!
//! The method (warm-up, interleaved rounds, median and spread of the
//! per-round ratios) is `support/side_by_side.rs`, shared with
//! `savina.rs`.
//!
//! The `floor` row (issue #11 §1) runs the design's floor for a cast
//! against the same plain actor: a plain ractor actor doing only what every
//! molt message must do in this design (the msgpack codec, a guarded
//! indirect call), `support/design_floor.rs`. Its ratio is the most any
//! host work can reach; molt's cast minus the floor is the host's share.
//! Its typed variant (the message value crosses, no codec) is the most a
//! typed fast path could reach.
//!
//! Also the cost of what molt adds per message for status and metrics (two
//! relaxed atomic adds: one by the sender, one by the actor), measured alone.
//!
//! Run: `cargo bench --bench throughput` (`MOLT_BENCH_ROUNDS=n` for another
//! round count; prints a table, BENCHMARKS.md records it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use counter_proto::{Msg, Proto, Reply};
use molt::cargo_build::{build, BuildRequest};
use molt::{ModuleSpec, Node, NodeConfig};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

#[path = "support/design_floor.rs"]
mod design_floor;
#[path = "support/side_by_side.rs"]
mod side_by_side;
use side_by_side::{both, median, Pair};

const CASTS: u64 = 1_000_000;
const CALLS: u64 = 100_000;

enum PlainMsg {
    /// A cast: adds.
    Add(i64),
    /// A call: adds and answers the new total (the `counter` module's
    /// `Add`, called).
    AddGet(i64, RpcReplyPort<i64>),
    /// Answers the total.
    Get(RpcReplyPort<i64>),
}

/// What the `counter` module keeps, and its metric.
struct PlainState {
    total: i64,
    adds: u64,
    adds_metric: metrics::Counter,
}

impl PlainState {
    /// The `counter` module's `Add`.
    fn add(&mut self, n: i64) -> Result<(), ActorProcessingErr> {
        self.total = self
            .total
            .checked_add(n)
            .ok_or_else(|| format!("adding {n} to {} overflows", self.total))?;
        self.adds += 1;
        self.adds_metric.increment(1);
        Ok(())
    }
}

struct Plain;

// ractor's `cluster` feature (on in molt by default) removes its
// blanket `Message` impl: a plain actor's message type says it is one.
#[cfg(feature = "cluster")]
impl ractor::Message for PlainMsg {}

impl Actor for Plain {
    type Msg = PlainMsg;
    type State = PlainState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<PlainMsg>,
        _: (),
    ) -> Result<PlainState, ActorProcessingErr> {
        Ok(PlainState {
            total: 0,
            adds: 0,
            adds_metric: metrics::counter!("plain_adds", "actor" => "plain"),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<PlainMsg>,
        msg: PlainMsg,
        s: &mut PlainState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PlainMsg::Add(n) => s.add(n)?,
            PlainMsg::AddGet(n, reply) => {
                s.add(n)?;
                let _ = reply.send(s.total);
            }
            PlainMsg::Get(reply) => {
                let _ = reply.send(s.total);
            }
        }
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
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
        ractor::call!(a, PlainMsg::AddGet, 1).unwrap();
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

/// One row of casts in the table: rates, ratio, extra per message, and the
/// tokio mpsc floor's rate when there is one.
fn cast_line(what: &str, s: &side_by_side::Summary, mpsc: Option<f64>) {
    println!(
        "| {what} | {:.2} M msg/s | {:.2} M msg/s | {} | {:.0} ns | {} |",
        rate(CASTS, s.molt),
        rate(CASTS, s.ractor),
        s.ratio_cells(),
        s.extra_ns(CASTS),
        mpsc.map(|r| format!("{r:.2} M msg/s")).unwrap_or_default(),
    );
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

    let rounds = side_by_side::rounds();
    let load_before = side_by_side::load_average();
    let (cast_row, call_row) = (
        side_by_side::selected("cast"),
        side_by_side::selected("call"),
    );
    let floor_row = side_by_side::selected("floor");
    let (floor_actor, _) = Actor::spawn(None, design_floor::Floor, ()).await.unwrap();
    let (mut casts, mut calls) = (Pair::default(), Pair::default());
    let (mut floor, mut typed) = (Pair::default(), Pair::default());
    let (mut mpsc, mut counters) = (vec![], vec![]);
    for round in side_by_side::schedule(rounds) {
        let mut line = format!(
            "round {}{}:",
            round.index,
            if round.counted { "" } else { " (warm-up)" }
        );
        if cast_row {
            let (m, r) = both!(round, molt_casts(&h).await, ractor_casts(&plain).await);
            casts.push(round, (m, r));
            line += &format!(" cast molt {:.0} ms, ractor {:.0} ms;", ms(m), ms(r));
            // Not while one side is profiled alone: its own work only.
            if round.counted && round.sides == side_by_side::Sides::Both {
                let (t, c) = (mpsc_casts().await, counters_cost());
                mpsc.push(t);
                counters.push(c);
            }
        }
        if call_row {
            let (m, r) = both!(round, molt_calls(&h).await, ractor_calls(&plain).await);
            calls.push(round, (m, r));
            line += &format!(" call molt {:.0} ms, ractor {:.0} ms", ms(m), ms(r));
        }
        if floor_row {
            // The design's floor against the same plain actor: the `molt`
            // column of this pair is the floor.
            let (f, r) = both!(
                round,
                design_floor::casts(&floor_actor).await,
                ractor_casts(&plain).await
            );
            floor.push(round, (f, r));
            line += &format!(" floor {:.0} ms, ractor {:.0} ms;", ms(f), ms(r));
            let (t, r) = both!(
                round,
                design_floor::typed_casts(&floor_actor).await,
                ractor_casts(&plain).await
            );
            typed.push(round, (t, r));
            line += &format!(" typed floor {:.0} ms, ractor {:.0} ms", ms(t), ms(r));
        }
        eprintln!("{line}");
    }
    println!(
        "| what | molt | plain ractor | {} | molt's extra per message | tokio mpsc |",
        side_by_side::RATIO_HEADER
    );
    println!("|---|---|---|---|---|---|---|---|");
    if cast_row {
        let mpsc = (!mpsc.is_empty()).then(|| rate(CASTS, median(mpsc)));
        cast_line(&format!("cast, {CASTS} msgs"), &casts.summary(), mpsc);
    }
    if call_row {
        let call = calls.summary();
        println!(
            "| call (round trip: Add answered with the total), {CALLS} | {:.0} k/s | {:.0} k/s | {} | {:.0} ns | |",
            rate(CALLS, call.molt) * 1e3,
            rate(CALLS, call.ractor) * 1e3,
            call.ratio_cells(),
            call.extra_ns(CALLS),
        );
    }
    if floor_row {
        cast_line(
            &format!("design floor (plain ractor + msgpack + a guarded indirect call; see support/design_floor.rs), cast, {CASTS} msgs, in the molt column"),
            &floor.summary(),
            None,
        );
        cast_line(
            &format!("typed floor (the same without the codec: the message value crosses), cast, {CASTS} msgs, in the molt column"),
            &typed.summary(),
            None,
        );
    }
    println!();
    if cast_row && !counters.is_empty() {
        let cast = casts.summary();
        println!(
            "per message: molt cast {:.0} ns, ractor cast {:.0} ns; molt's status counters (2 relaxed atomic adds, uncontended) {:.1} ns",
            cast.molt.as_nanos() as f64 / CASTS as f64,
            cast.ractor.as_nanos() as f64 / CASTS as f64,
            median(counters).as_nanos() as f64 / CASTS as f64
        );
    }
    println!("{}", side_by_side::method_note(rounds, &load_before));
    plain.stop(None);
    floor_actor.stop(None);
    node.shutdown().await;
}
