//! docs/semantics.md "Keyed actors": a rollback that resets the state of a
//! keyed module (`rollback --reset-state`) starts every live actor fresh
//! with the kept code's `init` and drops every passivated snapshot: after
//! it, each key (live or passivated before) answers from an empty state
//! with the old code, and the keys stay reachable.

use std::time::Duration;

use crate::common;

use cart_proto::Proto;
use common::cart::{add, await_status, cart_node, items, state_version};
use molt::ReloadOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_rollback_starts_every_key_fresh_and_drops_the_snapshots() {
    let node = cart_node("keyed-reset", Duration::from_millis(300), 1000).await;
    let carts = node.module::<Proto>("cart").unwrap();
    node.admin()
        .reload("cart", ReloadOptions::library(&common::fixtures().cart_v2))
        .await
        .expect("to 2.x");
    // One cart passivated (a snapshot the host keeps), others live.
    let asleep = carts.key("asleep");
    add(&asleep, "tea", 2).await;
    await_status(&node, "the cart passivates", |s| s.passivated >= 1).await;
    let live: Vec<_> = (0..20).map(|i| carts.key(format!("live-{i}"))).collect();
    for (i, cart) in live.iter().enumerate() {
        add(cart, "cup", i as u32 + 1).await;
    }

    let report = node
        .admin()
        .rollback("cart", true)
        .await
        .expect("the reset rollback commits");
    assert_eq!((report.to.as_str(), report.state_version), ("1.0.0", 1));
    assert!(report.switch_failures.is_empty(), "{report:?}");
    for (i, cart) in live.iter().chain([&asleep]).enumerate() {
        assert_eq!(state_version(cart).await, 1, "cart {i} runs 1.x");
        assert_eq!(items(cart).await, vec![], "cart {i} starts empty");
    }
    node.shutdown().await;
}
