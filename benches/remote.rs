//! Sends between nodes vs sends on one node, in one run (issue #12 §2):
//! two `molt` processes (release) in a cluster on loopback, each running
//! the `actors` test fixture (release). ractor's process groups are per
//! process, so two nodes of one cluster need two processes.
//!
//! - **cast throughput**: `actors#0@a` casts `N` numbered messages (`Tally`,
//!   the same message both ways) to `actors#0@b` (remote) or to
//!   `actors#1@a` (local), as fast as the sends are taken (a send refused
//!   because 10,000 messages to b are unacknowledged is tried again after
//!   the actor's queued messages: nothing skipped). Timed from the request
//!   to the moment the receiver reports all `N` (polled every 2 ms, so a
//!   row is at most a few ms long).
//! - **round trip**: `R` sequential round trips, a cast and its answer
//!   back to `ctx.sender()`, timed inside the module: the mean per round
//!   trip.
//! - **request**: `R` sequential requests (`ctx.ask`, answered with the
//!   actor's address), each sent when the previous answer arrives, timed
//!   inside the module: the mean per request.
//!
//! Rows alternate local / remote over `MOLT_BENCH_ROUNDS` rounds (default
//! 3); the median is printed. Run: `cargo bench --bench remote` (about 30 s
//! after the build).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use molt::cargo_build::{build, BuildRequest};
use molt::http::AdminClient;
use serde_json::{json, Value};

/// Casts per throughput row.
const N: u64 = 100_000;
/// Round trips per latency row.
const R: u64 = 2_000;
/// The admin token of both nodes.
const TOKEN: &str = "bench-remote-token-0123456789abcdef";
/// How long anything may take before the bench gives up.
const WITHIN: Duration = Duration::from_secs(120);

/// A `molt run` process, killed when dropped.
struct Molt {
    child: Child,
    admin: AdminClient,
}

impl Drop for Molt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts node `name` with `instances` instances of `actors` and the
/// cluster on `listen`, and waits for its HTTP admin.
fn start(dir: &Path, name: &str, lib: &Path, instances: u32, listen: u16, seed: u16) -> Molt {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"{name}\"\nhot_reload = false\nadmin_listen = \"127.0.0.1:0\"\n\
             library_dirs = [{:?}]\n\
             [modules.actors]\nlibrary = {:?}\ninstances = {instances}\n\
             [cluster]\nlisten = \"127.0.0.1:{listen}\"\nseeds = [\"127.0.0.1:{seed}\"]\n\
             heartbeat_interval_ms = 200\nunreachable_after_ms = 5000\n",
            lib.parent().unwrap().display().to_string(),
            lib.display().to_string(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_molt"))
        .args(["run", config.to_str().unwrap()])
        .env("MOLT_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start molt");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(rest) = line.split("HTTP admin on http://").nth(1) {
                let addr = rest
                    .split(|c: char| c.is_whitespace() || c == ';')
                    .next()
                    .unwrap_or_default();
                let _ = tx.send(addr.trim_end_matches('/').to_string());
            }
        }
    });
    let addr: SocketAddr = rx
        .recv_timeout(WITHIN)
        .unwrap_or_else(|_| panic!("{name}: no HTTP admin within {WITHIN:?}"))
        .parse()
        .unwrap();
    let admin = AdminClient::for_addr(addr, Some(TOKEN.into())).unwrap();
    Molt { child, admin }
}

fn address(node: &str, instance: usize) -> Value {
    json!({"node": node, "module": "actors", "target": {"Instance": instance}})
}

async fn call(node: &Molt, instance: usize, msg: Value) -> Value {
    node.admin
        .call("actors", &msg, Some(instance))
        .await
        .unwrap_or_else(|e| panic!("{msg}: {e}"))
}

/// A `Count` reply's number (`None`: its error).
fn count(reply: &Value) -> Option<u64> {
    reply["Count"]["Ok"].as_u64()
}

