//! The Prometheus text carries molt's metric names with the right values
//! after a successful and a failed reload; rehearsals (dry runs) count as
//! no reload, in no phase and no pause.

mod common;

use kv_proto::{Msg, Proto};
use molt::{ModuleSpec, ReloadOptions};

/// The value of the sample `name{labels}` (labels given as they render,
/// in any order), or None.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            (series == name || series.starts_with(&format!("{name}{{")))
                && labels.iter().all(|lab| series.contains(lab))
        })
        .and_then(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_committed_and_a_rejected_reload() {
    let f = common::fixtures();
    // Module names are labels: use one no other test in this binary uses.
    let node = common::start("metrics", ModuleSpec::new("kv", &f.kv)).await;
    let kv = node.module::<Proto>("kv").unwrap();
    for i in 0..10u64 {
        kv.call(Msg::Push {
            stream: "s".into(),
            seq: i,
        })
        .await
        .unwrap();
    }
    kv.call(Msg::Fail {
        reason: "on purpose".into(),
    })
    .await
    .unwrap_err();
    node.reload("kv", ReloadOptions::library(&f.kv_v2))
        .await
        .unwrap();
    node.reload("kv", ReloadOptions::library(&f.counter))
        .await
        .unwrap_err();
    // Rehearsals, one that would commit and one that would fail in
    // prepare: none of them shows in the reload metrics below.
    let rehearsed = node
        .rehearse("kv", ReloadOptions::library(&f.kv_v2_1))
        .await
        .unwrap();
    assert!(rehearsed.would_commit, "{rehearsed:#?}");
    node.rehearse("kv", ReloadOptions::library(&f.counter))
        .await
        .unwrap_err();

    let status = node.status().await.unwrap();
    let figures = node.figures("kv").await.unwrap();
    let text = molt::metrics::render_with_figures(&status, &[figures])
        .expect("molt's recorder is installed");
    let m = r#"module="kv""#;
    assert_eq!(
        sample(&text, "molt_reloads_total", &[m, r#"result="committed""#]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "molt_reloads_total", &[m, r#"result="rejected""#]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "molt_messages_total", &[m]), Some(11.0));
    assert_eq!(sample(&text, "molt_handler_errors_total", &[m]), Some(1.0));
    assert_eq!(
        sample(&text, "molt_mailbox_depth", &[m, r#"instance="0""#]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "molt_module_info",
            &[m, r#"code_version="2.0.0""#, r#"state_version="2""#]
        ),
        Some(1.0)
    );
    assert!(sample(&text, "molt_libraries_mapped", &[]).unwrap() >= 2.0);
    assert_eq!(
        sample(&text, "molt_swap_pause_seconds_count", &[m]),
        Some(1.0),
        "one instance paused once"
    );
    for phase in ["prepare", "snapshot", "migrate", "swap", "verify", "commit"] {
        assert_eq!(
            sample(
                &text,
                "molt_reload_phase_seconds_count",
                &[m, &format!(r#"phase="{phase}""#)]
            ),
            Some(1.0),
            "phase {phase}: {text}"
        );
    }
    assert!(
        text.contains("# TYPE molt_swap_pause_seconds histogram"),
        "{text}"
    );
    // Handling time, sampled: the instance timed its first message (the
    // next one timed would be its 17th); all its buckets are cumulative.
    assert!(
        text.contains("# TYPE molt_handle_seconds histogram"),
        "{text}"
    );
    assert_eq!(sample(&text, "molt_handle_seconds_count", &[m]), Some(1.0));
    assert_eq!(
        sample(&text, "molt_handle_seconds_bucket", &[m, r#"le="+Inf""#]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "molt_handle_seconds_bucket",
            &[m, r#"le="17.179869184""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "molt_handle_seconds_sum", &[m]).unwrap() > 0.0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_module_has_four_series_and_none_per_key() {
    use common::cart::{add, await_status, cart_node};
    let node = cart_node("metrics-keyed", std::time::Duration::from_millis(50), 100).await;
    let carts = node.module::<cart_proto::Proto>("cart").unwrap();
    for k in ["user-1", "user-2", "user-3"] {
        add(&carts.key(k), "tea", 1).await;
    }
    await_status(&node, "three passivated", |s| {
        s.passivated == 3 && s.live == 0
    })
    .await;
    let status = node.status().await.unwrap();
    // The figures count the passivated actors' messages (one each, timed:
    // an actor times its first message) under the module, none per key.
    let figures = node.figures("cart").await.unwrap();
    assert_eq!(figures.current.figures.handled, 3, "{figures:#?}");
    assert_eq!(figures.current.latency.count, 3);
    let text = molt::metrics::render_with_figures(&status, &[figures])
        .expect("molt's recorder is installed");
    let m = r#"module="cart""#;
    assert_eq!(sample(&text, "molt_handle_seconds_count", &[m]), Some(3.0));
    assert_eq!(sample(&text, "molt_keyed_live", &[m]), Some(0.0), "{text}");
    assert_eq!(sample(&text, "molt_keyed_passivated", &[m]), Some(3.0));
    assert_eq!(
        sample(&text, "molt_keyed_activations_total", &[m]),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "molt_keyed_passivations_total", &[m]),
        Some(3.0)
    );
    assert!(!text.contains("user-"), "no series names a key: {text}");
    node.shutdown().await;
}
