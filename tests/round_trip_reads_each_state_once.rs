//! The verify round trip (docs/semantics.md "Reload phases", verify) proves
//! that the new code can snapshot its state and read that snapshot back. When
//! the new code's snapshot is, byte for byte and at the same state version,
//! the state phase 4 handed to the same library's `migrate`, that `migrate`
//! has read it already: the round trip does not decode it a second time.
//! When the snapshot differs (here: a new state version), it still does.
//!
//! The fault fixture publishes `fault.migrating` (with its config tag) from
//! every `migrate`, synchronously on the event bus: every one a reload ran
//! is in the stream before the reload returns.

use std::time::Duration;

use crate::common::{self, fault};
use molt::{Event, EventStream, Node, ReloadOptions};
use serde_json::json;

/// How many `migrate`s published `fault.migrating` with `tag` before the
/// marker this publishes now (bounded: 30 s).
async fn migrates_with(node: &Node, events: &mut EventStream, tag: &str) -> usize {
    node.events().publish(Event::Published {
        module: "test".into(),
        topic: "test.marker".into(),
        json: "null".into(),
    });
    let tagged = json!(tag).to_string();
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut count = 0;
        loop {
            match events.next_event().await.expect("the node runs") {
                Event::Published { topic, .. } if topic == "test.marker" => return count,
                Event::Published { topic, json, .. }
                    if topic == "fault.migrating" && json == tagged =>
                {
                    count += 1
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the marker event arrives")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_the_new_code_has_just_read_is_not_decoded_again() {
    let (node, h) = fault::node_with_a_log("round-trip-same-state").await;
    let mut events = node.subscribe();
    let f = common::fixtures();
    // The same library, another config: the state layout (and its bytes) is
    // the same on both sides.
    node.reload(
        "fault",
        ReloadOptions::library(&f.fault).with_config(json!({ "tag": "b" })),
    )
    .await
    .expect("the reload commits");
    assert_eq!(
        migrates_with(&node, &mut events, "b").await,
        1,
        "phase 4's migrate only: the round trip compared the bytes instead"
    );
    assert_eq!(fault::tag(&h).await, "b");
    assert_eq!(fault::log(&h).await, vec![1, 2, 3]);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_the_new_code_wrote_differently_is_decoded_again() {
    let (node, h) = fault::node_with_a_log("round-trip-new-version").await;
    let mut events = node.subscribe();
    let f = common::fixtures();
    // 2.0.0 reads state 1 and writes state 2: its snapshot is not what it
    // was handed, so the round trip decodes it.
    node.reload(
        "fault",
        ReloadOptions::library(&f.fault_v2).with_config(json!({ "tag": "c" })),
    )
    .await
    .expect("the reload commits");
    assert_eq!(
        migrates_with(&node, &mut events, "c").await,
        2,
        "phase 4's migrate and the round trip's"
    );
    assert_eq!(fault::tag(&h).await, "c");
    assert_eq!(fault::log(&h).await, vec![1, 2, 3]);
    node.shutdown().await;
}
