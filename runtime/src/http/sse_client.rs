//! The client side of `GET /events`: a `text/event-stream` body, as bytes
//! in chunks of any size, into [`AdminEvent`]s.
//!
//! The parsing is `eventsource-stream`'s (the HTML standard's grammar:
//! lines end in LF, CRLF or CR, also when a chunk ends between the CR and
//! the LF; multi-line `data:`; comments). It buffers without a limit, so
//! [`EventBound`] (hand-written: the crate has no such option) ends the
//! stream with an error once one event grows past [`MAX_EVENT_BYTES`],
//! counting each byte once as it arrives.

use axum::body::Bytes;
use eventsource_stream::Eventsource;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

use super::client::{AdminEvent, ClientError, EventsStream};

/// The most bytes one event may have (its lines, without their line ends)
/// before the client gives up on the stream. The node's events are a few
/// hundred bytes; this only stops a broken or hostile server from filling
/// the client's memory.
pub(crate) const MAX_EVENT_BYTES: usize = 1 << 20;

/// The events of an event-stream body (`bytes`, whose errors say what broke
/// the connection); the stream ends after the first error. `base` names the
/// server in errors.
pub(crate) fn parse_events<S>(bytes: S, base: String, max_event_bytes: usize) -> EventsStream
where
    S: Stream<Item = Result<Bytes, String>> + Send + 'static,
{
    let mut bound = EventBound::new(max_event_bytes);
    let bounded = bytes.map(move |chunk| {
        let chunk = chunk?;
        bound.feed(&chunk)?;
        Ok::<_, String>(chunk)
    });
    let events: BoxStream<'static, Result<AdminEvent, ClientError>> = bounded
        .eventsource()
        .map(move |item| match item {
            Ok(event) => Ok(admin_event(event.event, event.data)),
            Err(e) => Err(ClientError::Transport {
                base: base.clone(),
                error: match e {
                    eventsource_stream::EventStreamError::Transport(why) => why,
                    other => format!("the event stream is malformed: {other}"),
                },
            }),
        })
        .boxed();
    // Nothing after an error: the stream cannot be trusted past it.
    events
        .scan(false, |failed, item| {
            let out = (!*failed).then(|| {
                *failed = item.is_err();
                item
            });
            std::future::ready(out)
        })
        .boxed()
}

/// One dispatched event: its SSE name is its kind (or, for an unnamed
/// event, the `kind` field of its JSON data); the data is JSON (or, when it
/// is not, the text as a JSON string).
fn admin_event(name: String, text: String) -> AdminEvent {
    let data = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    // eventsource-stream names an unnamed event "message".
    let kind = if name.is_empty() || name == "message" {
        data.get("kind")
            .and_then(|k| k.as_str())
            .map_or(name, String::from)
    } else {
        name
    };
    let kind = if kind.is_empty() {
        "message".into()
    } else {
        kind
    };
    AdminEvent { kind, data }
}

/// Counts the bytes of the event being received (everything since the
/// last blank line, line ends excluded), whatever the chunking.
#[derive(Debug)]
struct EventBound {
    max: usize,
    size: usize,
    line_empty: bool,
    after_cr: bool,
}

impl EventBound {
    fn new(max: usize) -> Self {
        EventBound {
            max,
            size: 0,
            line_empty: true,
            after_cr: false,
        }
    }

