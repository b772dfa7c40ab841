//! Builds module crates with cargo and finds their libraries, for examples,
//! tests, `molt run` (missing libraries) and dev mode.

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    /// The code did not compile; the compiler's first error, rendered.
    #[error("build of {packages} failed:\n{first_error}")]
    Compile {
        /// The packages asked for.
        packages: String,
        /// The first compiler error as rustc renders it.
        first_error: String,
    },
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
    let mut cmd = Command::new(cargo());
    cmd.arg("build")
        // Not `json-render-diagnostics`: that one renders the diagnostics on
        // stderr and leaves no `compiler-message` on stdout to take the
        // first error from.
        .arg("--message-format=json")
        .arg("--manifest-path")
        .arg(&req.manifest);
    for p in &req.packages {
        cmd.arg("-p").arg(p);
    }
    if req.release {
        cmd.arg("--release");
    }
    if let Some(dir) = &req.target_dir {
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
    let mut first_error: Option<String> = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        match v["reason"].as_str() {
            Some("compiler-artifact") => {
                let is_cdylib = v["target"]["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
                if !is_cdylib {
                    continue;
                }
                let package = v["target"]["name"].as_str().unwrap_or_default().to_string();
                for f in v["filenames"].as_array().into_iter().flatten() {
                    let Some(f) = f.as_str() else { continue };
                    if is_dylib(Path::new(f)) {
                        libs.push(BuiltLibrary {
                            package: package.clone(),
                            path: PathBuf::from(f),
                        });
                    }
                }
            }
            Some("compiler-message")
                if first_error.is_none() && v["message"]["level"] == "error" =>
            {
                first_error = v["message"]["rendered"].as_str().map(str::to_string);
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
        return Err(BuildError::Compile {
            packages: if req.packages.is_empty() {
                req.manifest.display().to_string()
            } else {
                req.packages.join(", ")
            },
            first_error: first_error.unwrap_or_else(fallback),
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
}
