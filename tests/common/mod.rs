//! Shared test support: builds the fixture libraries once per test binary
//! (a `OnceLock`; cargo's own lock serializes builds across binaries) and
//! starts nodes on them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use molt::cargo_build::{build, BuildRequest};
use molt::{Event, EventStream, Limits, ModuleSpec, Node, NodeConfig};

/// A headless Chromium driven over the DevTools protocol (the browser tests).
pub mod chromium;
pub mod cluster;
/// A node's `GET /events` stream, read from a test thread.
pub mod event_feed;
pub mod rollout;

/// The fixture libraries, freshly built for this test binary.
pub struct Fixtures {
    pub counter: PathBuf,
    pub counter_v2: PathBuf,
    pub kv: PathBuf,
    pub kv_v2: PathBuf,
    /// The kv v2 source as code 2.0.1 (state version 2).
    pub kv_v2_1: PathBuf,
    /// The keyed example module, 1.0.0 (state v1) and 2.0.0 (state v2).
    pub cart: PathBuf,
    pub cart_v2: PathBuf,
    /// Module `cart` 1.1.0 (state v1) answering `Items` with another variant.
    pub cart_other_reply: PathBuf,
    /// The example `checkout` module (asks `cart` actors).
    pub checkout: PathBuf,
    pub fault: PathBuf,
    /// The fault fixture's source as code 2.0.0, state version 2.
    pub fault_v2: PathBuf,
    /// The fault fixture's source as code 1.1.0 without a verify of its own.
    pub fault_no_verify: PathBuf,
    pub not_a_module: PathBuf,
    pub abi_mismatch: PathBuf,
    /// Module `actors`: addresses, senders, replies later, asks.
    pub actors: PathBuf,
    /// The same source as module `peer`.
    pub actors_peer: PathBuf,
    /// Every directory a fixture library lives in.
    pub dirs: Vec<PathBuf>,
}

fn find(libs: &[molt::cargo_build::BuiltLibrary], package: &str) -> PathBuf {
    molt::cargo_build::library_of(libs, package).unwrap_or_else(|e| panic!("{e}"))
}

/// The workspace's target dir (where the fixtures are built).
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Builds every fixture library (once per test binary) and returns them.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let root = molt::workspace_dir();
        let packages = [
            "counter",
            "counter-v2",
            "kv",
            "kv-v2",
            "kv-v2-1",
            "cart",
            "cart-v2",
            "cart-other-reply",
            "checkout",
            "fault",
            "fault-v2",
            "fault-no-verify",
            "not-a-module",
            "actors",
            "actors-peer",
        ];
        let libs = build(&BuildRequest {
            manifest: root.join("Cargo.toml"),
            packages: packages.iter().map(|p| p.to_string()).collect(),
            release: false,
            target_dir: None,
            progress: false,
        })
        .unwrap_or_else(|e| panic!("building the fixture libraries failed: {e}"));
        // Its own workspace (it enables a test-only molt-abi feature that
        // must not leak into the host's build); same target dir, so the
        // shared dependencies are compiled once.
        let mismatch = build(&BuildRequest {
            manifest: root.join("tests/fixtures/abi_mismatch/Cargo.toml"),
            packages: vec![],
            release: false,
            target_dir: Some(target_dir(&root)),
            progress: false,
        })
        .unwrap_or_else(|e| panic!("building the abi_mismatch fixture failed: {e}"));
        let f = Fixtures {
            counter: find(&libs, "counter"),
            counter_v2: find(&libs, "counter_v2"),
            kv: find(&libs, "kv"),
            kv_v2: find(&libs, "kv_v2"),
            kv_v2_1: find(&libs, "kv_v2_1"),
            cart: find(&libs, "cart"),
            cart_v2: find(&libs, "cart_v2"),
            cart_other_reply: find(&libs, "cart_other_reply"),
            checkout: find(&libs, "checkout"),
            fault: find(&libs, "fault"),
            fault_v2: find(&libs, "fault_v2"),
            fault_no_verify: find(&libs, "fault_no_verify"),
            not_a_module: find(&libs, "not_a_module"),
            abi_mismatch: find(&mismatch, "abi_mismatch"),
            actors: find(&libs, "actors"),
            actors_peer: find(&libs, "actors_peer"),
            dirs: vec![],
        };
        let mut dirs = vec![];
        for p in [
            &f.counter,
            &f.kv,
            &f.fault,
            &f.not_a_module,
            &f.abi_mismatch,
        ] {
            let d = p.parent().unwrap().to_path_buf();
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        Fixtures { dirs, ..f }
    })
}

