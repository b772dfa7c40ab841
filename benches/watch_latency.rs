//! Library written → new code serving (issue #3): a node watches a
//! directory; the kv library in it is replaced the way cargo does it
//! (unlink the final name, hard-link the new file to it), and we time from
//! the link syscall to the `module.reloaded` event, and to the first call
//! answered after it. Also split: link → the reload starting (the history
//! entry's start time: detection + debounce) and the reload itself.
//!
//! Run: `cargo bench --bench watch_latency` (prints a table per debounce;
//! BENCHMARKS.md records it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use kv_proto::{Msg, Proto, Reply};
use molt::cargo_build::{build, BuildRequest};
use molt::{Action, Event, ModuleSpec, Node, NodeConfig};

const ROUNDS: usize = 200;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The value at percentile `p` of sorted `v` (nearest rank).
fn pct(v: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

struct Row {
    what: &'static str,
    times: Vec<Duration>,
}

impl Row {
    fn print(mut self) {
        self.times.sort();
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            self.what,
            ms(pct(&self.times, 50.0)),
            ms(pct(&self.times, 99.0)),
            ms(*self.times.last().unwrap()),
            ms(self.times[0]),
        );
    }
}

/// A copy of `from` at `to` with its data on disk, so that nothing in the
/// measured window waits for writeback.
fn synced_copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::File::open(to).unwrap().sync_all().unwrap();
}

async fn run(kv: &Path, debounce_ms: u64) {
    let dir = tempfile::Builder::new()
        .prefix("molt-bench-watch")
        .tempdir()
        .unwrap();
    let lib = dir.path().join("libkv.so");
    // Two inode-different copies of the same build, linked in turn: each
    // link puts a "new" file in place, as a rebuild does. They stay linked
    // in `stage`, so unlinking the final name frees nothing.
    let stage = dir.path().join("stage");
    std::fs::create_dir(&stage).unwrap();
    let copies: [PathBuf; 2] = [stage.join("a.so"), stage.join("b.so")];
    for c in &copies {
        synced_copy(kv, c);
    }
    std::fs::hard_link(&copies[1], &lib).unwrap();

    let mut config =
        NodeConfig::new(format!("bench-watch-{debounce_ms}")).module(ModuleSpec::new("kv", &lib));
    config.library_dirs = vec![dir.path().to_path_buf()];
    config.debounce_ms = debounce_ms;
    let node = Node::start(config).await.unwrap();
    let kv = node.module::<Proto>("kv").unwrap();
    kv.call(Msg::Put {
        key: "a".into(),
        value: "1".into(),
    })
    .await
    .unwrap();
    let mut events = node.subscribe();

    let mut to_event = Vec::with_capacity(ROUNDS);
    let mut to_call = Vec::with_capacity(ROUNDS);
    let mut linked_at = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        std::fs::remove_file(&lib).unwrap();
        let wall = SystemTime::now();
        let t0 = Instant::now();
        std::fs::hard_link(&copies[round % 2], &lib).unwrap();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), events.next_event())
                .await
                .expect("module.reloaded within 10 s")
                .expect("the bus is open");
            match event {
                Event::ModuleReloaded { .. } => break,
                Event::ModuleReloadFailed { error, .. } => panic!("reload failed: {error}"),
                _ => continue,
            }
        }
        let t1 = t0.elapsed();
        let reply = kv.call(Msg::Version).await.unwrap();
        let t2 = t0.elapsed();
        assert!(matches!(reply, Reply::Version { .. }), "{reply:?}");
        to_event.push(t1);
        to_call.push(t2);
        linked_at.push(wall);
        // Let the old behaviour's teardown and the copy's unlink settle.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Split each round at the reload's start (its history entry's time).
    let history = node.history().await.unwrap();
    let reloads: Vec<_> = history
        .iter()
        .filter(|h| h.action == Action::Reload)
        .collect();
    assert_eq!(reloads.len(), ROUNDS, "one reload per replacement");
    let mut to_start = Vec::with_capacity(ROUNDS);
    let mut protocol = Vec::with_capacity(ROUNDS);
    for ((h, linked), total) in reloads.iter().zip(&linked_at).zip(&to_event) {
        let start = h.at.duration_since(*linked).unwrap_or_default();
        to_start.push(start);
        protocol.push(total.saturating_sub(start));
    }
    let pauses: Vec<Duration> = reloads
        .iter()
        .map(|h| Duration::from_micros(h.pause_us))
        .collect();

    println!();
    println!(
        "debounce_ms = {debounce_ms}, {ROUNDS} cargo-style replacements (unlink + hard link):"
    );
    println!();
    println!("| from the link syscall to | p50 | p99 | max | min |");
    println!("|---|---|---|---|---|");
    Row {
        what: "the reload starting (detection + debounce)",
        times: to_start,
    }
    .print();
    Row {
        what: "`module.reloaded` received",
        times: to_event,
    }
    .print();
    Row {
        what: "first call answered by the new code",
        times: to_call,
    }
    .print();
    Row {
        what: "(the reload itself: start → event)",
        times: protocol,
    }
    .print();
    Row {
        what: "(the instance's swap pause)",
        times: pauses,
    }
    .print();
    node.shutdown().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
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
    let kv = molt::cargo_build::library_of(&libs, "kv").unwrap();
    eprintln!(
        "kv: {} ({:.0} KiB)",
        kv.display(),
        std::fs::metadata(&kv).unwrap().len() as f64 / 1024.0
    );
    // MOLT_BENCH_DEBOUNCES="0" runs one setting alone (each run maps 200
    // more library copies, which slows later loads a little).
    let debounces: Vec<u64> = std::env::var("MOLT_BENCH_DEBOUNCES")
        .unwrap_or_else(|_| "5,0".into())
        .split(',')
        .map(|d| d.trim().parse().expect("MOLT_BENCH_DEBOUNCES: numbers"))
        .collect();
    for debounce_ms in debounces {
        run(&kv, debounce_ms).await;
    }
    println!();
    println!("mapped libraries now: {}", molt::mapped_libraries());
}
