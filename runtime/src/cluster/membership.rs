//! The membership view: who is in the cluster as this node sees it, each
//! member's address, incarnation, reachability, when it was last heard
//! from and which module versions it runs (docs/semantics.md "Cluster
//! membership"). Plain data: the heartbeats write it, the admin surfaces
//! read it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::incarnation::Incarnation;
use crate::events::Event;

/// The cluster as one node sees it: `molt status --cluster`, `GET /cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The node answering.
    pub node: String,
    /// Every member it knows of, itself included, by node name.
    pub members: Vec<MemberStatus>,
}

impl ClusterStatus {
    /// The member named `node`.
    pub fn member(&self, node: &str) -> Option<&MemberStatus> {
        self.members.iter().find(|m| m.node == node)
    }
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Its node name (`node.name`).
    pub node: String,
    /// Where it listens for its peers (its `cluster.listen`).
    pub address: String,
    /// Its incarnation: drawn at each start, so a restarted node shows a
    /// new one.
    pub incarnation: String,
    /// Whether it was heard from within `cluster.unreachable_after_ms`.
    pub reachable: bool,
    /// Whether it is the node answering.
    pub this_node: bool,
    /// Milliseconds since it was last heard from (absent for the node
    /// answering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heard_ms: Option<u64>,
    /// Its modules and the versions they run, as it last reported them.
    pub modules: Vec<ModuleVersion>,
}

/// A module and the version it runs on a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleVersion {
    /// The module.
    pub name: String,
    /// Its serving code version.
    pub code_version: String,
    /// Its serving state version.
    pub state_version: u32,
}

/// What a node tells its peers at each heartbeat (the wire format, msgpack).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Beat {
    pub node: String,
    pub address: String,
    pub incarnation: Incarnation,
    pub modules: Vec<ModuleVersion>,
}

/// The view, shared by the heartbeat actor (which updates it) and the
/// supervisor (which answers the admin request with it). Empty when the
/// node is not in a cluster.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterView(Arc<Mutex<Option<View>>>);

impl ClusterView {
    /// The node has joined a cluster: its view starts with itself.
    pub(crate) fn start(&self, view: View) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(view);
    }

    /// The node left its cluster (shutdown).
    pub(crate) fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Runs `f` on the view; `None` when the node is not in a cluster.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut View) -> R) -> Option<R> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .map(f)
    }

    /// The status, with this node's own modules as given; `None` when the
    /// node is not in a cluster.
    pub(crate) fn status(&self, own_modules: Vec<ModuleVersion>) -> Option<ClusterStatus> {
        self.with(|v| v.status(own_modules, Instant::now()))
    }
}

/// This node, as its peers know it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Me {
    pub node: String,
    pub address: String,
    pub incarnation: Incarnation,
}

#[derive(Debug)]
struct Peer {
    address: String,
    incarnation: Incarnation,
    last_heard: Instant,
    reachable: bool,
    /// When it was marked unreachable (cleared when heard again).
    unreachable_since: Option<Instant>,
    modules: Vec<ModuleVersion>,
    /// Its incarnations before this one: a late heartbeat of one is
    /// ignored (a few, newest last).
    retired: Vec<Incarnation>,
}

/// A change of the view, about one peer: what a `cluster.member_*` event
/// reports (docs/semantics.md "Cluster membership"). Each change is
/// returned once, by the call that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The peer's node name.
    pub node: String,
    /// Its cluster address.
    pub address: String,
    /// Its incarnation (the new one for a restart).
    pub incarnation: Incarnation,
    /// What changed.
    pub what: What,
}

/// Which change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    /// A member not known before.
    Joined,
    /// A member not heard from within the timeout.
    Unreachable,
    /// A member marked unreachable is heard from again.
    Reachable,
    /// A known member with a new incarnation: it restarted (and is
    /// reachable, whether it was marked unreachable or not).
    Restarted { was: Incarnation },
    /// A member unreachable for `cluster.forget_after_ms`: dropped from
    /// the view (heard again, it joins anew).
    Forgotten,
}