/// A scratch library directory for files a test makes (truncated copies...).
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("molt-test-libs")
        .tempdir()
        .expect("temp dir")
}

/// Limits that make failing tests fail fast.
pub fn test_limits() -> Limits {
    Limits {
        prepare_timeout: Duration::from_secs(20),
        verify_timeout: Duration::from_secs(5),
        decision_timeout: Duration::from_secs(20),
        call_timeout: Duration::from_secs(30),
        ..Limits::default()
    }
}

/// A node config named after the test, allowed to load every fixture and
/// anything in `extra_dirs`.
pub fn config(name: &str, extra_dirs: &[&Path]) -> NodeConfig {
    let f = fixtures();
    let mut c = NodeConfig::new(name);
    c.library_dirs = f.dirs.clone();
    c.library_dirs
        .extend(extra_dirs.iter().map(|d| d.to_path_buf()));
    c.limits = test_limits();
    c
}

/// Starts a node with one module.
pub async fn start(name: &str, spec: ModuleSpec) -> Node {
    Node::start(config(name, &[]).module(spec))
        .await
        .expect("node starts")
}

/// The next event of `kind` (skipping others), failing the test after 30 s.
pub async fn next_event(events: &mut EventStream, kind: &str) -> Event {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.next_event().await {
                Some(e) if e.kind() == kind => return e,
                Some(_) => continue,
                None => panic!("the event bus closed while waiting for {kind}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event within 30 s"))
}

/// Everything logged (INFO and up, plain text) in this test binary from
/// the first call on: a global subscriber, since the node logs from the
/// runtime's worker threads and the blocking pool.
pub fn captured_logs() -> &'static std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex};
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buf
    })
}

/// The captured log lines (see [`captured_logs`]) that contain every one
/// of `parts`.
pub fn logged_lines(parts: &[&str]) -> Vec<String> {
    let logs = captured_logs().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .map(str::to_string)
        .collect()
}

/// Waits until at least `n` captured log lines contain every one of
/// `parts`, failing the test after 30 s.
pub async fn await_logged(n: usize, parts: &[&str]) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lines = logged_lines(parts);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than {n} log lines with {parts:?} within 30 s: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A release file for the fault fixture's `HangUntil` hangs: a hang lasts
/// until the test has seen what it causes and calls [`Release::now`]
/// (instead of a fixed time racing a timeout). Dropping it removes the
/// file's folder, which releases every hang for good, so a failing test
/// never leaves a module hanging.
pub struct Release {
    _dir: tempfile::TempDir,
    file: PathBuf,
}

impl Release {
    /// A release file in a scratch folder of its own; not released yet.
    pub fn new() -> Self {
        let dir = scratch_dir();
        let file = dir.path().join("release-the-hang");
        Release { _dir: dir, file }
    }

    /// The fixture's `how` of a hang ending at the release (bounded at two
    /// minutes all the same).
    pub fn hang(&self) -> serde_json::Value {
        serde_json::json!({
            "HangUntil": { "release": self.file.display().to_string(), "max_ms": 120_000 }
        })
    }

    /// Ends every hang, now and later (until [`Release::hold`]).
    pub fn now(&self) {
        std::fs::write(&self.file, b"").expect("create the release file");
    }

