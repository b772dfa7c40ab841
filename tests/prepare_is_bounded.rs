//! Loading a library (the prepare phase) is bounded by
//! `limits.prepare_timeout` (issue #8, item 3): a load that hangs — here a
//! library whose static initializer sleeps inside `dlopen` — fails the
//! reload in prepare past the timeout, naming the file; the module keeps
//! serving and is not left "reloading" (the next reload is not refused as
//! in progress).
//!
//! The fixture sleeps only when `MOLT_TEST_SLOW_INIT_MS` is set, which this
//! test binary (and no other) does.

mod common;

use std::time::Duration;

use counter_proto::{Msg, Proto, Reply};
use molt::{Error, LoadCause, ModuleSpec, Node, ReloadOptions};

const TIMEOUT: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_load_fails_in_prepare_past_the_timeout() {
    let f = common::fixtures();
    // Set before this process loads the fixture: its initializer reads it.
    std::env::set_var("MOLT_TEST_SLOW_INIT_MS", "3000");
    let dir = common::scratch_dir();
    let slow = dir.path().join("libslow.so");
    std::fs::copy(&f.not_a_module, &slow).unwrap();
    let mut config = common::config("prepare-bounded", &[dir.path()]);
    config.limits.prepare_timeout = TIMEOUT;
    let node = Node::start(config.module(ModuleSpec::new("counter", &f.counter)))
        .await
        .expect("node starts");
    let counter = node.module::<Proto>("counter").unwrap();
    assert_eq!(counter.call(Msg::Add(2)).await.unwrap(), Reply::Total(2));

    for attempt in 0..2 {
        let err = tokio::time::timeout(
            Duration::from_secs(20),
            node.reload("counter", ReloadOptions::library(&slow)),
        )
        .await
        .expect("the reload answers within 20 s")
        .expect_err("the hanging load fails");
        let message = err.to_string();
        assert!(
            matches!(
                &err,
                Error::Load { path, cause: LoadCause::TimedOut { after } }
                    if path == &slow && *after == TIMEOUT
            ),
            "attempt {attempt}: {message}"
        );
        assert!(
            message.contains(&slow.display().to_string()) && message.contains("prepare_timeout"),
            "the error names the file and the limit: {message}"
        );
        assert_eq!(err.phase(), Some(molt::Phase::Prepare));
        let status = node.status().await.unwrap();
        assert!(
            !status.module("counter").unwrap().reloading,
            "the module is not left reloading"
        );
        assert_eq!(
            counter.call(Msg::Add(1)).await.unwrap(),
            Reply::Total(3 + attempt)
        );
    }
    node.shutdown().await;
}
