//! A module of a running node is reachable from outside (issue #10 §1):
//! `POST /modules/{name}/call` and `/cast` take the message as JSON and
//! answer the reply as JSON; a message the module cannot decode is a 400
//! naming what it expected; the token is required; and `molt call` /
//! `molt cast` do the same from the command line.

use crate::common;

use std::time::Duration;

use molt::http::{AdminClient, AdminServer};
use molt::{ModuleSpec, Node};
use serde_json::json;

const TOKEN: &str = "call-test-token-0123456789abcdef0123";

async fn serve(node: &Node) -> (AdminServer, AdminClient) {
    common::serve_admin(node, TOKEN).await
}

use common::api_error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_call_and_cast_speak_json() {
    let f = common::fixtures();
    let node = common::start("call-http", ModuleSpec::new("kv", &f.kv)).await;
    let (server, client) = serve(&node).await;

    // A call that changes state, and one that reads it back.
    let put = json!({"Put": {"key": "a", "value": "1"}});
    assert_eq!(client.call("kv", &put, None).await.unwrap(), json!("Ok"));
    let get_a = json!({"Get": {"key": "a"}});
    assert_eq!(
        client.call("kv", &get_a, None).await.unwrap(),
        json!({"Value": "1"})
    );
    // The typed handle sees the same state.
    let kv = node.module::<kv_proto::Proto>("kv").unwrap();
    assert_eq!(
        kv.call(kv_proto::Msg::Get { key: "a".into() })
            .await
            .unwrap(),
        kv_proto::Reply::Value(Some("1".into()))
    );

    // Cast, then call: the cast was handled first.
    let sent = client
        .cast("kv", &json!({"Put": {"key": "b", "value": "2"}}), Some(0))
        .await
        .unwrap();
    assert_eq!((sent.module.as_str(), sent.instance), ("kv", 0));
    assert_eq!(
        client
            .call("kv", &json!({"Get": {"key": "b"}}), Some(0))
            .await
            .unwrap(),
        json!({"Value": "2"})
    );
    // A unit variant is its name; a reply with a nested struct comes back whole.
    assert_eq!(
        client.call("kv", &json!("Dump"), None).await.unwrap(),
        json!({"Dump": {"entries": {"a": "1", "b": "2"}, "streams": {}}})
    );

    // A variant the module does not know: 400 naming the ones it expects.
    let (code, body) = api_error(
        client
            .call("kv", &json!({"Putt": {"key": "a", "value": "1"}}), None)
            .await,
    );
    assert_eq!((code, body.kind.as_str()), (400, "bad_message"), "{body:?}");
    assert!(
        body.error.contains("Putt") && body.error.contains("Put") && body.error.contains("Get"),
        "names the variant and the expected ones: {}",
        body.error
    );
    // A missing field: 400 naming the field.
    let (code, body) = api_error(client.call("kv", &json!({"Put": {"key": "a"}}), None).await);
    assert_eq!((code, body.kind.as_str()), (400, "bad_message"), "{body:?}");
    assert!(
        body.error.contains("value"),
        "names the field: {}",
        body.error
    );

    // A handler error: 422 with the module's error kind.
    let (code, body) = api_error(
        client
            .call("kv", &json!({"Fail": {"reason": "no way"}}), None)
            .await,
    );
    assert_eq!((code, body.kind.as_str()), (422, "handler"), "{body:?}");
    assert_eq!(body.cause.as_deref(), Some("failed"));
    assert!(body.error.contains("no way"), "{}", body.error);

    // Unknown module: 404, for call and cast.
    let (code, body) = api_error(client.call("nope", &put, None).await);
    assert_eq!((code, body.kind.as_str()), (404, "unknown_module"));
    let (code, _) = api_error(client.cast("nope", &put, None).await);
    assert_eq!(code, 404);

    // A body that is not JSON: 400.
    let raw = client.post_raw("/modules/kv/call", "{Put").await;
    let (code, body) = api_error(raw);
    assert_eq!((code, body.kind.as_str()), (400, "bad_request"));

    // No token: 401, and nothing was sent.
    let anonymous = AdminClient::for_addr(server.local_addr(), None).unwrap();
    let change = json!({"Put": {"key": "a", "value": "stolen"}});
    let (code, _) = api_error(anonymous.call("kv", &change, None).await);
    assert_eq!(code, 401);
    let (code, _) = api_error(anonymous.cast("kv", &change, None).await);
    assert_eq!(code, 401);

    // The node kept serving through every refusal, with its state intact.
    assert_eq!(
        client.call("kv", &get_a, None).await.unwrap(),
        json!({"Value": "1"})
    );
    server.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn molt_call_and_cast_from_the_command_line() {
    let f = common::fixtures();
    let node = common::start("call-cli", ModuleSpec::new("kv", &f.kv)).await;
    let (server, _client) = serve(&node).await;
    let addr = server.local_addr().to_string();
    let runtime_dir = common::scratch_dir();
    let run = |args: &[&str]| {
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--addr".into(),
            addr.clone(),
            "--token".into(),
            TOKEN.into(),
        ]);
        let dir = runtime_dir.path().to_path_buf();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut p = common::MoltProcess::start(&args, &dir);
                let status = p
                    .wait_exit(Duration::from_secs(30))
                    .expect("molt exits within 30 s");
                (status.code(), p.output())
            })
            .await
            .unwrap()
        }
    };

    let (code, out) = run(&["call", "kv", r#"{"Put": {"key": "c", "value": "3"}}"#]).await;
    assert_eq!((code, out.trim()), (Some(0), r#""Ok""#));
    let (code, out) = run(&["cast", "kv", r#"{"Put": {"key": "d", "value": "4"}}"#]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("queued for kv instance 0"), "{out}");
    let (code, out) = run(&["call", "kv", r#"{"Get": {"key": "d"}}"#, "--instance", "0"]).await;
    assert_eq!((code, out.trim()), (Some(0), r#"{"Value":"4"}"#));
    let (code, out) = run(&["call", "kv", r#""Dump""#]).await;
    assert_eq!(code, Some(0), "{out}");
    let dump: serde_json::Value = serde_json::from_str(out.trim()).expect("one line of JSON");
    assert_eq!(dump["Dump"]["entries"], json!({"c": "3", "d": "4"}));

    // A variant the module does not know: exit 1, the error names the expected ones.
    let (code, out) = run(&["call", "kv", r#"{"Gett": {"key": "d"}}"#]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("Gett") && out.contains("expected one of") && out.contains("HTTP 400"),
        "{out}"
    );
    // Not JSON: a usage error (exit 2), nothing sent.
    let (code, out) = run(&["call", "kv", "{Get"]).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("not JSON"), "{out}");

    server.shutdown().await;
    node.shutdown().await;
}

/// A keyed module's actors are reached from outside by key: `?key=` over
/// HTTP, `--key` on the command line; the key's actor is activated and keeps
/// its state between requests; a keyed module without a key, or both a key
/// and an instance, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_actor_is_reached_by_key() {
    use molt::http::Route;
    let node = common::cart::cart_node("call-keyed", Duration::from_secs(600), 100).await;
    let (server, client) = serve(&node).await;

    let sent = client
        .cast(
            "cart",
            &json!({"Add": {"item": "tea", "qty": 2}}),
            Route::Key("u-1".into()),
        )
        .await
        .unwrap();
    assert_eq!(sent.key.as_deref(), Some("u-1"));
    let items = client
        .call("cart", &json!("Items"), Route::Key("u-1".into()))
        .await
        .unwrap();
    assert_eq!(items, json!({"Items": [["tea", 2]]}));
    let other = client
        .call("cart", &json!("Items"), Route::Key("u-2".into()))
        .await
        .unwrap();
    assert_eq!(other, json!({"Items": []}), "another key, another actor");

    let (code, body) = api_error(client.call("cart", &json!("Items"), None).await);
    assert_eq!(code, 400, "{body:?}");
    let url = format!(
        "http://{}/modules/cart/call?key=u-1&instance=0",
        server.local_addr()
    );
    let both = reqwest::Client::new()
        .post(url)
        .bearer_auth(TOKEN)
        .body(r#""Items""#)
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);

    // The command line.
    let addr = server.local_addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        common::molt_cli(&[
            "call",
            "cart",
            r#""Items""#,
            "--key",
            "u-1",
            "--addr",
            &addr,
            "--token",
            TOKEN,
        ])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"Items":[["tea",2]]}"#
    );
    // Without a key, the CLI's error says how to give one there.
    let addr = server.local_addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        common::molt_cli(&[
            "call",
            "cart",
            r#""Items""#,
            "--addr",
            &addr,
            "--token",
            TOKEN,
        ])
    })
    .await
    .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is keyed") && err.contains("--key"), "{err}");
    server.shutdown().await;
    node.shutdown().await;
}
