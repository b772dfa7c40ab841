//! Shared test support: builds the fixture libraries once per test binary
//! (a `OnceLock`; cargo's own lock serializes builds across binaries) and
//! starts nodes on them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use molt::cargo_build::{build, BuildRequest};
use molt::{Event, EventStream, Limits, ModuleSpec, Node, NodeConfig};

/// The fixture libraries, freshly built for this test binary.
pub struct Fixtures {
    pub counter: PathBuf,
    pub counter_v2: PathBuf,
    pub kv: PathBuf,
    pub kv_v2: PathBuf,
    /// The kv v2 source as code 2.0.1 (state version 2).
    pub kv_v2_1: PathBuf,
    pub fault: PathBuf,
    /// The fault fixture's source as code 2.0.0, state version 2.
    pub fault_v2: PathBuf,
    pub not_a_module: PathBuf,
    pub abi_mismatch: PathBuf,
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
            "fault",
            "fault-v2",
            "not-a-module",
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
            fault: find(&libs, "fault"),
            fault_v2: find(&libs, "fault_v2"),
            not_a_module: find(&libs, "not_a_module"),
            abi_mismatch: find(&mismatch, "abi_mismatch"),
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

/// The fault fixture's protocol (shared with the fixture's source).
#[path = "../fixtures/fault/src/proto.rs"]
pub mod fault_proto;

/// The typed protocol marker for the fault fixture.
pub struct FaultProto;

impl molt::Protocol for FaultProto {
    type Msg = fault_proto::Msg;
    type Reply = fault_proto::Reply;
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
    use super::fault_proto::{Msg, Reply};
    use super::FaultProto;
    use molt::ModuleHandle;

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
}
