//! `molt new NAME` (issue #10 §2) scaffolds a module that builds with
//! `cargo build`, runs under `molt dev` with the molt.toml it wrote, answers
//! `molt call`, and is hot-swapped when its source is edited; a bad name or
//! a non-empty folder is refused, naming the cause, and nothing is written.
//!
//! The scaffold is built in the workspace's target dir (`CARGO_TARGET_DIR`,
//! which dev mode honours) with the workspace's lock file, so the compiled
//! molt-abi and its dependencies are reused: the only edit to what `molt new`
//! wrote is molt.toml's `library` (there) and `admin_listen` (a free port).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{molt_cli, output_text, MoltProcess};

/// The module's name: also its library's file name in the shared target
/// dir, so no other test may use it.
const NAME: &str = "molt_new_probe";

/// Builds and reloads take seconds, more on a busy machine.
const BUILD: Duration = Duration::from_secs(600);

/// `cargo build` in `dir`, as a user would, bounded by [`BUILD`].
fn cargo_build(dir: &Path, target: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .arg("build")
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .spawn()
        .expect("run cargo");
    let deadline = Instant::now() + BUILD;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "cargo build of the scaffold failed");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cargo build of the scaffold took over {BUILD:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `molt call NAME MESSAGE` against the node at `addr` (the token is the
/// one the node generated in `runtime_dir`): exit code and output.
fn call(addr: &str, message: &str, runtime_dir: &Path) -> (Option<i32>, String) {
    let mut p = MoltProcess::start(&["call", NAME, message, "--addr", addr], runtime_dir);
    let status = p
        .wait_exit(Duration::from_secs(30))
        .expect("molt call exits within 30 s");
    (status.code(), p.output().trim().to_string())
}

fn library_name() -> String {
    format!(
        "{}{NAME}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_new_module_builds_runs_and_hot_reloads() {
    let root = molt::workspace_dir();
    let target = common::target_dir(&root);
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("probe");
    let out = molt_cli(&["new", NAME, "--path", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));

    // What it wrote: a workspace of the module and its protocol.
    let module_dir = dir.join(NAME);
    let manifest = std::fs::read_to_string(module_dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(r#"crate-type = ["cdylib"]"#),
        "{manifest}"
    );
    let source = module_dir.join("src/lib.rs");
    let lib_rs = std::fs::read_to_string(&source).unwrap();
    for part in [
        "deny_unknown_fields",
        "const STATE_VERSION: u32 = 1;",
        "fn migrate(",
    ] {
        assert!(lib_rs.contains(part), "lib.rs has no {part:?}");
    }
    let proto_rs = std::fs::read_to_string(dir.join(format!("{NAME}-proto/src/lib.rs"))).unwrap();
    assert!(
        proto_rs.contains("molt_abi::requests!"),
        "the protocol declares typed requests: {proto_rs}"
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert_eq!(
        readme.lines().filter(|l| !l.is_empty()).count(),
        3,
        "{readme}"
    );
    let workspace = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let abi = root.join("modules/abi");
    assert!(
        workspace.contains(&format!("molt-abi = {{ path = {:?} }}", abi.display())),
        "a path dependency on this checkout: {workspace}"
    );

    // Build it as the user would, reusing the workspace's compiled deps.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    cargo_build(&dir, &target);
    let library: PathBuf = target.join("debug").join(library_name());
    assert!(library.is_file(), "{} was built", library.display());
    let molt_toml = dir.join("molt.toml");
    edit(
        &molt_toml,
        &format!("library = \"target/debug/{}\"", library_name()),
        &format!("library = {:?}", library.display().to_string()),
    );
    edit(
        &molt_toml,
        "# admin_listen = \"127.0.0.1:7878\"",
        "admin_listen = \"127.0.0.1:0\"",
    );

    // A source edited after that build, while no node runs: `molt dev`
    // starts from the source (it builds at start), not the stale library.
    edit(
        &source,
        "const CODE_VERSION: &'static str = \"0.1.0\";",
        "const CODE_VERSION: &'static str = \"0.1.1\";",
    );

    // Run it in dev mode and call it.
    let runtime_dir = common::scratch_dir();
    let mut node = MoltProcess::start_with_env(
        &["dev", molt_toml.to_str().unwrap()],
        runtime_dir.path(),
        &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
    );
    let line = node.wait_for_line("HTTP admin on http://", Duration::from_secs(60));
    let addr = common::admin_addr_of(&line).to_string();
    let rt = runtime_dir.path();
    assert_eq!(
        call(&addr, r#"{"Hello": {"name": "you"}}"#, rt),
        (Some(0), r#"{"Greeting":"Hello, you!"}"#.to_string())
    );
    assert_eq!(
        call(&addr, r#""Version""#, rt),
        (Some(0), r#"{"Version":"0.1.1"}"#.to_string())
    );

    // Edit the source: a new version and a new reply. Dev mode rebuilds it
    // and swaps it in; the state (messages handled) carries over.
    edit(
        &source,
        "const CODE_VERSION: &'static str = \"0.1.1\";",
        "const CODE_VERSION: &'static str = \"0.2.0\";",
    );
    edit(&source, "\"{}, {name}!\"", "\"{}, {name}! (v2)\"");
    node.wait_for_line(&format!("{NAME} reloaded 0.1.1 -> 0.2.0"), BUILD);
    assert_eq!(
        call(&addr, r#""Version""#, rt),
        (Some(0), r#"{"Version":"0.2.0"}"#.to_string())
    );
    assert_eq!(
        call(&addr, r#"{"Hello": {"name": "you"}}"#, rt),
        (Some(0), r#"{"Greeting":"Hello, you! (v2)"}"#.to_string())
    );
    assert_eq!(
        call(&addr, r#""Count""#, rt),
        (Some(0), r#"{"Count":5}"#.to_string()),
        "the count of messages handled survived the reload"
    );
}

#[test]
fn a_bad_name_or_a_non_empty_folder_is_refused() {
    let tmp = common::scratch_dir();
    for (name, why) in [
        ("9lives", "must start with an ASCII letter"),
        ("my module", "' ' is not allowed"),
        ("fn", "Rust keyword"),
    ] {
        let dir = tmp.path().join("bad");
        let out = molt_cli(&["new", name, "--path", dir.to_str().unwrap()]);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            text.contains(&format!("{name:?} is not a valid module name")) && text.contains(why),
            "{text}"
        );
        assert!(!dir.exists(), "nothing written for {name:?}");
    }

    let taken = tmp.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    let out = molt_cli(&["new", "greeter", "--path", taken.to_str().unwrap()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "{} already exists and is not empty",
            taken.display()
        )),
        "{text}"
    );
    let left: Vec<_> = std::fs::read_dir(&taken).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing written into it");

    // An empty folder is fine, and --molt-git writes a git dependency.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let url = "https://example.invalid/molt.git";
    let out = molt_cli(&[
        "new",
        "greeter",
        "--path",
        empty.to_str().unwrap(),
        "--molt-git",
        url,
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let workspace = std::fs::read_to_string(empty.join("Cargo.toml")).unwrap();
    assert!(
        workspace.contains(&format!("molt-abi = {{ git = {url:?} }}")),
        "{workspace}"
    );
}
