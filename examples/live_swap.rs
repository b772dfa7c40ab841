//! # live_swap: hot code swapping under load, checked end to end
//!
//! ```sh
//! cargo run --release --example live_swap
//! ```
//!
//! What it shows:
//!
//! 1. It builds the two example `kv` libraries (cargo does nothing when they
//!    are fresh) and makes a *broken* one: the first half of kv v2's bytes.
//! 2. It starts a node running module `kv` on kv v1, and four clients that
//!    each append `0, 1, 2, ...` to their own journal (`client-<n>`) with
//!    `Push` casts; every 64th is a typed request (`kv.request(Push {..})`), so every
//!    client waits for a reply now and then (which also keeps the mailbox
//!    short: the load is steady, not an ever-growing flood). They offer
//!    100,000 messages per second in all; `LIVE_SWAP_RATE=<msg/s>` changes
//!    that, `LIVE_SWAP_RATE=0` sends as fast as the module takes them (its
//!    journals, and so the pauses, then grow much faster).
//! 3. While the load runs, the operator's script: upgrade to kv v2, roll back
//!    to v1 (the state is down-migrated), try the truncated library (rejected
//!    in *prepare*, v1 keeps serving), upgrade again, roll back again.
//! 4. It stops the clients and reads back what the module holds: every
//!    journal must be exactly `0..sent`, no number missing, none twice,
//!    none out of order. These numbers are counted, never assumed.
//!
//! The last line of stdout is the summary:
//!
//! ```text
//! live_swap: sent=… acked=… lost=0 dup=0 reordered=0 reloads=2 rolled_back=2 rejected=1 pause_p50_us=… pause_p99_us=…
//! ```
//!
//! The process exits non-zero when a message was lost, duplicated or
//! reordered, or when an action did not end as expected. Logs go to stderr
//! (`RUST_LOG` filters them; default `info`).
//!
//! The libraries, the load, the script's tally and the journal check live in
//! `examples/support/`, shared between the examples.

#[path = "support/check.rs"]
mod check;
#[path = "support/libraries.rs"]
mod libraries;
#[path = "support/load.rs"]
mod load;
#[path = "support/logs.rs"]
mod logs;
#[path = "support/script.rs"]
mod script;
#[path = "support/stats.rs"]
mod stats;

use std::process::ExitCode;
use std::time::Duration;

use check::{check_journals, dump, serving};
use kv_proto::Proto;
use libraries::{build_libraries, BrokenLibrary};
use load::{Load, CALL_EVERY};
use molt::{ModuleSpec, Node, NodeConfig};
use script::{Expect, Step, Tally};
use stats::percentile;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// How many client tasks drive the load.
const CLIENTS: usize = 4;
/// The offered load, in messages per second over all clients, unless
/// `LIVE_SWAP_RATE` says otherwise (`0`: as fast as the module takes them).
const DEFAULT_RATE: u64 = 100_000;
/// Load before the first action, and between actions.
const SETTLE: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() -> ExitCode {
    logs::init_tracing("info");
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("live_swap: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<ExitCode, AnyError> {
    // 1. The libraries: kv v1, kv v2, and a truncated copy of kv v2.
    let libs = build_libraries()?;
    let broken = BrokenLibrary::truncate(&libs.kv_v2, "molt-live-swap")?;

    // 2. A node serving kv v1, allowed to load from both directories.
    let node = Node::start(
        NodeConfig::new("live-swap")
            .library_dir(&libs.dir)
            .library_dir(broken.dir())
            .module(ModuleSpec::new("kv", &libs.kv).instances(1)),
    )
    .await?;
    let kv = node.module::<Proto>("kv")?;
    println!("node {} serving kv {}", node.name(), serving(&kv).await?);

    // 3. Steady load, and the operator's script while it runs.
    let rate = offered_rate()?;
    let load = Load::start(&node, CLIENTS, rate)?;
    println!(
        "{CLIENTS} clients pushing {} (every {CALL_EVERY}th message is a call)",
        match rate {
            0 => "as fast as they can".to_string(),
            r => format!("{r} msg/s in all"),
        }
    );
    tokio::time::sleep(SETTLE).await;

    let script = [
        Step::Reload(libs.kv_v2.clone(), Expect::Commit),
        Step::Rollback,
        Step::Reload(broken.path.clone(), Expect::Reject),
        Step::Reload(libs.kv_v2.clone(), Expect::Commit),
        Step::Rollback,
    ];
    let mut tally = Tally::default();
    for step in &script {
        let result = step.perform(&node).await;
        let line = tally.record(step, &result);
        println!(
            "[{:>5.2}s, {:>8} sent] {line}; serving kv {}",
            load.elapsed().as_secs_f64(),
            load.sent(),
            serving(&kv).await?
        );
        tokio::time::sleep(SETTLE).await;
    }

    // 4. Stop the load, then check every journal against what was sent.
    let totals = load.stop().await;
    println!(
        "load: {} messages in {:.2}s ({:.0} msg/s), max mailbox depth {}",
        totals.sent(),
        totals.duration.as_secs_f64(),
        totals.sent() as f64 / totals.duration.as_secs_f64(),
        totals.max_mailbox_depth
    );
    let held = dump(&kv).await?.streams;
    let check = check_journals(&totals.clients, &held);
    let (p50, p99) = (
        percentile(&tally.pauses_us, 50.0),
        percentile(&tally.pauses_us, 99.0),
    );
    println!(
        "pauses (µs, one per instance and committed action): {:?}",
        tally.pauses_us
    );
    println!(
        "library load times (µs, committed reloads): {:?}",
        tally.load_us
    );
    node.shutdown().await;

    let ok = check.is_clean() && tally.unexpected == 0;
    if check.unexpected > 0 {
        println!("{} journal entries were never sent", check.unexpected);
    }
    if tally.unexpected > 0 {
        println!("{} actions did not end as expected", tally.unexpected);
    }
    println!(
        "live_swap: sent={} acked={} lost={} dup={} reordered={} reloads={} rolled_back={} rejected={} pause_p50_us={p50} pause_p99_us={p99}",
        totals.sent(),
        totals.acked(),
        check.lost,
        check.dup,
        check.reordered,
        tally.reloads,
        tally.rolled_back,
        tally.rejected,
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Messages per second to offer, from `LIVE_SWAP_RATE` or the default.
fn offered_rate() -> Result<u64, AnyError> {
    match std::env::var("LIVE_SWAP_RATE") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|e| format!("LIVE_SWAP_RATE={v:?}: {e}").into()),
        _ => Ok(DEFAULT_RATE),
    }
}
