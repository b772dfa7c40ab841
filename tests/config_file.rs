//! The config file: a good file reads into the expected `NodeConfig`
//! (relative paths from the file's folder); every bad input is one error
//! naming the file, the line and the dotted key; a file whose library does
//! not load starts nothing.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use molt::config::file;
use molt::{Error, ModuleSpec, Node, NodeConfig};
use serde_json::json;

/// Writes `text` as `NAME.toml` in a fresh folder and loads it.
fn load(name: &str, text: &str) -> (tempfile::TempDir, PathBuf, Result<NodeConfig, Error>) {
    let dir = tempfile::Builder::new()
        .prefix("molt-config-file")
        .tempdir()
        .unwrap();
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let result = file::load(&path);
    (dir, path, result)
}

/// Loads a bad file and checks the error: this file, this line, this message.
fn bad(text: &str, line: usize, message: &str) {
    let (_dir, path, result) = load("bad", text);
    let err = result.expect_err(message);
    let Error::ConfigFile {
        path: p,
        line: l,
        column,
        message: m,
    } = &err
    else {
        panic!("expected ConfigFile, got {err:?}");
    };
    assert_eq!((p, *l, m.as_str()), (&path, line, message), "for:\n{text}");
    assert_eq!(
        err.to_string(),
        format!("{}:{line}:{column}: {message}", path.display())
    );
}

const NODE: &str = "[node]\nname = \"n\"\n";

#[test]
fn unknown_key() {
    bad(
        "[node]\nname = \"n\"\n\n[modules.kv]\nlibrary = \"libkv.so\"\ninstancs = 2\n",
        6,
        "unknown key `instancs` in [modules.kv]; expected one of library, crate, instances, config, keyed, idle_passivate_ms, max_live",
    );
    bad(
        "[node]\nname = \"n\"\nhot_reloads = true\n",
        3,
        "unknown key `hot_reloads` in [node]; expected one of name, hot_reload, debounce_ms, \
         library_dirs, copy_dir, dev, target_dir, admin_listen, admin_token_file, history_len, \
         history_file, limits",
    );
    bad(
        "[node]\nname = \"n\"\n[node.limits]\ncall_timeout = 5\n",
        4,
        &format!(
            "unknown key `call_timeout` in [node.limits]; expected one of {}",
            molt::config::file::LIMIT_KEYS.join(", ")
        ),
    );
    bad(
        "name = \"n\"\n[node]\nname = \"n\"\n",
        1,
        "unknown key `name` at the top level; expected [node], [modules.NAME], [cluster] or [rollout]",
    );
}

#[test]
fn wrong_type() {
    bad(
        &format!("{NODE}[modules.kv]\nlibrary = \"libkv.so\"\ninstances = \"two\"\n"),
        5,
        "modules.kv.instances: invalid type: string \"two\", expected u32",
    );
    bad(
        "[node]\nname = \"n\"\nhot_reload = \"yes\"\n",
        3,
        "node.hot_reload: invalid type: string \"yes\", expected a boolean",
    );
    bad(
        "[node]\nname = \"n\"\n\n[node.limits]\n# ms\ncall_timeout_ms = -1\n",
        6,
        "node.limits.call_timeout_ms: invalid value: integer `-1`, expected u64",
    );
    bad(
        &format!("{NODE}[modules.kv]\nlibrary = \"libkv.so\"\nconfig = \"max=1\"\n"),
        5,
        "modules.kv.config: expected a table, found string",
    );
    bad(
        &format!("modules = [\"kv\"]\n{NODE}"),
        1,
        "modules: expected one table per module ([modules.NAME])",
    );
}

#[test]
fn module_listed_twice() {
    bad(
        &format!(
            "{NODE}\n[modules.kv]\nlibrary = \"libkv.so\"\n\n[modules.kv]\nlibrary = \"libkv2.so\"\n"
        ),
        7,
        "modules.kv listed twice (first at line 4)",
    );
    bad(
        &format!(
            "{NODE}[modules]\nkv = {{ library = \"a.so\" }}\ncounter = {{ library = \"c.so\" }}\nkv = {{ library = \"b.so\" }}\n"
        ),
        6,
        "modules.kv listed twice (first at line 4)",
    );
}

