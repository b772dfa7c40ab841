//! Handling figures per module and version (docs/semantics.md "Handling
//! figures"): plain, serializable data a rollout's gate compares (the canary's
//! figures against the old version's on the same node), plus the per-instance
//! cells the module actor writes them into.
//!
//! - Counts (handled, handler errors, panics, restarts) are exact.
//! - Handling latency is **sampled**: one message in [`SAMPLE_EVERY`] per
//!   instance (and per keyed actor) is timed (two clock reads), the others
//!   pay one counter check. Samples go into a fixed log-bucket
//!   [`Histogram`]: four buckets per power of two from 64 ns to 2³⁴ ns
//!   (~17.2 s), one below and one above, so a percentile is a bucket's upper
//!   edge: never below the true value, at most 25 % above it.
//! - A module's figures come in periods: the serving version's since it took
//!   over (its load, a committed reload or a rollback), and the previous
//!   version's as they stood when it was replaced. A gate that wants its own
//!   window takes two readings of the same period and subtracts them
//!   ([`ModuleFigures::window_since`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One message in this many is timed, per instance (the first one is).
pub const SAMPLE_EVERY: u32 = 16;

/// Values below `2^MIN_EXP` ns go to bucket 0.
const MIN_EXP: u32 = 6;
/// Values from `2^MAX_EXP` ns go to the last bucket.
const MAX_EXP: u32 = 34;
/// Buckets per power of two (`2^SUB_BITS`).
const SUB_BITS: u32 = 2;
const SUBS: usize = 1 << SUB_BITS;

/// The number of buckets of a [`Histogram`].
pub const BUCKETS: usize = 2 + (MAX_EXP - MIN_EXP) as usize * SUBS;

/// The bucket of a value, in nanoseconds.
pub fn bucket_of(ns: u64) -> usize {
    if ns < 1 << MIN_EXP {
        return 0;
    }
    if ns >= 1 << MAX_EXP {
        return BUCKETS - 1;
    }
    let exp = 63 - ns.leading_zeros();
    let sub = (ns >> (exp - SUB_BITS)) as usize & (SUBS - 1);
    1 + (exp - MIN_EXP) as usize * SUBS + sub
}

/// The upper edge of a bucket in nanoseconds (exclusive: its values are
/// below it). The last bucket, open above, answers its lower edge, 2³⁴ ns.
pub fn upper_edge_ns(bucket: usize) -> u64 {
    if bucket == 0 {
        return 1 << MIN_EXP;
    }
    if bucket >= BUCKETS - 1 {
        return 1 << MAX_EXP;
    }
    let exp = MIN_EXP + ((bucket - 1) / SUBS) as u32;
    let sub = ((bucket - 1) % SUBS) as u64;
    (SUBS as u64 + sub + 1) << (exp - SUB_BITS)
}

/// Sampled handling times in fixed log buckets (see the module doc).
/// Serialized sparsely: `[[bucket, count], ...]`, empty buckets left out.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.nonzero()).finish()
    }
}

impl Histogram {
    /// Counts one value, in nanoseconds.
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket_of(ns)] += 1;
    }

    /// The values counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Each bucket's count.
    pub fn counts(&self) -> &[u64; BUCKETS] {
        &self.counts
    }

    /// Adds `other`'s counts (merging instances).
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }

    /// The counts added since `earlier`, a reading of the same histogram
    /// (a bucket never goes down; saturating if it did).
    pub fn minus(&self, earlier: &Histogram) -> Histogram {
        let mut out = self.clone();
        for (a, b) in out.counts.iter_mut().zip(earlier.counts.iter()) {
            *a = a.saturating_sub(*b);
        }
        out
    }

    /// The `q` quantile (0 < q ≤ 1) as its bucket's upper edge, in
    /// nanoseconds; 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (bucket, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_edge_ns(bucket);
            }
        }
        upper_edge_ns(BUCKETS - 1)
    }

    /// The highest non-empty bucket's upper edge, in nanoseconds; 0 when empty.
    pub fn max_ns(&self) -> u64 {
        self.counts
            .iter()
            .rposition(|&n| n > 0)
            .map_or(0, upper_edge_ns)
    }

    fn nonzero(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i, *n))
    }
}

