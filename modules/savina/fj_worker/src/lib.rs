//! Savina fork-join throughput, a worker: one Savina actor per instance.
//! Each `Work` message costs one [`forkjoin::compute`]; after the expected
//! number of messages the worker publishes [`forkjoin::DONE`].
#![warn(missing_docs)]

use molt_abi::{Ctx, Error, Module};
use savina_proto::forkjoin::{self, WorkerMsg};
use serde::{Deserialize, Serialize};

/// A worker's progress in the current run.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Worker {
    expected: u64,
    handled: u64,
}

impl Module for Worker {
    const NAME: &'static str = forkjoin::WORKER;
    const CODE_VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 1;

    type Config = ();
    type Msg = WorkerMsg;
    type Reply = ();

    fn init(_config: (), _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Worker::default())
    }

    fn handle(&mut self, msg: WorkerMsg, ctx: &Ctx) -> Result<(), Error> {
        match msg {
            WorkerMsg::Expect { messages } => {
                (self.expected, self.handled) = (messages, 0);
                Ok(())
            }
            WorkerMsg::Work => {
                forkjoin::compute(forkjoin::THETA);
                self.handled += 1;
                if self.handled == self.expected {
                    ctx.publish(forkjoin::DONE, &ctx.instance())?;
                }
                Ok(())
            }
        }
    }
}

molt_abi::export_module!(Worker);
