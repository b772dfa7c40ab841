//! A failed reload leaves the old code serving with exactly its old state
//! (docs/semantics.md "Rollback and forced reloads"): one test per way a reload
//! can fail.
//!
//! Every case starts a node, gives the module real state, subscribes to the
//! events, attempts the reload and checks
//! (a) the error the reload returns (`Error::Load` for `prepare`,
//!     `Error::ReloadFailed { phase }` for the later phases),
//! (b) the `module.reload_failed` event naming the phase,
//! (c) the old code version serving exactly its pre-reload state,
//! (d) new messages being handled afterwards,
//! (e) the history entry of the attempt,
//!
//! and then proves the module is not wedged with one successful reload.

use crate::common;

use common::fault::{log as fault_log, push as fault_push, tag as fault_tag};
use common::kv::{dump as kv_dump, put as kv_put, version as kv_version};

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::FaultProto;
use counter_proto::{Msg as CounterMsg, Proto as CounterProto, Reply as CounterReply};
use kv_proto::{Msg, Proto as KvProto};
use molt::{
    Action, Error, Event, EventStream, HistoryEntry, Limits, LoadCause, ModuleHandle, ModuleSpec,
    ModuleStatus, Node, Outcome, Phase, ReloadOptions,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------------

/// Waits for the next `module.reload_failed` event; returns its phase and error.
async fn reload_failed_event(events: &mut EventStream, module: &str) -> (Phase, String) {
    match common::next_event(events, "module.reload_failed").await {
        Event::ModuleReloadFailed { name, phase, error } => {
            assert_eq!(name, module, "the event names the module");
            (phase, error)
        }
        other => panic!("unexpected event {other:?}"),
    }
}

/// Waits for the next `module.reloaded` event of `module`.
async fn reloaded_event(events: &mut EventStream, module: &str) -> (String, String) {
    match common::next_event(events, "module.reloaded").await {
        Event::ModuleReloaded { name, from, to, .. } => {
            assert_eq!(name, module, "the event names the module");
            (from, to)
        }
        other => panic!("unexpected event {other:?}"),
    }
}

async fn module_status(node: &Node, module: &str) -> ModuleStatus {
    node.status()
        .await
        .expect("status")
        .module(module)
        .unwrap_or_else(|| panic!("no module {module} in the status"))
        .clone()
}

async fn last_history(node: &Node, module: &str) -> HistoryEntry {
    node.history()
        .await
        .expect("history")
        .into_iter()
        .rev()
        .find(|h| h.module == module)
        .unwrap_or_else(|| panic!("no history entry for {module}"))
}

/// The history entry of a failed reload attempt.
async fn assert_history_failed(
    node: &Node,
    module: &str,
    from: &str,
    outcome: Outcome,
    phase: Phase,
) -> HistoryEntry {
    let h = last_history(node, module).await;
    assert_eq!(h.action, Action::Reload, "{h:?}");
    assert_eq!(h.outcome, outcome, "{h:?}");
    assert_eq!(h.phase, Some(phase), "{h:?}");
    assert_eq!(h.from, from, "{h:?}");
    assert!(
        h.error.as_deref().is_some_and(|e| !e.is_empty()),
        "the history keeps the error: {h:?}"
    );
    assert_eq!(h.pause_us, 0, "nothing committed: {h:?}");
    h
}

/// After a failed reload: nothing changed in the module table, and no reload
/// is marked as running.
async fn assert_table_untouched(node: &Node, module: &str, library: &Path, code_version: &str) {
    let st = module_status(node, module).await;
    assert_eq!(st.code_version, code_version, "{st:?}");
    assert_eq!(
        st.library, library,
        "the configured library is unchanged: {st:?}"
    );
    assert_eq!(
        st.previous, None,
        "a failed reload does not shift the library versions: {st:?}"
    );
    assert!(!st.reloading, "the reloading flag is cleared: {st:?}");
}

// ---------------------------------------------------------------------------
// kv helpers
// ---------------------------------------------------------------------------

/// Puts, overwrites, deletes and journal pushes: real state.
async fn fill_kv(kv: &ModuleHandle<KvProto>) {
    for i in 0..30u64 {
        kv_put(kv, &format!("k{i}"), &format!("value {i}")).await;
        kv.call(Msg::Push {
            stream: format!("s{}", i % 4),
            seq: i * 3,
        })
        .await
        .expect("push");
    }
    kv_put(kv, "k3", "overwritten").await;
    kv.call(Msg::Delete { key: "k7".into() })
        .await
        .expect("delete");
}

/// The `prepare` failure of a kv reload (kv 1.0.0 serving): checks (a)–(e),
/// hands the cause to `check_cause`, then proves the module is not wedged
/// with a committed upgrade to kv 2.0.0.
async fn kv_reload_rejected(
    node_name: &str,
    extra_dirs: &[&Path],
    library: &Path,
    check_cause: impl FnOnce(&LoadCause),
) {
    let f = common::fixtures();
    let node =
        Node::start(common::config(node_name, extra_dirs).module(ModuleSpec::new("kv", &f.kv)))
            .await
            .expect("node starts");
    let kv = node.module::<KvProto>("kv").unwrap();
    fill_kv(&kv).await;
    let before = kv_dump(&kv).await;
    assert_eq!(before.entries.len(), 29);
    assert_eq!(kv_version(&kv).await, ("1.0.0".to_string(), 1));

    let mut events = node.subscribe();
    let result = node.reload("kv", ReloadOptions::library(library)).await;

    // (a) Error::Load naming the file as given, with the cause.
    match result {
        Err(Error::Load { path, cause }) => {
            assert_eq!(path, library, "the error names the file");
            println!("rejected {}: {cause}", library.display());
            check_cause(&cause);
        }
        Err(other) => panic!(
            "expected Error::Load for {}, got {other:?}",
            library.display()
        ),
        Ok(report) => panic!(
            "expected the reload from {} to be rejected in prepare, but it committed: {report:?}",
            library.display()
        ),
    }
    // (b) the event names the phase and the file.
    let (phase, error) = reload_failed_event(&mut events, "kv").await;
    assert_eq!(phase, Phase::Prepare);
    assert!(
        error.contains(&library.display().to_string()),
        "the event's error names the file {}: {error}",
        library.display()
    );
    // (c) the old code serves exactly its old state.
    assert_eq!(kv_version(&kv).await, ("1.0.0".to_string(), 1));
    assert_eq!(
        kv_dump(&kv).await,
        before,
        "the state is exactly the pre-reload state"
    );
    assert_table_untouched(&node, "kv", &f.kv, "1.0.0").await;
    // (d) new messages are handled.
    kv_put(&kv, "after", "rejected reload").await;
    let mut expected = before.clone();
    expected
        .entries
        .insert("after".into(), "rejected reload".into());
    assert_eq!(kv_dump(&kv).await, expected);
    // (e) the history records the rejected attempt, naming the file.
    let h = assert_history_failed(&node, "kv", "1.0.0", Outcome::Rejected, Phase::Prepare).await;
    assert_eq!(h.to, library.display().to_string(), "{h:?}");
    assert!(
        h.error
            .as_deref()
            .unwrap_or_default()
            .contains(&library.display().to_string()),
        "{h:?}"
    );

    // Not wedged: a good reload commits and carries the state over.
    let report = node
        .reload("kv", ReloadOptions::library(&f.kv_v2))
        .await
        .expect("a good reload after the rejected one commits");
    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        ("1.0.0", "2.0.0")
    );
    assert_eq!(
        reloaded_event(&mut events, "kv").await,
        ("1.0.0".into(), "2.0.0".into())
    );
    assert_eq!(kv_version(&kv).await, ("2.0.0".to_string(), 2));
    assert_eq!(kv_dump(&kv).await, expected);
    assert_eq!(last_history(&node, "kv").await.outcome, Outcome::Committed);
    node.shutdown().await;
}

