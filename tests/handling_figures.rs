//! Handling figures per version (docs/semantics.md "Handling figures"):
//! after traffic a module's figures show what its handlers did (messages
//! handled, errors, panics, a sampled p99 at least the handlers' delay);
//! a reload keeps the replaced version's figures as they stood and starts
//! the new version's from zero, a rollback likewise; the admin message and
//! `GET /modules/{name}/figures` agree.

use std::time::Duration;

use crate::common;
use common::fault_proto::{Msg, Reply};
use common::FaultProto;
use molt::{ModuleFigures, ModuleSpec, ReloadOptions};
use serde_json::json;

/// The reading without its timestamp and its rates (floats, which a JSON
/// round trip may change in the last bit), for comparing two readings.
fn undated(f: &ModuleFigures) -> serde_json::Value {
    let mut v = serde_json::to_value(f).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("at_unix_ms");
    for period in ["current", "previous"] {
        if let Some(p) = o.get_mut(period).and_then(|p| p.as_object_mut()) {
            p.remove("error_rate");
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_follow_traffic_and_survive_a_reload_per_version() {
    let f = common::fixtures();
    let node = common::start(
        "handling-figures",
        ModuleSpec::new("fault", &f.fault).config(json!({ "tag": "a" })),
    )
    .await;
    let h = node.module::<FaultProto>("fault").unwrap();
    let before = node.figures("fault").await.unwrap();
    assert_eq!(before.current.code_version, "1.0.0");
    assert_eq!(before.current.figures.handled, 0);
    assert!(before.previous.is_none());

    // 32 handlers that sleep 10 ms (the instance times its first message
    // and every 16th after: two of them), 3 that fail, 2 that panic (fewer
    // than the 5 in a row that restart an instance).
    let delay = Duration::from_millis(10);
    for _ in 0..32 {
        assert_eq!(
            h.call(Msg::Sleep(delay.as_millis() as u64)).await.unwrap(),
            Reply::Log(vec![])
        );
    }
    for _ in 0..3 {
        h.call(Msg::Fail).await.unwrap_err();
    }
    for _ in 0..2 {
        h.call(Msg::Panic).await.unwrap_err();
    }

    let v1 = node.figures("fault").await.unwrap();
    let c = &v1.current;
    assert_eq!(c.code_version, "1.0.0");
    assert_eq!(
        (
            c.figures.handled,
            c.figures.errors,
            c.figures.panics,
            c.figures.restarts
        ),
        (37, 3, 2, 0),
        "{v1:#?}"
    );
    assert!(
        c.latency.count >= 2,
        "the 1st and 17th sleeps are timed: {v1:#?}"
    );
    assert!(
        c.latency.p99_ns >= delay.as_nanos() as u64,
        "p99 {} ns below the handlers' {delay:?}",
        c.latency.p99_ns
    );
    assert!(c.latency.max_ns >= c.latency.p99_ns);
    assert!((c.error_rate - 5.0 / 37.0).abs() < 1e-9, "{}", c.error_rate);
    assert_eq!(v1.total, c.figures, "one version so far");

    // The HTTP surface answers the same reading.
    let (server, client) = common::serve_admin(&node, "figures-0123456789abcdef0123456789").await;
    let over_http = client.figures("fault").await.unwrap();
    assert_eq!(undated(&over_http), undated(&v1));
    let unknown = client.figures("nope").await.unwrap_err();
    assert!(unknown.to_string().contains("nope"), "{unknown}");

    // A reload: 1.0.0's figures are kept as they stood, 2.0.0's start at 0.
    node.reload(
        "fault",
        ReloadOptions::library(&f.fault_v2).with_config(json!({ "tag": "b" })),
    )
    .await
    .unwrap();
    let v2 = node.figures("fault").await.unwrap();
    let previous = v2
        .previous
        .as_ref()
        .expect("the replaced version's figures");
    assert_eq!(previous.code_version, "1.0.0");
    assert_eq!(previous.figures, v1.current.figures);
    assert_eq!(previous.since_unix_ms, v1.current.since_unix_ms);
    assert!(previous.until_unix_ms.unwrap() >= v1.at_unix_ms);
    assert_eq!(v2.current.code_version, "2.0.0");
    assert_eq!(v2.current.since_unix_ms, previous.until_unix_ms.unwrap());
    assert_eq!(v2.current.figures, molt::Figures::default(), "{v2:#?}");
    assert_eq!(v2.current.error_rate, 0.0);

    for _ in 0..4 {
        assert_eq!(h.call(Msg::Tag).await.unwrap(), Reply::Tag("b".into()));
    }
    h.call(Msg::Fail).await.unwrap_err();
    let v2_later = node.figures("fault").await.unwrap();
    assert_eq!(
        (
            v2_later.current.figures.handled,
            v2_later.current.figures.errors
        ),
        (5, 1)
    );
    assert_eq!(v2_later.previous, v2.previous, "the old version's stay put");
    assert_eq!(v2_later.total.handled, 37 + 5);
    // A gate's own window: two readings of the same period.
    let window = v2_later.window_since(&v2).expect("same period");
    assert_eq!((window.handled, window.errors), (5, 1));
    assert!(v2_later.window_since(&v1).is_none(), "another period");
    assert_eq!(
        undated(&client.figures("fault").await.unwrap()),
        undated(&v2_later)
    );

    // `molt status NAME`: both versions' error rate and p99, short.
    let addr = server.local_addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        common::molt_cli(&["status", "fault", "--addr", &addr])
    })
    .await
    .unwrap();
    let text = common::output_text(&out);
    assert!(out.status.success(), "{text}");
    let line = |what: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} line in {text}"))
            .to_string()
    };
    let serving = line("serving");
    assert!(serving.contains("2.0.0"), "{text}");
    assert!(
        serving.contains("errors 20.00 % (1 err, 0 panics of 5)"),
        "{text}"
    );
    assert!(serving.contains("p99 "), "{text}");
    let before = line("before");
    assert!(before.contains("1.0.0"), "{text}");
    assert!(
        before.contains("errors 13.51 % (3 err, 2 panics of 37)"),
        "{text}"
    );
    let p99: Vec<&str> = before
        .split("p99 ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .take(2)
        .collect();
    assert_eq!(p99[1], "ms", "{text}");
    assert!(p99[0].parse::<f64>().unwrap() >= 10.0, "{text}");

    // A rollback starts a period too: 2.0.0's figures become the previous.
    node.rollback("fault", false).await.unwrap();
    let back = node.figures("fault").await.unwrap();
    assert_eq!(back.current.code_version, "1.0.0");
    assert_eq!(back.current.figures.handled, 0);
    let previous = back.previous.as_ref().unwrap();
    assert_eq!(previous.code_version, "2.0.0");
    assert_eq!(previous.figures, v2_later.current.figures);

    drop(server);
    node.shutdown().await;
}

