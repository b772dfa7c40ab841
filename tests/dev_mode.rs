//! Dev mode (docs/semantics.md "Watch and dev mode"): saving a module crate's
//! source rebuilds it; a compile error is a failed reload in phase `build` and
//! the old code keeps serving; the fix reloads; a burst of saves builds once;
//! saves in two crates build each once.
//!
//! The module crate is the template in tests/fixtures/dev_module, copied
//! into a temp dir and built in the workspace's target dir (so its
//! dependencies are the ones the other tests built already).

use crate::common;

#[path = "fixtures/dev_module/src/proto.rs"]
mod dev_proto;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dev_proto::{Msg, Reply};
use molt::cargo_build::{build, BuildRequest};
use molt::{Action, Event, EventStream, ModuleSpec, Node, NodeConfig, Outcome, Phase};

pub(crate) struct DevProto;

impl molt::Protocol for DevProto {
    type Msg = Msg;
    type Reply = Reply;
}

const TEMPLATE: &str = "tests/fixtures/dev_module";

/// A copy of the fixture crate in a temp dir, built once (also used by
/// `watch_reload.rs`, for a real `cargo build` relinking a watched library,
/// and `dev_mode_honours_cargo_config.rs`).
pub(crate) struct FixtureCrate {
    /// The module's name (also in the package name).
    pub(crate) name: String,
    dir: tempfile::TempDir,
    /// The library of the first build.
    pub(crate) library: PathBuf,
}

impl FixtureCrate {
    /// Copies the template as module `name` (package `dev_fixture_NAME`: one
    /// name per test, as the library's file name in the shared target dir
    /// comes from it) and builds version 1.0.0.
    pub(crate) fn new(name: &str) -> Self {
        let root = molt::workspace_dir();
        let template = root.join(TEMPLATE);
        let dir = tempfile::Builder::new()
            .prefix("molt-dev-crate")
            .tempdir()
            .unwrap();
        let manifest = std::fs::read_to_string(template.join("Cargo.toml.in"))
            .unwrap()
            .replace("@PACKAGE@", &format!("dev_fixture_{name}"))
            .replace(
                "@MOLT_ABI@",
                &root.join("modules/abi").display().to_string(),
            );
        std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
        // The workspace's lock file: the same dependency versions, so the
        // target dir's compiled dependencies are reused.
        std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::copy(
            template.join("src/proto.rs"),
            dir.path().join("src/proto.rs"),
        )
        .unwrap();
        let mut krate = FixtureCrate {
            name: name.to_string(),
            dir,
            library: PathBuf::new(),
        };
        krate.save("1.0.0", "");
        let started = Instant::now();
        let libs = build(&BuildRequest {
            manifest: krate.dir.path().join("Cargo.toml"),
            packages: vec![],
            release: false,
            target_dir: Some(common::target_dir(&root)),
            progress: false,
        })
        .unwrap_or_else(|e| panic!("building the dev fixture {name} failed: {e}"));
        eprintln!("first build of {name}: {:?}", started.elapsed());
        assert_eq!(libs.len(), 1, "{libs:?}");
        krate.library = libs[0].path.clone();
        krate
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes src/lib.rs: the template with this module's name, `version`,
    /// and `extra` code appended.
    pub(crate) fn save(&self, version: &str, extra: &str) {
        let template =
            std::fs::read_to_string(molt::workspace_dir().join(TEMPLATE).join("src/lib.rs"))
                .unwrap();
        let source = template
            .replace("\"dev_module\"", &format!("{:?}", self.name))
            .replace("\"1.0.0\"", &format!("{version:?}"))
            + extra;
        std::fs::write(self.path().join("src/lib.rs"), source).unwrap();
    }

    fn spec(&self, library: &Path) -> ModuleSpec {
        ModuleSpec::new(&self.name, library).crate_dir(self.path())
    }
}

/// A dev-mode node config building in the workspace's target dir.
fn dev_config(name: &str) -> NodeConfig {
    let mut c = NodeConfig::new(name);
    c.dev = true;
    // A burst of saves a few ms apart must fall within one quiet period
    // even when the test thread is descheduled on a busy machine (dev
    // mode's own minimum, 50 ms, is not always enough there).
    c.debounce_ms = DEBOUNCE.as_millis() as u64;
    c.target_dir = Some(common::target_dir(&molt::workspace_dir()));
    c.limits = common::test_limits();
    c
}

/// The next event (builds take seconds: a generous timeout).
async fn next(events: &mut EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(120), events.next_event())
        .await
        .expect("an event within 120 s")
        .expect("the bus is open")
}