/// Writes `bytes` as a library file in `dir`.
fn write_library(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write the library file");
    path
}

// ---------------------------------------------------------------------------
// fault helpers
// ---------------------------------------------------------------------------

/// Starts the fault module (config `{"tag": "a"}`) on a node with `limits`.
async fn fault_node(
    node_name: &str,
    limits: impl FnOnce(&mut Limits),
) -> (Node, ModuleHandle<FaultProto>) {
    let f = common::fixtures();
    let mut config = common::config(node_name, &[]);
    limits(&mut config.limits);
    let node = Node::start(
        config.module(ModuleSpec::new("fault", &f.fault).config(json!({ "tag": "a" }))),
    )
    .await
    .expect("node starts");
    let h = node.module::<FaultProto>("fault").unwrap();
    (node, h)
}

/// A reload of the fault module with `bad_config` fails in `phase` (its
/// error mentioning every piece of `error_has`): checks (a)–(e), then proves
/// the module is not wedged with a reload to a clean config.
async fn fault_reload_rolls_back(
    node_name: &str,
    limits: impl FnOnce(&mut Limits),
    bad_config: Value,
    phase: Phase,
    error_has: &[&str],
) {
    let f = common::fixtures();
    let (node, h) = fault_node(node_name, limits).await;
    for i in 1..=25 {
        fault_push(&h, i * 7 - 50).await;
    }
    let before = fault_log(&h).await;
    assert_eq!(before.len(), 25);
    assert_eq!(fault_tag(&h).await, "a");

    let mut events = node.subscribe();
    let result = node
        .reload(
            "fault",
            ReloadOptions::library(&f.fault).with_config(bad_config),
        )
        .await;

    // (a) ReloadFailed naming the phase; the old version keeps serving.
    let failure = match result {
        Err(Error::ReloadFailed {
            module,
            phase: failed,
            error,
            from,
        }) => {
            assert_eq!(module, "fault");
            assert_eq!(failed, phase, "the failing phase ({error})");
            assert_eq!(from, "1.0.0");
            error
        }
        Err(other) => panic!("expected Error::ReloadFailed in phase {phase}, got {other:?}"),
        Ok(report) => {
            panic!("expected the reload to fail in phase {phase}, but it committed: {report:?}")
        }
    };
    println!("reload failed in {phase}: {failure}");
    for piece in error_has {
        assert!(
            failure.contains(piece),
            "the error mentions {piece:?}: {failure}"
        );
    }
    // (b) the event.
    let (event_phase, event_error) = reload_failed_event(&mut events, "fault").await;
    assert_eq!(event_phase, phase);
    assert_eq!(event_error, failure, "the event carries the same error");
    // (c) the old load (tag "a") serves exactly its old log.
    assert_eq!(fault_tag(&h).await, "a", "the old load keeps serving");
    assert_eq!(
        fault_log(&h).await,
        before,
        "the state is exactly the pre-reload state"
    );
    assert_table_untouched(&node, "fault", &f.fault, "1.0.0").await;
    // (d) new messages are handled.
    fault_push(&h, 1000).await;
    let mut expected = before.clone();
    expected.push(1000);
    assert_eq!(fault_log(&h).await, expected);
    // (e) the history.
    let entry = assert_history_failed(&node, "fault", "1.0.0", Outcome::RolledBack, phase).await;
    assert_eq!(entry.to, "1.0.0", "{entry:?}");
    assert_eq!(entry.error.as_deref(), Some(failure.as_str()), "{entry:?}");

    // Not wedged: the same library with a clean config commits.
    let report = node
        .reload(
            "fault",
            ReloadOptions::library(&f.fault).with_config(json!({ "tag": "c" })),
        )
        .await
        .expect("a clean reload after the failed one commits");
    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        ("1.0.0", "1.0.0")
    );
    assert_eq!(
        reloaded_event(&mut events, "fault").await,
        ("1.0.0".into(), "1.0.0".into())
    );
    assert_eq!(fault_tag(&h).await, "c", "the new load serves");
    assert_eq!(fault_log(&h).await, expected, "and carried the state over");
    let st = module_status(&node, "fault").await;
    assert_eq!(st.previous.as_deref(), Some("1.0.0"), "{st:?}");
    assert!(!st.reloading, "{st:?}");
    assert_eq!(
        last_history(&node, "fault").await.outcome,
        Outcome::Committed
    );
    node.shutdown().await;
}

