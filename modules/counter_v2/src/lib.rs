//! The example `counter` module, code version 2.0.0, state version 2.
//!
//! The state layout changed: the count of additions (`adds`) is replaced by
//! the last [`HISTORY`] additions. [`Module::migrate`] reads state version 1
//! (the history starts empty), but this library deliberately implements no
//! [`Module::downgrade`]: it is the example of a module whose rollback to
//! 1.x is refused unless the operator asks for a state reset.
#![warn(missing_docs)]

use counter_proto::{Msg, Reply};
use molt_abi::{state, Ctx, Error, Module};
use serde::{Deserialize, Serialize};

/// How many of the most recent additions the state keeps.
pub const HISTORY: usize = 16;

/// The configuration of a counter (unchanged since 1.x).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct CounterConfig {
    /// The total a fresh counter starts at.
    pub start: i64,
}

/// The counter's state (state version 2).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    total: i64,
    /// The last [`HISTORY`] additions, oldest first.
    history: Vec<i64>,
}

/// The state as counter 1.x writes it (state version 1).
#[derive(Deserialize)]
struct V1State {
    total: i64,
    // `adds` (a count of additions) is dropped: the history cannot be rebuilt from it.
}

impl From<V1State> for Counter {
    fn from(v1: V1State) -> Self {
        Counter {
            total: v1.total,
            history: Vec::new(),
        }
    }
}

impl Module for Counter {
    const NAME: &'static str = "counter";
    const CODE_VERSION: &'static str = "2.0.0";
    const STATE_VERSION: u32 = 2;

    type Config = CounterConfig;
    type Msg = Msg;
    type Reply = Reply;

    fn init(config: CounterConfig, _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Counter {
            total: config.start,
            history: Vec::new(),
        })
    }

    fn migrate(from: u32, bytes: &[u8], _config: CounterConfig, _ctx: &Ctx) -> Result<Self, Error> {
        match from {
            1 => state::decode::<V1State>("counter state v1", bytes).map(Counter::from),
            2 => state::decode("counter state v2", bytes),
            _ => Err(Error::unknown_state_version(
                Self::NAME,
                from,
                Self::STATE_VERSION,
            )),
        }
    }

    // No `downgrade`: the default refuses, so a rollback to 1.x needs a reset.

    fn handle(&mut self, msg: Msg, ctx: &Ctx) -> Result<Reply, Error> {
        match msg {
            Msg::Add(n) => {
                self.total = self
                    .total
                    .checked_add(n)
                    .ok_or_else(|| Error::msg(format!("adding {n} to {} overflows", self.total)))?;
                if self.history.len() == HISTORY {
                    self.history.remove(0);
                }
                self.history.push(n);
                ctx.counter("adds", 1);
            }
            Msg::Get => {}
            Msg::Reset => self.total = 0,
        }
        Ok(Reply::Total(self.total))
    }

    fn start(&mut self, ctx: &Ctx) -> Result<(), Error> {
        ctx.info(format!(
            "counter {} starting at {} (last additions: {:?})",
            Self::CODE_VERSION,
            self.total,
            self.history
        ));
        Ok(())
    }
}

molt_abi::export_module!(Counter);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct V1 {
        total: i64,
        adds: u64,
    }

    #[test]
    fn reads_state_version_1() {
        let bytes = state::encode(&V1 { total: 42, adds: 3 }).unwrap();
        let v1: V1State = state::decode("v1", &bytes).unwrap();
        assert_eq!(
            Counter::from(v1),
            Counter {
                total: 42,
                history: vec![]
            }
        );
    }

    #[test]
    fn refuses_to_downgrade() {
        let c = Counter {
            total: 1,
            history: vec![1],
        };
        let err = c.downgrade(1).unwrap_err();
        assert_eq!(err.kind(), molt_abi::ErrorKind::CannotDowngrade);
    }
}
