//! The HTTP admin listener cannot be exhausted (issue #8 item 5):
//! connections past `limits.http_max_connections` are closed at once, an
//! idle connection that sends no headers is closed after
//! `limits.http_header_timeout`, event streams past
//! `limits.http_max_event_streams` answer 503, and a fresh `/healthz`
//! answers once the idle connections are gone. A flood of idle connections
//! against a `molt run` with few file descriptors leaves the node able to
//! answer and to reload.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use molt::http::{AdminServer, ErrorBody};
use molt::{Limits, ModuleSpec, Node};
use std::io::{Read, Write};
use std::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(30);

async fn node_with(name: &str, limits: impl FnOnce(&mut Limits)) -> (Node, AdminServer) {
    let f = common::fixtures();
    let mut config = common::config(name, &[]);
    limits(&mut config.limits);
    let node = Node::start(config.module(ModuleSpec::new("kv", &f.kv)))
        .await
        .expect("node starts");
    let server = molt::http::serve(&node, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .expect("admin server");
    (node, server)
}

/// Whether the server closes `conn` (end of file or reset) within
/// `within` (a blocking read, off the async workers).
async fn closed_within(conn: TcpStream, within: Duration) -> (bool, TcpStream) {
    tokio::task::spawn_blocking(move || {
        let mut conn = conn;
        conn.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 256];
        let closed = loop {
            match conn.read(&mut buf) {
                Ok(0) => break true,
                // An answer (a timeout answer, say): read on to the close.
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break false
                }
                Err(_) => break true,
            }
        };
        (closed, conn)
    })
    .await
    .unwrap()
}

/// `GET /healthz` on a fresh connection, retried until it answers 200.
async fn healthz_answers(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let answer =
            tokio::task::spawn_blocking(move || common::http_get(addr, "/healthz", DEADLINE))
                .await
                .unwrap();
        if matches!(&answer, Some((200, _))) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz never answered: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_at_once() {
    const CAP: usize = 4;
    const EXTRA: usize = 16;
    let (node, server) = node_with("listener-cap", |l| {
        l.http_max_connections = CAP;
        // Long: what closes the connections past the cap is the cap.
        l.http_header_timeout = Duration::from_secs(600);
    })
    .await;
    let addr = server.local_addr();
    let mut idle = Vec::new();
    for _ in 0..CAP + EXTRA {
        idle.push(TcpStream::connect(addr).expect("connect"));
    }
    // Each watched at once, for long enough to catch a slow accept loop;
    // the ones inside the cap stay open that long.
    let watched = idle
        .into_iter()
        .map(|conn| closed_within(conn, Duration::from_secs(5)));
    let watched = futures_util::future::join_all(watched).await;
    let closed = watched.iter().filter(|(closed, _)| *closed).count();
    assert_eq!(closed, EXTRA, "the connections past the cap are closed");
    let idle: Vec<TcpStream> = watched.into_iter().map(|(_, conn)| conn).collect();
    assert!(
        node.status().await.is_ok(),
        "the node keeps serving in process"
    );
    // The idle ones go away: a fresh request is served.
    drop(idle);
    healthz_answers(addr).await;
    server.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let (node, server) = node_with("listener-header-timeout", |l| {
        l.http_max_connections = 2;
        l.http_header_timeout = Duration::from_millis(300);
    })
    .await;
    let addr = server.local_addr();
    // One sends nothing, one starts a request and never ends its headers;
    // together they fill the cap.
    let silent = TcpStream::connect(addr).unwrap();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    assert!(
        closed_within(silent, DEADLINE).await.0,
        "a connection that sends no headers is closed"
    );
    assert!(
        closed_within(slow, DEADLINE).await.0,
        "a connection that never ends its headers is closed"
    );
    // They held the whole cap; closed, a fresh request is served.
    healthz_answers(addr).await;
    server.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_past_the_cap_answer_503() {
    let (node, server) = node_with("listener-sse-cap", |l| {
        l.http_max_event_streams = 1;
    })
    .await;
    let url = format!("http://{}/events", server.local_addr());
    let http = reqwest::Client::new();
    let first = http.get(&url).send().await.expect("first stream");
    assert_eq!(first.status(), 200);
    let second = http.get(&url).send().await.expect("second stream");
    assert_eq!(second.status(), 503);
    let body: ErrorBody = second.json().await.expect("the JSON error body");
    assert_eq!(body.kind, "too_many_event_streams");
    assert!(body.error.contains("http_max_event_streams"), "{body:?}");
    // The first one closed, a stream is served again.
    drop(first);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let again = http.get(&url).send().await.expect("stream again");
        if again.status() == 200 {
            break;
        }
        assert_eq!(again.status(), 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed stream's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_leaves_the_node_its_file_descriptors() {
    /// The node's file descriptor limit; the flood is far larger.
    const MAX_OPEN_FILES: u32 = 128;
    const FLOOD: usize = 400;
    const TOKEN: &str = "Zmxvb2QtdGVzdC10b2tlbi0wMTIzNDU2Nzg5YWJjZGVm";
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let config = dir.path().join("molt.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"flood\"\nlibrary_dirs = [{:?}]\nadmin_listen = \"127.0.0.1:0\"\n\
             hot_reload = false\n\n[node.limits]\nhttp_max_connections = 16\n\
             http_header_timeout_ms = 500\n\n[modules.kv]\nlibrary = {:?}\n",
            f.kv.parent().unwrap(),
            f.kv
        ),
    )
    .unwrap();
    let molt = common::MoltProcess::start_limited(
        &["run", config.to_str().unwrap()],
        dir.path(),
        &[("MOLT_ADMIN_TOKEN", TOKEN)],
        Some(MAX_OPEN_FILES),
    );
    let (molt, line) = tokio::task::spawn_blocking(move || {
        let mut molt = molt;
        let line = molt.wait_for_line("HTTP admin on http://", DEADLINE);
        (molt, line)
    })
    .await
    .unwrap();
    let addr = common::admin_addr_of(&line);

    // The flood: connections that send nothing, all held open by the test.
    let flood = tokio::task::spawn_blocking(move || {
        (0..FLOOD)
            .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(
        flood.len() > MAX_OPEN_FILES as usize,
        "{} connected",
        flood.len()
    );

    // Past the cap they are closed at once, inside it after the header
    // timeout: a fresh request gets in, and the node can still open files.
    healthz_answers(addr).await;
    let reload = reqwest::Client::new()
        .post(format!("http://{addr}/modules/kv/reload"))
        .bearer_auth(TOKEN)
        .timeout(DEADLINE)
        .send()
        .await
        .expect("the reload answers");
    let status = reload.status();
    let body = reload.text().await.unwrap_or_default();
    assert_eq!(
        status,
        200,
        "the reload can open the library: {body}\n{}",
        molt.output()
    );
    drop(flood);
}
