//! `/metrics` over HTTP: the Prometheus text, parsed strictly, carries
//! molt's metric names with the right values after a committed and a
//! rejected reload.
//!
//! A test binary of its own: the `metrics` recorder is process-wide and its
//! labels are module names, so another test's `kv` would count here.

mod common;

use molt::http::{AdminClient, AdminServer};
use molt::{ModuleSpec, Node};

const TOKEN: &str = "test-token-7f3a9c-0123456789abcdef";

async fn serve(node: &Node) -> (AdminServer, AdminClient) {
    common::serve_admin(node, TOKEN).await
}

use common::api_error;

/// One sample of the Prometheus text exposition format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses the text format strictly: `# HELP`/`# TYPE` comments, and
/// `name{label="value",...} value [timestamp]` samples.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars().enumerate().all(|(i, c)| {
                c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            match words.first() {
                Some(&"TYPE") => {
                    assert!(
                        words.len() == 3 && is_name(words[1]),
                        "bad TYPE line: {line}"
                    );
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&words[2]),
                        "bad type: {line}"
                    );
                }
                Some(&"HELP") => assert!(words.len() >= 2 && is_name(words[1]), "bad HELP: {line}"),
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name = &line[..name_end];
        assert!(is_name(name), "bad metric name in {line}");
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(mut l) = rest.strip_prefix('{') {
            loop {
                l = l.trim_start_matches(',');
                if let Some(after) = l.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (key, after) = l
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("bad label in {line}"));
                assert!(
                    is_name(key) && !key.contains(':'),
                    "bad label name in {line}"
                );
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => panic!("bad escape in {line}"),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value in {line}"),
                    }
                };
                labels.push((key.to_string(), value));
                l = &after[end + 1..];
            }
        }
        let mut fields = rest.split_whitespace();
        let value = match fields.next().unwrap_or_else(|| panic!("no value: {line}")) {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp in {line}"));
        }
        assert!(fields.next().is_none(), "trailing fields in {line}");
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_committed_and_a_failed_reload_over_http() {
    let f = common::fixtures();
    // The only test of this binary using `kv` (a metric label).
    let node = common::start("http-metrics", ModuleSpec::new("kv", &f.kv)).await;
    let (server, client) = serve(&node).await;
    let kv = node.module::<kv_proto::Proto>("kv").unwrap();
    for i in 0..10u64 {
        kv.call(kv_proto::Msg::Push {
            stream: "s".into(),
            seq: i,
        })
        .await
        .unwrap();
    }
    kv.call(kv_proto::Msg::Fail {
        reason: "on purpose".into(),
    })
    .await
    .unwrap_err();
    // A scrape before the reloads (it records the version serving).
    let before = parse_prometheus(&client.metrics().await.unwrap());
    assert_eq!(
        value(
            &before,
            "molt_module_info",
            &[("module", "kv"), ("code_version", "1.0.0")]
        ),
        Some(1.0)
    );
    client.reload("kv", Some(f.kv_v2.clone())).await.unwrap();
    let (code, body) = api_error(client.reload("kv", Some(f.counter.clone())).await);
    assert_eq!((code, body.cause.as_deref()), (422, Some("wrong_module")));

    let response = reqwest::get(format!("http://{}/metrics", server.local_addr()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let samples = parse_prometheus(&text);
    let m = ("module", "kv");
    assert_eq!(
        value(
            &samples,
            "molt_reloads_total",
            &[m, ("result", "committed")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&samples, "molt_reloads_total", &[m, ("result", "rejected")]),
        Some(1.0)
    );
    assert_eq!(value(&samples, "molt_messages_total", &[m]), Some(11.0));
    // The sampled handling time: the instance timed its first message.
    assert!(
        text.contains("# TYPE molt_handle_seconds histogram"),
        "{text}"
    );
    assert_eq!(
        value(&samples, "molt_handle_seconds_count", &[m]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "molt_handle_seconds_bucket", &[m, ("le", "+Inf")]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "molt_handler_errors_total", &[m]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "molt_mailbox_depth", &[m, ("instance", "0")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &samples,
            "molt_module_info",
            &[m, ("code_version", "2.0.0"), ("state_version", "2")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "molt_module_info",
            &[m, ("code_version", "1.0.0"), ("state_version", "1")]
        ),
        Some(0.0),
        "the old version's info is zeroed"
    );
    assert!(value(&samples, "molt_libraries_mapped", &[]).unwrap() >= 2.0);
    assert_eq!(
        value(&samples, "molt_swap_pause_seconds_count", &[m]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "molt_swap_pause_seconds_bucket",
            &[m, ("le", "+Inf")]
        ),
        Some(1.0)
    );
    for phase in ["prepare", "snapshot", "migrate", "swap", "verify", "commit"] {
        assert_eq!(
            value(
                &samples,
                "molt_reload_phase_seconds_count",
                &[m, ("phase", phase)]
            ),
            Some(1.0),
            "phase {phase}"
        );
    }
    assert!(text.contains("# TYPE molt_reloads_total counter"), "{text}");
    assert!(
        text.contains("# TYPE molt_swap_pause_seconds histogram"),
        "{text}"
    );
    // The client's view is the same text format.
    assert!(client
        .metrics()
        .await
        .unwrap()
        .contains("molt_reloads_total"));
    server.shutdown().await;
    node.shutdown().await;
}
