//! molt nodes in a cluster (`[cluster]`; README "Cluster", docs/semantics.md
//! "Cluster membership"). ractor_cluster carries the bytes, authenticates
//! peers with the shared cookie and shares process groups; molt adds what
//! it lacks: a failure detector ([`heartbeat`]), reconnection with backoff
//! ([`connect`]), an incarnation per start ([`incarnation`]) and the
//! membership view every node converges to ([`membership`]).
//!
//! Only with molt-runtime's `cluster` feature; without it the status types
//! are still here and a config with `[cluster]` is refused at start.

#[cfg(feature = "cluster")]
mod connect;
#[cfg(feature = "cluster")]
mod heartbeat;
#[cfg(feature = "cluster")]
mod inbox;
#[cfg(feature = "cluster")]
pub(crate) mod remote;
#[cfg(feature = "cluster")]
mod wire;
// Without the feature only the view's status (always empty) is used.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) mod incarnation;
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) mod membership;

pub use membership::{ClusterStatus, MemberStatus, ModuleVersion};

use crate::admin::Admin;
use crate::config::ClusterSpec;
use crate::directory::Directory;
use crate::error::Error;
use crate::events::EventBus;
use membership::ClusterView;

/// The cookie of nodes that listen on loopback and set none: any process
/// of the machine can join such a cluster (as it can reach the admin
/// surface's reads); a cookie keeps them out.
#[cfg(feature = "cluster")]
const LOOPBACK_COOKIE: &str = "molt-loopback-cluster";

/// The cookie in force: `cookie`, else `cookie_file`'s content (trimmed),
/// else the loopback default (a non-loopback listen without a cookie was
/// refused by the config check).
///
/// # Errors
/// [`Error::Config`] naming the cookie file when it cannot be read, group
/// or others may read it (the cookie lets a process join the cluster), or
/// it is empty.
#[cfg(feature = "cluster")]
fn cookie(spec: &ClusterSpec) -> Result<String, Error> {
    if let Some(c) = &spec.cookie {
        return Ok(c.trim().to_string());
    }
    let Some(file) = &spec.cookie_file else {
        return Ok(LOOPBACK_COOKIE.to_string());
    };
    let what = format!("the cluster cookie file {}", file.display());
    let text = crate::regular_file::read_private(file)
        .map_err(|e| Error::Config(format!("cluster.cookie_file: {}", e.describe(&what, file))))?;
    let cookie = text.trim();
    if cookie.is_empty() {
        return Err(Error::Config(format!(
            "cluster.cookie_file: {} is empty",
            file.display()
        )));
    }
    Ok(cookie.to_string())
}

/// A node's part in its cluster: the ractor_cluster node server (listener
/// and peer sessions), the heartbeat actor, the connector task. Stopped
/// with the node.
#[cfg(feature = "cluster")]
pub(crate) struct Cluster {
    server: ractor::ActorRef<ractor_cluster::NodeServerMessage>,
    heartbeat: ractor::ActorRef<heartbeat::BeatMsg>,
    /// This node's rollout agent (README "Rolling out a new version").
    agent: ractor::ActorRef<crate::rollout::wire::AgentMsg>,
    /// Takes the messages peers send to this node's actors (and the
    /// acknowledgements of this node's own).
    inbox: ractor::ActorRef<inbox::InboxMsg>,
    /// Hands the batches of messages to peers over.
    flusher: tokio::task::JoinHandle<()>,
    connector: tokio::task::JoinHandle<()>,
    view: ClusterView,
    node: String,
}

/// Without the `cluster` feature there is never one.
#[cfg(not(feature = "cluster"))]
pub(crate) struct Cluster(std::convert::Infallible);

#[cfg(feature = "cluster")]
impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server.get_id())
            .finish_non_exhaustive()
    }
}

#[cfg(not(feature = "cluster"))]
impl std::fmt::Debug for Cluster {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {}
    }
}

