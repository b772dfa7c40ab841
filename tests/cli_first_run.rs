//! What a new user trips over on a first run (issue #10 §5): `molt config
//! check` alone validates, the banner's hints follow the config, `molt
//! history` reads as words, no colour codes in a file or a pipe, `molt
//! events` waits for a node that is starting, a missing cdylib is named, a
//! module config that does not decode names the key and the type.

use crate::common;

use std::process::Output;
use std::time::Duration;

/// Bound on anything a test waits for.
const DEADLINE: Duration = Duration::from_secs(60);

use common::{molt_cli as molt, output_text as text};

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

/// Runs `molt` with `args` off the async runtime's threads.
async fn molt_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        molt(&args)
    })
    .await
    .unwrap()
}

/// `molt history` reads as words: something when empty, the local time,
/// outcomes and triggers in words (not `rolledback`, `Reload by Http`),
/// and no `1.0.0 -> :` when the attempt had no target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_as_words() {
    let f = common::fixtures();
    let node = common::start("history-words", molt::ModuleSpec::new("kv", &f.kv)).await;
    let token = "history-words-token-0123456789abcdef";
    let server = molt::http::serve(&node, "127.0.0.1:0".parse().unwrap(), Some(token.into()))
        .await
        .expect("admin server");
    let addr = server.local_addr().to_string();
    let with_node = |cmd: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--addr".into(),
            addr.clone(),
            "--token".into(),
            token.into(),
        ]);
        v
    };

    let empty = molt_async(with_node(&["history"])).await;
    assert_eq!(empty.status.code(), Some(0), "{}", text(&empty));
    assert!(text(&empty).contains("no reloads"), "{}", text(&empty));

    // Refused (no previous version: no target) and rejected (not kv).
    let refused = molt_async(with_node(&["rollback", "kv"])).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let counter = f.counter.to_str().unwrap();
    let rejected = molt_async(with_node(&["reload", "kv", "--library", counter])).await;
    assert_eq!(rejected.status.code(), Some(1), "{}", text(&rejected));

    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let history = molt_async(with_node(&["history"])).await;
    let h = text(&history);
    assert_eq!(history.status.code(), Some(0), "{h}");
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines.len(), 2, "{h}");
    for line in &lines {
        assert!(line.contains(&today), "local date: {line}");
        assert!(line.contains("by the molt CLI / HTTP"), "{line}");
        assert!(!line.contains("Http") && !line.contains("Reload"), "{line}");
        assert!(!line.contains("-> :"), "{line}");
    }
    assert!(
        lines[0].contains("rollback") && lines[0].contains("refused"),
        "{h}"
    );
    assert!(lines[0].contains("at 1.0.0:"), "{h}");
    assert!(
        lines[1].contains("reload") && lines[1].contains("rejected"),
        "{h}"
    );

    server.shutdown().await;
    node.shutdown().await;
}

/// A log sent to a pipe (or a file) has no ANSI colour codes.
#[test]
fn no_colour_codes_in_a_piped_log() {
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let config = dir.path().join("molt.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"plain\"\nhot_reload = false\nadmin_listen = \"127.0.0.1:0\"\n\
             library_dirs = [{:?}]\n\n[modules.kv]\nlibrary = {:?}\n",
            f.kv.parent().unwrap(),
            f.kv,
        ),
    )
    .unwrap();
    let mut molt = common::MoltProcess::start_with_env(
        &["run", config.to_str().unwrap()],
        dir.path(),
        &[("RUST_LOG", "info")],
    );
    // The supervisor logs (at info) each module it loads.
    molt.wait_for_line("loaded", DEADLINE);
    molt.wait_for_line("HTTP admin on http://", DEADLINE);
    let out = molt.output();
    assert!(!out.contains('\x1b'), "no escape codes: {out:?}");
}

