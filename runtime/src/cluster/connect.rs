//! Keeping connected: to the seeds and to every peer the view knows of,
//! reconnecting with backoff when a connection breaks (ractor_cluster
//! never reconnects by itself). ractor_cluster's transitive mode connects
//! to a new peer's peers too, which makes the mesh full.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;

use super::membership::ClusterView;

/// The first wait before connecting again to an address that refused or
/// dropped a connection; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to one address.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long one connection attempt (TCP connect) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a seed's host name resolution is kept.
const RESOLVED_FOR: Duration = Duration::from_secs(30);
/// Connections in a row to one address that open but bring no session up
/// before it is worth a warning (the peer refuses this node).
const REFUSED_AFTER: u32 = 3;

/// One address to keep connected to.
#[derive(Debug)]
struct Target {
    resolved: Vec<SocketAddr>,
    resolved_at: Option<Instant>,
    next_try: Instant,
    backoff: Duration,
    /// Connections opened since a session last ran with this address.
    opened_in_vain: u32,
}

/// Runs until aborted: every `every`, connects to the seeds and known
/// peers that have no session, each at most once per its backoff.
pub(crate) async fn keep_connected(
    server: ActorRef<NodeServerMessage>,
    me: SocketAddr,
    seeds: Vec<String>,
    view: ClusterView,
    every: Duration,
) {
    let mut targets: HashMap<String, Target> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let connected = sessions(&server).await;
        let mut wanted: Vec<String> = seeds.clone();
        wanted.extend(view.with(|v| v.addresses()).unwrap_or_default());
        let now = Instant::now();
        for address in wanted {
            let target = targets.entry(address.clone()).or_insert(Target {
                resolved: Vec::new(),
                resolved_at: None,
                next_try: now,
                backoff: MIN_BACKOFF,
                opened_in_vain: 0,
            });
            if target.resolved_at.is_none_or(|at| now - at > RESOLVED_FOR) {
                target.resolved = resolve(&address).await;
                target.resolved_at = (!target.resolved.is_empty()).then_some(now);
            }
            if target.resolved.contains(&me) {
                continue; // this node (a seed list shared by all nodes)
            }
            if target.resolved.iter().any(|a| connected.contains(a)) {
                target.backoff = MIN_BACKOFF;
                target.opened_in_vain = 0;
                continue;
            }
            if now < target.next_try {
                continue;
            }
            target.next_try = now + target.backoff;
            target.backoff = (target.backoff * 2).min(MAX_BACKOFF);
            let Some(&addr) = target.resolved.first() else {
                tracing::debug!(target: "molt::cluster", %address, "cannot resolve the peer's address; retrying");
                continue;
            };
            match tokio::time::timeout(
                CONNECT_TIMEOUT,
                ractor_cluster::client_connect(&server, addr),
            )
            .await
            {
                Ok(Ok(())) => {
                    target.opened_in_vain += 1;
                    if target.opened_in_vain == REFUSED_AFTER {
                        tracing::warn!(target: "molt::cluster", %address, "connections to this peer open but never become a session: it refuses this node (another cookie? a node name used twice?); still retrying");
                    } else {
                        tracing::debug!(target: "molt::cluster", %address, "connected");
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(target: "molt::cluster", %address, error = %e, "cannot connect; retrying with backoff")
                }
                Err(_) => {
                    tracing::debug!(target: "molt::cluster", %address, "connecting timed out; retrying with backoff")
                }
            }
        }
    }
}

/// The listen addresses of the peers with an authenticated session.
async fn sessions(server: &ActorRef<NodeServerMessage>) -> HashSet<SocketAddr> {
    match ractor::call_t!(server, NodeServerMessage::GetSessions, 1000) {
        Ok(sessions) => sessions
            .into_values()
            .filter_map(|s| s.peer_name?.connection_string.parse().ok())
            .collect(),
        Err(_) => HashSet::new(),
    }
}

/// A `host:port`'s socket addresses (none when it does not resolve now).
async fn resolve(address: &str) -> Vec<SocketAddr> {
    if let Ok(a) = address.parse() {
        return vec![a];
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(address)).await {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => Vec::new(),
    }
}