impl Change {
    /// The bus event that reports it.
    pub(crate) fn event(&self) -> Event {
        let (node, address, incarnation) = (
            self.node.clone(),
            self.address.clone(),
            self.incarnation.to_string(),
        );
        match self.what {
            What::Joined => Event::MemberJoined {
                node,
                address,
                incarnation,
            },
            What::Unreachable => Event::MemberUnreachable {
                node,
                address,
                incarnation,
            },
            What::Reachable => Event::MemberReachable {
                node,
                address,
                incarnation,
            },
            What::Restarted { was } => Event::MemberRestarted {
                node,
                address,
                incarnation,
                previous_incarnation: was.to_string(),
            },
            What::Forgotten => Event::MemberForgotten {
                node,
                address,
                incarnation,
            },
        }
    }
}

/// The membership as this node sees it.
#[derive(Debug)]
pub(crate) struct View {
    me: Me,
    unreachable_after: Duration,
    /// How long a peer stays marked unreachable before it is forgotten
    /// (`None`: never).
    forget_after: Option<Duration>,
    peers: BTreeMap<String, Peer>,
}

impl View {
    /// An empty view of `me`'s cluster: peers not heard from within
    /// `unreachable_after` are marked unreachable, and forgotten once
    /// marked for `forget_after` (zero: never).
    pub(crate) fn new(me: Me, unreachable_after: Duration, forget_after: Duration) -> Self {
        View {
            me,
            unreachable_after,
            forget_after: (!forget_after.is_zero()).then_some(forget_after),
            peers: BTreeMap::new(),
        }
    }

    /// This node.
    pub(crate) fn me(&self) -> &Me {
        &self.me
    }

    /// Records a heartbeat received at `now`: the change it made, if any
    /// (none for a known reachable member, a late heartbeat of a retired
    /// incarnation, or one with this node's name).
    pub(crate) fn heard(&mut self, beat: Beat, now: Instant) -> Option<Change> {
        if beat.node == self.me.node {
            // Another node with this node's name: its heartbeats would
            // overwrite this node's entry; never taken.
            if beat.incarnation != self.me.incarnation {
                tracing::warn!(target: "molt::cluster", node = %beat.node, address = %beat.address, "a peer has this node's name: ignored (node names must be unique in a cluster)");
            }
            return None;
        }
        let Some(peer) = self.peers.get_mut(&beat.node) else {
            let change = Change {
                node: beat.node.clone(),
                address: beat.address.clone(),
                incarnation: beat.incarnation,
                what: What::Joined,
            };
            self.peers.insert(
                beat.node,
                Peer {
                    address: beat.address,
                    incarnation: beat.incarnation,
                    last_heard: now,
                    reachable: true,
                    unreachable_since: None,
                    modules: beat.modules,
                    retired: Vec::new(),
                },
            );
            return Some(change);
        };
        if peer.retired.contains(&beat.incarnation) {
            return None;
        }
        let what = if peer.incarnation != beat.incarnation {
            let was = peer.incarnation;
            peer.retired.push(was);
            if peer.retired.len() > 8 {
                peer.retired.remove(0);
            }
            peer.incarnation = beat.incarnation;
            Some(What::Restarted { was })
        } else if !peer.reachable {
            Some(What::Reachable)
        } else {
            None
        };
        peer.address = beat.address;
        peer.last_heard = now;
        peer.reachable = true;
        peer.unreachable_since = None;
        peer.modules = beat.modules;
        what.map(|what| Change {
            node: beat.node,
            address: peer.address.clone(),
            incarnation: peer.incarnation,
            what,
        })
    }

    /// Marks unreachable the peers not heard from within the timeout, and
    /// forgets those marked for `forget_after`: one change for each.
    pub(crate) fn sweep(&mut self, now: Instant) -> Vec<Change> {
        let mut lost = Vec::new();
        for (name, peer) in &mut self.peers {
            if peer.reachable && now.duration_since(peer.last_heard) > self.unreachable_after {
                peer.reachable = false;
                peer.unreachable_since = Some(now);
                lost.push(Change {
                    node: name.clone(),
                    address: peer.address.clone(),
                    incarnation: peer.incarnation,
                    what: What::Unreachable,
                });
            }
        }
        if let Some(after) = self.forget_after {
            // Counted from the marking, not from the last heartbeat: a node
            // that itself was frozen marks everyone unreachable when it
            // resumes, and hears them again long before it would forget.
            let gone: Vec<String> = self
                .peers
                .iter()
                .filter(|(_, p)| {
                    p.unreachable_since
                        .is_some_and(|t| now.duration_since(t) >= after)
                })
                .map(|(name, _)| name.clone())
                .collect();
            for name in gone {
                if let Some(peer) = self.peers.remove(&name) {
                    lost.push(Change {
                        node: name,
                        address: peer.address,
                        incarnation: peer.incarnation,
                        what: What::Forgotten,
                    });
                }
            }
        }
        lost
    }

