//! A FIFO never hangs the node (issue #8 item 3): a FIFO as the config file
//! (at start and when the watcher re-reads it) or as the audit file is
//! refused at once with an error naming it; a FIFO as a module library
//! never blocks the supervisor (status and `/healthz` keep answering, the
//! add fails naming the file); and SIGTERM ends a `molt run` whose
//! supervisor is stuck, within `limits.shutdown_timeout` plus a margin, a
//! second SIGTERM at once.
#![cfg(unix)]

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::MoltProcess;
use molt::{ModuleSpec, Node};

/// Far more than any of these needs; a hang fails the test instead of
/// blocking the suite.
const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn a_fifo_config_file_is_refused_at_once() {
    let dir = common::scratch_dir();
    let fifo = dir.path().join("fifo.toml");
    common::mkfifo(&fifo);
    let mut molt = MoltProcess::start(&["run", fifo.to_str().unwrap()], dir.path());
    let status = molt.wait_exit(DEADLINE).unwrap_or_else(|| {
        panic!(
            "molt run on a FIFO config did not exit within {DEADLINE:?}:\n{}",
            molt.output()
        )
    });
    let out = molt.output();
    assert_eq!(status.code(), Some(2), "an invalid configuration: {out}");
    assert!(
        out.contains(fifo.to_str().unwrap()) && out.contains("not a regular file (a FIFO)"),
        "names the file and why: {out}"
    );
}

#[test]
fn a_fifo_history_file_is_refused_at_once() {
    let dir = common::scratch_dir();
    let fifo = dir.path().join("history.fifo");
    common::mkfifo(&fifo);
    let config = dir.path().join("molt.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"fifo-history\"\nlibrary_dirs = [{:?}]\n\
             admin_listen = \"127.0.0.1:0\"\nhistory_file = \"history.fifo\"\n",
            dir.path()
        ),
    )
    .unwrap();
    let mut molt = MoltProcess::start(&["run", config.to_str().unwrap()], dir.path());
    let status = molt.wait_exit(DEADLINE).unwrap_or_else(|| {
        panic!(
            "molt run with a FIFO history file did not exit within {DEADLINE:?}:\n{}",
            molt.output()
        )
    });
    let out = molt.output();
    assert_eq!(status.code(), Some(1), "the node cannot start: {out}");
    assert!(
        out.contains(fifo.to_str().unwrap()) && out.contains("not a regular file (a FIFO)"),
        "names the file and why: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_replaced_by_a_fifo_is_rejected_and_the_node_keeps_answering() {
    let dir = common::scratch_dir();
    let config = dir.path().join("molt.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"fifo-watch\"\nlibrary_dirs = [{:?}]\n",
            dir.path()
        ),
    )
    .unwrap();
    let node = Node::start_from_file(&config).await.expect("node starts");
    let mut events = node.subscribe();
    let fifo = dir.path().join("fifo.tmp");
    common::mkfifo(&fifo);
    std::fs::rename(&fifo, &config).unwrap();
    let rejected = common::next_event(&mut events, "config.rejected").await;
    let json = rejected.to_json();
    assert!(
        json.contains(config.to_str().unwrap()) && json.contains("FIFO"),
        "names the file and why: {json}"
    );
    let status = tokio::time::timeout(DEADLINE, node.status())
        .await
        .expect("status answers")
        .expect("status");
    assert_eq!(status.node, "fifo-watch");
    node.shutdown().await;
}

