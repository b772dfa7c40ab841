//! The example `counter` module, code version 1.0.0, state version 1.
//!
//! Speaks [`counter_proto`]. Its successor, `counter_v2`, changes the state
//! layout and cannot down-migrate, so rolling back from it to this library
//! needs a state reset.
#![warn(missing_docs)]

use counter_proto::{Msg, Reply};
use molt_abi::{Ctx, Error, Module};
use serde::{Deserialize, Serialize};

/// The configuration of a counter (the `config` table of its module entry).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct CounterConfig {
    /// The total a fresh counter starts at.
    pub start: i64,
}

/// The counter's state (state version 1).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    total: i64,
    /// How many `Add` messages this state has seen.
    adds: u64,
}

impl Module for Counter {
    const NAME: &'static str = "counter";
    const CODE_VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 1;

    type Config = CounterConfig;
    type Msg = Msg;
    type Reply = Reply;

    fn init(config: CounterConfig, _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Counter {
            total: config.start,
            adds: 0,
        })
    }

    fn handle(&mut self, msg: Msg, ctx: &Ctx) -> Result<Reply, Error> {
        match msg {
            Msg::Add(n) => {
                self.total = self
                    .total
                    .checked_add(n)
                    .ok_or_else(|| Error::msg(format!("adding {n} to {} overflows", self.total)))?;
                self.adds += 1;
                ctx.counter("adds", 1);
            }
            Msg::Get => {}
            Msg::Reset => self.total = 0,
        }
        Ok(Reply::Total(self.total))
    }

    fn start(&mut self, ctx: &Ctx) -> Result<(), Error> {
        ctx.info(format!(
            "counter {} starting at {} ({} adds so far)",
            Self::CODE_VERSION,
            self.total,
            self.adds
        ));
        Ok(())
    }
}

molt_abi::export_module!(Counter);
