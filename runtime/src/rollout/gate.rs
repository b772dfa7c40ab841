//! The rollout's gate (docs/semantics.md "Rollouts"): the canary's figures
//! over the gate window against the old version's on the same node. A
//! [`GateReading`] is what a node reports of one version of a module (from
//! its handling figures, docs/semantics.md "Handling figures": messages
//! handled, failed, restarts, p99 handling latency over the version's
//! period); `judge` compares the old version's with the new one's.

use serde::{Deserialize, Serialize};

use crate::config::RolloutSpec;
use crate::figures::VersionFigures;

/// Timed messages each side needs before their p99s are compared (with
/// one message in 16 timed: a few hundred messages).
pub(crate) const P99_NEEDS_TIMED: u64 = 20;

/// One version's figures on one node over its period (since it took over,
/// or until it was replaced).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateReading {
    /// The code version.
    pub code_version: String,
    /// Messages handled (successfully or not).
    pub handled: u64,
    /// Messages whose handler returned an error or panicked.
    pub failed: u64,
    /// Instance restarts.
    pub restarts: u64,
    /// Messages timed (the latency sample).
    pub timed: u64,
    /// The 99th percentile handling time, in nanoseconds.
    pub p99_ns: u64,
}

impl GateReading {
    /// The reading of a version's figures.
    pub(crate) fn of(v: &VersionFigures) -> Self {
        GateReading {
            code_version: v.code_version.clone(),
            handled: v.figures.handled,
            failed: v.figures.errors + v.figures.panics,
            restarts: v.figures.restarts,
            timed: v.latency.count,
            p99_ns: v.latency.p99_ns,
        }
    }
}

fn rate(failed: u64, handled: u64) -> f64 {
    if handled == 0 {
        0.0
    } else {
        failed as f64 / handled as f64
    }
}

/// Judges the canary: `old` is the old version's reading on that node (its
/// whole period, read before the canary's reload), `new` the new version's
/// since it took over there (the window so far); `to` is the version the
/// canary must still serve. `Ok` with the figures in words, or `Err`
/// naming the threshold crossed (`t`: the `[rollout]` thresholds).
///
/// # Errors
/// The canary no longer serves `to` (it restarted into another version or
/// was rolled back), restarted more than allowed, its error rate exceeds
/// the old version's by more than allowed, or (both sides timed enough
/// messages) its p99 handling time is more than the allowed multiple of
/// the old version's.
pub(crate) fn judge(
    old: &GateReading,
    new: &GateReading,
    to: &str,
    t: &RolloutSpec,
) -> Result<String, String> {
    if new.code_version != to {
        return Err(format!(
            "the canary serves {} instead of {to}",
            new.code_version
        ));
    }
    let (old_rate, new_rate) = (rate(old.failed, old.handled), rate(new.failed, new.handled));
    let words = format!(
        "{} handled, {} failed ({:.2} %, the old version {:.2} % of {}), {} restart(s), p99 {} µs (the old version {} µs)",
        new.handled,
        new.failed,
        new_rate * 100.0,
        old_rate * 100.0,
        old.handled,
        new.restarts,
        new.p99_ns / 1000,
        old.p99_ns / 1000
    );
    if new.restarts > t.max_restarts {
        return Err(format!(
            "{} restart(s) in the window (at most {} allowed): {words}",
            new.restarts, t.max_restarts
        ));
    }
    if new.failed > 0 && new_rate > old_rate + t.max_error_rate_increase {
        return Err(format!(
            "error rate {:.2} % exceeds the old version's {:.2} % by more than {:.2} points: {words}",
            new_rate * 100.0,
            old_rate * 100.0,
            t.max_error_rate_increase * 100.0
        ));
    }
    let timed = old.timed >= P99_NEEDS_TIMED && new.timed >= P99_NEEDS_TIMED;
    if timed && new.p99_ns as f64 > old.p99_ns as f64 * t.max_p99_ratio {
        return Err(format!(
            "p99 handling time {} µs is more than {} times the old version's {} µs: {words}",
            new.p99_ns / 1000,
            t.max_p99_ratio,
            old.p99_ns / 1000
        ));
    }
    Ok(words)
}

