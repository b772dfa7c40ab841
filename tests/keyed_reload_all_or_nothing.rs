//! docs/semantics.md "Keyed actors": the decision of a keyed reload covers
//! every live actor (issue #9 §3). One actor whose state fails verify in
//! the new code at the vote rolls the reload back, naming its key; every
//! live actor is still on the old code with exactly its state, and none was
//! restarted (each kept serving through the vote: no passivation, no
//! activation). A clean reload commits on every one of them, each with
//! exactly its state migrated.

use std::time::Duration;

use crate::common;

use cart_proto::Proto;
use common::cart::{add, cart_node, items, keyed_status, state_version};
use molt::{ModuleHandle, Node, ReloadOptions};

const CARTS: u32 = 40;

/// `CARTS` live carts, each with its own items; returns them with what
/// each holds.
async fn live_carts(node: &Node) -> Vec<(ModuleHandle<Proto>, Vec<(String, u32)>)> {
    let carts = node.module::<Proto>("cart").unwrap();
    let mut out = Vec::new();
    for i in 0..CARTS {
        let cart = carts.key(format!("user-{i}"));
        add(&cart, &format!("item-{i}"), i + 1).await;
        add(&cart, "shared", i).await;
        let held = items(&cart).await;
        out.push((cart, held));
    }
    let s = keyed_status(node).await;
    assert_eq!(s.live, u64::from(CARTS), "every cart is live: {s:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_actor_rolls_back_every_live_actor_with_its_exact_state() {
    let node = cart_node("keyed-reload-rollback", Duration::from_secs(600), 1000).await;
    let carts = live_carts(&node).await;
    // cart 2.x refuses to verify a cart holding poison: one actor of 41.
    let poisoned = node.module::<Proto>("cart").unwrap().key("poisoned");
    add(&poisoned, "poison", 1).await;
    let before = keyed_status(&node).await;

    let err = node
        .admin()
        .reload("cart", ReloadOptions::library(&common::fixtures().cart_v2))
        .await
        .expect_err("one actor fails verify: the reload rolls back");
    assert!(err.to_string().contains("poison"), "{err}");
    assert!(
        err.to_string().contains("key \"poisoned\""),
        "the failing key is named: {err}"
    );
    let after = keyed_status(&node).await;
    assert_eq!(
        (after.activations, after.passivations, after.live),
        (before.activations, before.passivations, before.live),
        "no live actor was stopped or started"
    );
    for (i, (cart, held)) in carts.iter().enumerate() {
        assert_eq!(state_version(cart).await, 1, "cart {i} serves the old code");
        assert_eq!(&items(cart).await, held, "cart {i} keeps exactly its state");
    }
    assert_eq!(state_version(&poisoned).await, 1);
    let status = node.admin().status().await.unwrap();
    assert_eq!(status.module("cart").unwrap().code_version, "1.0.0");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_reload_commits_on_every_live_actor_with_its_exact_state() {
    let node = cart_node("keyed-reload-commit", Duration::from_secs(600), 1000).await;
    let carts = live_carts(&node).await;
    let report = node
        .admin()
        .reload("cart", ReloadOptions::library(&common::fixtures().cart_v2))
        .await
        .expect("the reload commits");
    assert_eq!(report.state_version, 2);
    assert_eq!(
        report.pauses_us.len(),
        CARTS as usize + 1,
        "every live actor and the template instance swapped"
    );
    for (i, (cart, held)) in carts.iter().enumerate() {
        assert_eq!(state_version(cart).await, 2, "cart {i} serves the new code");
        assert_eq!(
            &items(cart).await,
            held,
            "cart {i} migrated exactly its state"
        );
    }
    // A key activated after the commit runs the new code too.
    let fresh = node.module::<Proto>("cart").unwrap().key("after");
    assert_eq!(state_version(&fresh).await, 2);
    node.shutdown().await;
}