    /// The names of the peers marked unreachable.
    pub(crate) fn unreachable(&self) -> Vec<String> {
        self.peers
            .iter()
            .filter(|(_, p)| !p.reachable)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Whether peer `node` is reachable (`None`: no member has that name;
    /// this node counts as reachable).
    pub(crate) fn reachable(&self, node: &str) -> Option<bool> {
        if node == self.me.node {
            return Some(true);
        }
        self.peers.get(node).map(|p| p.reachable)
    }

    /// The members' names, this node's first.
    pub(crate) fn names(&self) -> Vec<String> {
        std::iter::once(self.me.node.clone())
            .chain(self.peers.keys().cloned())
            .collect()
    }

    /// The peers' addresses (reachable or not): where to keep connected.
    pub(crate) fn addresses(&self) -> Vec<String> {
        self.peers.values().map(|p| p.address.clone()).collect()
    }

    fn status(&self, own_modules: Vec<ModuleVersion>, now: Instant) -> ClusterStatus {
        let mut members = vec![MemberStatus {
            node: self.me.node.clone(),
            address: self.me.address.clone(),
            incarnation: self.me.incarnation.to_string(),
            reachable: true,
            this_node: true,
            last_heard_ms: None,
            modules: own_modules,
        }];
        members.extend(self.peers.iter().map(|(name, p)| MemberStatus {
            node: name.clone(),
            address: p.address.clone(),
            incarnation: p.incarnation.to_string(),
            reachable: p.reachable,
            this_node: false,
            last_heard_ms: Some(now.duration_since(p.last_heard).as_millis() as u64),
            modules: p.modules.clone(),
        }));
        members.sort_by(|a, b| a.node.cmp(&b.node));
        ClusterStatus {
            node: self.me.node.clone(),
            members,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(node: &str, incarnation: u64) -> Beat {
        Beat {
            node: node.into(),
            address: format!("127.0.0.1:{}", 7000 + incarnation),
            incarnation: Incarnation(incarnation),
            modules: vec![],
        }
    }

    fn view() -> View {
        view_forgetting_after(Duration::from_secs(60))
    }

    /// A view of node a, which forgets a peer unreachable for `forget`.
    fn view_forgetting_after(forget: Duration) -> View {
        let me = Me {
            node: "a".into(),
            address: "127.0.0.1:7000".into(),
            incarnation: Incarnation(1),
        };
        View::new(me, Duration::from_secs(2), forget)
    }

    /// The kind of the event a change yields, with its peer.
    fn what(change: Option<Change>) -> Option<(&'static str, String)> {
        change.map(|c| (c.event().kind(), c.node))
    }

    #[test]
    fn a_peer_joins_goes_silent_comes_back_and_restarts() {
        let mut v = view();
        let t = Instant::now();
        assert_eq!(
            what(v.heard(beat("b", 2), t)),
            Some(("cluster.member_joined", "b".into()))
        );
        assert_eq!(v.heard(beat("b", 2), t), None, "joined once");
        assert!(v.sweep(t + Duration::from_secs(1)).is_empty());
        let lost = v.sweep(t + Duration::from_millis(2100));
        assert_eq!(
            lost.iter().map(Change::event).collect::<Vec<_>>(),
            [Event::MemberUnreachable {
                node: "b".into(),
                address: "127.0.0.1:7002".into(),
                incarnation: Incarnation(2).to_string(),
            }]
        );
        assert!(v.sweep(t + Duration::from_secs(3)).is_empty(), "once");
        let s = v.status(vec![], t + Duration::from_secs(3));
        assert!(!s.member("b").unwrap().reachable);
        assert!(s.member("a").unwrap().this_node);
        let t2 = t + Duration::from_secs(4);
        assert_eq!(
            what(v.heard(beat("b", 2), t2)),
            Some(("cluster.member_reachable", "b".into()))
        );
        assert_eq!(v.heard(beat("b", 2), t2), None, "reachable once");
        assert_eq!(
            v.heard(beat("b", 3), t2).map(|c| c.event()),
            Some(Event::MemberRestarted {
                node: "b".into(),
                address: "127.0.0.1:7003".into(),
                incarnation: Incarnation(3).to_string(),
                previous_incarnation: Incarnation(2).to_string(),
            })
        );
        assert_eq!(v.heard(beat("b", 3), t2), None, "restarted once");
        // A late heartbeat of the old incarnation changes nothing.
        assert_eq!(v.heard(beat("b", 2), t2), None);
        let s = v.status(vec![], t2);
        assert_eq!(
            s.member("b").unwrap().incarnation,
            Incarnation(3).to_string()
        );
        // Its own name from elsewhere is never taken.
        assert_eq!(v.heard(beat("a", 9), t2), None);
        assert_eq!(s.members.len(), 2);
    }

    #[test]
    fn a_restart_seen_while_unreachable_is_one_restart() {
        let mut v = view();
        let t = Instant::now();
        assert!(v.heard(beat("b", 2), t).is_some());
        assert_eq!(v.sweep(t + Duration::from_secs(3)).len(), 1);
        // Killed and started again: its new incarnation is the one change
        // (it is reachable again too, without a second event).
        let t2 = t + Duration::from_secs(5);
        assert_eq!(
            what(v.heard(beat("b", 4), t2)),
            Some(("cluster.member_restarted", "b".into()))
        );
        assert!(v.status(vec![], t2).member("b").unwrap().reachable);
        assert_eq!(v.heard(beat("b", 4), t2), None);
        assert!(v.sweep(t2 + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn a_peer_unreachable_for_forget_after_is_forgotten_and_may_join_again() {
        let mut v = view();
        let t = Instant::now();
        assert!(v.heard(beat("b", 2), t).is_some());
        let marked = t + Duration::from_secs(3);
        assert_eq!(v.sweep(marked).len(), 1);
        assert!(
            v.sweep(marked + Duration::from_secs(59)).is_empty(),
            "kept until forget_after has passed since the marking"
        );
        let gone = v.sweep(marked + Duration::from_secs(60));
        assert_eq!(
            gone.iter().map(Change::event).collect::<Vec<_>>(),
            [Event::MemberForgotten {
                node: "b".into(),
                address: "127.0.0.1:7002".into(),
                incarnation: Incarnation(2).to_string(),
            }]
        );
        assert!(v.status(vec![], marked).member("b").is_none());
        assert!(v.addresses().is_empty(), "no longer reconnected to");
        assert!(
            v.sweep(marked + Duration::from_secs(120)).is_empty(),
            "once"
        );
        // Heard again, it joins anew.
        assert_eq!(
            what(v.heard(beat("b", 2), marked + Duration::from_secs(121))),
            Some(("cluster.member_joined", "b".into()))
        );
        // Heard again before forget_after: kept, the clock starts over.
        let t2 = marked + Duration::from_secs(200);
        assert_eq!(v.sweep(t2).len(), 1);
        assert!(v
            .heard(beat("b", 2), t2 + Duration::from_secs(30))
            .is_some());
        assert_eq!(
            v.sweep(t2 + Duration::from_secs(33)).len(),
            1,
            "marked again"
        );
        assert!(v.sweep(t2 + Duration::from_secs(90)).is_empty());
        assert!(v.status(vec![], t2).member("b").is_some());
    }

    #[test]
    fn forget_after_zero_never_forgets() {
        let mut v = view_forgetting_after(Duration::ZERO);
        let t = Instant::now();
        assert!(v.heard(beat("b", 2), t).is_some());
        assert_eq!(v.sweep(t + Duration::from_secs(3)).len(), 1);
        assert!(v.sweep(t + Duration::from_secs(100_000)).is_empty());
        assert!(v.status(vec![], t).member("b").is_some());
    }
}
