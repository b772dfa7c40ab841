//! Keyed actors (issue #9 §3): one actor per key, activated by the key's
//! first message (from the host or from a module), passivated after its
//! idle time into a snapshot the host keeps, and reactivated from that
//! snapshot with its state by the key's next message.

use std::time::Duration;

use crate::common;

use cart_proto::{Msg, Proto, Reply};
use common::cart::{add, await_status, cart_node, items, keyed_status};
use molt::{CallError, KeyedSpec, ModuleSpec, Node};

fn line(item: &str, qty: u32) -> (String, u32) {
    (item.to_string(), qty)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_activated_passivated_and_reactivated_with_its_state() {
    let node = cart_node("keyed-activation", Duration::from_millis(100), 1000).await;
    let carts = node.module::<Proto>("cart").unwrap();
    let (a, b) = (carts.key("user-a"), carts.key("user-b"));
    add(&a, "tea", 2).await;
    add(&b, "milk", 1).await;
    add(&a, "tea", 3).await;
    assert_eq!(items(&a).await, vec![line("tea", 5)], "one actor per key");
    assert_eq!(items(&b).await, vec![line("milk", 1)]);
    let s = keyed_status(&node).await;
    assert!(s.activations >= 2, "two keys activated: {s:?}");

    // Idle: both passivate, their state kept by the host.
    let s = await_status(&node, "both carts passivated", |s| {
        s.live == 0 && s.passivated == 2
    })
    .await;
    assert!(s.passivations >= 2, "{s:?}");
    let before = s.activations;

    // The next message reactivates the key from its snapshot.
    assert_eq!(items(&a).await, vec![line("tea", 5)]);
    add(&b, "milk", 1).await;
    assert_eq!(items(&b).await, vec![line("milk", 2)]);
    let s = keyed_status(&node).await;
    assert!(s.activations >= before + 2, "reactivated: {s:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_activates_a_key_with_cast_key() {
    let node = cart_node("keyed-from-module", Duration::from_millis(100), 1000).await;
    let carts = node.module::<Proto>("cart").unwrap();
    let giver = carts.key("giver");
    let taker = carts.key("taker");
    add(&taker, "jam", 1).await;
    await_status(&node, "the taker passivated", |s| s.passivated >= 1).await;
    // From the giver's actor: `ctx.cast_key("cart", "taker", Add)`.
    let reply = giver
        .call(Msg::Give {
            module: "cart".into(),
            key: "taker".into(),
            item: "jam".into(),
            qty: 2,
        })
        .await
        .expect("give");
    assert_eq!(reply, Reply::Ok);
    // A cast: handled after the giver's reply; the taker's call follows it
    // only through the same key, so poll.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if items(&taker).await == vec![line("jam", 3)] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the module's send reached the key"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A module's send to a key of a module that is not keyed is an error.
    let reply = giver
        .call(Msg::Give {
            module: "nope".into(),
            key: "x".into(),
            item: "jam".into(),
            qty: 1,
        })
        .await;
    assert!(
        matches!(&reply, Err(e) if matches!(&e.error, CallError::Handler { message, .. } if message.contains("nope is not running"))),
        "{reply:?}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_module_needs_a_key_and_a_pool_module_refuses_one() {
    let f = common::fixtures();
    let node = Node::start(
        common::config("keyed-needs-key", &[])
            .module(ModuleSpec::new("cart", &f.cart).keyed(KeyedSpec::default()))
            .module(ModuleSpec::new("kv", &f.kv)),
    )
    .await
    .expect("node starts");
    let cart = node.module::<Proto>("cart").unwrap();
    let err = CallError::from(cart.call(Msg::Items).await.unwrap_err());
    assert!(
        matches!(&err, CallError::KeyRequired(m) if m == "cart"),
        "{err:?}"
    );
    assert!(err.to_string().contains(".key("), "{err}");
    let kv = node.module::<kv_proto::Proto>("kv").unwrap().key("a");
    let err = CallError::from(kv.call(kv_proto::Msg::Dump).await.unwrap_err());
    assert!(
        matches!(&err, CallError::NotKeyed(m) if m == "kv"),
        "{err:?}"
    );
    node.shutdown().await;
}

/// An address that names a key reaches that key's actor (activating it),
/// from the application as from a module; an instance address to a keyed
/// module is refused (its actors are named by key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_address_reaches_the_keys_actor() {
    let node = cart_node("keyed-address", Duration::from_secs(600), 100).await;
    let to = molt::Address::key(node.name(), "cart", "u-7");
    node.cast_addr::<Proto>(
        &to,
        &Msg::Add {
            item: "tea".into(),
            qty: 3,
        },
    )
    .expect("a key address is sent to");
    let reply = node.call_addr::<Proto>(&to, &Msg::Items).await.unwrap();
    assert_eq!(reply, Reply::Items(vec![line("tea", 3)]));
    // The same actor as the handle's `.key("u-7")`.
    let carts = node.module::<Proto>("cart").unwrap();
    assert_eq!(items(&carts.key("u-7")).await, vec![line("tea", 3)]);

    let err = node
        .cast_addr::<Proto>(&node.address("cart", 0), &Msg::Items)
        .unwrap_err();
    assert!(err.to_string().contains("is keyed"), "{err}");
    node.shutdown().await;
}
