//! Issue #8 item 8: a shutdown drains. Every instance handles the messages
//! already in its mailbox before `Node::shutdown` returns, then stops (its
//! `stop` runs); sends during the shutdown fail with not running; with a
//! shutdown timeout shorter than the work, the report counts exactly the
//! messages that were not handled.
//!
//! The fault fixture makes each handled `Push` slow (`Hang` at `Handle`) and
//! appends it to a journal file, read after the shutdown. A hang blocks the
//! worker thread it runs on, so the runtime has a worker per instance plus
//! spare ones for the test and the node.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fault_proto::Msg;
use common::FaultProto;
use molt::{CallError, ModuleSpec, Node, SendError};
use serde_json::json;

/// The journal's lines of instance `i`: pushed values, then `None` for stop.
fn journal(path: &Path, i: usize) -> Vec<Option<i64>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("push"), Some(n), Some(v)) if n == i.to_string() => {
                    Some(Some(v.parse().unwrap()))
                }
                (Some("stop"), Some(n), None) if n == i.to_string() => Some(None),
                _ => None,
            }
        })
        .collect()
}

async fn node(name: &str, instances: u32, hang_ms: u64, timeout: Duration, journal: &Path) -> Node {
    let f = common::fixtures();
    let mut config = common::config(name, &[]);
    config.limits.shutdown_timeout = timeout;
    Node::start(
        config.module(
            ModuleSpec::new("fault", &f.fault)
                .instances(instances)
                .config(json!({
                    "tag": "a",
                    "journal": journal.to_str().unwrap(),
                    "fault": { "at": "Handle", "how": { "Hang": { "ms": hang_ms } } },
                })),
        ),
    )
    .await
    .expect("node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn shutdown_handles_every_queued_message_then_stops() {
    const INSTANCES: u32 = 4;
    const QUEUED: i64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let node = node(
        "shutdown-drains",
        INSTANCES,
        10,
        Duration::from_secs(60),
        &path,
    )
    .await;
    let any = node.module::<FaultProto>("fault").unwrap();
    let handles: Vec<_> = (0..INSTANCES as usize)
        .map(|i| any.on_instance(i))
        .collect();
    for h in &handles {
        for v in 0..QUEUED {
            h.cast(Msg::Push(v)).expect("cast");
        }
    }
    // Sends racing the shutdown: each is either accepted (then handled) or
    // refused as not running, never silently dropped.
    let shutdown = tokio::spawn(node.shutdown());
    let mut accepted = vec![Vec::new(); INSTANCES as usize];
    let mut v = QUEUED;
    let refused = loop {
        let i = (v as usize) % INSTANCES as usize;
        match handles[i].cast(Msg::Push(v)) {
            Ok(()) => accepted[i].push(v),
            Err(e) => break (v, e),
        }
        v += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let (refused_value, refused) = refused;
    assert!(
        matches!(refused.error, CallError::NotRunning(_)),
        "{refused:?}"
    );
    assert_eq!(
        refused.message,
        Some(Msg::Push(refused_value)),
        "a refused cast hands its message back"
    );
    let report = shutdown.await.expect("shutdown");
    println!("{report}");
    assert_eq!(report.unhandled(), 0, "{report}");
    assert!(!report.timed_out);
    for i in 0..INSTANCES {
        let mut expected: Vec<Option<i64>> = (0..QUEUED).map(Some).collect();
        expected.extend(accepted[i as usize].iter().map(|v| Some(*v)));
        expected.push(None);
        assert_eq!(
            journal(&path, i as usize),
            expected,
            "instance {i} handled everything queued, in order, then stopped"
        );
    }
    assert!(matches!(
        handles[0].cast(Msg::Push(-1)),
        Err(SendError {
            error: CallError::NotRunning(_),
            message: Some(Msg::Push(-1)),
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 6)]
async fn a_short_shutdown_timeout_reports_exactly_the_unhandled_messages() {
    const QUEUED: i64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    // 40 messages of 100 ms each on two instances: 2 s of work, 500 ms
    // allowed.
    let node = node(
        "shutdown-times-out",
        2,
        100,
        Duration::from_millis(500),
        &path,
    )
    .await;
    let any = node.module::<FaultProto>("fault").unwrap();
    let handles = [any.on_instance(0), any.on_instance(1)];
    for v in 0..QUEUED {
        handles[(v % 2) as usize].cast(Msg::Push(v)).expect("cast");
    }
    let report = node.shutdown().await;
    println!("{report}");
    assert!(report.timed_out, "{report}");
    let module = report.module("fault").expect("the module is reported");
    let mut handled_total = 0;
    for i in 0..2usize {
        let lines = journal(&path, i);
        assert_eq!(lines.last(), Some(&None), "instance {i} stopped: {lines:?}");
        let handled = lines.len() as u64 - 1;
        let queued = (QUEUED / 2) as u64;
        let counted = module
            .instances
            .iter()
            .find(|d| d.index == i && !d.forwarder)
            .expect("every instance is reported")
            .unhandled;
        assert!(handled < queued, "the timeout is shorter than the work");
        assert_eq!(
            counted,
            queued - handled,
            "instance {i}: the report counts exactly what was not handled"
        );
        handled_total += handled;
    }
    assert_eq!(report.unhandled(), QUEUED as u64 - handled_total);
}

/// `molt run FILE`, SIGTERM while an instance still has 40 slow messages
/// queued: the process handles them all, runs `stop`, says so, and exits 0.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_molt_process() {
    const QUEUED: i64 = 40;
    let f = common::fixtures();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let mut config = common::config("sigterm-drains", &[]).module(
        ModuleSpec::new("fault", &f.fault).config(json!({
            "journal": path.to_str().unwrap(),
            "self_load": QUEUED,
            "fault": { "at": "Handle", "how": { "Hang": { "ms": 50 } } },
        })),
    );
    config.hot_reload = false;
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    let file = dir.path().join("molt.toml");
    std::fs::write(&file, molt::config::file::to_toml(&config)).unwrap();
    let mut molt = common::MoltProcess::start_with_env(
        &["run", file.to_str().unwrap()],
        dir.path(),
        &[(
            "MOLT_ADMIN_TOKEN",
            "a-token-for-the-sigterm-test-0123456789",
        )],
    );
    // Running (a signal during the start abandons it), and busy with its
    // queue.
    molt.wait_for_line("HTTP admin on", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    while journal(&path, 0).is_empty() {
        assert!(Instant::now() < deadline, "molt never started its work");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    molt.signal("TERM");
    let status = molt
        .wait_exit(Duration::from_secs(60))
        .expect("molt exits after SIGTERM");
    let out = molt.output();
    assert!(status.success(), "{status}: {out}");
    assert!(
        out.contains("molt: stopped: every queued message was handled"),
        "{out}"
    );
    let mut expected: Vec<Option<i64>> = (0..QUEUED).map(Some).collect();
    expected.push(None);
    assert_eq!(journal(&path, 0), expected, "all 40 handled, then stop");
}