    /// Hangs hang again until the next [`Release::now`].
    pub fn hold(&self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

impl Default for Release {
    fn default() -> Self {
        Release::new()
    }
}

/// The fault fixture's protocol (shared with the fixture's source).
#[path = "../fixtures/fault/src/proto.rs"]
pub mod fault_proto;

/// The typed protocol marker for the fault fixture.
pub struct FaultProto;

impl molt::Protocol for FaultProto {
    type Msg = fault_proto::Msg;
    type Reply = fault_proto::Reply;
}

/// The actors fixture's protocol (shared with the fixture's source).
#[path = "../fixtures/actors/src/proto.rs"]
pub mod actors_proto;

/// The typed protocol marker for the actors fixture.
pub struct ActorsProto;

impl molt::Protocol for ActorsProto {
    type Msg = actors_proto::Msg;
    type Reply = actors_proto::Reply;
}

/// Calls on the `kv` example module, with the reply the test expects.
pub mod kv {
    use kv_proto::{Dump, Msg, Proto, Reply};
    use molt::ModuleHandle;

    /// The whole user-visible state.
    pub async fn dump(kv: &ModuleHandle<Proto>) -> Dump {
        match kv.call(Msg::Dump).await.expect("dump") {
            Reply::Dump(d) => d,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// The code and state version the serving code reports.
    pub async fn version(kv: &ModuleHandle<Proto>) -> (String, u32) {
        match kv.call(Msg::Version).await.expect("version") {
            Reply::Version { code, state } => (code, state),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Puts a value, expecting `Reply::Ok`.
    pub async fn put(kv: &ModuleHandle<Proto>, key: &str, value: &str) {
        let reply = kv
            .call(Msg::Put {
                key: key.into(),
                value: value.into(),
            })
            .await
            .expect("put");
        assert_eq!(reply, Reply::Ok);
    }
}

/// Calls on the `fault` fixture module, with the reply the test expects.
pub mod fault {
    use std::path::Path;
    use std::time::Duration;

    use super::fault_proto::{Fault, How, Msg, Point, Reply};
    use super::FaultProto;
    use molt::{KeyedSpec, ModuleHandle, ModuleSpec, Node};
    use serde_json::json;

    /// Starts a reload of `fault` to the fault-v2 fixture with config tag
    /// "b" in a task of its own, so the test can act while it runs.
    pub fn reload_to_v2_in_background(
        node: &Node,
    ) -> tokio::task::JoinHandle<Result<molt::ReloadReport, molt::Error>> {
        let admin = node.admin();
        let v2 = super::fixtures().fault_v2.clone();
        tokio::spawn(async move {
            admin
                .reload(
                    "fault",
                    molt::ReloadOptions::library(v2).with_config(json!({ "tag": "b" })),
                )
                .await
        })
    }

    /// A node running the fault fixture (1.0.0) as a keyed module with
    /// config tag `tag`; keys never passivate for idleness during a test.
    pub async fn keyed_node(name: &str, tag: &str) -> Node {
        let spec = ModuleSpec::new("fault", &super::fixtures().fault)
            .config(json!({ "tag": tag }))
            .keyed(KeyedSpec {
                idle_passivate: Duration::from_secs(600),
                max_live: 10_000,
            });
        super::start(name, spec).await
    }

    /// Makes `h`'s actor hang in its next `Push` or `Get` until the file
    /// `release` exists (at most a minute), and sends it that `Push`: the
    /// actor handles nothing else meanwhile.
    pub async fn hang_until(h: &ModuleHandle<FaultProto>, release: &Path) {
        let armed = h
            .call(Msg::Arm(Some(Fault {
                at: Point::Handle,
                how: How::HangUntil {
                    release: release.display().to_string(),
                    max_ms: 60_000,
                },
            })))
            .await
            .expect("arm");
        assert_eq!(armed, Reply::Log(vec![]));
        h.cast(Msg::Push(0)).expect("the push that hangs");
    }

    /// The instance's log.
    pub async fn log(h: &ModuleHandle<FaultProto>) -> Vec<i64> {
        match h.call(Msg::Get).await.expect("get") {
            Reply::Log(log) => log,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// The tag of the serving load's config.
    pub async fn tag(h: &ModuleHandle<FaultProto>) -> String {
        match h.call(Msg::Tag).await.expect("tag") {
            Reply::Tag(tag) => tag,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Appends a value, expecting the acknowledgement.
    pub async fn push(h: &ModuleHandle<FaultProto>, value: i64) {
        assert_eq!(
            h.call(Msg::Push(value)).await.expect("push"),
            Reply::Log(vec![])
        );
    }

    /// A node running the fault fixture (config tag "a") with the log
    /// `[1, 2, 3]`, under the tests' limits, whose verify round trip is on
    /// (the default: asserted).
    pub async fn node_with_a_log(name: &str) -> (Node, ModuleHandle<FaultProto>) {
        assert!(
            super::test_limits().verify_round_trip,
            "the tests' limits keep the default: the round trip on"
        );
        let f = super::fixtures();
        let node = super::start(
            name,
            ModuleSpec::new("fault", &f.fault).config(json!({ "tag": "a" })),
        )
        .await;
        let h = node.module::<FaultProto>("fault").unwrap();
        for v in [1, 2, 3] {
            push(&h, v).await;
        }
        (node, h)
    }
}

/// Makes a FIFO (named pipe) at `path`.
#[cfg(unix)]
pub fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A `molt` process started by a test: its output is collected as it comes,
/// and it is killed (SIGKILL) when dropped, so no test leaves one behind.
pub struct MoltProcess {
    child: std::process::Child,
    output: std::sync::Arc<std::sync::Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl MoltProcess {
    /// Starts the `molt` binary with `args`, no admin token in its
    /// environment, and `runtime_dir` as its `XDG_RUNTIME_DIR` (where a
    /// generated admin token goes).
    pub fn start(args: &[&str], runtime_dir: &Path) -> MoltProcess {
        Self::start_with_env(args, runtime_dir, &[])
    }

    /// [`MoltProcess::start`] with these environment variables too.
    pub fn start_with_env(args: &[&str], runtime_dir: &Path, env: &[(&str, &str)]) -> MoltProcess {
        Self::start_limited(args, runtime_dir, env, None)
    }

    /// [`MoltProcess::start_with_env`], with at most `max_open_files` file
    /// descriptors when given (`ulimit -n`; the shell execs molt, so the
    /// process is molt itself).
    pub fn start_limited(
        args: &[&str],
        runtime_dir: &Path,
        env: &[(&str, &str)],
        max_open_files: Option<u32>,
    ) -> MoltProcess {
        use std::process::{Command, Stdio};
        let molt = env!("CARGO_BIN_EXE_molt");
        let mut command = match max_open_files {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(molt);
                c
            }
            None => Command::new(molt),
        };
        let mut child = command
            .args(args)
            .env_remove("MOLT_ADMIN_TOKEN")
            .env_remove("MOLT_ADMIN_ADDR")
            .env("XDG_RUNTIME_DIR", runtime_dir)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start molt");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut readers = Vec::new();
        let pipes: Vec<Box<dyn std::io::Read + Send>> = vec![
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for pipe in pipes {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            }));
        }
        MoltProcess {
            child,
            output,
            readers,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far (stdout and stderr, line by line).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until it has printed a line containing `text`; the whole line.
    /// Panics (with the output) after `within`, or when it exits first.
    pub fn wait_for_line(&mut self, text: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(line) = self.output().lines().find(|l| l.contains(text)) {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.join_readers();
                if let Some(line) = self.output().lines().find(|l| l.contains(text)) {
                    return line.to_string();
                }
                panic!(
                    "molt exited ({status}) without printing {text:?}:\n{}",
                    self.output()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "molt printed no {text:?} within {within:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for it to exit: its status, or `None` after `within` (it is
    /// then still running; dropping it kills it).
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.join_readers();
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends it a signal (`"TERM"`, `"INT"`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for MoltProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain `GET path` over a fresh connection to `addr`, answered within
/// `within`: the status code and the body; `None` when no full answer came
/// in time (or the connection failed).
pub fn http_get(addr: std::net::SocketAddr, path: &str, within: Duration) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, within).ok()?;
    stream.set_read_timeout(Some(within)).ok()?;
    stream.set_write_timeout(Some(within)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body))
}

/// The address in the line `molt run` prints about its HTTP admin
/// (`molt: HTTP admin on http://ADDR ...`).
pub fn admin_addr_of(line: &str) -> std::net::SocketAddr {
    let rest = line
        .split("http://")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let addr = rest
        .split(|c: char| c.is_whitespace() || c == ';')
        .next()
        .unwrap();
    addr.trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"))
}

/// Runs the `molt` binary with `args` (no token or address from the
/// environment) and waits for it.
pub fn molt_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_molt"))
        .args(args)
        .env_remove("MOLT_ADMIN_TOKEN")
        .env_remove("MOLT_ADMIN_ADDR")
        .output()
        .expect("run molt")
}

/// A finished process's stdout then stderr, as text.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Serves `node`'s HTTP admin on 127.0.0.1 (a free port) with `token`, and
/// a client for it.
pub async fn serve_admin(
    node: &Node,
    token: &str,
) -> (molt::http::AdminServer, molt::http::AdminClient) {
    let server = molt::http::serve(node, "127.0.0.1:0".parse().unwrap(), Some(token.into()))
        .await
        .expect("the admin server starts");
    let client =
        molt::http::AdminClient::for_addr(server.local_addr(), Some(token.into())).unwrap();
    (server, client)
}

/// The status and body of an HTTP admin error answer (panics on success).
pub fn api_error<T: std::fmt::Debug>(
    r: Result<T, molt::http::ClientError>,
) -> (u16, molt::http::ErrorBody) {
    match r {
        Err(molt::http::ClientError::Api { status, body }) => (status, body),
        other => panic!("expected an error answer, got {other:?}"),
    }
}

/// Nodes and calls on the actors fixture (modules `actors` and `peer`).
pub mod actors {
    use std::future::Future;
    use std::time::{Duration, Instant};

    use super::actors_proto::{Msg, Reply, Seen};
    use super::ActorsProto;
    use molt::{
        Address, Error, ModuleHandle, ModuleSpec, Node, NodeConfig, ReloadOptions, ReloadReport,
    };

    /// A typed handle on one of the fixture's modules.
    pub type Handle = ModuleHandle<ActorsProto>;

    /// A config running `actors` (`n` instances) and `peer` (one).
    pub fn config(name: &str, n: u32) -> NodeConfig {
        let f = super::fixtures();
        super::config(name, &[])
            .module(ModuleSpec::new("actors", &f.actors).instances(n))
            .module(ModuleSpec::new("peer", &f.actors_peer))
    }

    /// Starts a node on [`config`].
    pub async fn node(name: &str, n: u32) -> Node {
        Node::start(config(name, n)).await.expect("node starts")
    }

    /// A handle on instance `i` of `module`.
    pub fn on(node: &Node, module: &str, i: usize) -> Handle {
        node.module::<ActorsProto>(module)
            .expect("module runs")
            .on_instance(i)
    }

    /// Calls and expects a reply.
    pub async fn call(h: &Handle, msg: Msg) -> Reply {
        h.call(msg.clone())
            .await
            .unwrap_or_else(|e| panic!("{msg:?}: {e}"))
    }

    /// Calls a message that replies `Sent`: the outcome of the send.
    pub async fn sent(h: &Handle, msg: Msg) -> Result<(), String> {
        match call(h, msg).await {
            Reply::Sent(r) => r,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// The notes the actor received, with their senders.
    pub async fn notes(h: &Handle) -> Vec<(Option<Address>, String)> {
        match call(h, Msg::Notes).await {
            Reply::Notes(n) => n,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// The answers the actor received.
    pub async fn answers(h: &Handle) -> Vec<Seen> {
        match call(h, Msg::Answers).await {
            Reply::Answers(a) => a,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// How many calls the actor holds open.
    pub async fn held(h: &Handle) -> usize {
        match call(h, Msg::HeldCount).await {
            Reply::Count(Ok(n)) => n,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    /// Polls `probe` until it returns `Some`, failing the test after 30 s.
    pub async fn until<T, F: Future<Output = Option<T>>>(
        what: &str,
        mut probe: impl FnMut() -> F,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: not within 30 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the actor has received `n` notes and returns them.
    pub async fn until_notes(h: &Handle, n: usize) -> Vec<(Option<Address>, String)> {
        until(&format!("{n} notes"), || async {
            let got = notes(h).await;
            (got.len() >= n).then_some(got)
        })
        .await
    }

    /// Waits until the actor has received `n` answers and returns them.
    pub async fn until_answers(h: &Handle, n: usize) -> Vec<Seen> {
        until(&format!("{n} answers"), || async {
            let got = answers(h).await;
            (got.len() >= n).then_some(got)
        })
        .await
    }

    /// Waits until the actor holds `n` open calls.
    pub async fn until_held(h: &Handle, n: usize) {
        until(&format!("{n} held calls"), || async {
            (held(h).await == n).then_some(())
        })
        .await
    }

    /// Reloads `module` from its own library, with `config` if given.
    pub async fn reload(
        node: &Node,
        module: &str,
        config: Option<serde_json::Value>,
    ) -> Result<ReloadReport, Error> {
        node.reload(
            module,
            ReloadOptions {
                config,
                ..ReloadOptions::default()
            },
        )
        .await
    }
}

/// The keyed `cart` example module: a node running it, its keyed counts,
/// and calls with the reply the test expects.
pub mod cart {
    use std::time::Duration;

    use cart_proto::{Msg, Proto, Reply};
    use molt::{KeyedSpec, KeyedStatus, ModuleHandle, ModuleSpec, Node};

    /// A node running the keyed cart module (1.x) with `idle` before passivation.
    pub async fn cart_node(name: &str, idle: Duration, max_live: u32) -> Node {
        let spec = ModuleSpec::new("cart", &super::fixtures().cart).keyed(KeyedSpec {
            idle_passivate: idle,
            max_live,
        });
        super::start(name, spec).await
    }

    /// The cart module's keyed counts.
    pub async fn keyed_status(node: &Node) -> KeyedStatus {
        keyed_status_of(node, "cart").await
    }

    /// The keyed counts of the keyed module `module`.
    pub async fn keyed_status_of(node: &Node, module: &str) -> KeyedStatus {
        let status = node.admin().status().await.expect("status");
        status
            .modules
            .iter()
            .find(|m| m.name == module)
            .and_then(|m| m.keyed.clone())
            .unwrap_or_else(|| panic!("{module} is keyed"))
    }

    /// Polls cart's counts until `ok` holds, failing the test after 30 s.
    pub async fn await_status(
        node: &Node,
        what: &str,
        ok: impl Fn(&KeyedStatus) -> bool,
    ) -> KeyedStatus {
        await_status_of(node, "cart", what, ok).await
    }

    /// Polls `module`'s keyed counts until `ok` holds, failing the test
    /// after 30 s.
    pub async fn await_status_of(
        node: &Node,
        module: &str,
        what: &str,
        ok: impl Fn(&KeyedStatus) -> bool,
    ) -> KeyedStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let s = keyed_status_of(node, module).await;
            if ok(&s) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not within 30 s (last {s:?})"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A cart's items.
    pub async fn items(cart: &ModuleHandle<Proto>) -> Vec<(String, u32)> {
        match cart.call(Msg::Items).await.expect("items") {
            Reply::Items(items) => items,
            other => panic!("items: unexpected {other:?}"),
        }
    }

    /// The serving state version of a cart's actor.
    pub async fn state_version(cart: &ModuleHandle<Proto>) -> u32 {
        match cart.call(Msg::Version).await.expect("version") {
            Reply::Version { state, .. } => state,
            other => panic!("version: unexpected {other:?}"),
        }
    }

    /// Adds `qty` of `item` to a cart.
    pub async fn add(cart: &ModuleHandle<Proto>, item: &str, qty: u32) {
        let reply = cart
            .call(Msg::Add {
                item: item.into(),
                qty,
            })
            .await
            .expect("add");
        assert_eq!(reply, Reply::Ok);
    }
}
