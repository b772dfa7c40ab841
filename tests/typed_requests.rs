//! A typed request (`molt_abi::Request`, declared in the proto crate with
//! `molt_abi::requests!`) gets its reply as its exact type, from a handle,
//! from an address and in a module's `handle_answer`; a library that answers
//! with another reply variant gives a `CallError::WrongReply` (or, in a
//! module, an error) naming the module and the request, never a panic, and
//! the node keeps serving (issue #9 §5; `docs/semantics.md` "Typed
//! requests").

use crate::common;
use cart_proto::Items;
use checkout_proto::{Checkout, Total};
use kv_proto::{Get, Put, Version};
use molt::{CallError, KeyedSpec, ModuleSpec, Node, ReloadOptions};

/// A node running the keyed cart 1.x and a checkout actor that asks carts.
async fn shop_node(name: &str) -> Node {
    let f = common::fixtures();
    let config = common::config(name, &[])
        .module(ModuleSpec::new("cart", &f.cart).keyed(KeyedSpec::default()))
        .module(ModuleSpec::new("checkout", &f.checkout));
    Node::start(config).await.expect("node starts")
}

/// Reloads `cart` to the fixture whose `Items` answers `Reply::Seqs`.
async fn swap_to_other_reply(node: &Node) {
    let lib = &common::fixtures().cart_other_reply;
    node.reload("cart", ReloadOptions::library(lib))
        .await
        .expect("cart 1.1.0 takes over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_request_gets_its_exact_reply_type() {
    let node = common::start("typed-kv", ModuleSpec::new("kv", &common::fixtures().kv)).await;
    let kv = node.module::<kv_proto::Proto>("kv").expect("kv runs");

    let unset: Option<String> = kv.request(Get { key: "a".into() }).await.expect("get");
    assert_eq!(unset, None);
    kv.request(Put {
        key: "a".into(),
        value: "1".into(),
    })
    .await
    .expect("put answers ()");
    let set: Option<String> = kv.request(Get { key: "a".into() }).await.expect("get");
    assert_eq!(set.as_deref(), Some("1"));
    let (code, state): (String, u32) = kv.request(Version).await.expect("version");
    assert_eq!((code.as_str(), state), ("1.0.0", 1));

    // The same through an address.
    let at = node.address("kv", 0);
    let by_address: Option<String> = node
        .request_addr(&at, Get { key: "a".into() })
        .await
        .expect("get by address");
    assert_eq!(by_address.as_deref(), Some("1"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_answering_another_variant_gives_wrong_reply_not_a_panic() {
    let node = shop_node("typed-wrong-reply").await;
    let cart = node
        .module::<cart_proto::Proto>("cart")
        .expect("cart runs")
        .key("u1");
    cart.request(cart_proto::Add {
        item: "tea".into(),
        qty: 2,
    })
    .await
    .expect("add");
    let items: Vec<(String, u32)> = cart.request(Items).await.expect("items from 1.x");
    assert_eq!(items, vec![("tea".to_string(), 2)]);

    swap_to_other_reply(&node).await;

    let err = cart
        .request(Items)
        .await
        .expect_err("1.1.0 answers Items with another variant");
    assert!(err.message.is_none(), "the message was delivered");
    match &err.error {
        CallError::WrongReply {
            module,
            request,
            reply,
        } => {
            assert_eq!(module, "cart");
            assert_eq!(*request, "cart_proto::Items");
            assert_eq!(reply, "Seqs([])");
        }
        other => panic!("expected WrongReply, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("cart") && text.contains("cart_proto::Items"),
        "{text}"
    );

    // Through an address: the same error.
    let at = molt::Address::key(node.name(), "cart", "u1");
    let by_address = node.request_addr(&at, Items).await;
    assert!(
        matches!(by_address, Err(CallError::WrongReply { .. })),
        "{by_address:?}"
    );

    // The node keeps serving: the protocol's enum gets the reply as it is,
    // and requests the new version answers as before still work.
    let raw = cart.call(cart_proto::Msg::Items).await.expect("call");
    assert_eq!(raw, cart_proto::Reply::Seqs(vec![]));
    let (code, _) = cart.request(cart_proto::Version).await.expect("version");
    assert_eq!(code, "1.1.0");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_to_module_typed_ask_decodes_its_answer() {
    let node = shop_node("typed-ask").await;
    let cart = node
        .module::<cart_proto::Proto>("cart")
        .expect("cart runs")
        .key("u2");
    for (item, qty) in [("tea", 2), ("cake", 3)] {
        cart.request(cart_proto::Add {
            item: item.into(),
            qty,
        })
        .await
        .expect("add");
    }
    let checkout = node
        .module::<checkout_proto::Proto>("checkout")
        .expect("checkout runs");
    // checkout asks the cart with `ctx.request(&cart, Items, ..)` and totals
    // `answer.decode::<Items>()` in handle_answer.
    let total: Total = checkout
        .request(Checkout { user: "u2".into() })
        .await
        .expect("checkout");
    assert_eq!(
        total,
        Total {
            user: "u2".into(),
            lines: 2,
            units: 5,
        }
    );
    let open: u32 = checkout.request(checkout_proto::Open).await.expect("open");
    assert_eq!(open, 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_asked_answer_of_another_variant_is_an_error_it_sees() {
    let node = shop_node("typed-ask-wrong").await;
    swap_to_other_reply(&node).await;
    let checkout = node
        .module::<checkout_proto::Proto>("checkout")
        .expect("checkout runs");
    let err = checkout
        .request(Checkout { user: "u3".into() })
        .await
        .expect_err("the cart answers Items with its log");
    match &err.error {
        CallError::Handler {
            module, message, ..
        } => {
            assert_eq!(module, "checkout");
            assert!(
                message.contains("cart_proto::Items") && message.contains("Seqs([])"),
                "the checkout's error names the request and the reply: {message}"
            );
        }
        other => panic!("expected the checkout's handler error, got {other:?}"),
    }
    // Nothing stays open, and the checkout keeps serving.
    let open: u32 = checkout.request(checkout_proto::Open).await.expect("open");
    assert_eq!(open, 0);
    node.shutdown().await;
}
