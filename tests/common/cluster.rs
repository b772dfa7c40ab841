//! Clusters of real `molt` processes on 127.0.0.1 for the cluster tests:
//! each node's config file, its start (a [`MoltProcess`], killed on drop),
//! and its view of the cluster read over `GET /cluster`, awaited with a
//! bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use molt::ClusterStatus;

use super::{admin_addr_of, fixtures, http_get, MoltProcess};

/// The test clusters' heartbeat interval: short, to keep the suite quick.
pub const HEARTBEAT_MS: u64 = 100;
/// The test clusters' unreachable timeout.
pub const UNREACHABLE_MS: u64 = 1500;
/// The failure detector's bound (the timeout plus one heartbeat, when a
/// silent peer is swept) and a margin for a machine loaded by other tests:
/// past it, a silent peer must be marked unreachable.
pub const DETECTED_WITHIN: Duration = Duration::from_millis(UNREACHABLE_MS + HEARTBEAT_MS + 4000);
/// How long a node may take to start (load its module, bind, print its
/// admin address) and a cluster to converge, on a loaded machine.
pub const START_WITHIN: Duration = Duration::from_secs(60);
/// How long joining or rejoining may take (connect, authenticate, the
/// first heartbeats; reconnects back off up to 2 s).
pub const JOINED_WITHIN: Duration = Duration::from_secs(20);

/// A port nothing listens on (bound, then freed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cluster node for a test: its settings and, while it runs, its process.
pub struct ClusterNode {
    pub name: String,
    /// Its cluster address.
    pub listen: SocketAddr,
    /// Its config file.
    pub config: PathBuf,
    /// Its HTTP admin address (known once it started).
    pub admin: Option<SocketAddr>,
    pub process: Option<MoltProcess>,
    /// Where its admin token and config go.
    dir: PathBuf,
}

impl ClusterNode {
    /// Writes the config of node `name` in `dir`: the counter module from
    /// `library`, the cluster on a free loopback port with these seeds and
    /// these extra `[cluster]` lines (a cookie...), the test heartbeat.
    pub fn new(dir: &Path, name: &str, library: &Path, seeds: &[SocketAddr], extra: &str) -> Self {
        Self::running(dir, name, ("counter", library, ""), seeds, extra, "")
    }

    /// Like [`ClusterNode::new`], running `module` = (its name, its
    /// library, the lines of its `[modules.NAME.config]` table), with
    /// `tail` appended to the file (more tables, e.g. `[rollout]`).
    pub fn running(
        dir: &Path,
        name: &str,
        module: (&str, &Path, &str),
        seeds: &[SocketAddr],
        extra: &str,
        tail: &str,
    ) -> Self {
        let (module, library, module_config) = module;
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = dir.join(format!("{name}.toml"));
        let dirs: Vec<String> = fixtures()
            .dirs
            .iter()
            .map(|d| format!("{:?}", d.display().to_string()))
            .collect();
        let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
        let module_config = if module_config.is_empty() {
            String::new()
        } else {
            format!("[modules.{module}.config]\n{module_config}\n")
        };
        std::fs::write(
            &config,
            format!(
                "[node]\nname = \"{name}\"\nhot_reload = false\nadmin_listen = \"127.0.0.1:0\"\n\
                 library_dirs = [{}]\n\
                 [modules.{module}]\nlibrary = {:?}\n{module_config}\
                 [cluster]\nlisten = \"{listen}\"\nseeds = [{}]\n\
                 heartbeat_interval_ms = {HEARTBEAT_MS}\nunreachable_after_ms = {UNREACHABLE_MS}\n{extra}\n{tail}\n",
                dirs.join(", "),
                library.display().to_string(),
                seeds.join(", "),
            ),
        )
        .unwrap();
        ClusterNode {
            name: name.into(),
            listen,
            config,
            admin: None,
            process: None,
            dir: dir.to_path_buf(),
        }
    }

    /// The admin token it generated for its run (it must run).
    pub fn token(&self) -> String {
        let admin = self.admin.expect("the node runs");
        let file =
            self.dir
                .join("molt")
                .join(format!("admin-{}-{}.token", admin.ip(), admin.port()));
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .trim()
            .to_string()
    }

    /// Starts it (again) and waits for its HTTP admin.
    pub fn start(&mut self) -> &mut Self {
        let mut p = MoltProcess::start(&["run", self.config.to_str().unwrap()], &self.dir);
        let line = p.wait_for_line("HTTP admin on http://", START_WITHIN);
        self.admin = Some(admin_addr_of(&line));
        self.process = Some(p);
        self
    }

    /// Its process (it must run).
    pub fn process(&self) -> &MoltProcess {
        self.process.as_ref().expect("the node runs")
    }

    /// What `molt status --cluster` prints for it (the command must
    /// succeed).
    pub fn status_cli(&self) -> String {
        let out = super::molt_cli(&[
            "status",
            "--cluster",
            "--addr",
            &self.admin.expect("the node runs").to_string(),
        ]);
        let text = super::output_text(&out);
        assert!(out.status.success(), "{text}");
        text
    }