/// `N` casts from `from` (actors#0@a) to `to`, whose actor is `receiver`:
/// messages per second.
async fn cast_row(a: &Molt, receiver: (&Molt, usize), to: Value, first: u64) -> f64 {
    let before = count(&call(receiver.0, receiver.1, json!("Tallied")).await).unwrap();
    let t0 = Instant::now();
    call(
        a,
        0,
        json!({"Flood": {"to": to, "first": first, "count": N}}),
    )
    .await;
    loop {
        let now = count(&call(receiver.0, receiver.1, json!("Tallied")).await).unwrap();
        if now >= before + N {
            break;
        }
        assert!(t0.elapsed() < WITHIN, "{now} of {} arrived", before + N);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    N as f64 / t0.elapsed().as_secs_f64()
}

/// `R` round trips from actors#0@a to `to` (`how`: `PingPong`, a cast and
/// its answer cast back; `AskPong`, a request and its answer): microseconds
/// per round trip.
async fn round_trip_row(a: &Molt, how: &str, to: Value) -> f64 {
    call(a, 0, json!({how: {"to": to, "rounds": R}})).await;
    let t0 = Instant::now();
    loop {
        if let Some(micros) = count(&call(a, 0, json!("PingResult")).await) {
            return micros as f64 / R as f64;
        }
        assert!(t0.elapsed() < WITHIN, "the ping-pong did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: usize = std::env::var("MOLT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let root = molt::workspace_dir();
    eprintln!("building the actors fixture (release)...");
    let libs = build(&BuildRequest {
        manifest: root.join("Cargo.toml"),
        packages: vec!["actors".into()],
        release: true,
        target_dir: None,
        progress: false,
    })
    .expect("build the actors fixture");
    let lib = molt::cargo_build::library_of(&libs, "actors").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let a = start(dir.path(), "a", &lib, 2, pa, pb);
    let b = start(dir.path(), "b", &lib, 1, pb, pa);
    let t0 = Instant::now();
    for n in [&a, &b] {
        loop {
            let v = n.admin.cluster().await.unwrap();
            if v.members.len() == 2 && v.members.iter().all(|m| m.reachable) {
                break;
            }
            assert!(t0.elapsed() < WITHIN, "the cluster did not form: {v:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Warm-up: both paths, once.
    cast_row(&a, (&a, 1), address("a", 1), 0).await;
    cast_row(&a, (&b, 0), address("b", 0), 0).await;
    for how in ["PingPong", "AskPong"] {
        round_trip_row(&a, how, address("a", 1)).await;
        round_trip_row(&a, how, address("b", 0)).await;
    }

    let (mut local_cast, mut remote_cast) = (vec![], vec![]);
    let (mut local_rt, mut remote_rt) = (vec![], vec![]);
    let (mut local_ask, mut remote_ask) = (vec![], vec![]);
    for _ in 0..rounds {
        local_cast.push(cast_row(&a, (&a, 1), address("a", 1), 0).await);
        remote_cast.push(cast_row(&a, (&b, 0), address("b", 0), 0).await);
        local_rt.push(round_trip_row(&a, "PingPong", address("a", 1)).await);
        remote_rt.push(round_trip_row(&a, "PingPong", address("b", 0)).await);
        local_ask.push(round_trip_row(&a, "AskPong", address("a", 1)).await);
        remote_ask.push(round_trip_row(&a, "AskPong", address("b", 0)).await);
    }
    let (lc, rc) = (median(local_cast), median(remote_cast));
    let (lr, rr) = (median(local_rt), median(remote_rt));
    let (la, ra) = (median(local_ask), median(remote_ask));
    println!("remote sends, two molt processes on loopback, median of {rounds} rounds");
    println!("| row | local (one node) | remote (a → b) | remote / local |");
    println!("|---|---|---|---|");
    println!(
        "| cast throughput, {N} casts | {:.0}k msg/s | {:.0}k msg/s | {:.2} |",
        lc / 1e3,
        rc / 1e3,
        rc / lc
    );
    println!(
        "| round trip (a cast and its answer back, {R} in a row) | {lr:.1} µs | {rr:.1} µs | {:.1} |",
        rr / lr
    );
    println!(
        "| request (ctx.ask and its answer, {R} in a row) | {la:.1} µs | {ra:.1} µs | {:.1} |",
        ra / la
    );
}
