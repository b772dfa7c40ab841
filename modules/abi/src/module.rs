use serde::{de::DeserializeOwned, Serialize};

use crate::{state, Answer, Ctx, Error};

/// A molt module: its state type, its protocol and its lifecycle.
///
/// The implementing type *is* the state: it is serialized for a snapshot and
/// deserialized (through [`Module::migrate`]) by the next library version.
/// Export it with [`crate::export_module!`].
///
/// The lifecycle during a reload, as the host drives it:
/// `old.snapshot()` → `new = migrate(old_version, bytes, config)` →
/// `old.stop()` → `new.start()` → `new.verify()` → commit (or roll back:
/// `new.stop()`, `old.start()`, and the old state is untouched).
pub trait Module: Serialize + DeserializeOwned + Send + Sized + 'static {
    /// The module's name; a library can only replace a module of this name.
    const NAME: &'static str;
    /// The code version, reported in status, events and history.
    const CODE_VERSION: &'static str;
    /// The version of the state layout this code writes. Bump it whenever a
    /// change to the state type is not readable by the previous code.
    const STATE_VERSION: u32;
    /// Whether host events are delivered to [`Module::handle_event`].
    const EVENTS: bool = false;
    /// Whether the module has a [`Module::verify`] of its own. Set it to
    /// `false` when it keeps the default one: the host then does not call
    /// `verify` during a swap and spares the hand-off to another thread that
    /// bounds it by `limits.verify_timeout`, a large part of a small state's
    /// swap pause. The snapshot round trip is checked either way. With
    /// `false`, a `verify` the module defines is never called.
    const HAS_VERIFY: bool = true;

    /// The module's configuration (the `config` table of its module entry).
    type Config: DeserializeOwned + Default;
    /// What clients send.
    type Msg: DeserializeOwned;
    /// What the module answers to a call.
    type Reply: Serialize;

    /// Builds a fresh state (first start, or a reset).
    ///
    /// # Errors
    /// Any error fails the start (or the reload, in phase `migrate`).
    fn init(config: Self::Config, ctx: &Ctx) -> Result<Self, Error>;

    /// Builds the state from a snapshot of state version `from`.
    ///
    /// The default decodes `from == STATE_VERSION` and refuses anything else;
    /// override it to convert older versions (decode them with
    /// [`crate::state::decode`]). Versions newer than `STATE_VERSION` never
    /// reach this method: the SDK refuses them first.
    ///
    /// # Errors
    /// [`Error::unknown_state_version`] for a version this code cannot read;
    /// any error rolls the reload back.
    fn migrate(from: u32, state: &[u8], config: Self::Config, ctx: &Ctx) -> Result<Self, Error> {
        let _ = (config, ctx);
        if from == Self::STATE_VERSION {
            state::decode("state", state)
        } else {
            Err(Error::unknown_state_version(
                Self::NAME,
                from,
                Self::STATE_VERSION,
            ))
        }
    }

    /// Produces the state in an older state version `to`, so that the
    /// previous library can take it back (an explicit rollback). `to` is
    /// always lower than `STATE_VERSION`.
    ///
    /// # Errors
    /// The default refuses with [`Error::cannot_downgrade`]: a rollback then
    /// needs the operator to ask for a state reset.
    fn downgrade(&self, to: u32) -> Result<Vec<u8>, Error> {
        Err(Error::cannot_downgrade(Self::NAME, Self::STATE_VERSION, to))
    }

    /// Handles one message.
    ///
    /// # Errors
    /// The caller gets the error; the instance keeps serving.
    fn handle(&mut self, msg: Self::Msg, ctx: &Ctx) -> Result<Self::Reply, Error>;

    /// Starts serving (after `init` or `migrate`).
    ///
    /// # Errors
    /// An error during a reload rolls it back.
    fn start(&mut self, ctx: &Ctx) -> Result<(), Error> {
        let _ = ctx;
        Ok(())
    }

    /// Stops serving: called on the old behaviour during a swap and at shutdown.
    fn stop(&mut self, ctx: &Ctx) {
        let _ = ctx;
    }

    /// Checks the new behaviour after a swap.
    ///
    /// # Errors
    /// An error rolls the reload back.
    fn verify(&self, ctx: &Ctx) -> Result<(), Error> {
        let _ = ctx;
        Ok(())
    }

    /// A host event (`module.reloaded`, ...), as its kind and JSON body.
    /// Called only when [`Module::EVENTS`] is true.
    ///
    /// # Errors
    /// Logged by the host; the instance keeps serving.
    fn handle_event(&mut self, kind: &str, json: &str, ctx: &Ctx) -> Result<(), Error> {
        let _ = (kind, json, ctx);
        Ok(())
    }

    /// The answer to a request this actor made with [`Ctx::ask`], as a
    /// later message: `answer.correlation` is what the request carried,
    /// [`Answer::reply`] decodes the reply (or gives the error: the actor
    /// asked failed, is gone, or did not answer within the call timeout),
    /// and [`Answer::decode`] narrows it to a typed request's reply (one
    /// sent with [`Ctx::request`]).
    /// Messages are handled one at a time, so nothing else runs between the
    /// request and this call that the module did not see.
    ///
    /// # Errors
    /// Logged by the host; the instance keeps serving. The default refuses:
    /// a module that asks must implement it.
    fn handle_answer(&mut self, answer: Answer, ctx: &Ctx) -> Result<(), Error> {
        let _ = ctx;
        Err(Error::msg(format!(
            "module {} got the answer with correlation {} but does not implement handle_answer",
            Self::NAME,
            answer.correlation
        )))
    }
}
