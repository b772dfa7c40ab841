//! The folder library copies are loaded from is never one somebody else
//! can write to (issue #8, item 1).
//!
//! The default folder is created fresh for each node (`molt-PID-XXXXXX`,
//! mode 0700), so a folder pre-created at the old predictable name
//! `<tmp>/molt-PID`, world-writable with symbolic links planted at the copy
//! names, is never used: the links' target stays untouched. A configured
//! `copy_dir` that is a symbolic link, writable by group or others, or
//! owned by another user makes the node refuse to start, naming the folder
//! and the cause. A copy is created exclusively: a link planted at its name
//! (in a folder only the node's user can write to) fails the load and its
//! target stays untouched.

use crate::common;

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use molt::{Error, ModuleSpec, Node, NodeConfig, ReloadOptions};

const VICTIM: &[u8] = b"a file the node must never write\n";

/// A file the planted links point to.
fn victim(dir: &Path) -> PathBuf {
    let path = dir.join("victim");
    std::fs::write(&path, VICTIM).unwrap();
    path
}

/// Plants links to `target` at every copy name the loader could use for
/// `libcounter.so` (`libcounter.PID.N.so`) in `dir`.
fn plant_links(dir: &Path, target: &Path) {
    for n in 0..256 {
        let name = format!("libcounter.{}.{n}.so", std::process::id());
        symlink(target, dir.join(name)).unwrap();
    }
}

fn with_copy_dir(name: &str, copy_dir: &Path) -> NodeConfig {
    let mut config = common::config(name, &[]);
    config.copy_dir = Some(copy_dir.to_path_buf());
    config.module(ModuleSpec::new("counter", &common::fixtures().counter))
}

/// This process's copy folders in the temp directory: `molt-PID-*`.
fn private_folders() -> Vec<PathBuf> {
    let prefix = format!("molt-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_folder_is_private_and_never_a_planted_one() {
    let f = common::fixtures();
    let scratch = common::scratch_dir();
    let target = victim(scratch.path());
    // The folder the node used to reuse, as another user could prepare it.
    let planted = std::env::temp_dir().join(format!("molt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&planted);
    std::fs::create_dir(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
    plant_links(&planted, &target);

    let node = Node::start(
        common::config("private-copies", &[]).module(ModuleSpec::new("counter", &f.counter)),
    )
    .await
    .expect("the node starts in a folder of its own");
    node.reload("counter", ReloadOptions::library(&f.counter_v2))
        .await
        .expect("reloads load from the private folder too");

    assert!(
        std::fs::read(&target).unwrap() == VICTIM,
        "the target is untouched"
    );
    let folders = private_folders();
    assert!(!folders.is_empty(), "the node copies into molt-PID-XXXXXX");
    for folder in &folders {
        let meta = std::fs::symlink_metadata(folder).unwrap();
        assert!(meta.is_dir(), "{}", folder.display());
        assert_eq!(
            meta.mode() & 0o777,
            0o700,
            "{} is private",
            folder.display()
        );
    }
    node.shutdown().await;
    std::fs::remove_dir_all(&planted).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_copy_dir_is_refused_at_start() {
    let scratch = common::scratch_dir();

    // Group-writable.
    let shared = scratch.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o770)).unwrap();
    // A symbolic link to a private folder.
    let private = scratch.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = scratch.path().join("link");
    symlink(&private, &link).unwrap();
    // Owned by another user (the tests run as root; as anyone else chown
    // fails and that case is skipped).
    let foreign = scratch.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700)).unwrap();
    let chowned = std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).is_ok();

    let mut cases = vec![(shared, "writable by its group"), (link, "symbolic link")];
    if chowned {
        cases.push((foreign, "owned by uid 65534"));
    }
    for (dir, cause) in cases {
        let err = Node::start(with_copy_dir("unsafe-copy-dir", &dir))
            .await
            .err()
            .unwrap_or_else(|| panic!("a node with copy_dir {} must not start", dir.display()));
        let message = err.to_string();
        assert!(matches!(err, Error::Config(_)), "{message}");
        assert!(
            message.contains(&format!("copy_dir {}", dir.display())) && message.contains(cause),
            "the error names the folder and the cause ({cause}): {message}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&private).unwrap().count(),
        0,
        "nothing copied"
    );

    // The same folder, private, is accepted.
    let node = Node::start(with_copy_dir("safe-copy-dir", &private))
        .await
        .expect("a private copy_dir is accepted");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_at_the_copy_name_is_never_followed() {
    let scratch = common::scratch_dir();
    let target = victim(scratch.path());
    let copies = scratch.path().join("copies");
    std::fs::create_dir(&copies).unwrap();
    std::fs::set_permissions(&copies, std::fs::Permissions::from_mode(0o700)).unwrap();
    plant_links(&copies, &target);

    let err = Node::start(with_copy_dir("planted-copy", &copies))
        .await
        .expect_err("the load through a planted link fails");
    let message = err.to_string();
    assert!(
        message.contains("cannot create the copy")
            && message.contains(&copies.display().to_string()),
        "{message}"
    );
    assert!(
        std::fs::read(&target).unwrap() == VICTIM,
        "the target is untouched"
    );
}
