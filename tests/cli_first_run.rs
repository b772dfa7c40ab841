//! What a new user trips over on a first run (issue #10 §5): `molt config
//! check` alone validates, the banner's hints follow the config, `molt
//! history` reads as words, no colour codes in a file or a pipe, `molt
//! events` waits for a node that is starting, a missing cdylib is named.

mod common;

use std::process::{Command, Output};

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
