//! Status shows a keyed module usefully (issue #9 §3): its live and
//! passivated counts, activations and passivations, in the status JSON
//! (`GET /modules/cart`) and in `molt status`, as four numbers per module,
//! never one entry per key.

use std::time::Duration;

use crate::common;

use cart_proto::Proto;
use common::cart::{add, await_status, cart_node};
use common::{molt_cli, output_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_and_molt_status_show_the_keyed_counts() {
    let node = cart_node("keyed-status", Duration::from_millis(50), 500).await;
    let carts = node.module::<Proto>("cart").unwrap();
    for k in ["a", "b", "c"] {
        add(&carts.key(k), "tea", 1).await;
    }
    await_status(&node, "three passivated", |s| {
        s.passivated == 3 && s.live == 0
    })
    .await;

    let (_server, client) =
        common::serve_admin(&node, "keyed-status-token-0123456789abcdefghij").await;
    let cart = client.module("cart").await.expect("GET /modules/cart");
    let k = cart.keyed.expect("the keyed counts");
    assert_eq!((k.live, k.passivated), (0, 3), "{k:?}");
    assert!(k.activations >= 3 && k.passivations >= 3, "{k:?}");
    assert_eq!(k.max_live, 500);
    assert_eq!(k.idle_passivate_ms, 50);
    assert_eq!(
        cart.instances.len(),
        1,
        "the template instance only, no entry per key"
    );

    let addr = _server.local_addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        molt_cli(&[
            "status",
            "--addr",
            &addr,
            "--token",
            "keyed-status-token-0123456789abcdefghij",
        ])
    })
    .await
    .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // The module's line counts its actors, not its template instance.
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("cart "))
        .unwrap_or_else(|| panic!("no cart line: {text}"));
    assert!(
        line.contains("keyed: 0 live, 3 passivated  mailbox 0") && !line.contains("instance"),
        "{text}"
    );
    assert!(
        text.contains("keyed actors: max_live 500, idle 50 ms;"),
        "{text}"
    );
    node.shutdown().await;
}
