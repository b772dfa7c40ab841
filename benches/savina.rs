//! A subset of the Savina actor benchmark suite (Imam and Sarkar, AGERE!
//! 2014) on molt modules and on plain ractor actors, same run, same
//! parameters: ping-pong, counting, thread ring, fork-join throughput.
//!
//! The molt side is the modules under `modules/savina/` (release builds),
//! talking to each other only through `Ctx::cast`/`Ctx::cast_addr`, so every
//! message is msgpack-encoded, crosses the library boundary and goes through
//! a module instance's mailbox. The ractor side is the same actors written
//! directly against ractor, passing Rust enums. Each benchmark follows
//! Savina's message flow; where a Savina actor exits, the molt module
//! publishes an event (awaited on `node.subscribe()`) and the ractor actor
//! sends on a channel. Timing starts at the first message and ends when the
//! last actor is done; creating the actors is not timed (Savina times it).
//!
//! The method (warm-up, interleaved rounds, median and spread of the
//! per-round ratios) is `support/side_by_side.rs`, shared with
//! `throughput.rs`.
//!
//! Like with like (issue #11 §5): both sides send the same messages per run
//! (the counts in [`Bench::messages`]) and do the same work per message;
//! what differs is what molt is (msgpack-encoded messages, the library
//! boundary, the host's routing) and how the end is signalled (one event
//! on the node's bus against one send on a tokio channel per finished
//! actor, outside the per-message path).
//!
//! Run: `cargo bench --bench savina` (`MOLT_BENCH_ROUNDS=n` for another
//! round count; prints a table, BENCHMARKS.md records it).

use std::time::{Duration, Instant};

use molt::{Event, EventStream, ModuleHandle, Node};

#[path = "support/savina_node.rs"]
mod savina_node;
#[path = "support/side_by_side.rs"]
mod side_by_side;
use savina_proto::{counting, forkjoin, pingpong, ring};
use side_by_side::{both, median, Pair};

/// Savina's defaults (PingPongConfig, CountingConfig, ThreadRingConfig,
/// ThroughputConfig), none scaled down.
const PINGS: u64 = 40_000;
const COUNT: u64 = 1_000_000;
const RING_ACTORS: u32 = 100;
/// [`RING_ACTORS`] as the ring protocol counts it (instance indices are `usize`).
const RING_SIZE: usize = RING_ACTORS as usize;
const RING_HOPS: u64 = 100_000;
const FJ_ACTORS: u32 = 60;
const FJ_MESSAGES: u64 = 10_000;

/// No benchmark takes more than a few seconds; a lost event fails the run.
const DONE_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------- molt ----

struct Molt {
    node: Node,
    events: EventStream,
    pinger: ModuleHandle<pingpong::PingerProto>,
    producer: ModuleHandle<counting::ProducerProto>,
    ring: ModuleHandle<ring::RingProto>,
    workers: Vec<ModuleHandle<forkjoin::WorkerProto>>,
}

/// The JSON payload of the next event `topic` published by a module.
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
    tokio::time::timeout(DONE_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| panic!("no {topic} within {DONE_TIMEOUT:?}"))
}

impl Molt {
    async fn start() -> Molt {
        eprintln!("building the savina modules (release)...");
        let node = savina_node::start("savina", true, RING_ACTORS, FJ_ACTORS).await;
        let events = node.subscribe();
        let worker = node.module(forkjoin::WORKER).unwrap();
        Molt {
            pinger: node.module(pingpong::PINGER).unwrap(),
            producer: node.module(counting::PRODUCER).unwrap(),
            ring: node
                .module::<ring::RingProto>(ring::RING)
                .unwrap()
                .on_instance(0),
            workers: (0..FJ_ACTORS as usize)
                .map(|i| worker.on_instance(i))
                .collect(),
            events,
            node,
        }
    }

    async fn ping_pong(&mut self) -> Duration {
        let t = Instant::now();
        self.pinger
            .cast(pingpong::PingerMsg::Start { pings: PINGS })
            .unwrap();
        let pongs = published(&mut self.events, pingpong::DONE).await;
        let d = t.elapsed();
        assert_eq!(pongs, PINGS.to_string());
        d
    }

