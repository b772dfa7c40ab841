//! The method of the side-by-side benches (molt against plain ractor, in one
//! process): shared by `benches/throughput.rs` and `benches/savina.rs`
//! (included with `#[path]`), so both measure and report the same way.
//!
//! - Warm-up rounds first, not counted (libraries paged in, allocator and
//!   caches warm, the tokio workers spun up).
//! - Then counted rounds, each running every row on both sides back to back,
//!   the side that goes first alternating from one round to the next (molt,
//!   ractor; ractor, molt; ...), so that neither always runs on a machine
//!   the other has just warmed or loaded.
//! - Per row: the median time of each side, and the throughput ratio of
//!   each round's pair (ractor's time / molt's time), reported as the median
//!   of those per-round ratios with their spread (min–max and the
//!   interquartile range). A pair shares the moment's load, so its ratio is
//!   steadier than a ratio of separate medians on a shared machine.
//!
//! `MOLT_BENCH_ROUNDS=n` sets the counted rounds (fewer for a quick look
//! while developing); the default is [`DEFAULT_ROUNDS`].
//! `MOLT_BENCH_SIDE=molt` (or `ractor`) runs one side alone, for a profiler
//! (`perf record`) to see only that side's work; the ratios are then
//! meaningless (100 %). `MOLT_BENCH_ROWS=a,b` runs only the rows so named
//! (`cast`, `call`; `ping-pong`, `thread ring`, ...).

use std::time::Duration;

/// Counted rounds by default (the issue asks for at least 7).
pub const DEFAULT_ROUNDS: usize = 11;

/// Uncounted rounds before them.
pub const WARMUP_ROUNDS: usize = 1;

/// The counted rounds: `MOLT_BENCH_ROUNDS` when set to a positive number,
/// else [`DEFAULT_ROUNDS`].
pub fn rounds() -> usize {
    std::env::var("MOLT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r: &usize| r > 0)
        .unwrap_or(DEFAULT_ROUNDS)
}

/// Which side runs: both, or only one when profiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sides {
    /// Both, side by side (the default).
    Both,
    /// Only molt (`MOLT_BENCH_SIDE=molt`).
    Molt,
    /// Only ractor (`MOLT_BENCH_SIDE=ractor`).
    Ractor,
}

/// What `MOLT_BENCH_SIDE` asks for.
///
/// Panics on a value that is neither `molt` nor `ractor`.
pub fn sides() -> Sides {
    match std::env::var("MOLT_BENCH_SIDE").as_deref() {
        Err(_) | Ok("") => Sides::Both,
        Ok("molt") => Sides::Molt,
        Ok("ractor") => Sides::Ractor,
        Ok(other) => panic!("MOLT_BENCH_SIDE={other}: expected molt or ractor"),
    }
}

/// Whether the row `name` runs: every row unless `MOLT_BENCH_ROWS` lists
/// some (comma-separated names).
pub fn selected(name: &str) -> bool {
    match std::env::var("MOLT_BENCH_ROWS") {
        Ok(rows) if !rows.trim().is_empty() => rows.split(',').any(|r| r.trim() == name),
        _ => true,
    }
}

/// One round of the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// 0-based, warm-up rounds included.
    pub index: usize,
    /// Whether its times count (false for the warm-up).
    pub counted: bool,
    /// Whether molt runs before ractor in this round.
    pub molt_first: bool,
    /// Which sides run.
    pub sides: Sides,
}

/// The warm-up rounds, then `counted` rounds; the side that runs first
/// alternates.
pub fn schedule(counted: usize) -> impl Iterator<Item = Round> {
    let sides = sides();
    (0..WARMUP_ROUNDS + counted).map(move |index| Round {
        index,
        counted: index >= WARMUP_ROUNDS,
        molt_first: index % 2 == 0,
        sides,
    })
}

