//! A library file is checked before a byte of it is copied (issue #8,
//! items 3 and 4; DESIGN.md §3): it must be a regular file (a FIFO, a
//! directory or a device is refused before it is opened for a blocking
//! read) no larger than `limits.max_library_bytes`. Anything else fails in
//! prepare at once, naming the file and the cause, without creating a
//! copy; the module keeps serving and is not left reloading.

mod common;

use std::path::Path;
use std::time::Duration;

use counter_proto::{Msg, Proto, Reply};
use molt::{Error, LoadCause, ModuleSpec, Node, NodeConfig, ReloadOptions};

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
    match tokio::time::timeout(
        Duration::from_secs(20),
        node.reload("counter", ReloadOptions::library(library)),
    )
    .await
    {
        Ok(result) => result.expect_err("the reload is refused"),
        Err(_) => {
            // Unblock a loader stuck reading a FIFO, so the test can end.
            let _ = std::fs::OpenOptions::new().write(true).open(library);
            panic!(
                "the reload from {} did not finish within 20 s",
                library.display()
            );
        }
    }
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
    let fifo = dir.path().join("libcounter_fifo.so");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let node = node("fifo-library", dir.path(), copies.path()).await;

    let err = reload_from(&node, &fifo).await;
    let message = err.to_string();
    assert!(
        matches!(
            &err,
            Error::Load { path, cause: LoadCause::NotARegularFile { .. } } if path == &fifo
        ),
        "{message}"
    );
    assert!(
        message.contains(&fifo.display().to_string()) && message.contains("FIFO"),
        "the error names the file and the cause: {message}"
    );
    assert!(copies_left(copies.path()).is_empty());
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
