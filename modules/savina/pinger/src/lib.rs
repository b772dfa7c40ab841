//! Savina ping-pong, the pinger: sends `pings` pings to `savina-ponger`, one
//! at a time, and publishes [`pingpong::DONE`] after the last pong.
#![warn(missing_docs)]

use molt_abi::{Ctx, Error, Module};
use savina_proto::pingpong::{self, PingerMsg, PingerProto, PongerMsg, PongerProto};
use serde::{Deserialize, Serialize};

/// The pinger's state.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Pinger {
    pings_left: u64,
    pongs: u64,
}

impl Pinger {
    fn ping(&mut self, ctx: &Ctx) -> Result<(), Error> {
        self.pings_left -= 1;
        ctx.cast::<PongerProto>(pingpong::PONGER, &PongerMsg::Ping)
    }
}

impl Module for Pinger {
    const NAME: &'static str = pingpong::PINGER;
    const CODE_VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 1;

    type Config = ();
    type Msg = PingerMsg;
    type Reply = ();

    fn init(_config: (), _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Pinger::default())
    }

    fn handle(&mut self, msg: PingerMsg, ctx: &Ctx) -> Result<(), Error> {
        match msg {
            PingerMsg::Start { pings } if pings > 0 => {
                (self.pings_left, self.pongs) = (pings, 0);
                self.ping(ctx)
            }
            PingerMsg::Start { .. } => ctx.publish(pingpong::DONE, &0u64),
            PingerMsg::SendPing => self.ping(ctx),
            PingerMsg::Pong => {
                self.pongs += 1;
                if self.pings_left > 0 {
                    ctx.cast_addr::<PingerProto>(&ctx.me(), &PingerMsg::SendPing)
                } else {
                    ctx.publish(pingpong::DONE, &self.pongs)
                }
            }
        }
    }
}

molt_abi::export_module!(Pinger);