/// Evaluates `$molt` and `$ractor` (each a `Duration`, `.await` allowed) in
/// the order `$round` says; gives `(molt, ractor)`. When only one side runs
/// ([`Sides`]), its time stands for both.
macro_rules! both {
    ($round:expr, $molt:expr, $ractor:expr) => {
        if $round.sides == side_by_side::Sides::Molt {
            let m = $molt;
            (m, m)
        } else if $round.sides == side_by_side::Sides::Ractor {
            let r = $ractor;
            (r, r)
        } else if $round.molt_first {
            let m = $molt;
            let r = $ractor;
            (m, r)
        } else {
            let r = $ractor;
            let m = $molt;
            (m, r)
        }
    };
}
pub(crate) use both;

/// The paired times of one row, one pair per counted round.
#[derive(Debug, Clone, Default)]
pub struct Pair {
    molt: Vec<Duration>,
    ractor: Vec<Duration>,
}

/// What a row reports.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Median time of molt's runs.
    pub molt: Duration,
    /// Median time of ractor's runs.
    pub ractor: Duration,
    /// Median of the per-round throughput ratios, in % (ractor's time /
    /// molt's time: 100 % is as fast as ractor).
    pub ratio: f64,
    /// Smallest per-round ratio, in %.
    pub min: f64,
    /// First quartile of the per-round ratios, in %.
    pub q1: f64,
    /// Third quartile of the per-round ratios, in %.
    pub q3: f64,
    /// Largest per-round ratio, in %.
    pub max: f64,
}

impl Pair {
    /// Records one round's `(molt, ractor)` times; a warm-up round's are
    /// dropped.
    pub fn push(&mut self, round: Round, (molt, ractor): (Duration, Duration)) {
        if round.counted {
            self.molt.push(molt);
            self.ractor.push(ractor);
        }
    }

    /// Medians and the per-round ratios' median and spread.
    ///
    /// Panics when no round was counted.
    pub fn summary(&self) -> Summary {
        assert!(!self.molt.is_empty(), "no counted round");
        let mut ratios: Vec<f64> = self
            .molt
            .iter()
            .zip(&self.ractor)
            .map(|(m, r)| 100.0 * r.as_secs_f64() / m.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        Summary {
            molt: median(self.molt.clone()),
            ractor: median(self.ractor.clone()),
            ratio: quantile(&ratios, 0.5),
            min: ratios[0],
            q1: quantile(&ratios, 0.25),
            q3: quantile(&ratios, 0.75),
            max: ratios[ratios.len() - 1],
        }
    }
}

impl Summary {
    /// The ratio cells: median, min–max, IQR (`| 91 % | 84–97 % | 88–93 % |`
    /// without the outer bars).
    pub fn ratio_cells(&self) -> String {
        format!(
            "{:.0} % | {:.0}–{:.0} % | {:.0}–{:.0} %",
            self.ratio, self.min, self.max, self.q1, self.q3
        )
    }

    /// molt's extra time per message, from the medians, in ns.
    pub fn extra_ns(&self, messages: u64) -> f64 {
        (self.molt.as_secs_f64() - self.ractor.as_secs_f64()) * 1e9 / messages as f64
    }
}

/// The header cells matching [`Summary::ratio_cells`].
pub const RATIO_HEADER: &str =
    "molt / ractor (median of rounds) | per round, min–max | per round, IQR";

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The `p` quantile of sorted `v`, linearly interpolated.
fn quantile(v: &[f64], p: f64) -> f64 {
    let at = p * (v.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (at - lo as f64)
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), for the report:
/// the machine is shared.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The line under a table: how it was measured.
pub fn method_note(rounds: usize, load_before: &str) -> String {
    let alone = match sides() {
        Sides::Both => "",
        Sides::Molt => "ONLY MOLT RAN (MOLT_BENCH_SIDE): the ratios mean nothing; ",
        Sides::Ractor => "ONLY RACTOR RAN (MOLT_BENCH_SIDE): the ratios mean nothing; ",
    };
    format!(
        "{alone}{rounds} counted rounds after {WARMUP_ROUNDS} warm-up round(s), molt and ractor back to back \
         in each, the first side alternating; molt / ractor is the median of the per-round \
         throughput ratios (ractor time / molt time); load average {load_before} before, {} after",
        load_average()
    )
}
