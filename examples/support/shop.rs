//! The shop: a keyed `cart` module (one actor per user) and a pool of two
//! `checkout` actors that total a user's cart by asking the cart's actor by
//! address and answering their caller later, driven by clients while `cart`
//! is hot-swapped to 2.x and back, then checked for loss.
//!
//! Shared by `examples/shop.rs` and `tests/example_shop.rs`, each including
//! it with `#[path = "support/shop.rs"] mod shop;`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use molt::cargo_build::{build, library_of, BuildRequest};
use molt::{KeyedSpec, KeyedStatus, ModuleHandle, ModuleSpec, Node, NodeConfig, ReloadOptions};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The shop's libraries, freshly built, and the directory they are in.
pub struct ShopLibraries {
    pub cart: PathBuf,
    pub cart_v2: PathBuf,
    pub checkout: PathBuf,
    pub dir: PathBuf,
}

/// Builds cart 1.x, cart 2.x and checkout with the caller's own profile
/// (cargo does nothing when they are up to date).
pub fn build_shop_libraries() -> Result<ShopLibraries, AnyError> {
    let release = !cfg!(debug_assertions);
    let packages = ["cart", "cart-v2", "checkout"];
    let built = build(&BuildRequest {
        manifest: molt::workspace_dir().join("Cargo.toml"),
        packages: packages.iter().map(|p| p.to_string()).collect(),
        release,
        target_dir: None,
        progress: false,
    })?;
    let cart = library_of(&built, "cart")?;
    let dir = cart
        .parent()
        .ok_or("the cart library has no directory")?
        .to_path_buf();
    Ok(ShopLibraries {
        cart_v2: library_of(&built, "cart-v2")?,
        checkout: library_of(&built, "checkout")?,
        cart,
        dir,
    })
}

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Params {
    /// Client tasks; client `c` owns the carts `user-<c>-<n>`.
    pub clients: usize,
    /// Carts per client.
    pub carts_per_client: usize,
    /// Adds per session: a client adds this many items to one cart, checks
    /// it out, and moves on to its next cart.
    pub checkout_every: u64,
    /// Load before the first swap and between swaps.
    pub settle: Duration,
    /// A cart's actor idle this long is passivated.
    pub idle_passivate: Duration,
}

/// What a run found: counted, never assumed.
#[derive(Debug, Default)]
pub struct Summary {
    /// Carts read back at the end.
    pub carts: usize,
    /// Adds acknowledged (their call answered `Ok`).
    pub adds: u64,
    /// Acknowledged adds missing from the final carts.
    pub lost: u64,
    /// Acknowledged adds counted more than once in the final carts.
    pub dup: u64,
    /// Lines in the final carts that no client added.
    pub unexpected: u64,
    /// Checkouts asked for.
    pub checkouts: u64,
    /// Checkouts answered with a total.
    pub answered: u64,
    /// Totals that did not count exactly the adds acknowledged before.
    pub wrong_totals: u64,
    /// Calls (adds or checkouts) that failed.
    pub failed: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Checkouts still open at a checkout actor at the end.
    pub left_open: u64,
    /// Committed swaps of `cart` (reloads and rollbacks).
    pub reloads: u64,
    /// The cart state version serving at the end.
    pub final_state: u32,
    /// The keyed counts of `cart` at the end.
    pub keyed: Option<KeyedStatus>,
}

impl Summary {
    /// Nothing lost, duplicated, invented or failed; every checkout answered
    /// with the right total; every swap committed, 2.x serving at the end.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.dup == 0
            && self.unexpected == 0
            && self.failed == 0
            && self.wrong_totals == 0
            && self.left_open == 0
            && self.answered == self.checkouts
            && self.reloads == SWAPS
            && self.final_state == 2
    }

    /// The one summary line.
    pub fn line(&self) -> String {
        format!(
            "shop: carts={} adds={} lost={} dup={} unexpected={} checkouts={} answered={} wrong_totals={} failed={} reloads={}",
            self.carts,
            self.adds,
            self.lost,
            self.dup,
            self.unexpected,
            self.checkouts,
            self.answered,
            self.wrong_totals,
            self.failed,
            self.reloads,
        )
    }
}

/// The operator's swaps of `cart` while the clients run: to 2.x (its
/// state gains a count per line), back to 1.x (down-migrated), to 2.x again.
pub const SWAPS: u64 = 3;

/// What one client did.
#[derive(Default)]
struct ClientTally {
    /// The items of each cart whose add was acknowledged.
    acked: BTreeMap<String, Vec<String>>,
    checkouts: u64,
    answered: u64,
    wrong_totals: u64,
    failed: u64,
    first_error: Option<String>,
}

impl ClientTally {
    fn fail(&mut self, what: String) {
        self.failed += 1;
        self.first_error.get_or_insert(what);
    }
}

/// Starts a node serving the shop, runs the clients while `cart` is
/// swapped [`SWAPS`] times, stops them and checks every cart.
///
/// # Errors
/// When the node does not start or a cart cannot be read back; what the
/// clients and the swaps met is counted in the [`Summary`] instead.
pub async fn run(libs: &ShopLibraries, params: &Params) -> Result<Summary, AnyError> {
    let node = Node::start(
        NodeConfig::new("shop")
            .library_dir(&libs.dir)
            .module(ModuleSpec::new("cart", &libs.cart).keyed(KeyedSpec {
                idle_passivate: params.idle_passivate,
                max_live: 100_000,
            }))
            .module(ModuleSpec::new("checkout", &libs.checkout).instances(2)),
    )
    .await?;
    let result = drive(&node, libs, params).await;
    node.shutdown().await;
    result
}

