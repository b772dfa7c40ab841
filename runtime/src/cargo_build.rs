//! Builds module crates with cargo and finds their libraries, for examples,
//! tests, `molt run` (missing libraries) and dev mode.

use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::diagnostic::DiagnosticLevel;
use cargo_metadata::{Message, MetadataCommand};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The `Cargo.toml` of the workspace or crate.
    pub manifest: PathBuf,
    /// The packages (`-p`); empty: the manifest's package.
    pub packages: Vec<String>,
    /// `--release`.
    pub release: bool,
    /// `--target-dir`, when not the default.
    pub target_dir: Option<PathBuf>,
    /// Show cargo's progress (its stderr) on the terminal when our stderr is
    /// one, instead of capturing it. The JSON messages on stdout are parsed
    /// either way.
    pub progress: bool,
}

/// A built module library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltLibrary {
    /// The package that produced it.
    pub package: String,
    /// The `cdylib` file.
    pub path: PathBuf,
}

/// A failed build.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BuildError {
    /// cargo could not be run.
    #[error("cannot run cargo: {0}")]
    Spawn(String),
    /// The build succeeded but produced no library (no cdylib) for a
    /// package: most often its Cargo.toml lacks `crate-type = ["cdylib"]`.
    #[error(
        "the build of {package} produced no cdylib: add crate-type = [\"cdylib\"] under [lib] \
         in its Cargo.toml{}",
        built_note(.built)
    )]
    NoLibrary {
        /// The package (or crate folder) asked for.
        package: String,
        /// The cdylib targets the build produced (comma-separated; empty
        /// when none).
        built: String,
    },
    /// `cargo metadata` failed for a crate.
    #[error("cannot read the crate {}: {error}", manifest.display())]
    Metadata {
        /// The crate's `Cargo.toml`.
        manifest: PathBuf,
        /// What cargo said.
        error: String,
    },
    /// The code did not compile; the compiler's first error, rendered.
    #[error("build of {packages} failed{}:\n{first_error}", failed_in(.failed_target))]
    Compile {
        /// The packages asked for.
        packages: String,
        /// The target (library) whose compilation gave the first error,
        /// when cargo said: which of several crates built together failed.
        failed_target: Option<String>,
        /// The first compiler error as rustc renders it.
        first_error: String,
    },
}

fn failed_in(target: &Option<String>) -> String {
    target
        .as_ref()
        .map_or(String::new(), |t| format!(" (in {t})"))
}

fn built_note(built: &str) -> String {
    if built.is_empty() {
        String::new()
    } else {
        format!(" (the build produced the cdylibs of {built})")
    }
}

