//! Dev mode builds and loads a module crate where cargo puts it (issue #10
//! §6): the target dir comes from `cargo metadata`, run in the crate's
//! folder, so the crate's `.cargo/config.toml` `build.target-dir` (and
//! `CARGO_TARGET_DIR`, see tests/molt_new_scaffold.rs) are honoured, both
//! for the library derived from `crate` and for the rebuilds on save. The
//! hand-written guess it replaces took `<crate>/target`.

use crate::common;

use std::time::Duration;

use common::MoltProcess;

#[test]
fn a_crates_cargo_config_target_dir_is_used() {
    // Built once into the workspace's target dir; its .cargo/config.toml
    // then says that is its target dir (so nothing is compiled from
    // scratch).
    let krate = crate::dev_mode::FixtureCrate::new("dev_cargo_config");
    let target = common::target_dir(&molt::workspace_dir());
    std::fs::create_dir(krate.path().join(".cargo")).unwrap();
    std::fs::write(
        krate.path().join(".cargo/config.toml"),
        format!("[build]\ntarget-dir = {:?}\n", target.display().to_string()),
    )
    .unwrap();

    // Only `crate`: dev mode derives the library from cargo's target dir.
    let config_dir = common::scratch_dir();
    let molt_toml = config_dir.path().join("molt.toml");
    std::fs::write(
        &molt_toml,
        format!(
            "[node]\nname = \"cargo-config\"\ndev = true\nadmin_listen = \"127.0.0.1:0\"\n\n\
             [modules.{name}]\ncrate = {dir:?}\n",
            name = krate.name,
            dir = krate.path().display().to_string(),
        ),
    )
    .unwrap();
    let runtime_dir = common::scratch_dir();
    let mut node = MoltProcess::start(&["dev", molt_toml.to_str().unwrap()], runtime_dir.path());
    let line = node.wait_for_line(&format!("  {} ", krate.name), Duration::from_secs(120));
    assert!(
        line.contains(&krate.library.display().to_string()),
        "runs the library in the configured target dir ({}): {line}",
        krate.library.display()
    );

    // A save rebuilds it there and reloads it.
    krate.save("1.0.1", "");
    node.wait_for_line(
        &format!("{} reloaded 1.0.0 -> 1.0.1", krate.name),
        Duration::from_secs(600),
    );
    assert!(
        !krate.path().join("target").exists(),
        "nothing was built in the crate's own target folder"
    );
}
