//! Admin tokens and their files are safe (issue #8 item 2): the folder of a
//! generated token is never followed through a symlink (a symlinked folder
//! is refused and its target's mode left alone), a token shorter than 32
//! bytes is refused at start, and so is a token file that group or others
//! can read.
#![cfg(unix)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::MoltProcess;
use molt::{ModuleSpec, Node};

const DEADLINE: Duration = Duration::from_secs(30);

/// A good token: 44 printable bytes.
const GOOD: &str = "q3J0c2VjcmV0LXRva2VuLWZvci10ZXN0cy0wMTIzNDU=";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A config file for `molt run` with no module, on a free loopback port.
fn run_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let config = dir.join("molt.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"tokens\"\nlibrary_dirs = [{:?}]\nadmin_listen = \"127.0.0.1:0\"\n{extra}",
            dir
        ),
    )
    .unwrap();
    config
}

/// Runs `molt run` and expects it to refuse to start: its output.
fn refused_at_start(molt: &mut MoltProcess) -> String {
    let status = molt.wait_exit(DEADLINE).unwrap_or_else(|| {
        panic!(
            "molt run did not refuse to start within {DEADLINE:?}:\n{}",
            molt.output()
        )
    });
    let out = molt.output();
    assert_eq!(status.code(), Some(1), "{out}");
    out
}

#[test]
fn a_symlinked_token_folder_is_refused_and_left_alone() {
    let dir = common::scratch_dir();
    let runtime_dir = dir.path().join("run");
    std::fs::create_dir(&runtime_dir).unwrap();
    std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A shared world-writable folder, and `$XDG_RUNTIME_DIR/molt` pointing
    // at it.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let link = runtime_dir.join("molt");
    std::os::unix::fs::symlink(&shared, &link).unwrap();

    let config = run_config(dir.path(), "");
    let mut molt = MoltProcess::start(&["run", config.to_str().unwrap()], &runtime_dir);
    let out = refused_at_start(&mut molt);
    assert!(
        out.contains(link.to_str().unwrap()) && out.contains("symbolic link"),
        "names the folder and why: {out}"
    );
    assert_eq!(mode(&shared), 0o1777, "the link's target keeps its mode");
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count(),
        0,
        "nothing written through the link"
    );
}

#[test]
fn a_token_folder_open_to_others_is_refused() {
    let dir = common::scratch_dir();
    let runtime_dir = dir.path().join("run");
    let folder = runtime_dir.join("molt");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = run_config(dir.path(), "");
    let mut molt = MoltProcess::start(&["run", config.to_str().unwrap()], &runtime_dir);
    let out = refused_at_start(&mut molt);
    assert!(
        out.contains(folder.to_str().unwrap()) && out.contains("group or others"),
        "names the folder and why: {out}"
    );
    assert_eq!(mode(&folder), 0o755, "its mode is left alone");
}

#[test]
fn a_short_token_is_refused_at_start() {
    let dir = common::scratch_dir();
    let config = run_config(dir.path(), "");
    let mut molt = MoltProcess::start_with_env(
        &["run", config.to_str().unwrap()],
        dir.path(),
        &[("MOLT_ADMIN_TOKEN", "short-token")],
    );
    let out = refused_at_start(&mut molt);
    assert!(
        out.contains("MOLT_ADMIN_TOKEN") && out.contains("32") && out.contains("/dev/urandom"),
        "says which token, why, and how to make one: {out}"
    );

    // A short token in a private token file too.
    let file = dir.path().join("admin.token");
    std::fs::write(&file, "short-token\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = run_config(
        dir.path(),
        &format!("admin_token_file = {:?}\n", file.to_str().unwrap()),
    );
    let mut molt = MoltProcess::start(&["run", config.to_str().unwrap()], dir.path());
    let out = refused_at_start(&mut molt);
    assert!(
        out.contains(file.to_str().unwrap()) && out.contains("/dev/urandom"),
        "names the file and how to make a token: {out}"
    );
}

#[test]
fn a_token_file_others_can_read_is_refused() {
    let dir = common::scratch_dir();
    let file = dir.path().join("admin.token");
    std::fs::write(&file, format!("{GOOD}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let config = run_config(
        dir.path(),
        &format!("admin_token_file = {:?}\n", file.to_str().unwrap()),
    );
    let mut molt = MoltProcess::start(&["run", config.to_str().unwrap()], dir.path());
    let out = refused_at_start(&mut molt);
    assert!(
        out.contains(file.to_str().unwrap()) && out.contains("group or others"),
        "names the file and why: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_token_is_refused_by_serve_and_a_good_one_taken() {
    let f = common::fixtures();
    let node =
        Node::start(common::config("tokens-serve", &[]).module(ModuleSpec::new("kv", &f.kv)))
            .await
            .expect("node starts");
    let addr = "127.0.0.1:0".parse().unwrap();
    let Err(e) = molt::http::serve(&node, addr, Some("short-token".into())).await else {
        panic!("a short token was taken");
    };
    assert!(e.to_string().contains("32"), "{e}");
    let server = molt::http::serve(&node, addr, Some(GOOD.into()))
        .await
        .expect("a good token is taken");
    server.shutdown().await;
    node.shutdown().await;
}