/// A scale-down keeps what the removed instance counted in its module's
/// figures (the serving version's period and the module's total).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_instance_keeps_its_counts_in_the_figures() {
    let f = common::fixtures();
    let node = common::start(
        "handling-figures-scale",
        ModuleSpec::new("fault", &f.fault)
            .config(json!({ "tag": "a" }))
            .instances(2),
    )
    .await;
    let h = node.module::<FaultProto>("fault").unwrap();
    let (first, second) = (h.on_instance(0), h.on_instance(1));
    for _ in 0..3 {
        assert_eq!(first.call(Msg::Tag).await.unwrap(), Reply::Tag("a".into()));
    }
    for _ in 0..4 {
        assert_eq!(second.call(Msg::Tag).await.unwrap(), Reply::Tag("a".into()));
    }
    second.call(Msg::Panic).await.unwrap_err();
    let before = node.figures("fault").await.unwrap();
    assert_eq!(
        (
            before.current.figures.handled,
            before.current.figures.panics
        ),
        (8, 1)
    );
    assert_eq!(before.current.latency.count, 2, "each instance's first");

    node.admin().scale("fault", 1).await.unwrap();
    let after = node.figures("fault").await.unwrap();
    assert_eq!(after.current.figures, before.current.figures, "{after:#?}");
    assert_eq!(after.total, before.total);
    // Instance 0 goes on counting on top.
    first.call(Msg::Fail).await.unwrap_err();
    let later = node.figures("fault").await.unwrap();
    assert_eq!(
        (
            later.current.figures.handled,
            later.current.figures.errors,
            later.current.figures.panics
        ),
        (9, 1, 1)
    );
    node.shutdown().await;
}
