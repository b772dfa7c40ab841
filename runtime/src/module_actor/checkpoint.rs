//! Checkpoints and restarts in place (docs/semantics.md "Restarts and
//! checkpoints").
//!
//! An instance takes a checkpoint (a snapshot of its state) between
//! messages, at most every `limits.checkpoint_interval`, and only when it
//! handled something since the last one. The first message after a
//! checkpoint schedules a [`ModuleMsg::Checkpoint`] for the end of the
//! interval, through the mailbox: the checkpoint is taken between messages,
//! and taken even when no message follows, so the newest good state is never
//! older than the interval (plus the messages queued ahead of it). The message
//! hot path pays one branch; the snapshot is the cost, once per interval.
//!
//! A restart in place (repeated handler panics) rebuilds the behaviour from
//! the newest checkpoint and reports what it restored and how old it was.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Instance, ModuleMsg};
use crate::directory::{Checkpoint, Snapshot};
use crate::loader::Library;
use crate::restart::Restarted;

/// When the instance checkpoints next.
pub(crate) struct Schedule {
    /// Handled something since the newest checkpoint.
    dirty: bool,
    /// A `Checkpoint` message is on its way.
    due: bool,
    /// The last checkpoint (or attempt).
    last: Instant,
}

impl Schedule {
    pub(crate) fn new(last: Instant) -> Self {
        Schedule {
            dirty: false,
            due: false,
            last,
        }
    }
}

impl Instance {
    /// After each application message: the first one since the newest
    /// checkpoint schedules the next at the end of the interval.
    pub(super) fn handled_one(&mut self) {
        if self.checkpoints.dirty {
            return;
        }
        let interval = self.limits.checkpoint_interval;
        if interval.is_zero() {
            return;
        }
        self.checkpoints.dirty = true;
        if !self.checkpoints.due {
            let wait = (self.checkpoints.last + interval).saturating_duration_since(Instant::now());
            self.schedule_checkpoint(wait);
        }
    }

    fn schedule_checkpoint(&mut self, wait: Duration) {
        self.checkpoints.due = true;
        // A send to a stopped actor fails: nothing to checkpoint then.
        drop(self.myself.send_after(wait, || ModuleMsg::Checkpoint));
    }

    /// A `Checkpoint` message: takes the checkpoint if it is due.
    pub(super) fn checkpoint_due(&mut self) {
        self.checkpoints.due = false;
        if !self.checkpoints.dirty {
            return;
        }
        let interval = self.limits.checkpoint_interval;
        let since = self.checkpoints.last.elapsed();
        if since < interval {
            // A checkpoint came between (a committed reload): wait for the
            // end of its interval.
            self.schedule_checkpoint(interval - since);
            return;
        }
        self.take_checkpoint();
    }

    /// Snapshots the state as the newest checkpoint. A failed snapshot keeps
    /// the previous checkpoint (counted and logged, never fatal) and retries
    /// after another interval.
    fn take_checkpoint(&mut self) {
        let started = Instant::now();
        self.checkpoints.last = started;
        match self.snapshot_now() {
            Ok(snapshot) => {
                self.store_checkpoint(self.lib.clone(), snapshot, started);
                let took = started.elapsed();
                crate::metrics::checkpoint(&self.module, took);
                tracing::trace!(target: "molt::checkpoint", module = &*self.module, instance = self.index(), took_us = took.as_micros() as u64, "checkpoint");
            }
            Err(e) => {
                self.shared
                    .checkpoint_failures
                    .fetch_add(1, Ordering::Relaxed);
                crate::metrics::checkpoint_failed(&self.module);
                let kept = self
                    .shared
                    .checkpoint()
                    .map(|c| format!("{} ms old", c.at.elapsed().as_millis()))
                    .unwrap_or_else(|| "none".into());
                tracing::warn!(
                    target: "molt::checkpoint",
                    module = &*self.module,
                    instance = self.index(),
                    "checkpoint failed, keeping the previous one ({kept}): {} ({})",
                    e.message,
                    e.kind.as_str()
                );
                let interval = self.limits.checkpoint_interval;
                if !interval.is_zero() {
                    self.schedule_checkpoint(interval);
                }
            }
        }
    }

    /// A checkpoint of `snapshot` (`lib`'s, taken at `at`), counting the
    /// messages handled until now.
    pub(super) fn checkpoint_of(
        &self,
        lib: Arc<Library>,
        snapshot: Snapshot,
        at: Instant,
    ) -> Checkpoint {
        Checkpoint {
            lib,
            snapshot,
            at,
            from_start: false,
            handled: self.shared.handled.load(Ordering::Relaxed),
        }
    }

    /// Makes `snapshot` (taken at `at`) the newest checkpoint; returns the
    /// one it replaces, for the caller to free where it costs nothing (a
    /// committed swap frees it off its pause).
    pub(super) fn store_checkpoint(
        &mut self,
        lib: Arc<Library>,
        snapshot: Snapshot,
        at: Instant,
    ) -> Option<Checkpoint> {
        let checkpoint = self.checkpoint_of(lib, snapshot, at);
        let replaced = match self.shared.last_good.lock() {
            Ok(mut g) => g.replace(checkpoint),
            Err(_) => None,
        };
        self.checkpoints.dirty = false;
        self.checkpoints.last = at;
        replaced
    }

    /// Rebuilds the behaviour from the newest checkpoint, keeping the actor
    /// (and so its mailbox); reports the restart (event and history). State
    /// changes since that checkpoint are lost.
    pub(super) fn restart_in_place(&mut self) {
        let Some(cp) = self.shared.checkpoint() else {
            return;
        };
        let limit = self.limits.restart_after_failures;
        // Stop before start, as in a swap (docs/semantics.md "Reload phases").
        let _ = self.behaviour.stop();
        let rebuilt = cp
            .lib
            .migrate(
                cp.snapshot.version,
                &cp.snapshot.bytes,
                &self.config,
                self.ctx.clone(),
            )
            .and_then(|mut b| b.start().into_result().map(|()| b));
        match rebuilt {
            Ok(new) => {
                self.behaviour = new;
                self.lib = cp.lib.clone();
                self.shared.restarts.fetch_add(1, Ordering::Relaxed);
                // The state is the checkpoint's again: nothing new to save.
                self.checkpoints.dirty = false;
                let age = cp.at.elapsed();
                tracing::warn!(
                    target: "molt::supervisor",
                    module = &*self.module,
                    instance = self.index(),
                    restored = cp.source(),
                    state_age_ms = age.as_millis() as u64,
                    "restarted in place after {limit} handler panics in a row"
                );
                (self.on_restart)(Restarted {
                    module: self.module.to_string(),
                    instance: self.index(),
                    code_version: self.lib.code_version.clone(),
                    reason: format!("{limit} handler panics in a row"),
                    restored: cp.source(),
                    state_age: age,
                    forced: false,
                    stuck_messages: 0,
                });
            }
            Err(e) => {
                let _ = self.behaviour.start();
                tracing::error!(
                    target: "molt::supervisor",
                    module = &*self.module,
                    instance = self.index(),
                    "restart from the newest checkpoint failed, keeping the current behaviour: {e}"
                );
            }
        }
    }
}
