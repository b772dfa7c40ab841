//! A module's handling figures over time (docs/semantics.md "Handling
//! figures"): sums its instances' counters and latency cells when asked,
//! keeps what stopped keyed actors and removed instances had counted, and
//! cuts the figures into periods, one per serving version.
//!
//! The supervisor owns one per module and is its only reader; keyed actors
//! register and retire themselves (they come and go), pool instances are
//! read through the module's serving routes. A keyed module's actors time
//! their sampled messages into one set of cells the book keeps
//! ([`FiguresBook::keyed_latency`]): an activation registers only its counts
//! (a slot in a list, no histogram), and a stopped actor hands over only
//! its counts (issue #11 §3).

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::directory::{InstanceShared, Route};
use crate::figures::{Figures, LatencyCells, ModuleFigures, VersionFigures, SAMPLE_EVERY};

/// One module's figures book (see the module doc).
#[derive(Debug)]
pub(crate) struct FiguresBook {
    inner: Mutex<Book>,
    /// The sampled handling times of the module's keyed actors, live and
    /// stopped.
    keyed_latency: Arc<LatencyCells>,
}

#[derive(Debug)]
struct Book {
    /// Live keyed actors' counters, each in the slot it registered in
    /// ([`KeyedSeat`]); free slots are `None` and listed in `free`.
    keyed: Vec<Option<Arc<InstanceShared>>>,
    free: Vec<usize>,
    /// What stopped keyed actors and removed instances counted.
    retired: Figures,
    /// The serving version's period.
    period: Period,
    /// The previous version's figures, as they stood when it was replaced.
    previous: Option<VersionFigures>,
}