async fn version(node: &Node, module: &str) -> String {
    match node
        .module::<DevProto>(module)
        .unwrap()
        .call(Msg::Version)
        .await
        .unwrap()
    {
        Reply::Version(v) => v,
        other => panic!("unexpected reply {other:?}"),
    }
}

async fn bump(node: &Node, module: &str) -> u64 {
    match node
        .module::<DevProto>(module)
        .unwrap()
        .call(Msg::Bump)
        .await
        .unwrap()
    {
        Reply::Count(n) => n,
        other => panic!("unexpected reply {other:?}"),
    }
}

fn building(name: &str) -> Event {
    Event::ModuleBuilding { name: name.into() }
}

/// The tests' debounce (`debounce_ms`).
const DEBOUNCE: Duration = Duration::from_secs(1);

/// Longer than the debounce plus scheduling slack: a build that some file
/// event would start has started (and said so on the bus) after this.
const QUIET: Duration = Duration::from_millis(2000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_error_keeps_the_old_code_and_the_fix_reloads() {
    let started = Instant::now();
    let krate = FixtureCrate::new("dev_a");
    // The node may load only from `libs`: dev mode adds the build's output
    // dir itself (NodeConfig::effective_library_dirs).
    let libs = common::scratch_dir();
    let first = libs.path().join(krate.library.file_name().unwrap());
    std::fs::copy(&krate.library, &first).unwrap();
    let config = dev_config("dev-a")
        .library_dir(libs.path())
        .module(krate.spec(&first));
    let node = Node::start(config).await.expect("the node starts");
    let mut events = node.subscribe();
    assert_eq!(version(&node, "dev_a").await, "1.0.0");
    assert_eq!(bump(&node, "dev_a").await, 1);

    // (a) A compile error: a failed reload in phase `build` with the
    // compiler's message; the old code keeps serving.
    krate.save(
        "1.0.1",
        "\npub fn broken() -> u32 {\n    \"not a number\"\n}\n",
    );
    assert_eq!(next(&mut events).await, building("dev_a"));
    match next(&mut events).await {
        Event::ModuleReloadFailed { name, phase, error } => {
            assert_eq!(name, "dev_a");
            assert_eq!(phase, Phase::Build);
            assert!(error.contains("error[E0308]: mismatched types"), "{error}");
            assert!(error.contains("src/lib.rs"), "{error}");
        }
        other => panic!("expected module.reload_failed, got {other:?}"),
    }
    assert_eq!(
        version(&node, "dev_a").await,
        "1.0.0",
        "the old code serves"
    );
    assert_eq!(bump(&node, "dev_a").await, 2, "with its state");

    // (b) The fix reloads the new version, with the state.
    krate.save("1.0.1", "");
    assert_eq!(next(&mut events).await, building("dev_a"));
    match next(&mut events).await {
        Event::ModuleReloaded { name, from, to, .. } => {
            assert_eq!(
                (name.as_str(), from.as_str(), to.as_str()),
                ("dev_a", "1.0.0", "1.0.1")
            );
        }
        other => panic!("expected module.reloaded, got {other:?}"),
    }
    assert_eq!(version(&node, "dev_a").await, "1.0.1");
    assert_eq!(bump(&node, "dev_a").await, 3);

    // (c) A burst of five saves within a few ms: one build, one reload.
    for v in ["1.0.2", "1.0.3", "1.0.4", "1.0.5", "1.0.6"] {
        krate.save(v, "");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(next(&mut events).await, building("dev_a"));
    match next(&mut events).await {
        Event::ModuleReloaded { from, to, .. } => {
            assert_eq!((from.as_str(), to.as_str()), ("1.0.1", "1.0.6"));
        }
        other => panic!("expected module.reloaded, got {other:?}"),
    }
    assert_eq!(version(&node, "dev_a").await, "1.0.6");
    // No second build starts (it would say `module.building` first): the
    // next event is the one of this rollback, and the previous version it
    // returns to is 1.0.1, the one before the single reload of the burst.
    tokio::time::sleep(QUIET).await;
    node.rollback("dev_a", false).await.expect("rollback");
    match next(&mut events).await {
        Event::ModuleRolledBack { from, to, .. } => {
            assert_eq!((from.as_str(), to.as_str()), ("1.0.6", "1.0.1"));
        }
        other => panic!("expected module.rolled_back, got {other:?}"),
    }

    let history: Vec<(Action, Outcome, Option<Phase>, String)> = node
        .history()
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.action, h.outcome, h.phase, h.to))
        .collect();
    assert_eq!(
        history,
        vec![
            (
                Action::Reload,
                Outcome::Rejected,
                Some(Phase::Build),
                String::new()
            ),
            (Action::Reload, Outcome::Committed, None, "1.0.1".into()),
            (Action::Reload, Outcome::Committed, None, "1.0.6".into()),
            (Action::Rollback, Outcome::Committed, None, "1.0.1".into()),
        ]
    );
    node.shutdown().await;
    eprintln!(
        "a_compile_error_keeps_the_old_code_and_the_fix_reloads: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_in_two_crates_build_each_once() {
    let started = Instant::now();
    let b = FixtureCrate::new("dev_b");
    let c = FixtureCrate::new("dev_c");
    let config = dev_config("dev-bc")
        .module(b.spec(&b.library))
        .module(c.spec(&c.library));
    let node = Node::start(config).await.expect("the node starts");
    let mut events = node.subscribe();

    b.save("2.0.0", "");
    c.save("2.0.0", "");
    let mut seen = Vec::new();
    let mut reloaded = 0;
    while reloaded < 2 {
        let e = next(&mut events).await;
        if e.kind() == "module.reloaded" {
            reloaded += 1;
        }
        seen.push((e.kind(), e.module().to_string()));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("module.building", "dev_b".to_string()),
            ("module.building", "dev_c".to_string()),
            ("module.reloaded", "dev_b".to_string()),
            ("module.reloaded", "dev_c".to_string()),
        ]
    );
    assert_eq!(version(&node, "dev_b").await, "2.0.0");
    assert_eq!(version(&node, "dev_c").await, "2.0.0");
    // No second build of either: the next event is this rollback's.
    tokio::time::sleep(QUIET).await;
    node.rollback("dev_c", false).await.expect("rollback");
    assert_eq!(next(&mut events).await.kind(), "module.rolled_back");
    node.shutdown().await;
    eprintln!(
        "saves_in_two_crates_build_each_once: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_during_a_build_builds_once_more_after_it() {
    let started = Instant::now();
    let d = FixtureCrate::new("dev_d");
    let node = Node::start(dev_config("dev-d").module(d.spec(&d.library)))
        .await
        .expect("the node starts");
    let mut events = node.subscribe();

    d.save("3.0.0", "");
    assert_eq!(next(&mut events).await, building("dev_d"));
    // The build runs (cargo takes far longer than this): save again.
    d.save("3.0.1", "");
    let mut seen = vec![building("dev_d")];
    loop {
        let e = next(&mut events).await;
        let done = matches!(&e, Event::ModuleReloaded { to, .. } if to == "3.0.1");
        seen.push(e);
        if done {
            break;
        }
    }
    // Whatever else follows comes within the quiet time.
    while let Ok(Some(e)) = tokio::time::timeout(QUIET, events.next_event()).await {
        seen.push(e);
    }
    let builds = seen
        .iter()
        .filter(|e| e.kind() == "module.building")
        .count();
    assert_eq!(builds, 2, "one build, then exactly one more: {seen:#?}");
    assert!(
        seen.iter().all(|e| e.kind() != "module.reload_failed"),
        "{seen:#?}"
    );
    assert_eq!(version(&node, "dev_d").await, "3.0.1");
    node.shutdown().await;
    eprintln!(
        "a_save_during_a_build_builds_once_more_after_it: {:?}",
        started.elapsed()
    );
}