    /// Its view of the cluster now (`None` when it does not answer).
    pub fn view(&self) -> Option<ClusterStatus> {
        let (code, body) = http_get(self.admin?, "/cluster", Duration::from_secs(5))?;
        assert_eq!(code, 200, "GET /cluster: {body}");
        Some(serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")))
    }

    /// Polls its view until `ok` holds, for at most `within`: that view.
    /// Panics naming `what`, with the last view and the node's output.
    pub fn await_view(
        &self,
        what: &str,
        within: Duration,
        ok: impl Fn(&ClusterStatus) -> bool,
    ) -> ClusterStatus {
        let deadline = Instant::now() + within;
        let mut last = None;
        loop {
            if let Some(view) = self.view() {
                if ok(&view) {
                    return view;
                }
                last = Some(view);
            }
            assert!(
                Instant::now() < deadline,
                "{}: {what} not seen within {within:?}; last view {last:#?}\noutput:\n{}",
                self.name,
                self.process
                    .as_ref()
                    .map(|p| p.output())
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether `view` shows exactly these nodes, every one reachable.
pub fn all_reachable(view: &ClusterStatus, nodes: &[&str]) -> bool {
    let mut names: Vec<&str> = view.members.iter().map(|m| m.node.as_str()).collect();
    names.sort_unstable();
    let mut wanted = nodes.to_vec();
    wanted.sort_unstable();
    names == wanted && view.members.iter().all(|m| m.reachable)
}

/// The (module, code version) pairs a member reports, in its order.
pub fn versions(member: &molt::MemberStatus) -> Vec<(&str, &str)> {
    member
        .modules
        .iter()
        .map(|v| (v.name.as_str(), v.code_version.as_str()))
        .collect()
}

/// `[modules.NAME]` lines for a node's `extra` config: module `name` from
/// `library`, one instance (a node then runs it beside its counter).
pub fn module_lines(name: &str, library: &Path) -> String {
    format!(
        "[modules.{name}]\nlibrary = {:?}\n",
        library.display().to_string()
    )
}

impl ClusterNode {
    /// Calls instance 0 of `module` on this node as an operator would
    /// (`molt call`, its token found where the node wrote it): the reply.
    /// Panics with the CLI's output when the call fails.
    pub fn call<M: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        module: &str,
        msg: &M,
    ) -> R {
        let json = serde_json::to_string(msg).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_molt"))
            .args([
                "call",
                module,
                &json,
                "--instance",
                "0",
                "--addr",
                &self.admin.expect("the node runs").to_string(),
            ])
            .env_remove("MOLT_ADMIN_TOKEN")
            .env_remove("MOLT_ADMIN_ADDR")
            .env("XDG_RUNTIME_DIR", &self.dir)
            .output()
            .expect("run molt");
        let text = super::output_text(&out);
        assert!(
            out.status.success(),
            "{}: molt call {module} {json}: {text}",
            self.name
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

/// How long numbered messages between nodes may take to arrive on a
/// loaded machine.
pub const ARRIVED_WITHIN: Duration = Duration::from_secs(60);

/// The numbered messages (`Seq`) that `node`'s actors#0 received, once it
/// has at least `count` (polled, for at most [`ARRIVED_WITHIN`]).
pub fn await_seqs(node: &ClusterNode, count: usize) -> super::actors_proto::SeqsSeen {
    use super::actors_proto::{Msg, Reply};
    let deadline = Instant::now() + ARRIVED_WITHIN;
    loop {
        let Reply::Seqs(seen) = node.call("actors", &Msg::Seqs) else {
            panic!("Seqs answers Seqs")
        };
        if seen.seen.len() >= count {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {} of {count} messages within {ARRIVED_WITHIN:?}\noutput:\n{}",
            node.name,
            seen.seen.len(),
            node.process().output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two nodes a and b (b seeded with a) running `counter` and the `actors`
/// fixture, started and reachable from each other: the remote-send tests'
/// cluster.
pub fn two_actor_nodes(dir: &Path) -> (ClusterNode, ClusterNode) {
    two_actor_nodes_with(dir, "")
}

/// [`two_actor_nodes`] with these extra `[cluster]` lines on both.
pub fn two_actor_nodes_with(dir: &Path, cluster_lines: &str) -> (ClusterNode, ClusterNode) {
    let f = fixtures();
    let actors = format!("{cluster_lines}\n{}", module_lines("actors", &f.actors));
    let mut a = ClusterNode::new(dir, "a", &f.counter, &[], &actors);
    let mut b = ClusterNode::new(dir, "b", &f.counter, &[a.listen], &actors);
    a.start();
    b.start();
    for n in [&a, &b] {
        n.await_view("a and b reachable", JOINED_WITHIN, |v| {
            all_reachable(v, &["a", "b"])
        });
    }
    (a, b)
}
