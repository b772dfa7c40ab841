//! Savina counting, the producer: sends `count` increments to
//! `savina-counter`, then a retrieve; publishes [`counting::DONE`] with the
//! total the counter sends back.
#![warn(missing_docs)]

use molt_abi::{Ctx, Error, Module};
use savina_proto::counting::{self, CounterMsg, CounterProto, ProducerMsg};
use serde::{Deserialize, Serialize};

/// The producer's state: nothing between runs.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Producer {}

impl Module for Producer {
    const NAME: &'static str = counting::PRODUCER;
    const CODE_VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 1;

    type Config = ();
    type Msg = ProducerMsg;
    type Reply = ();

    fn init(_config: (), _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Producer {})
    }

    fn handle(&mut self, msg: ProducerMsg, ctx: &Ctx) -> Result<(), Error> {
        match msg {
            ProducerMsg::Start { count } => {
                for _ in 0..count {
                    ctx.cast::<CounterProto>(counting::COUNTER, &CounterMsg::Increment)?;
                }
                ctx.cast::<CounterProto>(counting::COUNTER, &CounterMsg::Retrieve)
            }
            ProducerMsg::Total(total) => ctx.publish(counting::DONE, &total),
        }
    }
}

molt_abi::export_module!(Producer);