#[test]
fn library_outside_the_library_directories() {
    let (dir, path, result) = load(
        "outside",
        "[node]\nname = \"n\"\nlibrary_dirs = [\"libs\"]\n\n[modules.kv]\nlibrary = \"libs/libkv.so\"\n\n[modules.counter]\nlibrary = \"../libcounter.so\"\n",
    );
    let err = result.unwrap_err();
    let outside = dir.path().join("../libcounter.so");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:9:11: modules.counter.library: {} is outside the library directories ({})",
            path.display(),
            outside.display(),
            dir.path().join("libs").display()
        )
    );
    // `..` does not get out either.
    bad(
        "[node]\nname = \"n\"\nlibrary_dirs = [\"/libs\"]\n[modules.kv]\nlibrary = \"/libs/../etc/libkv.so\"\n",
        5,
        "modules.kv.library: /libs/../etc/libkv.so is outside the library directories (/libs)",
    );
}

#[test]
fn other_invalid_values() {
    bad(
        "[node]\nname = \"n\"\nadmin_listen = \"localhost:7878\"\n",
        3,
        "node.admin_listen: \"localhost:7878\" is not ip:port (invalid socket address syntax); \
         e.g. \"127.0.0.1:7878\"",
    );
    bad(
        &format!("{NODE}[modules.kv]\nlibrary = \"libkv.so\"\ninstances = 0\n"),
        5,
        "modules.kv.instances: must be at least 1",
    );
    bad("[node]\nname = \" \"\n", 2, "node.name is empty");
    bad("\n[node]\ndev = true\n", 2, "node.name is missing");
    bad(
        "# nothing\n",
        1,
        "missing [node] table (it needs at least name = \"...\")",
    );
    bad(
        &format!("{NODE}\n[modules.kv]\ninstances = 2\n"),
        4,
        "modules.kv.library is missing",
    );
    bad(
        &format!("{NODE}\n[modules.kv]\ncrate = \"modules/kv\"\n"),
        4,
        "modules.kv.library is missing (only dev mode derives it from `crate`)",
    );
    bad(
        &format!("{NODE}[modules.kv]\nlibrary = \"libkv.so\"\nconfig = {{ ratio = nan }}\n"),
        5,
        "modules.kv.config.ratio: nan and inf cannot be handed to a module (JSON has no such numbers)",
    );
}

#[test]
fn toml_syntax_errors_name_the_key() {
    bad(
        "[node]\nname = \"n\nhot_reload = true\n",
        2,
        "node.name: invalid TOML: invalid basic string, expected `\"`",
    );
    bad(
        "[node]\nname = \"n\"\nname = \"m\"\n",
        3,
        "node.name defined twice (first at line 2)",
    );
}

#[test]
fn unreadable_file() {
    let path = Path::new("/nonexistent/molt.toml");
    let err = file::load(path).unwrap_err();
    let Error::ConfigFile { line, message, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*line, 0);
    assert!(message.starts_with("cannot read it: "), "{message}");
    assert!(err.to_string().starts_with("/nonexistent/molt.toml:0:0: "));
}

#[test]
fn good_file_reads_into_the_expected_config() {
    let text = r#"
# A node with every key set.
[node]
name = "full"
hot_reload = false
debounce_ms = 25
library_dirs = ["libs", "/opt/molt/libs"]
copy_dir = "copies"
dev = true
target_dir = "../target"
admin_listen = "[::1]:9100"
history_len = 50

[node.limits]
prepare_timeout_ms = 1000
verify_timeout_ms = 2000
decision_timeout_ms = 3000
call_timeout_ms = 4000
restart_after_failures = 0
verify_round_trip = false

[modules.kv]
library = "libs/libkv.so"
crate = "../modules/kv"
instances = 2

[modules.kv.config]
max_value_len = 4096
tags = ["a", "b"]
nested = { on = true, ratio = 0.5, when = 1979-05-27 }

[modules.counter]
library = "/opt/molt/libs/libcounter.so"
"#;
    let (dir, _path, result) = load("full", text);
    let base = dir.path();
    let config = result.unwrap();
    let mut expected = NodeConfig::new("full")
        .library_dir(base.join("libs"))
        .library_dir("/opt/molt/libs")
        .module(
            ModuleSpec::new("kv", base.join("libs/libkv.so"))
                .crate_dir(base.join("../modules/kv"))
                .instances(2)
                .config(json!({
                    "max_value_len": 4096,
                    "tags": ["a", "b"],
                    "nested": { "on": true, "ratio": 0.5, "when": "1979-05-27" }
                })),
        )
        .module(ModuleSpec::new("counter", "/opt/molt/libs/libcounter.so"));
    expected.hot_reload = false;
    expected.debounce_ms = 25;
    expected.copy_dir = Some(base.join("copies"));
    expected.dev = true;
    expected.target_dir = Some(base.join("../target"));
    expected.admin_listen = "[::1]:9100".parse().unwrap();
    expected.history_len = 50;
    expected.limits.prepare_timeout = Duration::from_millis(1000);
    expected.limits.verify_timeout = Duration::from_millis(2000);
    expected.limits.decision_timeout = Duration::from_millis(3000);
    expected.limits.call_timeout = Duration::from_millis(4000);
    expected.limits.restart_after_failures = 0;
    expected.limits.verify_round_trip = false;
    assert_eq!(config, expected);
    // And it writes back to the same config.
    assert_eq!(
        file::parse(&file::to_toml(&config), Path::new("/x/y.toml")).unwrap(),
        config
    );
}