impl Serialize for Histogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.nonzero().map(|(i, n)| (i as u32, n)))
    }
}

impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs: Vec<(u32, u64)> = Vec::deserialize(d)?;
        let mut h = Histogram::default();
        for (i, n) in pairs {
            let i = i as usize;
            if i >= BUCKETS {
                return Err(serde::de::Error::custom(format!(
                    "histogram bucket {i} out of range (0..{BUCKETS})"
                )));
            }
            h.counts[i] += n;
        }
        Ok(h)
    }
}

/// What a histogram says, in nanoseconds (bucket upper edges: never below
/// the true value, at most 25 % above).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Messages timed (one in [`SAMPLE_EVERY`] per instance).
    pub count: u64,
    /// Median handling time.
    pub p50_ns: u64,
    /// 99th percentile handling time.
    pub p99_ns: u64,
    /// The slowest timed message (its bucket's upper edge).
    pub max_ns: u64,
    /// Mean of the timed messages (exact).
    pub mean_ns: u64,
}

/// The figures of one module over one period: counts exact, latency sampled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Messages handled (casts, calls, answers to `ctx.ask`).
    pub handled: u64,
    /// Handlers that returned an error (panics not included).
    pub errors: u64,
    /// Handlers that panicked.
    pub panics: u64,
    /// Instances restarted from a checkpoint (after panics in a row, a
    /// failed actor, a forced reload).
    pub restarts: u64,
    /// The sum of the timed messages' handling times, in nanoseconds.
    pub latency_sum_ns: u64,
    /// The timed messages' handling times.
    pub latency: Histogram,
}

impl Figures {
    /// Adds `other` (another instance, a retired actor).
    pub fn add(&mut self, other: &Figures) {
        self.handled += other.handled;
        self.errors += other.errors;
        self.panics += other.panics;
        self.restarts += other.restarts;
        self.add_latency(other.latency_sum_ns, &other.latency);
    }

    /// Adds timed messages: their handling times' sum and histogram.
    pub(crate) fn add_latency(&mut self, sum_ns: u64, latency: &Histogram) {
        self.latency_sum_ns = self.latency_sum_ns.wrapping_add(sum_ns);
        self.latency.merge(latency);
    }

    /// What was added since `earlier`, a reading of the same period or
    /// counters (each field saturating at 0).
    pub fn minus(&self, earlier: &Figures) -> Figures {
        Figures {
            handled: self.handled.saturating_sub(earlier.handled),
            errors: self.errors.saturating_sub(earlier.errors),
            panics: self.panics.saturating_sub(earlier.panics),
            restarts: self.restarts.saturating_sub(earlier.restarts),
            latency_sum_ns: self.latency_sum_ns.wrapping_sub(earlier.latency_sum_ns),
            latency: self.latency.minus(&earlier.latency),
        }
    }

    /// Failed handlers (errors and panics) per message handled; 0 when none
    /// was handled.
    pub fn error_rate(&self) -> f64 {
        if self.handled == 0 {
            return 0.0;
        }
        (self.errors + self.panics) as f64 / self.handled as f64
    }

    /// The latency histogram summarized.
    pub fn latency_summary(&self) -> LatencySummary {
        let count = self.latency.count();
        LatencySummary {
            count,
            p50_ns: self.latency.quantile_ns(0.5),
            p99_ns: self.latency.quantile_ns(0.99),
            max_ns: self.latency.max_ns(),
            mean_ns: self.latency_sum_ns.checked_div(count).unwrap_or(0),
        }
    }
}

/// One version's figures over one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionFigures {
    /// The code version that served.
    pub code_version: String,
    /// When the period began (the version took over), Unix milliseconds.
    pub since_unix_ms: u64,
    /// When it ended (the version was replaced); absent while it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_unix_ms: Option<u64>,
    /// The figures of the period.
    pub figures: Figures,
    /// `figures.latency` summarized.
    pub latency: LatencySummary,
    /// `figures.error_rate()`.
    pub error_rate: f64,
}

