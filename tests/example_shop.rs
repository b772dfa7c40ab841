//! The shop example (`examples/shop.rs`, issue #9 §4) run small: keyed cart
//! actors, a checkout pool asking them by address and answering its callers
//! later, while `cart` is swapped to 2.x, back to 1.x and to 2.x again, and
//! carts passivate between their clients' sessions (idle 5 ms).
//! Every acknowledged add ends up in its cart exactly once, nothing else
//! does, and every checkout is answered with exactly the adds acknowledged
//! before it, none left open.

use std::time::Duration;

#[path = "../examples/support/shop.rs"]
mod shop;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_loses_nothing_and_answers_every_checkout_across_swaps() {
    let libs = tokio::task::spawn_blocking(shop::build_shop_libraries)
        .await
        .expect("build task")
        .expect("the shop's libraries build");
    let params = shop::Params {
        clients: 3,
        carts_per_client: 5,
        checkout_every: 4,
        settle: Duration::from_millis(150),
        // Short: carts passivate between their sessions and reactivate.
        idle_passivate: Duration::from_millis(5),
    };
    let s = tokio::time::timeout(Duration::from_secs(120), shop::run(&libs, &params))
        .await
        .expect("the shop finishes within 120 s")
        .expect("the shop runs");
    let line = format!("{} (cart: {:?})", s.line(), s.keyed);
    assert!(s.adds > 0 && s.checkouts > 0, "the clients ran: {line}");
    assert_eq!(s.carts, 15, "every cart was written: {line}");
    assert_eq!((s.lost, s.dup, s.unexpected), (0, 0, 0), "{line}");
    assert_eq!(s.answered, s.checkouts, "every checkout answered: {line}");
    assert_eq!(s.wrong_totals, 0, "{line}: {:?}", s.first_error);
    assert_eq!(s.failed, 0, "{line}: {:?}", s.first_error);
    assert_eq!(s.left_open, 0, "no checkout left open: {line}");
    assert_eq!(s.reloads, shop::SWAPS, "every swap committed: {line}");
    assert_eq!(s.final_state, 2, "cart 2.x serves at the end: {line}");
    assert!(s.is_clean(), "{line}");
    println!("{line}");
}
