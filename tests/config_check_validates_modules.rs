//! `molt config check FILE` looks inside each module's library, as a node
//! would at start (issue #10 §3): the library must exist and be a molt
//! module of that name, and the module must decode its `config` table (a
//! wrong type is named with its key and the type expected, instead of
//! passing the check and failing the real reload with msgpack's
//! `wrong msgpack marker`). Nothing is started.

use crate::common;

use std::path::Path;

use common::{molt_cli as molt, output_text as text};

/// A config file in `dir` with one module `name` from `library`, with the
/// module config table `config` (TOML lines).
fn config_file(dir: &Path, name: &str, library: &Path, config: &str) -> std::path::PathBuf {
    let file = dir.join(format!("{name}-check.toml"));
    std::fs::write(
        &file,
        format!(
            "[node]\nname = \"check\"\nlibrary_dirs = [{:?}, {:?}]\n\n[modules.{name}]\nlibrary = {:?}\n\n[modules.{name}.config]\n{config}\n",
            library.parent().unwrap(),
            dir,
            library
        ),
    )
    .unwrap();
    file
}

#[test]
fn a_good_module_config_passes() {
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let file = config_file(dir.path(), "kv", &f.kv, "max_value_len = 64");
    let out = molt(&["config", "check", file.to_str().unwrap()]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(msg.contains("valid (1 module(s))"), "{msg}");
    assert!(msg.contains("kv: kv 1.0.0 (state v1), config ok"), "{msg}");
}

#[test]
fn a_wrong_type_is_named_with_its_key() {
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let file = config_file(dir.path(), "kv", &f.kv, "max_value_len = \"lots\"");
    let out = molt(&["config", "check", file.to_str().unwrap()]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&file.display().to_string()),
        "names the file: {msg}"
    );
    assert!(msg.contains("module kv"), "names the module: {msg}");
    assert!(msg.contains("`max_value_len`"), "names the key: {msg}");
    assert!(msg.contains("expected usize"), "names the type: {msg}");
    assert!(!msg.contains("marker"), "not msgpack's view of it: {msg}");

    // Compared with a running node, the modules are checked first (no node
    // needs to answer to find this).
    let out = molt(&[
        "config",
        "check",
        file.to_str().unwrap(),
        "--node",
        "127.0.0.1:9",
    ]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("`max_value_len`"), "names the key: {msg}");
    assert!(!msg.contains("cannot reach"), "{msg}");
}

#[test]
fn a_missing_library_is_named() {
    let dir = common::scratch_dir();
    let missing = dir.path().join("libnowhere.so");
    let file = config_file(dir.path(), "kv", &missing, "");
    let out = molt(&["config", "check", file.to_str().unwrap()]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&missing.display().to_string()) && msg.contains("no such file"),
        "names the library and the cause: {msg}"
    );
}

#[test]
fn a_library_that_is_not_a_module_is_named() {
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let file = config_file(dir.path(), "kv", &f.not_a_module, "");
    let out = molt(&["config", "check", file.to_str().unwrap()]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("not_a_module") && msg.contains("not a molt module"),
        "names the library and the cause: {msg}"
    );

    // Another module's library is named too.
    let file = config_file(dir.path(), "kv", &f.counter, "");
    let out = molt(&["config", "check", file.to_str().unwrap()]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("not \"kv\""), "{msg}");
}
