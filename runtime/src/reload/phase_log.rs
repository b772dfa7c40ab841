//! The records of one instance's swap (a `module.reload_phase` event and a
//! `molt_reload_phase_seconds` sample per phase, the commit's sample, the
//! `molt_swap_pause_seconds` sample), timed inside its pause and published
//! after it by the coordinator, which gets them with the instance's report
//! (docs/semantics.md "Reload phases"). Building an event, handing it to the
//! bus's subscribers and recording a histogram sample is code that runs once
//! per reload, cold: 10–15 µs of a 1 KiB state's pause (BENCHMARKS.md,
//! "Third round: the 1 KiB floor"), which every message waiting in the
//! mailbox waited for. Observers see the same records as before, each
//! instance's phases in the order it went through them, all before the
//! reload's outcome (the coordinator publishes that only once it has every
//! report).

use std::sync::Arc;
use std::time::Duration;

use super::Phase;
use crate::events::{Event, EventBus};

/// Snapshot, migrate, swap, verify: the phases an instance reports.
const PHASES: usize = 4;

/// One phase's record: which, how long, whether it succeeded.
#[derive(Clone, Copy)]
struct Record {
    phase: Phase,
    took: Duration,
    ok: bool,
}

/// What an instance noted of its swap and has not published yet: its
/// phases, its commit's duration and its pause (metrics samples only, no
/// events).
pub(crate) struct PhaseLog {
    module: Arc<str>,
    bus: EventBus,
    instance: usize,
    records: [Option<Record>; PHASES],
    commit: Option<Duration>,
    pause: Option<Duration>,
}

impl PhaseLog {
    /// An empty log for instance `instance` of `module`, published to `bus`.
    pub(crate) fn new(module: Arc<str>, bus: EventBus, instance: usize) -> Self {
        PhaseLog {
            module,
            bus,
            instance,
            records: [None; PHASES],
            commit: None,
            pause: None,
        }
    }

    /// Notes that `phase` took `took` (`ok`: it succeeded). A record that
    /// does not fit (never: an instance goes through four phases) is
    /// published at once.
    pub(crate) fn record(&mut self, phase: Phase, took: Duration, ok: bool) {
        let record = Record { phase, took, ok };
        match self.records.iter_mut().find(|r| r.is_none()) {
            Some(slot) => *slot = Some(record),
            None => self.publish_one(record),
        }
    }

    /// Notes how long the commit (the decision and applying it) took.
    pub(crate) fn record_commit(&mut self, took: Duration) {
        self.commit = Some(took);
    }

    /// Notes the instance's pause (a `molt_swap_pause_seconds` sample).
    pub(crate) fn record_pause(&mut self, took: Duration) {
        self.pause = Some(took);
    }

    /// Publishes what was noted, in the order it was noted, and forgets it.
    pub(crate) fn publish(&mut self) {
        for record in std::mem::replace(&mut self.records, [None; PHASES])
            .into_iter()
            .flatten()
        {
            self.publish_one(record);
        }
        if let Some(took) = self.commit.take() {
            crate::metrics::phase(&self.module, Phase::Commit, took);
        }
        if let Some(took) = self.pause.take() {
            crate::metrics::pause(&self.module, took);
        }
    }

    fn publish_one(&self, Record { phase, took, ok }: Record) {
        crate::metrics::phase(&self.module, phase, took);
        self.bus.publish(Event::ReloadPhase {
            name: self.module.to_string(),
            phase,
            instance: Some(self.instance),
            took_us: took.as_micros() as u64,
            ok,
        });
    }
}

impl std::fmt::Debug for PhaseLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhaseLog")
            .field("module", &self.module)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Drop for PhaseLog {
    /// Whatever path the swap took, nothing noted is lost.
    fn drop(&mut self) {
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The progress events on `stream` until it has nothing more for
    /// `within`.
    async fn drained(stream: &mut crate::events::EventStream) -> Vec<(Phase, u64, bool)> {
        let mut seen = Vec::new();
        while let Ok(Some(e)) =
            tokio::time::timeout(Duration::from_millis(50), stream.next_event()).await
        {
            if let Event::ReloadPhase {
                phase,
                took_us,
                ok,
                instance: Some(3),
                ..
            } = e
            {
                seen.push((phase, took_us, ok));
            }
        }
        seen
    }

    #[tokio::test]
    async fn records_wait_for_publish_and_keep_their_order() {
        let bus = EventBus::new(16);
        let mut stream = bus.subscribe().with_progress(true);
        let mut log = PhaseLog::new("kv".into(), bus.clone(), 3);
        log.record(Phase::Snapshot, Duration::from_micros(7), true);
        log.record(Phase::Migrate, Duration::from_micros(11), true);
        log.record(Phase::Swap, Duration::from_micros(2), false);
        log.record_commit(Duration::from_micros(1));
        assert_eq!(drained(&mut stream).await, [], "published before publish");
        log.publish();
        assert_eq!(
            drained(&mut stream).await,
            [
                (Phase::Snapshot, 7, true),
                (Phase::Migrate, 11, true),
                (Phase::Swap, 2, false)
            ]
        );
        drop(log);
        assert_eq!(drained(&mut stream).await, [], "published twice");
    }

    #[tokio::test]
    async fn a_log_dropped_unpublished_publishes_what_it_holds() {
        let bus = EventBus::new(16);
        let mut stream = bus.subscribe().with_progress(true);
        let mut log = PhaseLog::new("kv".into(), bus.clone(), 3);
        log.record(Phase::Snapshot, Duration::from_micros(5), false);
        drop(log);
        assert_eq!(drained(&mut stream).await, [(Phase::Snapshot, 5, false)]);
    }
}
