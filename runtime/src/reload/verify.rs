//! Phase 6, verify: `new.verify()` within a timeout, plus a snapshot round
//! trip of the new state (it must encode and decode again). The round-trip
//! snapshot becomes the instance's last good snapshot on commit.
//!
//! The round trip proves two things: the new code can snapshot the state it
//! holds, and the new code can read that snapshot back. The first needs the
//! snapshot. The second is already proven when the snapshot is, byte for
//! byte and at the same state version, the one phase 4 handed to the same
//! library's `migrate` a moment ago (a reload that keeps the state layout):
//! then decoding it again would repeat that `migrate` on the same input, and
//! the round trip skips it (docs/semantics.md "Reload phases", verify).

use std::sync::Arc;

use abi_stable::std_types::RSlice;
use molt_abi::ffi::{BehaviourBox, HostCtxBox};

use super::{Candidate, Phase, PhaseFailure, Progress};
use crate::config::Limits;
use crate::directory::Snapshot;
use crate::loader::Library;

/// From this size on, the round trip's snapshot buffer is freed on the
/// blocking pool rather than inside the pause: unmapping a large buffer
/// costs more than handing it over.
const FREE_OFF_PAUSE: usize = 256 << 10;

/// Verifies the new behaviour; `handed` is the state phase 4 migrated it
/// from (`None`: a reset). On failure the new behaviour is stopped (if
/// `verify` hangs: as soon as it returns).
///
/// The module's own `verify` runs on the blocking pool, bounded by
/// `limits.verify_timeout`; a module that has none (`has_verify`) is not
/// handed over at all. The round trip runs on the instance, like the
/// snapshot and the migrate before it.
pub(crate) async fn check(
    ctx: HostCtxBox,
    new: BehaviourBox,
    target: &Arc<Library>,
    handed: Option<&Snapshot>,
    config: &Arc<Vec<u8>>,
    limits: &Limits,
    progress: &Progress,
) -> Result<Candidate, PhaseFailure> {
    let mut new = if new.has_verify() {
        own_verify(new, limits).await?
    } else {
        new
    };
    if !limits.verify_round_trip {
        return Ok(Candidate {
            behaviour: new,
            snapshot: None,
        });
    }
    match round_trip(ctx, &new, target, handed, config, progress) {
        Ok(snapshot) => Ok(Candidate {
            behaviour: new,
            snapshot: Some(snapshot),
        }),
        Err(f) => {
            let _ = new.stop();
            Err(f)
        }
    }
}

/// The module's own `verify`, on the blocking pool within
/// `limits.verify_timeout`: a `verify` that hangs holds a blocking thread,
/// not the instance, which serves the old code again after the rollback.
async fn own_verify(new: BehaviourBox, limits: &Limits) -> Result<BehaviourBox, PhaseFailure> {
    let mut task = tokio::task::spawn_blocking(move || {
        let result = new.verify().into_result();
        (new, result)
    });
    match tokio::time::timeout(limits.verify_timeout, &mut task).await {
        Err(_) => {
            // The new behaviour is stuck in `verify` on its blocking thread.
            // The old one is started again now; the new one is stopped (and
            // dropped) whenever `verify` returns.
            tokio::spawn(async move {
                if let Ok((mut late, _)) = task.await {
                    let _ = late.stop();
                }
            });
            Err(PhaseFailure::new(
                Phase::Verify,
                format!("verify did not finish within {:?}", limits.verify_timeout),
            ))
        }
        Ok(Err(join)) => Err(PhaseFailure::new(
            Phase::Verify,
            format!("verify task failed: {join}"),
        )),
        Ok(Ok((mut new, Err(e)))) => {
            let _ = new.stop();
            Err(PhaseFailure::module(Phase::Verify, "verify", e))
        }
        Ok(Ok((new, Ok(())))) => Ok(new),
    }
}

/// The snapshot round trip: the new code's snapshot of its state, read back
/// by the same library unless phase 4's `migrate` has just read exactly
/// those bytes at that state version. Returns the snapshot a restart of the
/// new code would rebuild from.
fn round_trip(
    ctx: HostCtxBox,
    new: &BehaviourBox,
    target: &Arc<Library>,
    handed: Option<&Snapshot>,
    config: &Arc<Vec<u8>>,
    progress: &Progress,
) -> Result<Snapshot, PhaseFailure> {
    let handed = handed.filter(|h| h.version == target.state_version);
    if let Some(same) = handed {
        // Compared as the module encodes, without a buffer of its own;
        // `false` (or a library that predates `snapshot_is`) takes the full
        // snapshot below.
        let same_bytes = new
            .snapshot_is(RSlice::from_slice(&same.bytes))
            .into_result()
            .map_err(|e| PhaseFailure::module(Phase::Verify, "snapshot round trip", e))?;
        if same_bytes {
            return Ok(same.clone());
        }
    }
    let hint = handed.map_or(0, |h| h.bytes.len());
    let bytes = crate::module_actor::snapshot_bytes(new, hint)
        .map_err(|e| PhaseFailure::module(Phase::Verify, "snapshot round trip", e))?;
    if let Some(same) = handed.filter(|h| already_read(h, target, &bytes)) {
        // Phase 4's `migrate` has read exactly these bytes.
        if bytes.len() >= FREE_OFF_PAUSE {
            tokio::task::spawn_blocking(move || drop(bytes));
        }
        return Ok(same.clone());
    }
    progress.go_on("the round trip's migrate")?;
    let snapshot = Snapshot {
        version: target.state_version,
        bytes: Arc::new(bytes),
    };
    let scratch = target
        .migrate(snapshot.version, &snapshot.bytes, config, ctx)
        .map_err(|e| PhaseFailure::module(Phase::Verify, "snapshot round trip", e))?;
    // Freeing a large scratch state takes milliseconds: not inside the
    // pause.
    tokio::task::spawn_blocking(move || drop(scratch));
    Ok(snapshot)
}

/// Whether the new code's snapshot `bytes` is, byte for byte and at its
/// library's state version, the state `handed` that `target`'s `migrate` has
/// just read: then reading it back is proven and the round trip skips it.
pub(crate) fn already_read(handed: &Snapshot, target: &Library, bytes: &[u8]) -> bool {
    handed.version == target.state_version && handed.bytes.as_slice() == bytes
}
