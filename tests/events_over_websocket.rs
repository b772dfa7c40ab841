//! `GET /ws`: the node's events over WebSocket, tested with a real
//! WebSocket client (tokio-tungstenite): one JSON object per event with an
//! `event` field, a text `ping` answered `pong`, the same Host and token
//! rules as `/events`, the same cap on open streams, and the socket closed
//! when the server stops.

use crate::common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use molt::{ModuleSpec, Node};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const TOKEN: &str = "test-token-ws-0123456789abcdef0123";
const DEADLINE: Duration = Duration::from_secs(30);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `ws://ADDR/ws` with the extra `headers`; the HTTP status of a
/// refused upgrade as the error.
async fn connect(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> Result<Socket, u16> {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    for (name, value) in headers {
        req.headers_mut()
            .insert(header_name(name), value.parse().expect("header value"));
    }
    match tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(req)).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(WsError::Http(response))) => Err(response.status().as_u16()),
        Ok(Err(e)) => panic!("the WebSocket connection failed: {e}"),
        Err(_) => panic!("no WebSocket answer within {DEADLINE:?}"),
    }
}

fn header_name(name: &str) -> tokio_tungstenite::tungstenite::http::HeaderName {
    name.parse().expect("header name")
}

/// The next text message, failing the test after the deadline.
async fn next_text(socket: &mut Socket) -> String {
    let message = tokio::time::timeout(DEADLINE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => return t.as_str().to_string(),
                Some(Ok(_)) => continue,
                other => panic!("the socket ended while waiting for a message: {other:?}"),
            }
        }
    })
    .await;
    message.unwrap_or_else(|_| panic!("no message within {DEADLINE:?}"))
}

async fn node_with_cap(name: &str, cap: usize) -> Node {
    let f = common::fixtures();
    let mut config = common::config(name, &[]);
    config.limits.http_max_event_streams = cap;
    Node::start(config.module(ModuleSpec::new("counter", &f.counter)))
        .await
        .expect("node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_as_json_objects_and_ping_is_answered() {
    let f = common::fixtures();
    let node = node_with_cap("ws-events", 8).await;
    let (server, client) = common::serve_admin(&node, TOKEN).await;
    // Loopback: reading needs no token, as `/events`.
    let mut socket = connect(server.local_addr(), &[]).await.expect("upgraded");

    socket.send(Message::text("ping")).await.unwrap();
    assert_eq!(next_text(&mut socket).await, "pong");

    let report = client
        .reload("counter", Some(f.counter_v2.clone()))
        .await
        .expect("the reload commits");
    assert_eq!(report.to, "2.0.0");
    let event = loop {
        let text = next_text(&mut socket).await;
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        assert!(v["event"].is_string(), "no event field: {text}");
        if v["event"] == "module.reloaded" {
            break v;
        }
    };
    assert_eq!(event["name"], "counter");
    assert_eq!(event["to"], "2.0.0");

    // The server stopping closes the socket.
    server.shutdown().await;
    let ended = tokio::time::timeout(DEADLINE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the socket stayed open after the server stopped"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_host_token_and_cap_rules_as_events() {
    let node = node_with_cap("ws-rules", 1).await;
    let (server, _client) = common::serve_admin(&node, TOKEN).await;
    let addr = server.local_addr();

    // A foreign Host (DNS rebinding) is refused on a loopback server.
    assert_eq!(
        connect(addr, &[("host", "attacker.example")]).await.err(),
        Some(403)
    );

    // One stream open: the cap (1) is reached for `/ws` and `/events` alike.
    let mut socket = connect(addr, &[]).await.expect("the first stream");
    assert_eq!(connect(addr, &[]).await.err(), Some(503));
    let sse = reqwest::Client::new()
        .get(format!("http://{addr}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 503);
    drop(sse);
    // Closed, its place comes back.
    socket.close(None).await.unwrap();
    drop(socket);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let again = loop {
        match connect(addr, &[]).await {
            Ok(s) => break s,
            Err(503) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(code) => panic!("the closed stream's place never came back ({code})"),
        }
    };
    drop(again);
    server.shutdown().await;

    // Not loopback: the token is needed, as for `/events`.
    let open = molt::http::serve(&node, "0.0.0.0:0".parse().unwrap(), Some(TOKEN.into()))
        .await
        .expect("the admin server starts");
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], open.local_addr().port()));
    assert_eq!(connect(local, &[]).await.err(), Some(401));
    assert_eq!(
        connect(local, &[("authorization", "Bearer wrong-token")])
            .await
            .err(),
        Some(401)
    );
    let mut socket = connect(local, &[("authorization", &format!("Bearer {TOKEN}"))])
        .await
        .expect("upgraded with the token");
    socket.send(Message::text("ping")).await.unwrap();
    assert_eq!(next_text(&mut socket).await, "pong");
    drop(socket);
    open.shutdown().await;
    node.shutdown().await;
}
