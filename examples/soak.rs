//! # soak: 1,000 reloads under load, checked end to end (issue #5)
//!
//! ```sh
//! cargo run --release --example soak                    # 1,000 reloads
//! cargo run --release --example soak -- --reloads 300   # any number
//! cargo run --release --example soak -- --rate 40       # almost no state growth
//! ```
//!
//! Linux only (it reads `/proc/self`). What it does:
//!
//! 1. It builds the two example `kv` libraries with its own profile (release
//!    above) and makes a *broken* one: the first half of kv v2's bytes.
//! 2. It starts a node serving module `kv` on kv v1 (one instance, hot reload
//!    off: nothing but this script reloads it) and four clients, each pushing
//!    `0, 1, 2, ...` to its own journal: **4,000 messages per second in
//!    all** by default (`--rate`), paced (each client sends a batch of 64
//!    every 64 ms, the last one a call). At that rate 1,000 reloads take
//!    about a minute on a 2-core machine and the journals end near 220k
//!    entries (~1.7 MiB in memory, ~0.6 MiB encoded): load under way during
//!    every reload, and a state small enough that the swap pauses stay in
//!    the milliseconds and its growth stays small next to the libraries'.
//! 3. The reload cycle, 50 ms apart, until `--reloads` attempts (default
//!    1,000), each attempt counting as one reload: reload kv v2 (committed:
//!    a new copy of kv v2 is mapped), reload the broken library (rejected in
//!    *prepare*, before `dlopen`: nothing mapped), roll back (committed, the
//!    state down-migrated to v1 by kv v2; kv v1 is the copy loaded at start,
//!    kept as the previous library: nothing mapped), and again. So one
//!    attempt in three maps a library copy, which is never unmapped (shared
//!    FINDINGS.md): 1 + 334 copies after 1,000 attempts.
//! 4. Memory: `VmRSS` (`/proc/self/status`) just before the first attempt
//!    and just after the last, and a sample every 100 attempts, split into
//!    the resident pages of the library copies (summed from
//!    `/proc/self/smaps`: the mappings of files in the node's copy folder)
//!    and the rest, with glibc's view of the heap (`mallinfo2`). The module's
//!    state is measured at the start and the end (journal entries, and the
//!    size of its msgpack-encoded `Dump`): it grows with the load, not with
//!    the reloads.
//! 5. It stops the load and checks every journal against the sequence
//!    numbers sent: none lost, none twice, none out of order.
//!
//! The target (issue #5): RSS growth per reload ≤ 1.2 × the module's library
//! file size, where "per reload" is per *attempt* (the issue counts every
//! reload of the cycle: VmRSS after − before, over the attempts) and the
//! library is kv v2, the one each committed upgrade maps. The growth per
//! *new mapping* is reported next to it.
//!
//! The last line of stdout is the summary:
//!
//! ```text
//! soak: reloads=1000 committed=667 rejected=333 sent=… lost=0 dup=0 reordered=0 rss_before_mib=… rss_after_mib=… rss_per_reload_kib=… lib_kib=… ratio=… mapped=335 rss_per_mapping_kib=…
//! ```
//!
//! The process exits non-zero when a message was lost, duplicated or
//! reordered, when an attempt did not end as expected, or when the ratio is
//! over 1.2 (2 for a bad command line). Logs go to stderr (`RUST_LOG`
//! filters them; default `error`: the rejected reloads would each log a
//! warning).

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

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use check::{check_journals, dump, serving};
use kv_proto::{Dump, Proto};
use libraries::{build_libraries, BrokenLibrary};
use load::{Load, CALL_EVERY};
use molt::{ModuleSpec, Node, NodeConfig};
use script::{Expect, Step, Tally};
use stats::percentile;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// How many client tasks drive the load.
const CLIENTS: usize = 4;
/// The offered load, in messages per second over all clients, unless
/// `--rate` says otherwise.
const DEFAULT_RATE: u64 = 4_000;
/// Reload attempts, unless `--reloads` says otherwise.
const DEFAULT_RELOADS: u64 = 1_000;
/// The time between the end of an attempt and the start of the next.
const GAP: Duration = Duration::from_millis(50);
/// Load before the first measurement.
const SETTLE: Duration = Duration::from_millis(500);
/// A memory sample every this many attempts.
const SAMPLE_EVERY: u64 = 100;
/// The target: RSS growth per attempt over the library's file size.
const TARGET_RATIO: f64 = 1.2;

