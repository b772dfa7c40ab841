//! A module state whose `Drop` panics does not abort the node: the SDK drops
//! module values inside `catch_unwind` in the library, leaks what the panic
//! left, and reports it through the context's log. Covered: the old state
//! dropped after a committed reload (on the blocking pool), the scratch
//! state of verify's snapshot round trip, a removed module, and node
//! shutdown.
//!
//! Without that guard, abi_stable's box destructor aborts the process on the
//! unwind: this test binary itself would die (SIGABRT), which is the failure
//! it guards against.

use crate::common;

use common::{fault, FaultProto};
use molt::{ModuleSpec, Node, ReloadOptions};
use serde_json::json;

/// The log line the SDK writes for each contained drop panic.
const LEAKED: &[&str] = &[
    "ERROR",
    "molt::module",
    "dropping its state panicked: injected panic at Drop",
];

fn panicking_drop(tag: &str) -> serde_json::Value {
    json!({ "fault": { "at": "Drop", "how": "Panic" }, "tag": tag })
}

fn spec(tag: &str) -> ModuleSpec {
    ModuleSpec::new("fault", &common::fixtures().fault).config(panicking_drop(tag))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_drop_never_aborts_the_node() {
    common::captured_logs();
    let node = Node::start(common::config("drop-panic", &[]).module(spec("a")))
        .await
        .expect("node starts");
    let h = node.module::<FaultProto>("fault").unwrap();
    fault::push(&h, 1).await;

    // A committed reload: the old state (its Drop panics) is dropped on the
    // blocking pool after the swap.
    node.reload(
        "fault",
        ReloadOptions::default().with_config(json!({ "tag": "b" })),
    )
    .await
    .expect("the reload commits");
    common::await_logged(1, LEAKED).await;
    assert_eq!(fault::tag(&h).await, "b", "the new code serves");
    assert_eq!(fault::log(&h).await, vec![1], "with the state carried over");

    // A reload to a state whose Drop panics: verify's round trip decodes the
    // snapshot into a scratch state and drops it (on the blocking pool). It
    // decodes a snapshot other than the state migrate has just read: here
    // 2.0.0's, at a new state version.
    node.reload(
        "fault",
        ReloadOptions::library(&common::fixtures().fault_v2).with_config(panicking_drop("c")),
    )
    .await
    .expect("the reload commits");
    common::await_logged(2, LEAKED).await;

    // A removed module: its instance stops and its state is dropped.
    node.admin()
        .remove_module("fault")
        .await
        .expect("the module is removed");
    common::await_logged(3, LEAKED).await;
    node.status().await.expect("the node still answers");

    // Node shutdown: the instances stop and their states are dropped.
    node.admin()
        .add_module(spec("d"))
        .await
        .expect("the module is added back");
    let h = node.module::<FaultProto>("fault").unwrap();
    fault::push(&h, 2).await;
    node.shutdown().await;
    let lines = common::await_logged(4, LEAKED).await;
    assert_eq!(lines.len(), 4, "one report per dropped state: {lines:#?}");
}
