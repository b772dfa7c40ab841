//! `GET /ws`: the event bus over WebSocket, for browser clients of
//! hot-reload tools. Each event is one text message, the event's JSON
//! object with an `event` field naming its kind
//! (`{"event":"module.reloaded","kind":"module.reloaded","module":"kv",...}`);
//! a subscriber that falls behind gets `{"event":"lagged","skipped":N}`.
//! A text `ping` is answered `pong`; an idle socket gets a protocol ping
//! every 15 s (as `/events` gets a comment). The same Host and token rules as
//! `/events`, and the same cap (`limits.http_max_event_streams`, shared
//! with `/events`). The socket is closed when the node stops or the server
//! shuts down.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use tokio::sync::OwnedSemaphorePermit;

use super::errors::ApiError;
use super::routes::AppState;
use super::sse::{stopped, stream_permit, EventsQuery, KEEP_ALIVE};
use crate::events::{EventStream, Received};

/// Close code "going away" (RFC 6455 §7.4.1): the node or server stops.
const GOING_AWAY: u16 = 1001;

/// `GET /ws` (`?progress=true` as `/events`); 503 `too_many_event_streams`
/// past the cap.
pub(crate) async fn events(
    State(st): State<AppState>,
    Query(q): Query<EventsQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let permit = stream_permit(&st)?;
    // Subscribed before the upgrade answer goes out, as `/events`.
    let sub = st.events.resubscribe().with_progress(q.progress);
    let stop = st.stop.clone();
    Ok(upgrade.on_upgrade(move |socket| serve(socket, sub, stop, permit)))
}

/// Forwards events to the socket and answers pings until the client goes,
/// the node stops or the server shuts down.
async fn serve(
    mut socket: WebSocket,
    mut sub: EventStream,
    mut stop: tokio::sync::watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    // An idle socket gets a protocol ping now and then, as `/events` gets
    // a comment, so that proxies keep it open.
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keep_alive.reset();
    loop {
        let out = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            _ = keep_alive.tick() => Message::Ping(Default::default()),
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(t))) if t.as_str().trim() == "ping" => Message::text("pong"),
                // Protocol pings are answered by axum; other text is ignored.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            received = sub.recv() => match received {
                Received::Event(e) => Message::text(event_json(e.event.kind(), &e.event.to_json())),
                Received::Lagged(n) => Message::text(
                    serde_json::json!({"event": "lagged", "kind": "lagged", "skipped": n}).to_string(),
                ),
                Received::Closed => break,
            },
        };
        if socket.send(out).await.is_err() {
            return;
        }
        keep_alive.reset();
    }
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: GOING_AWAY,
            reason: "the molt node or its admin server stopped".into(),
        })))
        .await;
}

/// The event's JSON object with `"event": kind` added.
fn event_json(kind: &str, json: &str) -> String {
    let mut object = serde_json::Map::new();
    object.insert("event".into(), kind.into());
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(json) {
        for (k, v) in fields {
            object.entry(k).or_insert(v);
        }
    }
    serde_json::Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_their_kind() {
        let v: serde_json::Value = serde_json::from_str(&event_json(
            "module.reloaded",
            r#"{"kind":"module.reloaded","module":"kv"}"#,
        ))
        .unwrap();
        assert_eq!(v["event"], "module.reloaded");
        assert_eq!(v["module"], "kv");
        let v: serde_json::Value = serde_json::from_str(&event_json("x", "not json")).unwrap();
        assert_eq!(v, serde_json::json!({"event": "x"}));
    }
}
