//! Savina counting, the counting actor: counts increments and sends the
//! total to `savina-producer` when asked.
#![warn(missing_docs)]

use molt_abi::{Ctx, Error, Module};
use savina_proto::counting::{self, CounterMsg, ProducerMsg, ProducerProto};
use serde::{Deserialize, Serialize};

/// The count since the last retrieve.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Counter {
    count: u64,
}

impl Module for Counter {
    const NAME: &'static str = counting::COUNTER;
    const CODE_VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 1;

    type Config = ();
    type Msg = CounterMsg;
    type Reply = ();

    fn init(_config: (), _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Counter::default())
    }

    fn handle(&mut self, msg: CounterMsg, ctx: &Ctx) -> Result<(), Error> {
        match msg {
            CounterMsg::Increment => {
                self.count += 1;
                Ok(())
            }
            CounterMsg::Retrieve => {
                let total = std::mem::take(&mut self.count);
                ctx.cast::<ProducerProto>(counting::PRODUCER, &ProducerMsg::Total(total))
            }
        }
    }
}

molt_abi::export_module!(Counter);
