//! Savina thread ring: one ring position per instance. Instance `i` passes
//! to instance `(i + 1) % count` of its own module with `Ctx::send_to`, so
//! the last instance passes to 0.
#![warn(missing_docs)]

use molt_abi::{Ctx, Error, Module};
use savina_proto::ring::{self, Done, RingMsg, RingProto};
use serde::{Deserialize, Serialize};

/// A ring position: no state of its own (its place is its instance index).
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Position {}

fn pass(ctx: &Ctx, msg: &RingMsg) -> Result<(), Error> {
    let next = (ctx.instance() + 1) % ctx.instances(ring::RING)?;
    ctx.send_to::<RingProto>(ring::RING, next, msg)
}

fn exit(ctx: &Ctx, left: u32, token_stopped_at: u32) -> Result<(), Error> {
    if left > 1 {
        return pass(
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

impl Module for Position {
    const NAME: &'static str = ring::RING;
    const CODE_VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 1;

    type Config = ();
    type Msg = RingMsg;
    type Reply = ();

    fn init(_config: (), _ctx: &Ctx) -> Result<Self, Error> {
        Ok(Position {})
    }

    fn handle(&mut self, msg: RingMsg, ctx: &Ctx) -> Result<(), Error> {
        match msg {
            RingMsg::Ping { hops_left, ring } if hops_left > 0 => pass(
                ctx,
                &RingMsg::Ping {
                    hops_left: hops_left - 1,
                    ring,
                },
            ),
            // The holder exits here; the lap visits the ring - 1 others.
            RingMsg::Ping { ring, .. } => exit(ctx, ring, ctx.instance()),
            RingMsg::Exit {
                left,
                token_stopped_at,
            } => exit(ctx, left, token_stopped_at),
        }
    }
}

molt_abi::export_module!(Position);
