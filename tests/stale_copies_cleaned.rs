//! No library copy outlives the node that made it (issue #8, item 18).
//!
//! A copy that fails midway (disk full, file size limit) leaves no partial
//! file. A node killed with `kill -9` leaves its private copy folder
//! (`molt-PID-XXXXXX` in the temp directory) and, if it died mid-copy, a
//! copy in it or in a configured `copy_dir`: the next node to start removes
//! the folders and copies of dead nodes that belong to its user, and leaves
//! live nodes' and foreign files alone.

use crate::common;

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use molt::{ModuleSpec, Node};

/// A PID no process has now: a child that has exited and been waited for.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("run true");
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn private_dir(path: &Path) {
    std::fs::create_dir(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_nodes_copies_are_removed_at_start() {
    let f = common::fixtures();
    let dead = dead_pid();
    let me = std::process::id();
    let temp = std::env::temp_dir();
    // A dead node's folder, with the copy it was writing when killed.
    let dead_folder = temp.join(format!("molt-{dead}-k1LLed"));
    private_dir(&dead_folder);
    std::fs::write(
        dead_folder.join(format!("libkv.{dead}.7.so")),
        vec![0u8; 4096],
    )
    .unwrap();
    // A dead node's empty folder, under the name nodes used before.
    let old_folder = temp.join(format!("molt-{dead}"));
    private_dir(&old_folder);
    // A live node's folder (this process's): kept.
    let live_folder = temp.join(format!("molt-{me}-aL1vee"));
    private_dir(&live_folder);
    // A configured copy_dir shared by nodes: only the dead one's copy goes.
    let scratch = common::scratch_dir();
    let copies = scratch.path().join("copies");
    private_dir(&copies);
    let dead_copy = copies.join(format!("libcounter.{dead}.0.so"));
    let live_copy = copies.join(format!("libcounter.{me}.999999.so"));
    let other = copies.join("notes.txt");
    for file in [&dead_copy, &live_copy, &other] {
        std::fs::write(file, b"bytes").unwrap();
    }

    let mut config = common::config("stale-copies", &[]);
    config.copy_dir = Some(copies.clone());
    let node = Node::start(config.module(ModuleSpec::new("counter", &f.counter)))
        .await
        .expect("node starts");

    assert!(
        !dead_folder.exists(),
        "the dead node's folder and copy are removed"
    );
    assert!(
        !old_folder.exists(),
        "the dead node's empty folder is removed"
    );
    assert!(
        !dead_copy.exists(),
        "the dead node's copy in copy_dir is removed"
    );
    assert!(live_folder.exists(), "a live node's folder is kept");
    assert!(live_copy.exists(), "a live node's copy is kept");
    assert!(other.exists(), "files that are not copies are kept");
    node.shutdown().await;
    std::fs::remove_dir(&live_folder).unwrap();
}

/// A `molt` process, killed when dropped.
struct Molt(Child);

impl Drop for Molt {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Molt {
    /// Runs `molt run CONFIG` through `sh -c PREFIX; exec molt ...`.
    fn spawn(prefix: &str, config: &Path, tmpdir: &Path) -> Molt {
        let script = format!("{prefix}\nexec \"$0\" run \"$1\"");
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_molt"))
            .arg(config)
            .env("TMPDIR", tmpdir)
            .env(
                "MOLT_ADMIN_TOKEN",
                "a-token-for-this-test-only-0123456789abcdef",
            )
            .env_remove("MOLT_ADMIN_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run molt");
        Molt(child)
    }

    /// Waits (at most 60 s) for the process to exit; its status and output.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                let mut out = String::new();
                for pipe in [
                    self.0
                        .stdout
                        .take()
                        .map(|p| Box::new(p) as Box<dyn std::io::Read>),
                    self.0
                        .stderr
                        .take()
                        .map(|p| Box::new(p) as Box<dyn std::io::Read>),
                ]
                .into_iter()
                .flatten()
                {
                    let mut pipe = pipe;
                    let _ = pipe.read_to_string(&mut out);
                }
                return (status, out);
            }
            assert!(Instant::now() < deadline, "molt did not exit within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn write_config(dir: &Path, library: &Path, copy_dir: Option<&Path>) -> PathBuf {
    let mut text = String::from(
        "[node]\nname = \"stale\"\nhot_reload = false\nadmin_listen = \"127.0.0.1:0\"\n",
    );
    if let Some(copies) = copy_dir {
        text += &format!("copy_dir = {:?}\n", copies.display().to_string());
    }
    text += &format!(
        "\n[modules.counter]\nlibrary = {:?}\n",
        library.display().to_string()
    );
    let path = dir.join("molt.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Waits (at most 60 s) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_failed_copy_leaves_no_file() {
    let f = common::fixtures();
    let scratch = common::scratch_dir();
    let copies = scratch.path().join("copies");
    private_dir(&copies);
    let config = write_config(scratch.path(), &f.counter, Some(&copies));
    let size = std::fs::metadata(&f.counter).unwrap().len();
    assert!(
        size > 64 << 10,
        "the library is larger than the file size limit"
    );
    // A file size limit of 32-64 KiB (sh counts 512- or 1024-byte blocks),
    // with SIGXFSZ ignored: the copy's write fails with EFBIG midway.
    let molt = Molt::spawn("trap '' XFSZ\nulimit -f 64", &config, scratch.path());
    let (status, out) = molt.finish();
    assert!(
        !status.success(),
        "the node cannot start without its library: {out}"
    );
    assert!(
        out.contains(&f.counter.display().to_string()),
        "the error names the library: {out}"
    );
    assert!(
        out.contains("File too large"),
        "the copy hit the limit: {out}"
    );
    assert_eq!(
        entries(&copies),
        Vec::<PathBuf>::new(),
        "no partial copy is left: {out}"
    );
}

#[test]
fn a_killed_nodes_folder_is_removed_at_the_next_start() {
    let f = common::fixtures();
    let scratch = common::scratch_dir();
    let tmpdir = scratch.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let config = write_config(scratch.path(), &f.counter, None);

    let first = Molt::spawn("", &config, &tmpdir);
    let pid = first.0.id();
    let prefix = format!("molt-{pid}-");
    let folder_of = |prefix: &str| {
        entries(&tmpdir)
            .into_iter()
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
    };
    wait_for("the first node's copy folder", || {
        folder_of(&prefix).is_some()
    });
    let folder = folder_of(&prefix).unwrap();
    drop(first); // SIGKILL: no shutdown, the folder stays.
    assert!(folder.exists(), "a killed node leaves its folder");

    let second = Molt::spawn("", &config, &tmpdir);
    let second_prefix = format!("molt-{}-", second.0.id());
    wait_for("the second node's copy folder", || {
        folder_of(&second_prefix).is_some()
    });
    assert!(
        !folder.exists(),
        "the next node removed {}",
        folder.display()
    );
    drop(second);
}
