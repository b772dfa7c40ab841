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
//!    `Msg::Push` casts; every 64th message is a `call` instead, so every
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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_proto::{Msg, Proto, Reply};
use molt::cargo_build::{build, BuildRequest, BuiltLibrary};
use molt::{Admin, Error, ModuleHandle, ModuleSpec, Node, NodeConfig, ReloadOptions, ReloadReport};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// How many client tasks drive the load.
const CLIENTS: usize = 4;
/// Every `CALL_EVERY`th message of a client is a call (awaits its reply).
const CALL_EVERY: u64 = 64;
/// The offered load, in messages per second over all clients, unless
/// `LIVE_SWAP_RATE` says otherwise (`0`: as fast as the module takes them).
const DEFAULT_RATE: u64 = 100_000;
/// Load before the first action, and between actions.
const SETTLE: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
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
    let broken = BrokenLibrary::truncate(&libs.kv_v2)?;

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
    let held = journals(&kv).await?;
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

/// Logs to stderr (stdout is the story), filtered by `RUST_LOG`, default `info`.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

// ---------------------------------------------------------------------------
// The libraries

/// The two kv libraries, freshly built, and the directory they are in.
struct Libraries {
    kv: PathBuf,
    kv_v2: PathBuf,
    dir: PathBuf,
}

/// Builds kv and kv v2 with this example's own profile (cargo does nothing
/// when they are up to date) and returns the artifacts cargo reports.
fn build_libraries() -> Result<Libraries, AnyError> {
    let release = !cfg!(debug_assertions);
    let packages = ["kv", "kv-v2"];
    println!(
        "building {} ({}) with cargo, if missing or stale",
        packages.join(" and "),
        if release { "release" } else { "debug" }
    );
    let built = build(&BuildRequest {
        manifest: molt::workspace_dir().join("Cargo.toml"),
        packages: packages.iter().map(|p| p.to_string()).collect(),
        release,
        target_dir: None,
        progress: false,
    })?;
    let find = |target: &str| -> Result<PathBuf, AnyError> {
        built
            .iter()
            .find(|l: &&BuiltLibrary| l.package == target)
            .map(|l| l.path.clone())
            .ok_or_else(|| format!("cargo built no library for {target}: {built:?}").into())
    };
    let (kv, kv_v2) = (find("kv")?, find("kv_v2")?);
    let dir = kv
        .parent()
        .ok_or("the kv library has no directory")?
        .to_path_buf();
    Ok(Libraries { kv, kv_v2, dir })
}

/// A truncated copy of a library (its first half) in a temporary directory.
struct BrokenLibrary {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl BrokenLibrary {
    fn truncate(library: &Path) -> Result<BrokenLibrary, AnyError> {
        let bytes = std::fs::read(library)?;
        let dir = tempfile::Builder::new()
            .prefix("molt-live-swap")
            .tempdir()?;
        let path = dir
            .path()
            .join(library.file_name().ok_or("library path has no file name")?);
        std::fs::write(&path, &bytes[..bytes.len() / 2])?;
        Ok(BrokenLibrary { dir, path })
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

// ---------------------------------------------------------------------------
// The operator's script

/// What a step is expected to end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Commit,
    /// Refused in the prepare phase (nothing touched).
    Reject,
}

/// One admin action.
enum Step {
    /// Reload module kv from this library.
    Reload(PathBuf, Expect),
    /// Roll module kv back to its previous library, down-migrating the state.
    Rollback,
}

impl Step {
    async fn perform(&self, node: &Node) -> Result<ReloadReport, Error> {
        match self {
            Step::Reload(library, _) => node.reload("kv", ReloadOptions::library(library)).await,
            Step::Rollback => node.rollback("kv", false).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Step::Reload(library, _) => format!("reload kv from {}", library.display()),
            Step::Rollback => "rollback kv".to_string(),
        }
    }