impl VersionFigures {
    /// The figures of `code_version` from `since` to `until` (summary and
    /// rate computed).
    pub fn new(
        code_version: String,
        since_unix_ms: u64,
        until_unix_ms: Option<u64>,
        figures: Figures,
    ) -> Self {
        VersionFigures {
            code_version,
            since_unix_ms,
            until_unix_ms,
            latency: figures.latency_summary(),
            error_rate: figures.error_rate(),
            figures,
        }
    }
}

/// A module's handling figures on this node (`AdminMsg::Figures`,
/// `GET /modules/{name}/figures`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleFigures {
    /// The module.
    pub module: String,
    /// When this reading was taken, Unix milliseconds.
    pub at_unix_ms: u64,
    /// One message in this many is timed.
    pub sample_every: u32,
    /// The serving version, since it took over.
    pub current: VersionFigures,
    /// The version it replaced, as it stood then (absent before the first
    /// reload or rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<VersionFigures>,
    /// Every version since the module started (what Prometheus exports).
    pub total: Figures,
}

impl ModuleFigures {
    /// The serving version's figures between `earlier` and this reading
    /// (a gate's own window); `None` when `earlier` belongs to another
    /// period (a reload or rollback came between the two readings).
    pub fn window_since(&self, earlier: &ModuleFigures) -> Option<Figures> {
        let same = self.module == earlier.module
            && self.current.code_version == earlier.current.code_version
            && self.current.since_unix_ms == earlier.current.since_unix_ms;
        same.then(|| self.current.figures.minus(&earlier.current.figures))
    }
}

