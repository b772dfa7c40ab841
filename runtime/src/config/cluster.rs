//! The `[cluster]` settings: where this node listens for its peers, which
//! peers it first connects to, the cookie they share, and the failure
//! detector's timing (docs/semantics.md "Cluster membership").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A node in a cluster (`[cluster]` in the config file). Without it the
/// node runs alone, as a single node.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSpec {
    /// Where this node listens for its peers, `ip:port` (never `[::]`
    /// unless given): loopback by default. A non-loopback address needs a
    /// cookie. It is also the address this node gives its peers, so it must
    /// be one they can reach (not `0.0.0.0`, not port 0).
    pub listen: SocketAddr,
    /// Peers to connect to at start, `host:port` each (their `listen`).
    /// The node connects to every peer they know of (a full mesh), and
    /// reconnects with backoff when a connection breaks.
    pub seeds: Vec<String>,
    /// The secret the nodes share: a node with another cookie does not
    /// join. Prefer `cookie_file`.
    pub cookie: Option<String>,
    /// A file holding the cookie (its content, trimmed), readable by its
    /// owner only (mode 0600 or 0400: refused at start otherwise).
    pub cookie_file: Option<PathBuf>,
    /// How often this node tells each peer it is alive.
    #[serde(with = "super::millis")]
    pub heartbeat_interval: Duration,
    /// How long without hearing from a peer before it is marked
    /// unreachable (dead, frozen or cut off: all look the same).
    #[serde(with = "super::millis")]
    pub unreachable_after: Duration,
    /// How long a peer stays marked unreachable before this node forgets
    /// it: no longer a member (a rollout no longer waits for it), no longer
    /// reconnected to (unless a seed). Heard again, it joins anew. Zero:
    /// never forget.
    #[serde(with = "super::millis")]
    pub forget_after: Duration,
    /// How many messages to one peer may be sent and not yet acknowledged:
    /// past it, a send to that peer fails (the sender sees it), which
    /// bounds what queues towards a frozen peer.
    pub max_in_flight: u64,
}

/// The cookie is never shown (a config is logged and printed with `{:?}`).
impl std::fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSpec")
            .field("listen", &self.listen)
            .field("seeds", &self.seeds)
            .field("cookie", &self.cookie.as_ref().map(|_| "<hidden>"))
            .field("cookie_file", &self.cookie_file)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("unreachable_after", &self.unreachable_after)
            .field("forget_after", &self.forget_after)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

/// The port of the default `listen`: next to the admin
/// surface's 7878.
pub const DEFAULT_PORT: u16 = 7879;

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            seeds: Vec::new(),
            cookie: None,
            cookie_file: None,
            heartbeat_interval: Duration::from_millis(200),
            unreachable_after: Duration::from_secs(2),
            forget_after: Duration::from_secs(300),
            max_in_flight: 10_000,
        }
    }
}

impl ClusterSpec {
    /// What is wrong with these settings, if anything: `(key, why)`, the
    /// key under `cluster.`.
    ///
    /// # Errors
    /// A non-loopback or unspecified (`0.0.0.0`, `[::]`) `listen` without
    /// a cookie, port 0, both `cookie` and `cookie_file`, an empty cookie,
    /// a seed that is not `host:port`, a `max_in_flight` of 0, a heartbeat
    /// interval of 0, or an
    /// unreachable timeout not longer than two heartbeats.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let ip = self.listen.ip();
        if self.listen.port() == 0 {
            return Err((
                "listen",
                format!(
                    "{}: port 0 cannot be given to peers; choose a port (e.g. {DEFAULT_PORT})",
                    self.listen
                ),
            ));
        }
        if ip.is_unspecified() {
            return Err((
                "listen",
                format!(
                    "{}: listen on the address peers reach this node at, not on every interface",
                    self.listen
                ),
            ));
        }
        match (&self.cookie, &self.cookie_file) {
            (Some(_), Some(_)) => {
                return Err((
                    "cookie",
                    "give `cookie` or `cookie_file`, not both".to_string(),
                ))
            }
            (Some(c), None) if c.trim().is_empty() => {
                return Err(("cookie", "the cookie is empty".to_string()))
            }
            (None, None) if !ip.is_loopback() => {
                return Err((
                    "listen",
                    format!(
                        "{} is not a loopback address: set cluster.cookie_file (or cluster.cookie) so that only nodes sharing it can join",
                        self.listen
                    ),
                ))
            }
            _ => {}
        }
        for seed in &self.seeds {
            if let Err(why) = seed_port(seed) {
                return Err(("seeds", format!("{seed:?}: {why}")));
            }
        }
        if self.max_in_flight == 0 {
            return Err((
                "max_in_flight",
                "must be at least 1 (every send to another node would fail)".to_string(),
            ));
        }
        if self.heartbeat_interval.is_zero() {
            return Err(("heartbeat_interval_ms", "must be at least 1".to_string()));
        }
        if self.unreachable_after < self.heartbeat_interval * 2 {
            return Err((
                "unreachable_after_ms",
                format!(
                    "must be at least two heartbeats ({} ms), or a peer is marked unreachable between two of its heartbeats",
                    (self.heartbeat_interval * 2).as_millis()
                ),
            ));
        }
        Ok(())
    }
}