    async fn counting(&mut self) -> Duration {
        let t = Instant::now();
        self.producer
            .cast(counting::ProducerMsg::Start { count: COUNT })
            .unwrap();
        let total = published(&mut self.events, counting::DONE).await;
        let d = t.elapsed();
        assert_eq!(total, COUNT.to_string());
        d
    }

    async fn thread_ring(&mut self) -> Duration {
        let t = Instant::now();
        self.ring
            .cast(ring::RingMsg::Ping {
                hops_left: RING_HOPS,
                ring: RING_SIZE,
            })
            .unwrap();
        let done = published(&mut self.events, ring::DONE).await;
        let d = t.elapsed();
        let stopped = (RING_HOPS % u64::from(RING_ACTORS)) as usize;
        let expected = ring::Done {
            token_stopped_at: stopped,
            instance: (stopped + RING_SIZE - 1) % RING_SIZE,
        };
        let done: ring::Done = serde_json::from_str(&done).unwrap();
        assert_eq!(done, expected);
        d
    }

    async fn fork_join(&mut self) -> Duration {
        for w in &self.workers {
            w.cast(forkjoin::WorkerMsg::Expect {
                messages: FJ_MESSAGES,
            })
            .unwrap();
        }
        let t = Instant::now();
        for _ in 0..FJ_MESSAGES {
            for w in &self.workers {
                w.cast(forkjoin::WorkerMsg::Work).unwrap();
            }
        }
        let mut done = vec![false; FJ_ACTORS as usize];
        for _ in 0..FJ_ACTORS {
            let i: usize = published(&mut self.events, forkjoin::DONE)
                .await
                .parse()
                .unwrap();
            assert!(!std::mem::replace(&mut done[i], true), "worker {i} twice");
        }
        t.elapsed()
    }
}

// ------------------------------------------------------- plain ractor ----

mod plain {
    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use savina_proto::forkjoin;
    use tokio::sync::mpsc::UnboundedSender;

    type Res = Result<(), ActorProcessingErr>;

    // Ping-pong.

    pub enum PingerMsg {
        Start(u64),
        SendPing,
        Pong,
    }

    pub struct Pinger;

    pub struct PingerState {
        pings_left: u64,
        pongs: u64,
        ponger: ActorRef<PongerMsg>,
        done: UnboundedSender<u64>,
    }

    impl PingerState {
        fn ping(&mut self, me: &ActorRef<PingerMsg>) -> Res {
            self.pings_left -= 1;
            Ok(self.ponger.cast(PongerMsg::Ping(me.clone()))?)
        }
    }

    // ractor's `cluster` feature (on in molt by default) removes its
    // blanket `Message` impl: a plain actor's message type says it is one.
    #[cfg(feature = "cluster")]
    impl ractor::Message for PingerMsg {}

    impl Actor for Pinger {
        type Msg = PingerMsg;
        type State = PingerState;
        type Arguments = (ActorRef<PongerMsg>, UnboundedSender<u64>);

        async fn pre_start(
            &self,
            _: ActorRef<PingerMsg>,
            (ponger, done): Self::Arguments,
        ) -> Result<PingerState, ActorProcessingErr> {
            Ok(PingerState {
                pings_left: 0,
                pongs: 0,
                ponger,
                done,
            })
        }

        async fn handle(
            &self,
            me: ActorRef<PingerMsg>,
            msg: PingerMsg,
            s: &mut PingerState,
        ) -> Res {
            match msg {
                PingerMsg::Start(pings) => {
                    (s.pings_left, s.pongs) = (pings, 0);
                    s.ping(&me)
                }
                PingerMsg::SendPing => s.ping(&me),
                PingerMsg::Pong => {
                    s.pongs += 1;
                    if s.pings_left > 0 {
                        me.cast(PingerMsg::SendPing)?;
                    } else {
                        s.done.send(s.pongs)?;
                    }
                    Ok(())
                }
            }
        }
    }

    pub enum PongerMsg {
        Ping(ActorRef<PingerMsg>),
    }