    /// Takes the next chunk; an error once the current event is too large.
    fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        for &b in chunk {
            match b {
                // The LF of a CRLF: that line already ended.
                b'\n' if self.after_cr => {}
                b'\n' | b'\r' => {
                    if self.line_empty {
                        // A blank line: the event is complete.
                        self.size = 0;
                    }
                    self.line_empty = true;
                }
                _ => {
                    self.line_empty = false;
                    self.size += 1;
                    if self.size > self.max {
                        return Err(format!(
                            "an event of the stream is larger than {} bytes: the stream is dropped",
                            self.max
                        ));
                    }
                }
            }
            self.after_cr = b == b'\r';
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of `chunks`, collected.
    async fn events_of(chunks: Vec<&'static [u8]>, max: usize) -> Vec<Result<AdminEvent, String>> {
        let bytes = futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
        parse_events(bytes, "http://test/".into(), max)
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
            .await
    }

    fn reloaded() -> AdminEvent {
        AdminEvent {
            kind: "module.reloaded".into(),
            data: serde_json::json!({"kind": "module.reloaded", "name": "kv"}),
        }
    }

    const LF: &[u8] =
        b"event: module.reloaded\ndata: {\"kind\":\"module.reloaded\",\"name\":\"kv\"}\n\n";
    const CRLF: &[u8] =
        b"event: module.reloaded\r\ndata: {\"kind\":\"module.reloaded\",\"name\":\"kv\"}\r\n\r\n";
    const CR: &[u8] =
        b"event: module.reloaded\rdata: {\"kind\":\"module.reloaded\",\"name\":\"kv\"}\r\r";

    #[tokio::test]
    async fn every_line_end_and_any_split_give_the_same_event() {
        for body in [LF, CRLF, CR] {
            // Every split in two, so a CR and its LF land in two chunks too.
            for at in 0..=body.len() {
                let (a, b) = body.split_at(at);
                // (A CR-ended event is complete once the next byte shows
                // the CR is not half a CRLF: a server's stream goes on.)
                let got = events_of(vec![a, b, b": next\n"], MAX_EVENT_BYTES).await;
                assert_eq!(
                    got,
                    vec![Ok(reloaded())],
                    "split at {at} of {:?}",
                    String::from_utf8_lossy(body)
                );
            }
            // One byte at a time.
            let mut bytes: Vec<&'static [u8]> = body.chunks(1).collect();
            bytes.push(b": next\n");
            assert_eq!(
                events_of(bytes, MAX_EVENT_BYTES).await,
                vec![Ok(reloaded())]
            );
        }
    }

    #[tokio::test]
    async fn keep_alives_names_and_multi_line_data() {
        let got = events_of(
            vec![b": keep-alive\n\ndata: {\"kind\":\"config.applied\"}\n\ndata: a\r\ndata: b\n\n"],
            MAX_EVENT_BYTES,
        )
        .await;
        let got: Vec<AdminEvent> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].kind, "config.applied");
        assert_eq!(got[1].kind, "message");
        assert_eq!(got[1].data, serde_json::Value::String("a\nb".into()));
    }

    #[tokio::test]
    async fn a_huge_line_is_cut_off_not_buffered() {
        // An endless line: the stream must end with an error, having read
        // little more than the limit.
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = read.clone();
        let endless = futures_util::stream::repeat(()).map(move |()| {
            counter.fetch_add(4096, std::sync::atomic::Ordering::Relaxed);
            Ok(Bytes::from_static(&[b'x'; 4096]))
        });
        let max = 64 * 1024;
        let mut events = parse_events(
            futures_util::stream::once(async { Ok(Bytes::from_static(b"data: ")) }).chain(endless),
            "http://test/".into(),
            max,
        );
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("the parser gives up in time");
        let error = first.expect("an item").expect_err("an error").to_string();
        assert!(error.contains("larger than 65536 bytes"), "{error}");
        assert!(events.next().await.is_none(), "nothing after the error");
        assert!(read.load(std::sync::atomic::Ordering::Relaxed) <= max + 4096);
        // Many events, each under the limit, are fine however long the stream.
        let mut bound = EventBound::new(16);
        for _ in 0..10_000 {
            bound.feed(b"data: 0123456789\r\n\r\n").unwrap();
        }
        assert!(bound
            .feed(b"data: 0123456789\r\ndata: 0123456789\n")
            .is_err());
    }

    #[tokio::test]
    async fn a_broken_connection_is_an_error_then_the_end() {
        let chunks = vec![
            Ok(Bytes::from_static(LF)),
            Err("connection reset".to_string()),
            Ok(Bytes::from_static(LF)),
        ];
        let got: Vec<_> = parse_events(futures_util::stream::iter(chunks), "b".into(), 1024)
            .collect()
            .await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].as_ref().unwrap(), &reloaded());
        assert!(got[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("connection reset"));
    }
}
