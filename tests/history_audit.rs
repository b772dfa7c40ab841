//! The history is mirrored to an append-only JSON-lines audit file, read
//! back at start, so it survives a restart of the node.

use crate::common;

use molt::{ModuleSpec, Node, Outcome, ReloadOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_file_survives_a_restart() {
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let audit = dir.path().join("history.jsonl");
    let config = || {
        let mut c = common::config("audit", &[]).module(ModuleSpec::new("kv", &f.kv));
        c.history_file = Some(audit.clone());
        c
    };

    let node = Node::start(config()).await.unwrap();
    node.reload("kv", ReloadOptions::library(&f.kv_v2))
        .await
        .unwrap();
    node.reload("kv", ReloadOptions::library(&f.counter))
        .await
        .unwrap_err();
    let before = node.history().await.unwrap();
    node.shutdown().await;
    assert_eq!(before.len(), 2);
    let lines = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(
        lines.lines().count(),
        2,
        "one JSON line per attempt:\n{lines}"
    );

    // A new node on the same file starts with the old entries, and numbers on.
    let node = Node::start(config()).await.unwrap();
    let after = node.history().await.unwrap();
    assert_eq!(after, before, "the history survived the restart");
    node.reload("kv", ReloadOptions::library(&f.kv_v2))
        .await
        .unwrap();
    let now = node.history().await.unwrap();
    assert_eq!(now.len(), 3);
    assert_eq!(now[2].id, 3);
    assert_eq!(now[2].outcome, Outcome::Committed);
    assert_eq!(
        now[2].trigger,
        molt::Trigger::Admin,
        "who asked is recorded"
    );
    assert_eq!(std::fs::read_to_string(&audit).unwrap().lines().count(), 3);
    node.shutdown().await;
}