/// Lets a loader that is reading the FIFO `path` finish: opens it for
/// writing (only possible once a reader has it open), writes a few bytes
/// that are no library, and closes it. Gives up when `done` says the load
/// ended without reading (a loader that refuses FIFOs never opens one).
async fn feed_junk_to_a_reader(path: &Path, done: impl Fn() -> bool) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    while !done() {
        // Non-blocking: fails (ENXIO) while no one reads it.
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
        if let Ok(mut writer) = opened {
            let _ = writer.write_all(b"not a library");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_library_never_blocks_the_supervisor() {
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let fifo = dir.path().join("libfifo.so");
    common::mkfifo(&fifo);
    let config = common::config("fifo-library", &[dir.path()]).module(ModuleSpec::new("kv", &f.kv));
    let node = Node::start(config).await.expect("node starts");
    let server = molt::http::serve(&node, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .expect("admin server");
    let addr = server.local_addr();

    let admin = node.admin();
    let spec = ModuleSpec::new("fifo", &fifo);
    let adding = tokio::spawn(async move { admin.add_module(spec).await });

    // While the library loads (or after it was refused), the node answers.
    for _ in 0..3 {
        let status = tokio::time::timeout(DEADLINE, node.status())
            .await
            .expect("status answers while a library loads")
            .expect("status");
        assert!(status.modules.iter().any(|m| m.name == "kv"), "{status:?}");
        let healthz =
            tokio::task::spawn_blocking(move || common::http_get(addr, "/healthz", DEADLINE))
                .await
                .unwrap()
                .expect("/healthz answers while a library loads");
        assert_eq!(healthz.0, 200, "{healthz:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    feed_junk_to_a_reader(&fifo, || adding.is_finished()).await;
    let added = tokio::time::timeout(DEADLINE, adding)
        .await
        .expect("the add ends")
        .unwrap();
    let e = added.expect_err("a FIFO is no library");
    assert!(
        e.to_string().contains(fifo.to_str().unwrap()),
        "names the file: {e}"
    );
    let status = node.status().await.unwrap();
    assert!(
        status.modules.iter().all(|m| m.name != "fifo"),
        "not added: {status:?}"
    );
    server.shutdown().await;
    node.shutdown().await;
}

/// A `molt run` config whose module `fault` starts one instance; a second
/// instance's `init` hangs (a minute), so scaling to `instances` 2 keeps
/// the supervisor busy.
fn hanging_scale_config(dir: &Path, instances: u32, shutdown_timeout_ms: u64) -> String {
    let f = common::fixtures();
    let lib_dir = f.fault.parent().unwrap();
    format!(
        "[node]\nname = \"busy\"\nlibrary_dirs = [{lib_dir:?}, {dir:?}]\n\
         admin_listen = \"127.0.0.1:0\"\ndebounce_ms = 5\n\n\
         [node.limits]\nadmin_timeout_ms = 200\nshutdown_timeout_ms = {shutdown_timeout_ms}\n\n\
         [modules.fault]\nlibrary = {:?}\ninstances = {instances}\n\n\
         [modules.fault.config]\nonly_instance = 1\n\
         fault = {{ at = \"Init\", how = {{ Hang = {{ ms = 60000 }} }} }}\n",
        f.fault
    )
}

/// Starts `molt run` on the hanging-scale config, then makes its
/// supervisor busy (the config file asks for the second instance) and
/// waits until `/healthz` says so (503 `busy`, within the admin timeout).
fn busy_molt_run(dir: &Path, shutdown_timeout_ms: u64) -> MoltProcess {
    let config = dir.join("molt.toml");
    std::fs::write(&config, hanging_scale_config(dir, 1, shutdown_timeout_ms)).unwrap();
    let mut molt = MoltProcess::start(&["run", config.to_str().unwrap()], dir);
    let line = molt.wait_for_line("HTTP admin on http://", DEADLINE);
    let addr = common::admin_addr_of(&line);
    let tmp = dir.join("molt.toml.tmp");
    std::fs::write(&tmp, hanging_scale_config(dir, 2, shutdown_timeout_ms)).unwrap();
    std::fs::rename(&tmp, &config).unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let answer = common::http_get(addr, "/healthz", DEADLINE)
            .unwrap_or_else(|| panic!("/healthz did not answer:\n{}", molt.output()));
        if answer.0 == 503 {
            assert!(answer.1.contains("\"busy\""), "{answer:?}");
            return molt;
        }
        assert_eq!(answer.0, 200, "{answer:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "the supervisor never got busy:\n{}",
            molt.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_ends_a_busy_node_within_the_shutdown_bound() {
    let dir = common::scratch_dir();
    let mut molt = busy_molt_run(dir.path(), 500);
    molt.signal("TERM");
    let status = molt.wait_exit(DEADLINE).unwrap_or_else(|| {
        panic!(
            "molt run did not end within {DEADLINE:?} of SIGTERM:\n{}",
            molt.output()
        )
    });
    let out = molt.output();
    assert!(!status.success(), "an abandoned stop is a failure: {out}");
    assert!(
        out.contains("did not stop within") && out.contains("abandoning stopping the modules"),
        "says what it abandoned: {out}"
    );
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let dir = common::scratch_dir();
    // A shutdown bound longer than the test waits: only the second signal
    // can end it in time.
    let mut molt = busy_molt_run(dir.path(), 600_000);
    molt.signal("TERM");
    molt.wait_for_line("molt: stopping", DEADLINE);
    molt.signal("TERM");
    let status = molt.wait_exit(DEADLINE).unwrap_or_else(|| {
        panic!(
            "molt run did not end within {DEADLINE:?} of a second SIGTERM:\n{}",
            molt.output()
        )
    });
    let out = molt.output();
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(out.contains("second signal"), "{out}");
}