#[derive(Debug)]
struct Period {
    code_version: String,
    since_unix_ms: u64,
    /// The module's totals when the period began.
    baseline: Figures,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Adds one instance's figures since it started (its counters go on across
/// restarts and swaps) to `total`. A keyed actor adds its counts only: its
/// latency is its module's ([`FiguresBook::keyed_latency`]).
fn add_instance(total: &mut Figures, shared: &InstanceShared) {
    use std::sync::atomic::Ordering::Relaxed;
    let panics = shared.figures.panics();
    total.handled += shared.handled.load(Relaxed);
    total.errors += shared.failed.load(Relaxed).saturating_sub(panics);
    total.panics += panics;
    total.restarts += shared.restarts.load(Relaxed);
    if let Some((sum_ns, latency)) = shared.figures.latency() {
        total.add_latency(sum_ns, &latency);
    }
}

/// A live keyed actor's place in its module's book: handed back when it
/// stops ([`KeyedSeat::retire`]).
#[derive(Debug)]
pub(crate) struct KeyedSeat {
    book: Arc<FiguresBook>,
    slot: usize,
}

impl KeyedSeat {
    /// The actor stopped: what it counted is kept, its slot freed.
    pub(crate) fn retire(self) {
        let mut book = self.book.book();
        if let Some(gone) = book.keyed.get_mut(self.slot).and_then(Option::take) {
            add_instance(&mut book.retired, &gone);
            book.free.push(self.slot);
        }
    }
}

impl FiguresBook {
    /// The book of a module that starts serving `code_version` now.
    pub(crate) fn new(code_version: &str) -> Arc<Self> {
        Arc::new(FiguresBook {
            keyed_latency: LatencyCells::shared(),
            inner: Mutex::new(Book {
                keyed: Vec::new(),
                free: Vec::new(),
                retired: Figures::default(),
                period: Period {
                    code_version: code_version.to_string(),
                    since_unix_ms: unix_ms(SystemTime::now()),
                    baseline: Figures::default(),
                },
                previous: None,
            }),
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cells a keyed actor of this module times its messages into
    /// (`InstanceShared::keyed`).
    pub(crate) fn keyed_latency(&self) -> &Arc<LatencyCells> {
        &self.keyed_latency
    }

    /// A keyed actor started: its counts count from now on, until it hands
    /// back the seat.
    pub(crate) fn register_keyed(self: &Arc<Self>, shared: &Arc<InstanceShared>) -> KeyedSeat {
        let mut book = self.book();
        let slot = match book.free.pop() {
            Some(slot) => {
                book.keyed[slot] = Some(shared.clone());
                slot
            }
            None => {
                book.keyed.push(Some(shared.clone()));
                book.keyed.len() - 1
            }
        };
        KeyedSeat {
            book: self.clone(),
            slot,
        }
    }

    /// A scale-down removed an instance from the serving routes: what it
    /// counted so far is kept (what it handles while it drains is not).
    pub(crate) fn retire_instance(&self, shared: &InstanceShared) {
        add_instance(&mut self.book().retired, shared);
    }

    fn totals(&self, book: &Book, routes: &[Route]) -> Figures {
        let mut total = book.retired.clone();
        for r in routes {
            add_instance(&mut total, &r.shared);
        }
        for shared in book.keyed.iter().flatten() {
            add_instance(&mut total, shared);
        }
        let (sum_ns, latency) = self.keyed_latency.read();
        total.add_latency(sum_ns, &latency);
        total
    }

    /// `code_version` serves from now on (a committed reload or rollback):
    /// the serving version's period ends and becomes the previous one.
    /// `routes`: the module's serving instances.
    pub(crate) fn new_period(&self, routes: &[Route], code_version: &str) {
        let mut book = self.book();
        let now = unix_ms(SystemTime::now());
        let total = self.totals(&book, routes);
        let ended = VersionFigures::new(
            book.period.code_version.clone(),
            book.period.since_unix_ms,
            Some(now),
            total.minus(&book.period.baseline),
        );
        book.previous = Some(ended);
        book.period = Period {
            code_version: code_version.to_string(),
            since_unix_ms: now,
            baseline: total,
        };
    }

    /// The module's figures now. `routes`: its serving instances.
    pub(crate) fn read(&self, module: &str, routes: &[Route]) -> ModuleFigures {
        let book = self.book();
        let total = self.totals(&book, routes);
        ModuleFigures {
            module: module.to_string(),
            at_unix_ms: unix_ms(SystemTime::now()),
            sample_every: SAMPLE_EVERY,
            current: VersionFigures::new(
                book.period.code_version.clone(),
                book.period.since_unix_ms,
                None,
                total.minus(&book.period.baseline),
            ),
            previous: book.previous.clone(),
            total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    /// A keyed actor's counts count while it is live and stay when it
    /// stops; its module's actors' sampled latency is counted once, live or
    /// stopped; a freed seat is taken by the next actor.
    #[test]
    fn keyed_seats_keep_counts_and_count_latency_once() {
        let book = FiguresBook::new("1.0.0");
        let a = InstanceShared::keyed(1, book.keyed_latency());
        let b = InstanceShared::keyed(2, book.keyed_latency());
        let (seat_a, seat_b) = (book.register_keyed(&a), book.register_keyed(&b));
        a.handled.store(3, Relaxed);
        a.failed.store(2, Relaxed);
        a.figures.panicked();
        a.figures.timed(1_000);
        b.handled.store(5, Relaxed);
        b.figures.timed(2_000);
        let live = book.read("m", &[]).total;
        assert_eq!(
            (live.handled, live.errors, live.panics, live.latency.count()),
            (8, 1, 1, 2)
        );
        assert_eq!(live.latency_sum_ns, 3_000);

        seat_a.retire();
        let after = book.read("m", &[]).total;
        assert_eq!(after, live, "a stopped actor's figures stay, once");

        let c = InstanceShared::keyed(3, book.keyed_latency());
        let seat_c = book.register_keyed(&c);
        assert_eq!(seat_c.slot, 0, "the freed seat is reused");
        c.handled.store(1, Relaxed);
        seat_b.retire();
        seat_c.retire();
        let stopped = book.read("m", &[]).total;
        assert_eq!((stopped.handled, stopped.latency.count()), (9, 2));
    }
}
