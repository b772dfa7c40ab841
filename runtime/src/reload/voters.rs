//! Voters beside a module's instances: a keyed module's live actors
//! (docs/semantics.md "Keyed actors"). They do not take `Swap`: each votes
//! on a rehearsal of its state in the new library while it keeps serving
//! the old code, so a rollback has nothing to undo on them. The coordinator
//! counts their vote with its instances' and decides once.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{PhaseFailure, SwapMode};
use crate::config::Limits;
use crate::loader::Library;

/// What the voters are asked to vote on.
pub(crate) struct Ballot {
    pub target: Arc<Library>,
    pub config: Arc<Vec<u8>>,
    pub mode: SwapMode,
    pub limits: Limits,
}

/// A group of voters that are not instances of the module.
pub(crate) trait Voters: Send {
    /// Their vote: `Ok` when every one of them would run `ballot.target`,
    /// else the first failure, naming the voter. The coordinator bounds it
    /// by `limits.prepare_timeout`.
    fn vote(self: Box<Self>, ballot: Ballot) -> BoxFuture<'static, Result<(), PhaseFailure>>;
}
