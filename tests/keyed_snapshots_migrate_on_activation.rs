//! Passivated snapshots of a keyed module are migrated on activation, by
//! whichever code serves then (issue #9 §3): a snapshot of the old state
//! version is served correctly after a committed reload; a reload that rolls
//! back leaves the snapshots as they were, readable by the old code; and
//! after an admin rollback to an older state version, a snapshot the newer
//! code wrote is down-migrated by that code when its key is activated.

use std::time::Duration;

use crate::common;

use cart_proto::{Msg, Proto};
use common::cart::{add, await_status, cart_node, items, state_version};
use molt::{ModuleHandle, Node, ReloadOptions};

const CARTS: u32 = 10;
const IDLE: Duration = Duration::from_millis(100);

/// `CARTS` carts with their items, all passivated.
async fn passivated_carts(node: &Node) -> Vec<(ModuleHandle<Proto>, Vec<(String, u32)>)> {
    let carts = node.module::<Proto>("cart").unwrap();
    let mut out = Vec::new();
    for i in 0..CARTS {
        let cart = carts.key(format!("user-{i}"));
        add(&cart, &format!("item-{i}"), i + 1).await;
        out.push((cart.clone(), items(&cart).await));
    }
    await_status(node, "every cart passivated", |s| {
        s.passivated == u64::from(CARTS) && s.live == 0
    })
    .await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_snapshot_is_migrated_by_the_new_code_after_a_commit() {
    let node = cart_node("keyed-snap-commit", IDLE, 1000).await;
    let carts = passivated_carts(&node).await;
    node.admin()
        .reload("cart", ReloadOptions::library(&common::fixtures().cart_v2))
        .await
        .expect("the reload commits");
    for (i, (cart, held)) in carts.iter().enumerate() {
        assert_eq!(
            state_version(cart).await,
            2,
            "cart {i} activated with the new code"
        );
        assert_eq!(
            &items(cart).await,
            held,
            "cart {i}: its v1 snapshot, migrated"
        );
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_reload_leaves_snapshots_readable_by_the_old_code() {
    let node = cart_node("keyed-snap-rollback", IDLE, 1000).await;
    let carts = passivated_carts(&node).await;
    // A poisoned cart kept live (a message every 10 ms, well under the idle
    // time) makes the reload roll back.
    let poisoned = node.module::<Proto>("cart").unwrap().key("poisoned");
    add(&poisoned, "poison", 1).await;
    let keeper = {
        let poisoned = poisoned.clone();
        tokio::spawn(async move {
            for seq in 0..6000u64 {
                if poisoned.cast(Msg::Push { seq }).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let err = node
        .admin()
        .reload("cart", ReloadOptions::library(&common::fixtures().cart_v2))
        .await
        .expect_err("the poisoned live cart fails verify");
    assert!(err.to_string().contains("poison"), "{err}");
    keeper.abort();
    for (i, (cart, held)) in carts.iter().enumerate() {
        assert_eq!(state_version(cart).await, 1, "cart {i}: the old code");
        assert_eq!(
            &items(cart).await,
            held,
            "cart {i}: its snapshot, untouched"
        );
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_admin_rollback_a_newer_snapshot_is_down_migrated_on_activation() {
    let node = cart_node("keyed-snap-downgrade", IDLE, 1000).await;
    node.admin()
        .reload("cart", ReloadOptions::library(&common::fixtures().cart_v2))
        .await
        .expect("to 2.x");
    // Written by 2.x (state v2), then passivated.
    let carts = passivated_carts(&node).await;
    let report = node
        .admin()
        .rollback("cart", false)
        .await
        .expect("back to 1.x");
    assert_eq!(report.state_version, 1);
    for (i, (cart, held)) in carts.iter().enumerate() {
        assert_eq!(state_version(cart).await, 1, "cart {i}: the old code");
        assert_eq!(
            &items(cart).await,
            held,
            "cart {i}: its v2 snapshot, down-migrated by 2.x"
        );
    }
    node.shutdown().await;
}
