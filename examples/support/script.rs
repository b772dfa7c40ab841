//! The operator's actions (reload, rollback), what each is expected to end
//! with, and the tally of their outcomes.
//!
//! Shared by the examples (`live_swap`, `soak`), each including it with
//! `#[path = "support/script.rs"] mod script;`. The module is `kv`.

use std::path::PathBuf;

use molt::{Error, Node, ReloadOptions, ReloadReport};

/// What a step is expected to end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Commit,
    /// Refused in the prepare phase (nothing touched).
    Reject,
}

/// One admin action.
pub enum Step {
    /// Reload module kv from this library.
    Reload(PathBuf, Expect),
    /// Roll module kv back to its previous library, down-migrating the state.
    Rollback,
}

impl Step {
    pub async fn perform(&self, node: &Node) -> Result<ReloadReport, Error> {
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
pub struct Tally {
    /// Committed reloads.
    pub reloads: u64,
    /// Committed explicit rollbacks.
    pub rolled_back: u64,
    /// Reloads refused in prepare.
    pub rejected: u64,
    /// Actions that did not end as expected.
    pub unexpected: u64,
    /// Every instance's pause of every committed reload or rollback.
    pub pauses_us: Vec<u64>,
    /// `load_us` of every committed reload.
    pub load_us: Vec<u64>,
}

impl Tally {
    /// Counts one action's result and describes it in one line (which says
    /// `UNEXPECTED` when the action did not end as expected).
    pub fn record(&mut self, step: &Step, result: &Result<ReloadReport, Error>) -> String {
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
