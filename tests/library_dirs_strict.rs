//! Library directories stay strict (issue #8 item 15): a config file's
//! `library` is never silently replaced by a build output elsewhere (a typo
//! is reported, naming both paths), and an empty `library_dirs` means the
//! folders of the modules the node started with: with none, nothing loads.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use molt::{Error, LoadCause, ModuleSpec, Node, NodeConfig};

/// Kills the `molt` process when the test ends, whatever happens.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_typod_library_with_a_crate_is_reported_not_replaced() {
    let root = molt::workspace_dir();
    let dir = common::scratch_dir();
    let typo = dir.path().join("libkv_typo.so");
    let file = dir.path().join("molt.toml");
    // Dev mode builds the debug profile: the fixture build made it fresh, so
    // the build here is quick.
    std::fs::write(
        &file,
        format!(
            "[node]\nname = \"strict\"\nlibrary_dirs = [{dir:?}]\nhot_reload = false\n\
             admin_listen = \"127.0.0.1:0\"\n\n[modules.kv]\nlibrary = {typo:?}\ncrate = {krate:?}\n",
            dir = dir.path().display().to_string(),
            typo = typo.display().to_string(),
            krate = root.join("modules/kv").display().to_string(),
        ),
    )
    .unwrap();
    common::fixtures();
    let child = Command::new(env!("CARGO_BIN_EXE_molt"))
        .args(["dev", file.to_str().unwrap()])
        .env_remove("MOLT_ADMIN_TOKEN")
        .env_remove("MOLT_ADMIN_ADDR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run molt");
    let mut child = Killed(child);
    let (tx, rx) = mpsc::channel();
    for out in [
        Box::new(child.0.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.0.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    // Until the process ends (both pipes closed), or it reports running.
    let mut output = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(600)) {
        let running = line.contains("running on");
        output.push(line);
        if running {
            break;
        }
    }
    let text = output.join("\n");
    assert!(
        !text.contains("running on"),
        "the node must not start on another file than the configured one:\n{text}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("molt's status") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "molt did not exit:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "{text}");
    let built = common::target_dir(&root).join("debug/libkv.so");
    let expected = format!(
        "modules.kv.library = {} does not exist; the build of crate {} produced",
        typo.display(),
        root.join("modules/kv").display()
    );
    assert!(text.contains(&expected), "{text}");
    assert!(
        text.contains(&format!("produced {}", built.display())),
        "names what the build produced: {text}"
    );
}

fn outside(result: Result<(), Error>) -> String {
    match result {
        Err(Error::Load {
            cause: LoadCause::OutsideLibraryDirs { allowed },
            ..
        }) => allowed,
        other => panic!("expected a load outside the library directories, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_library_dirs_and_no_modules_allows_nothing() {
    let f = common::fixtures();
    let mut config = NodeConfig::new("strict-empty");
    config.limits = common::test_limits();
    config.hot_reload = false;
    assert!(config.library_dirs.is_empty() && config.modules.is_empty());
    let node = Node::start(config).await.expect("node starts");
    let allowed = outside(node.admin().add_module(ModuleSpec::new("kv", &f.kv)).await);
    assert!(
        allowed.contains("library_dirs is empty") && allowed.contains("set node.library_dirs"),
        "the error says the rule: {allowed}"
    );
    assert!(node.status().await.unwrap().modules.is_empty());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_library_dirs_means_the_started_modules_folders() {
    let f = common::fixtures();
    let (a, b) = (common::scratch_dir(), common::scratch_dir());
    std::fs::copy(&f.kv, a.path().join("libkv.so")).unwrap();
    std::fs::copy(&f.counter, a.path().join("libcounter.so")).unwrap();
    std::fs::copy(&f.counter, b.path().join("libcounter.so")).unwrap();
    let mut config = NodeConfig::new("strict-module-dirs")
        .module(ModuleSpec::new("kv", a.path().join("libkv.so")));
    config.limits = common::test_limits();
    config.hot_reload = false;
    let node = Node::start(config).await.expect("node starts");
    let allowed = outside(
        node.admin()
            .add_module(ModuleSpec::new("counter", b.path().join("libcounter.so")))
            .await,
    );
    assert_eq!(
        allowed,
        a.path().canonicalize().unwrap().display().to_string(),
        "only kv's folder"
    );
    node.admin()
        .add_module(ModuleSpec::new("counter", a.path().join("libcounter.so")))
        .await
        .expect("a library in a started module's folder loads");
    node.shutdown().await;
}
