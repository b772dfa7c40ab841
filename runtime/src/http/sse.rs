//! `GET /events`: the event bus as server-sent events. Each event's SSE
//! name is its kind (`module.reloaded`, `config.applied`, ...) and its data
//! the event's JSON object (`Event::to_json`). A subscriber that falls
//! behind the bus gets a `lagged` event (`{"kind":"lagged","skipped":N}`).
//! The stream ends when the node stops or the server shuts down. `GET /ws`
//! (`ws.rs`) serves the same events over WebSocket, within the same cap.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::{watch, OwnedSemaphorePermit};

use axum::http::StatusCode;

use super::errors::ApiError;
use super::routes::AppState;
use crate::events::Received;

/// How often an idle stream sends a comment, so proxies keep it open.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /events?progress=true` also streams `module.reload_phase` events.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    pub(crate) progress: bool,
}

/// `GET /events`; past `limits.http_max_event_streams` open streams, 503
/// `too_many_event_streams`.
pub(crate) async fn events(
    State(st): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Held by the stream: released when the client goes away.
    let permit = stream_permit(&st)?;
    // Subscribed before the answer's headers go out: a client that has them
    // sees every event published afterwards.
    let sub = st.events.resubscribe().with_progress(q.progress);
    let state = (sub, st.stop, permit);
    let stream = futures_util::stream::unfold(state, |(mut sub, mut stop, permit)| async move {
        let received = tokio::select! {
            biased;
            () = stopped(&mut stop) => return None,
            r = sub.recv() => r,
        };
        let event = match received {
            Received::Event(e) => SseEvent::default()
                .event(e.event.kind())
                .data(e.event.to_json()),
            Received::Lagged(n) => SseEvent::default()
                .event("lagged")
                .data(serde_json::json!({"kind": "lagged", "skipped": n}).to_string()),
            Received::Closed => return None,
        };
        Some((Ok(event), (sub, stop, permit)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// One of the `limits.http_max_event_streams` event streams (`/events` and
/// `/ws` share them): 503 `too_many_event_streams` when none is left.
pub(crate) fn stream_permit(st: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    st.event_streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_event_streams",
            "this admin server has limits.http_max_event_streams event streams open; try again later",
        )
    })
}

/// Resolves once the server is told to stop (or its handle is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}
