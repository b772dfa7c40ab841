//! The protocols of the Savina benchmark modules: the module names, the
//! messages they send each other with `Ctx::cast`/`Ctx::cast_addr`, and the
//! topics of the events they publish when a run is over (what
//! `benches/savina.rs` waits for on `node.subscribe()`).
//!
//! Each benchmark follows the message flow of the Savina suite (Imam and
//! Sarkar, AGERE! 2014); where an actor of Savina exits, a module publishes
//! its `DONE` topic instead (module instances live on for the next round).
//! Every reply type is `()`: the actors only cast.
#![warn(missing_docs)]

/// Ping-pong: `savina-pinger` and `savina-ponger` bounce a message `pings`
/// times.
///
/// Savina's flow: start → ping; pong (to the ping's sender) → (pings left?)
/// the pinger sends itself (`Ctx::me`) `SendPing` → ping; so three messages
/// per round trip.
pub mod pingpong {
    use serde::{Deserialize, Serialize};

    /// The pinger's module name.
    pub const PINGER: &str = "savina-pinger";
    /// The ponger's module name.
    pub const PONGER: &str = "savina-ponger";
    /// Published by the pinger after the last pong; payload: the pongs received.
    pub const DONE: &str = "savina.pingpong.done";

    /// The pinger's protocol.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct PingerProto;

    impl molt_abi::Protocol for PingerProto {
        type Msg = PingerMsg;
        type Reply = ();
    }

    /// What the pinger takes.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub enum PingerMsg {
        /// Starts a run of `pings` round trips (from the bench).
        Start {
            /// How many pings to send.
            pings: u64,
        },
        /// Sends the next ping (the pinger to itself, as in Savina).
        SendPing,
        /// The ponger's answer.
        Pong,
    }

    /// The ponger's protocol.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct PongerProto;

    impl molt_abi::Protocol for PongerProto {
        type Msg = PongerMsg;
        type Reply = ();
    }

    /// What the ponger takes.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub enum PongerMsg {
        /// Answered with [`PingerMsg::Pong`].
        Ping,
    }
}

/// Counting: `savina-producer` sends `count` increments to `savina-counter`,
/// then asks for the total, which comes back as a message.
pub mod counting {
    use serde::{Deserialize, Serialize};

    /// The producer's module name.
    pub const PRODUCER: &str = "savina-producer";
    /// The counting actor's module name.
    pub const COUNTER: &str = "savina-counter";
    /// Published by the producer when the total arrives; payload: the total.
    pub const DONE: &str = "savina.counting.done";

    /// The producer's protocol.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ProducerProto;

    impl molt_abi::Protocol for ProducerProto {
        type Msg = ProducerMsg;
        type Reply = ();
    }

    /// What the producer takes.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub enum ProducerMsg {
        /// Sends `count` increments, then a retrieve (from the bench).
        Start {
            /// How many increments.
            count: u64,
        },
        /// The counter's total, answering the retrieve.
        Total(u64),
    }

    /// The counter's protocol.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CounterProto;

    impl molt_abi::Protocol for CounterProto {
        type Msg = CounterMsg;
        type Reply = ();
    }

    /// What the counting actor takes.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub enum CounterMsg {
        /// Adds one.
        Increment,
        /// Sends the total to the producer as [`ProducerMsg::Total`] and
        /// starts again from zero.
        Retrieve,
    }
}

/// Thread ring: the instances of `savina-ring` form a ring (instance `i`
/// holds the address of `i + 1`, the last of 0, and passes to it with
/// `Ctx::cast_addr`); a token goes round `hops` times, then an exit message
/// makes one lap.
pub mod ring {
    use serde::{Deserialize, Serialize};

    /// The ring's module name (one instance per ring position).
    pub const RING: &str = "savina-ring";
    /// Published by the instance that ends the exit lap; payload: [`Done`].
    pub const DONE: &str = "savina.ring.done";

    /// The ring's protocol.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct RingProto;

    impl molt_abi::Protocol for RingProto {
        type Msg = RingMsg;
        type Reply = ();
    }

    /// What a ring position takes.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub enum RingMsg {
        /// The token, passed on while `hops_left > 0`; at zero its holder
        /// starts the exit lap: `Exit { left: ring - 1, .. }` to the next
        /// position.
        Ping {
            /// Passes still to make.
            hops_left: u64,
            /// The ring's size (the module's instance count).
            ring: usize,
        },
        /// The exit lap: every other position gets it once; the last one
        /// (`left == 1`) publishes [`DONE`] instead of passing it on.
        Exit {
            /// Positions still to visit, this one included.
            left: usize,
            /// The instance where the token stopped.
            token_stopped_at: usize,
        },
    }

    /// The payload of [`DONE`].
    #[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Done {
        /// The instance where the token stopped: `hops % ring` for a token
        /// started at instance 0.
        pub token_stopped_at: usize,
        /// The instance that published this, the one before
        /// `token_stopped_at` in the ring.
        pub instance: usize,
    }
}

/// Fork-join throughput: the bench sends `messages` messages to each
/// instance of `savina-fj-worker`; each does a little arithmetic per message.
pub mod forkjoin {
    use serde::{Deserialize, Serialize};

    /// The worker's module name (one instance per Savina actor).
    pub const WORKER: &str = "savina-fj-worker";
    /// Published by a worker when it handled its `messages`; payload: its
    /// instance index.
    pub const DONE: &str = "savina.forkjoin.done";

    /// The worker's protocol.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct WorkerProto;

    impl molt_abi::Protocol for WorkerProto {
        type Msg = WorkerMsg;
        type Reply = ();
    }

    /// What a worker takes.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub enum WorkerMsg {
        /// Expect `messages` [`WorkerMsg::Work`] messages (resets the count).
        Expect {
            /// How many.
            messages: u64,
        },
        /// One unit of work: [`compute`] of Savina's θ = 37.2.
        Work,
    }

    /// Savina's `performComputation(37.2)`: `sin(θ)²`, checked positive so
    /// it cannot be optimized away.
    pub fn compute(theta: f64) -> f64 {
        let s = std::hint::black_box(theta).sin();
        let r = s * s;
        assert!(r > 0.0, "performComputation({theta}) = {r}");
        r
    }

    /// The θ Savina uses.
    pub const THETA: f64 = 37.2;
}
