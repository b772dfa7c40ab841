//! The debounce: per target, a quiet period that every new change restarts;
//! at most one run in flight, and exactly one more run when changes came in
//! while it was in flight. Pure bookkeeping (time is passed in), so it is
//! tested without files or timers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a change leads to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Target {
    /// Reload this module from its configured library.
    Module(String),
    /// Apply the watched config file.
    ConfigFile,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Module(m) => write!(f, "module {m}"),
            Target::ConfigFile => f.write_str("the config file"),
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// When the quiet period ends (a change was seen and not acted on yet).
    due: Option<Instant>,
    /// A run is in flight.
    running: bool,
    /// The quiet period ended while a run was in flight: run once more when
    /// it finishes.
    again: bool,
}

impl Slot {
    fn idle(&self) -> bool {
        self.due.is_none() && !self.running && !self.again
    }
}

/// The per-target debounce state.
#[derive(Debug)]
pub(crate) struct Schedule {
    debounce: Duration,
    slots: HashMap<Target, Slot>,
}

impl Schedule {
    pub(crate) fn new(debounce: Duration) -> Self {
        Schedule {
            debounce,
            slots: HashMap::new(),
        }
    }

    /// A change to `target` was seen at `now`: its quiet period (re)starts.
    pub(crate) fn touch(&mut self, target: Target, now: Instant) {
        self.slots.entry(target).or_default().due = Some(now + self.debounce);
    }

    /// When the next quiet period ends.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.slots.values().filter_map(|s| s.due).min()
    }

    /// The targets to run now (marked running). A target whose quiet period
    /// ended while it runs is marked to run again when that run finishes.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<Target> {
        let mut start = Vec::new();
        for (target, slot) in &mut self.slots {
            match slot.due {
                Some(due) if due <= now => {
                    slot.due = None;
                    if slot.running {
                        slot.again = true;
                    } else {
                        slot.running = true;
                        start.push(target.clone());
                    }
                }
                _ => {}
            }
        }
        start.sort();
        start
    }

    /// The run of `target` finished at `now`. Returns whether it runs again
    /// (then it is due at once: its changes have been quiet long enough).
    pub(crate) fn finished(&mut self, target: &Target, now: Instant) -> bool {
        let Some(slot) = self.slots.get_mut(target) else {
            return false;
        };
        slot.running = false;
        let again = std::mem::take(&mut slot.again);
        if again {
            // A newer change's quiet period may still be running: keep the
            // later of the two.
            slot.due = Some(slot.due.map_or(now, |d| d.max(now)));
        }
        if slot.idle() {
            self.slots.remove(target);
        }
        again
    }

    /// Whether anything is scheduled or running (for tests).
    #[cfg(test)]
    fn is_idle(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_millis(5);

    fn kv() -> Target {
        Target::Module("kv".into())
    }

    #[test]
    fn a_burst_is_one_run_after_the_last_change() {
        let t0 = Instant::now();
        let mut s = Schedule::new(D);
        for i in 0..10 {
            s.touch(kv(), t0 + Duration::from_millis(i));
            assert!(s.take_due(t0 + Duration::from_millis(i)).is_empty());
        }
        assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(9) + D));
        assert!(s.take_due(t0 + Duration::from_millis(13)).is_empty());
        assert_eq!(s.take_due(t0 + Duration::from_millis(14)), vec![kv()]);
        assert!(s.take_due(t0 + Duration::from_millis(100)).is_empty());
        assert!(!s.finished(&kv(), t0 + Duration::from_millis(20)));
        assert!(s.is_idle());
    }

    #[test]
    fn changes_during_a_run_give_exactly_one_more_run_after_it() {
        let t0 = Instant::now();
        let mut s = Schedule::new(D);
        s.touch(kv(), t0);
        assert_eq!(s.take_due(t0 + D), vec![kv()]);
        // Three changes while it runs: their quiet period ends, no second
        // run starts while the first is in flight.
        for i in 1..=3 {
            s.touch(kv(), t0 + D + Duration::from_millis(i));
        }
        let late = t0 + Duration::from_millis(50);
        assert!(s.take_due(late).is_empty(), "never interleaved");
        assert_eq!(s.next_due(), None);
        assert!(s.finished(&kv(), late));
        assert_eq!(s.take_due(late), vec![kv()], "one more, at once");
        assert!(!s.finished(&kv(), late + D));
        assert!(s.is_idle());
    }

    #[test]
    fn a_change_still_quiet_when_the_run_ends_waits_for_its_quiet_period() {
        let t0 = Instant::now();
        let mut s = Schedule::new(D);
        s.touch(kv(), t0);
        assert_eq!(s.take_due(t0 + D), vec![kv()]);
        s.touch(kv(), t0 + D + Duration::from_millis(1));
        // The run ends before that change's quiet period does.
        assert!(!s.finished(&kv(), t0 + D + Duration::from_millis(2)));
        assert!(s.take_due(t0 + D + Duration::from_millis(2)).is_empty());
        assert_eq!(s.take_due(t0 + D + Duration::from_millis(6)), vec![kv()]);
    }

    #[test]
    fn targets_are_independent() {
        let t0 = Instant::now();
        let mut s = Schedule::new(D);
        s.touch(kv(), t0);
        s.touch(Target::ConfigFile, t0 + Duration::from_millis(3));
        assert_eq!(s.take_due(t0 + D), vec![kv()]);
        assert_eq!(
            s.take_due(t0 + Duration::from_millis(8)),
            vec![Target::ConfigFile]
        );
    }

    #[test]
    fn zero_debounce_is_due_at_once() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::ZERO);
        s.touch(kv(), t0);
        assert_eq!(s.take_due(t0), vec![kv()]);
    }
}
