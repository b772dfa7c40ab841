//! The rollout tests' cluster (docs/semantics.md "Rollouts"): three real
//! `molt` processes running the `fault` fixture, traffic from the test
//! through each node's `POST /modules/fault/cast` with per-sender sequence
//! numbers the module records (`Seq`, read back with `Seqs`), and
//! `molt rollout` run as an operator would.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use molt::http::AdminClient;

use super::cluster::{all_reachable, ClusterNode, JOINED_WITHIN};
use super::event_feed::EventFeed;
use super::{fixtures, MoltProcess};

/// The `[rollout]` table of the test nodes: short bounds, so that a
/// frozen node's rollback gives up quickly and a lost coordinator's
/// lease runs out quickly.
pub const ROLLOUT: &str = "[rollout]\nrequest_timeout_ms = 3000\nlease_ms = 3000\n";

/// How long a whole `molt rollout` may take on a loaded machine.
pub const ROLLOUT_WITHIN: Duration = Duration::from_secs(90);

/// Three nodes a, b, c (b and c seeded with a) running `fault` 1.0.0 with
/// these config lines, started and all reachable from each other.
pub fn three_nodes(dir: &Path, fault_config: &str) -> Vec<ClusterNode> {
    let f = fixtures();
    let a = ClusterNode::running(
        dir,
        "a",
        ("fault", &f.fault, fault_config),
        &[],
        "",
        ROLLOUT,
    );
    let seed = [a.listen];
    let b = ClusterNode::running(
        dir,
        "b",
        ("fault", &f.fault, fault_config),
        &seed,
        "",
        ROLLOUT,
    );
    let c = ClusterNode::running(
        dir,
        "c",
        ("fault", &f.fault, fault_config),
        &seed,
        "",
        ROLLOUT,
    );
    let mut nodes = vec![a, b, c];
    for n in &mut nodes {
        n.start();
    }
    for n in &nodes {
        n.await_view("a, b and c reachable", JOINED_WITHIN, |v| {
            all_reachable(v, &["a", "b", "c"])
        });
    }
    nodes
}

/// A test's traffic: one sender per node, casting `Seq` messages with
/// numbers from 0, one after the other, until stopped (or its node stops
/// answering).
pub struct Traffic {
    stop: Arc<AtomicBool>,
    senders: Vec<std::thread::JoinHandle<Sent>>,
}

/// What one sender sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its node.
    pub node: String,
    /// The sender's name (`to-NODE`).
    pub sender: String,
    /// How many casts the node accepted (202): numbers 0..count.
    pub count: u64,
    /// The error that stopped it early, if any.
    pub error: Option<String>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

impl Traffic {
    /// Starts a sender for each node (a cast, then 2 ms, then the next).
    pub fn start(nodes: &[ClusterNode]) -> Traffic {
        Traffic::paced(nodes, Duration::from_millis(2))
    }

    /// Starts a sender for each node that waits `pause` after each cast:
    /// a version that handles a message in more than the time between
    /// casts builds a backlog its rollback waits behind (a rollback, like
    /// any reload, comes after what was queued before it).
    pub fn paced(nodes: &[ClusterNode], pause: Duration) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let senders = nodes
            .iter()
            .map(|n| {
                let (node, admin, token) = (n.name.clone(), n.admin.unwrap(), n.token());
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let sender = format!("to-{node}");
                    let (count, error) =
                        runtime().block_on(send(admin, token, &sender, &stop, pause));
                    Sent {
                        node,
                        sender,
                        count,
                        error,
                    }
                })
            })
            .collect();
        Traffic { stop, senders }
    }

    /// Stops every sender: what each sent.
    pub fn stop(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        self.senders
            .into_iter()
            .map(|s| s.join().expect("a sender"))
            .collect()
    }
}

async fn send(
    admin: SocketAddr,
    token: String,
    sender: &str,
    stop: &AtomicBool,
    pause: Duration,
) -> (u64, Option<String>) {
    let client = AdminClient::for_addr(admin, Some(token)).expect("a client");
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let msg = serde_json::json!({ "Seq": { "sender": sender, "seq": seq } });
        let cast = tokio::time::timeout(
            Duration::from_secs(10),
            client.cast("fault", &msg, None::<usize>),
        );
        match cast.await {
            Ok(Ok(_)) => seq += 1,
            Ok(Err(e)) => return (seq, Some(e.to_string())),
            Err(_) => return (seq, Some("no answer within 10 s".into())),
        }
        tokio::time::sleep(pause).await;
    }
    (seq, None)
}

/// Node `node`'s record of each sender (`Seqs`): sender → (count, last,
/// out of order).
pub fn seqs(node: &ClusterNode) -> serde_json::Value {
    let client = AdminClient::for_addr(node.admin.unwrap(), Some(node.token())).unwrap();
    let reply = runtime()
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                client.call("fault", &serde_json::json!("Seqs"), None::<usize>),
            )
            .await
        })
        .unwrap_or_else(|_| panic!("{}: Seqs not answered within 10 s", node.name))
        .unwrap_or_else(|e| panic!("{}: Seqs: {e}", node.name));
    reply["Seqs"].clone()
}

