//! Open calls (issue #9 §2, `docs/semantics.md` "Replies later"): the reply
//! ports of calls a handler kept open with `ctx.reply_later()`, held by the
//! host under a token the module keeps as plain data.
//!
//! The table is process-wide, not per instance or per library: a pending
//! reply belongs to neither the code that took it nor the actor running it,
//! so it survives a reload (committed or rolled back), a restart in place
//! and a forced reload that replaces the actor. Token numbers are unique in
//! the process, so nodes sharing a process never answer each other's calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use molt_abi::ffi::ModError;
use tokio::sync::oneshot;

/// Where a call's reply goes: the caller's end waits on the other side.
pub(crate) type ReplyPort = oneshot::Sender<Result<Vec<u8>, ModError>>;

/// Why an open call could not be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotOpen {
    /// No open call has this token: it was answered already (or never
    /// issued, or its caller gave up long ago and it was swept).
    Unknown,
    /// The caller gave up: its call timed out or its future was dropped.
    CallerGone,
}

impl NotOpen {
    /// The error the module sees.
    pub(crate) fn describe(self, token: u64) -> String {
        match self {
            NotOpen::Unknown => format!(
                "reply token {token} names no open call: it was answered already \
                 (or its caller gave up and it was cleared)"
            ),
            NotOpen::CallerGone => format!(
                "the caller of reply token {token} gave up (its call timed out or was \
                 dropped): the reply is discarded"
            ),
        }
    }
}

#[derive(Default)]
struct Table {
    open: HashMap<u64, ReplyPort>,
    /// The table size at which ports whose caller gave up are swept.
    sweep_at: usize,
}

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(Mutex::default)
}

fn lock() -> std::sync::MutexGuard<'static, Table> {
    table().lock().unwrap_or_else(|p| p.into_inner())
}

/// Holds `port` until [`answer`] and returns its token.
pub(crate) fn hold(port: ReplyPort) -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let token = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut t = lock();
    if t.open.len() >= t.sweep_at {
        // Calls never answered whose caller gave up: amortized, the table
        // stays within twice its live size.
        t.open.retain(|_, port| !port.is_closed());
        t.sweep_at = (t.open.len() * 2).max(64);
    }
    t.open.insert(token, port);
    token
}

/// Answers the open call `token` and closes it.
pub(crate) fn answer(token: u64, reply: Result<Vec<u8>, ModError>) -> Result<(), NotOpen> {
    let port = lock().open.remove(&token).ok_or(NotOpen::Unknown)?;
    port.send(reply).map_err(|_| NotOpen::CallerGone)
}

/// How many calls are open (a test and status aid).
#[cfg(test)]
pub(crate) fn open_count() -> usize {
    lock().open.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_answers_once_and_not_after_its_caller_left() {
        let (tx, mut rx) = oneshot::channel();
        let token = hold(tx);
        assert!(open_count() >= 1);
        assert_eq!(answer(token, Ok(vec![1])), Ok(()));
        assert_eq!(rx.try_recv().unwrap(), Ok(vec![1]));
        assert_eq!(answer(token, Ok(vec![2])), Err(NotOpen::Unknown));

        let (tx, rx) = oneshot::channel();
        let token = hold(tx);
        drop(rx);
        assert_eq!(answer(token, Ok(vec![3])), Err(NotOpen::CallerGone));
    }
}