    pub struct Ponger;

    // ractor's `cluster` feature (on in molt by default) removes its
    // blanket `Message` impl: a plain actor's message type says it is one.
    #[cfg(feature = "cluster")]
    impl ractor::Message for PongerMsg {}

    impl Actor for Ponger {
        type Msg = PongerMsg;
        type State = u64;
        type Arguments = ();

        async fn pre_start(
            &self,
            _: ActorRef<PongerMsg>,
            _: (),
        ) -> Result<u64, ActorProcessingErr> {
            Ok(0)
        }

        async fn handle(&self, _: ActorRef<PongerMsg>, msg: PongerMsg, pings: &mut u64) -> Res {
            let PongerMsg::Ping(from) = msg;
            *pings += 1;
            Ok(from.cast(PingerMsg::Pong)?)
        }
    }

    // Counting.

    pub enum ProducerMsg {
        Start(u64),
        Total(u64),
    }

    pub struct Producer;

    // ractor's `cluster` feature (on in molt by default) removes its
    // blanket `Message` impl: a plain actor's message type says it is one.
    #[cfg(feature = "cluster")]
    impl ractor::Message for ProducerMsg {}

    impl Actor for Producer {
        type Msg = ProducerMsg;
        type State = (ActorRef<CounterMsg>, UnboundedSender<u64>);
        type Arguments = Self::State;

        async fn pre_start(
            &self,
            _: ActorRef<ProducerMsg>,
            args: Self::State,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(args)
        }

        async fn handle(
            &self,
            me: ActorRef<ProducerMsg>,
            msg: ProducerMsg,
            (counter, done): &mut Self::State,
        ) -> Res {
            match msg {
                ProducerMsg::Start(count) => {
                    for _ in 0..count {
                        counter.cast(CounterMsg::Increment)?;
                    }
                    counter.cast(CounterMsg::Retrieve(me))?;
                }
                ProducerMsg::Total(total) => done.send(total)?,
            }
            Ok(())
        }
    }

    pub enum CounterMsg {
        Increment,
        Retrieve(ActorRef<ProducerMsg>),
    }

    pub struct Counter;

    // ractor's `cluster` feature (on in molt by default) removes its
    // blanket `Message` impl: a plain actor's message type says it is one.
    #[cfg(feature = "cluster")]
    impl ractor::Message for CounterMsg {}

    impl Actor for Counter {
        type Msg = CounterMsg;
        type State = u64;
        type Arguments = ();

        async fn pre_start(
            &self,
            _: ActorRef<CounterMsg>,
            _: (),
        ) -> Result<u64, ActorProcessingErr> {
            Ok(0)
        }

        async fn handle(&self, _: ActorRef<CounterMsg>, msg: CounterMsg, count: &mut u64) -> Res {
            match msg {
                CounterMsg::Increment => *count += 1,
                CounterMsg::Retrieve(producer) => {
                    producer.cast(ProducerMsg::Total(std::mem::take(count)))?
                }
            }
            Ok(())
        }
    }

    // Thread ring.

    pub enum RingMsg {
        Next(ActorRef<RingMsg>),
        Ping { hops_left: u64, ring: u32 },
        Exit { left: u32, token_stopped_at: u32 },
    }

    pub struct Position;

    pub struct PositionState {
        index: u32,
        next: Option<ActorRef<RingMsg>>,
        /// (where the token stopped, who ended the exit lap)
        done: UnboundedSender<(u32, u32)>,
    }

    impl PositionState {
        fn pass(&self, msg: RingMsg) -> Res {
            Ok(self.next.as_ref().expect("ring closed").cast(msg)?)
        }

        fn exit(&self, left: u32, token_stopped_at: u32) -> Res {
            if left > 1 {
                return self.pass(RingMsg::Exit {
                    left: left - 1,
                    token_stopped_at,
                });
            }
            Ok(self.done.send((token_stopped_at, self.index))?)
        }
    }

    // ractor's `cluster` feature (on in molt by default) removes its
    // blanket `Message` impl: a plain actor's message type says it is one.
    #[cfg(feature = "cluster")]
    impl ractor::Message for RingMsg {}

