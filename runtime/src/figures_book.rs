//! A module's handling figures over time (docs/semantics.md "Handling
//! figures"): sums its instances' counters and latency cells when asked,
//! keeps what stopped keyed actors and removed instances had counted, and
//! cuts the figures into periods, one per serving version.
//!
//! The supervisor owns one per module and is its only reader; keyed actors
//! register and retire themselves (they come and go), pool instances are
//! read through the module's serving routes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::directory::{InstanceShared, Route};
use crate::figures::{Figures, ModuleFigures, VersionFigures, SAMPLE_EVERY};

/// One module's figures book (see the module doc).
#[derive(Debug)]
pub(crate) struct FiguresBook {
    inner: Mutex<Book>,
}

#[derive(Debug)]
struct Book {
    /// Live keyed actors, by the address of their shared counters.
    keyed: HashMap<usize, Arc<InstanceShared>>,
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

/// One instance's figures since it started (its counters go on across
/// restarts and swaps).
fn of_instance(shared: &InstanceShared) -> Figures {
    use std::sync::atomic::Ordering::Relaxed;
    let panics = shared.figures.panics();
    let (latency_sum_ns, latency) = shared.figures.latency();
    Figures {
        handled: shared.handled.load(Relaxed),
        errors: shared.failed.load(Relaxed).saturating_sub(panics),
        panics,
        restarts: shared.restarts.load(Relaxed),
        latency_sum_ns,
        latency,
    }
}

fn key_of(shared: &Arc<InstanceShared>) -> usize {
    Arc::as_ptr(shared) as usize
}

impl FiguresBook {
    /// The book of a module that starts serving `code_version` now.
    pub(crate) fn new(code_version: &str) -> Arc<Self> {
        Arc::new(FiguresBook {
            inner: Mutex::new(Book {
                keyed: HashMap::new(),
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

    /// A keyed actor started: its figures count from now on.
    pub(crate) fn register_keyed(&self, shared: &Arc<InstanceShared>) {
        self.book().keyed.insert(key_of(shared), shared.clone());
    }

    /// A keyed actor stopped: what it counted is kept.
    pub(crate) fn retire_keyed(&self, shared: &Arc<InstanceShared>) {
        let mut book = self.book();
        if let Some(gone) = book.keyed.remove(&key_of(shared)) {
            book.retired.add(&of_instance(&gone));
        }
    }

    /// A scale-down removed an instance from the serving routes: what it
    /// counted so far is kept (what it handles while it drains is not).
    pub(crate) fn retire_instance(&self, shared: &InstanceShared) {
        self.book().retired.add(&of_instance(shared));
    }

    fn totals(book: &Book, routes: &[Route]) -> Figures {
        let mut total = book.retired.clone();
        for r in routes {
            total.add(&of_instance(&r.shared));
        }
        for shared in book.keyed.values() {
            total.add(&of_instance(shared));
        }
        total
    }

    /// `code_version` serves from now on (a committed reload or rollback):
    /// the serving version's period ends and becomes the previous one.
    /// `routes`: the module's serving instances.
    pub(crate) fn new_period(&self, routes: &[Route], code_version: &str) {
        let mut book = self.book();
        let now = unix_ms(SystemTime::now());
        let total = Self::totals(&book, routes);
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
        let total = Self::totals(&book, routes);
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
