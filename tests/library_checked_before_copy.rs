//! A library file is checked before a byte of it is copied (issue #8, items 3
//! and 4; docs/semantics.md "Loading and libraries"): it must be a regular file
//! (a FIFO, a directory or a device is refused before it is opened for a
//! blocking read) no larger than `limits.max_library_bytes`. Anything else
//! fails in prepare at once, naming the file and the cause, without creating a
//! copy; the module keeps serving and is not left reloading.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use counter_proto::{Msg, Proto, Reply};
use molt::{Error, Event, LoadCause, ModuleSpec, Node, NodeConfig, ReloadOptions};

/// A node serving `counter` (total 5), allowed to load from `dir`, copying
/// into `copies`.
async fn node(name: &str, dir: &Path, copies: &Path) -> Node {
    let f = common::fixtures();
    let mut config: NodeConfig = common::config(name, &[dir]);
    config.copy_dir = Some(copies.to_path_buf());
    let node = Node::start(config.module(ModuleSpec::new("counter", &f.counter)))
        .await
        .expect("node starts");
    let counter = node.module::<Proto>("counter").unwrap();
    assert_eq!(counter.call(Msg::Add(5)).await.unwrap(), Reply::Total(5));
    node
}

/// A private folder for the copies (the loader refuses others' folders).
fn copies() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("copies")
        .tempdir()
        .expect("temp dir")
}

/// The node still serves `counter` with its state and can reload it.
async fn still_serving(node: &Node) {
    let counter = node.module::<Proto>("counter").unwrap();
    assert_eq!(counter.call(Msg::Add(1)).await.unwrap(), Reply::Total(6));
    let status = node.status().await.unwrap();
    assert!(
        !status.module("counter").unwrap().reloading,
        "the module is not left reloading"
    );
    node.reload(
        "counter",
        ReloadOptions::library(&common::fixtures().counter_v2),
    )
    .await
    .expect("the next reload works");
}

/// Reloads `counter` from `library`, failing the test past 20 s.
async fn reload_from(node: &Node, library: &Path) -> Error {
    tokio::time::timeout(
        Duration::from_secs(20),
        node.reload("counter", ReloadOptions::library(library)),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the reload from {} did not finish within 20 s",
            library.display()
        )
    })
    .expect_err("the reload is refused")
}

/// A FIFO at a path, made with `mkfifo`. On drop it opens the FIFO for
/// writing from a thread of its own, which ends a read blocked on it (a
/// loader without the fix), so the failing test can end instead of hanging.
struct Fifo(PathBuf);

impl Fifo {
    fn make(path: PathBuf) -> Fifo {
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("run mkfifo");
        assert!(made.success());
        Fifo(path)
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        let path = self.0.clone();
        // Blocks while nobody reads; the process exits regardless.
        std::thread::spawn(move || std::fs::OpenOptions::new().write(true).open(path));
    }
}

fn assert_fifo_refused(err: &Error, fifo: &Path) {
    let message = err.to_string();
    assert!(
        matches!(
            err,
            Error::Load { path, cause: LoadCause::NotARegularFile { .. } } if path == fifo
        ),
        "{message}"
    );
    assert!(
        message.contains(&fifo.display().to_string()) && message.contains("FIFO"),
        "the error names the file and the cause: {message}"
    );
}

fn copies_left(copies: &Path) -> Vec<String> {
    std::fs::read_dir(copies)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_fails_in_prepare_at_once() {
    let dir = common::scratch_dir();
    let copies = copies();
    let fifo = Fifo::make(dir.path().join("libcounter_fifo.so"));
    let node = node("fifo-library", dir.path(), copies.path()).await;

    let err = reload_from(&node, &fifo.0).await;
    assert_fifo_refused(&err, &fifo.0);
    assert!(copies_left(copies.path()).is_empty());
    still_serving(&node).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_as_a_configured_library_fails_the_start_at_once() {
    let dir = common::scratch_dir();
    let fifo = Fifo::make(dir.path().join("libcounter.so"));
    let config = common::config("fifo-configured", &[dir.path()])
        .module(ModuleSpec::new("counter", &fifo.0));
    let err = tokio::time::timeout(Duration::from_secs(20), Node::start(config))
        .await
        .expect("the start answers within 20 s")
        .expect_err("the node does not start on a FIFO");
    assert_fifo_refused(&err, &fifo.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_appearing_in_a_watched_folder_fails_in_prepare() {
    let dir = common::scratch_dir();
    let copies = copies();
    let lib = dir.path().join("libcounter.so");
    std::fs::copy(&common::fixtures().counter, &lib).unwrap();
    let mut config = common::config("fifo-watched", &[dir.path()]);
    config.copy_dir = Some(copies.path().to_path_buf());
    config.hot_reload = true;
    let node = Node::start(config.module(ModuleSpec::new("counter", &lib)))
        .await
        .expect("node starts");
    let counter = node.module::<Proto>("counter").unwrap();
    assert_eq!(counter.call(Msg::Add(5)).await.unwrap(), Reply::Total(5));
    let mut events = node.subscribe();

    std::fs::remove_file(&lib).unwrap();
    let fifo = Fifo::make(lib.clone());
    let failed = tokio::time::timeout(
        Duration::from_secs(20),
        common::next_event(&mut events, "module.reload_failed"),
    )
    .await
    .expect("the watcher's reload fails within 20 s");
    match failed {
        Event::ModuleReloadFailed { name, phase, error } => {
            assert_eq!((name.as_str(), phase.as_str()), ("counter", "prepare"));
            assert!(
                error.contains(&fifo.0.display().to_string()) && error.contains("FIFO"),
                "the error names the file and the cause: {error}"
            );
        }
        other => panic!("unexpected event {other:?}"),
    }
    still_serving(&node).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_fails_in_prepare() {
    let dir = common::scratch_dir();
    let copies = copies();
    let folder = dir.path().join("libcounter_dir.so");
    std::fs::create_dir(&folder).unwrap();
    let node = node("dir-library", dir.path(), copies.path()).await;

    let err = reload_from(&node, &folder).await;
    assert!(
        matches!(
            &err,
            Error::Load { path, cause: LoadCause::NotARegularFile { kind } }
                if path == &folder && kind == "a directory"
        ),
        "{err}"
    );
    still_serving(&node).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_size_cap_is_refused_without_a_copy() {
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let copies = copies();
    // A valid library, made 1 GiB long by a hole at its end (cheap: sparse).
    let big = dir.path().join("libcounter_big.so");
    std::fs::copy(&f.counter_v2, &big).unwrap();
    let size = 1u64 << 30;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(size)
        .unwrap();
    let node = node("big-library", dir.path(), copies.path()).await;
    let max = molt::Limits::default().max_library_bytes;
    assert!(max < size);

    let err = reload_from(&node, &big).await;
    let message = err.to_string();
    assert!(
        matches!(
            &err,
            Error::Load { path, cause: LoadCause::TooLarge { size: s, max: m } }
                if path == &big && *s == size && *m == max
        ),
        "{message}"
    );
    assert!(
        message.contains(&big.display().to_string()) && message.contains("max_library_bytes"),
        "the error names the file and the cap: {message}"
    );
    assert!(
        copies_left(copies.path()).is_empty(),
        "nothing was copied: {:?}",
        copies_left(copies.path())
    );
    still_serving(&node).await;
    node.shutdown().await;
}