    impl Actor for Position {
        type Msg = RingMsg;
        type State = PositionState;
        type Arguments = (u32, UnboundedSender<(u32, u32)>);

        async fn pre_start(
            &self,
            _: ActorRef<RingMsg>,
            (index, done): Self::Arguments,
        ) -> Result<PositionState, ActorProcessingErr> {
            Ok(PositionState {
                index,
                next: None,
                done,
            })
        }

        async fn handle(&self, _: ActorRef<RingMsg>, msg: RingMsg, s: &mut PositionState) -> Res {
            match msg {
                RingMsg::Next(next) => {
                    s.next = Some(next);
                    Ok(())
                }
                RingMsg::Ping { hops_left, ring } if hops_left > 0 => s.pass(RingMsg::Ping {
                    hops_left: hops_left - 1,
                    ring,
                }),
                RingMsg::Ping { ring, .. } => s.exit(ring, s.index),
                RingMsg::Exit {
                    left,
                    token_stopped_at,
                } => s.exit(left, token_stopped_at),
            }
        }
    }

    // Fork-join throughput.

    pub enum WorkerMsg {
        Expect(u64),
        Work,
    }

    pub struct Worker;

    pub struct WorkerState {
        index: u32,
        expected: u64,
        handled: u64,
        done: UnboundedSender<u32>,
    }

    // ractor's `cluster` feature (on in molt by default) removes its
    // blanket `Message` impl: a plain actor's message type says it is one.
    #[cfg(feature = "cluster")]
    impl ractor::Message for WorkerMsg {}

    impl Actor for Worker {
        type Msg = WorkerMsg;
        type State = WorkerState;
        type Arguments = (u32, UnboundedSender<u32>);

        async fn pre_start(
            &self,
            _: ActorRef<WorkerMsg>,
            (index, done): Self::Arguments,
        ) -> Result<WorkerState, ActorProcessingErr> {
            Ok(WorkerState {
                index,
                expected: 0,
                handled: 0,
                done,
            })
        }

        async fn handle(&self, _: ActorRef<WorkerMsg>, msg: WorkerMsg, s: &mut WorkerState) -> Res {
            match msg {
                WorkerMsg::Expect(n) => (s.expected, s.handled) = (n, 0),
                WorkerMsg::Work => {
                    forkjoin::compute(forkjoin::THETA);
                    s.handled += 1;
                    if s.handled == s.expected {
                        s.done.send(s.index)?;
                    }
                }
            }
            Ok(())
        }
    }
}

struct Ractor {
    pinger: ractor::ActorRef<plain::PingerMsg>,
    pingpong_done: tokio::sync::mpsc::UnboundedReceiver<u64>,
    producer: ractor::ActorRef<plain::ProducerMsg>,
    counting_done: tokio::sync::mpsc::UnboundedReceiver<u64>,
    ring: Vec<ractor::ActorRef<plain::RingMsg>>,
    ring_done: tokio::sync::mpsc::UnboundedReceiver<(u32, u32)>,
    workers: Vec<ractor::ActorRef<plain::WorkerMsg>>,
    fj_done: tokio::sync::mpsc::UnboundedReceiver<u32>,
}

async fn recv<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(DONE_TIMEOUT, rx.recv())
        .await
        .expect("a ractor benchmark timed out")
        .expect("a ractor actor died")
}