/// Waits (within a minute) until each of `nodes` handled `more` messages
/// of its sender (`to-NODE`) beyond what it had handled when called: the
/// traffic reaches the module, and it keeps reaching it.
pub fn await_handled_more(nodes: &[ClusterNode], more: u64) {
    let count = |n: &ClusterNode| {
        seqs(n)[format!("to-{}", n.name)]["count"]
            .as_u64()
            .unwrap_or(0)
    };
    let wanted: Vec<u64> = nodes.iter().map(|n| count(n) + more).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (node, wanted) in nodes.iter().zip(wanted) {
        loop {
            let now = count(node);
            if now >= wanted {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {now} of {wanted} messages handled after a minute",
                node.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Asserts that `node` handled every message `sent` to it, in order:
/// its record of the sender shows `count` messages, the last numbered
/// `count - 1`, none out of order (waiting, within a bound, for what is
/// still queued).
pub fn assert_all_handled_in_order(node: &ClusterNode, sent: &Sent) {
    assert!(sent.count > 0, "{} got no traffic: {sent:?}", node.name);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = seqs(node);
        let r = &all[&sent.sender];
        if r["count"].as_u64() == Some(sent.count) {
            assert_eq!(
                r["last"].as_u64(),
                Some(sent.count - 1),
                "{}: {r}",
                node.name
            );
            assert_eq!(
                r["out_of_order"].as_u64(),
                Some(0),
                "{}: messages of {} out of order: {r}",
                node.name,
                sent.sender
            );
            return;
        }
        assert!(
            r["count"].as_u64().unwrap_or(0) < sent.count,
            "{}: more handled than sent (duplicates): {r} vs {sent:?}",
            node.name
        );
        assert!(
            Instant::now() < deadline,
            "{}: {} of {} message(s) handled: {r}",
            node.name,
            r["count"],
            sent.count
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `molt rollout fault --library LIBRARY` against node `at` with
/// these extra arguments (killed when dropped).
pub fn start_rollout(at: &ClusterNode, dir: &Path, library: &Path, args: &[&str]) -> MoltProcess {
    start_rollout_of("fault", at, dir, library, args)
}

/// [`start_rollout`] of `module`.
pub fn start_rollout_of(
    module: &str,
    at: &ClusterNode,
    dir: &Path,
    library: &Path,
    args: &[&str],
) -> MoltProcess {
    let admin = at.admin.unwrap().to_string();
    let mut all = vec![
        "rollout",
        module,
        "--library",
        library.to_str().unwrap(),
        "--addr",
        &admin,
    ];
    all.extend_from_slice(args);
    MoltProcess::start(&all, dir)
}

/// Runs `molt rollout fault --library LIBRARY` against node `at` with
/// these extra arguments to its end (within [`ROLLOUT_WITHIN`]): its exit
/// status and what it printed.
pub fn run_rollout(
    at: &ClusterNode,
    dir: &Path,
    library: &Path,
    args: &[&str],
) -> (std::process::ExitStatus, String) {
    run_rollout_of("fault", at, dir, library, args)
}

/// [`run_rollout`] of `module`.
pub fn run_rollout_of(
    module: &str,
    at: &ClusterNode,
    dir: &Path,
    library: &Path,
    args: &[&str],
) -> (std::process::ExitStatus, String) {
    let mut cli = start_rollout_of(module, at, dir, library, args);
    let status = cli
        .wait_exit(ROLLOUT_WITHIN)
        .unwrap_or_else(|| panic!("molt rollout still runs:\n{}", cli.output()));
    (status, cli.output())
}

/// The node's history (`GET /history`) as JSON.
pub fn history(node: &ClusterNode) -> Vec<serde_json::Value> {
    let (code, body) = super::http_get(node.admin.unwrap(), "/history", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{}: GET /history not answered", node.name));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The code version `node` serves its `fault` module with (`GET
/// /modules/fault`).
pub fn version(node: &ClusterNode) -> String {
    let (code, body) = super::http_get(
        node.admin.unwrap(),
        "/modules/fault",
        Duration::from_secs(10),
    )
    .unwrap_or_else(|| panic!("{}: GET /modules/fault not answered", node.name));
    assert_eq!(code, 200, "{body}");
    let m: serde_json::Value = serde_json::from_str(&body).unwrap();
    m["code_version"].as_str().unwrap().to_string()
}

/// Waits (within [`ROLLOUT_WITHIN`]) until `feed` saw the `rollout.wave`
/// of `nodes` (e.g. `["b"]`), while the running `molt rollout` `cli` has
/// not exited.
pub fn await_wave(feed: &EventFeed, cli: &mut MoltProcess, nodes: &[&str]) {
    let wanted = serde_json::json!(nodes);
    let deadline = Instant::now() + ROLLOUT_WITHIN;
    while !feed
        .seen()
        .iter()
        .any(|e| e.kind == "rollout.wave" && e.data["nodes"] == wanted)
    {
        if let Some(status) = cli.wait_exit(Duration::from_millis(20)) {
            panic!(
                "molt rollout exited ({status}) before the wave {nodes:?}:\n{}\nevents: {:#?}",
                cli.output(),
                feed.seen()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no wave {nodes:?} within {ROLLOUT_WITHIN:?}:\n{}\nevents: {:#?}",
            cli.output(),
            feed.seen()
        );
    }
}
