//! The `molt` command line: exit codes scripts can trust, errors naming the
//! file, line and key, and the commands that talk to a running node.

use crate::common;

use molt::ModuleSpec;

use common::{molt_cli as molt, output_text as text};

#[test]
fn config_check_exit_codes_and_messages() {
    let dir = common::scratch_dir();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[node]\nname = \"molt\"\nlibrary_dirs = [\"target/release\"]\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[node]\nname = \"n\"\n\n[modules.kv]\nlibrary = \"libkv.so\"\ninstancs = 2\n",
    )
    .unwrap();

    let ok = molt(&[
        "config",
        "check",
        good.to_str().unwrap(),
        "--against",
        good.to_str().unwrap(),
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("no changes"), "{}", text(&ok));

    let invalid = molt(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(invalid.status.code(), Some(2), "{}", text(&invalid));
    let msg = text(&invalid);
    assert!(
        msg.contains(&format!("{}:6:", bad.display())),
        "names file and line: {msg}"
    );
    assert!(msg.contains("instancs"), "names the key: {msg}");

    // A node-level change would be rejected: exit 2, listing the key.
    let renamed = dir.path().join("renamed.toml");
    std::fs::write(
        &renamed,
        "[node]\nname = \"other\"\nlibrary_dirs = [\"target/release\"]\n",
    )
    .unwrap();
    let rejected = molt(&[
        "config",
        "check",
        renamed.to_str().unwrap(),
        "--against",
        good.to_str().unwrap(),
    ]);
    assert_eq!(rejected.status.code(), Some(2), "{}", text(&rejected));
    assert!(text(&rejected).contains("node.name"), "{}", text(&rejected));

    let usage = molt(&["no-such-command"]);
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_against_a_running_node() {
    let f = common::fixtures();
    let node = common::start("cli-remote", ModuleSpec::new("kv", &f.kv)).await;
    let token = "cli-test-token-0123456789abcdef0123";
    let server = molt::http::serve(&node, "127.0.0.1:0".parse().unwrap(), Some(token.into()))
        .await
        .expect("admin server");
    let addr = server.local_addr().to_string();
    let run = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            molt(&args)
        })
        .await
        .unwrap()
    };
    let with_node = |cmd: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--addr".to_string(),
            addr.clone(),
            "--token".to_string(),
            token.to_string(),
        ]);
        v
    };

    let status = run(with_node(&["status"])).await;
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(
        text(&status).contains("kv") && text(&status).contains("1.0.0"),
        "{}",
        text(&status)
    );

    let lib = f.kv_v2.to_str().unwrap();
    let reload = run(with_node(&["reload", "kv", "--library", lib])).await;
    assert_eq!(reload.status.code(), Some(0), "{}", text(&reload));
    let out = text(&reload);
    assert!(out.contains("1.0.0 -> 2.0.0"), "{out}");
    assert!(out.contains("migrate"), "shows the phases: {out}");

    // A reload that fails exits 1; the old code keeps serving.
    let bad = run(with_node(&[
        "reload",
        "kv",
        "--library",
        f.counter.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("not \"kv\""), "{}", text(&bad));

    // Without the token, a change is refused (exit 1) and nothing changes.
    let no_token = run(vec![
        "rollback".into(),
        "kv".into(),
        "--addr".into(),
        addr.clone(),
    ])
    .await;
    assert_eq!(no_token.status.code(), Some(1), "{}", text(&no_token));
    assert_eq!(
        node.status()
            .await
            .unwrap()
            .module("kv")
            .unwrap()
            .code_version,
        "2.0.0"
    );

    // A third version: status lists the stack; rollback walks it.
    let v2_1 = f.kv_v2_1.to_str().unwrap();
    let reload = run(with_node(&["reload", "kv", "--library", v2_1])).await;
    assert_eq!(reload.status.code(), Some(0), "{}", text(&reload));
    let status = run(with_node(&["status"])).await;
    assert!(
        text(&status).contains("versions kept [1.0.0, 2.0.0, 2.0.1]")
            && text(&status).contains("(from http)"),
        "{}",
        text(&status)
    );
    let rollback = run(with_node(&["rollback", "kv"])).await;
    assert_eq!(rollback.status.code(), Some(0), "{}", text(&rollback));
    assert!(
        text(&rollback).contains("2.0.1 -> 2.0.0"),
        "{}",
        text(&rollback)
    );
    let rollback = run(with_node(&["rollback", "kv", "--to", "1.0.0"])).await;
    assert_eq!(rollback.status.code(), Some(0), "{}", text(&rollback));
    assert!(
        text(&rollback).contains("2.0.0 -> 1.0.0"),
        "{}",
        text(&rollback)
    );
    let refused = run(with_node(&["rollback", "kv", "--to", "2.0.1"])).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("2.0.1 is not in the version stack"),
        "{}",
        text(&refused)
    );

    let history = run(with_node(&["history"])).await;
    assert_eq!(history.status.code(), Some(0), "{}", text(&history));
    let h = text(&history);
    assert!(h.contains("committed") && h.contains("rejected"), "{h}");

    server.shutdown().await;
    node.shutdown().await;
}