async fn drive(node: &Node, libs: &ShopLibraries, params: &Params) -> Result<Summary, AnyError> {
    let carts = node.module::<cart_proto::Proto>("cart")?;
    let checkout = node.module::<checkout_proto::Proto>("checkout")?;
    let stop = Arc::new(AtomicBool::new(false));
    let adds = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..params.clients)
        .map(|c| {
            tokio::spawn(client(
                c,
                carts.clone(),
                checkout.on_instance(c),
                params.clone(),
                stop.clone(),
                adds.clone(),
            ))
        })
        .collect();

    // The operator: swap cart while the clients run.
    let mut summary = Summary::default();
    tokio::time::sleep(params.settle).await;
    for step in 0..SWAPS {
        let (what, result) = if step % 2 == 0 {
            (
                "reload cart to 2.x",
                node.reload("cart", ReloadOptions::library(&libs.cart_v2))
                    .await,
            )
        } else {
            ("rollback cart to 1.x", node.rollback("cart", false).await)
        };
        let line = match result {
            Ok(r) => {
                summary.reloads += 1;
                format!(
                    "{what}: committed {} -> {} (state v{}), max pause {} µs",
                    r.from,
                    r.to,
                    r.state_version,
                    r.max_pause().as_micros()
                )
            }
            Err(e) => format!("{what}: FAILED: {e}"),
        };
        println!(
            "[{:>5.2}s, {:>7} adds] {line}",
            started.elapsed().as_secs_f64(),
            adds.load(Ordering::Relaxed)
        );
        tokio::time::sleep(params.settle).await;
    }
    stop.store(true, Ordering::Relaxed);

    let mut acked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for handle in clients {
        let t = handle.await?;
        acked.extend(t.acked);
        summary.checkouts += t.checkouts;
        summary.answered += t.answered;
        summary.wrong_totals += t.wrong_totals;
        summary.failed += t.failed;
        if summary.first_error.is_none() {
            summary.first_error = t.first_error;
        }
    }

    // Every acknowledged add in its cart exactly once, nothing else there.
    for (user, items) in &acked {
        summary.adds += items.len() as u64;
        let held: BTreeMap<String, u32> =
            match carts.key(user.as_str()).request(cart_proto::Items).await {
                Ok(items) => items.into_iter().collect(),
                Err(e) => return Err(format!("cart {user} cannot be read: {e}").into()),
            };
        let mine: BTreeSet<&String> = items.iter().collect();
        for item in items {
            match held.get(item) {
                None => summary.lost += 1,
                Some(&qty) => summary.dup += u64::from(qty.saturating_sub(1)),
            }
        }
        summary.unexpected += held.keys().filter(|k| !mine.contains(k)).count() as u64;
    }
    summary.carts = acked.len();
    if let Some(user) = acked.keys().next() {
        let (_, state) = carts
            .key(user.as_str())
            .request(cart_proto::Version)
            .await?;
        summary.final_state = state;
    }
    for i in 0..checkout.instances() {
        let open = checkout
            .on_instance(i)
            .request(checkout_proto::Open)
            .await?;
        summary.left_open += u64::from(open);
    }
    summary.keyed = node
        .admin()
        .status()
        .await?
        .modules
        .into_iter()
        .find(|m| m.name == "cart")
        .and_then(|m| m.keyed);
    Ok(summary)
}

/// One client: shops in sessions, one cart after the other: adds
/// `checkout_every` fresh items to a cart (a call each, so every add is
/// acknowledged or fails), then checks that cart out: the total must count
/// exactly the adds acknowledged so far (only this client writes its carts).
/// A cart idle while the others are served may passivate in between.
async fn client(
    c: usize,
    carts: ModuleHandle<cart_proto::Proto>,
    checkout: ModuleHandle<checkout_proto::Proto>,
    params: Params,
    stop: Arc<AtomicBool>,
    adds: Arc<AtomicU64>,
) -> ClientTally {
    let mut t = ClientTally::default();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let session = n / params.checkout_every;
        let user = format!("user-{c}-{}", session % params.carts_per_client as u64);
        let item = format!("item-{c}-{n}");
        n += 1;
        let add = cart_proto::Add {
            item: item.clone(),
            qty: 1,
        };
        match carts.key(user.as_str()).request(add).await {
            Ok(()) => {
                t.acked.entry(user.clone()).or_default().push(item);
                adds.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => t.fail(format!("add to {user}: {e}")),
        }
        if n % params.checkout_every != 0 {
            continue;
        }
        t.checkouts += 1;
        let expected = t.acked.get(&user).map_or(0, |items| items.len());
        match checkout
            .request(checkout_proto::Checkout { user: user.clone() })
            .await
        {
            Ok(checkout_proto::Total { lines, units, .. }) => {
                t.answered += 1;
                if lines as usize != expected || units != expected as u64 {
                    t.wrong_totals += 1;
                    t.first_error.get_or_insert(format!(
                        "checkout {user}: {lines} lines, {units} units; {expected} adds acknowledged"
                    ));
                }
            }
            Err(e) => t.fail(format!("checkout {user}: {e}")),
        }
    }
    t
}
