//! The `[rollout]` settings: how a cluster rollout's gate judges the
//! canary, how many nodes each wave takes, and the bounds on every wait
//! (README "Rolling out a new version", docs/semantics.md "Rollouts").

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How this node coordinates a rollout (`[rollout]` in the config file),
/// and how long its rollout agent keeps an uncommitted new version. A
/// request may override the canary, the wave size and the windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSpec {
    /// How long the gate watches the canary after its reload.
    #[serde(with = "super::millis")]
    pub gate_window: Duration,
    /// How far the canary's handler error rate over the window may exceed
    /// the old version's on the same node (0.01: one percentage point).
    pub max_error_rate_increase: f64,
    /// How many instance restarts the canary may have during the window.
    pub max_restarts: u64,
    /// How many times the old version's p99 handling time the canary's may
    /// be over the window (compared once both timed enough messages).
    pub max_p99_ratio: f64,
    /// How many messages the canary's new version must have handled by the
    /// end of the gate window: with fewer, the gate cannot judge it and
    /// fails (0 lets a module without traffic pass on no evidence).
    pub min_handled: u64,
    /// How many nodes take the new version at once after the gate.
    pub wave_size: usize,
    /// How long each wave's nodes are watched (reachable, answering, on
    /// the new version) before the next wave.
    #[serde(with = "super::millis")]
    pub wave_watch: Duration,
    /// The bound on each request to a node (a hash, a reload, a rollback,
    /// figures): a dead or frozen node never holds a rollout longer.
    #[serde(with = "super::millis")]
    pub request_timeout: Duration,
    /// How long a node keeps an uncommitted new version without word from
    /// its coordinator: past it, it asks the coordinator how the rollout
    /// ended and rolls back unless it committed.
    #[serde(with = "super::millis")]
    pub lease: Duration,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            gate_window: Duration::from_secs(30),
            max_error_rate_increase: 0.01,
            max_restarts: 0,
            max_p99_ratio: 2.0,
            min_handled: 20,
            wave_size: 1,
            wave_watch: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(15),
        }
    }
}

impl RolloutSpec {
    /// What is wrong with these settings, if anything: `(key, why)`, the
    /// key under `rollout.`.
    ///
    /// # Errors
    /// A wave size, request timeout or lease of 0, an error-rate increase
    /// that is negative or not a number, or a p99 ratio below 1.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.wave_size == 0 {
            return Err(("wave_size", "must be at least 1".into()));
        }
        if self.max_error_rate_increase.is_nan() || self.max_error_rate_increase < 0.0 {
            return Err((
                "max_error_rate_increase",
                format!(
                    "{} is not a rate of 0 or more (0.01: one percentage point)",
                    self.max_error_rate_increase
                ),
            ));
        }
        if self.max_p99_ratio.is_nan() || self.max_p99_ratio < 1.0 {
            return Err((
                "max_p99_ratio",
                format!(
                    "{} is not a ratio of 1 or more (2.0: twice the old version's p99)",
                    self.max_p99_ratio
                ),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(("request_timeout_ms", "must be more than 0".into()));
        }
        if self.lease.is_zero() {
            return Err(("lease_ms", "must be more than 0".into()));
        }
        Ok(())
    }
}
