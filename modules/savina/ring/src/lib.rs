//! Savina thread ring: one ring position per instance. Each position holds
//! its neighbour's address (instance `(i + 1) % count` of its own module,
//! so the last passes to 0), as Savina's ring actors hold their
//! neighbour's reference, and passes to it with `Ctx::cast_addr`.
#![warn(missing_docs)]

use molt_abi::{Address, Ctx, Error, Module};
use savina_proto::ring::{self, Done, RingMsg, RingProto};
use serde::{Deserialize, Serialize};

/// A ring position: its neighbour's address, learnt at the first pass.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Position {
    #[serde(default)]
    next: Option<Address>,
}

impl Position {
    fn pass(&mut self, ctx: &Ctx, msg: &RingMsg) -> Result<(), Error> {
        if self.next.is_none() {
            let index = (ctx.instance() + 1) % ctx.instances(ring::RING)?;
            self.next = Some(Address::instance(ctx.node(), ring::RING, index));
        }
        let next = self.next.as_ref().ok_or("no neighbour")?;
        ctx.cast_addr::<RingProto>(next, msg)
    }

    fn exit(&mut self, ctx: &Ctx, left: usize, token_stopped_at: usize) -> Result<(), Error> {
        if left > 1 {
            return self.pass(
                ctx,
                &RingMsg::Exit {
                    left: left - 1,
                    token_stopped_at,
                },
            );
        }
        let done = Done {
            token_stopped_at,
            instance: ctx.instance(),
        };
        ctx.publish(ring::DONE, &done)
    }
}

impl Module for Position {
    const NAME: &'static str = ring::RING;
    const CODE_VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 1;

    type Config = ();
    type Msg = RingMsg;
    type Reply = ();

    fn init(_config: (), _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Position::default())
    }

    fn handle(&mut self, msg: RingMsg, ctx: &Ctx) -> Result<(), Error> {
        match msg {
            RingMsg::Ping { hops_left, ring } if hops_left > 0 => self.pass(
                ctx,
                &RingMsg::Ping {
                    hops_left: hops_left - 1,
                    ring,
                },
            ),
            // The holder exits here; the lap visits the ring - 1 others.
            RingMsg::Ping { ring, .. } => self.exit(ctx, ring, ctx.instance()),
            RingMsg::Exit {
                left,
                token_stopped_at,
            } => self.exit(ctx, left, token_stopped_at),
        }
    }
}

molt_abi::export_module!(Position);
