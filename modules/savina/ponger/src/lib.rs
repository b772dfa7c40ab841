//! Savina ping-pong, the ponger: answers every ping with a pong to its
//! sender (`Ctx::cast_sender`), as Savina's ponger answers the actor
//! reference the ping carries.
#![warn(missing_docs)]

use molt_abi::{Ctx, Error, Module};
use savina_proto::pingpong::{self, PingerMsg, PingerProto, PongerMsg};
use serde::{Deserialize, Serialize};

/// The ponger's state.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Ponger {
    pings: u64,
}

impl Module for Ponger {
    const NAME: &'static str = pingpong::PONGER;
    const CODE_VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 1;

    type Config = ();
    type Msg = PongerMsg;
    type Reply = ();

    fn init(_config: (), _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Ponger::default())
    }

    fn handle(&mut self, msg: PongerMsg, ctx: &Ctx) -> Result<(), Error> {
        match msg {
            PongerMsg::Ping => {
                self.pings += 1;
                ctx.cast_sender::<PingerProto>(&PingerMsg::Pong)
            }
        }
    }
}

molt_abi::export_module!(Ponger);