    fn expect(&self) -> Expect {
        match self {
            Step::Reload(_, expect) => *expect,
            Step::Rollback => Expect::Commit,
        }
    }
}

/// The outcomes of the script.
#[derive(Default)]
struct Tally {
    /// Committed reloads.
    reloads: u64,
    /// Committed explicit rollbacks.
    rolled_back: u64,
    /// Reloads refused in prepare.
    rejected: u64,
    /// Actions that did not end as expected.
    unexpected: u64,
    /// Every instance's pause of every committed reload or rollback.
    pauses_us: Vec<u64>,
    /// `load_us` of every committed reload.
    load_us: Vec<u64>,
}

impl Tally {
    /// Counts one action's result and describes it in one line.
    fn record(&mut self, step: &Step, result: &Result<ReloadReport, Error>) -> String {
        let what = step.describe();
        let (outcome, line) = match result {
            Ok(r) => {
                self.pauses_us.extend(&r.pauses_us);
                let line = match step {
                    Step::Reload(..) => {
                        self.reloads += 1;
                        self.load_us.push(r.load_us);
                        format!(
                            "{what}: committed {} -> {} (state v{}), load {} µs, pause {} µs",
                            r.from,
                            r.to,
                            r.state_version,
                            r.load_us,
                            r.max_pause().as_micros()
                        )
                    }
                    Step::Rollback => {
                        self.rolled_back += 1;
                        format!(
                            "{what}: committed {} -> {} (state down-migrated to v{}), pause {} µs",
                            r.from,
                            r.to,
                            r.state_version,
                            r.max_pause().as_micros()
                        )
                    }
                };
                (Some(Expect::Commit), line)
            }
            Err(e @ Error::Load { .. }) => {
                self.rejected += 1;
                (
                    Some(Expect::Reject),
                    format!("{what}: rejected in prepare: {e}"),
                )
            }
            Err(e) => (None, format!("{what}: FAILED: {e}")),
        };
        if outcome != Some(step.expect()) {
            self.unexpected += 1;
            return format!("{line} (UNEXPECTED: expected {:?})", step.expect());
        }
        line
    }
}

// ---------------------------------------------------------------------------
// The load

/// What one client sent.
struct ClientTally {
    /// Its journal.
    stream: String,
    /// Messages sent: seqs `0..sent`.
    sent: u64,
    /// Casts that were accepted, and calls that got their reply.
    acked: u64,
    /// The first send or call that failed, if any.
    first_error: Option<String>,
}

/// The clients and a mailbox-depth probe, running until [`Load::stop`].
struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    clients: Vec<tokio::task::JoinHandle<ClientTally>>,
    max_depth: Arc<AtomicU64>,
    probe: tokio::task::JoinHandle<()>,
}

/// What the load did.
struct Totals {
    clients: Vec<ClientTally>,
    duration: Duration,
    max_mailbox_depth: u64,
}

impl Totals {
    fn sent(&self) -> u64 {
        self.clients.iter().map(|c| c.sent).sum()
    }

