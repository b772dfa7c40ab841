//! What a handler's length costs in wall time when one message is in flight
//! (issue #11 §1): plain ractor only, no molt. Savina's ping-pong between
//! two ractor actors, each handler spinning `S` ns before it casts on, for a
//! few values of `S`, on the runtime's default multi-thread scheduler.
//!
//! It answers one question the message-path profile raised (BENCHMARKS.md,
//! "Where a message's time goes"): molt's extra CPU per message in
//! ping-pong and the thread ring is a few hundred ns, yet its extra wall
//! time per message is two to three times that, mostly kernel time
//! (futex wake-ups, context switches). If plain ractor pays the same
//! amplification for the same extra handler work, the amplification is the
//! scheduler's (a woken idle worker steals the actor that was just
//! messaged, and the pair moves between threads), not something molt does
//! besides its own per-message cost.
//!
//! Run: `cargo bench --bench handler_length` (`MOLT_BENCH_SPINS=0,100,200`
//! for other handler lengths in ns; prints a table, BENCHMARKS.md records
//! it). Three rounds of every length, the first not counted.

use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

/// Round trips per measured run (three messages each, as in Savina).
const PINGS: u64 = 100_000;

/// Busy work of `ns` nanoseconds (not a sleep: the thread stays busy).
fn spin(ns: u64) {
    if ns == 0 {
        return;
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_nanos(ns) {
        std::hint::spin_loop();
    }
}

enum PingerMsg {
    Start(u64, oneshot::Sender<()>),
    SendPing,
    Pong,
}

enum PongerMsg {
    Ping(ActorRef<PingerMsg>),
}

struct Ponger;

// ractor's `cluster` feature (on in molt by default) removes its
// blanket `Message` impl: a plain actor's message type says it is one.
#[cfg(feature = "cluster")]
impl ractor::Message for PongerMsg {}

impl Actor for Ponger {
    type Msg = PongerMsg;
    type State = u64;
    type Arguments = u64;

    async fn pre_start(
        &self,
        _: ActorRef<PongerMsg>,
        spin_ns: u64,
    ) -> Result<u64, ActorProcessingErr> {
        Ok(spin_ns)
    }

    async fn handle(
        &self,
        _: ActorRef<PongerMsg>,
        msg: PongerMsg,
        spin_ns: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        let PongerMsg::Ping(pinger) = msg;
        spin(*spin_ns);
        pinger.cast(PingerMsg::Pong)?;
        Ok(())
    }
}

struct Pinger;

struct PingerState {
    left: u64,
    ponger: ActorRef<PongerMsg>,
    done: Option<oneshot::Sender<()>>,
    spin_ns: u64,
}

// ractor's `cluster` feature (on in molt by default) removes its
// blanket `Message` impl: a plain actor's message type says it is one.
#[cfg(feature = "cluster")]
impl ractor::Message for PingerMsg {}

impl Actor for Pinger {
    type Msg = PingerMsg;
    type State = PingerState;
    type Arguments = (ActorRef<PongerMsg>, u64);

    async fn pre_start(
        &self,
        _: ActorRef<PingerMsg>,
        (ponger, spin_ns): (ActorRef<PongerMsg>, u64),
    ) -> Result<PingerState, ActorProcessingErr> {
        Ok(PingerState {
            left: 0,
            ponger,
            done: None,
            spin_ns,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<PingerMsg>,
        msg: PingerMsg,
        s: &mut PingerState,
    ) -> Result<(), ActorProcessingErr> {
        spin(s.spin_ns);
        match msg {
            PingerMsg::Start(pings, done) => {
                (s.left, s.done) = (pings - 1, Some(done));
                s.ponger.cast(PongerMsg::Ping(me))?;
            }
            PingerMsg::SendPing => {
                s.left -= 1;
                s.ponger.cast(PongerMsg::Ping(me))?;
            }
            PingerMsg::Pong if s.left > 0 => me.cast(PingerMsg::SendPing)?,
            PingerMsg::Pong => {
                if let Some(done) = s.done.take() {
                    let _ = done.send(());
                }
            }
        }
        Ok(())
    }
}

/// Voluntary + involuntary context switches of every thread of this process.
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// User and system CPU time of this process, in seconds.
fn cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    (ticks(11), ticks(12))
}

fn spins() -> Vec<u64> {
    std::env::var("MOLT_BENCH_SPINS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 100, 200, 400, 800])
}

#[tokio::main]
async fn main() {
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let load_before = load();
    println!("| handler spin (ns) | wall per message (ns) | wall − spin (ns) | context switches per 1k messages | CPU per message, user + sys (ns) |");
    println!("|---|---|---|---|---|");
    for round in 0..3 {
        for &spin_ns in &spins() {
            let (ponger, _) = Actor::spawn(None, Ponger, spin_ns)
                .await
                .expect("spawn the ponger");
            let (pinger, _) = Actor::spawn(None, Pinger, (ponger.clone(), spin_ns))
                .await
                .expect("spawn the pinger");
            let (done, finished) = oneshot::channel();
            let (switches, (user, sys)) = (context_switches(), cpu_seconds());
            let t = Instant::now();
            pinger
                .cast(PingerMsg::Start(PINGS, done))
                .expect("start the pinger");
            tokio::time::timeout(Duration::from_secs(60), finished)
                .await
                .expect("ping-pong timed out")
                .expect("the pinger stopped");
            let took = t.elapsed();
            let messages = 3 * PINGS;
            let (user2, sys2) = cpu_seconds();
            if round > 0 {
                let wall = took.as_nanos() as f64 / messages as f64;
                println!(
                    "| {spin_ns} | {wall:.0} | {:.0} | {:.1} | {:.0} |",
                    wall - spin_ns as f64,
                    (context_switches() - switches) as f64 * 1000.0 / messages as f64,
                    (user2 - user + sys2 - sys) * 1e9 / messages as f64,
                );
            }
            pinger.stop(None);
            ponger.stop(None);
        }
    }
    println!("load average before: {load_before}; after: {}", load());
}
