//! Builds module crates with cargo and finds their libraries, for examples,
//! tests, `molt run` (missing libraries) and dev mode.

use std::io::{BufRead, BufReader};
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
    /// The code did not compile; the compiler's first error, rendered.
    #[error("build of {packages} failed:\n{first_error}")]
    Compile {
        /// The packages asked for.
        packages: String,
        /// The first compiler error as rustc renders it.
        first_error: String,
    },
}

/// The cargo to run: the one running us (`CARGO`), else `cargo` on PATH.
fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// Runs `cargo build --message-format=json` and returns the `cdylib`s built.
///
/// # Errors
/// [`BuildError::Compile`] with the first compiler error, or
/// [`BuildError::Spawn`].
pub fn build(req: &BuildRequest) -> Result<Vec<BuiltLibrary>, BuildError> {
    let mut cmd = Command::new(cargo());
    cmd.arg("build")
        .arg("--message-format=json-render-diagnostics")
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
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| BuildError::Spawn(e.to_string()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
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
    let stderr_text = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(BuildError::Compile {
            packages: req.packages.join(", "),
            first_error: first_error.unwrap_or_else(|| last_lines(&stderr_text, 20)),
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