    fn acked(&self) -> u64 {
        self.clients.iter().map(|c| c.acked).sum()
    }
}

impl Load {
    /// Starts `clients` clients offering `rate` messages per second in all
    /// (0: unpaced).
    fn start(node: &Node, clients: usize, rate: u64) -> Result<Load, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        // Each client sends one batch of CALL_EVERY messages per period.
        let period = (rate > 0)
            .then(|| Duration::from_secs_f64((CALL_EVERY * clients as u64) as f64 / rate as f64));
        let handles = (0..clients)
            .map(|n| {
                let kv = node.module::<Proto>("kv")?;
                Ok(tokio::spawn(client(
                    kv,
                    n,
                    period,
                    stop.clone(),
                    sent.clone(),
                )))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let max_depth = Arc::new(AtomicU64::new(0));
        let probe = tokio::spawn(probe_mailbox(node.admin(), max_depth.clone(), stop.clone()));
        Ok(Load {
            started: Instant::now(),
            stop,
            sent,
            clients: handles,
            max_depth,
            probe,
        })
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Messages sent so far, all clients.
    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    async fn stop(self) -> Totals {
        self.stop.store(true, Ordering::Relaxed);
        let mut clients = Vec::with_capacity(self.clients.len());
        for c in self.clients {
            clients.push(c.await.expect("a client task panicked"));
        }
        let duration = self.started.elapsed();
        let _ = self.probe.await;
        for c in &clients {
            if let Some(e) = &c.first_error {
                println!("{}: first failure: {e}", c.stream);
            }
        }
        Totals {
            clients,
            duration,
            max_mailbox_depth: self.max_depth.load(Ordering::Relaxed),
        }
    }
}

/// One client: pushes `0, 1, 2, ...` to its own journal, in batches of
/// [`CALL_EVERY`] messages, one batch per `period` (or back to back). The
/// last push of a batch is a call: waiting for its reply keeps at most one
/// batch of this client in the mailbox, even while a reload pauses it.
async fn client(
    kv: ModuleHandle<Proto>,
    n: usize,
    period: Option<Duration>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> ClientTally {
    let stream = format!("client-{n}");
    let mut tally = ClientTally {
        stream: stream.clone(),
        sent: 0,
        acked: 0,
        first_error: None,
    };
    let mut ticks = period.map(|p| {
        let mut ticks = tokio::time::interval(p);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    while !stop.load(Ordering::Relaxed) {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        for _ in 0..CALL_EVERY {
            let result = push(&kv, &stream, tally.sent).await;
            tally.sent += 1;
            match result {
                Ok(()) => tally.acked += 1,
                Err(e) => {
                    tally.first_error.get_or_insert(e);
                }
            }
        }
        sent.fetch_add(CALL_EVERY, Ordering::Relaxed);
    }
    tally
}

/// Pushes `seq`: a call for the last message of a batch, else a cast.
async fn push(kv: &ModuleHandle<Proto>, stream: &str, seq: u64) -> Result<(), String> {
    let msg = Msg::Push {
        stream: stream.to_string(),
        seq,
    };
    if (seq + 1) % CALL_EVERY == 0 {
        match kv.call(msg).await {
            Ok(Reply::Ok) => Ok(()),
            Ok(other) => Err(format!("seq {seq}: unexpected reply {other:?}")),
            Err(e) => Err(format!("seq {seq}: {e}")),
        }
    } else {
        kv.cast(msg).map_err(|e| format!("seq {seq}: {e}"))
    }
}

/// Samples the kv instance's mailbox depth until the load stops.
async fn probe_mailbox(admin: Admin, max: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(status) = admin.status().await {
            let depth = status
                .module("kv")
                .and_then(|m| m.instances.first())
                .map_or(0, |i| i.mailbox_depth);
            max.fetch_max(depth, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------
// What the module holds

/// The running code, as the module itself reports it.
async fn serving(kv: &ModuleHandle<Proto>) -> Result<String, AnyError> {
    match kv.call(Msg::Version).await? {
        Reply::Version { code, state } => Ok(format!("{code} (state v{state})")),
        other => Err(format!("unexpected reply to Version: {other:?}").into()),
    }
}

/// Every journal the module holds.
async fn journals(kv: &ModuleHandle<Proto>) -> Result<BTreeMap<String, Vec<u64>>, AnyError> {
    match kv.call(Msg::Dump).await? {
        Reply::Dump(dump) => Ok(dump.streams),
        other => Err(format!("unexpected reply to Dump: {other:?}").into()),
    }
}

/// Sent versus held.
#[derive(Debug, Default)]
struct Check {
    /// Sent seqs missing from their journal.
    lost: u64,
    /// Seqs present more than once.
    dup: u64,
    /// Positions where a seq is smaller than its predecessor.
    reordered: u64,
    /// Entries nobody sent (seqs past a client's last, unknown journals).
    unexpected: u64,
}

impl Check {
    fn is_clean(&self) -> bool {
        self.lost == 0 && self.dup == 0 && self.reordered == 0 && self.unexpected == 0
    }
}

/// Compares every client's journal with the seqs it sent (`0..sent`).
fn check_journals(clients: &[ClientTally], held: &BTreeMap<String, Vec<u64>>) -> Check {
    let mut check = Check::default();
    for c in clients {
        let journal = held.get(&c.stream).map(Vec::as_slice).unwrap_or_default();
        let mut seen: HashMap<u64, u64> = HashMap::with_capacity(journal.len());
        for &seq in journal {
            *seen.entry(seq).or_default() += 1;
        }
        check.lost += (0..c.sent).filter(|seq| !seen.contains_key(seq)).count() as u64;
        check.dup += seen.values().filter(|&&n| n > 1).count() as u64;
        check.unexpected += seen.keys().filter(|&&seq| seq >= c.sent).count() as u64;
        check.reordered += journal.windows(2).filter(|w| w[1] < w[0]).count() as u64;
    }
    check.unexpected += held
        .keys()
        .filter(|stream| !clients.iter().any(|c| &c.stream == *stream))
        .count() as u64;
    check
}

/// The nearest-rank percentile (0 for no samples).
fn percentile(samples: &[u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}
