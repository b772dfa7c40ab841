//! The live limit of a keyed module (issue #9 §3): past `max_live` live
//! actors, a message to a key that is not live is refused at once with
//! `CallError::TooManyLive` (no queueing), the live keys keep serving, and
//! a key is taken again once an idle actor has passivated. Settings that
//! make no sense for a keyed module are refused with the key named.

use std::path::Path;
use std::time::Duration;

use crate::common;

use cart_proto::{Msg, Proto};
use common::cart::{add, await_status, cart_node, items};
use molt::CallError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_live_a_new_key_is_refused_and_live_keys_serve() {
    let node = cart_node("keyed-limit", Duration::from_secs(600), 2).await;
    let carts = node.module::<Proto>("cart").unwrap();
    add(&carts.key("a"), "tea", 1).await;
    add(&carts.key("b"), "tea", 2).await;
    let err = CallError::from(carts.key("c").call(Msg::Items).await.unwrap_err());
    assert!(
        matches!(&err, CallError::TooManyLive { module, max_live: 2 } if module == "cart"),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_live"), "{err}");
    let err = CallError::from(carts.key("c").cast(Msg::Items).unwrap_err());
    assert!(matches!(err, CallError::TooManyLive { .. }), "{err:?}");
    assert_eq!(items(&carts.key("a")).await, vec![("tea".into(), 1)]);
    assert_eq!(items(&carts.key("b")).await, vec![("tea".into(), 2)]);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passivated_actor_makes_room_for_a_new_key() {
    let node = cart_node("keyed-limit-room", Duration::from_millis(50), 1).await;
    let carts = node.module::<Proto>("cart").unwrap();
    add(&carts.key("a"), "tea", 1).await;
    await_status(&node, "a passivated", |s| s.live == 0 && s.passivated == 1).await;
    add(&carts.key("b"), "jam", 1).await;
    assert_eq!(items(&carts.key("b")).await, vec![("jam".into(), 1)]);
    node.shutdown().await;
}

fn parse(text: &str) -> String {
    molt::config::file::parse(text, Path::new("molt.toml"))
        .expect_err("refused")
        .to_string()
}

#[test]
fn keyed_settings_that_make_no_sense_are_refused_naming_the_key() {
    let base = "[node]\nname = \"n\"\n[modules.cart]\nlibrary = \"/l/libcart.so\"\n";
    let e = parse(&format!("{base}keyed = true\ninstances = 3\n"));
    assert!(
        e.contains("modules.cart.instances") && e.contains("keyed"),
        "{e}"
    );
    let e = parse(&format!("{base}keyed = true\nmax_live = 0\n"));
    assert!(
        e.contains("modules.cart.max_live") && e.contains("at least 1"),
        "{e}"
    );
    let e = parse(&format!("{base}idle_passivate_ms = 10\n"));
    assert!(
        e.contains("modules.cart.idle_passivate_ms") && e.contains("keyed = true"),
        "{e}"
    );
    let ok = molt::config::file::parse(
        &format!("{base}keyed = true\nidle_passivate_ms = 250\nmax_live = 7\n"),
        Path::new("molt.toml"),
    )
    .expect("a keyed module");
    let keyed = ok.modules[0].keyed.clone().expect("keyed");
    assert_eq!(keyed.max_live, 7);
    assert_eq!(keyed.idle_passivate, Duration::from_millis(250));
    // And back: the rendered config reads the same.
    let again =
        molt::config::file::parse(&molt::config::file::to_toml(&ok), Path::new("molt.toml"))
            .expect("rendered");
    assert_eq!(again.modules, ok.modules);
    // Making a running module keyed (or changing its keyed settings) needs
    // a restart: a live config change is rejected naming the key.
    let pool = molt::config::file::parse(base, Path::new("molt.toml")).expect("a pool module");
    let plan = molt::config::diff::plan(&pool, &ok);
    assert!(
        plan.restart_keys
            .contains(&"modules.cart.keyed".to_string()),
        "{plan:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_and_a_forced_reload_are_refused_for_a_keyed_module() {
    let node = cart_node("keyed-not-for", Duration::from_secs(600), 10).await;
    let cart = node.module::<Proto>("cart").unwrap().key("a");
    add(&cart, "tea", 1).await;
    let admin = node.admin();
    let v2 = &common::fixtures().cart_v2;
    let refusals = [
        admin.scale("cart", 3).await.map(|_| ()),
        admin
            .reload("cart", molt::ReloadOptions::library(v2).forced())
            .await
            .map(|_| ()),
    ];
    for r in refusals {
        let err = r.expect_err("refused");
        assert!(
            matches!(&err, molt::Error::NotForKeyed { module, .. } if module == "cart"),
            "{err:?}"
        );
        assert!(err.to_string().contains("nothing changed"), "{err}");
    }
    assert_eq!(items(&cart).await, vec![("tea".into(), 1)], "still serving");
    node.shutdown().await;
}
