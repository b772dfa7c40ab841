//! The rollout's gate (docs/semantics.md "Rollouts"): the canary's figures
//! over the gate window against the old version's on the same node. A
//! [`GateReading`] is what a node reports of a module (from its status:
//! handled and failed messages, restarts, summed over the instances);
//! [`judge`] compares two readings.

use serde::{Deserialize, Serialize};

use crate::status::ModuleStatus;

/// One module's figures on one node at one moment, summed over its
/// instances (counts since the instances started).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateReading {
    /// The code version serving.
    pub code_version: String,
    /// Messages handled (successfully or not).
    pub handled: u64,
    /// Messages whose handler returned an error or panicked.
    pub failed: u64,
    /// Instance restarts.
    pub restarts: u64,
}

impl GateReading {
    /// The reading of a module's status.
    pub(crate) fn of(status: &ModuleStatus) -> Self {
        GateReading {
            code_version: status.code_version.clone(),
            handled: status.instances.iter().map(|i| i.handled).sum(),
            failed: status.instances.iter().map(|i| i.failed).sum(),
            restarts: status.instances.iter().map(|i| i.restarts).sum(),
        }
    }

    /// The counts since `base` (all of them when the counters started
    /// again below it, e.g. new instances).
    fn since(&self, base: &GateReading) -> (u64, u64, u64) {
        if self.handled < base.handled || self.failed < base.failed {
            return (self.handled, self.failed, self.restarts);
        }
        (
            self.handled - base.handled,
            self.failed - base.failed,
            self.restarts.saturating_sub(base.restarts),
        )
    }
}

/// The gate's thresholds (`[rollout]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Thresholds {
    /// How far the window's error rate may exceed the old version's.
    pub max_error_rate_increase: f64,
    /// Restarts allowed in the window.
    pub max_restarts: u64,
}

fn rate(failed: u64, handled: u64) -> f64 {
    if handled == 0 {
        0.0
    } else {
        failed as f64 / handled as f64
    }
}

/// Judges the canary: `base` was read before its reload (the old version's
/// figures on that node, its whole run), `now` during or at the end of the
/// window; `to` is the version it must still serve. `Ok` with the figures
/// in words, or `Err` naming the threshold crossed.
///
/// # Errors
/// The canary no longer serves `to` (it restarted into another version or
/// was rolled back), restarted more than allowed, or its error rate over
/// the window exceeds the old version's by more than allowed.
pub(crate) fn judge(
    base: &GateReading,
    now: &GateReading,
    to: &str,
    t: Thresholds,
) -> Result<String, String> {
    if now.code_version != to {
        return Err(format!(
            "the canary serves {} instead of {to}",
            now.code_version
        ));
    }
    let (handled, failed, restarts) = now.since(base);
    let old = rate(base.failed, base.handled);
    let new = rate(failed, handled);
    let words = format!(
        "{handled} handled, {failed} failed ({:.2} %, the old version {:.2} % of {}), {restarts} restart(s)",
        new * 100.0,
        old * 100.0,
        base.handled
    );
    if restarts > t.max_restarts {
        return Err(format!(
            "{restarts} restart(s) in the window (at most {} allowed): {words}",
            t.max_restarts
        ));
    }
    if failed > 0 && new > old + t.max_error_rate_increase {
        return Err(format!(
            "error rate {:.2} % exceeds the old version's {:.2} % by more than {:.2} points: {words}",
            new * 100.0,
            old * 100.0,
            t.max_error_rate_increase * 100.0
        ));
    }
    Ok(words)
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
        }
    }

    const T: Thresholds = Thresholds {
        max_error_rate_increase: 0.01,
        max_restarts: 0,
    };

    #[test]
    fn the_gate_compares_the_window_with_the_old_version() {
        let base = r("1.0.0", 1000, 10, 0); // 1 %
        assert!(judge(&base, &r("2.0.0", 1100, 11, 0), "2.0.0", T).is_ok());
        // 1.9 % over the window: within one point of 1 %.
        assert!(judge(&base, &r("2.0.0", 2000, 29, 0), "2.0.0", T).is_ok());
        let e = judge(&base, &r("2.0.0", 1100, 40, 0), "2.0.0", T).unwrap_err();
        assert!(e.starts_with("error rate 30.00 %"), "{e}");
        let e = judge(&base, &r("2.0.0", 1100, 10, 1), "2.0.0", T).unwrap_err();
        assert!(e.starts_with("1 restart(s)"), "{e}");
        let e = judge(&base, &r("1.0.0", 1100, 10, 0), "2.0.0", T).unwrap_err();
        assert!(e.contains("serves 1.0.0 instead of 2.0.0"), "{e}");
        // No traffic in the window: nothing to hold against it.
        assert!(judge(&base, &base_as("2.0.0", &base), "2.0.0", T).is_ok());
        // Counters that started again count from 0.
        assert!(judge(&base, &r("2.0.0", 5, 5, 0), "2.0.0", T).is_err());
    }

    fn base_as(v: &str, b: &GateReading) -> GateReading {
        GateReading {
            code_version: v.into(),
            ..b.clone()
        }
    }
}