/// The library a build produced for `package`, given as the package name
/// (`kv-v2`) or as its library target's name (`kv_v2`).
///
/// # Errors
/// [`BuildError::NoLibrary`] naming the package and what was built.
pub fn library_of(libs: &[BuiltLibrary], package: &str) -> Result<PathBuf, BuildError> {
    let target = package.replace('-', "_");
    libs.iter()
        .find(|l| l.package == package || l.package == target)
        .map(|l| l.path.clone())
        .ok_or_else(|| BuildError::NoLibrary {
            package: package.to_string(),
            built: libs
                .iter()
                .map(|l| l.package.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// What cargo says about the crate in a folder: what dev mode builds and
/// where the library goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrateInfo {
    /// The package name (`-p`).
    pub package: String,
    /// The library target's name (`[lib] name`, else the package name with
    /// `_` for `-`): how cargo names the artifact. `None`: no library target.
    pub lib_name: Option<String>,
    /// cargo's target dir for this crate: `CARGO_TARGET_DIR`, else
    /// `build.target-dir` of the `.cargo/config.toml` files that apply, else
    /// the `target` folder of its workspace.
    pub target_dir: PathBuf,
}

impl CrateInfo {
    /// Where a debug build puts the crate's library (`None`: no library
    /// target).
    pub fn debug_library(&self) -> Option<PathBuf> {
        self.lib_name.as_ref().map(|name| {
            self.target_dir.join("debug").join(format!(
                "{}{name}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            ))
        })
    }
}

/// Asks cargo (`cargo metadata --no-deps`) about the crate whose
/// `Cargo.toml` is in `crate_dir`.
///
/// # Errors
/// [`BuildError::Metadata`] when cargo cannot be run, the manifest is
/// missing or invalid, or it has no package.
pub fn crate_info(crate_dir: &Path) -> Result<CrateInfo, BuildError> {
    let mut groups = by_workspace(&[crate_dir.to_path_buf()]).map_err(|(_, e)| e)?;
    Ok(groups.remove(0).crates.remove(0).1)
}

/// Crates of one cargo workspace, which one `cargo build -p a -p b ...`
/// builds together (see [`by_workspace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The `Cargo.toml` to build them with: the first crate's (cargo runs in
    /// its folder and reads the `.cargo/config.toml` files that apply there).
    pub manifest: PathBuf,
    /// The crates, in the order given: (their index in the folders given,
    /// what cargo says about them).
    pub crates: Vec<(usize, CrateInfo)>,
}

/// Groups crate folders by the cargo workspace they belong to, in the order
/// given, with one `cargo metadata --no-deps` per workspace: what lets
/// `molt run` build every missing library with one `cargo build` per
/// workspace instead of one per crate (each invocation checks the whole
/// dependency graph again).
///
/// # Errors
/// The index of the first folder cargo cannot read and the
/// [`BuildError::Metadata`] saying why (missing or invalid manifest, no
/// package).
pub fn by_workspace(crate_dirs: &[PathBuf]) -> Result<Vec<Workspace>, (usize, BuildError)> {
    let manifests: Vec<PathBuf> = crate_dirs
        .iter()
        .map(|d| {
            std::path::absolute(d)
                .unwrap_or_else(|_| d.clone())
                .join("Cargo.toml")
        })
        .collect();
    let canonical: Vec<Option<PathBuf>> = manifests.iter().map(|m| m.canonicalize().ok()).collect();
    let mut placed = vec![false; crate_dirs.len()];
    let mut groups = Vec::new();
    for first in 0..crate_dirs.len() {
        if placed[first] {
            continue;
        }
        let manifest = &manifests[first];
        let failed = |error: String| {
            (
                first,
                BuildError::Metadata {
                    manifest: manifest.clone(),
                    error,
                },
            )
        };
        let dir = manifest.parent().unwrap_or(Path::new("."));
        let metadata = MetadataCommand::new()
            .cargo_path(cargo())
            .manifest_path(manifest)
            // cargo reads .cargo/config.toml from the folder it runs in.
            .current_dir(dir)
            .no_deps()
            .exec()
            .map_err(|e| failed(metadata_error(e)))?;
        let target_dir = metadata.target_directory.clone().into_std_path_buf();
        let mut crates = Vec::new();
        for (i, m) in canonical.iter().enumerate().skip(first) {
            let Some(m) = m.as_ref().filter(|_| !placed[i]) else {
                continue;
            };
            let package = metadata.packages.iter().find(|p| {
                p.manifest_path
                    .as_std_path()
                    .canonicalize()
                    .is_ok_and(|p| p == *m)
            });
            if let Some(package) = package {
                placed[i] = true;
                crates.push((i, info_of(package, &target_dir)));
            }
        }
        if !placed[first] {
            return Err(failed(
                "it has no [package] (a virtual workspace manifest?)".into(),
            ));
        }
        groups.push(Workspace {
            manifest: manifest.clone(),
            crates,
        });
    }
    Ok(groups)
}

fn info_of(package: &cargo_metadata::Package, target_dir: &Path) -> CrateInfo {
    let lib = package
        .targets
        .iter()
        .find(|t| t.is_lib() || t.is_rlib() || t.is_dylib() || t.is_cdylib() || t.is_staticlib());
    CrateInfo {
        package: package.name.to_string(),
        lib_name: lib.map(|t| t.name.clone()),
        target_dir: target_dir.to_path_buf(),
    }
}

/// cargo's own message, without the command line around it.
fn metadata_error(e: cargo_metadata::Error) -> String {
    match e {
        cargo_metadata::Error::CargoMetadata { stderr } => {
            stderr.trim().trim_start_matches("error: ").to_string()
        }
        other => other.to_string(),
    }
}

/// The cargo to run: the one running us (`CARGO`), else `cargo` on PATH.
fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// Runs `cargo build --message-format=json` and returns the `cdylib`s built.
///
/// The compiler's diagnostics arrive as JSON (with their rendered text), so
/// they are not printed; a failed build returns the first error. With
/// [`BuildRequest::progress`] on a terminal, cargo's own lines ("Compiling
/// ...", the progress bar, "could not compile") go to our stderr.
///
/// # Errors
/// [`BuildError::Compile`] with the first compiler error, or
/// [`BuildError::Spawn`].
pub fn build(req: &BuildRequest) -> Result<Vec<BuiltLibrary>, BuildError> {
    // Absolute: cargo runs in the manifest's folder (below).
    let manifest = std::path::absolute(&req.manifest).unwrap_or_else(|_| req.manifest.clone());
    let mut cmd = Command::new(cargo());
    cmd.arg("build")
        // Not `json-render-diagnostics`: that one renders the diagnostics on
        // stderr and leaves no `compiler-message` on stdout to take the
        // first error from.
        .arg("--message-format=json")
        .arg("--manifest-path")
        .arg(&manifest);
    // cargo reads .cargo/config.toml (build.target-dir, ...) from the folder
    // it runs in: the crate's, as when its author runs `cargo build` there.
    if let Some(dir) = manifest.parent() {
        cmd.current_dir(dir);
    }
    for p in &req.packages {
        cmd.arg("-p").arg(p);
    }
    if req.release {
        cmd.arg("--release");
    }
    if let Some(dir) = &req.target_dir {
        // Relative to where we run, not to the manifest's folder.
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        cmd.arg("--target-dir").arg(dir);
    }
    let show_progress = req.progress && std::io::stderr().is_terminal();
    cmd.stdout(Stdio::piped()).stderr(if show_progress {
        Stdio::inherit()
    } else {
        Stdio::piped()
    });
    let mut child = cmd.spawn().map_err(|e| BuildError::Spawn(e.to_string()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let err_reader = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
            s
        })
    });
    let mut libs = Vec::new();
    let mut first_error: Option<(String, String)> = None;
    for message in Message::parse_stream(BufReader::new(stdout)).map_while(Result::ok) {
        match message {
            Message::CompilerArtifact(artifact) if artifact.target.is_cdylib() => {
                for f in artifact
                    .filenames
                    .iter()
                    .filter(|f| is_dylib(f.as_std_path()))
                {
                    libs.push(BuiltLibrary {
                        package: artifact.target.name.clone(),
                        path: f.clone().into_std_path_buf(),
                    });
                }
            }
            Message::CompilerMessage(m)
                if first_error.is_none() && m.message.level == DiagnosticLevel::Error =>
            {
                first_error = m.message.rendered.map(|r| (m.target.name.clone(), r));
            }
            _ => {}
        }
    }
    let status = child.wait().map_err(|e| BuildError::Spawn(e.to_string()))?;
    let stderr_text = err_reader.map(|r| r.join().unwrap_or_default());
    if !status.success() {
        let fallback = || match &stderr_text {
            Some(text) => last_lines(text, 20),
            None => format!("cargo failed ({status}); its output is above"),
        };
        let (failed_target, first_error) = match first_error {
            Some((target, rendered)) => (Some(target), rendered),
            None => (None, fallback()),
        };
        return Err(BuildError::Compile {
            packages: if req.packages.is_empty() {
                req.manifest.display().to_string()
            } else {
                req.packages.join(", ")
            },
            failed_target,
            first_error,
        });
    }
    Ok(libs)
}

fn is_dylib(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("so" | "dylib" | "dll")
    )
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_crate(lib_rs: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[workspace]\n[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             [lib]\ncrate-type = [\"cdylib\"]\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), lib_rs).unwrap();
        dir
    }

    fn request(dir: &Path) -> BuildRequest {
        BuildRequest {
            manifest: dir.join("Cargo.toml"),
            packages: vec![],
            release: false,
            target_dir: Some(dir.join("target")),
            progress: false,
        }
    }

    #[test]
    fn a_compile_error_is_the_compilers_first_error() {
        let dir = tiny_crate(
            "pub fn a() -> u32 { \"not a number\" }\npub fn b() -> u32 { \"second\" }\n",
        );
        match build(&request(dir.path())) {
            Err(BuildError::Compile { first_error, .. }) => {
                assert!(
                    first_error.contains("error[E0308]: mismatched types"),
                    "{first_error}"
                );
                assert!(first_error.contains("src/lib.rs:1:"), "{first_error}");
                assert!(
                    !first_error.contains("second"),
                    "only the first: {first_error}"
                );
            }
            other => panic!("expected a compile error, got {other:?}"),
        }
    }

    #[test]
    fn no_cdylib_says_to_add_the_crate_type() {
        let dir = tiny_crate("pub fn a() -> u32 { 1 }\n");
        let manifest = dir.path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(
            &manifest,
            text.replace("[lib]\ncrate-type = [\"cdylib\"]\n", ""),
        )
        .unwrap();
        let libs = build(&request(dir.path())).expect("builds");
        assert!(libs.is_empty(), "{libs:?}");
        let e = library_of(&libs, "tiny").unwrap_err().to_string();
        assert!(
            e.contains(
                "the build of tiny produced no cdylib: add crate-type = [\"cdylib\"] under [lib]"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_cdylib_is_found() {
        let dir = tiny_crate("pub fn a() -> u32 { 1 }\n");
        let libs = build(&request(dir.path())).expect("builds");
        assert_eq!(libs.len(), 1, "{libs:?}");
        assert_eq!(libs[0].package, "tiny");
        assert!(libs[0].path.exists());
        assert!(libs[0].path.starts_with(dir.path().join("target/debug")));
    }

    #[test]
    fn crate_info_is_cargos_word() {
        let dir = tiny_crate("pub fn a() -> u32 { 1 }\n");
        let manifest = dir.path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(
            &manifest,
            text.replace("name = \"tiny\"", "name = \"tiny-mod\"")
                .replace("[lib]\n", "[lib]\nname = \"tiny_lib\"\n"),
        )
        .unwrap();
        let info = crate_info(dir.path()).unwrap();
        assert_eq!(info.package, "tiny-mod");
        assert_eq!(info.lib_name.as_deref(), Some("tiny_lib"));
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            let target = dir.path().canonicalize().unwrap().join("target");
            assert_eq!(info.target_dir, target);
            assert_eq!(
                info.debug_library().unwrap(),
                target.join("debug").join(format!(
                    "{}tiny_lib{}",
                    std::env::consts::DLL_PREFIX,
                    std::env::consts::DLL_SUFFIX
                ))
            );
        }
    }

    /// Writes a cdylib crate `name` in `dir` (a workspace of its own when
    /// `standalone`).
    fn crate_in(dir: &Path, name: &str, standalone: bool) {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "{}[package]\nname = {name:?}\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                 [lib]\ncrate-type = [\"cdylib\"]\n",
                if standalone { "[workspace]\n" } else { "" }
            ),
        )
        .unwrap();
        std::fs::write(dir.join("src/lib.rs"), "pub fn a() -> u32 { 1 }\n").unwrap();
    }

    #[test]
    fn crates_are_grouped_by_workspace_in_order() {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(
            ws.join("Cargo.toml"),
            "[workspace]\nresolver = \"2\"\nmembers = [\"alpha\", \"beta\"]\n",
        )
        .unwrap();
        crate_in(&ws.join("alpha"), "alpha", false);
        crate_in(&ws.join("beta"), "beta-mod", false);
        crate_in(&root.path().join("gamma"), "gamma", true);
        let dirs = [ws.join("alpha"), root.path().join("gamma"), ws.join("beta")];
        let groups = by_workspace(&dirs).unwrap();
        type Crate = (usize, String, Option<String>);
        let summary: Vec<(PathBuf, Vec<Crate>)> = groups
            .into_iter()
            .map(|g| {
                let crates = g
                    .crates
                    .into_iter()
                    .map(|(i, c)| (i, c.package, c.lib_name))
                    .collect();
                (g.manifest, crates)
            })
            .collect();
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            summary,
            [
                (
                    ws.join("alpha/Cargo.toml"),
                    vec![
                        (0, "alpha".to_string(), some("alpha")),
                        (2, "beta-mod".to_string(), some("beta_mod")),
                    ]
                ),
                (
                    root.path().join("gamma/Cargo.toml"),
                    vec![(1, "gamma".to_string(), some("gamma"))]
                ),
            ]
        );
    }

    #[test]
    fn a_folder_cargo_cannot_read_is_named_by_index() {
        let root = tempfile::tempdir().unwrap();
        crate_in(&root.path().join("alpha"), "alpha", true);
        let dirs = [root.path().join("alpha"), root.path().join("missing")];
        match by_workspace(&dirs) {
            Err((1, BuildError::Metadata { manifest, .. })) => {
                assert_eq!(manifest, root.path().join("missing/Cargo.toml"));
            }
            other => panic!("expected the second folder to fail, got {other:?}"),
        }
    }

    #[test]
    fn crate_info_of_a_folder_without_a_crate_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = crate_info(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "cannot read the crate {}",
                dir.path().join("Cargo.toml").display()
            )),
            "{e}"
        );
    }
}