#[tokio::main]
async fn main() -> ExitCode {
    logs::init_tracing("error");
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!(
                "soak: {e}\nusage: soak [--reloads N] [--rate MSG_PER_S]   \
                 (both ≥ 1; defaults {DEFAULT_RELOADS} and {DEFAULT_RATE})"
            );
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command line.
struct Args {
    /// Reload attempts.
    reloads: u64,
    /// Messages per second, all clients.
    rate: u64,
}

impl Args {
    /// `--reloads N` and `--rate R` (or `--reloads=N`, `--rate=R`).
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            reloads: DEFAULT_RELOADS,
            rate: DEFAULT_RATE,
        };
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg, None),
            };
            let slot = match name.as_str() {
                "--reloads" => &mut parsed.reloads,
                "--rate" => &mut parsed.rate,
                other => return Err(format!("unknown argument {other:?}")),
            };
            let value = match inline {
                Some(value) => value,
                None => args.next().ok_or(format!("{name} needs a number"))?,
            };
            *slot = match value.parse() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("{name} {value:?}: expected a whole number ≥ 1")),
            };
        }
        Ok(parsed)
    }
}

async fn run(Args { reloads, rate }: Args) -> Result<ExitCode, AnyError> {
    // 1. The libraries: kv v1, kv v2, and a truncated copy of kv v2.
    let libs = build_libraries()?;
    let broken = BrokenLibrary::truncate(&libs.kv_v2, "molt-soak")?;
    let lib_bytes = std::fs::metadata(&libs.kv_v2)?.len();
    let lib_kib = lib_bytes as f64 / 1024.0;
    println!(
        "libraries: kv v1 {:.0} KiB, kv v2 {lib_kib:.0} KiB (the one every committed upgrade maps)",
        std::fs::metadata(&libs.kv)?.len() as f64 / 1024.0,
    );

    // 2. A node serving kv v1, its library copies in a folder of our own
    //    (on disk, so that their pages stay reclaimable file pages).
    let copies = tempfile::Builder::new()
        .prefix("molt-soak-copies")
        .tempdir()?;
    let copy_dir = copies.path().canonicalize()?;
    let mut config = NodeConfig::new("soak")
        .library_dir(&libs.dir)
        .library_dir(broken.dir())
        .module(ModuleSpec::new("kv", &libs.kv).instances(1));
    config.copy_dir = Some(copy_dir.clone());
    config.hot_reload = false;
    let node = Node::start(config).await?;
    let kv = node.module::<Proto>("kv")?;
    println!("node {} serving kv {}", node.name(), serving(&kv).await?);

    // 3. Steady load, then the reload cycle while it runs.
    let load = Load::start(&node, CLIENTS, rate)?;
    println!(
        "{CLIENTS} clients pushing {rate} msg/s in all (every {CALL_EVERY}th message is a call); \
         {reloads} reload attempts, {} ms apart: v2 (commit), broken (reject), rollback (commit), ...",
        GAP.as_millis()
    );
    tokio::time::sleep(SETTLE).await;

    let state_before = StateSize::of(&dump(&kv).await?)?;
    let mapped_before = molt::mapped_libraries();
    let before = Memory::sample(&copy_dir)?;
    let mut samples = vec![Sample::new(
        0,
        &load,
        &Tally::default(),
        &[],
        before.clone(),
    )];

    let cycle = [
        Step::Reload(libs.kv_v2.clone(), Expect::Commit),
        Step::Reload(broken.path.clone(), Expect::Reject),
        Step::Rollback,
    ];
    let mut tally = Tally::default();
    let mut window_pauses: Vec<u64> = Vec::new();
    let cycle_started = Instant::now();
    for attempt in 1..=reloads {
        let step = &cycle[((attempt - 1) % 3) as usize];
        let result = step.perform(&node).await;
        let unexpected = tally.unexpected;
        let line = tally.record(step, &result);
        if let Ok(report) = &result {
            window_pauses.extend(&report.pauses_us);
        }
        // The first cycle in full, then only what went wrong.
        if attempt <= 3 || tally.unexpected > unexpected {
            println!("[attempt {attempt:>4}] {line}");
        }
        if attempt % SAMPLE_EVERY == 0 || attempt == reloads {
            let memory = Memory::sample(&copy_dir)?;
            samples.push(Sample::new(attempt, &load, &tally, &window_pauses, memory));
            window_pauses.clear();
        }
        if attempt < reloads {
            tokio::time::sleep(GAP).await;
        }
    }
    let cycle_time = cycle_started.elapsed();
    let after = samples
        .last()
        .expect("the last attempt is sampled")
        .memory
        .clone();
    let mapped_after = molt::mapped_libraries();
    println!("serving kv {} after the last attempt", serving(&kv).await?);

    // 4. Stop the load, then check every journal against what was sent.
    let totals = load.stop().await;
    let held = dump(&kv).await?;
    let state_after = StateSize::of(&held)?;
    let check = check_journals(&totals.clients, &held.streams);
    drop(held);
    node.shutdown().await;

    // 5. The report.
    println!();
    print_table(&samples);
    println!();
    println!(
        "load: {} messages ({} acked) in {:.1}s ({:.0} msg/s), max mailbox depth {}; {reloads} attempts in {:.1}s",
        totals.sent(),
        totals.acked(),
        totals.duration.as_secs_f64(),
        totals.sent() as f64 / totals.duration.as_secs_f64(),
        totals.max_mailbox_depth,
        cycle_time.as_secs_f64(),
    );
    println!(
        "pauses: p50 {} µs, p99 {} µs, max {} µs over {} committed attempts; library load p50 {} µs, max {} µs",
        percentile(&tally.pauses_us, 50.0),
        percentile(&tally.pauses_us, 99.0),
        tally.pauses_us.iter().max().copied().unwrap_or(0),
        tally.reloads + tally.rolled_back,
        percentile(&tally.load_us, 50.0),
        tally.load_us.iter().max().copied().unwrap_or(0),
    );

    let committed = tally.reloads + tally.rolled_back;
    let new_mappings = mapped_after.saturating_sub(mapped_before);
    let growth_kib = after.rss_kib as f64 - before.rss_kib as f64;
    let per_reload_kib = growth_kib / reloads as f64;
    let per_mapping_kib = growth_kib / new_mappings.max(1) as f64;
    let ratio = per_reload_kib / lib_kib;
    let lib_growth_kib = after.lib_rss_kib as f64 - before.lib_rss_kib as f64;
    let rest_growth_kib = growth_kib - lib_growth_kib;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "mapped libraries: {mapped_before} before, {mapped_after} after ({new_mappings} new: one per committed \
         upgrade, {} of them; rollbacks reuse the kept kv v1, the broken library is rejected before dlopen); \
         smaps shows {} library copies",
        tally.reloads, after.lib_files
    );
    println!(
        "RSS: {:.1} MiB before, {:.1} MiB after, +{:.1} MiB = {per_reload_kib:.0} KiB per attempt, \
         {per_mapping_kib:.0} KiB per new mapping (library file {lib_kib:.0} KiB: {:.2}× per mapping)",
        mib(before.rss_kib),
        mib(after.rss_kib),
        growth_kib / 1024.0,
        per_mapping_kib / lib_kib,
    );
    let per_mapping = |kib: f64| kib / new_mappings.max(1) as f64;
    println!(
        "  library copies' resident pages: {:.1} -> {:.1} MiB, +{:.0} KiB per new mapping ({:.2}× the file), \
         of which written (relocated data, not reclaimable) {:.0} KiB, clean file pages {:.0} KiB",
        mib(before.lib_rss_kib),
        mib(after.lib_rss_kib),
        per_mapping(lib_growth_kib),
        per_mapping(lib_growth_kib) / lib_kib,
        per_mapping(after.lib_anon_kib as f64 - before.lib_anon_kib as f64),
        per_mapping(
            (after.lib_rss_kib - after.lib_anon_kib) as f64
                - (before.lib_rss_kib - before.lib_anon_kib) as f64
        ),
    );
    println!(
        "  the rest: {:.1} -> {:.1} MiB, {rest_growth_kib:+.0} KiB in all ({:+.1} KiB per attempt)",
        mib(before.rss_kib.saturating_sub(before.lib_rss_kib)),
        mib(after.rss_kib.saturating_sub(after.lib_rss_kib)),
        rest_growth_kib / reloads as f64,
    );
    if let (Some(b), Some(a)) = (before.heap, after.heap) {
        println!(
            "    of which malloc: in live allocations {:.1} -> {:.1} MiB, freed but kept {:.1} -> {:.1} MiB",
            mib(b.in_use_kib),
            mib(a.in_use_kib),
            mib(b.free_kib),
            mib(a.free_kib),
        );
    }
    println!(
        "  (status: RssAnon {:.1} -> {:.1} MiB, RssFile {:.1} -> {:.1} MiB, RssShmem {:.1} -> {:.1} MiB)",
        mib(before.anon_kib),
        mib(after.anon_kib),
        mib(before.file_kib),
        mib(after.file_kib),
        mib(before.shmem_kib),
        mib(after.shmem_kib),
    );
    println!(
        "module state: {} journal entries ({:.0} KiB encoded) before, {} ({:.0} KiB encoded) at the end: \
         +{} entries, at least +{:.0} KiB of heap (8 bytes each)",
        state_before.entries,
        state_before.encoded as f64 / 1024.0,
        state_after.entries,
        state_after.encoded as f64 / 1024.0,
        state_after.entries - state_before.entries,
        (state_after.entries - state_before.entries) as f64 * 8.0 / 1024.0,
    );
    println!(
        "target: RSS growth per reload attempt ≤ {TARGET_RATIO} × library file size: \
         {per_reload_kib:.0} KiB / {lib_kib:.0} KiB = {ratio:.2}: {}",
        if ratio <= TARGET_RATIO {
            "met"
        } else {
            "MISSED"
        }
    );

    let ok = check.is_clean() && tally.unexpected == 0 && ratio <= TARGET_RATIO;
    if check.unexpected > 0 {
        println!("{} journal entries were never sent", check.unexpected);
    }
    if tally.unexpected > 0 {
        println!("{} attempts did not end as expected", tally.unexpected);
    }
    println!(
        "soak: reloads={reloads} committed={committed} rejected={} sent={} lost={} dup={} reordered={} \
         rss_before_mib={:.1} rss_after_mib={:.1} rss_per_reload_kib={per_reload_kib:.0} lib_kib={lib_kib:.0} \
         ratio={ratio:.2} mapped={mapped_after} rss_per_mapping_kib={per_mapping_kib:.0}",
        tally.rejected,
        totals.sent(),
        check.lost,
        check.dup,
        check.reordered,
        mib(before.rss_kib),
        mib(after.rss_kib),
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

// ---------------------------------------------------------------------------
// Measurements

/// The process's resident memory, in KiB.
#[derive(Debug, Clone)]
struct Memory {
    /// `VmRSS`.
    rss_kib: u64,
    /// `RssAnon`, `RssFile`, `RssShmem` (they add up to `VmRSS`).
    anon_kib: u64,
    file_kib: u64,
    shmem_kib: u64,
    /// Resident pages of the library copies' mappings (`Rss` in smaps).
    lib_rss_kib: u64,
    /// Of those, the pages the process wrote (`Anonymous` in smaps: the
    /// relocated data); the others are clean file pages, reclaimable.
    lib_anon_kib: u64,
    /// Distinct library copies mapped.
    lib_files: usize,
    /// The allocator's view of the heap (part of "the rest"), when known.
    heap: Option<Heap>,
}

/// glibc's allocator, all arenas (`mallinfo2`), in KiB.
#[derive(Debug, Clone, Copy)]
struct Heap {
    /// In live allocations (`uordblks + hblkhd`).
    in_use_kib: u64,
    /// Freed but kept by the allocator (`fordblks`).
    free_kib: u64,
}

impl Heap {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn sample() -> Option<Heap> {
        /// `struct mallinfo2` (glibc 2.33 and later): ten `size_t`s.
        #[repr(C)]
        struct MallInfo2 {
            _arena: usize,
            _ordblks: usize,
            _smblks: usize,
            _hblks: usize,
            hblkhd: usize,
            _usmblks: usize,
            _fsmblks: usize,
            uordblks: usize,
            fordblks: usize,
            _keepcost: usize,
        }
        extern "C" {
            fn mallinfo2() -> MallInfo2;
        }
        // SAFETY: mallinfo2 takes no arguments and returns the struct above
        // by value; it only reads the allocator's bookkeeping (under its
        // locks). Every allocation of this process, the module libraries'
        // included (their std uses the system allocator too), is in it.
        let m = unsafe { mallinfo2() };
        Some(Heap {
            in_use_kib: ((m.uordblks + m.hblkhd) / 1024) as u64,
            free_kib: (m.fordblks / 1024) as u64,
        })
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn sample() -> Option<Heap> {
        None
    }
}

impl Memory {
    /// Reads `/proc/self/status` and `/proc/self/smaps`; library copies are
    /// the mapped files inside `copy_dir` (unlinked after loading: smaps
    /// names them `... (deleted)`).
    fn sample(copy_dir: &Path) -> Result<Memory, AnyError> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let field = |name: &str| -> Result<u64, AnyError> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| format!("no {name} in /proc/self/status").into())
        };
        let smaps = std::fs::read_to_string("/proc/self/smaps")?;
        let prefix = copy_dir.to_string_lossy();
        let (mut lib_rss_kib, mut lib_anon_kib) = (0, 0);
        let mut files = std::collections::BTreeSet::new();
        let mut in_library = false;
        for line in smaps.lines() {
            let Some(first) = line.split_whitespace().next() else {
                continue;
            };
            if !first.ends_with(':') {
                // A mapping's header: address perms offset dev inode [path].
                let path = mapping_path(line);
                in_library = path.starts_with(prefix.as_ref());
                if in_library {
                    files.insert(path.trim_end_matches(" (deleted)").to_string());
                }
            } else if in_library {
                let kib = || {
                    line.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                match first {
                    "Rss:" => lib_rss_kib += kib(),
                    "Anonymous:" => lib_anon_kib += kib(),
                    _ => {}
                }
            }
        }
        Ok(Memory {
            rss_kib: field("VmRSS")?,
            anon_kib: field("RssAnon")?,
            file_kib: field("RssFile")?,
            shmem_kib: field("RssShmem")?,
            lib_rss_kib,
            lib_anon_kib,
            lib_files: files.len(),
            heap: Heap::sample(),
        })
    }
}