#[test]
fn minimal_file_takes_the_defaults() {
    let (dir, _path, result) = load(
        "minimal",
        "[node]\nname = \"min\"\n[modules.kv]\nlibrary = \"libkv.so\"\n",
    );
    let expected =
        NodeConfig::new("min").module(ModuleSpec::new("kv", dir.path().join("libkv.so")));
    assert_eq!(result.unwrap(), expected);
}

/// A valid file whose second module is not a library: the node does not
/// start, the module started before it is stopped, and the node's name is
/// free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_that_does_not_load_starts_nothing() {
    let f = common::fixtures();
    let scratch = common::scratch_dir();
    let broken = scratch.path().join("libbroken.so");
    std::fs::write(&broken, b"not a library").unwrap();
    let dirs: Vec<String> = f
        .dirs
        .iter()
        .chain([&scratch.path().to_path_buf()])
        .map(|d| format!("{:?}", d.display().to_string()))
        .collect();
    let text = format!(
        "[node]\nname = \"cfg-start\"\nlibrary_dirs = [{}]\n\n[modules.kv]\nlibrary = {:?}\n\n[modules.broken]\nlibrary = {:?}\n",
        dirs.join(", "),
        f.kv.display().to_string(),
        broken.display().to_string()
    );
    let path = scratch.path().join("node.toml");
    std::fs::write(&path, &text).unwrap();
    let config = file::load(&path).expect("a valid file");
    let names: Vec<_> = config.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["kv", "broken"], "file order: kv starts first");

    let err = Node::start(config.clone())
        .await
        .expect_err("the node must not start");
    match &err {
        Error::Load { path, .. } => assert_eq!(path, &broken),
        other => panic!("expected a Load error, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&broken.display().to_string()),
        "{err}"
    );

    // Nothing keeps running: the supervisor's name is free, so a node of
    // the same name starts (on the good module only).
    let mut good = config;
    good.modules.retain(|m| m.name == "kv");
    let node = Node::start(good).await.expect("the name is free again");
    let status = node.status().await.unwrap();
    assert_eq!(status.modules.len(), 1);
    node.shutdown().await;
}

/// An invalid file given to a running node is rejected with the file's
/// error; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_rejects_an_invalid_file() {
    let f = common::fixtures();
    let node =
        Node::start(common::config("cfg-file-reject", &[]).module(ModuleSpec::new("kv", &f.kv)))
            .await
            .unwrap();
    let before = node.admin().running_config().await.unwrap();
    let (_dir, path, _) = load(
        "bad",
        "[node]\nname = \"cfg-file-reject\"\n[modules.kv]\nlibrary = \"x.so\"\ninstances = 0\n",
    );
    let mut events = node.subscribe();
    let err = node.admin().apply_config_file(&path).await.unwrap_err();
    assert!(matches!(&err, Error::ConfigFile { line: 5, .. }), "{err:?}");
    common::next_event(&mut events, "config.rejected").await;
    assert_eq!(node.admin().running_config().await.unwrap(), before);
    node.shutdown().await;
}
