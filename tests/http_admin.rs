//! The HTTP admin surface against a real socket on 127.0.0.1 (port 0) with a
//! real HTTP client (`molt::http::AdminClient`, and reqwest directly for
//! what the client never sends: malformed JSON, a foreign Host).
//!
//! The metrics over HTTP are tested in `metrics_over_http.rs`, a binary of
//! its own: metric labels are module names, shared by the whole process.

use crate::common;

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use molt::http::{AdminClient, AdminServer, TOKEN_ENV};
use molt::{Action, Error, ModuleSpec, Node, Outcome};

const TOKEN: &str = "test-token-7f3a9c-0123456789abcdef";

async fn serve(node: &Node) -> (AdminServer, AdminClient) {
    common::serve_admin(node, TOKEN).await
}

use common::api_error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reload_and_rollback() {
    let f = common::fixtures();
    let node = common::start("http-status", ModuleSpec::new("counter", &f.counter)).await;
    let (server, client) = serve(&node).await;
    let counter = node.module::<counter_proto::Proto>("counter").unwrap();
    counter.call(counter_proto::Msg::Add(7)).await.unwrap();

    let health = client.healthz().await.unwrap();
    assert_eq!(health["status"], "ok");
    let status = client.status().await.unwrap();
    assert_eq!(status.node, "http-status");
    assert!(status.libraries_mapped >= 1);
    let m = status.module("counter").expect("counter in the status");
    assert_eq!((m.code_version.as_str(), m.state_version), ("1.0.0", 1));
    assert_eq!(m.instances.len(), 1);
    assert_eq!(m.instances[0].mailbox_depth, 0);
    assert_eq!(m.instances[0].handled, 1);
    assert_eq!(m.previous, None);
    assert_eq!(client.module("counter").await.unwrap(), *m);

    let report = client
        .reload("counter", Some(f.counter_v2.clone()))
        .await
        .expect("the reload over HTTP commits");
    assert_eq!(
        (
            report.from.as_str(),
            report.to.as_str(),
            report.state_version
        ),
        ("1.0.0", "2.0.0", 2)
    );
    assert_eq!(
        counter.call(counter_proto::Msg::Get).await.unwrap(),
        counter_proto::Reply::Total(7),
        "the state came along"
    );
    let m = client.module("counter").await.unwrap();
    assert_eq!(m.code_version, "2.0.0");
    assert_eq!(m.previous.as_deref(), Some("1.0.0"));

    // counter v2 cannot down-migrate: refused (409) unless the state is reset.
    let (code, body) = api_error(client.rollback("counter", false).await);
    assert_eq!((code, body.kind.as_str()), (409, "rollback_refused"));
    let report = client
        .rollback("counter", true)
        .await
        .expect("the rollback with reset_state commits");
    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        ("2.0.0", "1.0.0")
    );
    assert_eq!(
        counter.call(counter_proto::Msg::Get).await.unwrap(),
        counter_proto::Reply::Total(0)
    );

    let history = client.history().await.unwrap();
    assert!(
        history.iter().all(|h| h.trigger == molt::Trigger::Http),
        "every attempt came over HTTP: {history:?}"
    );
    let outcomes: Vec<(Action, Outcome)> = history.iter().map(|h| (h.action, h.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            (Action::Reload, Outcome::Committed),
            (Action::Rollback, Outcome::Refused),
            (Action::Rollback, Outcome::Committed),
        ]
    );
    // The same history as in process (times to the millisecond, as sent).
    let in_process = node.history().await.unwrap();
    let key = |h: &molt::HistoryEntry| {
        let ms =
            h.at.duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
        (h.id, ms, h.outcome, h.phase, h.error.clone())
    };
    assert_eq!(
        history.iter().map(key).collect::<Vec<_>>(),
        in_process.iter().map(key).collect::<Vec<_>>()
    );

    server.shutdown().await;
    assert!(client.status().await.is_err(), "the server stopped");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_token() {
    let f = common::fixtures();
    let node = common::start("http-token", ModuleSpec::new("counter", &f.counter)).await;
    let (server, client) = serve(&node).await;
    let addr = server.local_addr();

    for token in [None, Some("wrong-token".to_string())] {
        let c = AdminClient::for_addr(addr, token.clone()).unwrap();
        // Reads are open on loopback.
        assert!(c.status().await.is_ok());
        let (code, body) = api_error(c.reload("counter", None).await);
        assert_eq!(
            (code, body.kind.as_str()),
            (401, "unauthorized"),
            "{token:?}"
        );
        let (code, _) = api_error(c.rollback("counter", true).await);
        assert_eq!(code, 401);
        let (code, _) = api_error(c.config_check("").await);
        assert_eq!(code, 401);
        // The token is checked before the module name.
        let (code, _) = api_error(c.reload("no-such-module", None).await);
        assert_eq!(code, 401);
    }
    let raw = reqwest::Client::new()
        .post(format!("http://{addr}/modules/counter/reload"))
        .header("Authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    assert_eq!(raw.headers()["www-authenticate"], "Bearer");
    // Nothing was reloaded; the right token works.
    assert!(node.history().await.unwrap().is_empty());
    client.reload("counter", None).await.unwrap();

    // A foreign Host (DNS rebinding) is refused on a loopback server.
    let raw = reqwest::Client::new()
        .get(format!("http://{addr}/status"))
        .header("Host", "attacker.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 403);
    let body: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(body["kind"], "forbidden_host");
    server.shutdown().await;

    // Without a token a server takes no changes, and only on loopback.
    let open = molt::http::serve(&node, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let c = AdminClient::for_addr(open.local_addr(), Some(TOKEN.into())).unwrap();
    assert!(c.status().await.is_ok());
    let (code, body) = api_error(c.reload("counter", None).await);
    assert_eq!((code, body.kind.as_str()), (403, "no_admin_token"));
    open.shutdown().await;
    match molt::http::serve(&node, "0.0.0.0:0".parse().unwrap(), None).await {
        Err(Error::Config(msg)) => assert!(msg.contains("not loopback"), "{msg}"),
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("a non-loopback admin server without a token started"),
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_with_a_json_body() {
    let f = common::fixtures();
    let node = common::start("http-bad-input", ModuleSpec::new("counter", &f.counter)).await;
    let (server, client) = serve(&node).await;
    let addr = server.local_addr();

    // Unknown module.
    let (code, body) = api_error(client.module("nope").await);
    assert_eq!((code, body.kind.as_str()), (404, "unknown_module"));
    assert!(body.error.contains("nope"), "{}", body.error);
    let (code, body) = api_error(client.reload("nope", None).await);
    assert_eq!((code, body.kind.as_str()), (404, "unknown_module"));
    let (code, _) = api_error(client.rollback("nope", false).await);
    assert_eq!(code, 404);

    // A real module library, but outside the configured directories.
    let outside = common::scratch_dir();
    let copy = outside.path().join(f.counter.file_name().unwrap());
    std::fs::copy(&f.counter, &copy).unwrap();
    let (code, body) = api_error(client.reload("counter", Some(copy)).await);
    assert_eq!((code, body.kind.as_str()), (422, "load"));
    assert_eq!(body.phase, Some(molt::Phase::Prepare));
    assert_eq!(body.cause.as_deref(), Some("outside_library_dirs"));
    // Not a molt module: rejected in prepare too.
    let (code, body) = api_error(client.reload("counter", Some(f.not_a_module.clone())).await);
    assert_eq!((code, body.kind.as_str()), (422, "load"));
    assert_eq!(body.cause.as_deref(), Some("not_a_molt_module"));

    // Malformed JSON, unknown fields, relative paths: 400.
    for bad in [
        &br#"{"library": "#[..],
        b"not json",
        br#"{"libary": "/x.so"}"#,
        br#"{"library": "relative/libcounter.so"}"#,
    ] {
        let (code, body) = api_error(
            client
                .post_raw("/modules/counter/reload", bad.to_vec())
                .await,
        );
        assert_eq!(
            (code, body.kind.as_str()),
            (400, "bad_request"),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let (code, _) = api_error(
        client
            .post_raw("/modules/counter/rollback", "{reset_state}")
            .await,
    );
    assert_eq!(code, 400);

    // No such endpoint, wrong method: JSON too.
    let raw = reqwest::Client::new();
    for (method, path, want) in [
        (reqwest::Method::GET, "/nope", 404),
        (reqwest::Method::DELETE, "/status", 405),
        (reqwest::Method::GET, "/modules/counter/reload", 405),
    ] {
        let r = raw
            .request(method.clone(), format!("http://{addr}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{method} {path}");
        let body: molt::http::ErrorBody = r.json().await.expect("a JSON error body");
        assert!(!body.error.is_empty());
    }

    // Config check: a parse error names "<request>" and the line.
    let (code, body) = api_error(client.config_check("[node]\nname = 3\n").await);
    assert_eq!((code, body.kind.as_str()), (422, "config_file"));
    assert!(body.error.starts_with("<request>:2:"), "{}", body.error);
    let (code, body) = api_error(client.config_check("[node\n").await);
    assert_eq!((code, body.kind.as_str()), (422, "config_file"));

    // Nothing of it touched the node: still 1.0.0, serving.
    assert_eq!(
        client.module("counter").await.unwrap().code_version,
        "1.0.0"
    );
    let counter = node.module::<counter_proto::Proto>("counter").unwrap();
    assert_eq!(
        counter.call(counter_proto::Msg::Add(1)).await.unwrap(),
        counter_proto::Reply::Total(1)
    );
    server.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_is_a_dry_run() {
    let f = common::fixtures();
    // Default limits, as a config file without them gives (they are a
    // node-level key).
    let mut config = common::config("http-config-check", &[]);
    config.limits = molt::Limits::default();
    let node = Node::start(config.module(ModuleSpec::new("counter", &f.counter)))
        .await
        .unwrap();
    let (server, client) = serve(&node).await;
    let running = node.admin().running_config().await.unwrap();
    let dirs: Vec<String> = running
        .library_dirs
        .iter()
        .map(|d| format!("{:?}", d.display().to_string()))
        .collect();
    let text = format!(
        "[node]\nname = \"http-config-check\"\nlibrary_dirs = [{}]\n\n\
         [modules.counter]\nlibrary = {:?}\ninstances = 3\n\n\
         [modules.kv]\nlibrary = {:?}\n",
        dirs.join(", "),
        f.counter.display().to_string(),
        f.kv.display().to_string(),
    );
    let check = client.config_check(&text).await.unwrap();
    assert!(check.applicable, "{check:?}");
    assert!(check.restart_keys.is_empty(), "{check:?}");
    assert_eq!(check.changes.len(), 2, "{check:?}");
    assert!(
        check.summary.iter().any(|l| l.contains("instances 1 -> 3")),
        "{check:?}"
    );
    assert!(
        check.summary.iter().any(|l| l.starts_with("kv: added")),
        "{check:?}"
    );

    // A node-level key: not applicable, the key named.
    let renamed = text.replace("name = \"http-config-check\"", "name = \"other\"");
    let check = client.config_check(&renamed).await.unwrap();
    assert!(!check.applicable);
    assert_eq!(check.restart_keys, ["node.name"]);

    // Dry run: nothing changed.
    let status = client.status().await.unwrap();
    assert_eq!(status.modules.len(), 1);
    assert_eq!(status.modules[0].instances.len(), 1);
    server.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_delivers_a_reload_made_over_http() {
    let f = common::fixtures();
    let node = common::start("http-events", ModuleSpec::new("counter", &f.counter)).await;
    let (server, client) = serve(&node).await;
    // Subscribed once `events()` returns.
    let mut events = client.events().await.unwrap();
    let report = client
        .reload("counter", Some(f.counter_v2.clone()))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(e) = events.next().await {
            let e = e.expect("the stream holds");
            if e.kind == "module.reloaded" {
                return e;
            }
        }
        panic!("the event stream ended before module.reloaded");
    })
    .await
    .expect("module.reloaded within 30 s");
    assert_eq!(event.data["kind"], "module.reloaded");
    assert_eq!(event.data["name"], "counter");
    assert_eq!(event.data["from"], "1.0.0");
    assert_eq!(event.data["to"], "2.0.0");
    assert_eq!(
        event.data["pause_us"].as_u64(),
        Some(report.max_pause().as_micros() as u64)
    );

    // A failed reload arrives as module.reload_failed with its phase.
    client
        .reload("counter", Some(f.not_a_module.clone()))
        .await
        .unwrap_err();
    let failed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = events.next().await.expect("open").expect("holds");
            if e.kind == "module.reload_failed" {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(failed.data["phase"], "prepare");

    // The stream ends when the server shuts down.
    server.shutdown().await;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = events.next().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream ended with the server");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_tokens_from_a_file_or_generated_for_the_run() {
    if std::env::var_os(TOKEN_ENV).is_some() {
        eprintln!("{TOKEN_ENV} is set: it overrides the token sources this test checks");
        return;
    }
    let f = common::fixtures();
    let node = common::start("http-configured", ModuleSpec::new("counter", &f.counter)).await;
    let mut config = node.admin().running_config().await.unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();

    // A token file named in the config.
    let dir = common::scratch_dir();
    let file = dir.path().join("admin.token");
    std::fs::write(&file, "from-the-file-0123456789abcdef0123\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    config.admin_token_file = Some(file.clone());
    let server = molt::http::serve_configured(&node, &config).await.unwrap();
    assert_eq!(server.token_file(), None, "nothing generated");
    let mut client_config = config.clone();
    client_config.admin_listen = server.local_addr();
    let client = AdminClient::for_config(&client_config).unwrap();
    client
        .reload("counter", None)
        .await
        .expect("the file's token works");
    server.shutdown().await;
    assert!(file.exists(), "a configured token file is left alone");

    // None configured: a loopback server makes one for its run, private to
    // the user, where the local client finds it.
    config.admin_token_file = None;
    let Some(_) = molt::http::local_token_path(config.admin_listen) else {
        eprintln!("neither XDG_RUNTIME_DIR nor HOME is set: no generated token");
        node.shutdown().await;
        return;
    };
    let server = molt::http::serve_configured(&node, &config).await.unwrap();
    let generated = server
        .token_file()
        .expect("a generated token file")
        .to_path_buf();
    assert_eq!(
        Some(generated.clone()),
        molt::http::local_token_path(server.local_addr())
    );
    assert_private(&generated);
    client_config.admin_token_file = None;
    client_config.admin_listen = server.local_addr();
    let client = AdminClient::for_config(&client_config).unwrap();
    client
        .reload("counter", None)
        .await
        .expect("the generated token works");
    let anonymous = AdminClient::for_addr(server.local_addr(), None).unwrap();
    assert_eq!(
        anonymous
            .reload("counter", None)
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    server.shutdown().await;
    assert!(
        !generated.exists(),
        "the generated token is removed at shutdown"
    );
    node.shutdown().await;
}

fn assert_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is readable by others", path.display());
    }
    let _ = path;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_answers_503_and_ends_the_event_stream() {
    let f = common::fixtures();
    let node = common::start("http-node-down", ModuleSpec::new("counter", &f.counter)).await;
    let (server, client) = serve(&node).await;
    let mut events = client.events().await.unwrap();
    node.shutdown().await;

    let (code, body) = api_error(client.healthz().await);
    assert_eq!((code, body.kind.as_str()), (503, "node_down"));
    let (code, _) = api_error(client.status().await);
    assert_eq!(code, 503);
    let (code, _) = api_error(client.reload("counter", None).await);
    assert_eq!(code, 503);
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = events.next().await {}
    })
    .await;
    assert!(end.is_ok(), "the event stream ended with the node");
    server.shutdown().await;
}
