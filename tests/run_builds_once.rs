//! `molt run` builds the missing libraries of one cargo workspace with one
//! `cargo build -p a -p b ...`, not one invocation per crate (issue #11
//! §4; docs/semantics.md "Building module crates"), and a crate that fails
//! to compile is named in the error.

use crate::common;

use std::path::Path;
use std::time::Duration;

/// Bound on the whole `molt run` (two tiny release builds, then a failed
/// start).
const DEADLINE: Duration = Duration::from_secs(300);

/// A cargo workspace at `dir` with one cdylib crate per `(name, lib.rs)`.
fn workspace(dir: &Path, crates: &[(&str, &str)]) {
    let members: Vec<String> = crates.iter().map(|(n, _)| format!("{n:?}")).collect();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            members.join(", ")
        ),
    )
    .unwrap();
    for (name, lib_rs) in crates {
        let krate = dir.join(name);
        std::fs::create_dir_all(krate.join("src")).unwrap();
        std::fs::write(
            krate.join("Cargo.toml"),
            format!(
                "[package]\nname = {name:?}\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                 [lib]\ncrate-type = [\"cdylib\"]\n"
            ),
        )
        .unwrap();
        std::fs::write(krate.join("src/lib.rs"), lib_rs).unwrap();
    }
}

/// A config running `alpha` and `beta` from `dir`'s workspace, their
/// libraries not built yet.
fn config(dir: &Path) -> std::path::PathBuf {
    let target = dir.join("target");
    let lib = |n: &str| target.join(format!("release/lib{n}.so"));
    let file = dir.join("molt.toml");
    std::fs::write(
        &file,
        format!(
            "[node]\nname = \"build-once\"\nhot_reload = false\nadmin_listen = \"127.0.0.1:0\"\n\
             target_dir = {:?}\nlibrary_dirs = [{:?}]\n\n\
             [modules.alpha]\nlibrary = {:?}\ncrate = {:?}\n\n\
             [modules.beta]\nlibrary = {:?}\ncrate = {:?}\n",
            target,
            target.join("release"),
            lib("alpha"),
            dir.join("alpha"),
            lib("beta"),
            dir.join("beta"),
        ),
    )
    .unwrap();
    file
}

/// Runs `molt run config` to its exit (these crates are not molt modules,
/// so the node does not start once they are built); what it printed.
fn molt_run(config: &Path, runtime_dir: &Path) -> String {
    let mut molt = common::MoltProcess::start(&["run", config.to_str().unwrap()], runtime_dir);
    let status = molt.wait_exit(DEADLINE).expect("molt run gives up");
    let out = molt.output();
    assert_eq!(status.code(), Some(1), "{out}");
    out
}

/// Two missing libraries of one workspace: one build, naming both modules.
#[test]
fn missing_libraries_of_one_workspace_build_in_one_invocation() {
    let dir = common::scratch_dir();
    workspace(
        dir.path(),
        &[
            ("alpha", "pub fn a() -> u32 { 1 }\n"),
            ("beta", "pub fn b() -> u32 { 2 }\n"),
        ],
    );
    let out = molt_run(&config(dir.path()), dir.path());
    let builds: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("molt: building"))
        .collect();
    assert_eq!(
        builds,
        ["molt: building modules alpha, beta (release)..."],
        "{out}"
    );
    for lib in ["alpha", "beta"] {
        let path = dir.path().join(format!("target/release/lib{lib}.so"));
        assert!(path.exists(), "{} not built:\n{out}", path.display());
    }
}

/// The crate that does not compile is named, not the other one.
#[test]
fn a_failing_crate_of_a_joint_build_is_named() {
    let dir = common::scratch_dir();
    workspace(
        dir.path(),
        &[
            ("alpha", "pub fn a() -> u32 { 1 }\n"),
            ("beta", "pub fn b() -> u32 { \"not a number\" }\n"),
        ],
    );
    let out = molt_run(&config(dir.path()), dir.path());
    assert!(
        out.contains("molt: module beta: build of alpha, beta failed (in beta):"),
        "{out}"
    );
    assert!(out.contains("error[E0308]: mismatched types"), "{out}");
    assert!(!out.contains("module alpha:"), "{out}");
}
