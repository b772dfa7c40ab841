//! The dry run from outside the process: `POST
//! /modules/{name}/reload?dry_run=true` (token required) answers the
//! rehearsal report, and `molt reload NAME --dry-run` prints it; neither
//! changes what serves.

use crate::common;

use common::{molt_cli as molt, output_text as text};
use molt::ModuleSpec;

const TOKEN: &str = "dry-run-test-token-0123456789abcdef";

async fn serving(node: &molt::Node) -> String {
    node.status()
        .await
        .unwrap()
        .module("kv")
        .unwrap()
        .code_version
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_dry_run_answers_the_rehearsal() {
    let f = common::fixtures();
    let node = common::start("dry-run-http", ModuleSpec::new("kv", &f.kv).instances(2)).await;
    let kv = node.module::<kv_proto::Proto>("kv").unwrap();
    common::kv::put(&kv, "a", "1").await;
    let (server, client) = common::serve_admin(&node, TOKEN).await;

    let report = client
        .rehearse("kv", Some(f.kv_v2.clone()))
        .await
        .expect("rehearsed");
    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        ("1.0.0", "2.0.0")
    );
    assert_eq!((report.from_state_version, report.to_state_version), (1, 2));
    assert!(report.would_commit, "{report:#?}");
    assert_eq!(report.instances.len(), 2);
    assert!(report
        .instances
        .iter()
        .all(|i| i.ok && i.state_bytes_before > 0));
    assert_eq!(serving(&node).await, "1.0.0");
    assert!(node.admin().history().await.unwrap().is_empty());

    // A library that would fail in prepare: 422, kind `load`.
    let (status, body) = common::api_error(client.rehearse("kv", Some(f.counter.clone())).await);
    assert_eq!(status, 422, "{body:?}");
    assert_eq!(body.kind, "load");

    // The raw endpoint: the token is required; dry_run and force conflict;
    // the query is checked.
    let url = |q: &str| format!("http://{}/modules/kv/reload{q}", server.local_addr());
    let http = reqwest::Client::new();
    let anonymous = http.post(url("?dry_run=true")).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let forced = http
        .post(url("?dry_run=true"))
        .bearer_auth(TOKEN)
        .body(r#"{"force": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status().as_u16(), 400);
    let bad_query = http
        .post(url("?dry_run=perhaps"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_query.status().as_u16(), 400);
    let json: serde_json::Value = http
        .post(url("?dry_run=true"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["to"], "1.0.0", "the configured library: {json}");
    assert_eq!(json["would_commit"], true, "{json}");
    assert!(json["instances"][0]["expected_pause_us"].is_u64(), "{json}");

    assert_eq!(serving(&node).await, "1.0.0");
    assert_eq!(common::kv::dump(&kv).await.entries.len(), 1);
    server.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_dry_run_prints_the_rehearsal() {
    let f = common::fixtures();
    let node = common::start("dry-run-cli", ModuleSpec::new("kv", &f.kv)).await;
    let (server, _client) = common::serve_admin(&node, TOKEN).await;
    let addr = server.local_addr().to_string();
    let run = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            molt(&args)
        })
        .await
        .unwrap()
    };
    let with = |lib: &std::path::Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["reload", "kv", "--dry-run", "--library"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(lib.display().to_string());
        v.extend(["--addr", &addr, "--token", TOKEN].map(String::from));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    let ok = run(with(&f.kv_v2, &[])).await;
    let out = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(
        out.contains("dry run of kv: 1.0.0 -> 2.0.0 (state v1 -> v2)"),
        "{out}"
    );
    assert!(out.contains("would commit") && out.contains("#0"), "{out}");
    assert!(out.contains("nothing was changed"), "{out}");

    let bad = run(with(&f.counter, &[])).await;
    let out = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(
        out.contains("would fail") && out.contains("not \"kv\""),
        "{out}"
    );

    // No node there: no rehearsal ran, and the answer does not say it
    // "would fail".
    let none = tokio::task::spawn_blocking(|| {
        common::molt_cli(&["reload", "kv", "--dry-run", "--addr", "127.0.0.1:1"])
    })
    .await
    .unwrap();
    let out = text(&none);
    assert_eq!(none.status.code(), Some(1), "{out}");
    assert!(
        out.contains("no dry run of kv") && !out.contains("would fail"),
        "{out}"
    );

    let conflict = run(with(&f.kv_v2, &["--force"])).await;
    assert_eq!(conflict.status.code(), Some(2), "{}", text(&conflict));

    assert_eq!(serving(&node).await, "1.0.0");
    assert!(node.admin().history().await.unwrap().is_empty());
    server.shutdown().await;
    node.shutdown().await;
}
