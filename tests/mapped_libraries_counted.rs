//! Every mapped library copy is counted and the count is capped (issue #8, item
//! 19; docs/semantics.md "Loading and libraries": copies are never unmapped).
//!
//! A library rejected after `dlopen` (a layout mismatch found by
//! `init_root_module`, another module's name) stays mapped: it counts in
//! `libraries_mapped`. A load past `limits.max_mapped_libraries` is refused
//! in prepare with an error naming the cap, and the node keeps serving.
//!
//! The count is process-wide, so the tests of this file take turns.

mod common;

use counter_proto::{Msg, Proto, Reply};
use molt::{Error, LoadCause, ModuleSpec, Node, ReloadOptions};
use tokio::sync::Mutex;

/// The tests of this binary load one at a time (the count is process-wide).
static TURN: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libraries_rejected_after_dlopen_are_counted() {
    let _turn = TURN.lock().await;
    let f = common::fixtures();
    let node = common::start("mapped-counted", ModuleSpec::new("counter", &f.counter)).await;

    // A layout mismatch is found after dlopen, by abi_stable's check.
    let before = node.status().await.unwrap().libraries_mapped;
    let err = node
        .reload("counter", ReloadOptions::library(&f.abi_mismatch))
        .await
        .expect_err("a layout mismatch is refused");
    assert!(
        matches!(
            &err,
            Error::Load {
                cause: LoadCause::LayoutMismatch(_),
                ..
            }
        ),
        "{err}"
    );
    let after = node.status().await.unwrap().libraries_mapped;
    assert_eq!(
        after,
        before + 1,
        "the rejected library stays mapped: {err}"
    );

    // Another module's library: mapped, then refused by name.
    let err = node
        .reload("counter", ReloadOptions::library(&f.kv))
        .await
        .expect_err("another module's library is refused");
    assert!(
        matches!(
            &err,
            Error::Load {
                cause: LoadCause::WrongModule { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(node.status().await.unwrap().libraries_mapped, after + 1);

    // A file dlopen refuses maps nothing.
    let dir = common::scratch_dir();
    let junk = dir.path().join("libjunk.so");
    std::fs::write(&junk, b"not a library").unwrap();
    let _ = Node::start(
        common::config("mapped-junk", &[dir.path()]).module(ModuleSpec::new("junk", &junk)),
    )
    .await
    .expect_err("junk is refused");
    assert_eq!(node.status().await.unwrap().libraries_mapped, after + 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_past_the_cap_are_refused_and_the_node_keeps_serving() {
    let _turn = TURN.lock().await;
    let f = common::fixtures();
    let mapped = molt::mapped_libraries();
    let mut config = common::config("mapped-capped", &[]);
    // Room for the start and one reload.
    config.limits.max_mapped_libraries = mapped + 2;
    let node = Node::start(config.module(ModuleSpec::new("counter", &f.counter)))
        .await
        .expect("node starts");
    let counter = node.module::<Proto>("counter").unwrap();
    assert_eq!(counter.call(Msg::Add(5)).await.unwrap(), Reply::Total(5));
    node.reload("counter", ReloadOptions::library(&f.counter_v2))
        .await
        .expect("the reload within the cap works");

    let err = node
        .reload("counter", ReloadOptions::library(&f.counter_v2))
        .await
        .expect_err("the load past the cap is refused");
    let message = err.to_string();
    assert!(
        matches!(
            &err,
            Error::Load {
                cause: LoadCause::TooManyMappings { max, .. },
                path,
            } if *max == mapped + 2 && path == &f.counter_v2
        ),
        "{message}"
    );
    assert!(
        message.contains("max_mapped_libraries") && message.contains(&(mapped + 2).to_string()),
        "the error names the cap: {message}"
    );
    assert_eq!(
        molt::mapped_libraries(),
        mapped + 2,
        "the refused load mapped nothing"
    );

    // A normal prepare failure: the module serves, with its state, and is
    // not left reloading.
    assert_eq!(counter.call(Msg::Add(1)).await.unwrap(), Reply::Total(6));
    let status = node.status().await.unwrap();
    assert!(!status.module("counter").unwrap().reloading);
    node.shutdown().await;
}
