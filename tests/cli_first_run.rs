//! What a new user trips over on a first run (issue #10 §5): `molt config
//! check` alone validates, the banner's hints follow the config, `molt
//! history` reads as words, no colour codes in a file or a pipe, `molt
//! events` waits for a node that is starting, a missing cdylib is named.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

/// Bound on anything a test waits for.
const DEADLINE: Duration = Duration::from_secs(60);

fn molt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_molt"))
        .args(args)
        .env_remove("MOLT_ADMIN_TOKEN")
        .env_remove("MOLT_ADMIN_ADDR")
        .output()
        .expect("run molt")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A valid new config, checked with no flag, is valid: it is not compared
/// with the built-in config (whose node.name differs).
#[test]
fn config_check_alone_validates_the_file() {
    let dir = common::scratch_dir();
    let file = dir.path().join("molt.toml");
    std::fs::write(
        &file,
        "[node]\nname = \"rate-limiter\"\nlibrary_dirs = [\"target/debug\"]\n",
    )
    .unwrap();
    let out = molt(&["config", "check", file.to_str().unwrap()]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(msg.contains("valid"), "{msg}");
    assert!(
        !msg.contains("restart") && !msg.contains("built-in"),
        "not compared with anything: {msg}"
    );
}

/// The start-up banner's hints work when pasted: the build command names
/// the profile the library comes from (a debug library: no `--release`),
/// and `molt status` gets `--addr` when the admin is not on the default
/// address.
#[test]
fn banner_hints_follow_the_config() {
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let root = molt::workspace_dir();
    let config = dir.path().join("molt.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"hints\"\nhot_reload = false\nadmin_listen = \"127.0.0.1:0\"\n\
             library_dirs = [{:?}]\n\n[modules.kv]\nlibrary = {:?}\ncrate = {:?}\n",
            f.kv.parent().unwrap(),
            f.kv,
            root.join("modules/kv"),
        ),
    )
    .unwrap();
    assert!(f.kv.parent().unwrap().ends_with("debug"), "{:?}", f.kv);
    let mut molt = common::MoltProcess::start(&["run", config.to_str().unwrap()], dir.path());
    let admin = molt.wait_for_line("HTTP admin on http://", DEADLINE);
    let addr = common::admin_addr_of(&admin);
    assert!(
        admin.contains(&format!("try `molt status --addr {addr}`")),
        "{admin}"
    );
    let hint = molt.wait_for_line("to see a hot swap", DEADLINE);
    assert!(hint.contains("`cargo build -p kv`"), "{hint}");
    assert!(!hint.contains("--release"), "{hint}");
}