impl Ractor {
    async fn start() -> Ractor {
        use ractor::Actor;
        use tokio::sync::mpsc::unbounded_channel;
        let (tx, pingpong_done) = unbounded_channel();
        let (ponger, _) = Actor::spawn(None, plain::Ponger, ())
            .await
            .expect("spawn a ractor actor");
        let (pinger, _) = Actor::spawn(None, plain::Pinger, (ponger, tx))
            .await
            .expect("spawn a ractor actor");
        let (tx, counting_done) = unbounded_channel();
        let (counter, _) = Actor::spawn(None, plain::Counter, ())
            .await
            .expect("spawn a ractor actor");
        let (producer, _) = Actor::spawn(None, plain::Producer, (counter, tx))
            .await
            .expect("spawn a ractor actor");
        let (tx, ring_done) = unbounded_channel();
        let mut ring = vec![];
        for i in 0..RING_ACTORS {
            let (a, _) = Actor::spawn(None, plain::Position, (i, tx.clone()))
                .await
                .expect("spawn a ractor actor");
            ring.push(a);
        }
        for (i, a) in ring.iter().enumerate() {
            a.cast(plain::RingMsg::Next(ring[(i + 1) % ring.len()].clone()))
                .unwrap();
        }
        let (tx, fj_done) = unbounded_channel();
        let mut workers = vec![];
        for i in 0..FJ_ACTORS {
            let (a, _) = Actor::spawn(None, plain::Worker, (i, tx.clone()))
                .await
                .expect("spawn a ractor actor");
            workers.push(a);
        }
        Ractor {
            pinger,
            pingpong_done,
            producer,
            counting_done,
            ring,
            ring_done,
            workers,
            fj_done,
        }
    }

    async fn ping_pong(&mut self) -> Duration {
        let t = Instant::now();
        self.pinger.cast(plain::PingerMsg::Start(PINGS)).unwrap();
        let pongs = recv(&mut self.pingpong_done).await;
        let d = t.elapsed();
        assert_eq!(pongs, PINGS);
        d
    }

    async fn counting(&mut self) -> Duration {
        let t = Instant::now();
        self.producer
            .cast(plain::ProducerMsg::Start(COUNT))
            .unwrap();
        let total = recv(&mut self.counting_done).await;
        let d = t.elapsed();
        assert_eq!(total, COUNT);
        d
    }

    async fn thread_ring(&mut self) -> Duration {
        let t = Instant::now();
        self.ring[0]
            .cast(plain::RingMsg::Ping {
                hops_left: RING_HOPS,
                ring: RING_ACTORS,
            })
            .unwrap();
        let (stopped_at, last) = recv(&mut self.ring_done).await;
        let d = t.elapsed();
        let stopped = (RING_HOPS % u64::from(RING_ACTORS)) as u32;
        assert_eq!(
            (stopped_at, last),
            (stopped, (stopped + RING_ACTORS - 1) % RING_ACTORS)
        );
        d
    }

    async fn fork_join(&mut self) -> Duration {
        for w in &self.workers {
            w.cast(plain::WorkerMsg::Expect(FJ_MESSAGES)).unwrap();
        }
        let t = Instant::now();
        for _ in 0..FJ_MESSAGES {
            for w in &self.workers {
                w.cast(plain::WorkerMsg::Work).unwrap();
            }
        }
        let mut done = vec![false; FJ_ACTORS as usize];
        for _ in 0..FJ_ACTORS {
            let i = recv(&mut self.fj_done).await as usize;
            assert!(!std::mem::replace(&mut done[i], true), "worker {i} twice");
        }
        t.elapsed()
    }

    fn stop(self) {
        self.pinger.stop(None);
        self.producer.stop(None);
        for a in self.ring.iter() {
            a.stop(None);
        }
        for a in self.workers.iter() {
            a.stop(None);
        }
    }
}

// ---------------------------------------------------------------- run ----

#[derive(Clone, Copy)]
enum Bench {
    PingPong,
    Counting,
    ThreadRing,
    ForkJoin,
}

impl Bench {
    const ALL: [Bench; 4] = [
        Bench::PingPong,
        Bench::Counting,
        Bench::ThreadRing,
        Bench::ForkJoin,
    ];