/// Joins the cluster `spec` describes as node `node`: listens on
/// `spec.listen` (never on every interface unless told), connects to the
/// seeds, starts the heartbeats and the inbox that delivers what peers
/// send into `directory`'s actors; `view` starts with this node and a new
/// incarnation, and its changes are published on `bus`.
///
/// # Errors
/// [`Error::Config`] for settings [`ClusterSpec::check`] refuses, a cookie
/// file that cannot be read, or a listen address that cannot be bound
/// (named).
#[cfg(feature = "cluster")]
pub(crate) async fn start(
    spec: &ClusterSpec,
    node: &str,
    view: ClusterView,
    admin: Admin,
    bus: EventBus,
    rollout: &crate::config::RolloutSpec,
    directory: Directory,
) -> Result<Cluster, Error> {
    use ractor::Actor;
    use ractor_cluster::node::NodeConnectionMode;

    spec.check()
        .map_err(|(key, why)| Error::Config(format!("cluster.{key}: {why}")))?;
    let cookie = cookie(spec)?;
    // ractor_cluster binds in its listener actor and reports a failure as
    // a panic in its start: bind once here first for a plain cause.
    drop(std::net::TcpListener::bind(spec.listen).map_err(|e| {
        Error::Config(format!(
            "cluster.listen: cannot listen on {}: {e}",
            spec.listen
        ))
    })?);
    let ip = spec.listen.ip();
    // ractor_cluster gives peers "HOST:PORT" to connect to (transitive
    // connections) and shows it in its sessions: the listen address.
    let host = match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let server = ractor_cluster::NodeServer::new(
        spec.listen.port(),
        cookie,
        node.to_string(),
        host,
        None,
        Some(NodeConnectionMode::Transitive),
    )
    .with_listen_addr(ip);
    let (server, _) = Actor::spawn(None, server, ()).await.map_err(|e| {
        Error::Config(format!(
            "cluster.listen: cannot listen on {}: {e}",
            spec.listen
        ))
    })?;
    let me = membership::Me {
        node: node.to_string(),
        address: spec.listen.to_string(),
        incarnation: incarnation::Incarnation::new(),
    };
    tracing::info!(target: "molt::cluster", listen = %spec.listen, incarnation = %me.incarnation, seeds = ?spec.seeds, "joining the cluster");
    let incarnation = me.incarnation.0;
    view.start(membership::View::new(
        me,
        spec.unreachable_after,
        spec.forget_after,
    ));
    let agent_args = crate::rollout::agent::AgentArgs {
        node: node.to_string(),
        admin: admin.clone(),
        bus: bus.clone(),
        view: view.clone(),
        spec: rollout.clone(),
    };
    let (outbound, flushes) = remote::Outbound::new(
        node,
        incarnation,
        view.clone(),
        spec.max_in_flight,
        bus.clone(),
    );
    let outbound = std::sync::Arc::new(outbound);
    let inbox_args = inbox::InboxArgs {
        node: node.to_string(),
        directory,
        outbound: outbound.clone(),
        bus: bus.clone(),
    };
    let inbox = match Actor::spawn(None, inbox::Inbox, inbox_args).await {
        Ok((i, _)) => i,
        Err(e) => {
            server.kill();
            view.clear();
            return Err(Error::Spawn(format!("the cluster inbox: {e}")));
        }
    };
    let flusher = tokio::spawn(remote::flush_batches(outbound.clone(), flushes));
    remote::register(outbound);
    let args = heartbeat::HeartbeatArgs {
        view: view.clone(),
        interval: spec.heartbeat_interval,
        unreachable_after: spec.unreachable_after,
        server: server.clone(),
        admin,
        bus,
    };
    let heartbeat = match Actor::spawn(None, heartbeat::Heartbeat, args).await {
        Ok((h, _)) => h,
        Err(e) => {
            remote::unregister(node);
            flusher.abort();
            inbox.stop(None);
            server.kill();
            view.clear();
            return Err(Error::Spawn(format!("the cluster heartbeat: {e}")));
        }
    };
    let agent = match crate::rollout::agent::start(agent_args).await {
        Ok(a) => a,
        Err(e) => {
            heartbeat.stop(None);
            remote::unregister(node);
            flusher.abort();
            inbox.stop(None);
            server.kill();
            view.clear();
            return Err(e);
        }
    };
    let connector = tokio::spawn(connect::keep_connected(
        server.clone(),
        spec.listen,
        spec.seeds.clone(),
        view.clone(),
        spec.heartbeat_interval
            .max(std::time::Duration::from_millis(50)),
    ));
    Ok(Cluster {
        server,
        heartbeat,
        agent,
        inbox,
        flusher,
        connector,
        view,
        node: node.to_string(),
    })
}

/// Without the `cluster` feature: refused.
///
/// # Errors
/// Always [`Error::Config`], saying how to get cluster support.
#[cfg(not(feature = "cluster"))]
pub(crate) async fn start(
    _spec: &ClusterSpec,
    _node: &str,
    _view: ClusterView,
    _admin: Admin,
    _bus: EventBus,
    _rollout: &crate::config::RolloutSpec,
    _directory: Directory,
) -> Result<Cluster, Error> {
    Err(Error::Config(
        "[cluster]: this build of molt has no cluster support (molt-runtime's cargo feature `cluster`, on by default in the molt package)".into(),
    ))
}

impl Cluster {
    /// Leaves the cluster: stops connecting, stops the heartbeats (peers
    /// mark this node unreachable), closes the listener and the sessions.
    pub(crate) fn stop(self) {
        #[cfg(feature = "cluster")]
        {
            self.connector.abort();
            self.agent.stop(None);
            self.heartbeat.stop(None);
            remote::unregister(&self.node);
            self.flusher.abort();
            self.inbox.stop(None);
            // The listener waits in accept(): a stop message would wait
            // behind it.
            self.server.kill();
            self.view.clear();
        }
        #[cfg(not(feature = "cluster"))]
        match self.0 {}
    }
}

#[cfg(all(test, feature = "cluster"))]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_comes_from_the_config_or_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cluster.cookie");
        let with_file = ClusterSpec {
            cookie_file: Some(file.clone()),
            ..ClusterSpec::default()
        };
        let e = cookie(&with_file).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "cluster.cookie_file: cannot read the cluster cookie file {}",
                file.display()
            )),
            "{e}"
        );
        std::fs::write(&file, "  \n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
            let e = cookie(&with_file).unwrap_err().to_string();
            assert!(
                e.contains("can be read by group or others (mode 640)")
                    && e.contains(&format!("chmod 600 {}", file.display())),
                "{e}"
            );
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let e = cookie(&with_file).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(cookie(&with_file).unwrap(), "s3cret");
        let inline = ClusterSpec {
            cookie: Some("inline".into()),
            ..ClusterSpec::default()
        };
        assert_eq!(cookie(&inline).unwrap(), "inline");
        assert_eq!(cookie(&ClusterSpec::default()).unwrap(), LOOPBACK_COOKIE);
    }
}