/// A port nothing listens on (bound, then freed).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `molt events` started before the node is up says it waits, and follows
/// the node once it answers.
#[test]
fn events_waits_for_a_starting_node() {
    let f = common::fixtures();
    let dir = common::scratch_dir();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut events = common::MoltProcess::start(&["events", "--addr", &addr], dir.path());
    events.wait_for_line("waiting for it", DEADLINE);
    let config = dir.path().join("molt.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"late\"\nhot_reload = false\nadmin_listen = {addr:?}\n\
             library_dirs = [{:?}]\n\n[modules.kv]\nlibrary = {:?}\n",
            f.kv.parent().unwrap(),
            f.kv,
        ),
    )
    .unwrap();
    let mut node = common::MoltProcess::start(&["run", config.to_str().unwrap()], dir.path());
    node.wait_for_line("HTTP admin on http://", DEADLINE);
    events.wait_for_line("following the events", DEADLINE);
    assert_eq!(
        events.wait_exit(Duration::from_millis(200)),
        None,
        "still following"
    );
}

/// The wait is bounded: no node within `--wait`, and it exits 1 saying so.
#[test]
fn events_wait_is_bounded() {
    let dir = common::scratch_dir();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut events =
        common::MoltProcess::start(&["events", "--addr", &addr, "--wait", "1"], dir.path());
    let status = events.wait_exit(DEADLINE).expect("exits within the bound");
    assert_eq!(status.code(), Some(1), "{}", events.output());
    assert!(
        events.output().contains("no node came up"),
        "{}",
        events.output()
    );
}

/// A module crate without `crate-type = ["cdylib"]`: `molt run` says so.
#[test]
fn missing_cdylib_is_named_at_build() {
    let dir = common::scratch_dir();
    let krate = dir.path().join("ratelimit");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        "[workspace]\n[package]\nname = \"ratelimit\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(krate.join("src/lib.rs"), "pub fn a() -> u32 { 1 }\n").unwrap();
    let config = dir.path().join("molt.toml");
    std::fs::write(
        &config,
        "[node]\nname = \"rl\"\nhot_reload = false\nadmin_listen = \"127.0.0.1:0\"\n\
         library_dirs = [\"ratelimit/target/release\"]\n\n[modules.ratelimit]\n\
         library = \"ratelimit/target/release/libratelimit.so\"\ncrate = \"ratelimit\"\n",
    )
    .unwrap();
    let mut molt = common::MoltProcess::start(&["run", config.to_str().unwrap()], dir.path());
    let status = molt
        .wait_exit(Duration::from_secs(300))
        .expect("molt run gives up");
    let out = molt.output();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("produced no cdylib: add crate-type = [\"cdylib\"] under [lib]"),
        "{out}"
    );
}

/// A reload from an `.rlib` (what a crate without the cdylib crate type
/// builds) fails saying what to add; the old code keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_of_an_rlib_names_the_crate_type() {
    let f = common::fixtures();
    let libs = common::scratch_dir();
    let rlib = libs.path().join("libkv.rlib");
    std::fs::write(
        &rlib,
        b"!<arch>\n/               0           0     0     0       8         `\n\0\0\0\0\0\0\0\0",
    )
    .unwrap();
    let node = molt::Node::start(
        common::config("rlib-reload", &[libs.path()]).module(molt::ModuleSpec::new("kv", &f.kv)),
    )
    .await
    .expect("node starts");
    let e = tokio::time::timeout(
        DEADLINE,
        node.reload("kv", molt::ReloadOptions::library(&rlib)),
    )
    .await
    .expect("bounded")
    .expect_err("an rlib is not loaded");
    let msg = e.to_string();
    assert!(
        msg.contains(&rlib.display().to_string()),
        "names the file: {msg}"
    );
    assert!(
        msg.contains("static archive") && msg.contains("crate-type = [\"cdylib\"] under [lib]"),
        "{msg}"
    );
    let status = node.status().await.unwrap();
    assert_eq!(status.module("kv").unwrap().code_version, "1.0.0");
    node.shutdown().await;
}

/// A module config that does not decode names the key and the type the
/// module expected (not only msgpack's view of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_module_config_names_key_and_type() {
    let f = common::fixtures();
    let spec =
        molt::ModuleSpec::new("counter", &f.counter).config(serde_json::json!({ "start": "lots" }));
    let e = match molt::Node::start(common::config("bad-config", &[]).module(spec)).await {
        Ok(node) => {
            node.shutdown().await;
            panic!("a config that does not decode is refused");
        }
        Err(e) => e.to_string(),
    };
    assert!(e.contains("`start`"), "names the key: {e}");
    assert!(e.contains("expected i64"), "names the expected type: {e}");
}
