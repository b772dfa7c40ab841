//! The history's audit file cannot stop or silently blind the node: a line
//! that is not UTF-8 (a torn multi-byte write) is skipped with a warning
//! naming the file and the line, the other entries are kept; the file is
//! rotated at `limits.history_file_max_bytes` into `FILE.1`, and both are read
//! back at start; an append that fails is reported as a
//! `history.write_failed` event and counted in
//! `molt_history_write_failures_total`, and the node keeps serving.

use crate::common;

use std::path::{Path, PathBuf};

use molt::{Event, HistoryEntry, ModuleSpec, Node, NodeConfig, Outcome};

fn config(name: &str, audit: &Path, max_bytes: u64) -> NodeConfig {
    let mut c = common::config(name, &[]).module(ModuleSpec::new("kv", &common::fixtures().kv));
    c.history_file = Some(audit.to_path_buf());
    c.limits.history_file_max_bytes = max_bytes;
    c
}

/// One history entry, as the audit file holds it.
fn line(id: u64) -> String {
    format!(
        r#"{{"id":{id},"at":1700000000000,"module":"kv","action":"reload","trigger":"admin","from":"1.0.0","to":"2.0.0","outcome":"committed","phase":null,"error":null,"pause_us":7}}"#
    )
}

fn ids(entries: &[HistoryEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.id).collect()
}

/// An attempt that changes nothing but is recorded: a rollback with no
/// previous library, refused.
async fn refused_attempt(node: &Node) {
    node.rollback("kv", false).await.unwrap_err();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_that_is_not_utf8_is_skipped_with_a_warning() {
    common::captured_logs();
    let dir = common::scratch_dir();
    let audit = dir.path().join("history.jsonl");
    // Line 2 is a write torn inside a multi-byte character (the first two
    // bytes of "€").
    let mut bytes = format!("{}\n", line(1)).into_bytes();
    bytes.extend_from_slice(b"{\"id\":2,\"module\":\"k\xe2\x82\n");
    bytes.extend_from_slice(format!("{}\n", line(3)).as_bytes());
    std::fs::write(&audit, bytes).unwrap();

    let node = Node::start(config("audit-utf8", &audit, 0))
        .await
        .expect("a bad byte in the audit file does not stop the node");
    assert_eq!(ids(&node.history().await.unwrap()), vec![1, 3]);
    let at = format!("{}:2:", audit.display());
    assert_eq!(
        common::logged_lines(&["WARN", &at, "not UTF-8"]).len(),
        1,
        "a warning names {at}"
    );
    refused_attempt(&node).await;
    assert_eq!(ids(&node.history().await.unwrap()), vec![1, 3, 4]);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_rotates_and_the_newest_entries_survive_a_restart() {
    let dir = common::scratch_dir();
    let audit = dir.path().join("history.jsonl");
    let old: PathBuf = format!("{}.1", audit.display()).into();
    // Room for about two entries per file.
    let max = 2 * (line(1).len() as u64 + 120);

    let node = Node::start(config("audit-rotate", &audit, max))
        .await
        .unwrap();
    for _ in 0..7 {
        refused_attempt(&node).await;
    }
    let before = node.history().await.unwrap();
    node.shutdown().await;
    assert_eq!(ids(&before), (1..=7).collect::<Vec<_>>());
    assert!(
        old.exists(),
        "the audit file was rotated to {}",
        old.display()
    );
    for f in [&audit, &old] {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= max, "{} holds {len} bytes, over {max}", f.display());
    }

    let node = Node::start(config("audit-rotate", &audit, max))
        .await
        .unwrap();
    let after = node.history().await.unwrap();
    assert!(
        !after.is_empty() && after.len() < 7,
        "older entries rotated out"
    );
    assert_eq!(
        after[..],
        before[before.len() - after.len()..],
        "the newest entries are read back, from {} and the file",
        old.display()
    );
    refused_attempt(&node).await;
    assert_eq!(
        node.history().await.unwrap().last().unwrap().id,
        8,
        "ids go on after a restart"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_is_an_event_and_a_metric() {
    let dir = common::scratch_dir();
    let audit = dir.path().join("history.jsonl");
    let node = Node::start(config("audit-fail", &audit, 0)).await.unwrap();
    let mut events = node.subscribe();
    refused_attempt(&node).await;
    assert!(audit.is_file());
    let failures = |node_status| {
        let text = molt::metrics::render(&node_status).expect("molt's recorder is installed");
        text.lines()
            .find(|l| l.starts_with("molt_history_write_failures_total"))
            .and_then(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let counted = failures(node.status().await.unwrap());

    // The audit file becomes a directory: appending fails (EISDIR).
    std::fs::remove_file(&audit).unwrap();
    std::fs::create_dir(&audit).unwrap();
    refused_attempt(&node).await;

    match common::next_event(&mut events, "history.write_failed").await {
        Event::HistoryWriteFailed { file, error } => {
            assert_eq!(file, audit.display().to_string());
            assert!(!error.is_empty());
        }
        other => panic!("unexpected event {other:?}"),
    }
    assert_eq!(
        failures(node.status().await.unwrap()),
        counted + 1.0,
        "molt_history_write_failures_total counts it"
    );
    let history = node.history().await.unwrap();
    assert_eq!(ids(&history), vec![1, 2], "the entry is kept in memory");
    assert_eq!(history[1].outcome, Outcome::Refused);
    // The node keeps serving.
    let kv = node.module::<kv_proto::Proto>("kv").unwrap();
    common::kv::put(&kv, "a", "1").await;
    node.shutdown().await;
}
