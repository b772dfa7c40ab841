//! The admin listener's accept loop: a cap on open connections, a timeout
//! on request headers, and an accept that survives running out of file
//! descriptors (issue #8 item 5).
//!
//! - At most `limits.http_max_connections` connections are open at once. A
//!   connection past the cap is accepted and closed at once (no answer): it
//!   costs no file descriptor beyond the moment of the accept, and the
//!   connections already open keep being served.
//! - A client has `limits.http_header_timeout` to send a request's headers,
//!   from the moment the connection opens or the previous answer went out:
//!   an idle connection (also an idle keep-alive one) is closed after it.
//!   Once the headers are in, a request (an event stream too) may take as
//!   long as it needs.
//! - An accept that fails (EMFILE, ENFILE, ENOBUFS...) is logged, then
//!   retried after a short pause: the loop never spins and never ends
//!   before the server is stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::sse::stopped;

/// The pause after a failed accept (too many open files, ...).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The least time between two warnings about refused connections or
/// failed accepts (so that a flood does not flood the log too).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The listener's limits (from [`crate::config::Limits`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenLimits {
    /// Time allowed for a request's headers; `None`: unbounded.
    pub header_timeout: Option<Duration>,
    /// The most connections open at once (at least 1).
    pub max_connections: usize,
}

impl ListenLimits {
    pub(crate) fn from_limits(limits: &crate::config::Limits) -> Self {
        ListenLimits {
            header_timeout: (!limits.http_header_timeout.is_zero())
                .then_some(limits.http_header_timeout),
            max_connections: limits
                .http_max_connections
                .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)),
        }
    }
}

/// A warning that is logged at most once per [`WARN_EVERY`], with the count
/// of what happened since the last one.
struct RareWarning {
    last: Option<Instant>,
    since: u64,
}

impl RareWarning {
    fn new() -> Self {
        RareWarning {
            last: None,
            since: 0,
        }
    }

    /// Counts one occurrence; true when it is time to log (with the count).
    fn due(&mut self) -> Option<u64> {
        self.since += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

/// Serves `app` on `listener` until `stop` turns true, then lets the open
/// connections finish their requests (graceful shutdown) and returns when
/// they are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenLimits,
    mut stop: watch::Receiver<bool>,
) {
    let addr = listener.local_addr().ok();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut refused = RareWarning::new();
    let mut failed = RareWarning::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                if let Some(n) = failed.due() {
                    tracing::warn!(target: "molt::http", ?addr, failed = n, "admin listener cannot accept connections ({e}); retrying");
                }
                tokio::select! {
                    biased;
                    () = stopped(&mut stop) => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            drop(stream);
            if let Some(n) = refused.due() {
                tracing::warn!(
                    target: "molt::http",
                    ?addr,
                    refused = n,
                    max = limits.max_connections,
                    "admin listener has limits.http_max_connections connections open: closing new ones"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        let service = hyper::service::service_fn({
            let app = app.clone();
            move |req: hyper::Request<Incoming>| {
                let mut app = app.clone();
                tower_service::Service::call(&mut app, req.map(Body::new))
            }
        });
        // With upgrades: `/ws` takes the connection over (its event-stream
        // permit then bounds it, not this connection's).
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            let served = tokio::select! {
                r = conn.as_mut() => r,
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(target: "molt::http", "admin connection ended: {e}");
            }
        });
    }
    // Every connection holds a permit until it is closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = open.acquire_many(all).await;
}

/// Errors of one incoming connection (it was reset before we took it):
/// accept the next one at once.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_warnings_count_what_they_skip() {
        let mut w = RareWarning::new();
        assert_eq!(w.due(), Some(1));
        assert_eq!(w.due(), None);
        assert_eq!(w.due(), None);
        w.last = Some(Instant::now() - WARN_EVERY);
        assert_eq!(w.due(), Some(3));
    }

    #[test]
    fn limits_are_usable() {
        let l = crate::config::Limits {
            http_max_connections: 0,
            http_header_timeout: Duration::ZERO,
            ..Default::default()
        };
        let ll = ListenLimits::from_limits(&l);
        assert_eq!(ll.max_connections, 1);
        assert_eq!(ll.header_timeout, None);
    }
}
