//! The rehearsal's copy of one instance: the new library builds a throwaway
//! behaviour from the snapshot (migrate), checks it (verify, plus the
//! snapshot round trip a real verify does), and drops it. It runs on a
//! blocking worker ([`super::copies`]) with a context that reaches nothing
//! (`ScratchCtx`); it is never started and never seen by anything that
//! serves.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::scratch_ctx::ScratchCtx;
use crate::directory::Snapshot;
use crate::loader::Library;
use crate::reload::{Phase, PhaseFailure};

/// What the copy did.
#[derive(Debug, Default)]
pub(crate) struct CopyResult {
    /// The first phase that failed, if any.
    pub failure: Option<PhaseFailure>,
    /// How long `migrate` took.
    pub migrate: Duration,
    /// How long `verify` and the snapshot round trip took.
    pub verify: Duration,
    /// The migrated state's size (its snapshot), when it got that far.
    pub bytes_after: Option<u64>,
}

/// The phase a copy is in.
pub(super) fn current(phase: &Mutex<Phase>) -> Phase {
    *phase.lock().unwrap_or_else(|p| p.into_inner())
}

/// The blocking part: migrate, verify, round trip; the copy is dropped here.
/// `phase` follows where it is.
pub(super) fn run(
    module: &Arc<str>,
    instance: u32,
    target: &Library,
    state: &Snapshot,
    config: &[u8],
    round_trip: bool,
    phase: &Mutex<Phase>,
) -> CopyResult {
    let mut out = CopyResult::default();
    let t = Instant::now();
    let built = target.migrate(
        state.version,
        &state.bytes,
        config,
        ScratchCtx::boxed(module.clone(), instance),
    );
    out.migrate = t.elapsed();
    let copy = match built {
        Ok(copy) => copy,
        Err(e) => {
            out.failure = Some(PhaseFailure::module(Phase::Migrate, "migrate", e));
            return out;
        }
    };
    if let Ok(mut p) = phase.lock() {
        *p = Phase::Verify;
    }
    let t = Instant::now();
    // As in a real verify: a module without a `verify` of its own is not
    // asked (docs/semantics.md "Reload phases").
    let own_verify = if copy.has_verify() {
        copy.verify().into_result()
    } else {
        Ok(())
    };
    let checked = own_verify
        .map_err(|e| PhaseFailure::module(Phase::Verify, "verify", e))
        .and_then(|()| {
            copy.snapshot()
                .into_result()
                .map_err(|e| PhaseFailure::module(Phase::Verify, "snapshot round trip", e))
        })
        .and_then(|bytes| {
            out.bytes_after = Some(bytes.len() as u64);
            // As in a real verify: a snapshot identical to the state the
            // copy was migrated from is not read back again.
            if !round_trip || crate::reload::verify::already_read(state, target, &bytes) {
                return Ok(());
            }
            target
                .migrate(
                    target.state_version,
                    &bytes,
                    config,
                    ScratchCtx::boxed(module.clone(), instance),
                )
                .map(drop)
                .map_err(|e| PhaseFailure::module(Phase::Verify, "snapshot round trip", e))
        });
    out.verify = t.elapsed();
    out.failure = checked.err();
    // Dropped unstarted, here on the blocking pool.
    drop(copy);
    out
}