/// Sampled handling times (the latency sum and buckets) where actors write
/// them: a pool instance has cells of its own, written by its actor alone;
/// a keyed module's actors all write into one set of their module's
/// ([`LatencyCells::shared`]), so an activation allocates no buckets and a
/// stopped actor hands over no latency (issue #11 §3). On cache lines of
/// their own (128 bytes: adjacent-line prefetch pairs them).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct LatencyCells {
    /// Written by many actors (read-modify-writes), or by one (a relaxed
    /// load and store).
    many_writers: bool,
    sum_ns: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl LatencyCells {
    fn new(many_writers: bool) -> Self {
        LatencyCells {
            many_writers,
            sum_ns: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Cells that the actors of a keyed module share (each timed message a
    /// read-modify-write: one in [`SAMPLE_EVERY`]).
    pub(crate) fn shared() -> Arc<Self> {
        Arc::new(Self::new(true))
    }

    /// Counts one timed message.
    #[inline]
    fn timed(&self, ns: u64) {
        let bucket = &self.buckets[bucket_of(ns)];
        if self.many_writers {
            bucket.fetch_add(1, Ordering::Relaxed);
            self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        } else {
            bump(bucket, 1);
            bump(&self.sum_ns, ns);
        }
    }

    /// The latency sum and histogram now.
    pub(crate) fn read(&self) -> (u64, Histogram) {
        let mut h = Histogram::default();
        for (to, from) in h.counts.iter_mut().zip(&self.buckets) {
            *to = from.load(Ordering::Relaxed);
        }
        (self.sum_ns.load(Ordering::Relaxed), h)
    }
}

/// The figures one instance (or keyed actor) writes: the counts status does
/// not already keep, and where its sampled latency goes. The actor is the
/// only writer of its counts: each update is a relaxed load and store
/// (plain moves on x86-64 and aarch64, no locked read-modify-write), so a
/// reader (the supervisor, answering a gate or a scrape) gets them without
/// a message to the actor.
#[derive(Debug)]
pub(crate) struct FigureCells {
    panics: AtomicU64,
    /// Its own (a pool instance), or its keyed module's (cells with many
    /// writers: a keyed actor's).
    latency: Arc<LatencyCells>,
}

impl Default for FigureCells {
    /// A pool instance's: latency cells of its own.
    fn default() -> Self {
        FigureCells {
            panics: AtomicU64::new(0),
            latency: Arc::new(LatencyCells::new(false)),
        }
    }
}

/// `cell += by`, by its only writer.
#[inline]
fn bump(cell: &AtomicU64, by: u64) {
    cell.store(
        cell.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

impl FigureCells {
    /// A keyed actor's: its latency goes into its module's `cells`
    /// ([`LatencyCells::shared`]).
    pub(crate) fn keyed(cells: &Arc<LatencyCells>) -> Self {
        FigureCells {
            panics: AtomicU64::new(0),
            latency: cells.clone(),
        }
    }

    /// Whether these are a keyed actor's: its latency cells are its
    /// module's, shared with the module's other actors.
    fn is_keyed(&self) -> bool {
        self.latency.many_writers
    }

    /// Counts one timed message (by the instance's actor only).
    #[inline]
    pub(crate) fn timed(&self, ns: u64) {
        self.latency.timed(ns);
    }

    /// Counts one handler panic (by the instance's actor only).
    pub(crate) fn panicked(&self) {
        bump(&self.panics, 1);
    }

    /// The panics counted.
    pub(crate) fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// The latency sum and histogram of this instance now; `None` for a
    /// keyed actor, whose latency is its module's (read once for all of
    /// them).
    pub(crate) fn latency(&self) -> Option<(u64, Histogram)> {
        (!self.is_keyed()).then(|| self.latency.read())
    }

    /// Takes over `old`'s figures (a replacement pool instance's counters
    /// go on, as its `handled` does); before the new actor starts.
    pub(crate) fn copy_from(&self, old: &FigureCells) {
        let copy = |from: &AtomicU64, to: &AtomicU64| {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed)
        };
        copy(&old.panics, &self.panics);
        if self.is_keyed() || old.is_keyed() {
            return;
        }
        copy(&old.latency.sum_ns, &self.latency.sum_ns);
        for (from, to) in old.latency.buckets.iter().zip(&self.latency.buckets) {
            copy(from, to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_edges_hold_their_values() {
        assert_eq!(BUCKETS, 114);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(63), 0);
        assert_eq!(bucket_of(64), 1);
        assert_eq!(upper_edge_ns(1), 80);
        assert_eq!(bucket_of(79), 1);
        assert_eq!(bucket_of(80), 2);
        assert_eq!(bucket_of(127), 4);
        assert_eq!(upper_edge_ns(4), 128);
        assert_eq!(bucket_of(128), 5);
        assert_eq!(bucket_of((1 << 34) - 1), BUCKETS - 2);
        assert_eq!(upper_edge_ns(BUCKETS - 2), 1 << 34);
        assert_eq!(bucket_of(1 << 34), BUCKETS - 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        // Every value is below its bucket's upper edge and at or above the
        // previous bucket's, and the edges are at most 25 % apart.
        let mut v = 1u64;
        while v < 1 << 36 {
            let b = bucket_of(v);
            if b < BUCKETS - 1 {
                assert!(v < upper_edge_ns(b), "{v} in bucket {b}");
            }
            if b > 0 {
                assert!(v >= upper_edge_ns(b - 1), "{v} in bucket {b}");
            }
            v = v * 9 / 8 + 1;
        }
        for b in 2..BUCKETS - 1 {
            let (lo, hi) = (upper_edge_ns(b - 1), upper_edge_ns(b));
            assert!(hi > lo && (hi - lo) * 4 <= lo, "bucket {b}: {lo}..{hi}");
        }
    }

    #[test]
    fn quantiles_are_upper_edges_of_the_ranked_bucket() {
        let mut h = Histogram::default();
        assert_eq!((h.quantile_ns(0.99), h.max_ns()), (0, 0));
        for _ in 0..98 {
            h.record(1_000); // bucket 896..1024 ns
        }
        h.record(2_000_000);
        h.record(30_000_000);
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile_ns(0.5), upper_edge_ns(bucket_of(1_000)));
        assert!(h.quantile_ns(0.5) >= 1_000 && h.quantile_ns(0.5) <= 1_250);
        // rank 99 of 100: the 2 ms sample.
        let p99 = h.quantile_ns(0.99);
        assert!((2_000_000..=2_500_000).contains(&p99), "{p99}");
        let max = h.max_ns();
        assert!((30_000_000..=37_500_000).contains(&max), "{max}");
        assert_eq!(h.quantile_ns(1.0), max);
    }

    #[test]
    fn merge_and_minus_are_per_bucket() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(100);
        a.record(5_000);
        b.record(5_000);
        b.record(1 << 40);
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m.count(), 4);
        assert_eq!(m.counts()[bucket_of(5_000)], 2);
        assert_eq!(m.minus(&a), b);
        assert_eq!(a.minus(&m).count(), 0, "saturates");
    }

    #[test]
    fn figures_round_trip_through_json_and_msgpack() {
        let mut f = Figures {
            handled: 10,
            errors: 1,
            panics: 1,
            restarts: 0,
            latency_sum_ns: 3_000,
            ..Figures::default()
        };
        f.latency.record(1_000);
        f.latency.record(2_000);
        assert_eq!(f.error_rate(), 0.2);
        assert_eq!(f.latency_summary().mean_ns, 1_500);
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.contains("\"latency\":[["), "{json}");
        assert_eq!(serde_json::from_str::<Figures>(&json).unwrap(), f);
        let bytes = rmp_serde::to_vec_named(&f).unwrap();
        assert_eq!(rmp_serde::from_slice::<Figures>(&bytes).unwrap(), f);
        let bad = json.replace("\"latency\":[[", "\"latency\":[[900,1],[");
        assert!(serde_json::from_str::<Figures>(&bad)
            .unwrap_err()
            .to_string()
            .contains("bucket 900 out of range"));
    }

    #[test]
    fn cells_read_what_their_writer_wrote() {
        let cells = FigureCells::default();
        cells.timed(1_000);
        cells.timed(1_000);
        cells.panicked();
        let (sum, h) = cells.latency().unwrap();
        assert_eq!((sum, h.count(), cells.panics()), (2_000, 2, 1));
        let copy = FigureCells::default();
        copy.copy_from(&cells);
        assert_eq!(copy.latency().unwrap().1, h);
    }

    /// Keyed actors write their latency into their module's cells (the
    /// same counts as cells of their own would hold) and read none of
    /// their own: summing them counts each timed message once.
    #[test]
    fn keyed_actors_share_their_modules_latency_cells() {
        let module = LatencyCells::shared();
        let (a, b) = (FigureCells::keyed(&module), FigureCells::keyed(&module));
        a.timed(1_000);
        b.timed(1_000);
        b.timed(5_000);
        a.panicked();
        assert!(a.latency().is_none() && b.latency().is_none());
        assert_eq!((a.panics(), b.panics()), (1, 0));
        let (sum, h) = module.read();
        assert_eq!((sum, h.count()), (7_000, 3));
        assert_eq!(h.counts()[bucket_of(1_000)], 2);
    }

    #[test]
    fn a_window_needs_the_same_period() {
        let mut later = Figures {
            handled: 30,
            ..Figures::default()
        };
        later.latency.record(500);
        let reading = |code: &str, since, figures: Figures| ModuleFigures {
            module: "m".into(),
            at_unix_ms: 0,
            sample_every: SAMPLE_EVERY,
            current: VersionFigures::new(code.into(), since, None, figures),
            previous: None,
            total: Figures::default(),
        };
        let a = reading(
            "1",
            5,
            Figures {
                handled: 10,
                ..Figures::default()
            },
        );
        let b = reading("1", 5, later.clone());
        assert_eq!(b.window_since(&a).unwrap().handled, 20);
        assert!(reading("2", 9, later).window_since(&a).is_none());
    }
}
