//! Per key, nothing is lost, duplicated or reordered across activation,
//! passivation and reloads (issue #9 §3): every key's messages, sent as
//! casts in bursts with pauses past the idle time (so keys passivate and
//! reactivate in the middle), while the module is reloaded to 2.x and
//! rolled back to 1.x, arrive at the key's actor exactly once, in order.

use std::time::Duration;

use crate::common;

use cart_proto::{Msg, Proto, Reply};
use common::cart::{cart_node, keyed_status};
use molt::ReloadOptions;

const KEYS: u64 = 12;
const PER_KEY: u64 = 600;
const BURST: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_holds_across_passivation_and_reloads() {
    let node = cart_node("keyed-order", Duration::from_millis(20), 10_000).await;
    let carts = node.module::<Proto>("cart").unwrap();
    let senders: Vec<_> = (0..KEYS)
        .map(|k| {
            let cart = carts.key(format!("k{k}"));
            tokio::spawn(async move {
                for seq in 0..PER_KEY {
                    cart.cast(Msg::Push { seq }).expect("cast");
                    if seq % BURST == BURST - 1 {
                        // Past the idle time: the key may passivate here.
                        tokio::time::sleep(Duration::from_millis(40)).await;
                    }
                }
            })
        })
        .collect();
    let admin = node.admin();
    let v2 = common::fixtures().cart_v2.clone();
    let reloads = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        admin
            .reload("cart", ReloadOptions::library(&v2))
            .await
            .expect("to 2.x");
        tokio::time::sleep(Duration::from_millis(150)).await;
        admin.rollback("cart", false).await.expect("back to 1.x");
        tokio::time::sleep(Duration::from_millis(100)).await;
        admin
            .reload("cart", ReloadOptions::library(&v2))
            .await
            .expect("to 2.x again");
    });
    for s in senders {
        s.await.expect("sender");
    }
    reloads.await.expect("reloads");
    for k in 0..KEYS {
        let seqs = match carts.key(format!("k{k}")).call(Msg::Seqs).await.unwrap() {
            Reply::Seqs(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            seqs,
            (0..PER_KEY).collect::<Vec<_>>(),
            "key k{k}: every message once, in order"
        );
    }
    let s = keyed_status(&node).await;
    assert!(
        s.passivations > 0 && s.activations > KEYS,
        "keys passivated and reactivated during the run: {s:?}"
    );
    node.shutdown().await;
}
