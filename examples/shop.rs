//! # shop: an application built as actors, hot-swapped while it runs
//!
//! ```sh
//! cargo run --release --example shop
//! ```
//!
//! What it shows:
//!
//! 1. Keyed actors per entity: module `cart` is keyed, one actor per user,
//!    activated by the user's first message (and passivated when idle).
//! 2. Requests between modules with replies later and addresses in
//!    messages: module `checkout` (a pool of two actors) keeps a
//!    `Checkout { user }` call open (`ctx.reply_later()`), asks the user's
//!    cart actor at `Address::key(ctx.node(), "cart", user)` for its items
//!    (`ctx.ask`, no thread waits), and answers the kept call from
//!    `handle_answer` with the cart's total.
//! 3. Clients (`SHOP_CLIENTS`, default 8), each owning `SHOP_CARTS` carts
//!    (default 50), shop in sessions: 8 fresh items into one cart (a call
//!    each), a checkout of that cart, then the next cart. A cart idle for
//!    10 ms is passivated and reactivated by its next message. Meanwhile the
//!    operator hot-swaps `cart` to 2.x (its state gains a per-line count),
//!    rolls it back to 1.x (down-migrated), and swaps it to 2.x again.
//! 4. The check, counted, never assumed: every acknowledged add is in its
//!    cart exactly once and nothing else is, every checkout was answered
//!    with exactly the adds acknowledged before it, none is left open.
//!
//! The last line of stdout is the summary:
//!
//! ```text
//! shop: carts=… adds=… lost=0 dup=0 unexpected=0 checkouts=… answered=… wrong_totals=0 failed=0 reloads=3
//! ```
//!
//! The process exits non-zero on any loss, duplicate, failed or wrong
//! answer, or swap that did not commit. Logs go to stderr (`RUST_LOG`
//! filters them; default `warn`). The logic lives in
//! `examples/support/shop.rs`, which `tests/example_shop.rs` runs small.

#[path = "support/logs.rs"]
mod logs;
#[path = "support/shop.rs"]
mod shop;

use std::process::ExitCode;
use std::time::Duration;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    logs::init_tracing("warn");
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shop: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<ExitCode, AnyError> {
    println!("building cart, cart-v2 and checkout with cargo, if missing or stale");
    let libs = shop::build_shop_libraries()?;
    let params = shop::Params {
        clients: env_number("SHOP_CLIENTS", 8)?,
        carts_per_client: env_number("SHOP_CARTS", 50)?,
        checkout_every: 8,
        settle: Duration::from_millis(700),
        idle_passivate: Duration::from_millis(10),
    };
    println!(
        "{} clients, {} carts each, sessions of {} adds and a checkout; swapping cart 1.x -> 2.x -> 1.x -> 2.x",
        params.clients, params.carts_per_client, params.checkout_every
    );
    let summary = shop::run(&libs, &params).await?;
    if let Some(k) = &summary.keyed {
        println!(
            "cart actors: {} live, {} passivated, {} activations, {} passivations; serving state v{}",
            k.live, k.passivated, k.activations, k.passivations, summary.final_state
        );
    }
    if let Some(e) = &summary.first_error {
        println!("first failure: {e}");
    }
    if summary.left_open > 0 {
        println!("{} checkouts were left open", summary.left_open);
    }
    println!("{}", summary.line());
    Ok(if summary.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A count from the environment variable `name`, or `default`.
fn env_number(name: &str, default: usize) -> Result<usize, AnyError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse() {
            Ok(n) if n > 0 => Ok(n),
            Ok(_) => Err(format!("{name}={v:?}: must be at least 1").into()),
            Err(e) => Err(format!("{name}={v:?}: {e}").into()),
        },
        _ => Ok(default),
    }
}