    fn name(self) -> &'static str {
        match self {
            Bench::PingPong => "ping-pong",
            Bench::Counting => "counting",
            Bench::ThreadRing => "thread ring",
            Bench::ForkJoin => "fork-join throughput",
        }
    }

    fn parameters(self) -> String {
        match self {
            Bench::PingPong => format!("N = {PINGS} pings"),
            Bench::Counting => format!("N = {COUNT} increments"),
            Bench::ThreadRing => format!("N = {RING_ACTORS} actors, R = {RING_HOPS} hops"),
            Bench::ForkJoin => format!("A = {FJ_ACTORS} actors × N = {FJ_MESSAGES} msgs"),
        }
    }

    /// Messages handled per run (the rate's numerator).
    fn messages(self) -> u64 {
        match self {
            // start + N pings + N pongs + (N - 1) self-sent "send ping"
            Bench::PingPong => 3 * PINGS,
            // start + N increments + retrieve + total
            Bench::Counting => COUNT + 3,
            // R + 1 token passes (the bench's included) + N - 1 exits
            Bench::ThreadRing => RING_HOPS + u64::from(RING_ACTORS),
            Bench::ForkJoin => u64::from(FJ_ACTORS) * FJ_MESSAGES,
        }
    }
}

/// The median time of `rmp_serde::to_vec_named` + `from_slice` of `msg`,
/// as the module handle and the module library do it.
fn codec_ns<M>(msg: &M) -> f64
where
    M: serde::Serialize + serde::de::DeserializeOwned,
{
    const N: u32 = 100_000;
    let runs = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..N {
                let bytes = rmp_serde::to_vec_named(std::hint::black_box(msg)).unwrap();
                let back: M = rmp_serde::from_slice(&bytes).unwrap();
                std::hint::black_box(back);
            }
            t.elapsed()
        })
        .collect();
    median(runs).as_nanos() as f64 / f64::from(N)
}

fn cell(d: Duration, messages: u64) -> String {
    format!(
        "{:.1} ms ({:.2} M msg/s)",
        d.as_secs_f64() * 1e3,
        messages as f64 / d.as_secs_f64() / 1e6
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds = side_by_side::rounds();
    let load_before = side_by_side::load_average();
    let mut molt = Molt::start().await;
    let mut plain = Ractor::start().await;

    let benches: Vec<Bench> = Bench::ALL
        .into_iter()
        .filter(|b| side_by_side::selected(b.name()))
        .collect();
    let mut pairs: Vec<Pair> = vec![Pair::default(); benches.len()];
    for round in side_by_side::schedule(rounds) {
        for (b, pair) in benches.iter().zip(pairs.iter_mut()) {
            let (dm, dr) = match b {
                Bench::PingPong => both!(round, molt.ping_pong().await, plain.ping_pong().await),
                Bench::Counting => both!(round, molt.counting().await, plain.counting().await),
                Bench::ThreadRing => {
                    both!(round, molt.thread_ring().await, plain.thread_ring().await)
                }
                Bench::ForkJoin => both!(round, molt.fork_join().await, plain.fork_join().await),
            };
            eprintln!(
                "round {}{}: {:<21} molt {:>8.1} ms, ractor {:>8.1} ms",
                round.index,
                if round.counted { "" } else { " (warm-up)" },
                b.name(),
                dm.as_secs_f64() * 1e3,
                dr.as_secs_f64() * 1e3
            );
            pair.push(round, (dm, dr));
        }
    }

    println!(
        "| benchmark | parameters | messages | molt | plain ractor | {} | molt's extra per message |",
        side_by_side::RATIO_HEADER
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (b, pair) in benches.iter().zip(&pairs) {
        let s = pair.summary();
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} ns |",
            b.name(),
            b.parameters(),
            b.messages(),
            cell(s.molt, b.messages()),
            cell(s.ractor, b.messages()),
            s.ratio_cells(),
            s.extra_ns(b.messages())
        );
    }
    println!();
    println!(
        "msgpack encode + decode of one message alone (what every molt message pays on top): \
         ping-pong Pong {:.0} ns, counting Increment {:.0} ns, ring Ping {:.0} ns, fork-join Work {:.0} ns",
        codec_ns(&pingpong::PingerMsg::Pong),
        codec_ns(&counting::CounterMsg::Increment),
        codec_ns(&ring::RingMsg::Ping {
            hops_left: RING_HOPS,
            ring: RING_SIZE
        }),
        codec_ns(&forkjoin::WorkerMsg::Work)
    );
    println!("{}", side_by_side::method_note(rounds, &load_before));
    plain.stop();
    molt.node.shutdown().await;
}