/// The path of a smaps header line (after five fields), or "".
fn mapping_path(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start();
        match rest.find(' ') {
            Some(end) => rest = &rest[end..],
            None => return "",
        }
    }
    rest.trim()
}

/// The size of the module's state.
struct StateSize {
    /// Journal entries, all journals.
    entries: u64,
    /// Bytes of the `Dump` encoded as msgpack with named fields (the format
    /// a swap's snapshot uses).
    encoded: usize,
}

impl StateSize {
    fn of(dump: &Dump) -> Result<StateSize, AnyError> {
        Ok(StateSize {
            entries: dump.streams.values().map(|j| j.len() as u64).sum(),
            encoded: rmp_serde::to_vec_named(dump)?.len(),
        })
    }
}

/// One row of the table.
struct Sample {
    attempts: u64,
    elapsed: Duration,
    committed: u64,
    rejected: u64,
    mapped: usize,
    sent: u64,
    /// The pauses of the attempts since the previous row: p50 and max, µs.
    pause_p50_us: u64,
    pause_max_us: u64,
    memory: Memory,
}

impl Sample {
    fn new(attempts: u64, load: &Load, tally: &Tally, pauses: &[u64], memory: Memory) -> Sample {
        Sample {
            attempts,
            elapsed: load.elapsed(),
            committed: tally.reloads + tally.rolled_back,
            rejected: tally.rejected,
            mapped: molt::mapped_libraries(),
            sent: load.sent(),
            pause_p50_us: percentile(pauses, 50.0),
            pause_max_us: pauses.iter().max().copied().unwrap_or(0),
            memory,
        }
    }
}

fn print_table(samples: &[Sample]) {
    println!(
        "| attempts | time (load) | committed | rejected | mapped | VmRSS | libraries' RSS | the rest | malloc in use / free | sent | pause p50 / max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mib = |kib: u64| kib as f64 / 1024.0;
    for s in samples {
        let m = &s.memory;
        println!(
            "| {} | {:.1} s | {} | {} | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} | {} | {} |",
            s.attempts,
            s.elapsed.as_secs_f64(),
            s.committed,
            s.rejected,
            s.mapped,
            mib(m.rss_kib),
            mib(m.lib_rss_kib),
            mib(m.rss_kib.saturating_sub(m.lib_rss_kib)),
            m.heap.map_or("?".to_string(), |h| format!(
                "{:.1} / {:.1} MiB",
                mib(h.in_use_kib),
                mib(h.free_kib)
            )),
            s.sent,
            if s.attempts == 0 {
                "(before)".to_string()
            } else {
                format!("{} / {} µs", s.pause_p50_us, s.pause_max_us)
            },
        );
    }
}