fn fault_at(point: &str, how: Value, tag: &str) -> Value {
    json!({ "fault": { "at": point, "how": how }, "tag": tag })
}

// ---------------------------------------------------------------------------
// prepare: the new library is rejected, nothing is touched
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_missing_library() {
    let f = common::fixtures();
    let missing = f.kv.parent().unwrap().join("libkv_does_not_exist.so");
    assert!(!missing.exists());
    kv_reload_rejected("rollback-missing", &[], &missing, |cause| {
        assert_eq!(*cause, LoadCause::NotFound);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_not_a_module() {
    let f = common::fixtures();
    kv_reload_rejected("rollback-not-a-module", &[], &f.not_a_module, |cause| {
        assert_eq!(*cause, LoadCause::NotAMoltModule);
    })
    .await;
}

/// The first half of a real module library (a partly written file).
/// docs/semantics.md "Loading and libraries": a truncated file is rejected in
/// prepare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_truncated_library() {
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let full = std::fs::read(&f.kv_v2).expect("read kv_v2");
    let half = write_library(dir.path(), "libkv_v2.so", &full[..full.len() / 2]);
    kv_reload_rejected("rollback-truncated", &[dir.path()], &half, |cause| {
        assert!(matches!(cause, LoadCause::NotALibrary(_)), "{cause:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_empty_library() {
    let dir = common::scratch_dir();
    let empty = write_library(dir.path(), "libkv.so", b"");
    kv_reload_rejected("rollback-empty", &[dir.path()], &empty, |cause| {
        assert!(matches!(cause, LoadCause::NotALibrary(_)), "{cause:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_non_elf_file() {
    let dir = common::scratch_dir();
    let text = "This is a text file, not a shared library.\n".repeat(20);
    let path = write_library(dir.path(), "libkv.so", text.as_bytes());
    kv_reload_rejected("rollback-non-elf", &[dir.path()], &path, |cause| {
        assert!(matches!(cause, LoadCause::NotALibrary(_)), "{cause:?}");
    })
    .await;
}

/// Set in the child process that runs a case which may crash the process.
const CHILD: &str = "MOLT_TEST_ISOLATED_CHILD";

/// Runs `test` of this binary in a child process; true in the child (which
/// then runs the body). A crash of the child (e.g. SIGBUS) fails the test in
/// the parent instead of killing every other test of this binary.
async fn in_child_process(test: &'static str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    // The harness names a test by its path below the crate root
    // (`rollback_on_failure::name` in the suite binary).
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let path = if module.is_empty() {
        test.to_string()
    } else {
        format!("{module}::{test}")
    };
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([path.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("run the test in a child process")
    })
    .await
    .expect("child runner");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success(),
        "{test} failed in its child process ({:?}, signal {:?}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status.code(),
        out.status.signal()
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran the test:\n{stdout}"
    );
    false
}

/// A library cut inside its loadable segments (the first 64 KiB). glibc maps
/// the segments past the end of the file, and touching them raises SIGBUS: a
/// runtime that hands such a file to `dlopen` crashes the whole node. It runs
/// in a child process so that a crash shows up as this test's failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_library_truncated_inside_its_segments() {
    if !in_child_process("rollback_on_library_truncated_inside_its_segments").await {
        return;
    }
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let full = std::fs::read(&f.kv_v2).expect("read kv_v2");
    let cut = write_library(dir.path(), "libkv_v2.so", &full[..64 * 1024]);
    kv_reload_rejected(
        "rollback-truncated-segments",
        &[dir.path()],
        &cut,
        |cause| {
            assert!(matches!(cause, LoadCause::NotALibrary(_)), "{cause:?}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_wrong_module_name() {
    let f = common::fixtures();
    kv_reload_rejected("rollback-wrong-module", &[], &f.counter, |cause| {
        assert_eq!(
            *cause,
            LoadCause::WrongModule {
                expected: "kv".into(),
                found: "counter".into()
            }
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_library_outside_library_dirs() {
    let f = common::fixtures();
    // A valid kv library, but in a directory the node does not allow.
    let outside = tempfile::Builder::new()
        .prefix("molt-not-a-library-dir")
        .tempdir()
        .expect("temp dir");
    let copy = outside.path().join("libkv_v2.so");
    std::fs::copy(&f.kv_v2, &copy).expect("copy kv_v2");
    let outside_dir = outside.path().canonicalize().unwrap().display().to_string();
    kv_reload_rejected("rollback-outside-dirs", &[], &copy, |cause| match cause {
        LoadCause::OutsideLibraryDirs { allowed } => {
            assert!(
                !allowed.is_empty(),
                "the error lists the allowed directories"
            );
            assert!(!allowed.contains(&outside_dir), "{allowed}");
        }
        other => panic!("expected OutsideLibraryDirs, got {other:?}"),
    })
    .await;
}

/// The abi_mismatch fixture declares module "counter" but was built against a
/// molt-abi with another root-module layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_abi_layout_mismatch() {
    let f = common::fixtures();
    let node = common::start(
        "rollback-abi-mismatch",
        ModuleSpec::new("counter", &f.counter),
    )
    .await;
    let counter = node.module::<CounterProto>("counter").unwrap();
    for i in 1..=10 {
        counter.call(CounterMsg::Add(i)).await.expect("add");
    }
    assert_eq!(
        counter.call(CounterMsg::Get).await.unwrap(),
        CounterReply::Total(55)
    );

    let mut events = node.subscribe();
    let err = node
        .reload("counter", ReloadOptions::library(&f.abi_mismatch))
        .await
        .expect_err("a library with another ABI layout is rejected");
    // (a)
    let text = err.to_string();
    println!(
        "ABI layout mismatch error ({} bytes, {} lines):\n{text}",
        text.len(),
        text.lines().count()
    );
    match &err {
        Error::Load {
            path,
            cause: LoadCause::LayoutMismatch(message),
        } => {
            assert_eq!(path, &f.abi_mismatch);
            assert!(!message.trim().is_empty());
        }
        other => panic!("expected a LayoutMismatch load error, got {other:?}"),
    }
    assert!(text.to_lowercase().contains("mismatch"), "{text}");
    assert!(
        text.len() <= 1000 && text.lines().count() <= 10,
        "the message is short (the full abi_stable report goes to the debug log): {text}"
    );
    // (b)
    let (phase, error) = reload_failed_event(&mut events, "counter").await;
    assert_eq!(phase, Phase::Prepare);
    assert!(
        error.contains(&f.abi_mismatch.display().to_string()),
        "{error}"
    );
    // (c)
    assert_eq!(
        counter.call(CounterMsg::Get).await.unwrap(),
        CounterReply::Total(55)
    );
    assert_table_untouched(&node, "counter", &f.counter, "1.0.0").await;
    // (d)
    assert_eq!(
        counter.call(CounterMsg::Add(5)).await.unwrap(),
        CounterReply::Total(60)
    );
    // (e)
    assert_history_failed(&node, "counter", "1.0.0", Outcome::Rejected, Phase::Prepare).await;

    // Not wedged: the real v2 commits and keeps the total.
    let report = node
        .reload("counter", ReloadOptions::library(&f.counter_v2))
        .await
        .expect("counter v2 commits");
    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        ("1.0.0", "2.0.0")
    );
    assert_eq!(
        counter.call(CounterMsg::Get).await.unwrap(),
        CounterReply::Total(60)
    );
    assert_eq!(module_status(&node, "counter").await.code_version, "2.0.0");
    node.shutdown().await;
}

// ---------------------------------------------------------------------------
// migrate
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_migrate_error() {
    fault_reload_rolls_back(
        "rollback-migrate-error",
        |_| {},
        fault_at("Migrate", json!("Error"), "b"),
        Phase::Migrate,
        &["injected error at Migrate"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_migrate_panic() {
    fault_reload_rolls_back(
        "rollback-migrate-panic",
        |_| {},
        fault_at("Migrate", json!("Panic"), "b"),
        Phase::Migrate,
        &["injected panic at Migrate", "panicked"],
    )
    .await;
}

/// counter 2.0.0 (state version 2) serving; a reload to counter 1.0.0 (state
/// version 1) asks 2.0.0 to down-migrate (docs/semantics.md "Rollback and
/// forced reloads"), which it cannot: the reload fails in snapshot and 2.0.0
/// keeps serving its state. (A library that can be downgraded to commits:
/// tests/version_stack.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_when_the_serving_code_cannot_downgrade() {
    let f = common::fixtures();
    let node = common::start(
        "rollback-cannot-downgrade",
        ModuleSpec::new("counter", &f.counter_v2),
    )
    .await;
    let counter = node.module::<CounterProto>("counter").unwrap();
    counter.call(CounterMsg::Add(41)).await.expect("add");
    let get = || async { counter.call(CounterMsg::Get).await.expect("get") };
    assert_eq!(get().await, CounterReply::Total(41));

    let mut events = node.subscribe();
    let result = node
        .reload("counter", ReloadOptions::library(&f.counter))
        .await;
    // (a)
    let error = match result {
        Err(Error::ReloadFailed {
            module,
            phase,
            error,
            from,
        }) => {
            assert_eq!(
                (module.as_str(), phase, from.as_str()),
                ("counter", Phase::Snapshot, "2.0.0")
            );
            error
        }
        other => panic!("expected ReloadFailed in snapshot, got {other:?}"),
    };
    assert!(
        error.contains("cannot downgrade its state from version 2 to 1"),
        "{error}"
    );
    // (b)
    let (phase, event_error) = reload_failed_event(&mut events, "counter").await;
    assert_eq!(phase, Phase::Snapshot);
    assert_eq!(event_error, error);
    // (c) 2.0.0 serves with exactly its state.
    assert_eq!(get().await, CounterReply::Total(41));
    assert_table_untouched(&node, "counter", &f.counter_v2, "2.0.0").await;
    // (d)
    assert_eq!(
        counter.call(CounterMsg::Add(1)).await.unwrap(),
        CounterReply::Total(42)
    );
    // (e)
    let h = assert_history_failed(
        &node,
        "counter",
        "2.0.0",
        Outcome::RolledBack,
        Phase::Snapshot,
    )
    .await;
    assert_eq!(
        h.to, "1.0.0",
        "the library loaded, so the history names its version: {h:?}"
    );
    // Not wedged: reloading counter 2.0.0 itself commits and keeps the total.
    node.reload("counter", ReloadOptions::library(&f.counter_v2))
        .await
        .expect("counter 2 → counter 2 commits");
    assert_eq!(get().await, CounterReply::Total(42));
    node.shutdown().await;
}

// ---------------------------------------------------------------------------
// swap (the new code's start)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_start_error() {
    fault_reload_rolls_back(
        "rollback-start-error",
        |_| {},
        fault_at("Start", json!("Error"), "b"),
        Phase::Swap,
        &["injected error at Start"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_start_panic() {
    fault_reload_rolls_back(
        "rollback-start-panic",
        |_| {},
        fault_at("Start", json!("Panic"), "b"),
        Phase::Swap,
        &["injected panic at Start", "panicked"],
    )
    .await;
}

// ---------------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_verify_error() {
    fault_reload_rolls_back(
        "rollback-verify-error",
        |_| {},
        fault_at("Verify", json!("Error"), "b"),
        Phase::Verify,
        &["injected error at Verify"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_verify_panic() {
    fault_reload_rolls_back(
        "rollback-verify-panic",
        |_| {},
        fault_at("Verify", json!("Panic"), "b"),
        Phase::Verify,
        &["injected panic at Verify", "panicked"],
    )
    .await;
}

/// `verify` hangs past the node's verify timeout (1 s): until the test ends
/// (it runs on the blocking pool, so the clean reload that follows does not
/// wait for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_verify_timeout() {
    let release = common::Release::new();
    fault_reload_rolls_back(
        "rollback-verify-timeout",
        |limits| limits.verify_timeout = Duration::from_secs(1),
        fault_at("Verify", release.hang(), "b"),
        Phase::Verify,
        &["verify did not finish within 1s"],
    )
    .await;
    release.now();
}

// ---------------------------------------------------------------------------
// snapshot of the old code
// ---------------------------------------------------------------------------

/// A module whose snapshot fails cannot start: `pre_start` records the start
/// state as the instance's last good snapshot. `Node::start` fails with
/// `StartFailed` naming the module, and leaves nothing running behind (a
/// node of the same name starts afterwards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_snapshot_error_at_start() {
    let f = common::fixtures();
    let name = "rollback-snapshot-at-start";
    let spec = ModuleSpec::new("fault", &f.fault).config(fault_at("Snapshot", json!("Error"), "a"));
    let result = Node::start(common::config(name, &[]).module(spec)).await;
    match result {
        Err(Error::StartFailed {
            module,
            instance,
            error,
        }) => {
            println!("start failed: {error}");
            assert_eq!(module, "fault");
            assert_eq!(instance, 0);
            assert!(error.contains("snapshot"), "{error}");
            assert!(error.contains("injected error at Snapshot"), "{error}");
        }
        Err(other) => panic!("expected StartFailed, got {other:?}"),
        Ok(node) => {
            node.shutdown().await;
            panic!("a module whose first snapshot fails must not start");
        }
    }
    // Nothing was left half-started: the same node name starts cleanly.
    let node = Node::start(
        common::config(name, &[])
            .module(ModuleSpec::new("fault", &f.fault).config(json!({ "tag": "a" }))),
    )
    .await
    .expect("the node starts with a clean config");
    let h = node.module::<FaultProto>("fault").unwrap();
    fault_push(&h, 1).await;
    assert_eq!(fault_log(&h).await, vec![1]);
    node.shutdown().await;
}

/// The *old* code's snapshot fails during a reload. Getting such code to
/// serve takes a committed reload to a config with a snapshot fault, which
/// only commits with `verify_round_trip` off (the round trip snapshots the
/// new state). The old code keeps serving; since every upgrade starts with
/// `old.snapshot()`, no reload can commit while that fault is configured: a
/// second attempt proves the module is not wedged (it is accepted, not
/// refused as in progress, and fails the same way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_on_snapshot_error_of_the_old_code() {
    let f = common::fixtures();
    let (node, h) = fault_node("rollback-old-snapshot", |limits| {
        limits.verify_round_trip = false
    })
    .await;
    for i in 1..=10 {
        fault_push(&h, i).await;
    }
    node.reload(
        "fault",
        ReloadOptions::library(&f.fault).with_config(fault_at("Snapshot", json!("Error"), "b")),
    )
    .await
    .expect("without the round trip, a config with a snapshot fault commits");
    assert_eq!(fault_tag(&h).await, "b");
    for i in 11..=20 {
        fault_push(&h, i).await;
    }
    let before = fault_log(&h).await;
    assert_eq!(before, (1..=20).collect::<Vec<i64>>());

    let mut events = node.subscribe();
    for attempt in 1..=2 {
        let result = node
            .reload(
                "fault",
                ReloadOptions::library(&f.fault).with_config(json!({ "tag": "c" })),
            )
            .await;
        // (a)
        let error = match result {
            Err(Error::ReloadFailed {
                module,
                phase,
                error,
                from,
            }) => {
                assert_eq!(
                    (module.as_str(), phase, from.as_str()),
                    ("fault", Phase::Snapshot, "1.0.0")
                );
                error
            }
            other => panic!("attempt {attempt}: expected ReloadFailed in snapshot, got {other:?}"),
        };
        assert!(error.contains("injected error at Snapshot"), "{error}");
        // (b)
        let (phase, event_error) = reload_failed_event(&mut events, "fault").await;
        assert_eq!(phase, Phase::Snapshot);
        assert_eq!(event_error, error);
        // (c)
        assert_eq!(fault_tag(&h).await, "b", "the old load keeps serving");
        assert_eq!(fault_log(&h).await, before);
        let st = module_status(&node, "fault").await;
        assert_eq!(st.code_version, "1.0.0");
        assert!(!st.reloading, "{st:?}");
        // (e)
        let entry = assert_history_failed(
            &node,
            "fault",
            "1.0.0",
            Outcome::RolledBack,
            Phase::Snapshot,
        )
        .await;
        assert_eq!(entry.error.as_deref(), Some(error.as_str()));
    }
    // (d)
    fault_push(&h, 21).await;
    assert_eq!(fault_log(&h).await, (1..=21).collect::<Vec<i64>>());
    assert_eq!(fault_tag(&h).await, "b");
    node.shutdown().await;
}