/// The window's last word on the canary, once [`judge`] found nothing
/// against it: its new version handled enough messages in the gate window
/// (`t.gate_window`) to be judged at all.
///
/// # Errors
/// Fewer than `t.min_handled` messages handled: a gate that saw (almost)
/// no traffic has nothing to hold for or against the new version.
pub(crate) fn enough_seen(new: &GateReading, t: &RolloutSpec) -> Result<(), String> {
    if new.handled < t.min_handled {
        return Err(format!(
            "the canary handled {} message(s) in the {} ms window, fewer than the {} it needs \
             to be judged (send it traffic, lengthen the window, or pass --min-handled 0 \
             for a module without traffic)",
            new.handled,
            t.gate_window.as_millis(),
            t.min_handled
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &str, handled: u64, failed: u64, restarts: u64) -> GateReading {
        GateReading {
            code_version: v.into(),
            handled,
            failed,
            restarts,
            timed: handled / 16,
            p99_ns: 10_000,
        }
    }

    /// The thresholds these tests judge by (the rest of `[rollout]` as
    /// default).
    fn t() -> RolloutSpec {
        RolloutSpec {
            gate_window: std::time::Duration::from_secs(30),
            max_error_rate_increase: 0.01,
            max_restarts: 0,
            max_p99_ratio: 2.0,
            min_handled: 20,
            ..RolloutSpec::default()
        }
    }

    #[test]
    fn the_gate_compares_the_window_with_the_old_version() {
        let old = r("1.0.0", 1000, 10, 0); // 1 %
        assert!(judge(&old, &r("2.0.0", 100, 1, 0), "2.0.0", &t()).is_ok());
        // 1.9 %: within one point of 1 %.
        assert!(judge(&old, &r("2.0.0", 1000, 19, 0), "2.0.0", &t()).is_ok());
        let e = judge(&old, &r("2.0.0", 100, 30, 0), "2.0.0", &t()).unwrap_err();
        assert!(e.starts_with("error rate 30.00 %"), "{e}");
        let e = judge(&old, &r("2.0.0", 100, 0, 1), "2.0.0", &t()).unwrap_err();
        assert!(e.starts_with("1 restart(s)"), "{e}");
        let e = judge(&old, &r("1.0.0", 100, 0, 0), "2.0.0", &t()).unwrap_err();
        assert!(e.contains("serves 1.0.0 instead of 2.0.0"), "{e}");
        // No traffic in the window: nothing to hold against it, and
        // nothing for it either: the window's end needs min_handled.
        let idle = r("2.0.0", 0, 0, 0);
        assert!(judge(&old, &idle, "2.0.0", &t()).is_ok());
        let e = enough_seen(&idle, &t()).unwrap_err();
        assert!(
            e.starts_with(
                "the canary handled 0 message(s) in the 30000 ms window, fewer than the 20"
            ),
            "{e}"
        );
        assert!(enough_seen(&r("2.0.0", 20, 0, 0), &t()).is_ok());
        let none_needed = RolloutSpec {
            min_handled: 0,
            ..t()
        };
        assert!(enough_seen(&idle, &none_needed).is_ok());
    }

    #[test]
    fn the_gate_compares_p99_once_both_sides_timed_enough() {
        let old = r("1.0.0", 1000, 0, 0);
        let slow = GateReading {
            p99_ns: 25_000,
            ..r("2.0.0", 1000, 0, 0)
        };
        let e = judge(&old, &slow, "2.0.0", &t()).unwrap_err();
        assert!(
            e.starts_with("p99 handling time 25 µs is more than 2 times the old version's 10 µs"),
            "{e}"
        );
        let within = GateReading {
            p99_ns: 19_000,
            ..slow.clone()
        };
        assert!(judge(&old, &within, "2.0.0", &t()).is_ok());
        // Too few timed messages on either side: not compared.
        let few = GateReading {
            timed: P99_NEEDS_TIMED - 1,
            ..slow.clone()
        };
        assert!(judge(&old, &few, "2.0.0", &t()).is_ok());
        let young = GateReading {
            timed: 3,
            ..old.clone()
        };
        assert!(judge(&young, &slow, "2.0.0", &t()).is_ok());
    }
}