/// The port of a `host:port` seed.
fn seed_port(seed: &str) -> Result<u16, String> {
    let Some((host, port)) = seed.rsplit_once(':') else {
        return Err("expected host:port".into());
    };
    if host.trim().is_empty() {
        return Err("expected host:port (the host is empty)".into());
    }
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 is no peer's port".into()),
        Ok(p) => Ok(p),
        Err(_) => Err(format!("{port:?} is not a port (expected host:port)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(listen: &str) -> ClusterSpec {
        ClusterSpec {
            listen: listen.parse().unwrap(),
            ..ClusterSpec::default()
        }
    }

    #[test]
    fn a_non_loopback_listener_needs_a_cookie() {
        let (key, why) = spec("10.0.0.1:7879").check().unwrap_err();
        assert_eq!(key, "listen");
        assert!(why.contains("cookie_file"), "{why}");
        let with = ClusterSpec {
            cookie_file: Some("/etc/molt/cookie".into()),
            ..spec("10.0.0.1:7879")
        };
        assert_eq!(with.check(), Ok(()));
        assert_eq!(spec("127.0.0.1:7879").check(), Ok(()));
        assert_eq!(spec("[::1]:7879").check(), Ok(()));
        assert_eq!(spec("0.0.0.0:7879").check().unwrap_err().0, "listen");
        assert_eq!(spec("127.0.0.1:0").check().unwrap_err().0, "listen");
    }

    #[test]
    fn a_cluster_change_needs_a_restart() {
        let alone = crate::config::NodeConfig::new("n");
        let joined = crate::config::NodeConfig {
            cluster: Some(ClusterSpec::default()),
            ..alone.clone()
        };
        let moved = crate::config::NodeConfig {
            cluster: Some(spec("127.0.0.1:7001")),
            ..alone.clone()
        };
        for (from, to) in [(&alone, &joined), (&joined, &alone), (&joined, &moved)] {
            let plan = crate::config::diff::plan(from, to);
            assert_eq!(plan.restart_keys, ["cluster"]);
            assert!(!plan.is_applicable());
        }
        assert!(crate::config::diff::plan(&joined, &joined.clone()).is_applicable());
    }

    #[test]
    fn the_cookie_is_never_shown() {
        let s = ClusterSpec {
            cookie: Some("s3cret".into()),
            ..ClusterSpec::default()
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("<hidden>"),
            "{shown}"
        );
    }

    #[test]
    fn seeds_and_timing_are_checked() {
        for bad in ["nohost", ":7879", "a:b", "a:0", "a:70000"] {
            let s = ClusterSpec {
                seeds: vec![bad.into()],
                ..ClusterSpec::default()
            };
            assert_eq!(s.check().unwrap_err().0, "seeds", "{bad}");
        }
        let ok = ClusterSpec {
            seeds: vec!["node-b.internal:7879".into(), "[::1]:7001".into()],
            ..ClusterSpec::default()
        };
        assert_eq!(ok.check(), Ok(()));
        let tight = ClusterSpec {
            unreachable_after: Duration::from_millis(300),
            ..ClusterSpec::default()
        };
        assert_eq!(tight.check().unwrap_err().0, "unreachable_after_ms");
        let none_in_flight = ClusterSpec {
            max_in_flight: 0,
            ..ClusterSpec::default()
        };
        assert_eq!(none_in_flight.check().unwrap_err().0, "max_in_flight");
    }
}
