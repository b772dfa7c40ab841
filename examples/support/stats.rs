//! Small statistics for the examples' reports.
//!
//! Shared by the examples (`live_swap`, `soak`), each including it with
//! `#[path = "support/stats.rs"] mod stats;`.

/// The nearest-rank percentile (0 for no samples).
pub fn percentile(samples: &[u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}
